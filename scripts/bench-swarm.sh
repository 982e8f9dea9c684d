#!/usr/bin/env bash
# Swarm benchmarks for kpbt-client (release build), all on loopback:
#
# 1. One seeder capped at UPLOAD (default 20M = 20 MiB/s, `--upload-limit`), LEECHERS
#    (default 8) kpbt leechers of a SIZE_MB (default 256) MiB torrent, all started
#    together. Peers are given with --peer (full mesh, no tracker) so only transfer
#    time is measured. Reports the time until every leecher has exited (complete)
#    against size/U (the ideal: the seeder sends each byte once; target <= 1.5x) and
#    against N*size/U (a plain HTTP server with the same uplink serving N clients).
# 2. Seeding throughput to one unlimited kpbt leecher: kpbt-client seeding vs rqbit
#    seeding the same data; median of RUNS (default 3) leecher wall times each.
#
#   scripts/bench-swarm.sh
#   SIZE_MB=64 LEECHERS=4 RUNS=1 scripts/bench-swarm.sh
#
# Prints the 1-minute load average with the results: the machine may be shared.
set -euo pipefail

SIZE_MB=${SIZE_MB:-256}
LEECHERS=${LEECHERS:-8}
UPLOAD=${UPLOAD:-20M}
RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/bench-out/swarm}
KPBT=${CARGO_TARGET_DIR:-$ROOT/target}/release/kpbt-client
RQBIT=${RQBIT:-$(command -v rqbit || echo /opt/rqbit/bin/rqbit)}
export RQBIT_LSD_DISABLE=true
rqbit_flags=(--disable-dht --disable-dht-persistence --disable-upnp-port-forward)

LOG_TAG=bench-swarm
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

log "building kpbt-client (release)"
(cd "$ROOT" && cargo build --release -p kpbt-client -q)

now() { date +%s.%N; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

rm -rf "$WORK" && mkdir -p "$WORK"
log "writing a $SIZE_MB MiB demo payload"
"$KPBT" demo "$WORK/seed" --size "${SIZE_MB}M" >/dev/null
TORRENT=$WORK/seed/demo.torrent
rate=$(python3 -c "
import sys; s='$UPLOAD'; m={'K':1<<10,'M':1<<20,'G':1<<30}
print(int(s[:-1])*m[s[-1].upper()] if s[-1].upper() in m else int(s))")

# --- 1. swarm ---------------------------------------------------------------
sport=$(free_port)
"$KPBT" seed "$TORRENT" "$WORK/seed" --port "$sport" --no-trackers \
  --upload-limit "$UPLOAD" >"$WORK/seeder.log" 2>&1 &
seeder=$!
pids+=($seeder)
wait_tcp "$sport"
ports=()
for i in $(seq 1 "$LEECHERS"); do ports+=("$(free_port)"); done
load0=$(loadavg)
t0=$(now)
lpids=()
for i in $(seq 0 $((LEECHERS - 1))); do
  args=(--peer "127.0.0.1:$sport")
  for j in $(seq 0 $((LEECHERS - 1))); do
    [[ $j -lt $i ]] && args+=(--peer "127.0.0.1:${ports[$j]}")
  done
  "$KPBT" download "$TORRENT" -o "$WORK/l$i" --port "${ports[$i]}" --no-trackers \
    "${args[@]}" >"$WORK/l$i.log" 2>&1 &
  lpids+=($!)
  pids+=($!)
done
for p in "${lpids[@]}"; do wait "$p" || die "a leecher failed (see $WORK/l*.log)"; done
t1=$(now)
load1=$(loadavg)
for i in $(seq 0 $((LEECHERS - 1))); do
  cmp -s "$WORK/seed/demo" "$WORK/l$i/demo" 2>/dev/null ||
    diff -rq "$WORK/seed/demo" "$WORK/l$i/demo" >/dev/null || die "leecher $i data differs"
done
kill -INT "$seeder"; wait "$seeder" || true
uploaded=$( (grep -o 'uploaded [0-9]*' "$WORK/seeder.log" || true) | tail -1 | cut -d' ' -f2)
python3 - "$t0" "$t1" "$SIZE_MB" "$rate" "$LEECHERS" "${uploaded:-0}" "$load0" "$load1" <<'PY'
import sys
t0, t1, size_mb, rate, n, up, l0, l1 = sys.argv[1:]
t = float(t1) - float(t0); size = int(size_mb) << 20; rate = int(rate); n = int(n)
ideal = size / rate
print(f"swarm: {n} leechers x {size_mb} MiB, seeder --upload-limit {rate/2**20:.0f} MiB/s: {t:.1f} s")
print(f"  vs size/U = {ideal:.1f} s: {t/ideal:.2f}x (target <= 1.5x)")
print(f"  vs HTTP baseline N*size/U = {n*ideal:.1f} s: {t/(n*ideal):.2f}x")
print(f"  seeder uploaded {int(up)/2**20:.0f} MiB = {int(up)/size:.2f} copies; load avg {l0} -> {l1}")
PY
rm -rf "$WORK"/l*

# --- 2. seeding throughput: kpbt vs rqbit -------------------------------------
seed_with() { # $1 = kpbt|rqbit, $2 = port
  case $1 in
    kpbt) "$KPBT" seed "$TORRENT" "$WORK/seed" --port "$2" --no-trackers --quiet \
            >"$WORK/seed-$1.log" 2>&1 & ;;
    rqbit) "$RQBIT" "${rqbit_flags[@]}" --listen-port "$2" -v warn download --disable-http-api \
            --overwrite -o "$WORK/seed" "$TORRENT" >"$WORK/seed-$1.log" 2>&1 & ;;
  esac
  echo $!
}
declare -A med
seeders=(kpbt)
if [[ -x $RQBIT ]]; then seeders+=(rqbit); else log "WARNING: rqbit not found; kpbt only"; fi
for s in "${seeders[@]}"; do
  port=$(free_port)
  pid=$(seed_with "$s" "$port")
  pids+=($pid)
  wait_tcp "$port"
  times=()
  for r in $(seq 1 "$RUNS"); do
    rm -rf "$WORK/dl"
    a=$(now)
    "$KPBT" download "$TORRENT" -o "$WORK/dl" --port 0 --no-trackers --quiet \
      --peer "127.0.0.1:$port" >"$WORK/dl.log" 2>&1 || die "download from $s failed"
    b=$(now)
    diff -rq "$WORK/seed/demo" "$WORK/dl/demo" >/dev/null || die "data from $s differs"
    times+=("$(python3 -c "print(f'{$b - $a:.2f}')")")
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  med[$s]=$(printf '%s\n' "${times[@]}" | median)
  python3 -c "print(f'seeding {\"$s\":5} -> kpbt leecher, $SIZE_MB MiB: runs ${times[*]} s, median ${med[$s]} s = {$SIZE_MB/${med[$s]}:.0f} MiB/s')"
done
if [[ -n ${med[rqbit]:-} ]]; then
  python3 -c "print(f'kpbt/rqbit seeding time ratio: {${med[kpbt]}/${med[rqbit]}:.2f} (load avg $(loadavg))')"
fi
