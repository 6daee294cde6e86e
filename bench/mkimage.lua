-- bench/mkimage.lua: write a benchmark disk image of data and zeros.
--
--   lua5.4 bench/mkimage.lua OUT SIZE_BYTES UNIT_BYTES [mixed] < random-bytes
--
-- Unit i (of UNIT_BYTES bytes) is data when i is even and zeros when i is odd:
-- UNIT 65536 gives "half random, half zero 64 KiB clusters", UNIT 4096 the
-- "checkerboard" of 4 KiB blocks. With "mixed" the units take turns as
-- text-like data, random data and zeros (a third each: "a compressible disk").
-- The text is words picked by the random bytes from a fixed list, so that it
-- compresses about as well as English text (zstd -3: about a third). The data
-- comes from standard input (a seeded stream, so that one run uses one image
-- for every tool). The zeros are written as zeros, not holes: the image is
-- fully allocated, like a raw disk.
local out_path, size, unit, mode = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
if not (out_path and size and unit) or unit <= 0 or size % unit ~= 0
    or (mode ~= nil and mode ~= "mixed") then
  io.stderr:write("usage: mkimage.lua OUT SIZE_BYTES UNIT_BYTES [mixed] < random\n")
  os.exit(2)
end

local out = assert(io.open(out_path, "wb"))
out:setvbuf("full", 1 << 20)
local zero = string.rep("\0", unit)
local units = size // unit

local function read(n)
  local data = assert(io.stdin:read(n), "random input ended early")
  assert(#data == n, "random input ended early")
  return data
end

if mode == "mixed" then
  -- 256 words (one per byte value), common short words more than once
  local words = {}
  local list = { "the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "on", "with",
    "as", "was", "be", "by", "at", "this", "from", "or", "an", "are", "not", "have", "disk",
    "backup", "archive", "cluster", "block", "device", "virtual", "machine", "config", "file",
    "system", "kernel", "memory", "write", "read", "data", "zero", "restore", "extent", "header",
    "server", "network", "storage", "volume", "image", "format", "version", "error", "value",
    "number", "size", "time", "user", "root", "path", "name", "table", "index", "stream",
    "frame", "level", "thread", "process", "signal", "buffer", "queue", "option", "command",
    "proxmox", "debian", "linux", "package", "library", "function", "return", "string",
    "integer", "boolean", "nil", "local", "end", "if", "then", "else", "while", "do", "repeat",
    "until", "print", "usage", "status", "offset", "length", "checksum", "header,", "data.",
    "files.", "again.", "here,", "there.", "\n", "\n\n", "(see", "below)", "1", "2", "3",
    "10", "64", "512", "4096", "65536", "2026", "--", "=", "{", "}" }
  for i = 0, 255 do words[string.char(i)] = list[i % #list + 1] .. " " end
  local text, tpos = "", 1
  local function text_unit()
    while #text - tpos + 1 < unit do
      text = text:sub(tpos) .. read(1 << 16):gsub(".", words)
      tpos = 1
    end
    local s = text:sub(tpos, tpos + unit - 1)
    tpos = tpos + unit
    return s
  end
  for i = 0, units - 1 do
    local k = i % 3
    if k == 0 then out:write(text_unit())
    elseif k == 1 then out:write(read(unit))
    else out:write(zero) end
  end
  assert(out:close())
  return
end

-- read the data in large pieces and hand it out unit by unit
local per_read = math.max(1, (1 << 20) // unit)
local i = 0
while i < units do
  local n = math.min(per_read, (units - i + 1) // 2)
  local data = read(n * unit)
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
