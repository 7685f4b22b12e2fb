--[[
  The atomic purchase step. Checks, in this order: idempotency (a used key answers its first
  hold, or is refused with other parameters), sale open, ticket admitted and its window not
  lapsed, item, per-order maximum, per-user limit, stock; then takes a hold.
  Input:  KEYS[1] meta, KEYS[2] items, KEYS[3] stock, KEYS[4] holds, KEYS[5] holdexp,
          KEYS[6] peruser, KEYS[7] idem, KEYS[8] active, KEYS[9] wmlog, KEYS[10] buyers
          ARGV[1] userId, ARGV[2] place, ARGV[3] sku, ARGV[4] quantity, ARGV[5] idempotency key,
          ARGV[6] fingerprint, ARGV[7] holdId
  Output: {1, expiresAt, remaining} a new hold; {2, holdId} a replay of the key's first hold;
          or a refusal: -1 no sale, -2 not open, -3 ended, -4 cancelled, -5 not admitted,
          -6 admission expired, -7 key reused, -8 unknown sku, -9 order too large,
          -10 limit reached, -11 sold out, -12 insufficient stock
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/clock"
--- @include "includes/fmt"
--- @include "includes/sale"
--- @include "includes/holds"

local sale = readSale(KEYS[1])
if not sale then return REFUSAL.SALE_NOT_FOUND end
local now = nowMs()
local user, sku, fingerprint, holdId = ARGV[1], ARGV[3], ARGV[6], ARGV[7]
local place, quantity = tonumber(ARGV[2]), tonumber(ARGV[4])

local idemField = user .. '\t' .. ARGV[5]
local first = rcall('HGET', KEYS[7], idemField)
if first then
  first = cjson.decode(first)
  if first[1] ~= fingerprint then return REFUSAL.IDEMPOTENCY_KEY_REUSED end
  return { 2, first[2] }
end

if sale.cancelled then return REFUSAL.SALE_CANCELLED end
if now < sale.startsAt then return REFUSAL.SALE_NOT_OPEN end
if now >= sale.endsAt then return REFUSAL.SALE_ENDED end
if place < 1 or place > sale.watermark then return REFUSAL.NOT_ADMITTED end
-- Admitted when the watermark first reached the place.
local admittedAt = 0
local advance = rcall('ZRANGEBYSCORE', KEYS[9], fmt(place), '+inf', 'LIMIT', 0, 1)[1]
if advance then admittedAt = tonumber(string.sub(advance, string.find(advance, ':', 1, true) + 1)) end
if now >= admittedAt + sale.admittedTtl * 1000 then return REFUSAL.ADMISSION_EXPIRED end
local spec = rcall('HGET', KEYS[2], sku)
if not spec then return REFUSAL.UNKNOWN_SKU end
local item = parseItem(spec)
if quantity > item.maxPerOrder then return REFUSAL.ORDER_TOO_LARGE end
local userField = user .. '\t' .. sku
local units = tonumber(rcall('HGET', KEYS[6], userField) or '0')
if units + quantity > item.perUserLimit then return REFUSAL.LIMIT_REACHED end
local stock = tonumber(rcall('HGET', KEYS[3], sku) or '0')
if stock <= 0 then return REFUSAL.SOLD_OUT end
if stock < quantity then return REFUSAL.INSUFFICIENT_STOCK end

local expiresAt = now + sale.reservationTtl * 1000
local held = sale.held + quantity
local replaced = rcall('HGET', KEYS[4], holdId)
if replaced then held = held - decodeHold(replaced).quantity end
rcall('HSET', KEYS[3], sku, fmt(stock - quantity))
rcall('HSET', KEYS[6], userField, fmt(units + quantity))
rcall('HSET', KEYS[4], holdId, encodeHold(user, sku, quantity, expiresAt, ARGV[5]))
rcall('ZADD', KEYS[5], fmt(expiresAt), holdId)
rcall('HSET', KEYS[7], idemField, cjson.encode({ fingerprint, holdId }))
rcall('ZREM', KEYS[8], fmt(place))
rcall('RPUSH', KEYS[10], user)
rcall('HSET', KEYS[1], 'held', fmt(held))
return { 1, fmt(expiresAt), fmt(stock - quantity) }
