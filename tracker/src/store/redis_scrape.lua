-- One swarm's scrape figures. KEYS: 1 seeders zset, 2 leechers zset, 3 peer hash
-- Returns {complete, incomplete, downloaded}.
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]),
        tonumber(redis.call('HGET', KEYS[3], 'd') or '0')}
