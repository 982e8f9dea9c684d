#!/usr/bin/env bash
# Builds the kpbt/tracker and kpbt/client images from static binaries built here, with no
# base image to pull (FROM scratch). Tags: kpbt/tracker:TAG, kpbt/client:TAG, where TAG is
# $KPBT_IMAGE_TAG (default dev; docker/compose.yml reads the same variable), so several
# checkouts on one engine need not overwrite each other's images.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
context=$(mktemp -d); trap 'rm -rf "$context"' EXIT
"$here/build-static.sh" "$context/bin"
# Writable, non-root-owned directories for the images (scratch has no mkdir).
mkdir -p "$context/rootfs/data" "$context/rootfs/tmp"
chmod 1777 "$context/rootfs/tmp"
cp "$here/Dockerfile.local" "$context/Dockerfile"
tag=${KPBT_IMAGE_TAG:-dev}
for image in tracker client; do
  docker build --quiet --target "$image" -t "kpbt/$image:$tag" "$context" >/dev/null
  size=$(docker image inspect -f '{{.Size}}' "kpbt/$image:$tag")
  echo "built kpbt/$image:$tag ($((size / 1024 / 1024)) MiB)"
done
# kpbt/redis:dev and kpbt/haproxy:dev (docker/compose-ha.yml, the Redis container tests) and
# kpbt/nginx:dev (the origin of the web-seed container test):
# Debian packages on an offline-built Debian base (needs root and debootstrap the first
# time). KPBT_HA_IMAGES=0 skips them.
if [[ ${KPBT_HA_IMAGES:-1} != 0 ]]; then
  "$here/build-ha-images.sh"
fi
