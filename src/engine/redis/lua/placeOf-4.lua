--[[
  A user's place: their queue place, their drawn place, or their shadow place.
  Input:  KEYS[1] meta, KEYS[2] places, KEYS[3] pre, KEYS[4] shadow
          ARGV[1] userId
  Output: the place; nil when the user has none (or waits for the draw); -1 no such sale
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/clock"
--- @include "includes/sale"
--- @include "includes/draw"

local sale = readSale(KEYS[1])
if not sale then return REFUSAL.SALE_NOT_FOUND end
if sale.mode == 'randomized_prequeue' and nowMs() >= sale.startsAt then draw(KEYS[1], sale) end
local user = ARGV[1]

local placed = rcall('HGET', KEYS[2], user)
if placed then return tonumber(placed) end
if sale.drawn then
  local rank = rcall('ZRANK', KEYS[3], user)
  if rank then return rank + 1 end
end
local shadow = rcall('HGET', KEYS[4], user)
if shadow then return tonumber(shadow) end
return false
