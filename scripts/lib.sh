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
