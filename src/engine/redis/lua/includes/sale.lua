--[[
  Reads a sale's meta hash into a table of typed fields, or nil when the engine holds no such sale.
]]
local function readSale(metaKey)
  local raw = rcall('HGETALL', metaKey)
  if #raw == 0 then return nil end
  local f = {}
  for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
  return {
    startsAt = tonumber(f.startsAt), endsAt = tonumber(f.endsAt), cancelled = f.cancelled == '1',
    mode = f.mode, rate = tonumber(f.rate), admittedTtl = tonumber(f.admittedTtl),
    maxActive = tonumber(f.maxActive), reservationTtl = tonumber(f.reservationTtl),
    epoch = f.epoch, seq = tonumber(f.seq), watermark = tonumber(f.watermark),
    lastTickAt = tonumber(f.lastTickAt), carry = tonumber(f.carry), drawn = f.drawn == '1',
    held = tonumber(f.held),
    -- Queue lanes (a mega-drop): their number, and the entrants and those waiting over all lanes as of the last admission step.
    shards = tonumber(f.shards or '1'), laneEntered = tonumber(f.entered or '0'), laneWaiting = tonumber(f.waiting or '0'),
    stepAdmitted = tonumber(f.stepAdmitted or '0'), late = tonumber(f.late or '0'),
  }
end

-- Items are "quantity|perUserLimit|maxPerOrder".
local function parseItem(spec)
  local q, l, m = string.match(spec, '^([^|]*)|([^|]*)|([^|]*)$')
  return { quantity = tonumber(q), perUserLimit = tonumber(l), maxPerOrder = tonumber(m) }
end
