--[[
  Binds an idempotency key to the request it first came with and the payment it concerns, so a
  later call with the key (from any process) finds that payment, or is refused as another request.
  The step itself then runs on the payment's own slot, where its answer is kept.
  Input:  KEYS[1] the key's record
          ARGV[1] the request's fingerprint (a hash), ARGV[2] the payment's reference, ARGV[3] TTL in ms
  Output: nil when this call bound the key; else the record it had, "<fingerprint> <reference>"
]]
local rcall = redis.call

local bound = rcall('GET', KEYS[1])
if bound then return bound end
rcall('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return false
