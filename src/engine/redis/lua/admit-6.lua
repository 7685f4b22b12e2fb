--[[
  One admission-controller step: moves the watermark by what the rate, the active cap and the
  stock allow. Allowance accrues at the admission rate since the last step (at most one second's
  worth, and at least one ticket) and carries over only while people wait for it.
  A sale with queue lanes (src/engine/lanes.ts) passes the lanes' counters as the caller read
  them just before: each lane's last number, the entrants and the bot flags over all lanes. The
  step stores the totals for the snapshot (entrants, flags, people still waiting) and admits the next n taken places, skipping places no
  lane has handed out yet; a read older than the sale's epoch is ignored (answer stale 1).
  Input:  KEYS[1] meta, KEYS[2] stock, KEYS[3] active, KEYS[4] wmlog, KEYS[5] pre, KEYS[6] flags
          ARGV[1] '' or JSON {epoch, seqs: [last number per lane], entered, flags: {reason: n}}
  Output: {watermark, admitted, stale 0|1}, or -1 (no such sale)
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/clock"
--- @include "includes/fmt"
--- @include "includes/sale"
--- @include "includes/draw"
--- @include "includes/lanes"

local sale = readSale(KEYS[1])
if not sale then return REFUSAL.SALE_NOT_FOUND end
local now = nowMs()

-- Lanes: keep the totals the snapshot shows (never lower than before: reads may overlap).
local seqs, entrants, stale = nil, 0, 0
if sale.shards > 1 then
  local lanes = ARGV[1] ~= '' and cjson.decode(ARGV[1]) or nil
  if lanes and lanes.epoch == sale.epoch and #lanes.seqs == sale.shards then
    seqs = {}
    for i, seq in ipairs(lanes.seqs) do seqs[i] = tonumber(seq) end
    entrants = tonumber(lanes.entered)
    if tonumber(lanes.entered) > sale.laneEntered then rcall('HSET', KEYS[1], 'entered', fmt(lanes.entered)) end
    for reason, count in pairs(lanes.flags) do
      if tonumber(count) > tonumber(rcall('HGET', KEYS[6], reason) or '0') then rcall('HSET', KEYS[6], reason, fmt(count)) end
    end
  else
    stale = 1
  end
end

-- People waiting above the watermark, by the lanes' counters (kept for the snapshot).
local function laneWaiting(watermark)
  local waiting = -takenUpTo(watermark, seqs)
  for _, seq in ipairs(seqs) do waiting = waiting + seq end
  return waiting
end

local function idle()
  rcall('HSET', KEYS[1], 'lastTickAt', fmt(now), 'carry', '0')
  if seqs then rcall('HSET', KEYS[1], 'waiting', fmt(laneWaiting(sale.watermark))) end
  return { sale.watermark, 0, stale }
end
if sale.shards > 1 and not seqs then return idle() end

if sale.cancelled or now < sale.startsAt or now >= sale.endsAt then return idle() end
if sale.mode == 'randomized_prequeue' then draw(KEYS[1], sale) end
local stock = 0
for _, units in ipairs(rcall('HVALS', KEYS[2])) do stock = stock + tonumber(units) end
if stock <= 0 then return idle() end

-- Admissions that lapsed unused free their slots.
local lapsed = now - sale.admittedTtl * 1000
rcall('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(lapsed))
-- Late admissions (lanes): people whose place was at or below the watermark when they came in (the
-- node's picture of the line is a few hundred ms old, or this step's read of the lanes came just
-- before them) are in by the line without a step. They count against the active cap and the rate
-- from the step that finds them: entrants less those the steps let in less those still waiting.
local late = 0
if seqs then
  local lateNow = entrants - sale.stepAdmitted - laneWaiting(sale.watermark)
  late = math.max(0, lateNow - sale.late)
  local batch = {}
  for i = 1, late do
    batch[#batch + 1] = fmt(now)
    batch[#batch + 1] = 'late:' .. fmt(sale.late + i)
    if #batch >= 1000 or i == late then
      rcall('ZADD', KEYS[3], unpack(batch))
      batch = {}
    end
  end
  if late > 0 then rcall('HSET', KEYS[1], 'late', fmt(lateNow)) end
end
local tokens = math.max(0, math.min(sale.carry + ((now - sale.lastTickAt) * sale.rate) / 1000, math.max(1, sale.rate)) - late)
local room = sale.maxActive - rcall('ZCARD', KEYS[3])
local waiting
if seqs then
  waiting = laneWaiting(sale.watermark)
else
  waiting = rcall('ZCARD', KEYS[5]) + sale.seq - sale.watermark
end
local n = math.max(0, math.floor(math.min(tokens, room, waiting)))

local at = fmt(now)
local watermark, places = sale.watermark + n, nil
if seqs then watermark, places = advanceOverLanes(sale.watermark, n, seqs) end
local batch = {}
for i = 1, n do
  batch[#batch + 1] = at
  batch[#batch + 1] = fmt(places and places[i] or sale.watermark + i)
  if #batch >= 1000 or i == n then
    rcall('ZADD', KEYS[3], unpack(batch))
    batch = {}
  end
end
if n > 0 then rcall('ZADD', KEYS[4], fmt(watermark), fmt(watermark) .. ':' .. at) end
local carry = 0
if waiting > n then carry = tokens - n end
rcall('HSET', KEYS[1], 'watermark', fmt(watermark), 'carry', fmt(carry), 'lastTickAt', at)
if seqs then rcall('HSET', KEYS[1], 'waiting', fmt(waiting - n), 'stepAdmitted', fmt(sale.stepAdmitted + n)) end
return { watermark, n, stale }
