#!/usr/bin/env bash
# Builds the kpbt/tracker and kpbt/client images from static binaries built here, with no
# base image to pull (FROM scratch). Tags: kpbt/tracker:dev, kpbt/client:dev.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
context=$(mktemp -d); trap 'rm -rf "$context"' EXIT
"$here/build-static.sh" "$context/bin"
# Writable, non-root-owned directories for the images (scratch has no mkdir).
mkdir -p "$context/rootfs/data" "$context/rootfs/tmp"
chmod 1777 "$context/rootfs/tmp"
cp "$here/Dockerfile.local" "$context/Dockerfile"
for image in tracker client; do
  docker build --quiet --target "$image" -t "kpbt/$image:dev" "$context" >/dev/null
  size=$(docker image inspect -f '{{.Size}}' "kpbt/$image:dev")
  echo "built kpbt/$image:dev ($((size / 1024 / 1024)) MiB)"
done
