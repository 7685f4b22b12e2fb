--[[
  A new authorisation or direct charge, once per idempotency key.
  Input:  KEYS[1] payment, KEYS[2] answers (see includes/book)
          ARGV[1] idempotency key, ARGV[2] TTL in ms, ARGV[3] reference,
          ARGV[4] kind (authorization | charge), ARGV[5] status, ARGV[6] amount, ARGV[7] currency,
          ARGV[8] card behaviour, ARGV[9] createdAt, ARGV[10] expiresAt, ARGV[11] the answer
          (the card alone decides it), ARGV[12..] metadata as `m:<name>`, value pairs
  Output: the answer under the key (the first one, when the key was used before)
]]
--- @include "includes/book"

local seen = replayed()
if seen then return seen end
-- The order the book lists payments in: the time on Redis's clock, in microseconds.
local t = rcall('TIME')
rcall('HSET', KEYS[1], 'kind', ARGV[4], 'status', ARGV[5], 'amount', ARGV[6], 'currency', ARGV[7], 'behaviour', ARGV[8],
  'createdAt', ARGV[9], 'expiresAt', ARGV[10], 'captured', '0', 'refunded', '0', 'captures', '0', 'voids', '0', 'refunds', '0',
  'seq', t[1] .. string.format('%06d', tonumber(t[2])), unpack(ARGV, 12))
return record(ARGV[11])
