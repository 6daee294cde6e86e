-- vma create ARCHIVE [-c [NAME=]CONFIG]... [-d format=raw:NAME=PATH]... [NAME=]PATH...
local vma = require "vma"
local ui = require "vma.ui"
local devices = require "vma.devices"
local vzdump = require "vma.vzdump"
local ceph = require "vma.ceph"
local argparse = require "argparse"
local compression = require "vma.compression"

local function parser()
  local p = argparse("vma create", ui.text [[
    Create an archive from config files and disk images. Devices are named disk0, disk1, ...
    unless given as NAME=PATH (a config key such as scsi0 names the device drive-scsi0); a device
    named vmstate holds RAM state. The archive is written under a temporary name and appears under
    its own name only once complete and on disk.]])
  p:argument("archive", "the archive to write (- for standard output; a name ending in "
    .. ".zst, .gz or .lzo is compressed; a folder with --vmid: a vzdump name in it)")
  p:argument("devices", "disk images or block devices: [NAME=]PATH; PATH may be a Ceph "
    .. "RBD snapshot rbd:POOL/IMAGE@SNAP[:conf=FILE][:id=NAME][:keyring=FILE]"):args("*")
  p:option("-c --config", "a config file to store, as [NAME=]PATH (NAME: its name in the "
    .. "archive, default its base name)"):count("*")
  p:option("-d --device", "a device as format=raw:NAME=PATH (Proxmox form)"):count("*")
  compression.options(p, "zstd, gzip, lzo or none (default: from the archive's name)")
  p:option("--vmid", "the guest's id: with a folder as ARCHIVE, the archive is named "
    .. "vzdump-qemu-VMID-YYYY_MM_DD-HH_MM_SS.vma.zst in it")
  p:flag("--no-qmdump-map", "store qemu-server.conf as it is (no #qmdump#map: lines added)")
  p:flag("--stable", "dedup-friendly: the same configs and disk contents give the same bytes "
    .. "(a uuid derived from them, read once more before writing; the ctime of --ctime, "
    .. "else $SOURCE_DATE_EPOCH, else 0), so that restic, borg or PBS keep one copy")
  p:option("--uuid", "the archive's uuid (default random, or with --stable from the content)")
  p:option("--ctime", "the creation time recorded: seconds since 1970, @SECONDS, or "
    .. "'YYYY-MM-DD HH:MM:SS' (UTC)"):argname("TIME")
  p:flag("-f --force", "replace an existing archive")
  p:flag("-v --verbose", "print Proxmox's progress lines and a per-device summary on stderr")
  ui.quiet_flag(p)
  p:flag("--json", "print a JSON summary on standard output (on stderr when the archive "
    .. "goes to standard output)")
  return p
end


-- the archive's path: a folder with --vmid gets a vzdump name in it
local function archive_path(a)
  local st = a.archive ~= "-" and vma.os.stat(a.archive)
  if st and st.type == "directory" then
    if not a.vmid then
      return nil, a.archive .. " is a folder (give --vmid N to name the archive as vzdump does)"
    end
    local t = os.date("*t")
    local comp = a.compress or "zstd"
    local ok, name = pcall(vzdump.format, { type = "qemu", vmid = a.vmid, ext = "vma" .. compression.suffix(comp),
      year = t.year, month = t.month, day = t.day, hour = t.hour, min = t.min, sec = t.sec })
    if not ok then return nil, (tostring(name):gsub("^.-:%d+: ", "")) end
    return a.archive:gsub("/+$", "") .. "/" .. name, nil, comp
  end
  if a.vmid then return nil, "--vmid names an archive in a folder; " .. a.archive .. " is not one" end
  return a.archive
end

local function compression_for(a, path)
  return a.compress or compression.from_name(path)
end

-- NAME of NAME=PATH: a config key stands for its device name
local function device_name(name)
  if devices.is_disk_key(name) then return devices.devname_of(name) end
  return name
end

-- an rbd: device: its snapshot (or, when nobody has it open, the image
-- itself) opened as a source, and its size
local function rbd_device(d)
  local t, err = ceph.parse(d.path)
  if not t then return nil, err end
  if not t.snap then
    local n, werr = ceph.watchers(t)
    if not n then return nil, werr end
    if n > 0 then
      return nil, string.format("rbd:%s is in use (open by %d client%s): back up a snapshot of it "
        .. "(rbd snap create %s@NAME, then rbd:%s@NAME)", ceph.name(t), n, n == 1 and "" or "s",
        ceph.name(t), ceph.name(t))
    end
    io.stderr:write("vma create: note: rbd:", ceph.name(t), " is read without a snapshot: it "
      .. "must not change until the backup ends (rbd:", ceph.name(t), "@SNAP reads a snapshot)\n")
  end
  local src, serr = ceph.source(t)
  if not src then return nil, serr end
  d.source, d.size = src, src.size
  if d.size == 0 then return nil, "rbd:" .. ceph.name(t) .. " is empty" end
  return true
end

local function close_sources(devs)
  local first
  for _, d in ipairs(devs) do
    if d.source then
      local ok, err = d.source:close()
      if not ok and not first then first = err end
      d.source = nil
    end
  end
  return first
end

-- the size of a device's image (an rbd: one opened as a source)
local function check_device(d)
  if ceph.is_spec(d.path) then return rbd_device(d) end
  local st, err = vma.os.stat(d.path)
  if not st then return nil, err end
  if st.type == "directory" then return nil, d.path .. " is a folder, not a disk image" end
  if st.type ~= "file" and st.type ~= "block" then
    return nil, d.path .. " is not a file or block device"
  end
  if st.size == 0 then return nil, d.path .. " is empty" end
  d.size = st.size
  return true
end

-- devices in command-line order: { name=, path=, size=, source= (rbd:) }
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
    devs[#devs + 1] = { name = device_name(name), path = path }
  end
  for i, spec in ipairs(a.devices) do
    local name, path = spec:match("^([^=/]+)=(.+)$")
    if not name then name, path = "disk" .. (i - 1), spec end
    devs[#devs + 1] = { name = device_name(name), path = path }
  end
  for _, d in ipairs(devs) do
    local ok, err = check_device(d)
    if not ok then
      close_sources(devs)
      return nil, err
    end
  end
  return devs
end

local function collect_configs(a, devs)
  local configs, notes = {}, {}
  for _, spec in ipairs(a.config) do
    local name, path = spec:match("^([^=/]+)=(.+)$")
    if not name then name, path = spec:match("([^/]+)/*$") or spec, spec end
    local st = vma.os.stat(path)
    if st and st.type == "directory" then
      return nil, "config " .. path .. " is a folder, not a file (-c takes one file: -c DIR/qemu-server.conf)"
    end
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local data = f:read("a")
    f:close()
    if not data then return nil, "cannot read " .. path end
    if name == "qemu-server.conf" and not a.no_qmdump_map then
      local names = {}
      for _, d in ipairs(devs) do names[#names + 1] = d.name end
      local unmapped
      data, unmapped = devices.vzdump_config(data, names)
      for _, n in ipairs(unmapped) do
        notes[#notes + 1] = string.format("device %s has no drive line in %s: no #qmdump#map "
          .. "line for it (name it after its config key, e.g. scsi0=PATH)", n, path)
      end
    end
    configs[#configs + 1] = { name = name, data = data }
  end
  return configs, notes
end

local function write_devices(w, a, devs, total)
  local base, zbase, zeros, elapsed = 0, 0, 0, 0
  local prog = ui.progress {
    verbose = a.verbose, quiet = a.quiet or a.json,
    line = function(pct, done, tot, _)
      io.stderr:write(string.format("progress %d%% %d/%d %d\n", pct, done, tot, zeros))
    end,
  }
  for _, d in ipairs(devs) do
    local ok, werr = w:write_device(d.id, d.source or d.path, {
      progress = function(p)
        zeros = zbase + p.zero_bytes -- summed over the devices, as Proxmox does
        elapsed = p.elapsed
        prog.update(base + p.done, total, p.elapsed)
      end,
    })
    if not ok then
      prog.finish()
      return nil, werr
    end
    base = base + d.size
    zbase = zbase + w:stats(d.id).zero_bytes
  end
  prog.finish()
  return elapsed
end

local function report(a, path, uuid, devs, configs, stats, secs)
  local total, zero = 0, 0
  for _, d in ipairs(devs) do
    local s = stats[d.name]
    total, zero = total + s.size, zero + s.zero_bytes
    if a.verbose then
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
    -- never into the archive's own stream
    local f = path == "-" and io.stderr or io.stdout
    f:write(ui.json { ok = true, archive = path, uuid = uuid, devices = out, configs = cfgs }, "\n")
    f:flush()
  end
  ui.summary("create", string.format("%s: %d device%s, %s (%s zero, not stored)", path, #devs,
    #devs == 1 and "" or "s", ui.throughput(total, secs), ui.human(zero)), a.quiet or a.json)
end

-- --ctime: seconds, @seconds, or a date and time in UTC
local function parse_ctime(s)
  local n = s:match("^@?(%d+)$")
  if n then return math.tointeger(tonumber(n)) end
  local y, mo, d, h, mi, sec = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[ T](%d%d):(%d%d):?(%d*)Z?$")
  if not y then
    y, mo, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    h, mi, sec = "0", "0", "0"
  end
  if not y then return nil end
  local Y, M, D = tonumber(y), tonumber(mo), tonumber(d)
  if M < 1 or M > 12 or D < 1 or D > vzdump.days_in_month(Y, M) or tonumber(h) > 23
     or tonumber(mi) > 59 or tonumber(sec ~= "" and sec or "0") > 59 then
    return nil
  end
  return vzdump.to_time(Y, M, D, tonumber(h), tonumber(mi), tonumber(sec ~= "" and sec or "0"))
end

-- the uuid of --stable: XXH3-128 of the ctime, the configs (names and
-- bytes), and the devices (names, sizes and the digests of their content),
-- as a version-8 (custom) uuid
local function stable_uuid(a, configs, devs, ctime)
  local total = 0
  for _, d in ipairs(devs) do total = total + d.size end
  local prog = ui.progress { quiet = a.quiet or a.json, label = "reading for --stable: " }
  local t0, base = vma.os.clock(), 0
  local h = vma.hash("xxh128")
  h:update(string.pack("<zi8I4", "vma create --stable 1", ctime, #configs))
  for _, c in ipairs(configs) do h:update(string.pack("<s4s4", c.name, c.data)) end
  h:update(string.pack("<I4", #devs))
  for _, d in ipairs(devs) do
    local dig, err = vma.image_digest(d.source or d.path, { progress = function(p)
      prog.update(base + p.done, total, vma.os.clock() - t0)
    end })
    if not dig then
      prog.finish()
      return nil, err
    end
    base = base + d.size
    h:update(string.pack("<s4I8", d.name, d.size) .. dig)
  end
  prog.finish()
  local hex = h:hex()
  local b = {}
  for i = 1, 32, 2 do b[#b + 1] = tonumber(hex:sub(i, i + 1), 16) end
  b[7] = (b[7] & 0x0f) | 0x80   -- version 8
  b[9] = (b[9] & 0x3f) | 0x80   -- the RFC 4122 variant
  local s = string.format(string.rep("%02x", 16), table.unpack(b))
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20)
    .. "-" .. s:sub(21, 32)
end

local function run(args)
  local a, status = ui.parse(parser(), args, "create")
  if not a then return status end
  if #a.devices == 0 and #a.device == 0 and #a.config == 0 then
    return ui.usage("create", "nothing to archive: give config files and/or devices")
  end
  if a.vmid and not a.vmid:match("^[1-9]%d%d+$") then
    return ui.usage("create", "bad --vmid '" .. a.vmid .. "' (100 or more)")
  end
  local ctime
  if a.ctime then
    ctime = parse_ctime(a.ctime)
    if not ctime then
      return ui.usage("create", "bad --ctime '" .. a.ctime
        .. "' (seconds since 1970, @SECONDS, or 'YYYY-MM-DD HH:MM:SS' in UTC)")
    end
  end
  if a.uuid and not a.uuid:lower():match("^%x%x%x%x%x%x%x%x%-?%x%x%x%x%-?%x%x%x%x%-?%x%x%x%x%-?%x%x%x%x%x%x%x%x%x%x%x%x$") then
    return ui.usage("create", "bad --uuid '" .. a.uuid
      .. "' (32 hex digits, as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
  end
  if a.stable and not ctime then
    local sde = os.getenv("SOURCE_DATE_EPOCH")
    if sde and sde ~= "" then
      ctime = sde:match("^%d+$") and math.tointeger(tonumber(sde))
      if not ctime then
        return ui.usage("create", "SOURCE_DATE_EPOCH is not a number: " .. sde)
      end
    else
      ctime = 0
    end
  end
  local json_to = a.json and a.archive ~= "-" -- (not "x and nil or y": that is always y)
  local function fail(msg)
    -- the archive goes to stdout: the JSON of a failure goes where the JSON of a
    -- success goes (stderr), never into the archive's stream
    if a.json and a.archive == "-" then
      local text = tostring(msg):gsub("\n+$", ""):gsub("\n", " ")
      io.stderr:write(ui.json { ok = false, error = text }, "\n")
    end
    return ui.fail("create", msg, json_to)
  end
  if a.archive == "-" and vma.os.isatty(1) then
    return fail("standard output is a terminal: not writing an archive there "
      .. "(redirect it to a file or a pipe)")
  end
  local path, perr, default_comp = archive_path(a)
  if not path then return fail(perr) end
  local comp = a.compress or default_comp or compression_for(a, path)
  local uerr = compression.check(comp, a.level, a.threads)
  if uerr then return ui.usage("create", uerr) end
  local devs, derr = collect_devices(a)
  if not devs then return fail(derr) end
  local configs, notes = collect_configs(a, devs)
  if not configs then
    close_sources(devs)
    return fail(notes)
  end
  for _, n in ipairs(notes) do io.stderr:write("vma create: note: ", n, "\n") end

  vma.os.catch_signals()
  local uuid = a.uuid and a.uuid:lower()
  if a.stable and not uuid then
    local serr
    uuid, serr = stable_uuid(a, configs, devs, ctime)
    if not uuid then
      close_sources(devs)
      return fail(serr)
    end
  end
  local w, err = vma.create(path, { compress = comp, level = a.level, threads = a.threads,
    overwrite = a.force, uuid = uuid, ctime = ctime, canonical = a.stable })
  if not w then
    close_sources(devs)
    return fail(err)
  end
  local function abort(msg)
    w:abort() -- removes the unfinished archive
    close_sources(devs)
    return fail(msg)
  end
  for _, c in ipairs(configs) do
    local ok, cerr = w:add_config(c.name, c.data)
    if not ok then return abort(cerr) end
  end
  local total = 0
  for _, d in ipairs(devs) do
    local id, aerr = w:add_device(d.name, d.size)
    if not id then return abort(aerr) end
    d.id = id
    d.size = w:stats(id).size -- as recorded: rounded up to 512
    total = total + d.size
  end
  local secs, werr = write_devices(w, a, devs, total)
  if not secs then return abort(werr) end
  local stats = {}
  for _, d in ipairs(devs) do stats[d.name] = w:stats(d.id) end
  local uuid = w.uuid
  local serr = close_sources(devs)
  if serr then return abort(serr) end
  local cok, cerr = w:close()
  if not cok then return fail(cerr) end
  report(a, path, uuid, devs, configs, stats, secs)
  return 0
end

return {
  description = "create an archive from config files and disk images",
  usage = parser():get_help(),
  run = run,
}
