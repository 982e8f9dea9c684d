#!/usr/bin/env bash
# Builds statically linked release binaries of kpbt-tracker and kpbt-client (glibc,
# crt-static; HTTPS via rustls, so no NSS or OpenSSL is needed at run time) and copies
# them to OUT_DIR (default docker/bin). Both image paths use exactly this build:
# docker/build-images.sh on this machine, and the builder stage of docker/Dockerfile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/docker/bin}
target=${KPBT_STATIC_TARGET:-x86_64-unknown-linux-gnu}
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
# A separate target dir: crt-static changes RUSTFLAGS, which would otherwise evict the
# normal build artefacts from the shared cache on every switch.
export CARGO_TARGET_DIR=${KPBT_STATIC_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/static}
# --locked when the checkout has a Cargo.lock (a fresh clone may not: then cargo resolves).
locked=()
[[ -f $root/Cargo.lock ]] && locked=(--locked)
cargo build --release "${locked[@]}" --target "$target" -p kpbt-tracker -p kpbt-client \
  --manifest-path "$root/Cargo.toml"
mkdir -p "$out"
for bin in kpbt-tracker kpbt-client; do
  install -m 0755 "$CARGO_TARGET_DIR/$target/release/$bin" "$out/$bin"
  # Line tables help local profiling but not an image; stripping halves the binary.
  strip --strip-all "$out/$bin"
done
echo "static binaries in $out"
