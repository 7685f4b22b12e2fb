--[[
  Runs `cmd key a1 a2 ...` over a long argument list in slices unpack() can take.
  The slice is even, so field/value and score/member pairs stay together.
]]
local function batched(cmd, key, args)
  local step = 1000
  for i = 1, #args, step do
    rcall(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end
