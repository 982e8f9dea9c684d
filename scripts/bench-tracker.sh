#!/usr/bin/env bash
# Benchmarks kpbt-tracker (release build) against opentracker on loopback. Not a test.
#
# 1. Throughput: wrk (1 thread, $CONNS connections, $DURATION s) sends random compact
#    announces (numwant=50) for 10,000 info hashes (scripts/bench-tracker.lua), with a new
#    connection per request (`Connection: close`) and with keep-alive. Each tracker is
#    restarted for every run so both start empty; medians of $RUNS runs are reported.
#    Both trackers get the 10,000 hashes as their allowlist/whitelist (opentracker from
#    Debian is built whitelist-only, so kpbt pays for the same check).
# 2. Memory: $PEERS peers over $MEM_TORRENTS torrents announced over keep-alive HTTP
#    (tracker/examples/load_peers.rs); RSS growth / peers, for both trackers. Plus the
#    in-process store figure (tracker/examples/store_mem.rs).
#
# Contenders (TRACKERS, default all six): `kpbt` (kpbt-tracker, default workers: one per
# core), `kpbt-w1` (kpbt-tracker --workers 1: one serving thread like opentracker, leaving
# the other core to wrk), `kpbt-redis` (kpbt-tracker, default workers, with
# `--store redis://`: a fresh redis-server per run, no persistence, on $REDIS_CPUS —
# default the wrk core — so the tracker's core does only tracker work), `opentracker`, `torrust` (torrust-tracker 3.0.0, public mode,
# from `cargo install torrust-tracker --locked`; TORRUST=path, else PATH or
# /opt/torrust/bin; left out with a warning when missing), and `actix-empty`
# (tracker/examples/empty_actix.rs: actix-web with a handler that does nothing, i.e. the
# ceiling of any actix-web tracker on this machine in this run; the "of actix-empty"
# column is each server's rate divided by it).
#
# CPU placement: the machine has 2 cores. By default nothing is pinned (the tracker and
# wrk share both cores, like a real box serving clients). Set TRACKER_CPUS=0 WRK_CPUS=1
# to pin with taskset (each tracker then gets exactly one core).
#
# For kpbt-redis the script also reports CPU time per announce of the tracker and of
# redis-server (from /proc during the wrk run), Redis's usec_per_call of EVALSHA and
# commands per announce (INFO commandstats/stats, reset before the run) and, in the
# memory part, Redis used_memory growth per peer: the figures docs/benchmarks.md
# (## Tracker on Redis) derives the N-instance estimate from.
#
# Usage: scripts/bench-tracker.sh            (env: DURATION RUNS CONNS PEERS MEM_TORRENTS
#                                             TRACKER_CPUS WRK_CPUS REDIS_CPUS SKIP_MEM
#                                             SKIP_WRK TRACKERS)
# Output: a summary on stdout and in bench-out/tracker/summary.md (raw wrk lines beside it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
PEERS=${PEERS:-1000000}
MEM_TORRENTS=${MEM_TORRENTS:-100000}
TRACKER_CPUS=${TRACKER_CPUS:-}
WRK_CPUS=${WRK_CPUS:-}
REDIS_CPUS=${REDIS_CPUS:-$WRK_CPUS}
OUT=${OUT:-bench-out/tracker}
TORRUST=${TORRUST:-$(command -v torrust-tracker || echo /opt/torrust/bin/torrust-tracker)}
read -r -a TRACKERS <<<"${TRACKERS:-kpbt kpbt-w1 kpbt-redis opentracker torrust actix-empty}"
if [[ " ${TRACKERS[*]} " == *" kpbt-redis "* ]] && ! command -v redis-server >/dev/null; then
  echo "missing redis-server for kpbt-redis: apt-get install redis-server (scripts/install-deps.sh)" >&2
  exit 1
fi
if [[ " ${TRACKERS[*]} " == *" torrust "* && ! -x $TORRUST ]]; then
  echo "WARNING: torrust-tracker not found (cargo install torrust-tracker --locked, or TORRUST=path); leaving it out" >&2
  read -r -a TRACKERS <<<"$(tr ' ' '\n' <<<"${TRACKERS[*]}" | grep -vx torrust | tr '\n' ' ')"
fi
# TARGET: where the release binaries are; SKIP_BUILD=1 uses them as they are.
TARGET=${TARGET:-${CARGO_TARGET_DIR:-target}/release}

for tool in wrk opentracker python3 curl; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get install wrk opentracker python3 curl" >&2
    exit 1
  }
done

if [[ -z ${SKIP_BUILD:-} ]]; then
  echo "==> building kpbt-tracker (release)"
  cargo build --release -p kpbt-tracker --bin kpbt-tracker --example load_peers --example store_mem \
    --example empty_actix
fi

mkdir -p "$OUT"
: >"$OUT/raw.txt"
work=$(mktemp -d -t kpbt-bench.XXXXXX)
chmod 755 "$work" # opentracker chroots here and runs as nobody
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

pin() { # pin CPUS CMD...: run CMD under taskset when CPUS is set
  local cpus=$1
  shift
  if [[ -n $cpus ]]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # wait_http PORT: until the tracker answers on loopback (bounded)
  for _ in $(seq 1 200); do
    if curl -s -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "tracker on port $1 never came up" >&2
  return 1
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# The 10,000 benchmark hashes: percent-encoded for wrk, hex for the allowlists.
python3 - "$work" <<'EOF'
import os, sys, random
random.seed(20261125)
d = sys.argv[1]
with open(os.path.join(d, "hashes.enc"), "w") as enc, open(os.path.join(d, "whitelist.txt"), "w") as hx:
    for _ in range(10000):
        h = bytes(random.getrandbits(8) for _ in range(20))
        enc.write("".join("%%%02X" % b for b in h) + "\n")
        hx.write(h.hex() + "\n")
EOF
chmod 644 "$work"/*.txt
export KPBT_BENCH_HASHES=$work/hashes.enc

redis_pid=
redis_port=
start_redis() { # a fresh, empty redis-server without persistence -> redis_pid, redis_port
  redis_port=$(free_port)
  local pre=()
  [[ -n $REDIS_CPUS ]] && pre=(taskset -c "$REDIS_CPUS")
  "${pre[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 200); do
    [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.05
  done
  echo "redis-server never answered PING" >&2
  return 1
}
stop_redis() {
  [[ -n $redis_pid ]] || return 0
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }        # stime alone (syscalls, loopback TCP)
redis_mem() { redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }

tracker_pid=
start_tracker() { # start_tracker NAME ALLOWLIST -> sets port, tracker_pid
  local name=$1 allow=$2
  port=$(free_port)
  # taskset execs the tracker, so $! is the tracker's own pid (for kill and RSS).
  local pre=()
  [[ -n $TRACKER_CPUS ]] && pre=(taskset -c "$TRACKER_CPUS")
  case $name in
    kpbt) "${pre[@]}" "$TARGET/kpbt-tracker" --listen "127.0.0.1:$port" --allowlist "$allow" --log warn & ;;
    kpbt-w1)
      "${pre[@]}" "$TARGET/kpbt-tracker" --listen "127.0.0.1:$port" --allowlist "$allow" --log warn \
        --workers 1 &
      ;;
    kpbt-redis)
      start_redis
      "${pre[@]}" "$TARGET/kpbt-tracker" --listen "127.0.0.1:$port" --allowlist "$allow" --log warn \
        --store "redis://127.0.0.1:$redis_port" &
      ;;
    actix-empty) "${pre[@]}" "$TARGET/examples/empty_actix" "127.0.0.1:$port" & ;;
    torrust)
      # Public mode (no allowlist: that only makes its work lighter), no statistics.
      TORRUST_TRACKER_CONFIG_TOML=$(printf '%s\n' '[metadata]' 'app = "torrust-tracker"' \
        'purpose = "configuration"' 'schema_version = "2.0.0"' '[logging]' 'threshold = "error"' \
        '[core]' 'listed = false' 'private = false' 'tracker_usage_statistics = false' \
        '[core.database]' 'driver = "sqlite3"' "path = \"$work/torrust.db\"" \
        '[[http_trackers]]' "bind_address = \"127.0.0.1:$port\"") \
        "${pre[@]}" "$TORRUST" >"$work/torrust.log" 2>&1 &
      ;;
    opentracker)
      # As root, opentracker chroots into -d and reads the whitelist relative to it.
      cp "$allow" "$work/ot-whitelist.txt"
      chmod 644 "$work/ot-whitelist.txt"
      "${pre[@]}" opentracker -i 127.0.0.1 -p "$port" -P "$port" -A 127.0.0.1 \
        -w ot-whitelist.txt -d "$work" >/dev/null 2>&1 &
      ;;
    *) echo "unknown tracker $name" >&2 && exit 1 ;;
  esac
  tracker_pid=$!
  pids+=("$tracker_pid")
  wait_http "$port"
}

stop_tracker() { # SIGTERM, then SIGKILL after 3 s (torrust drains connections for 90 s)
  kill "$tracker_pid" 2>/dev/null || true
  for _ in $(seq 1 30); do
    kill -0 "$tracker_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$tracker_pid" 2>/dev/null || true
  wait "$tracker_pid" 2>/dev/null || true
  stop_redis
}

sanity_check() { # a real announce must succeed (not a failure reason)
  [[ $1 == actix-empty ]] && return 0
  local h
  h=$(head -1 "$KPBT_BENCH_HASHES")
  local body
  body=$(curl -s "http://127.0.0.1:$port/announce?info_hash=$h&peer_id=-KB0001-000000000000&port=4242&left=1&compact=1" | tr -d '\0')
  if [[ $body == *failure* ]]; then
    echo "sanity announce failed: $body" >&2
    exit 1
  fi
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A results
if [[ -z ${SKIP_WRK:-} ]]; then
  for mode in close keepalive; do
    hdr=()
    [[ $mode == close ]] && hdr=(-H "Connection: close")
    for run in $(seq 1 "$RUNS"); do
      for name in "${TRACKERS[@]}"; do
        start_tracker "$name" "$work/whitelist.txt"
        sanity_check "$name"
        export KPBT_BENCH_SEED=$run
        t0=$(cpu_ticks "$tracker_pid")
        if [[ -n $redis_pid ]]; then
          r0=$(cpu_ticks "$redis_pid")
          rs0=$(sys_ticks "$redis_pid")
          redis-cli -p "$redis_port" config resetstat >/dev/null
        fi
        line=$(pin "$WRK_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s "${hdr[@]}" \
          -s scripts/bench-tracker.lua "http://127.0.0.1:$port/" | grep '^RESULT')
        t1=$(cpu_ticks "$tracker_pid")
        if [[ -n $redis_pid ]]; then
          # CPU microseconds per request of each process (clock ticks are 1/CLK_TCK s).
          r1=$(cpu_ticks "$redis_pid")
          rs1=$(sys_ticks "$redis_pid")
          reqs=$(sed -E 's/.* requests=([0-9]+).*/\1/' <<<"$line")
          hz=$(getconf CLK_TCK)
          # Of redis-server's, the part in the kernel (its socket reads and writes, and
          # the loopback delivery they do): what a cheaper script cannot take off.
          cpu=$(awk -v t=$((t1 - t0)) -v r=$((r1 - r0)) -v rs=$((rs1 - rs0)) -v n="$reqs" -v hz="$hz" \
            'BEGIN {printf "tracker_cpu_us=%.1f redis_cpu_us=%.1f redis_sys_us=%.1f", t*1e6/hz/n, r*1e6/hz/n, rs*1e6/hz/n}')
          # Redis's own view, per announce: time inside EVALSHA (wall clock, so it grows
          # when redis-server waits for its core) and commands (the EVALSHAs and the
          # calls their script makes); and announces per EVALSHA (the store batches
          # the announces that wait at the same moment).
          cmds=$(redis-cli -p "$redis_port" info stats | awk -F: '/^total_commands_processed:/ {print $2+0}')
          eval_stats=$(redis-cli -p "$redis_port" info commandstats | awk -F'[:=,]' -v c="$cmds" -v n="$reqs" \
            '/^cmdstat_evalsha:/ {printf "evalsha_us=%.2f cmds_per_announce=%.1f per_evalsha=%.1f", $5 / n, c / n, n / $3}')
          line="$line $cpu $eval_stats"
          for f in tracker_cpu_us redis_cpu_us redis_sys_us evalsha_us cmds_per_announce per_evalsha; do
            results[$name.$mode.$f]+="$(sed -E "s/.*$f=([0-9.]+).*/\1/" <<<"$line") "
          done
        fi
        # The machine may be shared: the load with every run, to judge the figures by.
        load=$(cut -d' ' -f1 /proc/loadavg)
        results[load]+="$load "
        stop_tracker
        echo "$name $mode run$run $line load=$load" | tee -a "$OUT/raw.txt"
        rps=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
        p99=$(sed -E 's/.* p99_us=([0-9]+).*/\1/' <<<"$line")
        results[$name.$mode.rps]+="$rps "
        results[$name.$mode.p99]+="$p99 "
        results[$name.$mode.p50]+="$(sed -E 's/.* p50_us=([0-9]+).*/\1/' <<<"$line") "
      done
    done
  done
fi

summary=$OUT/summary.md
{
  echo "kpbt-tracker vs opentracker, $(date -u +%F), $(nproc) cores, wrk -t1 -c$CONNS -d${DURATION}s, median of $RUNS runs"
  echo "pinning: tracker=${TRACKER_CPUS:-none} wrk=${WRK_CPUS:-none}"
  if [[ -n ${results[load]-} ]]; then
    tr ' ' '\n' <<<"${results[load]}" | grep . | sort -n |
      awk '{a[NR]=$1} END {printf "load average (1 min) after the runs: %s to %s\n", a[1], a[NR]}'
  fi
  echo
  if [[ -z ${SKIP_WRK:-} ]]; then
    echo "| mode | server | req/s | p50 ms | p99 ms | / opentracker | of actix-empty |"
    echo "|---|---|---|---|---|---|---|"
    med() { { tr ' ' '\n' <<<"${results[$1]-}" | grep . || true; } | median; }
    for mode in close keepalive; do
      ot=$(med "opentracker.$mode.rps")
      ae=$(med "actix-empty.$mode.rps")
      for name in "${TRACKERS[@]}"; do
        awk -v m="$mode" -v n="$name" -v r="$(med "$name.$mode.rps")" -v p50="$(med "$name.$mode.p50")" \
          -v p99="$(med "$name.$mode.p99")" -v ot="${ot:-0}" -v ae="${ae:-0}" \
          'BEGIN {
             vs_ot = (ot > 0 ? sprintf("%.2fx", r / ot) : "-")
             vs_ae = (ae > 0 ? sprintf("%.0f %%", 100 * r / ae) : "-")
             printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s |\n", m, n, r, p50 / 1000, p99 / 1000, vs_ot, vs_ae
           }'
      done
    done
    if [[ " ${TRACKERS[*]} " == *" kpbt-redis "* && " ${TRACKERS[*]} " == *" kpbt "* ]]; then
      echo
      for mode in close keepalive; do
        awk -v m="$mode" -v r="$(med "kpbt-redis.$mode.rps")" -v k="$(med "kpbt.$mode.rps")" \
          -v tc="$(med "kpbt-redis.$mode.tracker_cpu_us")" -v rc="$(med "kpbt-redis.$mode.redis_cpu_us")" \
          -v rs="$(med "kpbt-redis.$mode.redis_sys_us")" \
          -v ev="$(med "kpbt-redis.$mode.evalsha_us")" -v cm="$(med "kpbt-redis.$mode.cmds_per_announce")" \
          -v pe="$(med "kpbt-redis.$mode.per_evalsha")" \
          'BEGIN {printf "kpbt-redis %s: %.2fx the memory store; CPU per announce: tracker %.1f us, redis-server %.1f us (%.1f in the kernel); inside EVALSHA %.2f us, %.1f Redis commands; %.1f announces per EVALSHA\n", m, r / k, tc, rc, rs, ev, cm, pe}'
      done
    fi
  fi
} | tee "$summary"

if [[ -z ${SKIP_MEM:-} ]]; then
  "$TARGET/examples/load_peers" --hashes "$MEM_TORRENTS" >"$work/mem-whitelist.txt"
  chmod 644 "$work/mem-whitelist.txt"
  for name in kpbt opentracker kpbt-redis; do
    [[ $name != kpbt-redis || " ${TRACKERS[*]} " == *" kpbt-redis "* ]] || continue
    start_tracker "$name" "$work/mem-whitelist.txt"
    before=$(rss_kb "$tracker_pid")
    [[ -n $redis_pid ]] && rbefore=$(redis_mem)
    load=$("$TARGET/examples/load_peers" "127.0.0.1:$port" "$PEERS" "$MEM_TORRENTS" 2)
    after=$(rss_kb "$tracker_pid")
    if [[ -n $redis_pid ]]; then
      rafter=$(redis_mem)
      awk -v b="$rbefore" -v a="$rafter" -v p="$PEERS" -v t="$MEM_TORRENTS" \
        -v s="$(($(redis-cli -p "$redis_port" hget kpbt:st s) + $(redis-cli -p "$redis_port" hget kpbt:st l)))" \
        'BEGIN {printf "memory redis-server: %d peers over %d torrents: used_memory %.1f -> %.1f MiB, %.1f bytes/peer (the store counts %s peers)\n", p, t, b/1048576, a/1048576, (a-b)/p, s}' |
        tee -a "$summary"
    fi
    stop_tracker
    awk -v n="$name" -v b="$before" -v a="$after" -v p="$PEERS" -v t="$MEM_TORRENTS" -v l="$load" \
      'BEGIN {printf "memory %s: %d peers over %d torrents via HTTP: RSS %.1f -> %.1f MiB, %.1f bytes/peer (%s)\n", n, p, t, b/1024, a/1024, (a-b)*1024/p, l}' |
      tee -a "$summary"
  done
  "$TARGET/examples/store_mem" "$PEERS" "$MEM_TORRENTS" | tee -a "$summary"
fi
echo "summary written to $summary"
