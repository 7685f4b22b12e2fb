--[[
  Creates a sale's hot state from the ledger's record, unless the sale exists.
  The caller derives the state (stock net of sold and held units, holds, per-user counts,
  buyers) from the ledger's record; this script only writes it, atomically, and stamps the
  admission clock with the engine's time.
  Input:  KEYS[1] meta, KEYS[2] items, KEYS[3] stock, KEYS[4] holds, KEYS[5] holdexp,
          KEYS[6] peruser, KEYS[7] buyers
          ARGV[1] JSON {meta, items, stock, holds, holdexp, peruser}: flat field/value lists
                  (holdexp: score/member), and buyers: a list of user ids
  Output: 1 when created, 0 when the sale was there already
]]
local rcall = redis.call
--- @include "includes/clock"
--- @include "includes/fmt"
--- @include "includes/batched"

if rcall('EXISTS', KEYS[1]) == 1 then return 0 end
local state = cjson.decode(ARGV[1])

batched('HSET', KEYS[1], state.meta)
rcall('HSET', KEYS[1], 'lastTickAt', fmt(nowMs()))
batched('HSET', KEYS[2], state.items)
batched('HSET', KEYS[3], state.stock)
batched('HSET', KEYS[4], state.holds)
batched('ZADD', KEYS[5], state.holdexp)
batched('HSET', KEYS[6], state.peruser)
batched('RPUSH', KEYS[7], state.buyers)
return 1
