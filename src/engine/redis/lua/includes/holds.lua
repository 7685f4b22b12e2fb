--[[
  A hold is stored as a JSON array of strings [userId, sku, quantity, expiresAt, idempotencyKey],
  so ids may hold any character and numbers keep every digit; the key (absent in holds rebuilt
  from the ledger) lets whoever releases a hold that never got an order forget the key with it.
  The TypeScript side reads and writes the same shape.
]]
--- @include "includes/fmt"
local function encodeHold(userId, sku, quantity, expiresAt, key)
  return cjson.encode({ userId, sku, fmt(quantity), fmt(expiresAt), key })
end

local function decodeHold(raw)
  local h = cjson.decode(raw)
  return { userId = h[1], sku = h[2], quantity = tonumber(h[3]), expiresAt = tonumber(h[4]), key = h[5] }
end
