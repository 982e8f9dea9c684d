#!/usr/bin/env bash
# Benchmarks kpbt-tracker's UDP front end (release build) against aquatic_udp and
# opentracker on loopback, driven by aquatic_udp_load_test. Not a test.
#
# Each server runs pinned to core $SERVER_CPU with one serving thread (kpbt --workers 1,
# aquatic socket_workers = 1; opentracker serves UDP from one thread), the load test
# pinned to core $LOAD_CPU with one worker, both with the sample settings
# `aquatic_udp_load_test -p` prints (connect:announce:scrape = 50:50:1, 1M torrents, 2M
# peers, 30 peers wanted) except the duration. Every server is restarted for every run,
# runs alternate between servers, and the median of $RUNS runs of "Average responses per
# second" is reported, with the breakdown by kind.
#
# On a small shared machine one load-test core cannot saturate any of these servers, so
# responses/s mostly measures the load generator. The per-core figure is therefore taken
# from the server's own CPU time during the run (summed over its threads from
# /proc/PID/task/*/schedstat): responses answered per CPU-second, and CPU µs per response.
#
# opentracker from Debian is built whitelist-only and the load test picks random info
# hashes, so opentracker answers its announces with error replies (cheaper than real
# announces); its figure is an upper bound and shown with that breakdown.
#
# Needs: aquatic_udp and aquatic_udp_load_test (cargo install aquatic_udp_load_test
# --locked; cargo install aquatic_udp --locked --no-default-features --features mimalloc,
# since its prometheus feature pulls a `metrics` crate current rustc rejects), in PATH or
# AQUATIC_BIN (default /var/tmp/aquatic/bin); opentracker, taskset, python3.
#
# Usage: scripts/bench-udp.sh   (env: DURATION RUNS SERVERS SERVER_CPU LOAD_CPU AQUATIC_BIN)
# Output: bench-out/udp/summary.md, raw reports beside it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOG_TAG=bench-udp
source scripts/lib.sh

DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
AQUATIC_BIN=${AQUATIC_BIN:-/var/tmp/aquatic/bin}
OUT=${OUT:-bench-out/udp}
read -r -a SERVERS <<<"${SERVERS:-kpbt aquatic opentracker}"
TARGET=${CARGO_TARGET_DIR:-target}/release
export PATH="$AQUATIC_BIN:$PATH"

for tool in aquatic_udp aquatic_udp_load_test opentracker taskset python3; do
  command -v "$tool" >/dev/null || die "missing $tool (see the header of $0)"
done

log "building kpbt-tracker (release)"
cargo build --release -p kpbt-tracker --bin kpbt-tracker
mkdir -p "$OUT"
rm -f "$OUT"/*.report
work=$(mktemp -d)
chmod 755 "$work" # opentracker chroots here and runs as nobody
: >"$work/ot-whitelist.txt"
chmod 644 "$work/ot-whitelist.txt"

# CPU nanoseconds the process $1 has used so far, over all its threads.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s+=$1} END {printf "%d\n", s}'; }

# Waits until something answers a BEP 15 connect on 127.0.0.1:$1.
wait_udp() {
  python3 - "$1" <<'PY' || die "nothing answers UDP connects on port $1"
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1)
end = time.time() + 60
while time.time() < end:
    s.sendto(struct.pack('>QII', 0x41727101980, 0, 7), ('127.0.0.1', int(sys.argv[1])))
    try:
        if s.recv(64)[:8] == struct.pack('>II', 0, 7): sys.exit(0)
    except OSError: time.sleep(0.05)
sys.exit(1)
PY
}

start_server() { # name port -> sets server_pid
  local name=$1 port=$2
  case $name in
    kpbt)
      taskset -c "$SERVER_CPU" "$TARGET/kpbt-tracker" --listen "127.0.0.1:$(free_port)" \
        --udp-listen "127.0.0.1:$port" --workers 1 --announce-interval 900 \
        --log error >/dev/null 2>&1 &
      ;;
    aquatic)
      aquatic_udp -p | sed -e "s/^address = .*/address = \"127.0.0.1:$port\"/" \
        -e 's/^socket_workers = .*/socket_workers = 1/' >"$work/aquatic.toml"
      taskset -c "$SERVER_CPU" aquatic_udp -c "$work/aquatic.toml" >/dev/null 2>&1 &
      ;;
    opentracker)
      taskset -c "$SERVER_CPU" opentracker -i 127.0.0.1 -p "$(free_port)" -P "$port" \
        -A 127.0.0.1 -w ot-whitelist.txt -d "$work" >/dev/null 2>&1 &
      ;;
    *) die "unknown server $name" ;;
  esac
  server_pid=$!
  pids+=("$server_pid")
}

aquatic_udp_load_test -p | sed -e "s/^duration = .*/duration = $DURATION/" >"$work/load.toml"
for run in $(seq 1 "$RUNS"); do
  for name in "${SERVERS[@]}"; do
    port=$(free_port)
    start_server "$name" "$port"
    wait_udp "$port"
    sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$port\"/" "$work/load.toml" \
      >"$work/load-run.toml"
    log "run $run: $name"
    before=$(cpu_ns "$server_pid")
    taskset -c "$LOAD_CPU" aquatic_udp_load_test -c "$work/load-run.toml" \
      >"$OUT/$name.$run.report" 2>&1 || die "load test against $name failed"
    echo "server_cpu_ns: $(($(cpu_ns "$server_pid") - before))" >>"$OUT/$name.$run.report"
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  done
done

python3 - "$OUT" "$RUNS" "$DURATION" "${SERVERS[@]}" >"$OUT/summary.md" <<'PY'
import re, statistics, sys
out, runs, duration, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def report(name, run):
    text = open(f"{out}/{name}.{run}.report").read()
    tail = text[text.index("# aquatic load test report"):]
    grab = lambda label: float(re.search(label + r":\s+([0-9.]+)", tail).group(1))
    r = {k: grab(l) for k, l in [("total", "Average responses per second"),
        ("connect", "Connect responses"), ("announce", "Announce responses"),
        ("scrape", "Scrape responses"), ("error", "Error responses")]}
    secs = float(re.search(r"Test ran for ([0-9.]+) seconds", tail).group(1))
    cpu = int(re.search(r"server_cpu_ns: (\d+)", text).group(1)) / 1e9
    r["per_core"] = r["total"] * secs / cpu
    r["us"] = cpu * 1e6 / (r["total"] * secs)
    return r
rows = {s: [report(s, r) for r in range(1, runs + 1)] for s in servers}
med = {s: {k: statistics.median(r[k] for r in rows[s]) for k in rows[s][0]} for s in servers}
base = med.get("aquatic", {}).get("total")
print(f"aquatic_udp_load_test, 1 worker, {duration} s per run, median of {runs} runs")
print()
base_core = med.get("aquatic", {}).get("per_core")
print("| server | responses/s | runs | connect | announce | scrape | error | server CPU µs/response | responses per CPU-second | / aquatic_udp (per CPU-second) |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for s in servers:
    m = med[s]
    each = " / ".join(f"{r['total']:.0f}" for r in rows[s])
    ratio = f"{m['per_core'] / base_core:.2f}x" if base_core else "-"
    print(f"| {s} | {m['total']:.0f} | {each} | {m['connect']:.0f} | {m['announce']:.0f} "
          f"| {m['scrape']:.0f} | {m['error']:.0f} | {m['us']:.2f} | {m['per_core']:.0f} | {ratio} |")
PY
cat "$OUT/summary.md"
