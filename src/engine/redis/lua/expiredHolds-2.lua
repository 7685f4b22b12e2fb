--[[
  Live holds whose window ended before a time, oldest first (ties by hold id).
  Input:  KEYS[1] holdexp, KEYS[2] holds
          ARGV[1] before (epoch ms), ARGV[2] limit (-1: no limit)
  Output: flat list holdId, hold JSON, holdId, hold JSON, ...
]]
local rcall = redis.call

local ids = rcall('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = rcall('HGET', KEYS[2], id)
end
return out
