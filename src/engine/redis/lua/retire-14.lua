--[[
  Lets a sale's data go after its retention period: every key of the sale expires then (the
  ledger keeps the record; the engine can rebuild from it if the sale is ever needed again).
  Input:  KEYS[1..14] every key of the sale
          ARGV[1] milliseconds until they expire
  Output: how many keys will expire
]]
local n = 0
for _, key in ipairs(KEYS) do n = n + redis.call('PEXPIRE', key, ARGV[1]) end
return n
