--[[
  Numbers go into Redis as strings. Lua's own conversion keeps 14 digits; %.17g keeps every
  double exactly (integers print without a fraction), so tonumber() reads back the same value.
]]
local function fmt(x)
  return string.format('%.17g', x)
end
