#!/usr/bin/env python3
"""Redis's own cost of an announce, without a tracker in the way.

Replays the Redis store's traffic straight into a fresh redis-server (apt's, no
persistence) and reports redis-server's CPU time per announce (utime + stime from
/proc), side by side for each way an announce can reach it:

  script        one EVALSHA of the announce script per announce (a cluster's path)
  script-batch  EVALSHAs of the batch entry point, BATCH announces each (a single
                Redis's path under load)
  pipeline      the re-announce fast path, one MULTI/EXEC: ZSCORE, HGET, ZSCORE,
                ZADD XX GT, 2 ZCARD, ZRANDMEMBER of each side
                (tracker/src/store/redis/reannounce.rs)

First every peer joins (its first announce, no event), in random order; then every peer
re-announces once, in random order, with no event. Both parts are measured, each time
on a fresh redis-server: joins go through the script (one EVALSHA each, or batched; the
pipeline cannot join a peer, so its runs join through the batch entry point), the
re-announces through the mode's path. The modes take turns, --rounds times; the median
is reported. Writes go out PIPELINE_DEPTH announces at a time.

Usage: scripts/bench-redis-replay.py [--swarms 10000] [--peers 5] [--numwant 50] [--rounds 3]
                                    [--callgrind]
       env: REDIS_CPUS (default 1) and CLIENT_CPUS (default 0) pin the two sides.
"""
import argparse
import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
STORE = os.path.join(ROOT, "tracker", "src", "store")
PIPELINE_DEPTH = 64
BATCH = 20


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.f = self.sock.makefile("rb")

    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError("redis error: " + rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("bad reply line %r" % line)

    def call(self, *args):
        self.sock.sendall(resp(*args))
        return self.read()

    def pipe(self, requests):
        """requests: (bytes, replies) pairs, sent PIPELINE_DEPTH at a time."""
        for i in range(0, len(requests), PIPELINE_DEPTH):
            chunk = requests[i : i + PIPELINE_DEPTH]
            self.sock.sendall(b"".join(r[0] for r in chunk))
            for _, n in chunk:
                for _ in range(n):
                    self.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir, callgrind=False):
    port = free_port()
    pre = ["taskset", "-c", os.environ.get("REDIS_CPUS", "1")]
    if callgrind:
        # Only what redis-server does for commands counts (not its event loop's waits).
        pre += ["valgrind", "--tool=callgrind", "--toggle-collect=processCommand",
                "--callgrind-out-file=" + os.path.join(workdir, "callgrind.out")]
    proc = subprocess.Popen(
        pre + ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log")]
    )
    for _ in range(1200 if callgrind else 200):
        try:
            r = Redis(port)
            if r.call("PING") == b"PONG":
                return proc, r
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server never answered PING")


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swarms", type=int, default=10000)
    ap.add_argument("--peers", type=int, default=5, help="peers per swarm")
    ap.add_argument("--numwant", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--callgrind", action="store_true",
                    help="count redis-server's instructions per announce under valgrind instead of "
                         "its CPU time: the same figure on every run, whatever else the machine does "
                         "(one round; about 50x slower, so use fewer swarms)")
    args = ap.parse_args()
    if args.callgrind:
        args.rounds = 1
        for tool in ("valgrind", "callgrind_control"):
            if not shutil.which(tool):
                sys.exit("--callgrind needs %s: apt-get install valgrind" % tool)
    os.sched_setaffinity(0, {int(os.environ.get("CLIENT_CPUS", "0"))})
    lua = open(os.path.join(STORE, "redis_announce.lua")).read()
    one = lua + open(os.path.join(STORE, "redis_announce_one.lua")).read()
    batch = lua + open(os.path.join(STORE, "redis_announce_batch.lua")).read()

    rnd = random.Random(20261201)
    peers = []
    for i in range(args.swarms):
        h = hashlib.sha1(b"swarm %d" % i).hexdigest()
        for _ in range(args.peers):
            ip = bytes([10, rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)])
            addr = ip + rnd.randrange(1024, 65535).to_bytes(2, "big")
            peers.append((h, addr, ip, rnd.randbytes(20), rnd.random() < 0.1))
    order = peers[:]
    rnd.shuffle(order)
    joins = peers[:]
    rnd.shuffle(joins)
    now = int(time.time())

    def script_args(p):
        h, addr, ip, pid, seeder = p
        keys = ["{%s}s" % h, "{%s}l" % h, "{%s}p" % h]
        # The store's 7 arguments per announce (redis_announce.lua): no event, no label,
        # seeders given leechers, no peer ids in the reply, the per-ip cap applies.
        flags = "0%d%d01" % (int(seeder), int(seeder))
        argv = [addr, ip, pid, flags, args.numwant + 1, h, ""]
        return keys, argv

    def shared(t):
        # The bucket's keys, then now, the stale cutoff and caps that do not bite.
        return ["kpbt:ix", "kpbt:st"], [t, t - 1800, 1 << 30, 1 << 30, 1 << 30]

    def requests(mode, sha_one, sha_batch, t, order):
        sk, sa = shared(t)
        if mode == "script":
            return [(resp("EVALSHA", sha_one, 5, *sk, *k, *sa, *a), 1) for k, a in map(script_args, order)]
        if mode == "script-batch":
            out = []
            for i in range(0, len(order), BATCH):
                chunk, keys, argv = order[i : i + BATCH], [], []
                for p in chunk:
                    k, a = script_args(p)
                    keys += k
                    argv += a
                out.append((resp("EVALSHA", sha_batch, 2 + len(keys), *sk, *keys, "3" * len(chunk), *sa, *argv), 1))
            return out
        out = []
        for h, addr, _, pid, seeder in order:
            s, l, ph = "{%s}s" % h, "{%s}l" % h, "{%s}p" % h
            side = s if seeder else l
            cmds = [resp("MULTI"), resp("ZSCORE", "kpbt:ix", h), resp("HGET", ph, addr),
                    resp("ZSCORE", side, addr), resp("ZADD", side, "XX", "GT", t, addr),
                    resp("ZCARD", s), resp("ZCARD", l)]
            if seeder:
                cmds.append(resp("ZRANDMEMBER", l, args.numwant))
            else:
                cmds += [resp("ZRANDMEMBER", s, args.numwant), resp("ZRANDMEMBER", l, args.numwant + 1)]
            cmds.append(resp("EXEC"))
            # MULTI's OK, a QUEUED per command, then EXEC's array.
            out.append((b"".join(cmds), len(cmds)))
        return out

    hz = os.sysconf("SC_CLK_TCK")

    def instructions(proc, work):
        """Instructions counted since the last call (callgrind dumps, then zeroes them)."""
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, stdout=subprocess.DEVNULL)
        dumps = sorted((f for f in os.listdir(work) if f.startswith("callgrind.out.")),
                       key=lambda f: int(f.rsplit(".", 1)[1]))
        with open(os.path.join(work, dumps[-1])) as f:
            return next(int(l.split()[1]) for l in f if l.startswith(("summary:", "totals:")))

    def timed(proc, r, reqs, n, work):
        """redis-server CPU µs (thousands of instructions with --callgrind) and commands
        per announce of `reqs` (n announces)."""
        r.call("CONFIG", "RESETSTAT")
        if args.callgrind:
            instructions(proc, work)
        t0 = cpu_ticks(proc.pid)
        r.pipe(reqs)
        t1 = cpu_ticks(proc.pid)
        cost = instructions(proc, work) / 1e3 if args.callgrind else (t1 - t0) / hz * 1e6
        info = r.call("INFO", "stats").decode()
        cmds = int(next(l.split(":")[1] for l in info.splitlines() if l.startswith("total_commands_processed:")))
        # The INFO call itself is one of them.
        return cost / n, (cmds - 1) / n

    def measure(mode):
        """(join, re-announce) figures of `timed`, on a fresh server."""
        with tempfile.TemporaryDirectory() as work:
            proc, r = start_redis(work, args.callgrind)
            try:
                sha_one = r.call("SCRIPT", "LOAD", one).decode()
                sha_batch = r.call("SCRIPT", "LOAD", batch).decode()
                join_mode = "script" if mode == "script" else "script-batch"
                join = timed(proc, r, requests(join_mode, sha_one, sha_batch, now - 60, joins), len(joins), work)
                again = timed(proc, r, requests(mode, sha_one, sha_batch, now, order), len(order), work)
                return join, again
            finally:
                proc.kill()
                proc.wait()

    modes = ["script", "script-batch", "pipeline"]
    runs = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            runs[m].append(measure(m))
    print("%d swarms of %d peers, numwant %d; redis-server on cpu %s, client on cpu %s; median of %d"
          % (args.swarms, args.peers, args.numwant, os.environ.get("REDIS_CPUS", "1"),
             os.environ.get("CLIENT_CPUS", "0"), args.rounds))
    unit = "k instructions" if args.callgrind else "us"
    print("| announce | mode | redis-server %s per announce | all runs | Redis commands per announce |"
          % ("instructions" if args.callgrind else "CPU"))
    print("|---|---|---|---|---|")
    for part, name in ((0, "join"), (1, "re-announce")):
        for m in modes:
            if part == 0 and m == "pipeline":
                continue  # its joins are script-batch's
            figs = [r[part] for r in runs[m]]
            cpu = sorted(c for c, _ in figs)
            print("| %s | %s | %.1f %s | %s | %.1f |" % (name, m, cpu[len(cpu) // 2], unit, " ".join("%.1f" % c for c, _ in figs), figs[0][1]))

if __name__ == "__main__":
    main()
