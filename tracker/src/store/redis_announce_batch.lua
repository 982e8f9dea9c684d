-- A batch of announces, run in order (a later one sees what an earlier one wrote).
-- KEYS: the two that `shared` reads, then each announce's keys in turn. ARGV[1]: one
-- digit per announce, its number of keys (3 or 5); ARGV[2 .. 6] as `shared` reads them;
-- then 7 arguments per announce. Returns one reply per announce. The bucket's totals
-- are written once, after the last, or after the one that failed (Redis keeps a failed
-- script's writes, so the totals of those must be kept too).
local counts, out = ARGV[1], {}
local h = shared(1)
local ok, err = pcall(function()
  local ko, ao = 2, 6
  for i = 1, #counts do
    local nk = string.byte(counts, i) - 48
    out[i] = announce(h, ko, ao, nk)
    ko, ao = ko + nk, ao + 7
  end
end)
flush(h)
if not ok then error(err) end
return out
