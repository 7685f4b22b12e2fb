--[[
  The pre-queue lottery. Entrants sit in the `pre` zset scored by their uniform draw; drawing
  only freezes it, after which a drawn entrant's place is ZRANK + 1 (ties by member bytes).
]]
local function draw(metaKey, sale)
  if sale.drawn then return end
  rcall('HSET', metaKey, 'drawn', '1')
  sale.drawn = true
end
