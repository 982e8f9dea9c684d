#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60) on stable Rust
# (`cargo fuzz run -s none`: no sanitizer, which needs nightly). A crash input is copied to
# fuzz/regressions/<target>/ so `cargo test -p kpbt-proto --test corpus_replay` replays it
# forever after, and the script exits non-zero. New corpus entries stay in a scratch dir:
# the committed corpus holds only the curated seeds.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz not found: install it with 'cargo install cargo-fuzz'" >&2
  exit 1
fi
targets=${*:-bencode metainfo announce_query tracker_reply wire magnet udp_tracker}
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $targets; do
  mkdir -p "$scratch/$target" "artifacts/$target"
  echo "== fuzzing $target for ${seconds}s"
  if ! cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 -timeout=10 \
      -artifact_prefix="artifacts/$target/" 2>"$scratch/$target.log"; then
    failed+=("$target")
    tail -n 40 "$scratch/$target.log" >&2
    mkdir -p "regressions/$target"
    cp artifacts/"$target"/* "regressions/$target/" 2>/dev/null || true
    echo "!! $target found a failing input; copied to fuzz/regressions/$target/" >&2
  else
    grep -E "^Done [0-9]+ runs" "$scratch/$target.log" | tail -n 1 || true
  fi
done
if ((${#failed[@]})); then
  echo "fuzzing failed for: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: all targets ran ${seconds}s without a crash"
