-- A batch of announces, run in order (a later one sees what an earlier one wrote).
-- ARGV[1]: one digit per announce, its number of keys (5 or 7); then 15 arguments per
-- announce. KEYS: each announce's keys in turn. Returns one reply per announce. The
-- bucket totals are written once, after the last.
local counts, out, acc = ARGV[1], {}, {}
local ko, ao = 0, 1
for i = 1, #counts do
  local nk = string.byte(counts, i) - 48
  out[i] = announce(ko, ao, nk, acc)
  ko, ao = ko + nk, ao + 15
end
flush(acc)
return out
