-- Announces, atomically, in one round trip (layout: redis.rs). The entry point after this
-- file (appended by redis.rs) runs one announce or a batch of them: it reads what they
-- share with `shared`, runs `announce` for each, then writes the bucket's totals with
-- `flush`.
-- Shared by the announces of one call: KEYS[1] the bucket's index zset, KEYS[2] its
--       stats hash; ARGV (from `shared`'s a): 1 now, 2 stale cutoff, 3 max peers per
--       swarm, 4 max peers per ip (0: no cap), 5 max torrents in the bucket.
-- `announce(h, ko, ao, nk)` makes one announce against one swarm from KEYS[ko + 1 ..]
-- (nk keys, 3 or 5) and ARGV[ao + 1 .. ao + 7]:
-- KEYS (from ko): 1 seeders zset, 2 leechers zset, 3 peer hash, 4 and 5 the announcer's
--       label's seeders and leechers zsets (only when it has a label; all in one
--       cluster slot)
-- ARGV (from ao): 1 addr (ip bytes .. port), 2 ip bytes, 3 peer id, 4 flags, one digit
--       each: the event (0 none, 1 started, 2 completed, 3 stopped), seeder (0/1), who
--       it is given (0 everyone, 1 leechers only, 2 leechers then seeders: a left=0
--       peer's `started`), whether the reply needs the peers' ids (1/0; compact and
--       no_peer_id replies do not), whether the per-ip cap applies to it (1/0); 5 numwant
--       + 1 (peers wanted, and the announcer who may be among those sampled), 6 the
--       swarm's name in the index (info hash hex), 7 the announcer's label ('' for none)
-- announce returns {code, complete, incomplete, counted, then the peers}: with ids, addr1, id1,
-- addr2, id2, ...; without, the addresses joined in one string, followed (only when some
-- are IPv6) by a string of their lengths, one byte each (6 or 18). Code 0 ok, 1 too many
-- torrents, 2 swarm full, 3 too many peers from the address.
--
-- Redis runs one script at a time on one core, and in a script each redis.call, each
-- string handed to or from Lua (KEYS and ARGV included), each string turned into a
-- number (a strtod, twice for `tonumber`) and each closure made costs time; so the announce path makes as few calls
-- as it can (counts are kept in locals instead of re-read; for most announces the
-- sample for the reply also gives the swarm's counts; a newcomer's entry is written by
-- HSETNX without reading it first; stale peers are only looked for when the index says
-- there may be some; the index is only written when its figure moves; bucket totals
-- are written once per script call, not per announce), takes what a call's announces
-- share once (the bucket's keys, the time, the caps) and an announce's flags as one
-- string, converts numbers only where it computes with them, hands numbers to
-- Redis as strings, returns the peers of a compact reply as one string rather than one
-- element each, and defines its helpers once per script call.

-- What the announces of one call share (ARGV[a + 1 ..]), with the changes they make to
-- the bucket's totals, written once at the end: torrents (t), seeders (s), leechers
-- (l), and the torrent count read from the stats hash (base, read once).
local function shared(a)
  return {
    IX = KEYS[1], ST = KEYS[2],
    now_s = ARGV[a + 1], now = ARGV[a + 1] + 0,
    cutoff_s = ARGV[a + 2], cutoff = ARGV[a + 2] + 0,
    maxp = ARGV[a + 3] + 0, maxip = ARGV[a + 4] + 0, maxt = ARGV[a + 5] + 0,
    t = 0, s = 0, l = 0,
  }
end

-- Writes the changes to the bucket's totals.
local function flush(h)
  if h.t ~= 0 then redis.call('HINCRBY', h.ST, 't', h.t) end
  if h.s ~= 0 then redis.call('HINCRBY', h.ST, 's', h.s) end
  if h.l ~= 0 then redis.call('HINCRBY', h.ST, 'l', h.l) end
end

-- Moves the count of peers with label `lb` in bucket ST by `d` (a string).
local function count_label(ST, lb, d)
  if lb ~= '' and redis.call('HINCRBY', ST, 'n:' .. lb, d) <= 0 then
    redis.call('HDEL', ST, 'n:' .. lb)
  end
end

-- The label a peer-hash value (id .. label, or false for none) was stored with.
local function label_of(v)
  return (v and #v > 20) and string.sub(v, 21) or ''
end

-- Forgets a peer `a` of peer hash P whose entry in zset z is gone: its id, its slot in
-- its address's count, and (label `lb`) its entry in its label's copy of z.
local function drop(P, ST, a, z, lb)
  if lb ~= '' then
    redis.call('ZREM', z .. ':' .. lb, a)
    count_label(ST, lb, '-1')
  end
  redis.call('HDEL', P, a)
  local i = string.sub(a, 1, -3)
  if redis.call('HINCRBY', P, i, '-1') <= 0 then redis.call('HDEL', P, i) end
end

-- Up to k random members of zset z (all of them when it has fewer) and z's size: the
-- sample's own length when it is smaller than k, else a ZCARD. k is a number and k_s
-- the same as a string (a number argument would be formatted by snprintf).
local function sample(z, k, k_s)
  local got = redis.call('ZRANDMEMBER', z, k_s)
  if #got < k then return got, #got end
  return got, redis.call('ZCARD', z)
end

-- Appends to `picked` up to n random members of zset z (which has `size` members) that
-- are neither the announcer `me` nor (when `seen` is kept: a label's zsets overlap the
-- main ones) picked already. At most `skip` of z's members can be among those, so n +
-- skip candidates are always enough: `got` when a sample of at least that many (or all
-- of z) was taken already, else fetched here. The candidates are read from a random
-- place onwards, wrapping round: a ZRANDMEMBER reply (like ZRANGE) comes in the zset's
-- order, by score, so reading from the front would hand out the same oldest peers every
-- time and never the newest.
local function take(picked, z, size, n, skip, me, seen, got)
  if n <= 0 or size <= 0 then return end
  if not got then
    if size <= n + skip then
      got = redis.call('ZRANGE', z, '0', '-1')
    else
      got = redis.call('ZRANDMEMBER', z, n + skip)
    end
  end
  local m = #got
  local from = m > n and math.random(m) - 1 or 0
  local k = 0
  for j = 0, m - 1 do
    if k >= n then break end
    local a = got[(from + j) % m + 1]
    if seen then
      if not seen[a] then
        seen[a] = true
        picked[#picked + 1] = a
        k = k + 1
      end
    elseif a ~= me then
      picked[#picked + 1] = a
      k = k + 1
    end
  end
end

local function announce(h, ko, ao, nk)
  local S, L, P = KEYS[ko + 1], KEYS[ko + 2], KEYS[ko + 3]
  local LS, LL
  if nk == 5 then LS, LL = KEYS[ko + 4], KEYS[ko + 5] end
  local IX, ST, now_s = h.IX, h.ST, h.now_s
  local addr, ip, pid = ARGV[ao + 1], ARGV[ao + 2], ARGV[ao + 3]
  -- The flags as numbers (48 is '0'), from one call.
  local event, seeder, wanted, ids, capped = string.byte(ARGV[ao + 4], 1, 5)
  event, seeder, wanted, ids, capped = event - 48, seeder == 49, wanted - 48, ids == 49, capped == 49
  local want_more = ARGV[ao + 5]
  local want = want_more - 1
  local name, lab = ARGV[ao + 6], ARGV[ao + 7]

  -- The swarm's index score: a lower bound of its oldest peer's last-seen (0 when empty).
  -- Every script that removes peers or adds older ones lowers or recomputes it, so a
  -- swarm whose score is not below the cutoff holds no stale peer.
  local m0 = redis.call('ZSCORE', IX, name)
  local exists = m0 ~= false
  if exists then
    m0 = m0 + 0
  else
    -- `stopped` never creates a swarm.
    if event == 3 then return {0, 0, 0, 0} end
    if not h.base then h.base = tonumber(redis.call('HGET', ST, 't') or '0') end
    if h.base + h.t >= h.maxt then return {1} end
    m0 = 0
  end

  -- Stale peers leave first, a bounded batch per announce so one call stays short; the
  -- reaper removes whole swarms nobody announces to. Only when the index score says
  -- there may be stale peers, which in a live swarm is rare.
  local trimmed = exists and m0 < h.cutoff
  local gone_s, gone_l = 0, 0
  if trimmed then
    for _, z in ipairs({S, L}) do
      local gone = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. h.cutoff_s, 'LIMIT', '0', '64')
      for _, a in ipairs(gone) do
        redis.call('ZREM', z, a)
        local v = redis.call('HGET', P, a)
        drop(P, ST, a, z, label_of(v))
      end
      if z == S then gone_s = #gone else gone_l = #gone end
    end
  end

  -- The swarm's counts (s, l), kept equal to its ZCARDs below, and before this announce
  -- (s0, l0). An unlabelled announce that wants peers gets them with its candidates:
  -- want + 1 of each side it may be given (the announcer may be among them), taken
  -- before it joins.
  local s, l, got_s, got_l
  if lab == '' and want > 0 then
    if wanted == 1 then
      s = redis.call('ZCARD', S)
    else
      got_s, s = sample(S, want + 1, want_more)
    end
    got_l, l = sample(L, want + 1, want_more)
  else
    s, l = redis.call('ZCARD', S), redis.call('ZCARD', L)
  end
  local s0, l0 = s + gone_s, l + gone_l

  -- What the announce ends with: a code (0 ok, 2 swarm full, 3 too many from the
  -- address), whether a completion was counted, the reply table (its first four slots
  -- left for the figures), and whether the announcer is in the swarm.
  local code, counted, out, here = 0, 0, nil, false
  -- One pass; `break` jumps to the bookkeeping after it.
  repeat
    local kind = seeder and 2 or 1
    local Z, O = S, L -- the zset the announcer goes to, and the other one
    if not seeder then Z, O = L, S end

    if event == 3 then
      -- The announcer's peer-hash entry (id .. label): present exactly while it is in S or L.
      local v = redis.call('HGET', P, addr)
      if v then
        -- Where it most likely is first (a peer's `left` rarely changes at its stop).
        local z
        if redis.call('ZREM', Z, addr) == 1 then
          z = Z
        elseif redis.call('ZREM', O, addr) == 1 then
          z = O
        end
        if z then
          drop(P, ST, addr, z, label_of(v))
          if z == S then s = s - 1 else l = l - 1 end
        end
      end
      if s + l == 0 then
        -- The last peer left: the swarm goes at once (its `downloaded` count with it), as
        -- in the memory store, so the torrent count falls immediately. Its label sets
        -- emptied with it (every removal above went through drop).
        redis.call('DEL', S, L, P)
        redis.call('ZREM', IX, name)
        h.t, h.s, h.l = h.t - 1, h.s - s0, h.l - l0
        return {0, 0, 0, 0}
      end
      out = {0, 0, 0, 0}
      break
    end

    -- The announcer's peer-hash entry (id .. label): present exactly while it is in S or
    -- L. A newcomer's is written at once (one call on the common path) and taken back
    -- when a cap refuses it (a refusal so costs a write and its undo, which replicas see
    -- too: refusals are rare, newcomers are not); a known peer's is read.
    local val = pid .. lab
    local v = false
    if redis.call('HSETNX', P, addr, val) == 0 then v = redis.call('HGET', P, addr) end
    local old = label_of(v) -- the label it was stored with
    if not v then
      if s + l >= h.maxp then
        redis.call('HDEL', P, addr)
        code, out = 2, {0, 0, 0, 0}
        break
      end
      -- Counted first and taken back when over the cap: one call on the common path.
      local n = redis.call('HINCRBY', P, ip, '1')
      if capped and h.maxip > 0 and n > h.maxip then
        -- n > maxip >= 1: the field held a count before, so it stays.
        redis.call('HINCRBY', P, ip, '-1')
        redis.call('HDEL', P, addr)
        code, out = 3, {0, 0, 0, 0}
        break
      end
    elseif v ~= val then
      redis.call('HSET', P, addr, val)
    end
    here = true
    -- Where a known peer was follows from the ZADD: already in Z, or new there and so
    -- taken out of O.
    local was = 0 -- 0 new, 1 leecher, 2 seeder
    if redis.call('ZADD', Z, now_s, addr) == 0 then
      was = kind
    elseif v then
      if redis.call('ZREM', O, addr) == 1 then
        was = 3 - kind
      else
        -- In neither zset although its entry is there (not left by these scripts): it is
        -- counted as new, its address included.
        redis.call('HINCRBY', P, ip, '1')
        old = ''
      end
    end
    if was ~= kind then
      if seeder then s = s + 1 else l = l + 1 end
      if was == 1 then l = l - 1 elseif was == 2 then s = s - 1 end
    end
    -- A label's zsets hold the same members and scores as the main ones, for its peers.
    if old ~= '' and (old ~= lab or was ~= kind) then
      redis.call('ZREM', (was == 2 and S or L) .. ':' .. old, addr)
    end
    if old ~= lab then
      count_label(ST, old, '-1')
      count_label(ST, lab, '1')
    end
    if lab ~= '' then redis.call('ZADD', seeder and LS or LL, now_s, addr) end
    if event == 2 and was ~= 2 then
      redis.call('HINCRBY', P, 'd', '1')
      redis.call('HSET', P, 'c', now_s)
      counted = 1
    end
    if not exists then h.t = h.t + 1 end

    -- Up to numwant other peers, picked at random: a labelled announcer's own label
    -- first, then the rest. A seeder is only given leechers, except on a left=0 peer's
    -- `started`, which is given leechers and then seeders (a magnet client without
    -- metadata).
    local picked = {}
    -- Peers already picked, the announcer among them. Only needed with a label: its
    -- zsets are subsets of the main ones, while S and L are disjoint.
    local seen = lab ~= '' and {[addr] = true} or nil
    if want > 0 then
      -- Others in the swarm, and of those the ones with the announcer's label. A group's
      -- "rest" pass only runs once every one of its label's peers is picked, so skipping
      -- those (ls or ll of them) and the announcer is all it has to allow for.
      local me_s, me_l = seeder and 1 or 0, seeder and 0 or 1
      local os, ol = s - me_s, l - me_l
      local ls, ll = 0, 0
      local zls, zll = 0, 0
      if lab ~= '' then
        zls, zll = redis.call('ZCARD', LS), redis.call('ZCARD', LL)
        ls, ll = zls - me_s, zll - me_l
      end
      local rs, rl = math.max(os - ls, 0), math.max(ol - ll, 0)
      if wanted == 0 then
        -- Seeders and leechers in proportion to their numbers, topped up from the other
        -- side: first among the label's peers, then among the rest.
        for pass = (lab ~= '' and 1 or 2), 2 do
          local n, ns, nl = want - #picked, ls, ll
          if pass == 2 then ns, nl = rs, rl end
          local qs, ql = ns, nl
          if ns + nl > n then
            qs = math.floor(n * ns / (ns + nl) + 0.5)
            ql = math.min(n - qs, nl)
            qs = math.min(n - ql, ns)
          end
          if pass == 1 then
            take(picked, LS, zls, qs, 1, addr, seen)
            take(picked, LL, zll, ql, 1, addr, seen)
          else
            take(picked, S, s, qs, ls + 1, addr, seen, got_s)
            take(picked, L, l, ql, ll + 1, addr, seen, got_l)
          end
        end
      else
        if lab ~= '' then take(picked, LL, zll, math.min(want - #picked, ll), 1, addr, seen) end
        take(picked, L, l, math.min(want - #picked, rl), ll + 1, addr, seen, got_l)
        if wanted == 2 then
          if lab ~= '' then take(picked, LS, zls, math.min(want - #picked, ls), 1, addr, seen) end
          take(picked, S, s, math.min(want - #picked, rs), ls + 1, addr, seen, got_s)
        end
      end
    end
    if ids then
      out = {0, 0, 0, 0}
      if #picked > 0 then
        local got = redis.call('HMGET', P, unpack(picked))
        for i, a in ipairs(picked) do
          out[#out + 1] = a
          out[#out + 1] = got[i] or ''
        end
      end
    else
      local joined = table.concat(picked)
      if #joined == 6 * #picked then
        out = {0, 0, 0, 0, joined}
      else
        -- Some IPv6 peers: their order kept, with each address's length to split them by.
        local lens = {}
        for i, a in ipairs(picked) do lens[i] = #a == 6 and '\6' or '\18' end
        out = {0, 0, 0, 0, joined, table.concat(lens)}
      end
    end
  until true

  -- Keeps the bucket's totals and index right: every path that keeps the swarm ends here.
  h.s, h.l = h.s + s - s0, h.l + l - l0
  -- A refused announce to a swarm that did not exist created nothing.
  if not exists and not here then return {code, 0, 0, 0} end
  -- Without removals the peers other than the announcer are among those that were there,
  -- none older than m0, and the announcer is seen at `now`: min(m0, now) stays a lower
  -- bound. So the oldest is only read after removals (a trim), or when a swarm had peers
  -- but no index entry.
  local now = h.now
  local m
  if trimmed or (not exists and s0 + l0 > 0) then
    if s + l == 0 then
      m = 0
    else
      local a = redis.call('ZRANGE', S, '0', '0', 'WITHSCORES')
      local b = redis.call('ZRANGE', L, '0', '0', 'WITHSCORES')
      m = tonumber(a[2] or b[2])
      if b[2] and tonumber(b[2]) < m then m = tonumber(b[2]) end
    end
  elseif s0 + l0 == 0 then
    m = here and now or 0
  else
    m = m0
    if here and now < m then m = now end
  end
  if not exists or m ~= m0 then
    redis.call('ZADD', IX, m == now and now_s or m, name)
  end
  out[1], out[2], out[3], out[4] = code, s, l, counted
  return out
end
