#!/usr/bin/env bash
# Benchmarks the host agent (`kpbt-client serve`: one process, many torrents, a JSON
# API) against rqbit's server mode and transmission-daemon, in one run:
#
#   scripts/bench-session.sh                          # the full run (~13 min)
#   N_TORRENTS=100 SETTLE=5 CPU_SECS=10 PAR_MB=32 LAT_MB=256 RUNS=1 \
#     scripts/bench-session.sh                        # a quick pass (~3 min)
#   PARTS=1 CLIENTS="kpbt rqbit" scripts/bench-session.sh
#
# 1. Many seeding torrents (PARTS 1): N_TORRENTS random files of FILE_KIB KiB, one
#    single-file torrent each (16 KiB pieces, as `kpbt-client create` picks), announcing
#    to one opentracker on loopback. Each client, in turn, starts empty with a state dir
#    of its own; we read its RSS (VmRSS of /proc/PID/status), add every torrent through
#    its API (complete data in place, so it checks and seeds), wait until all seed, wait
#    SETTLE s, read RSS again, then its CPU time (utime+stime of /proc/PID/stat) over
#    CPU_SECS s of idle seeding (and the context switches of its threads then, about
#    how often it wakes up). Then it is stopped cleanly and started again on the same
#    state: "restart" is the time from the exec to the API showing every torrent seeding,
#    and "read" is what the process read (rchar of /proc/PID/io) until then: the data
#    size means it hashed all the data again, a part of it that it spot-checked (the
#    data stays in the page cache throughout, so a rehash costs CPU, not disk). Clients:
#      kpbt         serve, torrents added with seed_only=true (read-only serving)
#      kpbt-rw      serve, torrents added without seed_only (the data dir is writable)
#      rqbit        `rqbit server start` (HTTP API, its fastresume on)
#      transmission transmission-daemon -f (RPC, its own config dir)
#    DHT, LSD, UPnP/NAT-PMP, PEX and uTP are off wherever the client has them.
# 2. Parallel downloads (PARTS 2): a seeding serve holds PAR_N torrents of PAR_MB MiB;
#    a fresh leecher serve (`--max-active-downloads PAR_N`) downloads 1 of them, or all
#    PAR_N at once, given the seeder with `peers=`; time from the first POST to every
#    torrent seeding (one python process adds and polls every 20 ms); aggregate rate =
#    bytes / time; medians of RUNS, the order rotated each run. When LAT_MB is PAR_N x
#    PAR_MB, one torrent of that total (part 3's) is timed too. Peak RSS (VmHWM) of the
#    leecher is kept.
# 3. API latency under load (PARTS 3): `GET /torrents` over one keep-alive connection
#    every LAT_INTERVAL_MS while the leecher downloads one LAT_MB MiB torrent from the
#    seeder (removed with its data and added again until LAT_REQS samples were taken
#    while it showed `downloading`); p50/p99/max. Done twice: with that torrent alone,
#    and with the N_TORRENTS seeding torrents of part 1 in the same session
#    (LAT_WITH_MANY=0 skips the second).
#
# Pinning: every server under test runs on SERVER_CPUS (core 0), the pollers (this
# script's python) on POLLER_CPUS (core 1); in parts 2-3 the seeding serve is the load
# generator and runs on SEEDER_CPUS (core 1). Data lives under BENCH_DIR
# (/var/tmp/kpbt-bench-session: disk, not tmpfs); the seed data is kept and reused
# between runs (CLEAN=1 removes it at the end). Results: OUT_DIR/summary.md (default
# bench-out/session/) and results.tsv. Needs opentracker, transmission-daemon, python3
# (apt, scripts/install-deps.sh), a release kpbt-client (built unless SKIP_BUILD=1; KPBT=path overrides) and
# rqbit (`cargo install rqbit --locked --no-default-features --features default-tls`;
# found on PATH, at /var/tmp/rqbit/bin/rqbit or via RQBIT=; left out, loudly, if absent).
set -euo pipefail

N_TORRENTS=${N_TORRENTS:-1000}
FILE_KIB=${FILE_KIB:-64}
SETTLE=${SETTLE:-30}
CPU_SECS=${CPU_SECS:-60}
CLIENTS=${CLIENTS:-"kpbt kpbt-rw rqbit transmission"}
PAR_N=${PAR_N:-8}
PAR_MB=${PAR_MB:-128}
RUNS=${RUNS:-3}
LAT_MB=${LAT_MB:-1024}
LAT_REQS=${LAT_REQS:-500}
LAT_INTERVAL_MS=${LAT_INTERVAL_MS:-10}
LAT_WITH_MANY=${LAT_WITH_MANY:-1}
PARTS=${PARTS:-"1 2 3"}
SERVER_CPUS=${SERVER_CPUS:-0}
POLLER_CPUS=${POLLER_CPUS:-1}
SEEDER_CPUS=${SEEDER_CPUS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-/var/tmp/kpbt-bench-session}
OUT=${OUT_DIR:-$ROOT/bench-out/session}
KPBT=${KPBT:-${CARGO_TARGET_DIR:-$ROOT/target}/release/kpbt-client}
RQBIT=${RQBIT:-$(command -v rqbit || echo /var/tmp/rqbit/bin/rqbit)}
export RQBIT_LSD_DISABLE=true

LOG_TAG=bench-session
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

for b in opentracker transmission-daemon python3 taskset; do
  command -v "$b" >/dev/null 2>&1 || die "$b not found: run scripts/install-deps.sh"
done
if [[ $CLIENTS == *rqbit* && ! -x $RQBIT ]]; then
  log "WARNING: rqbit not found (set RQBIT=...); leaving it out"
  CLIENTS=${CLIENTS//rqbit/}
fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "building kpbt-client (release)"
  (cd "$ROOT" && cargo build --release -p kpbt-client -q)
fi
[[ -x $KPBT ]] || die "no kpbt-client at $KPBT"

mkdir -p "$WORK" "$OUT"
PY=$WORK/helper.py
cat >"$PY" <<'EOF'
import base64, hashlib, http.client, json, os, sys, time, urllib.parse

def benc(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(benc(v) for v in x) + b"e"
    return b"d" + b"".join(benc(k) + benc(x[k]) for k in sorted(x)) + b"e"

def piece_len(size):
    # As `kpbt-client create`: the smallest power of two >= 16 KiB giving <= 2,000
    # pieces, at least 64 KiB above 16 MiB and 256 KiB above 64 MiB.
    p = 16384
    while size > 2000 * p:
        p *= 2
    return max(p, 256 << 10) if size > 64 << 20 else max(p, 64 << 10) if size > 16 << 20 else p

def cmd_make(data_dir, tor_dir, n, size, announce, prefix):
    """n random files of `size` bytes and a single-file torrent for each; prints the
    info hashes."""
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(tor_dir, exist_ok=True)
    size = int(size)
    plen = piece_len(size)
    for i in range(int(n)):
        name = "%s%05d.bin" % (prefix, i)
        pieces = []
        with open(os.path.join(data_dir, name), "wb") as f:
            for off in range(0, size, plen):
                chunk = os.urandom(min(plen, size - off))
                f.write(chunk)
                pieces.append(hashlib.sha1(chunk).digest())
        info = {"length": size, "name": name, "piece length": plen, "pieces": b"".join(pieces)}
        with open(os.path.join(tor_dir, name + ".torrent"), "wb") as f:
            f.write(benc({"announce": announce, "created by": "bench-session", "info": info}))
        print(hashlib.sha1(benc(info)).hexdigest())

def info_hash(path):
    t = open(path, "rb").read()  # ours: keys sorted, so the info dict comes last
    return hashlib.sha1(t[t.index(b"4:info") + 6:-1]).hexdigest()

class Api:
    """One keep-alive connection to a client's API (kpbt, rqbit or transmission)."""

    def __init__(self, kind, port):
        self.kind, self.port, self.sid = kind.split("-")[0], int(port), ""
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def req(self, method, path, body=None):
        for _ in range(5):
            h = {"X-Transmission-Session-Id": self.sid} if self.kind == "transmission" else {}
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                time.sleep(0.05)
                continue
            if r.status == 409 and self.kind == "transmission":
                self.sid = r.getheader("X-Transmission-Session-Id", "")
                continue
            return r.status, data
        raise OSError("%s: %s %s: no answer" % (self.kind, method, path))

    def rpc(self, method, args):
        _, data = self.req("POST", "/transmission/rpc", json.dumps({"method": method, "arguments": args}))
        reply = json.loads(data)
        if reply.get("result") != "success":
            raise SystemExit("transmission %s: %s" % (method, reply.get("result")))
        return reply["arguments"]

    def add(self, torrent, data_dir, peers="", seed_only=True):
        body, q = open(torrent, "rb").read(), urllib.parse.quote
        if self.kind == "transmission":
            self.rpc("torrent-add", {"metainfo": base64.b64encode(body).decode(), "download-dir": data_dir})
            return
        if self.kind == "kpbt":
            path = "/torrents?dir=" + q(data_dir)
            path += ("&peers=" + q(peers)) if peers else ""
            path += "&seed_only=true" if seed_only else ""
        else:
            path = "/torrents?overwrite=true&output_folder=" + q(data_dir)
        st, data = self.req("POST", path, body)
        if st not in (200, 201):
            raise SystemExit("%s: adding %s: %s %s" % (self.kind, torrent, st, data[:300]))

    def states(self):
        """{info hash: state}, `seeding` meaning complete and serving."""
        if self.kind == "kpbt":
            st, data = self.req("GET", "/torrents")
            return {t["info_hash"]: t["state"] for t in json.loads(data)} if st == 200 else {}
        if self.kind == "rqbit":
            st, data = self.req("GET", "/torrents?with_stats=true")
            if st != 200:
                return {}
            out = {}
            for t in json.loads(data)["torrents"]:
                s = t.get("stats") or {}
                live_done = s.get("state") == "live" and s.get("finished")
                out[t["info_hash"]] = "seeding" if live_done else str(s.get("state"))
            return out
        names = {0: "stopped", 1: "check-wait", 2: "checking", 3: "dl-wait", 4: "downloading",
                 5: "seed-wait", 6: "seeding"}
        ts = self.rpc("torrent-get", {"fields": ["hashString", "status"]})["torrents"]
        return {t["hashString"]: names.get(t["status"], str(t["status"])) for t in ts}

def rchar(pid):
    with open("/proc/%s/io" % pid) as f:
        return int(next(l for l in f if l.startswith("rchar")).split()[1])

def cmd_add(kind, port, data_dir, peers, *torrents):
    api = Api(kind, port)
    for t in torrents:
        api.add(t, data_dir, peers, seed_only=(kind == "kpbt"))

def cmd_fetch(port, data_dir, peers, pid, *torrents):
    """Adds the torrents (to download from `peers`) and waits until all seed; prints
    what cmd_wait prints, timed from the first POST, and the process's peak RSS (KiB)."""
    t0 = time.time()
    cmd_add("kpbt-leech", port, data_dir, peers, *torrents)
    cmd_wait("kpbt", port, len(torrents), t0, 600, pid, end=" ")
    print(next(l.split()[1] for l in open("/proc/%s/status" % pid) if l.startswith("VmHWM")))

def cmd_wait(kind, port, n, t0, timeout, pid, end="\n"):
    """Polls every 20 ms until n torrents seed; prints the seconds since t0 (epoch),
    the states seen on the way and the process's rchar at that moment."""
    n, t0, timeout = int(n), float(t0), float(timeout)
    api, seen, done = Api(kind, port), set(), 0
    while time.time() - t0 < timeout:
        try:
            s = api.states()
        except (OSError, ValueError):
            s = {}
        seen.update(s.values())
        done = sum(1 for v in s.values() if v == "seeding")
        if done >= n:
            print("%.3f %s %d" % (time.time() - t0, ",".join(sorted(seen)), rchar(pid)), end=end)
            return
        time.sleep(0.02)
    print("%.3f %s %d TIMEOUT:%d/%d" % (time.time() - t0, ",".join(sorted(seen)) or "-", rchar(pid), done, n),
          end=end)

def cmd_latency(port, torrent, data_dir, peers, want, interval_ms):
    """GET /torrents every interval_ms while `torrent` downloads; a sample counts when
    the reply shows it downloading. A finished download is removed with its data and
    added again. Prints: samples p50 p99 max mean (ms), the median rate of the
    downloads (size / time from add to seeding), their number, the mean reply size."""
    want, pause = int(want), float(interval_ms) / 1000
    api, ih = Api("kpbt", port), info_hash(torrent)
    lat, rates, rounds, size = [], [], 0, 0
    while len(lat) < want and rounds < 30:
        rounds += 1
        t_add = time.perf_counter()
        api.add(torrent, data_dir, peers, seed_only=False)
        while True:
            t = time.perf_counter()
            st, data = api.req("GET", "/torrents")
            dt = time.perf_counter() - t
            me = next((x for x in json.loads(data) if x["info_hash"] == ih), {})
            if me.get("state") == "downloading":
                lat.append(dt)
                size += len(data)
            elif me.get("state") == "seeding":
                rates.append(me["size"] / (time.perf_counter() - t_add))
                break
            elif me.get("state") == "error":
                raise SystemExit("the download failed: %s" % me.get("error"))
            time.sleep(pause)
        st, _ = api.req("DELETE", "/torrents/%s?delete_data=true" % ih)
        if st != 200:
            raise SystemExit("removing the torrent: HTTP %s" % st)
    lat.sort()
    ms = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    rates.sort()
    print("%d %.2f %.2f %.2f %.2f %d %d %d" % (len(lat), ms(0.5), ms(0.99), lat[-1] * 1000,
                                              sum(lat) / len(lat) * 1000, rates[len(rates) // 2], rounds,
                                              size // len(lat)))

if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
EOF
py() { taskset -c "$POLLER_CPUS" python3 "$PY" "$@"; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Context switches per thread ("tid count" lines): about how often the process wakes up.
ctx_switches() {
  local t
  for t in "/proc/$1"/task/*; do
    awk -v t="${t##*/}" '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print t, s}' "$t/status" 2>/dev/null || true
  done
}
# ctx_rate BEFORE AFTER SECS: switches/s of the threads in AFTER (a thread that exited
# in between loses its last switches; one that started counts whole).
ctx_rate() {
  awk -v s="$3" 'NR == FNR {a[$1] = $2; next} {d += ($1 in a) ? $2 - a[$1] : $2} END {printf "%d", d / s}' \
    <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}
clk_tck=$(getconf CLK_TCK)
now() { date +%s.%N; }
results=$OUT/results.tsv
: >"$results"
put() { printf '%s\t%s\n' "$1" "$2" >>"$results"; }
get() { awk -F'\t' -v k="$1" '$1 == k {v = $2} END {print v}' "$results"; }

# stop_pid PID: SIGTERM (a clean stop that saves state), then waits up to 60 s.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 600); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "WARNING: pid $1 did not stop within 60 s; killing it"
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# --- data and tracker -------------------------------------------------------------
# make_set NAME COUNT BYTES: random files + torrents under $WORK/NAME, reused when the
# parameters match; hashes in $WORK/NAME/hashes.
tport=$(free_port)
announce="http://127.0.0.1:$tport/announce"
make_set() {
  local d=$WORK/$1 stamp="$2 $3"
  if [[ $(cat "$d/stamp" 2>/dev/null) != "$stamp" ]]; then
    log "writing $2 files of $3 bytes and their torrents into $d"
    rm -rf "$d"
    python3 "$PY" make "$d/data" "$d/torrents" "$2" "$3" "http://127.0.0.1:1/announce" "$1-" >"$d.hashes.tmp"
    mv "$d.hashes.tmp" "$d/hashes"
    echo "$stamp" >"$d/stamp"
  fi
  # Point the torrents at this run's tracker (the info hash does not change).
  python3 - "$d/torrents" "$announce" <<'EOF'
import os, sys
d, url = sys.argv[1], sys.argv[2].encode()
for n in os.listdir(d):
    p = os.path.join(d, n)
    t = open(p, "rb").read()
    i = t.index(b"8:announce") + 10
    j = t.index(b":", i)
    end = j + 1 + int(t[i:j])
    open(p, "wb").write(t[:i] + b"%d:%s" % (len(url), url) + t[end:])
EOF
}
torrents_of() { find "$WORK/$1/torrents" -name '*.torrent' | sort; }

[[ " $PARTS " == *" 1 "* || $LAT_WITH_MANY == 1 ]] && make_set many "$N_TORRENTS" $((FILE_KIB * 1024))
[[ " $PARTS " == *" 2 "* ]] && make_set par "$PAR_N" $((PAR_MB * 1024 * 1024))
[[ " $PARTS " == *" 3 "* ]] && make_set big 1 $((LAT_MB * 1024 * 1024))
# Fresh data is still being written back; the first client's fsyncs would wait for it.
sync

# opentracker (Debian build: whitelist only; as root it chroots into -d, drops to nobody).
tdir=$WORK/tracker
rm -rf "$tdir" && mkdir -p "$tdir" && chmod 755 "$tdir"
cat "$WORK"/*/hashes >"$tdir/whitelist.txt" 2>/dev/null || true
chmod 644 "$tdir/whitelist.txt"
(cd "$tdir" && exec taskset -c "$POLLER_CPUS" opentracker -i 127.0.0.1 -p "$tport" -P "$tport" \
  -A 127.0.0.1 -w whitelist.txt -d "$tdir" >"$tdir/log" 2>&1) &
pids+=($!)
wait_tcp "$tport"
log "opentracker on port $tport; load average $(cut -d' ' -f1-3 /proc/loadavg)"
put load_start "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- clients ------------------------------------------------------------------------
# start_client KIND DIR: starts KIND on SERVER_CPUS with its state/config in DIR;
# sets $cpid and $cport (its API port); a third argument skips waiting for the API. The peer and API ports are kept in DIR so a
# restart uses the same ones. serve_args=(...) adds flags to kpbt's serve.
serve_args=()
start_client() {
  local kind=$1 dir=$2 nowait=${3:-} pport
  mkdir -p "$dir"
  [[ -f $dir/peer-port ]] || free_port >"$dir/peer-port"
  [[ -f $dir/api-port ]] || free_port >"$dir/api-port"
  pport=$(cat "$dir/peer-port")
  cport=$(cat "$dir/api-port")
  case $kind in
    kpbt*)
      taskset -c "$SERVER_CPUS" "$KPBT" serve --state-dir "$dir/state" --api "127.0.0.1:$cport" \
        --port "$pport" --listen 127.0.0.1 "${serve_args[@]}" >>"$dir/log" 2>&1 &
      ;;
    rqbit)
      taskset -c "$SERVER_CPUS" "$RQBIT" --disable-dht --disable-dht-persistence --disable-lsd \
        --disable-upnp-port-forward --listen-ip 127.0.0.1 --listen-port "$pport" \
        --http-api-listen-addr "127.0.0.1:$cport" \
        -v warn server start --persistence-location "$dir/state" --fastresume "$dir/unused" >>"$dir/log" 2>&1 &
      ;;
    transmission)
      mkdir -p "$dir/config"
      [[ -f $dir/config/settings.json ]] || cat >"$dir/config/settings.json" <<EOF
{
  "bind-address-ipv4": "127.0.0.1", "peer-port": $pport, "peer-port-random-on-start": false,
  "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
  "port-forwarding-enabled": false, "rpc-enabled": true, "rpc-bind-address": "127.0.0.1",
  "rpc-port": $cport, "rpc-authentication-required": false, "rpc-whitelist-enabled": false,
  "rpc-host-whitelist-enabled": false, "download-dir": "$dir/unused",
  "incomplete-dir-enabled": false, "rename-partial-files": false, "start-added-torrents": true,
  "download-queue-enabled": false, "seed-queue-enabled": false, "queue-stalled-enabled": false,
  "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false, "watch-dir-enabled": false,
  "message-level": 1
}
EOF
      taskset -c "$SERVER_CPUS" transmission-daemon -f -g "$dir/config" >>"$dir/log" 2>&1 &
      ;;
  esac
  cpid=$!
  pids+=("$cpid")
  [[ -n $nowait ]] || wait_tcp "$cport"
}

version_of() {
  case $1 in
    kpbt*) "$KPBT" --version ;;
    rqbit) "$RQBIT" --version 2>&1 | head -1 ;;
    transmission) transmission-daemon --version 2>&1 | head -1 ;;
  esac
}

# --- part 1: many seeding torrents ----------------------------------------------------
part_many() {
  local data=$WORK/many/data total=$((N_TORRENTS * FILE_KIB * 1024)) c
  mapfile -t tlist < <(torrents_of many)
  for c in $CLIENTS; do
    local dir=$WORK/p1-$c t0 rss0 rss1 c0 c1 w0 w1 out t_add seen
    rm -rf "$dir"
    log "[$c] $(version_of "$c"): start empty"
    start_client "$c" "$dir"
    sleep 5
    rss0=$(rss_kib "$cpid")
    t0=$(now)
    py add "$c" "$cport" "$data" "" "${tlist[@]}"
    read -r t_add seen _ < <(py wait "$c" "$cport" "$N_TORRENTS" "$t0" 600 "$cpid")
    log "[$c] $N_TORRENTS torrents added and seeding after ${t_add}s (states seen: $seen)"
    sleep "$SETTLE"
    rss1=$(rss_kib "$cpid")
    c0=$(cpu_ticks "$cpid") w0=$(ctx_switches "$cpid")
    sleep "$CPU_SECS"
    c1=$(cpu_ticks "$cpid") w1=$(ctx_switches "$cpid")
    local cpu wakes
    wakes=$(ctx_rate "$w0" "$w1" "$CPU_SECS")
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$clk_tck" -v s="$CPU_SECS" 'BEGIN {printf "%.2f", (b-a)/t/s*100}')
    log "[$c] RSS ${rss0} -> ${rss1} KiB; idle CPU ${cpu} % of a core, $wakes context switches/s"
    stop_pid "$cpid"
    t0=$(now)
    start_client "$c" "$dir" nowait
    out=$(py wait "$c" "$cport" "$N_TORRENTS" "$t0" 300 "$cpid")
    local t_restart seen_r read_r rss2
    read -r t_restart seen_r read_r _ <<<"$out"
    rss2=$(rss_kib "$cpid")
    # Hashed again: all of it, part of it (rqbit's fastresume hashes a sample of the
    # pieces, at least one per file) or none.
    local rehashed=no
    ((read_r > total / 10)) && rehashed=partly
    ((read_r > total * 95 / 100)) && rehashed=yes
    log "[$c] restart: all seeding after ${t_restart}s, read $((read_r / 1024)) KiB (rehashed: $rehashed; states: $seen_r) $out"
    stop_pid "$cpid"
    put "p1.$c.version" "$(version_of "$c")"
    put "p1.$c.rss0" "$rss0"
    put "p1.$c.rss1" "$rss1"
    put "p1.$c.rss_restart" "$rss2"
    put "p1.$c.cpu" "$cpu"
    put "p1.$c.wakes" "$wakes"
    put "p1.$c.add_secs" "$t_add"
    put "p1.$c.restart_secs" "$t_restart"
    put "p1.$c.restart_states" "$seen_r"
    put "p1.$c.restart_read" "$read_r"
    put "p1.$c.rehashed" "$rehashed"
    put "p1.$c.timeout" "$([[ $out == *TIMEOUT* ]] && echo yes || echo no)"
  done
}

# --- parts 2 and 3: one seeding serve, a fresh leecher serve per run ------------------
seeder_up=0
start_seeder() {
  ((seeder_up)) && return 0
  local dir=$WORK/seeder
  rm -rf "$dir/state"
  SERVER_CPUS=$SEEDER_CPUS start_client kpbt "$dir"
  spid=$cpid sapi=$cport speer=$(cat "$dir/peer-port")
  local n=0 set
  for set in par big; do
    [[ -d $WORK/$set/torrents ]] || continue
    mapfile -t tl < <(torrents_of "$set")
    py add kpbt "$sapi" "$WORK/$set/data" "" "${tl[@]}"
    n=$((n + ${#tl[@]}))
  done
  read -r t _ < <(py wait kpbt "$sapi" "$n" "$(now)" 600 "$spid")
  log "seeder (pid $spid, peers on port $speer) seeds $n torrents, checked in ${t}s"
  seeder_up=1
}


part_parallel() {
  start_seeder
  mapfile -t ptl < <(torrents_of par)
  local run i mode modes=(single multi) dir t out hwm mb mbs
  # Also one torrent as big as the PAR_N together, when part 3's torrent is that size.
  ((LAT_MB == PAR_N * PAR_MB)) && [[ -d $WORK/big/torrents ]] && modes+=(total)
  for run in $(seq 1 "$RUNS"); do
    # Rotate the order so that no mode always runs first.
    for ((i = 0; i < ${#modes[@]}; i++)); do
      mode=${modes[(i + run - 1) % ${#modes[@]}]}
      dir=$WORK/leech-$mode
      rm -rf "$dir"
      serve_args=(--max-active-downloads "$PAR_N")
      start_client kpbt "$dir"
      serve_args=()
      local list=("${ptl[@]}")
      mb=$((PAR_N * PAR_MB))
      [[ $mode == single ]] && list=("${ptl[0]}") mb=$PAR_MB
      [[ $mode == total ]] && mapfile -t list < <(torrents_of big)
      out=$(py fetch "$cport" "$dir/data" "127.0.0.1:$speer" "$cpid" "${list[@]}")
      stop_pid "$cpid"
      [[ $out == *TIMEOUT* ]] && die "part 2 $mode run $run timed out: $out"
      read -r t _ _ hwm <<<"$out"
      mbs=$(awk -v b="$mb" -v t="$t" 'BEGIN {printf "%.1f", b/t}')
      log "part 2 run $run $mode: ${#list[@]} torrent(s), $mb MiB in ${t}s = $mbs MiB/s, peak RSS $hwm KiB"
      put "p2.$mode.run$run" "$t $mbs $hwm"
      rm -rf "$dir"
    done
  done
}

part_latency() {
  start_seeder
  local big variant dir out
  big=$(torrents_of big | head -1)
  for variant in alone many; do
    [[ $variant == many && $LAT_WITH_MANY != 1 ]] && continue
    dir=$WORK/leech-lat
    rm -rf "$dir"
    start_client kpbt "$dir"
    if [[ $variant == many ]]; then
      mapfile -t tlist < <(torrents_of many)
      py add kpbt "$cport" "$WORK/many/data" "" "${tlist[@]}"
      py wait kpbt "$cport" "$N_TORRENTS" "$(now)" 600 "$cpid" >/dev/null
    fi
    out=$(py latency "$cport" "$big" "$dir/data" "127.0.0.1:$speer" "$LAT_REQS" "$LAT_INTERVAL_MS")
    stop_pid "$cpid"
    log "part 3 ($variant): samples p50 p99 max mean(ms) rate rounds = $out"
    put "p3.$variant" "$out"
    rm -rf "$dir"
  done
}

[[ " $PARTS " == *" 1 "* ]] && part_many
[[ " $PARTS " == *" 2 "* ]] && part_parallel
[[ " $PARTS " == *" 3 "* ]] && part_latency
((seeder_up)) && stop_pid "$spid"
put load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- report -----------------------------------------------------------------------------
{
  printf '# Host agent benchmark, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'load average at start %s, at end %s; %s\n\n' "$(get load_start)" "$(get load_end)" "$(nproc) cores"
  if [[ " $PARTS " == *" 1 "* ]]; then
    total=$((N_TORRENTS * FILE_KIB * 1024))
    printf '%s seeding torrents of %s KiB (one file each), servers on core %s, pollers on core %s\n\n' \
      "$N_TORRENTS" "$FILE_KIB" "$SERVER_CPUS" "$POLLER_CPUS"
    printf '| client | version | RSS empty (MiB) | RSS %s seeding (MiB) | per torrent (KiB) | idle CPU (%% core, %s s) | context switches/s | add+check (s) | restart to all seeding (s) | read on restart (%% of data) | rehashed |\n' "$N_TORRENTS" "$CPU_SECS"
    printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
    for c in $CLIENTS; do
      r0=$(get "p1.$c.rss0") r1=$(get "p1.$c.rss1")
      to=$(get "p1.$c.timeout")
      printf '| %s | %s | %.1f | %.1f | %.1f | %s | %s | %s | %s%s | %s | %s |\n' "$c" "$(get "p1.$c.version")" \
        "$(awk -v r="$r0" 'BEGIN {print r/1024}')" "$(awk -v r="$r1" 'BEGIN {print r/1024}')" \
        "$(awk -v a="$r0" -v b="$r1" -v n="$N_TORRENTS" 'BEGIN {print (b-a)/n}')" \
        "$(get "p1.$c.cpu")" "$(get "p1.$c.wakes")" "$(get "p1.$c.add_secs")" "$(get "p1.$c.restart_secs")" \
        "$([[ $to == yes ]] && echo ' (timeout)')" \
        "$(awk -v r="$(get "p1.$c.restart_read")" -v t="$total" 'BEGIN {printf "%.0f", r/t*100}')" "$(get "p1.$c.rehashed")"
    done
    if [[ " $CLIENTS " == *" rqbit "* ]]; then
      printf '\nkpbt RSS per torrent / rqbit: %s (target <= 0.5)\n' "$(awk \
        -v a="$(get p1.kpbt.rss0)" -v b="$(get p1.kpbt.rss1)" \
        -v c="$(get p1.rqbit.rss0)" -v d="$(get p1.rqbit.rss1)" 'BEGIN {printf "%.2f", (b-a)/(d-c)}')"
    fi
    printf '\n'
  fi
  if [[ " $PARTS " == *" 2 "* ]]; then
    printf '%s x %s MiB at once vs 1 x %s MiB, leecher on core %s, seeder on core %s, medians of %s\n\n' \
      "$PAR_N" "$PAR_MB" "$PAR_MB" "$SERVER_CPUS" "$SEEDER_CPUS" "$RUNS"
    printf '| download | runs: s (MiB/s) | median MiB/s | leecher peak RSS (MiB) |\n|---|---|---:|---:|\n'
    for mode in single multi total; do
      [[ -n $(get "p2.$mode.run1") ]] || continue
      runs="" rates="" peak=0
      for run in $(seq 1 "$RUNS"); do
        read -r t m h <<<"$(get "p2.$mode.run$run")"
        runs+="$t ($m) " rates+="$m"$'\n'
        ((h > peak)) && peak=$h
      done
      med=$(printf '%s' "$rates" | median)
      put "p2.$mode.median" "$med"
      case $mode in
        single) label="1 x $PAR_MB MiB" ;;
        multi) label="$PAR_N x $PAR_MB MiB at once" ;;
        *) label="1 x $LAT_MB MiB (the same total)" ;;
      esac
      printf '| %s | %s| %s | %s |\n' "$label" "$runs" "$med" "$(awk -v r="$peak" 'BEGIN {printf "%.0f", r/1024}')"
    done
    printf '\naggregate rate %s-at-once / single: %s (target >= 0.9)\n' "$PAR_N" \
      "$(awk -v a="$(get p2.multi.median)" -v b="$(get p2.single.median)" 'BEGIN {printf "%.2f", a/b}')"
    if [[ -n $(get p2.total.median) ]]; then
      printf '%s-at-once / one torrent of the same total: %s\n' "$PAR_N" \
        "$(awk -v a="$(get p2.multi.median)" -v b="$(get p2.total.median)" 'BEGIN {printf "%.2f", a/b}')"
    fi
    printf '\n'
  fi
  if [[ " $PARTS " == *" 3 "* ]]; then
    printf 'GET /torrents every %s ms while a %s MiB torrent downloads (leecher on core %s, poller and seeder on core %s)\n\n' \
      "$LAT_INTERVAL_MS" "$LAT_MB" "$SERVER_CPUS" "$POLLER_CPUS"
    printf '| session holds | samples | p50 ms | p99 ms | max ms | mean ms | reply KiB | download rate, add to seeding (MiB/s) | downloads |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
    for variant in alone many; do
      v=$(get "p3.$variant")
      [[ -n $v ]] || continue
      read -r n p50 p99 mx mean rate rounds bytes <<<"$v"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$([[ $variant == alone ]] && echo "the download only" || echo "the download + $N_TORRENTS seeding")" \
        "$n" "$p50" "$p99" "$mx" "$mean" "$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b/1024}')" \
        "$(awk -v r="$rate" 'BEGIN {printf "%.0f", r/1048576}')" "$rounds"
    done
    printf '\n(target p99 < 20 ms)\n'
  fi
} >"$OUT/summary.md"
cat "$OUT/summary.md"
log "results in $OUT/summary.md and $results"

if [[ ${CLEAN:-0} == 1 ]]; then rm -rf "$WORK"; else rm -rf "$WORK"/p1-* "$WORK"/leech-* "$WORK/seeder"; fi
