--[[
  Acquires a named lease, or renews it for its owner.
  Input:  KEYS[1] lease
          ARGV[1] owner, ARGV[2] ttl in ms
  Output: 1 while the owner holds the lease, 0 when another does
]]
local rcall = redis.call

local holder = rcall('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[2])
-- A lease that lapses at once leaves the name free, as if it had been taken and expired.
if ttl <= 0 then
  rcall('DEL', KEYS[1])
else
  rcall('SET', KEYS[1], ARGV[1], 'PX', math.ceil(ttl))
end
return 1
