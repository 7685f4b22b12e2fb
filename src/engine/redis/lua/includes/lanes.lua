--[[
  Queue lanes: the arithmetic of src/engine/lanes.ts, which says what it means (the contract
  suite runs both engines, so the two cannot drift apart). Lane k (0-based) of S hands out
  places (n - 1) * S + k + 1; `seqs` is 1-based here: seqs[k + 1] is lane k's last number.
]]
local function laneNumbersUpTo(w, k, S)
  if w >= k + 1 then return math.floor((w - k - 1) / S) + 1 end
  return 0
end

local function takenUpTo(w, seqs)
  local n, S = 0, #seqs
  for i = 1, S do n = n + math.min(seqs[i], laneNumbersUpTo(w, i - 1, S)) end
  return n
end

-- The lowest watermark above `watermark` letting in n of those waiting (all when fewer wait),
-- and their places in place order.
local function advanceOverLanes(watermark, n, seqs)
  local S, top = #seqs, 0
  for i = 1, S do
    if seqs[i] > 0 then top = math.max(top, (seqs[i] - 1) * S + i) end
  end
  if n <= 0 or top <= watermark then return watermark, {} end
  local below = takenUpTo(watermark, seqs)
  local lo, hi = watermark + 1, top
  if takenUpTo(hi, seqs) - below > n then
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if takenUpTo(mid, seqs) - below >= n then hi = mid else lo = mid + 1 end
    end
  end
  local places = {}
  for i = 1, S do
    local upTo = math.min(seqs[i], laneNumbersUpTo(hi, i - 1, S))
    for seq = math.min(seqs[i], laneNumbersUpTo(watermark, i - 1, S)) + 1, upTo do
      places[#places + 1] = (seq - 1) * S + i
    end
  end
  table.sort(places)
  return hi, places
end
