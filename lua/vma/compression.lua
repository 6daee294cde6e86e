-- vma.compression: the --compress, --level and --threads options of the
-- commands that write an archive (create, recompress), checked alike.
local vma = require "vma"

local M = {}

--- The codec of a --compress name or archive extension: zstd, gzip, lzo, none.
M.CODEC = { zstd = "zstd", zst = "zstd", gzip = "gzip", gz = "gzip", lzo = "lzo", lzop = "lzo",
            none = "none", raw = "none", vma = "none" }

--- nil when the codec takes this level and thread count (either may be nil),
--- else the usage error: a level out of the ranges of vma.compress_levels
--- (none takes no level) or not an integer, threads out of 0..256.
function M.check(comp, level, threads)
  local codec = M.CODEC[comp] or comp
  local lv = vma.compress_levels[codec]
  if level ~= nil and lv and not lv.min then
    return "--level is not allowed without compression (" .. codec .. ")"
  end
  if level ~= nil and lv and (math.type(level) ~= "integer" or level < lv.min or level > lv.max) then
    return string.format("--level %s is out of range for %s (%d..%d)", tostring(level), codec,
      lv.min, lv.max)
  end
  if threads ~= nil and (math.type(threads) ~= "integer" or threads < 0 or threads > 256) then
    return string.format("--threads %s is out of range (0..256, 0: one per core)", tostring(threads))
  end
  return nil
end

--- Add --level and --threads to an argparse parser.
function M.options(p)
  p:option("--level", "compression level: zstd 1..19 (default 3), gzip 1..9 (6), lzo 1..9 (3)")
    :convert(tonumber)
  p:option("--threads", "compression threads for zstd and gzip (default 0: one per core)")
    :convert(tonumber)
end

return M
