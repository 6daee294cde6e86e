-- bench/mkimage.lua: write a benchmark disk image of alternating data and zeros.
--
--   lua5.4 bench/mkimage.lua OUT SIZE_BYTES UNIT_BYTES < random-bytes
--
-- Unit i (of UNIT_BYTES bytes) is data when i is even and zeros when i is odd:
-- UNIT 65536 gives "half random, half zero 64 KiB clusters", UNIT 4096 the
-- "checkerboard" of 4 KiB blocks. The data comes from standard input (a seeded
-- stream, so that one run uses one image for every tool). The zeros are written
-- as zeros, not holes: the image is fully allocated, like a raw disk.
local out_path, size, unit = arg[1], tonumber(arg[2]), tonumber(arg[3])
if not (out_path and size and unit) or unit <= 0 or size % unit ~= 0 then
  io.stderr:write("usage: mkimage.lua OUT SIZE_BYTES UNIT_BYTES < random\n")
  os.exit(2)
end

local out = assert(io.open(out_path, "wb"))
out:setvbuf("full", 1 << 20)
local zero = string.rep("\0", unit)
-- read the data in large pieces and hand it out unit by unit
local per_read = math.max(1, (1 << 20) // unit)
local units = size // unit
local i = 0
while i < units do
  local n = math.min(per_read, (units - i + 1) // 2)
  local data = assert(io.stdin:read(n * unit), "random input ended early")
  assert(#data == n * unit, "random input ended early")
  for k = 0, n - 1 do
    if i >= units then break end
    out:write(data:sub(k * unit + 1, (k + 1) * unit))
    i = i + 1
    if i < units then
      out:write(zero)
      i = i + 1
    end
  end
end
assert(out:close())
