--[[
  What every step of the sandbox card network's book shares (src/payments/redis-sandbox-book.ts).
  A step's keys are one payment's, in one Cluster slot (the hash tag is its reference):
    KEYS[1] the payment: a hash (kind, status, amounts, counters, `m:<name>` metadata)
    KEYS[2] its answers: a hash idempotency key → the answer given under it
  and its first arguments are ARGV[1] the idempotency key, ARGV[2] the records' TTL in ms,
  ARGV[3] the payment's reference.
  An answer is JSON ["ok", ref, amount] or ["no", reason, message], every element a string.
]]
local rcall = redis.call
--- @include "../includes/fmt"

-- The answer already given under this key, if any.
local function replayed()
  return rcall('HGET', KEYS[2], ARGV[1])
end

-- Records the answer under the key, renews both records' TTL (a rehearsal leaves nothing for
-- ever), and returns it.
local function record(reply)
  rcall('HSET', KEYS[2], ARGV[1], reply)
  rcall('PEXPIRE', KEYS[2], ARGV[2])
  rcall('PEXPIRE', KEYS[1], ARGV[2])
  return reply
end

local function answer(ref, amount)
  return record(cjson.encode({'ok', ref, amount}))
end

local function refuse(reason, message)
  return record(cjson.encode({'no', reason, message}))
end

--[[
  Whether the authorisation can still be captured or voided; when not, the refusal saying why,
  recorded. A lapse is noticed when someone looks: ARGV `now` is the network's clock.
]]
local function capturable(now)
  local ref = ARGV[3]
  local kind, status, expiresAt = unpack(rcall('HMGET', KEYS[1], 'kind', 'status', 'expiresAt'))
  if kind ~= 'authorization' then return false, refuse('not_found', 'No authorisation ' .. ref) end
  if status == 'authorized' and tonumber(now) >= tonumber(expiresAt) then
    status = 'expired'
    rcall('HSET', KEYS[1], 'status', status)
  end
  if status == 'expired' then return false, refuse('expired', 'Authorisation ' .. ref .. ' has expired') end
  if status ~= 'authorized' then return false, refuse('already_ended', 'Authorisation ' .. ref .. ' is ' .. status) end
  return true
end
