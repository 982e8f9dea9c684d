#!/usr/bin/env bash
# Brings up the compose swarm without the services that need a registry (Prometheus and
# Grafana), waits until the tracker counts every leecher as a seeder, checks the leechers'
# bytes against the seeder's, and tears everything down. Exit 0 only if all completed.
#   KPBT_DEMO_SIZE (default 64M), KPBT_SMOKE_TIMEOUT seconds (default 300).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=kpbt-smoke-$$
export KPBT_DEMO_SIZE=${KPBT_DEMO_SIZE:-64M}
export KPBT_TRACKER_PORT=${KPBT_TRACKER_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
timeout=${KPBT_SMOKE_TIMEOUT:-300}
compose=(docker-compose -p "$project" -f "$here/compose.yml")
command -v docker-compose >/dev/null || compose=(docker compose -p "$project" -f "$here/compose.yml")
cleanup() {
  if [[ ${ok:-0} != 1 ]]; then "${compose[@]}" logs --no-color --tail=40 || true; fi
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
}
trap cleanup EXIT
# Each peer is a `serve` agent; its *-add one-shot hands it the torrent through the API.
swarm=(tracker demo-payload seeder seeder-add leecher1 leecher1-add leecher2 leecher2-add leecher3 leecher3-add)
"${compose[@]}" up -d "${swarm[@]}"
echo "waiting up to ${timeout}s for 3 leechers to complete (${KPBT_DEMO_SIZE} payload)"
deadline=$((SECONDS + timeout))
while :; do
  stats=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' \
    "http://127.0.0.1:$KPBT_TRACKER_PORT/stats" 2>/dev/null || true)
  seeders=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1] or "{}").get("seeders", 0))' "$stats")
  if ((seeders >= 4)); then break; fi
  if ((SECONDS > deadline)); then echo "timed out: tracker stats: $stats" >&2; exit 1; fi
  sleep 2
done
echo "tracker reports $seeders seeders: $stats"
# Byte comparison: every leecher's copy equals the payload the seeder serves.
copies=$(mktemp -d); trap 'rm -rf "$copies"; cleanup' EXIT
for adder in seeder-add leecher1-add leecher2-add leecher3-add; do
  code=$(docker inspect -f '{{.State.ExitCode}}' "$("${compose[@]}" ps -q "$adder")")
  if [[ $code != 0 ]]; then echo "$adder exited $code" >&2; exit 1; fi
done
docker cp "$("${compose[@]}" ps -q seeder):/swarm/demo" "$copies/seeder"
for n in 1 2 3; do
  docker cp "$("${compose[@]}" ps -q "leecher$n"):/data/demo" "$copies/leecher$n"
  diff -r "$copies/seeder" "$copies/leecher$n"
done
echo "leecher copies are byte-identical to the seeder's payload ($(du -sh "$copies/seeder" | cut -f1))"
ok=1
echo "compose swarm: all leechers complete"
