-- One announce: KEYS[1], KEYS[2] and ARGV[1 .. 5] as `shared` describes, then the
-- announce's keys and arguments as `announce` describes.
local h = shared(0)
local out = announce(h, 2, 5, #KEYS - 2)
flush(h)
return out
