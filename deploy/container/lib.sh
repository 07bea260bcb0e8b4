# shellcheck shell=bash
# Sourced by the scripts in deploy/container/: podman set up the way these
# machines need it (see deploy/README.md, "The podman recipe").
#
#   . deploy/container/lib.sh
#   fp_podman_setup        # installs podman runc debootstrap if missing,
#                          # writes containers.conf + storage.conf, exports
#                          # CONTAINERS_CONF / CONTAINERS_STORAGE_CONF
#   podman images
#
# Everything podman stores (images, layers, the debootstrap rootfs tarballs)
# lives under $FANPROBE_PODMAN_DIR, outside the repository, so a re-run
# reuses it and nothing of it can be committed by accident.

FANPROBE_PODMAN_DIR=${FANPROBE_PODMAN_DIR:-/var/tmp/fanprobe-podman}
# The image `make image` builds and `make image-test` runs.
FANPROBE_IMAGE=${FANPROBE_IMAGE:-localhost/fanprobe:latest}
# Its build stage, tagged so its layers stay cached.
FANPROBE_BUILD_IMAGE=${FANPROBE_BUILD_IMAGE:-localhost/fanprobe-build:latest}
# The local base images the Dockerfile's FROM lines resolve to.
# shellcheck disable=SC2034  # used by base-images.sh
FP_BASE_IMAGE=localhost/debian:bookworm
# shellcheck disable=SC2034
FP_SLIM_IMAGE=localhost/debian:bookworm-slim

FP_PACKAGES="podman runc debootstrap"

fp_log() { printf '[fanprobe-container] %s\n' "$*" >&2; }
fp_die() {
  fp_log "error: $*"
  exit 1
}

fp_sudo() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs only the packages that are missing, so a machine that has them
# makes no network call.
fp_install_packages() {
  local missing="" p
  for p in $FP_PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
      grep -q '^install ok installed' || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  fp_log "installing Debian packages:$missing"
  fp_sudo apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive fp_sudo apt-get install -y -qq \
    --no-install-recommends $missing
}

# overlay when the kernel mounts it on the storage directory's filesystem,
# vfs (a full copy per layer: slower, larger) otherwise.
fp_storage_driver() {
  if [ -n "${FANPROBE_STORAGE_DRIVER:-}" ]; then
    echo "$FANPROBE_STORAGE_DRIVER"
    return
  fi
  local t
  t=$(mktemp -d "$FANPROBE_PODMAN_DIR/overlay-probe.XXXXXX")
  mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
  if fp_sudo mount -t overlay overlay \
    -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
    fp_sudo umount "$t/m"
    echo overlay
  else
    echo vfs
  fi
  rm -rf "$t"
}

# Container ulimits may not exceed the host's hard limits, or runc fails to
# start the container: nofile = `ulimit -Hn`, nproc = min(32768, `ulimit -Hu`).
fp_write_configs() {
  local nofile nproc driver
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=1048576
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  driver=$(fp_storage_driver)

  cat >"$FANPROBE_PODMAN_DIR/containers.conf" <<EOF
# Written by deploy/container/lib.sh; rewritten on every run.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
# crun fails on this cgroup layout; runc works.  No systemd in these VMs:
# plain cgroupfs, events to a file.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$FANPROBE_PODMAN_DIR/tmp"
EOF
  cat >"$FANPROBE_PODMAN_DIR/storage.conf" <<EOF
# Written by deploy/container/lib.sh; rewritten on every run.
[storage]
driver = "$driver"
graphroot = "$FANPROBE_PODMAN_DIR/storage"
runroot = "$FANPROBE_PODMAN_DIR/run"
EOF
}

fp_podman_setup() {
  fp_install_packages
  mkdir -p "$FANPROBE_PODMAN_DIR/tmp"
  # The storage driver cannot change under existing storage: keep the one
  # the storage was created with.
  if [ -f "$FANPROBE_PODMAN_DIR/storage.conf" ] &&
    [ -d "$FANPROBE_PODMAN_DIR/storage" ] && [ -z "${FANPROBE_STORAGE_DRIVER:-}" ]; then
    FANPROBE_STORAGE_DRIVER=$(sed -n 's/^driver = "\(.*\)"$/\1/p' \
      "$FANPROBE_PODMAN_DIR/storage.conf")
  fi
  fp_write_configs
  export CONTAINERS_CONF="$FANPROBE_PODMAN_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$FANPROBE_PODMAN_DIR/storage.conf"
  export BUILDAH_ISOLATION=chroot
}

# The Debian mirror apt already uses on this machine (one-line sources.list
# or deb822 .sources), so debootstrap and the image's apt-get reach the same
# mirror the host does.  Prints the URI of the entry for suite $1.
fp_debian_mirror() {
  local suite=$1 f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$suite" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == s) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$suite" '
        /^[[:space:]]*$/ { if (ok && uri != "") { print uri; exit } ok = 0; uri = ""; next }
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
        END { if (ok && uri != "") print uri }' "$f" | head -n1)
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
}

# A free TCP port on the loopback interface.
fp_free_port() {
  /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
