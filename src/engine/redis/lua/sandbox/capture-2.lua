--[[
  Captures part or all of an open authorisation (the rest is released), once per idempotency key.
  Input:  KEYS[1] payment, KEYS[2] answers (see includes/book)
          ARGV[1] idempotency key, ARGV[2] TTL in ms, ARGV[3] reference, ARGV[4] amount,
          ARGV[5] now (ms), ARGV[6..] metadata to keep, as `m:<name>`, value pairs
  Output: the answer under the key; REFUSAL.OVER_CAPTURE (nothing recorded) when the amount
          exceeds the authorisation's: a caller bug, thrown as a RangeError
]]
--- @include "includes/refusals"
--- @include "includes/book"

local seen = replayed()
if seen then return seen end
local open, refusal = capturable(ARGV[5])
if not open then return refusal end
if tonumber(ARGV[4]) > tonumber(rcall('HGET', KEYS[1], 'amount')) then return REFUSAL.OVER_CAPTURE end
if rcall('HGET', KEYS[1], 'behaviour') == 'insufficient_funds' then
  -- The hold fails at settlement; nothing stays held, so the authorisation ends here.
  rcall('HSET', KEYS[1], 'status', 'declined')
  return refuse('insufficient_funds', 'Your card has insufficient funds')
end
rcall('HSET', KEYS[1], 'status', 'captured', 'captured', ARGV[4], unpack(ARGV, 6))
rcall('HINCRBY', KEYS[1], 'captures', 1)
return answer(ARGV[3], ARGV[4])
