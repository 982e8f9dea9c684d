-- wrk script for scripts/bench-tracker.sh: random compact announces (numwant=50).
-- Info hashes come from the file in $KPBT_BENCH_HASHES (percent-encoded, one a line),
-- the same 10,000 for every tracker. Peer ids and ports are random. Requests are
-- pre-generated at start-up so that wrk (one thread) spends its time on I/O, not Lua.
local hashes = {}
for line in io.lines(os.getenv("KPBT_BENCH_HASHES")) do
  hashes[#hashes + 1] = line
end
math.randomseed(tonumber(os.getenv("KPBT_BENCH_SEED") or "1"))

local pool, n = {}, 50000
-- Built in init() (per wrk thread), after wrk has set the Host header.
function init(args)
 for i = 1, n do
  local id = {}
  for j = 1, 20 do id[j] = string.format("%%%02X", math.random(0, 255)) end
  -- One peer in ten is a seeder.
  local left = (math.random(10) == 1) and 0 or 1048576
  local path = "/announce?info_hash=" .. hashes[math.random(#hashes)]
    .. "&peer_id=" .. table.concat(id)
    .. "&port=" .. math.random(1024, 65535)
    .. "&uploaded=0&downloaded=0&left=" .. left
    .. "&compact=1&numwant=50"
  pool[i] = wrk.format("GET", path)
 end
end

local i = 0
request = function()
  i = i % n + 1
  return pool[i]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.0f p50_us=%d p99_us=%d requests=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout))
end
