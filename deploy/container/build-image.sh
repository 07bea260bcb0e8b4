#!/usr/bin/env bash
# `make image`: builds $FANPROBE_IMAGE (default localhost/fanprobe:latest)
# from the repository's Dockerfile with podman, against the local Debian base
# images (built once by base-images.sh; nothing is pulled from a registry).
#
#   deploy/container/build-image.sh [extra podman build args...]
#
# JOBS (default 2) is the compile parallelism inside the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
"$here/base-images.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
fp_podman_setup

version=$(sed -n 's/^project(fanprobe VERSION \([^ ]*\).*/\1/p' "$repo/CMakeLists.txt")
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git -C "$repo" status --porcelain \
  -- CMakeLists.txt probe log proto service monitoring server cli bench \
  2>/dev/null)" ]; then
  revision="$revision-dirty"
fi

fp_log "building $FANPROBE_IMAGE (podman build, -j${JOBS:-2})"
start=$(date +%s)
# --format docker keeps HEALTHCHECK and SHELL.  --pull=never: the
# Dockerfile's `FROM debian:bookworm` / `debian:bookworm-slim` resolve to the
# local localhost/debian images, never to a registry.  --layers caches each
# step, so a re-run after a source edit only recompiles.
build=(podman build --format docker --isolation chroot --pull=never --network=host
  --layers --build-arg JOBS="${JOBS:-2}" -f "$repo/Dockerfile")
# The build stage gets a tag of its own, so that pruning the images earlier
# runs left behind keeps its cached apt layer.
"${build[@]}" --target build -t "$FANPROBE_BUILD_IMAGE" "$@" "$repo"
"${build[@]}" \
  --build-arg VERSION="${version:-0.0.0}" \
  --build-arg REVISION="$revision" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$FANPROBE_IMAGE" "$@" "$repo"
podman image prune -f --filter "until=$start" >/dev/null
fp_log "built $FANPROBE_IMAGE in $(($(date +%s) - start))s: $(podman image inspect \
  --format '{{.Size}}' "$FANPROBE_IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
