--[[
  Releases a lease if (and only if) the caller owns it.
  Input:  KEYS[1] lease
          ARGV[1] owner
  Output: 1 released, 0 not the owner's
]]
local rcall = redis.call

if rcall('GET', KEYS[1]) ~= ARGV[1] then return 0 end
rcall('DEL', KEYS[1])
return 1
