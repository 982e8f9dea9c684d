#!/usr/bin/env bash
# The project's test command (README): runs the whole workspace's tests.
# Extra arguments replace `--workspace` (e.g. `scripts/test.sh -p kpbt-client`).
#
# Interop tests need aria2c, transmission-cli, opentracker, mktorrent and
# python3-libtorrent (scripts/install-deps.sh); set KPBT_SKIP_INTEROP=1 to skip them instead.
# The tracker's Redis store tests need redis-server (same script); KPBT_SKIP_REDIS=1 skips.
# Container tests (kpbt-integration) need a Docker engine; KPBT_SKIP_DOCKER=1 skips them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/kpbt-target}
# Hard cap so a hung test can't eat CI's budget (seconds).
limit=${KPBT_TEST_TIMEOUT:-1500}

log=$(mktemp -t kpbt-test.XXXXXX)
trap 'rm -f "$log"' EXIT

args=("$@")
((${#args[@]})) || args=(--workspace)

# Container tests (kpbt-integration) run the kpbt images: build them once up front
# unless they already are (KPBT_IMAGES_PREBUILT=1, as .ci/run does) or the tests are
# skipped (KPBT_SKIP_DOCKER=1). Without a Docker engine those tests fail and say why.
if [[ ${KPBT_SKIP_DOCKER:-0} != 1 && ${KPBT_IMAGES_PREBUILT:-0} != 1 ]] &&
  [[ " ${args[*]} " == *" --workspace "* || " ${args[*]} " == *kpbt-integration* ]] &&
  docker info >/dev/null 2>&1; then
  echo "==> docker/build-images.sh (for the container tests)"
  bash docker/build-images.sh
  export KPBT_IMAGES_PREBUILT=1
fi

start=$SECONDS
echo "==> cargo test ${args[*]} (target: $CARGO_TARGET_DIR, limit ${limit}s)"
rc=0
# pipefail: rc is cargo's (or timeout's) status, not tee's.
timeout -k 30 "$limit" cargo test --no-fail-fast "${args[@]}" 2>&1 | tee "$log" || rc=$?
if ((rc == 124 || rc == 137)); then
  echo "==> cargo test TIMED OUT after ${limit}s" >&2
fi
echo "==> cargo test finished in $((SECONDS - start))s (exit $rc)"

# One plain closing line over all test binaries (cargo's last "test result" line is
# often a doc-test binary with 0 tests). Also saved for .ci/run to repeat last.
summary=$(awk '/^test result:/ {
    for (i = 2; i <= NF; i++) {
      if ($i ~ /^passed;?$/) p += $(i - 1)
      if ($i ~ /^failed;?$/) f += $(i - 1)
      if ($i ~ /^ignored;?$/) s += $(i - 1)
    }
  } END { printf "%d passed, %d failed, %d skipped", p, f, s }' "$log")
if [[ -n ${KPBT_TEST_SUMMARY_FILE:-} ]]; then
  printf 'tests: %s\n' "$summary" >"$KPBT_TEST_SUMMARY_FILE"
fi
echo
echo "tests: $summary"
exit "$rc"
