--[[
  Makes a live hold permanent: its units stay taken and the hold is forgotten.
  Input:  KEYS[1] holds, KEYS[2] holdexp, KEYS[3] meta
          ARGV[1] holdId
  Output: 1 confirmed, 0 not live (confirmed, released, or never there)
]]
local rcall = redis.call
--- @include "includes/holds"

local raw = rcall('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
rcall('HDEL', KEYS[1], ARGV[1])
rcall('ZREM', KEYS[2], ARGV[1])
rcall('HSET', KEYS[3], 'held', fmt(tonumber(rcall('HGET', KEYS[3], 'held')) - decodeHold(raw).quantity))
return 1
