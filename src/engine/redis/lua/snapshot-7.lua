--[[
  One cheap read of everything a node caches about a sale.
  Input:  KEYS[1] meta, KEYS[2] stock, KEYS[3] active, KEYS[4] buyers, KEYS[5] flags, KEYS[6] pre,
          KEYS[7] wmlog
          ARGV[1] buyersFrom (an integer; negative counts from the end, as Array.slice does)
          ARGV[2] admittedFrom: the watermark advances above it are returned
  Output: {now, epoch, startsAt, endsAt, cancelled 0|1, watermark, entered, prequeued, drawn 0|1,
           active, stock (flat sku/units), heldUnits, buyers from ARGV[1], buyersNext,
           flags (flat reason/count), advances ("watermark:time" members above ARGV[2], in order)};
          shards (queue lanes), waiting (people above the watermark);
          with queue lanes, entered, flags and waiting are the lanes' totals as of the last admission step;
          times and unit counts as strings. Or -1: no such sale.
]]
local rcall = redis.call
--- @include "includes/refusals"
--- @include "includes/clock"
--- @include "includes/fmt"
--- @include "includes/sale"

local sale = readSale(KEYS[1])
if not sale then return REFUSAL.SALE_NOT_FOUND end
local now = nowMs()
local prequeued = rcall('ZCARD', KEYS[6])
-- Admitted tickets count while their window is open; admit() sweeps the lapsed ones.
local active = rcall('ZCOUNT', KEYS[3], '(' .. fmt(now - sale.admittedTtl * 1000), '+inf')

return {
  now, sale.epoch, fmt(sale.startsAt), fmt(sale.endsAt), sale.cancelled and 1 or 0,
  sale.watermark, prequeued + (sale.shards > 1 and sale.laneEntered or sale.seq), prequeued, sale.drawn and 1 or 0, active,
  rcall('HGETALL', KEYS[2]), fmt(sale.held),
  rcall('LRANGE', KEYS[4], ARGV[1], -1), rcall('LLEN', KEYS[4]),
  rcall('HGETALL', KEYS[5]),
  rcall('ZRANGEBYSCORE', KEYS[7], '(' .. ARGV[2], '+inf'),
  sale.shards, sale.shards > 1 and sale.laneWaiting or math.max(0, prequeued + sale.seq - sale.watermark),
}
