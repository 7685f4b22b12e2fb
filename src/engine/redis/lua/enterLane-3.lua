--[[
  enterQueue for a sale with queue lanes (a mega-drop): runs in the lane's own hash slot and never
  reads the sale's. Lane k of S hands out places (n - 1) * S + k + 1 (src/engine/lanes.ts). A
  lane whose next place would be at or below the watermark the caller last saw skips ahead past
  it, so a newcomer is never let in ahead of the line: the skipped numbers are holes below it.
  A shadow entrant (a suspected bot) gets the lane's next place without taking it.
  The lane's keys carry the sale's queue epoch and expire an hour after the sale ends.
  Input:  KEYS[1] lane counters (hash seq, count, flag:<reason>), KEYS[2] places, KEYS[3] shadow
          ARGV[1] userId, ARGV[2] shadow reason or '', ARGV[3] S, ARGV[4] k, ARGV[5] floor
          (the caller's watermark), ARGV[6] the sale's endsAt
  Output: {place, fresh 0|1, shadow 0|1}, or -3 (ended)
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/clock"
--- @include "includes/fmt"

local user, reason = ARGV[1], ARGV[2]
local S, k, floor, endsAt = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if nowMs() >= endsAt then return REFUSAL.SALE_ENDED end

local placed = rcall('HGET', KEYS[2], user)
if placed then return { tonumber(placed), 0, 0 } end
local shadow = rcall('HGET', KEYS[3], user)
if shadow then return { tonumber(shadow), 0, 1 } end

local seq = tonumber(rcall('HGET', KEYS[1], 'seq') or '0')
-- Numbers of this lane at or below the floor: the lane starts above them.
local below = 0
if floor >= k + 1 then below = math.floor((floor - k - 1) / S) + 1 end
if seq < below then seq = below end
local expireAt = fmt(endsAt + 3600000)

if reason ~= '' then
  local place = seq * S + k + 1
  rcall('HSET', KEYS[3], user, fmt(place))
  rcall('HSET', KEYS[1], 'seq', fmt(seq))
  rcall('HINCRBY', KEYS[1], 'flag:' .. reason, 1)
  rcall('PEXPIREAT', KEYS[1], expireAt)
  rcall('PEXPIREAT', KEYS[3], expireAt)
  return { place, 1, 1 }
end
seq = seq + 1
local place = (seq - 1) * S + k + 1
rcall('HSET', KEYS[1], 'seq', fmt(seq))
rcall('HINCRBY', KEYS[1], 'count', 1)
rcall('HSET', KEYS[2], user, fmt(place))
rcall('PEXPIREAT', KEYS[1], expireAt)
rcall('PEXPIREAT', KEYS[2], expireAt)
return { place, 1, 0 }
