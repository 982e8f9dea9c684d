-- One swarm's figures for /swarms/{info_hash}. KEYS: 1 seeders zset, 2 leechers zset,
-- 3 peer hash. ARGV: the configured label names, in order.
-- Returns {complete, incomplete, downloaded, last completed (0: never), then the peers
-- of each label in ARGV order}.
local S, L, P = KEYS[1], KEYS[2], KEYS[3]
local out = {redis.call('ZCARD', S), redis.call('ZCARD', L),
             tonumber(redis.call('HGET', P, 'd') or '0'),
             tonumber(redis.call('HGET', P, 'c') or '0')}
for _, l in ipairs(ARGV) do
  out[#out + 1] = redis.call('ZCARD', S .. ':' .. l) + redis.call('ZCARD', L .. ':' .. l)
end
return out
