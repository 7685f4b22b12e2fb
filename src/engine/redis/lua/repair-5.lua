--[[
  Applies what the drift check found, in one step: holds the ledger has and the engine lost come
  back (their units leave stock and count for their user again; a hold already there is left
  alone), then stock and per-user counts move by the given amounts. Stock never goes below
  zero: what could not be taken now is reported, for the next check.
  The repair was worked out from one inspection: if the sale was rebuilt since (a new epoch), its
  amounts no longer apply and nothing is changed.
  Input:  KEYS[1] meta, KEYS[2] stock, KEYS[3] holds, KEYS[4] holdexp, KEYS[5] peruser
          ARGV[1] JSON {restore = [[holdId, userId, sku, quantity, expiresAt, key?]...],
                        stock = [[sku, delta]...], perUser = [[userId, sku, delta]...]}
          ARGV[2] the epoch the inspection saw
  Output: {holds restored, units of stock that could not be taken, 1 when refused as stale}
]]
local rcall = redis.call
--- @include "includes/holds"

if rcall('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return { 0, 0, 1 } end
local fix = cjson.decode(ARGV[1])
local restored, short = 0, 0
local function addStock(sku, delta)
  local now = tonumber(rcall('HGET', KEYS[2], sku) or '0') + delta
  if now < 0 then
    short = short - now
    now = 0
  end
  rcall('HSET', KEYS[2], sku, fmt(now))
end
local function addUser(userId, sku, delta)
  local field = userId .. '\t' .. sku
  local now = tonumber(rcall('HGET', KEYS[5], field) or '0') + delta
  if now < 0 then now = 0 end
  rcall('HSET', KEYS[5], field, fmt(now))
end

for _, h in ipairs(fix.restore) do
  if rcall('HEXISTS', KEYS[3], h[1]) == 0 then
    local quantity, expiresAt = tonumber(h[4]), tonumber(h[5])
    rcall('HSET', KEYS[3], h[1], encodeHold(h[2], h[3], quantity, expiresAt, h[6]))
    rcall('ZADD', KEYS[4], fmt(expiresAt), h[1])
    rcall('HSET', KEYS[1], 'held', fmt(tonumber(rcall('HGET', KEYS[1], 'held') or '0') + quantity))
    addStock(h[3], -quantity)
    addUser(h[2], h[3], quantity)
    restored = restored + 1
  end
end
for _, s in ipairs(fix.stock) do addStock(s[1], tonumber(s[2])) end
for _, u in ipairs(fix.perUser) do addUser(u[1], u[2], tonumber(u[3])) end
return { restored, short, 0 }
