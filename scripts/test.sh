#!/usr/bin/env bash
# The project's test command (README): runs the whole workspace's tests.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p kpbt-client`).
#
# Interop tests need aria2c, transmission-cli, opentracker and mktorrent
# (scripts/install-deps.sh); set KPBT_SKIP_INTEROP=1 to skip them instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/kpbt-target}
# Hard cap so a hung test can't eat CI's budget (seconds).
limit=${KPBT_TEST_TIMEOUT:-1500}

start=$SECONDS
echo "==> cargo test --workspace (target: $CARGO_TARGET_DIR, limit ${limit}s)"
rc=0
timeout -k 30 "$limit" cargo test --workspace --no-fail-fast "$@" || rc=$?
if ((rc == 124 || rc == 137)); then
  echo "==> cargo test TIMED OUT after ${limit}s" >&2
fi
echo "==> cargo test finished in $((SECONDS - start))s (exit $rc)"
exit "$rc"
