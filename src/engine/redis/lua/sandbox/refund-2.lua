--[[
  Gives back part or all of what a captured authorisation or a succeeded charge took and has not
  given back yet, once per idempotency key.
  Input:  KEYS[1] payment, KEYS[2] answers (see includes/book)
          ARGV[1] idempotency key, ARGV[2] TTL in ms, ARGV[3] reference, ARGV[4] amount,
          ARGV[5] the refund's own id
  Output: the answer under the key (ok names the refund's id)
]]
--- @include "includes/book"

local seen = replayed()
if seen then return seen end
local ref = ARGV[3]
local kind, status, amount, captured, refunded = unpack(rcall('HMGET', KEYS[1], 'kind', 'status', 'amount', 'captured', 'refunded'))
local took
if kind == 'authorization' then
  if status ~= 'captured' then return refuse('already_ended', 'Authorisation ' .. ref .. ' is ' .. status .. ': nothing to refund') end
  took = tonumber(captured)
elseif kind == 'charge' then
  if status ~= 'succeeded' then return refuse('already_ended', 'Charge ' .. ref .. ' is ' .. status .. ': nothing to refund') end
  took = tonumber(amount)
else
  return refuse('not_found', 'No payment ' .. ref)
end
local left = took - tonumber(refunded)
if tonumber(ARGV[4]) > left then
  return refuse('already_ended', 'Only ' .. fmt(left) .. ' of ' .. fmt(took) .. ' captured on ' .. ref .. ' is left to refund')
end
if rcall('HINCRBY', KEYS[1], 'refunded', ARGV[4]) == took then rcall('HSET', KEYS[1], 'status', 'refunded') end
if kind == 'authorization' then rcall('HINCRBY', KEYS[1], 'refunds', 1) end
return answer(ARGV[5], ARGV[4])
