#!/usr/bin/env bash
# Benchmarks magnet-link downloads: kpbt-client vs rqbit vs libtorrent (as the
# downloader), all fetching the same torrent from one libtorrent seeder on loopback,
# knowing only `magnet:?xt=urn:btih:HASH&tr=TRACKER`. Not a test.
#
#   scripts/bench-magnet.sh                          # 256 MiB, 5 runs, both trackers
#   SIZE_MB=64 RUNS=3 TRACKERS=kpbt scripts/bench-magnet.sh
#
# Per tracker in TRACKERS (`kpbt`: kpbt-tracker, release build; `opentracker`: Debian's,
# whitelisting the torrent) a libtorrent seeder (testkit/scripts/lt_peer.py, pinned to
# core 1) announces the torrent; then each downloader (pinned to core 0) runs RUNS times,
# interleaved (kpbt, rqbit, libtorrent, kpbt, ...), each into an empty directory, and the
# file is byte-compared. For each run the script stamps every output line as it arrives:
#   metadata  launch -> the client says it has the verified info dictionary
#             (kpbt: "metadata received and verified"; rqbit: "added torrent", logged
#             once the magnet is resolved; libtorrent: its metadata_received_alert)
#   complete  launch -> the client says every piece is verified (kpbt "download
#             complete", rqbit "torrent finished downloading", libtorrent
#             torrent_finished_alert)
#   exit      launch -> the process exited (kpbt also fsyncs the data and sends its
#             `stopped` announce; libtorrent's Python exits without waiting for its
#             session to say goodbye to the tracker)
# and prints medians, ratios against kpbt, and the issue's target (kpbt's complete time
# at most 0.8x the faster other client's).
#
# Env: SIZE_MB (256), RUNS (5), PIECE_LOG2 (18: 256 KiB pieces), TRACKERS ("kpbt
# opentracker"), RQBIT (default /var/tmp/rqbit/bin/rqbit, else rqbit on PATH; without it
# rqbit is left out, loudly), BENCH_DIR (bench-out/magnet), CARGO_TARGET_DIR.
# Needs: python3-libtorrent, opentracker, mktorrent, taskset, curl (scripts/install-deps.sh).
# DHT, LSD, UPnP/NAT-PMP, uTP, PEX and encryption are off for every peer.
set -euo pipefail

SIZE_MB=${SIZE_MB:-256}
RUNS=${RUNS:-5}
PIECE_LOG2=${PIECE_LOG2:-18}
read -r -a trackers <<<"${TRACKERS:-kpbt opentracker}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/bench-out/magnet}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
LT_PEER=$ROOT/testkit/scripts/lt_peer.py
PYTHON=/usr/bin/python3
RQBIT=${RQBIT:-/var/tmp/rqbit/bin/rqbit}
[[ -x $RQBIT ]] || RQBIT=$(command -v rqbit || true)
export RQBIT_LSD_DISABLE=true NO_COLOR=1
rqbit_flags=(--disable-dht --disable-dht-persistence --disable-upnp-port-forward)
clients=(kpbt libtorrent)
if [[ -n $RQBIT && -x $RQBIT ]]; then clients=(kpbt rqbit libtorrent); else
  printf '[bench-magnet] WARNING: rqbit not found (set RQBIT=...); comparing with libtorrent only\n' >&2
fi

LOG_TAG=bench-magnet
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

"$PYTHON" -c 'import libtorrent' 2>/dev/null ||
  die "$PYTHON cannot import libtorrent: apt-get install python3-libtorrent (scripts/install-deps.sh)"
for b in opentracker mktorrent taskset curl; do
  command -v "$b" >/dev/null 2>&1 || die "$b not found: run scripts/install-deps.sh"
done
(($(nproc) >= 2)) || die "needs two cores (downloader on core 0, seeder on core 1)"

log "building kpbt-tracker and kpbt-client (release)"
(cd "$ROOT" && cargo build --release -q -p kpbt-tracker -p kpbt-client)
KPBT=$TARGET/kpbt-client

mkdir -p "$WORK/seed"
payload=$WORK/seed/payload.bin
if [[ ! -f $payload || $(stat -c %s "$payload") != $((SIZE_MB * 1024 * 1024)) ]]; then
  log "writing ${SIZE_MB} MiB payload"
  head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$payload"
fi

# Reads lines on stdin; writes each prefixed with the time it arrived (epoch seconds).
stamp() {
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

# since T0 FILE PATTERN: seconds from T0 to the first stamped line matching PATTERN.
since() {
  awk -v t0="$1" -v pat="$3" 'index($0, pat) { printf "%.2f", $1 - t0; found = 1; exit }
    END { if (!found) print "-" }' "$2"
}

# run_one CLIENT MAGNET: sets R_META R_DONE R_EXIT (seconds after launch; "-" if the
# client never printed the line).
run_one() {
  local name=$1 link=$2 out=$WORK/out-$1 log=$WORK/run-$1.log t0 t1 meta done_pat rc=0
  rm -rf "$out" && mkdir -p "$out"
  t0=$EPOCHREALTIME
  case $name in
    kpbt)
      taskset -c 0 "$KPBT" -v download "$link" -o "$out" --port 0 2>&1 | stamp >"$log" || rc=$?
      meta="metadata received and verified" done_pat="download complete"
      ;;
    rqbit)
      taskset -c 0 "$RQBIT" "${rqbit_flags[@]}" --listen-port "$(free_port)" -v info \
        download --disable-http-api -e -o "$out" "$link" 2>&1 | stamp >"$log" || rc=$?
      meta="added torrent" done_pat="torrent finished downloading"
      ;;
    libtorrent)
      taskset -c 0 "$PYTHON" -u "$LT_PEER" download --magnet "$link" --dir "$out" \
        --port "$(free_port)" 2>&1 | stamp >"$log" || rc=$?
      meta="METADATA" done_pat="DONE"
      ;;
  esac
  t1=$EPOCHREALTIME
  ((rc == 0)) || die "$name exited with $rc (log: $log)"
  cmp -s "$out/payload.bin" "$payload" || die "$name produced a wrong file (log: $log)"
  rm -rf "$out"
  R_META=$(since "$t0" "$log" "$meta")
  R_DONE=$(since "$t0" "$log" "$done_pat")
  R_EXIT=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

median() { grep -v '^-$' | sort -n | awk '{a[NR]=$1} END { if (NR) print a[int((NR+1)/2)]; else print "-" }'; }

# start_tracker KIND PORT: starts it in the background (pid registered for cleanup).
start_tracker() {
  local kind=$1 port=$2 tdir=$WORK/tracker-$1
  rm -rf "$tdir" && mkdir -p "$tdir" && chmod 755 "$tdir"
  case $kind in
    kpbt)
      "$TARGET/kpbt-tracker" --listen "127.0.0.1:$port" --log warn >"$tdir/log" 2>&1 &
      ;;
    opentracker)
      # Debian's build is whitelist-only; as root it chroots into -d and drops to nobody.
      echo "$ih" >"$tdir/whitelist.txt" && chmod 644 "$tdir/whitelist.txt"
      (cd "$tdir" && exec opentracker -i 127.0.0.1 -p "$port" -P "$port" -A 127.0.0.1 \
        -w whitelist.txt -d "$tdir" >"$tdir/log" 2>&1) &
      ;;
    *) die "unknown tracker $kind (TRACKERS: kpbt, opentracker)" ;;
  esac
  pids+=($!)
  wait_tcp "$port"
}

# The info hash does not depend on the announce URL: make it once.
mktorrent -a http://127.0.0.1:1/announce -l "$PIECE_LOG2" -d -o "$WORK/probe.torrent" "$payload" >/dev/null
ih=$("$KPBT" info "$WORK/probe.torrent" | awk '/^info hash:/ {print $3}')
rm -f "$WORK/probe.torrent"

report=$WORK/report.md
: >"$report"
for tracker in "${trackers[@]}"; do
  tport=$(free_port)
  announce="http://127.0.0.1:$tport/announce"
  start_tracker "$tracker" "$tport"
  torrent=$WORK/bench-$tracker.torrent
  rm -f "$torrent"
  mktorrent -a "$announce" -l "$PIECE_LOG2" -d -o "$torrent" "$payload" >/dev/null
  sport=$(free_port)
  log "[$tracker] libtorrent seeder on port $sport (core 1) checks the payload"
  taskset -c 1 "$PYTHON" -u "$LT_PEER" seed --torrent "$torrent" --dir "$WORK/seed" \
    --port "$sport" >"$WORK/seeder-$tracker.log" 2>&1 &
  seeder=$!
  pids+=("$seeder")
  for _ in $(seq 1 1200); do
    grep -q '^SEEDING' "$WORK/seeder-$tracker.log" && break
    kill -0 "$seeder" 2>/dev/null || die "seeder exited: $(tail -5 "$WORK/seeder-$tracker.log")"
    sleep 0.1
  done
  grep -q '^SEEDING' "$WORK/seeder-$tracker.log" || die "seeder never finished checking"
  # Wait until the tracker counts the seeder (scrape: "8:completei1e").
  ih_url=
  for ((k = 0; k < 40; k += 2)); do ih_url+="%${ih:k:2}"; done
  for _ in $(seq 1 300); do
    curl -s "http://127.0.0.1:$tport/scrape?info_hash=$ih_url" | grep -aq '8:completei[1-9]' && break
    sleep 0.1
  done
  curl -s "http://127.0.0.1:$tport/scrape?info_hash=$ih_url" | grep -aq '8:completei[1-9]' ||
    die "[$tracker] the seeder never showed up in the tracker's scrape"
  link="magnet:?xt=urn:btih:$ih&tr=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$announce")"
  log "[$tracker] $link"

  declare -A metas=() dones=() exits=() med_done=()
  for i in $(seq 1 "$RUNS"); do
    for c in "${clients[@]}"; do
      run_one "$c" "$link"
      log "[$tracker] run $i $c: metadata ${R_META}s, complete ${R_DONE}s, exit ${R_EXIT}s"
      metas[$c]+="$R_META " dones[$c]+="$R_DONE " exits[$c]+="$R_EXIT "
    done
  done
  kill "$seeder" 2>/dev/null || true

  {
    printf '\n**Through %s** (%s MiB, piece 2^%s, libtorrent seeder, %s runs, median):\n\n' \
      "$tracker" "$SIZE_MB" "$PIECE_LOG2" "$RUNS"
    printf '| downloader | metadata (s) | complete (s) | exit (s) | throughput to complete (MB/s) | complete, runs (s) |\n'
    printf '|---|---|---|---|---|---|\n'
    for c in "${clients[@]}"; do
      m=$(tr ' ' '\n' <<<"${metas[$c]}" | grep . | median)
      d=$(tr ' ' '\n' <<<"${dones[$c]}" | grep . | median)
      e=$(tr ' ' '\n' <<<"${exits[$c]}" | grep . | median)
      med_done[$c]=$d
      mbs=$(awk -v s="$SIZE_MB" -v t="$d" 'BEGIN { if (t > 0) printf "%.0f", s*1048576/1e6/t; else print "-" }')
      printf '| %s | %s | %s | %s | %s | %s|\n' "$c" "$m" "$d" "$e" "$mbs" "${dones[$c]}"
    done
    printf '\n'
    best=
    for c in "${clients[@]}"; do
      [[ $c == kpbt ]] && continue
      printf -- '- kpbt / %s (complete): %s\n' "$c" \
        "$(awk -v k="${med_done[kpbt]}" -v o="${med_done[$c]}" 'BEGIN { printf "%.2f", k/o }')"
      if [[ -z $best ]] || awk -v a="${med_done[$c]}" -v b="${med_done[$best]}" 'BEGIN { exit !(a < b) }'; then
        best=$c
      fi
    done
    ratio=$(awk -v k="${med_done[kpbt]}" -v o="${med_done[$best]}" 'BEGIN { printf "%.2f", k/o }')
    verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.8) ? "met" : "NOT met" }')
    printf -- '- target kpbt <= 0.8x the faster (%s): %sx, %s\n' "$best" "$ratio" "$verdict"
    printf -- '- load average after the runs: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee -a "$report"
  unset metas dones exits med_done
done
log "report: $report (per-run logs: $WORK/run-*.log, seeder: $WORK/seeder-*.log)"
