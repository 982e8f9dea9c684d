#!/usr/bin/env bash
# Benchmarks kpbt-client downloads against rqbit and aria2c from one loopback seeder.
#
#   scripts/bench-client.sh                # 1 GiB, kpbt seeder, 3 runs each
#   SEEDER=rqbit scripts/bench-client.sh   # rqbit (or aria2) as the seeder instead
#   SIZE_MB=256 RUNS=1 scripts/bench-client.sh
#
# Both downloaders find the seeder through the same opentracker (aria2c cannot be
# given a peer directly), so both pay the same announce round trip. Each run starts
# from an empty output directory; the seeder keeps running (its data stays in the page
# cache). Reports the median wall time of RUNS runs, throughput, the ratio, and the
# peak RSS (/usr/bin/time -v). Needs: aria2c, opentracker, mktorrent, /usr/bin/time
# (scripts/install-deps.sh), rqbit (`cargo install rqbit --no-default-features
# --features default-tls`; RQBIT=path overrides; without it rqbit is left out, loudly).
# Release build of kpbt-client. DHT, LSD, UPnP and PEX are off for every peer.
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
SEEDER=${SEEDER:-kpbt}
PIECE_LOG2=${PIECE_LOG2:-20}     # 1 MiB pieces, typical for a 1 GiB torrent
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/bench-out/client}
KPBT=${CARGO_TARGET_DIR:-$ROOT/target}/release/kpbt-client
RQBIT=${RQBIT:-$(command -v rqbit || echo /opt/rqbit/bin/rqbit)}
export RQBIT_LSD_DISABLE=true
rqbit_flags=(--disable-dht --disable-dht-persistence --disable-upnp-port-forward)
clients=(kpbt aria2)
if [[ -x $RQBIT ]]; then clients=(kpbt rqbit aria2); else
  printf '[bench-client] WARNING: rqbit not found (set RQBIT=...); comparing with aria2 only\n' >&2; fi

LOG_TAG=bench-client
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

for b in aria2c opentracker mktorrent /usr/bin/time; do
  command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b || -x /usr/bin/$b ]] ||
    die "$b not found: run scripts/install-deps.sh"
done

log "building kpbt-client (release)"
(cd "$ROOT" && cargo build --release -p kpbt-client -q)


mkdir -p "$WORK/seed"
payload=$WORK/seed/payload.bin
if [[ ! -f $payload || $(stat -c %s "$payload") != $((SIZE_MB * 1024 * 1024)) ]]; then
  log "writing ${SIZE_MB} MiB payload"
  head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$payload"
fi

# opentracker (Debian build: whitelist only; as root it chroots into -d and drops to nobody).
tdir=$WORK/tracker
rm -rf "$tdir" && mkdir -p "$tdir" && chmod 755 "$tdir"
tport=$(free_port)
announce="http://127.0.0.1:$tport/announce"
rm -f "$WORK/bench.torrent"
mktorrent -a "$announce" -l "$PIECE_LOG2" -d -o "$WORK/bench.torrent" "$payload" >/dev/null
ih=$("$KPBT" info "$WORK/bench.torrent" | awk '/^info hash:/ {print $3}')
echo "$ih" >"$tdir/whitelist.txt" && chmod 644 "$tdir/whitelist.txt"
(cd "$tdir" && exec opentracker -i 127.0.0.1 -p "$tport" -P "$tport" -A 127.0.0.1 -w whitelist.txt -d "$tdir" \
  >"$tdir/log" 2>&1) &
pids+=($!)
wait_tcp "$tport"

sport=$(free_port)
log "starting $SEEDER seeder on port $sport (verifies the payload first)"
case $SEEDER in
  kpbt)
    "$KPBT" seed "$WORK/bench.torrent" "$WORK/seed" --port "$sport" --quiet >"$WORK/seeder.log" 2>&1 &
    ;;
  aria2)
    aria2c --no-conf=true --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
      --enable-peer-exchange=false --disable-ipv6=true --bt-require-crypto=false \
      --check-integrity=true --seed-ratio=0.0 --seed-time=600 --summary-interval=0 \
      --console-log-level=warn --listen-port="$sport" --dir="$WORK/seed" \
      "$WORK/bench.torrent" >"$WORK/seeder.log" 2>&1 &
    ;;
  rqbit)
    [[ -x $RQBIT ]] || die "SEEDER=rqbit needs rqbit (set RQBIT=...)"
    "$RQBIT" "${rqbit_flags[@]}" --listen-port "$sport" -v warn download --disable-http-api --overwrite \
      -o "$WORK/seed" "$WORK/bench.torrent" >"$WORK/seeder.log" 2>&1 &
    ;;
  *) die "SEEDER must be kpbt, rqbit or aria2" ;;
esac
pids+=($!)
wait_tcp "$sport"
sleep 2 # let the seeder's first announce land

# run NAME -> prints "seconds max_rss_kib"
run_one() {
  local name=$1 out=$WORK/out-$1 tv=$WORK/time-$1.txt
  rm -rf "$out" && mkdir -p "$out"
  case $name in
    kpbt) /usr/bin/time -v -o "$tv" "$KPBT" download "$WORK/bench.torrent" -o "$out" --port 0 --quiet ;;
    aria2)
      /usr/bin/time -v -o "$tv" aria2c --no-conf=true --enable-dht=false --enable-dht6=false \
        --bt-enable-lpd=false --enable-peer-exchange=false --disable-ipv6=true \
        --bt-require-crypto=false --seed-time=0 --file-allocation=none --summary-interval=0 \
        --console-log-level=warn --listen-port="$(free_port)" --dir="$out" \
        "$WORK/bench.torrent" >/dev/null
      ;;
    rqbit)
      /usr/bin/time -v -o "$tv" "$RQBIT" "${rqbit_flags[@]}" --listen-port "$(free_port)" -v warn \
        download --disable-http-api -e -o "$out" "$WORK/bench.torrent" >/dev/null 2>&1
      ;;
  esac
  cmp -s "$out/payload.bin" "$payload" || die "$name produced a wrong file"
  rm -rf "$out"
  time_v_wall_rss "$tv"
}


declare -A times rsses meds
for i in $(seq 1 "$RUNS"); do
  for c in "${clients[@]}"; do
    read -r t r < <(run_one "$c")
    log "run $i $c: ${t}s, peak RSS ${r} KiB"
    times[$c]+="$t "
    rsses[$c]+="$r "
  done
done

printf '\n%s MiB, piece 2^%s, seeder %s, %s runs (median)\n\n' "$SIZE_MB" "$PIECE_LOG2" "$SEEDER" "$RUNS"
printf '| downloader | median time (s) | throughput (MB/s) | peak RSS (MiB) | runs (s) |\n'
printf '|---|---|---|---|---|\n'
for c in "${clients[@]}"; do
  t=$(tr ' ' '\n' <<<"${times[$c]}" | grep . | median)
  r=$(tr ' ' '\n' <<<"${rsses[$c]}" | grep . | sort -n | tail -1)
  mbs=$(awk -v s="$SIZE_MB" -v t="$t" 'BEGIN { printf "%.0f", s*1048576/1e6/t }')
  printf '| %s | %s | %s | %.1f | %s|\n' "$c" "$t" "$mbs" "$(awk -v r="$r" 'BEGIN{print r/1024}')" "${times[$c]}"
  meds[$c]=$t
done
printf '\nload average during the run: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
for c in "${clients[@]}"; do
  [[ $c == kpbt ]] && continue
  printf 'kpbt speed-up over %s: %sx\n' "$c" "$(awk -v a="${meds[$c]}" -v k="${meds[kpbt]}" 'BEGIN { printf "%.2f", a/k }')"
done
