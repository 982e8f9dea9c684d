-- One announce: KEYS[1], KEYS[2] and ARGV[1 .. 5] as `shared` describes, then the
-- announce's keys and arguments as `announce` describes. Should it fail part-way, the
-- totals of what it wrote are still written (Redis keeps a failed script's writes).
local h = shared(0)
local ok, out = pcall(announce, h, 2, 5, #KEYS - 2)
flush(h)
if not ok then error(out) end
return out
