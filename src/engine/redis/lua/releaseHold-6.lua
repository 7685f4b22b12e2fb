--[[
  Returns a live hold's units to stock and to the user's allowance. Exactly once per hold.
  With an idempotency field, also forgets that key when it still names this hold and the hold is
  no longer live (released now, or before): the hold's order was never recorded, so a retry with
  the key must run again.
  Input:  KEYS[1] holds, KEYS[2] holdexp, KEYS[3] stock, KEYS[4] peruser, KEYS[5] meta, KEYS[6] idem
          ARGV[1] holdId, ARGV[2] idempotency field (user TAB key) or ''
  Output: 1 released, 0 not live (confirmed, released, or never there)
]]
local rcall = redis.call
--- @include "includes/holds"

local function forget()
  if ARGV[2] == '' then return end
  local first = rcall('HGET', KEYS[6], ARGV[2])
  if first and cjson.decode(first)[2] == ARGV[1] then rcall('HDEL', KEYS[6], ARGV[2]) end
end

local raw = rcall('HGET', KEYS[1], ARGV[1])
if not raw then
  forget()
  return 0
end
local hold = decodeHold(raw)
local userField = hold.userId .. '\t' .. hold.sku
rcall('HDEL', KEYS[1], ARGV[1])
rcall('ZREM', KEYS[2], ARGV[1])
rcall('HSET', KEYS[3], hold.sku, fmt(tonumber(rcall('HGET', KEYS[3], hold.sku) or '0') + hold.quantity))
rcall('HSET', KEYS[4], userField, fmt(tonumber(rcall('HGET', KEYS[4], userField) or '0') - hold.quantity))
rcall('HSET', KEYS[5], 'held', fmt(tonumber(rcall('HGET', KEYS[5], 'held')) - hold.quantity))
forget()
return 1
