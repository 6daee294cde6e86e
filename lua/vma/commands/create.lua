-- vma create ARCHIVE [-c CONFIG]... [-d format=raw:NAME=PATH]... [NAME=]PATH...
local vma = require "vma"
local ui = require "vma.ui"
local argparse = require "argparse"

local function whole(s)
  local n = math.tointeger(tonumber(s))
  if not n then return nil, "'" .. s .. "' is not a whole number" end
  return n
end

local function parser()
  local p = argparse("vma create", "Create an archive from config files and disk images. "
    .. "Devices are named disk0, disk1, ... unless given as NAME=PATH; a device named "
    .. "vmstate holds RAM state. The archive is written under a temporary name and "
    .. "appears under its own name only once complete and on disk.")
  p:argument("archive", "the archive to write (- for standard output; a name ending in "
    .. ".zst, .gz or .lzo is compressed)")
  p:argument("devices", "disk images or block devices: [NAME=]PATH"):args("*")
  p:option("-c --config", "a config file to store (its base name is its name)"):count("*")
  p:option("-d --device", "a device as format=raw:NAME=PATH (Proxmox form)"):count("*")
  p:option("--compress", "zstd, gzip, lzo or none (default: from the archive's name)")
    :choices { "zstd", "zst", "gzip", "gz", "lzo", "lzop", "none", "raw" }
  p:option("--level", "compression level: zstd 1..19 (default 3), gzip 1..9 (6), lzo 1..9 (3)")
    :convert(whole)
  p:option("--threads", "compression threads for zstd and gzip (default 0: one per core)")
    :convert(whole)
  p:flag("-f --force", "replace an existing archive")
  p:flag("-v --verbose", "print Proxmox's progress lines and a per-device summary on stderr")
  p:flag("--json", "print a JSON summary on standard output")
  return p
end

local function basename(path) return (path:gsub("/+$", ""):match("([^/]+)$")) or path end

local CODEC = { zstd = "zstd", zst = "zstd", gzip = "gzip", gz = "gzip", lzo = "lzo", lzop = "lzo",
  none = "none", raw = "none" }

local function compression_for(a)
  if a.compress then return CODEC[a.compress] end
  local ext = a.archive:match("%.(%w+)$")
  if ext == "zst" or ext == "gz" or ext == "lzo" then return CODEC[ext] end
  return "none"
end

-- the usage error of a --level or --threads that the codec does not take
local function check_options(a, codec)
  local lv = vma.compress_levels[codec]
  if a.level and not lv.min then
    return "--level is not allowed without compression (" .. codec .. ")"
  end
  if a.level and (a.level < lv.min or a.level > lv.max) then
    return string.format("--level %d is out of range for %s (%d..%d)", a.level, codec, lv.min, lv.max)
  end
  if a.threads and (a.threads < 0 or a.threads > 256) then
    return string.format("--threads %d is out of range (0..256, 0: one per core)", a.threads)
  end
  return nil
end

-- devices in command-line order: { name=, path=, size= }
local function collect_devices(a)
  local devs = {}
  for _, spec in ipairs(a.device) do
    local fmt, name, path = spec:match("^format=([^:]*):([^=]+)=(.+)$")
    if not fmt then
      name, path = spec:match("^([^=:]+)=(.+)$")
      fmt = "raw"
    end
    if not name then return nil, "bad device '" .. spec .. "' (expected format=raw:NAME=PATH)" end
    if fmt ~= "raw" then return nil, "unsupported format '" .. fmt .. "' (only raw)" end
    devs[#devs + 1] = { name = name, path = path }
  end
  for i, spec in ipairs(a.devices) do
    local name, path = spec:match("^([^=/]+)=(.+)$")
    if not name then name, path = "disk" .. (i - 1), spec end
    devs[#devs + 1] = { name = name, path = path }
  end
  for _, d in ipairs(devs) do
    local st, err = vma.stat(d.path)
    if not st then return nil, err end
    if st.type ~= "file" and st.type ~= "block" then
      return nil, d.path .. " is not a file or block device"
    end
    if st.size == 0 then return nil, d.path .. " is empty" end
    d.size = st.size
  end
  return devs
end

local function run(args)
  local a, status = ui.parse(parser(), args, "create")
  if not a then return status end
  if #a.devices == 0 and #a.device == 0 and #a.config == 0 then
    io.stderr:write("vma create: nothing to archive: give config files and/or devices\n")
    return 2
  end
  local codec = compression_for(a)
  local uerr = check_options(a, codec)
  if uerr then
    io.stderr:write("vma create: " .. uerr .. " (see 'vma help create')\n")
    return 2
  end
  local devs, derr = collect_devices(a)
  if not devs then return ui.fail("create", derr) end
  local configs = {}
  for _, path in ipairs(a.config) do
    local f, err = io.open(path, "rb")
    if not f then return ui.fail("create", err) end
    local data = f:read("a")
    f:close()
    if not data then return ui.fail("create", "cannot read " .. path) end
    configs[#configs + 1] = { name = basename(path), data = data }
  end

  vma.catch_signals()
  local w, err = vma.create(a.archive, { compress = codec, level = a.level, threads = a.threads,
    overwrite = a.force })
  if not w then return ui.fail("create", err) end
  local function fail(msg)
    w:abort() -- removes the unfinished archive
    return ui.fail("create", msg)
  end
  for _, c in ipairs(configs) do
    local ok, cerr = w:add_config(c.name, c.data)
    if not ok then return fail(cerr) end
  end
  local total = 0
  for _, d in ipairs(devs) do
    local id, aerr = w:add_device(d.name, d.size)
    if not id then return fail(aerr) end
    d.id = id
    d.size = w:stats(id).size -- as recorded: rounded up to 512
    total = total + d.size
  end

  local base, zbase, zeros = 0, 0, 0
  local prog = ui.progress {
    verbose = a.verbose, quiet = a.json or a.archive == "-" and not vma.isatty(2),
    line = function(pct, done, tot, _)
      io.stderr:write(string.format("progress %d%% %d/%d %d\n", pct, done, tot, zeros))
    end,
  }
  for _, d in ipairs(devs) do
    local ok, werr = w:write_device(d.id, d.path, {
      progress = function(p)
        zeros = zbase + p.zero_bytes -- summed over the devices, as Proxmox does
        prog.update(base + p.done, total, p.elapsed)
      end,
    })
    if not ok then
      prog.finish()
      return fail(werr)
    end
    base = base + d.size
    zbase = zbase + w:stats(d.id).zero_bytes
  end
  prog.finish()
  local stats = {}
  for _, d in ipairs(devs) do stats[d.name] = w:stats(d.id) end
  local uuid = w.uuid
  local ok, cerr = w:close()
  if not ok then return ui.fail("create", cerr) end

  if a.verbose then
    for _, d in ipairs(devs) do
      local s = stats[d.name]
      io.stderr:write(string.format("image %s: size=%d zeros=%d saved=%d\n", d.name, s.size,
        s.zero_bytes, s.size - s.zero_bytes))
    end
  end
  if a.json then
    local out = ui.array()
    for _, d in ipairs(devs) do
      local s = stats[d.name]
      out[#out + 1] = { id = d.id, name = d.name, path = d.path, size = s.size,
        zero_bytes = s.zero_bytes }
    end
    local cfgs = ui.array()
    for _, c in ipairs(configs) do cfgs[#cfgs + 1] = { name = c.name, size = #c.data } end
    io.write(ui.json { archive = a.archive, uuid = uuid, devices = out, configs = cfgs }, "\n")
  end
  return 0
end

return {
  description = "create an archive from config files and disk images",
  usage = parser():get_help(),
  run = run,
}
