--[[
  Returns a live hold's units to stock and to the user's allowance. Exactly once per hold.
  Input:  KEYS[1] holds, KEYS[2] holdexp, KEYS[3] stock, KEYS[4] peruser, KEYS[5] meta
          ARGV[1] holdId
  Output: 1 released, 0 not live (confirmed, released, or never there)
]]
local rcall = redis.call
--- @include "includes/holds"

local raw = rcall('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local hold = decodeHold(raw)
local userField = hold.userId .. '\t' .. hold.sku
rcall('HDEL', KEYS[1], ARGV[1])
rcall('ZREM', KEYS[2], ARGV[1])
rcall('HSET', KEYS[3], hold.sku, fmt(tonumber(rcall('HGET', KEYS[3], hold.sku) or '0') + hold.quantity))
rcall('HSET', KEYS[4], userField, fmt(tonumber(rcall('HGET', KEYS[4], userField) or '0') - hold.quantity))
rcall('HSET', KEYS[5], 'held', fmt(tonumber(rcall('HGET', KEYS[5], 'held')) - hold.quantity))
return 1
