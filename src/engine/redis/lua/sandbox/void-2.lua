--[[
  Releases an open authorisation without taking any money, once per idempotency key.
  Input:  KEYS[1] payment, KEYS[2] answers (see includes/book)
          ARGV[1] idempotency key, ARGV[2] TTL in ms, ARGV[3] reference, ARGV[4] now (ms)
  Output: the answer under the key
]]
--- @include "includes/book"

local seen = replayed()
if seen then return seen end
local open, refusal = capturable(ARGV[4])
if not open then return refusal end
rcall('HSET', KEYS[1], 'status', 'voided')
rcall('HINCRBY', KEYS[1], 'voids', 1)
return answer(ARGV[3], rcall('HGET', KEYS[1], 'amount'))
