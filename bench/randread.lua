-- bench/randread.lua: random 4 KiB reads through the Lua disk API, per
-- second (the archive is read once first, so the page cache holds it).
-- Prints: reads per second, wall seconds.
--
--   lua5.4 bench/randread.lua ARCHIVE DISK [COUNT [cache]]
-- With "cache", the archive's cache (index, decoded copy) is used as the
-- commands use it; else none.
local vma = require "vma"
local path, name, count = arg[1], arg[2], tonumber(arg[3] or 200000)
local use_cache = arg[4] == "cache"
local f = assert(io.open(path, "rb"))
while f:read(1 << 20) do end
f:close()
local r = assert(vma.open(path, { cache = use_cache and "auto" or "off" }))
local d = assert(r:disk(name))
local blocks = d.size // 4096
math.randomseed(42)
local now = vma.os.clock
local t0 = now()
for _ = 1, count do
  assert(#d:read(math.random(0, blocks - 1) * 4096, 4096) == 4096)
end
local secs = now() - t0
io.write(string.format("%.0f %.3f\n", count / secs, secs))
d:close()
r:close()
