#!/usr/bin/env bash
# Builds the local base images the Dockerfile's FROM lines resolve to, since
# no registry is reachable from these machines:
#
#   localhost/debian:bookworm       debootstrap --variant=minbase bookworm
#   localhost/debian:bookworm-slim  the same tree without docs, man pages
#                                   and locales, plus the dpkg path-excludes
#                                   that keep later apt-get installs slim
#
# Both come from the Debian mirror apt already uses on this machine.  The
# rootfs tarballs are cached under $FANPROBE_PODMAN_DIR/rootfs: a re-run with
# the images present does nothing, and with only the tarballs present just
# re-imports them.  FANPROBE_REBUILD_BASE=1 starts over.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
fp_podman_setup

suite=bookworm
cache="$FANPROBE_PODMAN_DIR/rootfs"
full_tar="$cache/debian-$suite-minbase.tar"
slim_tar="$cache/debian-$suite-slim.tar"

if [ "${FANPROBE_REBUILD_BASE:-0}" = 1 ]; then
  rm -f "$full_tar" "$slim_tar"
  podman rmi -f "$FP_BASE_IMAGE" "$FP_SLIM_IMAGE" >/dev/null 2>&1 || true
fi
if podman image exists "$FP_BASE_IMAGE" && podman image exists "$FP_SLIM_IMAGE"; then
  fp_log "base images present: $FP_BASE_IMAGE $FP_SLIM_IMAGE"
  exit 0
fi

mirror=$(fp_debian_mirror "$suite")
[ -n "$mirror" ] || fp_die "no Debian $suite entry in /etc/apt/sources.list{,.d/*}"
updates_mirror=$(fp_debian_mirror "$suite-updates")
security_mirror=$(fp_debian_mirror "$suite-security")

if [ ! -f "$full_tar" ] || [ ! -f "$slim_tar" ]; then
  mkdir -p "$cache"
  root="$cache/$suite.rootfs"
  fp_sudo rm -rf "$root" "$root.slim"
  fp_log "debootstrap --variant=minbase $suite from $mirror (a few minutes)"
  fp_sudo debootstrap --variant=minbase \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    fp_die "debootstrap failed; see $cache/debootstrap.log"

  # apt inside a build step reaches the same mirror, with the point-release
  # updates and security fixes the host sees.
  {
    echo "deb $mirror $suite main"
    if [ -n "$updates_mirror" ]; then echo "deb $updates_mirror $suite-updates main"; fi
    if [ -n "$security_mirror" ]; then echo "deb $security_mirror $suite-security main"; fi
  } | fp_sudo tee "$root/etc/apt/sources.list" >/dev/null
  # What the official images do: no service starts during a build, and no
  # downloaded .debs left in a layer.
  printf '#!/bin/sh\nexit 101\n' | fp_sudo tee "$root/usr/sbin/policy-rc.d" >/dev/null
  fp_sudo chmod 755 "$root/usr/sbin/policy-rc.d"
  fp_sudo tee "$root/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  fp_sudo chroot "$root" /bin/sh -c \
    'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade' \
    >>"$cache/debootstrap.log" 2>&1 || fp_die "apt-get upgrade in the rootfs failed"
  fp_sudo rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
    "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
  # A container gets these from its runtime.
  fp_sudo rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
  fp_sudo tar -C "$root" --numeric-owner -cf "$full_tar.tmp" .
  mv "$full_tar.tmp" "$full_tar"

  # The slim variant, the way Debian's own bookworm-slim is made
  # (debuerreotype-slimify): drop what a server never reads, keep the
  # copyright files, and tell dpkg to skip the same paths from now on.
  fp_sudo cp -a "$root" "$root.slim"
  slim="$root.slim"
  fp_sudo tee "$slim/etc/dpkg/dpkg.cfg.d/docker" >/dev/null <<'EOF'
# Keep the image slim: no docs, man pages, info or locales (copyrights stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  fp_sudo find "$slim/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  fp_sudo find "$slim/usr/share/doc" -mindepth 1 -type d -empty -delete
  fp_sudo rm -rf "$slim"/usr/share/{groff,info,linda,man}/* "$slim"/usr/share/lintian/overrides/*
  fp_sudo find "$slim/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
    -exec rm -rf {} +
  fp_sudo tar -C "$slim" --numeric-owner -cf "$slim_tar.tmp" .
  mv "$slim_tar.tmp" "$slim_tar"
  fp_sudo rm -rf "$root" "$slim"
fi

changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'CMD ["bash"]')
fp_log "importing $FP_BASE_IMAGE and $FP_SLIM_IMAGE"
podman import -q "${changes[@]}" - "$FP_BASE_IMAGE" <"$full_tar" >/dev/null
podman import -q "${changes[@]}" - "$FP_SLIM_IMAGE" <"$slim_tar" >/dev/null
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '/debian:' >&2
