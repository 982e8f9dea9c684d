#!/usr/bin/env bash
# Builds kpbt/redis:dev, kpbt/haproxy:dev and kpbt/nginx:dev from Debian's packages on the Debian base
# image that scripts/build-debian-base.sh makes offline (debootstrap; nothing is pulled
# from a registry). Needs root for that first step; later runs reuse the base image.
# Skips an image that already exists unless KPBT_REBUILD=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../scripts/build-debian-base.sh"
for image in redis haproxy nginx; do
  tag="kpbt/$image:dev"
  if [[ ${KPBT_REBUILD:-0} != 1 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag already exists (KPBT_REBUILD=1 to rebuild)"
    continue
  fi
  context=$(mktemp -d)
  cp "$here/Dockerfile.$image" "$context/Dockerfile"
  [[ $image != haproxy ]] || cp "$here/haproxy/haproxy.cfg" "$context/"
  [[ $image != nginx ]] || cp "$here/nginx/nginx.conf" "$context/"
  docker build --quiet -t "$tag" "$context" >/dev/null
  rm -rf "$context"
  size=$(docker image inspect -f '{{.Size}}' "$tag")
  echo "built $tag ($((size / 1024 / 1024)) MiB)"
done
