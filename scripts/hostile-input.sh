#!/usr/bin/env bash
# Re-runs the evidence behind docs/hostile-input.md: exactly the tests its table cites, then
# a short fuzz run of every fuzz target (if cargo-fuzz is installed), and prints a summary.
#
# Usage: scripts/hostile-input.sh
#   FUZZ_SECONDS=10   seconds per fuzz target (0 skips fuzzing)
#   SKIP_CLIENT=1     skip the kpbt-client peer-wire tests (they build the client crate)
# Exit status: non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export KPBT_SKIP_INTEROP=1
fuzz_seconds=${FUZZ_SECONDS:-10}
log=$(mktemp -d); trap 'rm -rf "$log"' EXIT
summary=()
failed=0

# step NAME CARGO-TEST-ARGS... : runs one `cargo test`, records passed/failed counts.
step() {
  local name=$1; shift
  echo "== $name: cargo test $*"
  local out="$log/$(echo "$name" | tr -c 'a-z0-9' '_').log"
  if cargo test "$@" >"$out" 2>&1; then status=ok; else status=FAILED; failed=1; fi
  local passed fails
  passed=$(grep -Eo '^test result: [a-zA-Z]+\. [0-9]+ passed' "$out" | awk '{s+=$4} END {print s+0}')
  fails=$(grep -Eo '[0-9]+ failed' "$out" | awk '{s+=$1} END {print s+0}')
  if [[ $status != ok ]]; then
    grep -E "^test .*FAILED|panicked|^error" "$out" | head -n 20 >&2
  fi
  summary+=("$(printf '%-34s %-7s %4s passed %3s failed' "$name" "$status" "$passed" "$fails")")
}

# Tracker HTTP: hostile queries, access control, limits, slow/malformed connections.
step "tracker: malformed queries" -p kpbt-tracker --test http -- \
  malformed_requests forged_peer_id ip_parameter allowlist_rejects torrent_and_swarm_limits
step "tracker: limits + slow clients" -p kpbt-tracker --test limits
step "tracker: passkeys (HTTP)" -p kpbt-tracker --test passkeys
step "tracker: keys CLI + restart" -p kpbt-tracker --test keys_cli
step "tracker: UDP front end" -p kpbt-tracker --test udp
step "tracker: units (limiter, keys)" -p kpbt-tracker --lib -- \
  ratelimit:: passkeys:: per_ip_cap allowlist:: store::memory::tests clientaddr::
# Query codec: proptests (never panics, round trips) and differential checks.
step "proto: announce proptests" -p kpbt-tracker --test proto_announce
# Codecs: bencode, metainfo, compact, tracker replies, peer wire, announce fixtures.
step "proto: codec unit tests" -p kpbt-proto --lib
step "proto: fuzz corpus replay" -p kpbt-proto --test corpus_replay
if [[ ${SKIP_CLIENT:-0} != 1 ]]; then
  step "client: hostile peers" -p kpbt-client --test hostile
  step "client: hostile peer wire" -p kpbt-client --test hostile_wire
  step "client: bad tracker replies" -p kpbt-client --lib -- tracker::tests::malformed tracker_udp::
  step "client: web seed responses" -p kpbt-client --lib -- webseed::
  step "client: hostile web seeds" -p kpbt-client --test webseed -- hostile corrupt
fi

if [[ $fuzz_seconds == 0 ]]; then
  summary+=("fuzz: skipped (FUZZ_SECONDS=0)")
elif command -v cargo-fuzz >/dev/null; then
  echo "== fuzz: ${fuzz_seconds}s per target"
  if FUZZ_SECONDS=$fuzz_seconds fuzz/run.sh >"$log/fuzz.log" 2>&1; then
    runs=$(grep -Eo '^Done [0-9]+ runs' "$log/fuzz.log" | awk '{s+=$2} END {print s+0}')
    summary+=("fuzz: 6 targets x ${fuzz_seconds}s, ${runs} runs, no crash")
  else
    failed=1
    tail -n 30 "$log/fuzz.log" >&2
    summary+=("fuzz: FAILED (crash inputs copied to fuzz/regressions/)")
  fi
else
  summary+=("fuzz: skipped (cargo-fuzz not installed)")
fi

echo
echo "== hostile-input summary"
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: all hostile-input checks passed"
