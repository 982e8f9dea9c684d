-- One announce against one swarm, atomically, in one round trip (layout: redis.rs).
-- KEYS: 1 seeders zset, 2 leechers zset, 3 peer hash, 4 bucket index zset,
--       5 bucket stats hash (all in one cluster slot)
-- ARGV: 1 addr (ip bytes .. port), 2 ip bytes, 3 peer id, 4 now, 5 stale cutoff,
--       6 event (0 none, 1 started, 2 completed, 3 stopped), 7 seeder (0/1), 8 numwant,
--       9 max peers per swarm, 10 max peers per ip (0: no cap), 11 max torrents in this
--       bucket, 12 the swarm's name in the index (info hash hex)
-- Returns {code, complete, incomplete, counted, addr1, id1, addr2, id2, ...};
-- code 0 ok, 1 too many torrents, 2 swarm full, 3 too many peers from the address.
local S, L, P, IX, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local addr, ip, pid = ARGV[1], ARGV[2], ARGV[3]
local now, cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local event, seeder = tonumber(ARGV[6]), ARGV[7] == '1'
local want, maxp, maxip = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local maxt, name = tonumber(ARGV[11]), ARGV[12]

local exists = redis.call('ZSCORE', IX, name)
if not exists then
  -- `stopped` never creates a swarm.
  if event == 3 then return {0, 0, 0, 0} end
  if tonumber(redis.call('HGET', ST, 't') or '0') >= maxt then return {1} end
end

local s0, l0 = redis.call('ZCARD', S), redis.call('ZCARD', L)

-- Forgets a peer's id and its slot in its address's count (the zset entry is gone).
local function drop(a)
  redis.call('HDEL', P, a)
  local i = string.sub(a, 1, -3)
  if redis.call('HINCRBY', P, i, -1) <= 0 then redis.call('HDEL', P, i) end
end

-- Stale peers leave first, a bounded batch per announce so one call stays short; the
-- reaper removes whole swarms nobody announces to.
local function trim(z)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. cutoff, 'LIMIT', 0, 64)
  for _, a in ipairs(gone) do
    redis.call('ZREM', z, a)
    drop(a)
  end
end
trim(S)
trim(L)

-- Keeps the bucket's totals and index exact: every path below ends here. The index
-- score is the swarm's oldest last-seen (0 when empty), so the reaper finds exactly the
-- swarms holding stale peers.
local function reply(code, counted, peers)
  local s1, l1 = redis.call('ZCARD', S), redis.call('ZCARD', L)
  if s1 ~= s0 then redis.call('HINCRBY', ST, 's', s1 - s0) end
  if l1 ~= l0 then redis.call('HINCRBY', ST, 'l', l1 - l0) end
  local a = redis.call('ZRANGE', S, 0, 0, 'WITHSCORES')
  local b = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')
  local m = tonumber(a[2] or b[2] or '0')
  if b[2] and tonumber(b[2]) < m then m = tonumber(b[2]) end
  redis.call('ZADD', IX, m, name)
  local out = {code, s1, l1, counted}
  for _, v in ipairs(peers) do out[#out + 1] = v end
  return out
end

local was = 0 -- 0 unknown, 1 leecher, 2 seeder
if redis.call('ZSCORE', S, addr) then
  was = 2
elseif redis.call('ZSCORE', L, addr) then
  was = 1
end

if event == 3 then
  if was == 2 then
    redis.call('ZREM', S, addr)
    drop(addr)
  elseif was == 1 then
    redis.call('ZREM', L, addr)
    drop(addr)
  end
  if redis.call('ZCARD', S) + redis.call('ZCARD', L) == 0 then
    -- The last peer left: the swarm goes at once (its `downloaded` count with it), as in
    -- the memory store, so the torrent count falls immediately.
    redis.call('DEL', S, L, P)
    redis.call('ZREM', IX, name)
    redis.call('HINCRBY', ST, 't', -1)
    if s0 > 0 then redis.call('HINCRBY', ST, 's', -s0) end
    if l0 > 0 then redis.call('HINCRBY', ST, 'l', -l0) end
    return {0, 0, 0, 0}
  end
  return reply(0, 0, {})
end

if was == 0 then
  if redis.call('ZCARD', S) + redis.call('ZCARD', L) >= maxp then return reply(2, 0, {}) end
  if maxip > 0 and tonumber(redis.call('HGET', P, ip) or '0') >= maxip then
    return reply(3, 0, {})
  end
  redis.call('HINCRBY', P, ip, 1)
end
redis.call('HSET', P, addr, pid)
if seeder then
  redis.call('ZADD', S, now, addr)
  if was == 1 then redis.call('ZREM', L, addr) end
else
  redis.call('ZADD', L, now, addr)
  if was == 2 then redis.call('ZREM', S, addr) end
end
local counted = 0
if event == 2 and was ~= 2 then
  redis.call('HINCRBY', P, 'd', 1)
  counted = 1
end
if not exists then redis.call('HINCRBY', ST, 't', 1) end

-- Up to numwant other peers, picked at random; a seeder is only given leechers.
local picked = {}
local function take(z, n)
  if n <= 0 then return end
  local got
  if redis.call('ZCARD', z) <= n + 1 then
    got = redis.call('ZRANGE', z, 0, -1)
  else
    got = redis.call('ZRANDMEMBER', z, n + 1)
  end
  local k = 0
  for _, a in ipairs(got) do
    if k >= n then break end
    if a ~= addr then
      picked[#picked + 1] = a
      k = k + 1
    end
  end
end
if want > 0 then
  local os = redis.call('ZCARD', S) - (seeder and 1 or 0)
  local ol = redis.call('ZCARD', L) - (seeder and 0 or 1)
  local qs, ql = 0, 0
  if seeder then
    ql = math.min(want, ol)
  elseif os + ol <= want then
    qs, ql = os, ol
  else
    -- Seeders and leechers in proportion to the swarm, topped up from the other side.
    qs = math.floor(want * os / (os + ol) + 0.5)
    ql = math.min(want - qs, ol)
    qs = math.min(want - ql, os)
  end
  take(S, qs)
  take(L, ql)
end
local peers = {}
if #picked > 0 then
  local ids = redis.call('HMGET', P, unpack(picked))
  for i, a in ipairs(picked) do
    peers[#peers + 1] = a
    peers[#peers + 1] = ids[i] or ''
  end
end
return reply(0, counted, peers)
