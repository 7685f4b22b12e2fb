--[[
  Applies changed settings. Each SKU's stock moves by the change in its quantity (a new SKU
  starts at its quantity); a SKU may only be dropped while none of it is sold or held.
  Input:  KEYS[1] meta, KEYS[2] items, KEYS[3] stock
          ARGV[1] JSON flat field/value list of the sale's settings
          ARGV[2] JSON list of items [sku, quantity, perUserLimit, maxPerOrder], in order
  Output: 1, or -1 (no such sale), -13 (stock would go below zero, or a sold SKU dropped)
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/fmt"
--- @include "includes/sale"
--- @include "includes/batched"

if rcall('EXISTS', KEYS[1]) == 0 then return REFUSAL.SALE_NOT_FOUND end
local items = cjson.decode(ARGV[2])

local function stockOf(sku)
  return tonumber(rcall('HGET', KEYS[3], sku) or '0')
end

-- Everything is checked before anything is written.
local nextStock, order = {}, {}
for _, item in ipairs(items) do
  local sku, quantity = item[1], item[2]
  local old = rcall('HGET', KEYS[2], sku)
  local value = quantity
  if old then value = stockOf(sku) + quantity - parseItem(old).quantity end
  if value < 0 then return REFUSAL.INVALID_SALE end
  if nextStock[sku] == nil then order[#order + 1] = sku end
  nextStock[sku] = value
end
local oldItems = rcall('HGETALL', KEYS[2])
for i = 1, #oldItems, 2 do
  local sku = oldItems[i]
  if nextStock[sku] == nil and stockOf(sku) ~= parseItem(oldItems[i + 1]).quantity then return REFUSAL.INVALID_SALE end
end

local stockArgs, itemArgs, seen = {}, {}, {}
for _, sku in ipairs(order) do
  stockArgs[#stockArgs + 1] = sku
  stockArgs[#stockArgs + 1] = fmt(nextStock[sku])
end
for _, item in ipairs(items) do
  -- The first item of a SKU is the one that counts, as in the ledger's list.
  if not seen[item[1]] then
    seen[item[1]] = true
    itemArgs[#itemArgs + 1] = item[1]
    itemArgs[#itemArgs + 1] = fmt(item[2]) .. '|' .. fmt(item[3]) .. '|' .. fmt(item[4])
  end
end
rcall('DEL', KEYS[2], KEYS[3])
batched('HSET', KEYS[2], itemArgs)
batched('HSET', KEYS[3], stockArgs)
batched('HSET', KEYS[1], cjson.decode(ARGV[1]))
return 1
