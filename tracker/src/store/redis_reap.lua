-- Reaps one bucket: every swarm whose index score (a lower bound of its oldest peer's
-- last-seen) is below the cutoff loses its stale peers (from their label's zsets too)
-- and gets its exact oldest as its score; swarms left empty are deleted. Totals, and
-- peers per label, stay exact.
-- KEYS: 1 bucket index zset, 2 bucket stats hash. ARGV: 1 cutoff, 2 most swarms per call
-- Returns {peers removed, swarms removed, swarms looked at}; looked at == ARGV[2] means
-- call again.
local IX, ST = KEYS[1], KEYS[2]
local cutoff = tonumber(ARGV[1])
local names = redis.call('ZRANGEBYSCORE', IX, '-inf', '(' .. cutoff, 'LIMIT', 0, tonumber(ARGV[2]))
local seeders, leechers, swarms = 0, 0, 0
for _, h in ipairs(names) do
  local s, l, p = '{' .. h .. '}s', '{' .. h .. '}l', '{' .. h .. '}p'
  local function trim(z)
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. cutoff, 'LIMIT', 0, 10000)
    for _, a in ipairs(gone) do
      redis.call('ZREM', z, a)
      -- Its label's copy of z, and the label's total (peer-hash value: id .. label).
      local v = redis.call('HGET', p, a)
      if v and #v > 20 then
        local l = string.sub(v, 21)
        redis.call('ZREM', z .. ':' .. l, a)
        if redis.call('HINCRBY', ST, 'n:' .. l, -1) <= 0 then redis.call('HDEL', ST, 'n:' .. l) end
      end
      redis.call('HDEL', p, a)
      local i = string.sub(a, 1, -3)
      if redis.call('HINCRBY', p, i, -1) <= 0 then redis.call('HDEL', p, i) end
    end
    return #gone
  end
  seeders = seeders + trim(s)
  leechers = leechers + trim(l)
  local a = redis.call('ZRANGE', s, 0, 0, 'WITHSCORES')
  local b = redis.call('ZRANGE', l, 0, 0, 'WITHSCORES')
  if not a[2] and not b[2] then
    redis.call('DEL', s, l, p)
    redis.call('ZREM', IX, h)
    swarms = swarms + 1
  else
    local m = tonumber(a[2] or b[2])
    if b[2] and tonumber(b[2]) < m then m = tonumber(b[2]) end
    redis.call('ZADD', IX, m, h)
  end
end
if swarms > 0 then redis.call('HINCRBY', ST, 't', -swarms) end
if seeders > 0 then redis.call('HINCRBY', ST, 's', -seeders) end
if leechers > 0 then redis.call('HINCRBY', ST, 'l', -leechers) end
return {seeders + leechers, swarms, #names}
