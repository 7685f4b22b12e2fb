--[[
  Gives a user a place in the queue, or the one they have.
  fifo (and anyone arriving after the draw): places count on from the drawn pre-queue.
  randomized_prequeue before startsAt: the entrant joins the lottery and waits at place 0.
  A shadow entrant (a suspected bot) gets a place that looks like the next real one, in a space
  the watermark never serves, and counts towards its flag reason.
  Input:  KEYS[1] meta, KEYS[2] places, KEYS[3] shadow, KEYS[4] pre, KEYS[5] flags
          ARGV[1] userId, ARGV[2] draw (uniform in [0,1)), ARGV[3] shadow reason or ''
  Output: {place, epoch, fresh 0|1, shadow 0|1}, or -1 (no such sale), -3 (ended), -4 (cancelled)
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
if sale.cancelled then return REFUSAL.SALE_CANCELLED end
if now >= sale.endsAt then return REFUSAL.SALE_ENDED end
local randomized = sale.mode == 'randomized_prequeue'
if randomized and now >= sale.startsAt then draw(KEYS[1], sale) end
local user, reason = ARGV[1], ARGV[3]

local placed = rcall('HGET', KEYS[2], user)
if placed then return { tonumber(placed), sale.epoch, 0, 0 } end
local shadow = rcall('HGET', KEYS[3], user)
if shadow then return { tonumber(shadow), sale.epoch, 0, 1 } end
local rank = rcall('ZRANK', KEYS[4], user)
if rank then return { sale.drawn and rank + 1 or 0, sale.epoch, 0, 0 } end

local waitingForDraw = randomized and not sale.drawn
local prequeued = rcall('ZCARD', KEYS[4])
if reason ~= '' then
  local place = 0
  if not waitingForDraw then place = prequeued + sale.seq + 1 end
  rcall('HSET', KEYS[3], user, fmt(place))
  rcall('HINCRBY', KEYS[5], reason, 1)
  return { place, sale.epoch, 1, 1 }
end
if waitingForDraw then
  rcall('ZADD', KEYS[4], ARGV[2], user)
  return { 0, sale.epoch, 1, 0 }
end
local seq = sale.seq + 1
local place = prequeued + seq
rcall('HSET', KEYS[1], 'seq', fmt(seq))
rcall('HSET', KEYS[2], user, fmt(place))
return { place, sale.epoch, 1, 0 }
