#!/usr/bin/env bash
# Benchmarks downloads from one HTTP origin (nginx on loopback) with no peers at all:
# kpbt-client fetching a torrent's pieces from its web seed (BEP 19), aria2c doing the
# same with the same torrent, and aria2c / curl fetching the file over plain HTTP.
#
#   scripts/bench-origin.sh                 # 256 MiB, 3 runs each
#   SIZE_MB=1024 RUNS=5 scripts/bench-origin.sh
#   LIMIT=20m scripts/bench-origin.sh       # nginx limit_rate per connection
#   RUNS=0 FLEET=8 scripts/bench-origin.sh  # only the fleet: 8 leechers, origin capped
#                                           # at 20 MiB/s in all (FLEET_CAP)
#
# Runs are interleaved, each into an empty directory; the payload stays in the page
# cache. Reports median wall time, throughput and peak RSS (/usr/bin/time -v), and the
# bytes nginx sent per run (its access log). kpbt and aria2 both verify every piece
# (SHA-1); curl and aria2 in HTTP mode verify nothing. With FLEET=N (0 = skip, the
# default), N kpbt leechers (full mesh by --peer, no tracker, no seeder) then download
# the torrent together from the origin alone, through kpbt-throttle (testkit), a proxy
# that caps the origin's total upload at FLEET_CAP (default 20m = 20 MiB/s, like one
# server's link; nginx's limit_rate would cap each connection instead): the time until
# all are complete against size/U, and how many copies of the payload the origin sent.
# Then (FLEET_HTTP=1, the default) the same N download the file over plain HTTP with
# curl at once through the same cap: N copies, N x size/U. Needs nginx, aria2c, curl,
# /usr/bin/time (scripts/install-deps.sh). Release build of kpbt-client.
set -euo pipefail

SIZE_MB=${SIZE_MB:-256}
RUNS=${RUNS:-3}
LIMIT=${LIMIT:-0}
FLEET=${FLEET:-0}
FLEET_CAP=${FLEET_CAP:-20m}
FLEET_HTTP=${FLEET_HTTP:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/bench-out/origin}
KPBT=${CARGO_TARGET_DIR:-$ROOT/target}/release/kpbt-client
THROTTLE=${CARGO_TARGET_DIR:-$ROOT/target}/release/kpbt-throttle
clients=(kpbt aria2-bt aria2-http curl)
((RUNS > 0)) || clients=()

LOG_TAG=bench-origin
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for b in "$NGINX" aria2c curl /usr/bin/time; do
  command -v "$b" >/dev/null 2>&1 || die "$b not found: run scripts/install-deps.sh"
done

log "building kpbt-client (release)"
(cd "$ROOT" && cargo build --release -p kpbt-client -q && cargo build --release -p kpbt-testkit --bin kpbt-throttle -q)

mkdir -p "$WORK/www" "$WORK/nginx/tmp"
payload=$WORK/www/payload.bin
if [[ ! -f $payload || $(stat -c %s "$payload") != $((SIZE_MB * 1024 * 1024)) ]]; then
  log "writing ${SIZE_MB} MiB payload"
  head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$payload"
fi

# nginx in the foreground with everything in $WORK/nginx; `start_nginx RATE`.
port=$(free_port)
n=$WORK/nginx
nginx_pid=
start_nginx() {
  [[ -n $nginx_pid ]] && { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
  local user=""
  [[ $(id -u) == 0 ]] && user="user root;"
  cat >"$n/nginx.conf" <<EOF
$user
worker_processes 1;
pid $n/nginx.pid;
error_log $n/error.log;
events { worker_connections 512; }
http {
    access_log $n/access.log;
    client_body_temp_path $n/tmp/body; proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi; uwsgi_temp_path $n/tmp/uwsgi; scgi_temp_path $n/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    server { listen 127.0.0.1:$port; root $WORK/www; location / { limit_rate $1; } }
}
EOF
  "$NGINX" -p "$n" -e "$n/error.log" -c "$n/nginx.conf" -g 'daemon off;' &
  nginx_pid=$!
  pids+=("$nginx_pid")
  wait_tcp "$port"
}
# Body bytes nginx sent since the access log was last emptied.
sent() { awk -F'"' '{split($3, a, " "); s += a[2]} END {printf "%d\n", s}' "$n/access.log"; }

start_nginx "$LIMIT"
url="http://127.0.0.1:$port/"
rm -f "$WORK/bench.torrent"
"$KPBT" create -q --web-seed "$url" -o "$WORK/bench.torrent" "$payload"

# run NAME -> prints "seconds max_rss_kib bytes_served"
run_one() {
  local name=$1 out=$WORK/out-$1 tv=$WORK/time-$1.txt
  rm -rf "$out" && mkdir -p "$out"
  : >"$n/access.log"
  case $name in
    kpbt) /usr/bin/time -v -o "$tv" "$KPBT" download "$WORK/bench.torrent" -o "$out" --port 0 --no-trackers --quiet ;;
    aria2-bt)
      /usr/bin/time -v -o "$tv" aria2c --no-conf=true --enable-dht=false --enable-dht6=false \
        --bt-enable-lpd=false --enable-peer-exchange=false --disable-ipv6=true \
        --seed-time=0 --file-allocation=none --summary-interval=0 --console-log-level=warn \
        --listen-port="$(free_port)" --dir="$out" "$WORK/bench.torrent" >/dev/null
      ;;
    aria2-http)
      /usr/bin/time -v -o "$tv" aria2c --no-conf=true -x4 -s4 --file-allocation=none \
        --summary-interval=0 --console-log-level=warn --dir="$out" "${url}payload.bin" >/dev/null
      ;;
    curl) /usr/bin/time -v -o "$tv" curl -sf -o "$out/payload.bin" "${url}payload.bin" ;;
  esac
  cmp -s "$out/payload.bin" "$payload" || die "$name produced a wrong file"
  rm -rf "$out"
  echo "$(time_v_wall_rss "$tv") $(sent)"
}


declare -A times rsses served
for i in $(seq 1 "$RUNS"); do
  for c in "${clients[@]}"; do
    read -r t r s < <(run_one "$c")
    log "run $i $c: ${t}s, peak RSS ${r} KiB, nginx sent $s bytes"
    times[$c]+="$t "
    rsses[$c]+="$r "
    served[$c]=$s
  done
done

if ((RUNS > 0)); then
  printf '\n%s MiB from nginx on loopback (limit_rate %s), no peers, %s runs (median)\n\n' "$SIZE_MB" "$LIMIT" "$RUNS"
  printf '| downloader | median time (s) | throughput (MB/s) | peak RSS (MiB) | bytes from nginx | runs (s) |\n'
  printf '|---|---|---|---|---|---|\n'
  for c in "${clients[@]}"; do
    t=$(tr ' ' '\n' <<<"${times[$c]}" | grep . | median)
    r=$(tr ' ' '\n' <<<"${rsses[$c]}" | grep . | sort -n | tail -1)
    mbs=$(awk -v s="$SIZE_MB" -v t="$t" 'BEGIN { printf "%.0f", s*1048576/1e6/t }')
    printf '| %s | %s | %s | %.1f | %s | %s|\n' "$c" "$t" "$mbs" "$(awk -v r="$r" 'BEGIN{print r/1024}')" "${served[$c]}" "${times[$c]}"
  done
  printf '\nload average during the run: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
fi

((FLEET > 0)) || exit 0
start_nginx 0
# The origin's one link: every byte nginx sends goes through one FLEET_CAP bucket.
"$THROTTLE" --upstream "127.0.0.1:$port" --rate "$FLEET_CAP" >"$WORK/throttle.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$WORK/throttle.out" && break; sleep 0.05; done
capped=$(awk '/listening on/ {print $3}' "$WORK/throttle.out")
[[ -n $capped ]] || die "kpbt-throttle did not start (see $WORK/throttle.out)"
rm -f "$WORK/fleet.torrent"
"$KPBT" create -q --web-seed "http://$capped/" -o "$WORK/fleet.torrent" "$payload"
: >"$n/access.log"
ports=()
for i in $(seq 1 "$FLEET"); do ports+=("$(free_port)"); done
t0=$(date +%s.%N)
lpids=()
for i in $(seq 0 $((FLEET - 1))); do
  args=()
  for j in $(seq 0 $((FLEET - 1))); do
    # Every leecher knows the others (as from a tracker), so each gives its peers the
    # start-up grace before using the origin.
    [[ $j -ne $i ]] && args+=(--peer "127.0.0.1:${ports[$j]}")
  done
  rm -rf "$WORK/fleet$i"
  # --seed: a leecher that is done keeps serving the others until all are done.
  "$KPBT" download "$WORK/fleet.torrent" -o "$WORK/fleet$i" --port "${ports[$i]}" --no-trackers \
    --seed "${args[@]}" >"$WORK/fleet$i.log" 2>&1 &
  lpids+=($!)
  pids+=($!)
done
deadline=$(($(date +%s) + 600))
for i in $(seq 0 $((FLEET - 1))); do
  until grep -q "complete in" "$WORK/fleet$i.log"; do
    (($(date +%s) < deadline)) || die "leecher $i did not complete in 600 s (see $WORK/fleet$i.log)"
    sleep 0.1
  done
done
t1=$(date +%s.%N)
for p in "${lpids[@]}"; do kill -INT "$p"; done
for p in "${lpids[@]}"; do wait "$p" || true; done
for i in $(seq 0 $((FLEET - 1))); do
  cmp -s "$WORK/fleet$i/payload.bin" "$payload" || die "leecher $i data differs"
done
bt_sent=$(sent)
grep -h "complete in" "$WORK"/fleet*.log | sed 's/^/  /'
rm -rf "$WORK"/fleet*

h0=$t0 h1=$t0 http_sent=0
if [[ $FLEET_HTTP == 1 ]]; then
  log "the same $FLEET over plain HTTP through the same cap (about $((FLEET * SIZE_MB)) MiB at $FLEET_CAP)"
  : >"$n/access.log"
  h0=$(date +%s.%N)
  cpids=()
  for i in $(seq 0 $((FLEET - 1))); do
    mkdir -p "$WORK/http$i"
    curl -sf -o "$WORK/http$i/payload.bin" "http://$capped/payload.bin" &
    cpids+=($!)
  done
  for p in "${cpids[@]}"; do wait "$p" || die "a plain HTTP download failed"; done
  h1=$(date +%s.%N)
  for i in $(seq 0 $((FLEET - 1))); do
    cmp -s "$WORK/http$i/payload.bin" "$payload" || die "plain HTTP download $i differs"
  done
  http_sent=$(sent)
  rm -rf "$WORK"/http*
fi
python3 - "$t0" "$t1" "$SIZE_MB" "$FLEET" "$bt_sent" "$FLEET_CAP" "$h0" "$h1" "$http_sent" <<'PY'
import sys
t0, t1, size_mb, n, sent, cap, h0, h1, hsent = sys.argv[1:]
size = int(size_mb) << 20
n = int(n)
mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
u = float(cap[:-1]) * mult[cap[-1].lower()] if cap[-1].lower() in mult else float(cap)
ideal = size / u
bt = float(t1) - float(t0)
print(f"\nfleet: {n} leechers x {size_mb} MiB from one origin capped at {cap}/s in all (size/U = {ideal:.1f} s)\n")
print("| downloaders | all complete (s) | / (size/U) | origin sent (MiB) | copies of the payload |")
print("|---|---|---|---|---|")
print(f"| {n} kpbt (origin + each other) | {bt:.1f} | {bt / ideal:.2f}x | {int(sent) / 2**20:.0f} | {int(sent) / size:.2f} |")
if int(hsent):
    ht = float(h1) - float(h0)
    print(f"| {n} curl (plain HTTP) | {ht:.1f} | {ht / ideal:.2f}x | {int(hsent) / 2**20:.0f} | {int(hsent) / size:.2f} |")
PY
printf 'load average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
