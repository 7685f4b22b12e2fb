--[[
  Everything the drift check compares with the ledger, read at one instant.
  Input:  KEYS[1] meta, KEYS[2] stock, KEYS[3] holds, KEYS[4] peruser
  Output: nil when the engine does not hold the sale, else
          {stock field/value list, holds field/value list, peruser field/value list, epoch}
]]
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 0 then return nil end
return { rcall('HGETALL', KEYS[2]), rcall('HGETALL', KEYS[3]), rcall('HGETALL', KEYS[4]), rcall('HGET', KEYS[1], 'epoch') }
