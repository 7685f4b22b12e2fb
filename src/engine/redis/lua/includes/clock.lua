--[[
  The engine's clock: Redis TIME in epoch milliseconds. Scripts never take a time from the
  caller, so nodes with skewed clocks agree (Redis 7 replicates effects, so TIME is allowed).
]]
local function nowMs()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
