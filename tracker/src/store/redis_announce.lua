-- One announce against one swarm, atomically, in one round trip (layout: redis.rs).
-- KEYS: 1 seeders zset, 2 leechers zset, 3 peer hash, 4 bucket index zset,
--       5 bucket stats hash, 6 and 7 the announcer's label's seeders and leechers zsets
--       (only when it has a label; all in one cluster slot)
-- ARGV: 1 addr (ip bytes .. port), 2 ip bytes, 3 peer id, 4 now, 5 stale cutoff,
--       6 event (0 none, 1 started, 2 completed, 3 stopped), 7 seeder (0/1), 8 numwant,
--       9 max peers per swarm, 10 max peers per ip (0: no cap), 11 max torrents in this
--       bucket, 12 the swarm's name in the index (info hash hex), 13 the announcer's
--       label ('' for none), 14 who it is given: 0 everyone, 1 leechers only,
--       2 leechers then seeders (a left=0 peer's `started`)
-- Returns {code, complete, incomplete, counted, addr1, id1, addr2, id2, ...};
-- code 0 ok, 1 too many torrents, 2 swarm full, 3 too many peers from the address.
local S, L, P, IX, ST = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local LS, LL = KEYS[6], KEYS[7]
local addr, ip, pid = ARGV[1], ARGV[2], ARGV[3]
local now, cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local event, seeder = tonumber(ARGV[6]), ARGV[7] == '1'
local want, maxp, maxip = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local maxt, name = tonumber(ARGV[11]), ARGV[12]
local lab, wanted = ARGV[13], tonumber(ARGV[14])

local exists = redis.call('ZSCORE', IX, name)
if not exists then
  -- `stopped` never creates a swarm.
  if event == 3 then return {0, 0, 0, 0} end
  if tonumber(redis.call('HGET', ST, 't') or '0') >= maxt then return {1} end
end

local s0, l0 = redis.call('ZCARD', S), redis.call('ZCARD', L)

-- The label a peer was stored with ('' for none): its peer-hash value is id .. label.
local function label_of(a)
  local v = redis.call('HGET', P, a)
  if not v or #v <= 20 then return '' end
  return string.sub(v, 21)
end

-- Moves the bucket's count of peers with label `l` by `d`.
local function count_label(l, d)
  if l ~= '' and redis.call('HINCRBY', ST, 'n:' .. l, d) <= 0 then
    redis.call('HDEL', ST, 'n:' .. l)
  end
end

-- Forgets a peer whose entry in zset z is gone: its id, its slot in its address's
-- count, and its entry in its label's copy of z.
local function drop(a, z)
  local l = label_of(a)
  if l ~= '' then
    redis.call('ZREM', z .. ':' .. l, a)
    count_label(l, -1)
  end
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
    drop(a, z)
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
    drop(addr, S)
  elseif was == 1 then
    redis.call('ZREM', L, addr)
    drop(addr, L)
  end
  if redis.call('ZCARD', S) + redis.call('ZCARD', L) == 0 then
    -- The last peer left: the swarm goes at once (its `downloaded` count with it), as in
    -- the memory store, so the torrent count falls immediately. Its label sets emptied
    -- with it (every removal above went through drop).
    redis.call('DEL', S, L, P)
    redis.call('ZREM', IX, name)
    redis.call('HINCRBY', ST, 't', -1)
    if s0 > 0 then redis.call('HINCRBY', ST, 's', -s0) end
    if l0 > 0 then redis.call('HINCRBY', ST, 'l', -l0) end
    return {0, 0, 0, 0}
  end
  return reply(0, 0, {})
end

local old = '' -- the label the peer was stored with
if was == 0 then
  if redis.call('ZCARD', S) + redis.call('ZCARD', L) >= maxp then return reply(2, 0, {}) end
  if maxip > 0 and tonumber(redis.call('HGET', P, ip) or '0') >= maxip then
    return reply(3, 0, {})
  end
  redis.call('HINCRBY', P, ip, 1)
else
  old = label_of(addr)
end
redis.call('HSET', P, addr, pid .. lab)
if seeder then
  redis.call('ZADD', S, now, addr)
  if was == 1 then redis.call('ZREM', L, addr) end
else
  redis.call('ZADD', L, now, addr)
  if was == 2 then redis.call('ZREM', S, addr) end
end
-- A label's zsets hold the same members and scores as the main ones, for its peers.
local kind = seeder and 2 or 1
if old ~= '' and (old ~= lab or was ~= kind) then
  redis.call('ZREM', (was == 2 and S or L) .. ':' .. old, addr)
end
if old ~= lab then
  count_label(old, -1)
  count_label(lab, 1)
end
if lab ~= '' then redis.call('ZADD', seeder and LS or LL, now, addr) end
local counted = 0
if event == 2 and was ~= 2 then
  redis.call('HINCRBY', P, 'd', 1)
  redis.call('HSET', P, 'c', now)
  counted = 1
end
if not exists then redis.call('HINCRBY', ST, 't', 1) end

-- Up to numwant other peers, picked at random: a labelled announcer's own label first,
-- then the rest. A seeder is only given leechers, except on a left=0 peer's `started`,
-- which is given leechers and then seeders (a magnet client without metadata).
local picked, seen = {}, {[addr] = true}
-- Up to n random members of z not picked yet (nor the announcer). At most `skip` of z's
-- members can be among those, so n + skip candidates are always enough.
local function take(z, n, skip)
  if n <= 0 then return end
  local got
  if redis.call('ZCARD', z) <= n + skip then
    got = redis.call('ZRANGE', z, 0, -1)
  else
    got = redis.call('ZRANDMEMBER', z, n + skip)
  end
  local k = 0
  for _, a in ipairs(got) do
    if k >= n then break end
    if not seen[a] then
      seen[a] = true
      picked[#picked + 1] = a
      k = k + 1
    end
  end
end
-- Seeders and leechers in proportion to their numbers, topped up from the other side.
local function split(n, s, l)
  if s + l <= n then return s, l end
  local qs = math.floor(n * s / (s + l) + 0.5)
  local ql = math.min(n - qs, l)
  return math.min(n - ql, s), ql
end
local function room() return want - #picked end
if want > 0 then
  -- Others in the swarm, and of those the ones with the announcer's label. A group's
  -- "rest" pass only runs once every one of its label's peers is picked, so skipping
  -- those (ls or ll of them) and the announcer is all it has to allow for.
  local me_s, me_l = seeder and 1 or 0, seeder and 0 or 1
  local os = redis.call('ZCARD', S) - me_s
  local ol = redis.call('ZCARD', L) - me_l
  local ls, ll = 0, 0
  if lab ~= '' then
    ls = redis.call('ZCARD', LS) - me_s
    ll = redis.call('ZCARD', LL) - me_l
  end
  local rs, rl = math.max(os - ls, 0), math.max(ol - ll, 0)
  if wanted == 0 then
    if lab ~= '' then
      local qs, ql = split(want, ls, ll)
      take(LS, qs, 1)
      take(LL, ql, 1)
    end
    local qs, ql = split(room(), rs, rl)
    take(S, qs, ls + 1)
    take(L, ql, ll + 1)
  else
    if lab ~= '' then take(LL, math.min(room(), ll), 1) end
    take(L, math.min(room(), rl), ll + 1)
    if wanted == 2 then
      if lab ~= '' then take(LS, math.min(room(), ls), 1) end
      take(S, math.min(room(), rs), ls + 1)
    end
  end
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
