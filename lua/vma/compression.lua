-- vma.compression: the codecs as the C core's one table (vma.codecs) has
-- them, and the --compress, --level and --threads options of the commands
-- that write an archive (create, recompress), checked alike.
local vma = require "vma"

local M = {}

local ORDER = { "zstd", "gzip", "lzo", "none" }

--- The codec of a --compress name, an alias or an archive extension:
--- zstd, gzip, lzo, none (zst -> zstd, gz -> gzip, lzop -> lzo, raw -> none).
M.CODEC = {}
--- Every name --compress accepts, codec names first.
M.NAMES = {}
for _, name in ipairs(ORDER) do
  local c = vma.codecs[name]
  M.CODEC[name] = name
  M.NAMES[#M.NAMES + 1] = name
  for _, alias in ipairs(c.aliases) do
    M.CODEC[alias] = name
    M.NAMES[#M.NAMES + 1] = alias
  end
end

--- What follows ".vma" in the name of an archive so compressed ("" for none).
function M.suffix(comp)
  local c = vma.codecs[M.CODEC[comp] or comp]
  return c and c.suffix or ""
end

--- The codec a file name asks for by its extension (x.vma.zst -> zstd),
--- "none" when it has none of theirs.
function M.from_name(path)
  for _, name in ipairs(ORDER) do
    local sfx = vma.codecs[name].suffix
    if sfx ~= "" and path:sub(-#sfx) == sfx then return name end
  end
  return "none"
end

--- nil when the codec takes this level and thread count (either may be nil),
--- else the usage error: a level out of the codec's range (none takes no
--- level) or not an integer, threads out of range.
function M.check(comp, level, threads)
  local codec = vma.codecs[M.CODEC[comp] or comp]
  if level ~= nil and codec and codec.level_max == 0 then
    return "--level is not allowed without compression (" .. codec.name .. ")"
  end
  if level ~= nil and codec and (math.type(level) ~= "integer" or level < codec.level_min
      or level > codec.level_max) then
    return string.format("--level %s is out of range for %s (%d..%d)", tostring(level),
      codec.name, codec.level_min, codec.level_max)
  end
  local max = vma.codecs.zstd.max_threads
  if threads ~= nil and (math.type(threads) ~= "integer" or threads < 0 or threads > max) then
    return string.format("--threads %s is out of range (0..%d, 0: one per core)",
      tostring(threads), max)
  end
  return nil
end

--- Add --compress (its help the caller's), --level and --threads to an argparse parser.
function M.options(p, compress_help)
  p:option("--compress", compress_help):choices(M.NAMES)
  local levels = {}
  for _, name in ipairs(ORDER) do
    local c = vma.codecs[name]
    if c.level_max > 0 then
      levels[#levels + 1] = string.format("%s %d..%d (default %d)", name, c.level_min,
        c.level_max, c.level_default)
    end
  end
  p:option("--level", "compression level: " .. table.concat(levels, ", ")):convert(tonumber)
  p:option("--threads", "compression threads (default 0: one per core)")
    :convert(tonumber)
end

return M
