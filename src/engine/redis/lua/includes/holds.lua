--[[
  A hold is stored as a JSON array of strings [userId, sku, quantity, expiresAt], so ids may hold
  any character and numbers keep every digit. The TypeScript side reads and writes the same shape.
]]
--- @include "includes/fmt"
local function encodeHold(userId, sku, quantity, expiresAt)
  return cjson.encode({ userId, sku, fmt(quantity), fmt(expiresAt) })
end

local function decodeHold(raw)
  local h = cjson.decode(raw)
  return { userId = h[1], sku = h[2], quantity = tonumber(h[3]), expiresAt = tonumber(h[4]) }
end
