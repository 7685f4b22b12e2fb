--[[
  One turn toward the card network, for every node at once: GCRA (the generic cell rate
  algorithm), a token bucket kept as one number, the theoretical arrival time of the next call.
  Each call reserves the next free slot and is told how long to wait for it, so calls go in the
  order they reached Redis and the rate holds across nodes. On Redis's clock (microseconds).
  Input:  KEYS[1] the bucket's key
          ARGV[1] interval (µs between calls at the sustained rate), ARGV[2] burst (calls at once
          after a quiet spell), ARGV[3] longest wait accepted (µs; -1: any)
  Output: the wait in µs (0: go now), or -1 when the wait would pass ARGV[3] (nothing reserved)
]]
local rcall = redis.call
local t = rcall('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local maxWait = tonumber(ARGV[3])

local tat = tonumber(rcall('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if maxWait >= 0 and wait > maxWait then return -1 end
local nextTat = tat + interval
rcall('SET', KEYS[1], string.format('%.0f', nextTat), 'PX', math.ceil((nextTat - now) / 1000) + 1000)
return math.floor(wait)
