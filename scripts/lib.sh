# Shared shell helpers for the benchmark scripts (sourced, not run).
# The caller sets LOG_TAG before sourcing; `pids+=($!)` registers background
# processes that the EXIT trap stops.

log() { printf '[%s] %s\n' "${LOG_TAG:-kpbt}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-kpbt}" "$*" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# A port that was free a moment ago (bind 0, release).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 60 s until something accepts TCP connections on 127.0.0.1:$1.
wait_tcp() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listening on port $1"
}

# Median of the numbers on stdin, one a line (the middle one; the upper middle of an
# even count).
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# "SECONDS MAX_RSS_KIB" from a `/usr/bin/time -v -o FILE` report.
time_v_wall_rss() {
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$1")
  echo "$wall $rss"
}
