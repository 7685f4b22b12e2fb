--[[
  One admission-controller step: moves the watermark by what the rate, the active cap and the
  stock allow. Allowance accrues at the admission rate since the last step (at most one second's
  worth, and at least one ticket) and carries over only while people wait for it.
  Input:  KEYS[1] meta, KEYS[2] stock, KEYS[3] active, KEYS[4] wmlog, KEYS[5] pre
  Output: {watermark, admitted}, or -1 (no such sale)
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/clock"
--- @include "includes/fmt"
--- @include "includes/sale"
--- @include "includes/draw"

local sale = readSale(KEYS[1])
if not sale then return REFUSAL.SALE_NOT_FOUND end
local now = nowMs()

local function idle()
  rcall('HSET', KEYS[1], 'lastTickAt', fmt(now), 'carry', '0')
  return { sale.watermark, 0 }
end

if sale.cancelled or now < sale.startsAt or now >= sale.endsAt then return idle() end
if sale.mode == 'randomized_prequeue' then draw(KEYS[1], sale) end
local stock = 0
for _, units in ipairs(rcall('HVALS', KEYS[2])) do stock = stock + tonumber(units) end
if stock <= 0 then return idle() end

-- Admissions that lapsed unused free their slots.
local lapsed = now - sale.admittedTtl * 1000
rcall('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(lapsed))
local tokens = math.min(sale.carry + ((now - sale.lastTickAt) * sale.rate) / 1000, math.max(1, sale.rate))
local room = sale.maxActive - rcall('ZCARD', KEYS[3])
local waiting = rcall('ZCARD', KEYS[5]) + sale.seq - sale.watermark
local n = math.max(0, math.floor(math.min(tokens, room, waiting)))

local at = fmt(now)
local batch = {}
for i = 1, n do
  batch[#batch + 1] = at
  batch[#batch + 1] = fmt(sale.watermark + i)
  if #batch >= 1000 or i == n then
    rcall('ZADD', KEYS[3], unpack(batch))
    batch = {}
  end
end
local watermark = sale.watermark + n
if n > 0 then rcall('ZADD', KEYS[4], fmt(watermark), fmt(watermark) .. ':' .. at) end
local carry = 0
if waiting > n then carry = tokens - n end
rcall('HSET', KEYS[1], 'watermark', fmt(watermark), 'carry', fmt(carry), 'lastTickAt', at)
return { watermark, n }
