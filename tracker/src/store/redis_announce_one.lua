-- One announce: KEYS and ARGV as `announce` describes, from the start.
local acc = {}
local out = announce(0, 0, #KEYS, acc)
flush(acc)
return out
