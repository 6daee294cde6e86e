-- vma.restoremap: Proxmox restore maps ("vma extract -r MAP") and scripted maps.
--
-- A restore map tells `vma extract` where each disk of an archive goes. The
-- text syntax is the one of Proxmox's own vma (see docs/restore-maps.md):
--
--   [format=raw:][throttling.bps=N:][throttling.group=G:][cache=MODE:]0|1:DEVNAME=PATH
--   skip=DEVNAME
--   done
--
-- Scripts (and the built-in targets dir:, lvm:, zfs:, rbd:) compute a map as a Lua
-- table keyed by device name; to_entries() validates such a table against
-- the archive and turns it into the same entries that parse() returns.

local devices = require "vma.devices"
local plugins = require "vma.plugins"

local M = {}

local OPTIONS = {
  { name = "format", field = "format" },
  { name = "throttling.bps", field = "bps" },
  { name = "throttling.group", field = "group" },
  { name = "cache", field = "cache" },
}

local function unsupported_format(fmt, devname)
  return string.format("unsupported format '%s' for %s (only raw can be written)",
                       fmt, devname)
end

-- qemu_strtou64(text, base 0): decimal, 0x hex or 0-prefixed octal.
local function parse_u64(text)
  local n
  if text:match("^0[xX]%x+$") then
    if #text > 2 + 15 then return nil end -- keep it below 2^60: no wrap-around
    n = math.tointeger(tonumber(text:sub(3), 16))
  elseif text:match("^0[0-7]*$") then
    if #text > 21 then return nil end
    n = math.tointeger(tonumber(text, 8))
  elseif text:match("^[1-9]%d*$") then
    if #text > 18 then return nil end
    n = math.tointeger(tonumber(text))
  end
  return n
end

--- Parse a restore map. Returns an array of entries, or nil and a message.
-- Entries: { devname=, skip=true } for "skip=DEVNAME", else
-- { devname=, path=, write_zero=<bool>, format=, bps=, group=, cache= }
-- (format/bps/group/cache nil when absent). Parsing stops at a line "done",
-- an empty line or the end of the text; only the trailing "\n" of a line is
-- removed. The option prefixes may come in any order (as in Proxmox's vma).
function M.parse(text)
  if type(text) ~= "string" then return nil, "read map failed - no map text" end
  local entries, seen = {}, {}
  local pos, len = 1, #text
  while pos <= len do
    local nl = text:find("\n", pos, true)
    local line
    if nl then
      line = text:sub(pos, nl - 1)
      pos = nl + 1
    else
      line = text:sub(pos)
      pos = len + 1
    end
    if line == "" or line == "done" then break end
    local inbuf = line
    local entry
    if line:sub(1, 4) == "skip" then
      if #line < 6 or line:sub(5, 5) ~= "=" then
        return nil, string.format("read map failed - option 'skip' has no value ('%s')", inbuf)
      end
      entry = { devname = line:sub(6), skip = true }
    else
      entry = {}
      local matched = true
      while matched do
        matched = false
        for _, opt in ipairs(OPTIONS) do
          local n = #opt.name
          if line:sub(1, n) == opt.name and line:sub(n + 1, n + 1) == "=" then
            if entry[opt.field] ~= nil then
              return nil, string.format("read map failed - duplicate value for option '%s'", opt.name)
            end
            local colon = line:find(":", n + 2, true)
            if not colon then
              return nil, string.format("read map failed - option '%s' not terminated ('%s')",
                                        opt.name, inbuf)
            end
            entry[opt.field] = line:sub(n + 2, colon - 1)
            line = line:sub(colon + 1)
            matched = true
            break
          end
        end
      end
      if entry.bps ~= nil then
        local n = parse_u64(entry.bps)
        if not n then
          return nil, "read map failed - not a number: " .. entry.bps
        end
        entry.bps = n
      end
      local wz = line:sub(1, 2)
      if wz == "0:" then
        entry.write_zero = false
      elseif wz == "1:" then
        entry.write_zero = true
      else
        return nil, string.format("read map failed - parse error ('%s')", inbuf)
      end
      local rest = line:sub(3)
      local eq = rest:find("=", 1, true)
      if not eq or eq == 1 then
        return nil, string.format("read map failed - no dev name specified ('%s')", inbuf)
      end
      entry.devname = rest:sub(1, eq - 1)
      entry.path = rest:sub(eq + 1)
      if entry.path == "" then
        return nil, string.format("read map failed - no path specified ('%s')", inbuf)
      end
      if entry.format ~= nil and entry.format ~= "raw" then
        return nil, unsupported_format(entry.format, entry.devname)
      end
    end
    if seen[entry.devname] then
      return nil, string.format("read map failed - duplicate device name '%s' ('%s')",
                                entry.devname, inbuf)
    end
    seen[entry.devname] = true
    entries[#entries + 1] = entry
  end
  return entries
end

local function check_value(what, v, devname)
  if v ~= nil and (type(v) ~= "string" or v:find("[:\n]")) then
    return string.format("bad %s for %s: %s", what, devname, tostring(v))
  end
end

--- Format entries as restore-map text (one line per entry, then "done\n").
-- Returns the text, or nil and a message when an entry cannot be written.
function M.format(entries)
  local out = {}
  for i, e in ipairs(entries) do
    local dev = e.devname
    if type(dev) ~= "string" or dev == "" or dev:find("[=\n]") then
      return nil, string.format("entry %d: bad device name %s", i, tostring(dev))
    end
    if e.skip then
      out[#out + 1] = "skip=" .. dev
    else
      if type(e.path) ~= "string" or e.path == "" or e.path:find("\n", 1, true) then
        return nil, string.format("bad path for %s: %s", dev, tostring(e.path))
      end
      local prefix = {}
      local err = check_value("format", e.format, dev) or check_value("throttling group", e.group, dev)
        or check_value("cache mode", e.cache, dev)
      if err then return nil, err end
      if e.format ~= nil then
        if e.format ~= "raw" then return nil, unsupported_format(e.format, dev) end
        prefix[#prefix + 1] = "format=" .. e.format .. ":"
      end
      if e.bps ~= nil then
        if math.type(e.bps) ~= "integer" or e.bps < 0 then
          return nil, string.format("bad throttling bps for %s: %s", dev, tostring(e.bps))
        end
        prefix[#prefix + 1] = "throttling.bps=" .. e.bps .. ":"
      end
      if e.group ~= nil then prefix[#prefix + 1] = "throttling.group=" .. e.group .. ":" end
      if e.cache ~= nil then prefix[#prefix + 1] = "cache=" .. e.cache .. ":" end
      out[#out + 1] = table.concat(prefix) .. (e.write_zero == false and "0" or "1")
        .. ":" .. dev .. "=" .. e.path
    end
  end
  out[#out + 1] = "done"
  return table.concat(out, "\n") .. "\n"
end


local function copy(t)
  if type(t) ~= "table" then return t end
  local r = {}
  for k, v in pairs(t) do r[copy(k)] = copy(v) end
  return r
end

--- Build the `archive` table given to scripts from a reader (vma.open) and
-- the archive's path (nil or "-" for stdin). See docs/restore-maps.md.
function M.archive_info(reader, archive_path)
  local devs = {}
  for _, d in ipairs(reader:devices()) do devs[#devs + 1] = d end
  table.sort(devs, function(a, b) return a.id < b.id end)

  local text
  if reader.config then text = reader:config("qemu-server.conf") end
  if text == nil and reader.configs then
    for _, c in ipairs(reader:configs()) do
      if c.name == "qemu-server.conf" then text = c.data break end
    end
  end
  local config = devices.parse_config(text or "")

  local qm_by_dev = {}
  for _, q in pairs(config.qmdump) do qm_by_dev[q.devname] = q end

  local archive = {
    devices = {},
    config = config,
    path = archive_path,
    uuid = reader.uuid,
    ctime = reader.ctime,
  }
  if archive_path and archive_path ~= "-" then
    archive.name = archive_path:match("([^/]+)/*$") or archive_path
    archive.vmid = devices.vmid_from_filename(archive.name)
  end
  for _, d in ipairs(devs) do
    if d.vmstate or d.name == "vmstate" then
      archive.vmstate = { id = d.id, name = d.name, size = d.size }
    else
      local q = qm_by_dev[d.name]
      local key = (q and q.key) or devices.key_of(d.name)
      local disk = key and config.drives[key] or nil
      archive.devices[#archive.devices + 1] = {
        id = d.id,
        name = d.name,
        key = key,
        size = d.size,
        storage = (q and q.storage) or (disk and disk.storage) or nil,
        format = (q and q.format) or (disk and disk.format) or nil,
        volume = disk and disk.volume or nil,
        volid = disk and disk.file or nil,
        options = disk and copy(disk.options) or {},
      }
    end
  end
  return archive
end

local errmsg = plugins.errmsg

-- call a map function with a copy of ARCHIVE and the extra arguments;
-- returns its map table or nil, err
local function call_map(fn, what, archive, ...)
  local ok, map = pcall(fn, copy(archive), ...)
  if not ok then return nil, errmsg(map) end
  if type(map) ~= "table" then
    return nil, string.format("%s must return a map table, not a %s", what, type(map))
  end
  return map
end

--- Run a map script: FILE returns function(archive) -> map. Returns the map,
-- or nil and a one-line message (load error, error raised by the script,
-- a script that does not return a function, a function that returns no table).
function M.run_script(file, archive)
  local chunk, err = loadfile(file, "t")
  if not chunk then return nil, err end
  local ok, fn = pcall(chunk)
  if not ok then return nil, errmsg(fn) end
  if type(fn) ~= "function" then
    return nil, string.format("%s: the script must return a function(archive), not a %s",
                              file, type(fn))
  end
  return call_map(fn, file .. ": the script's function", archive)
end

--- The target plugin named by a spec "KIND:ARG" ("dir:/restore", "lvm:pve"):
-- a table { map = function(archive, arg, opts), prepare = ..., undo = ... }
-- (a plain function is its map), and the ARG; or nil and a message.
function M.load_target(spec)
  if type(spec) ~= "string" or spec == "" then return nil, "empty target" end
  local kind, arg = spec:match("^([^:]*):(.*)$")
  if not kind then kind = spec end
  if not kind:match("^[%w_][%w_%-]*$") then
    return nil, string.format("bad target '%s' (expected KIND:ARG, e.g. dir:/path)", spec)
  end
  local t, err, why = plugins.load("target", kind)
  if not t then
    if why == "unknown" then
      err = string.format("unknown target '%s' (there are: %s; own targets: see docs/plugins.md)",
        kind, table.concat(plugins.names("target"), ", "))
    end
    return nil, err
  end
  if type(t) == "function" then t = { map = t } end
  return t, arg
end

--- Map for a target spec. opts: { force = bool } (a built-in target refuses
-- an existing file or volume unless force). Returns the map, or nil and a
-- message.
function M.target(spec, archive, opts)
  local t, arg = M.load_target(spec)
  if not t then return nil, arg end
  return call_map(t.map, "target " .. spec, archive, arg, opts or {})
end

local ENTRY_FIELDS = { path = true, write_zero = true, format = true, bps = true,
                       group = true, cache = true, skip = true, nofollow = true }

-- Validate one map value for DEVNAME; returns an entry or nil, err.
local function make_entry(devname, v)
  if v == false then return { devname = devname, skip = true } end
  if type(v) == "string" then v = { path = v } end
  if type(v) ~= "table" then
    return nil, string.format("map entry for %s must be a table, a path or false, not %s",
                              devname, type(v) == "boolean" and "true" or "a " .. type(v))
  end
  local names = {}
  for k in pairs(v) do
    if not ENTRY_FIELDS[k] then names[#names + 1] = tostring(k) end
  end
  if #names > 0 then
    table.sort(names)
    return nil, string.format("map entry for %s has unknown field '%s'", devname, names[1])
  end
  if v.skip == true then return { devname = devname, skip = true } end
  if v.skip ~= nil and v.skip ~= false then
    return nil, string.format("map entry for %s: skip must be a boolean", devname)
  end
  if type(v.path) ~= "string" or v.path == "" then
    return nil, string.format("map entry for %s: path must be a non-empty string", devname)
  end
  if v.path:find("\n", 1, true) then
    return nil, string.format("map entry for %s: path contains a newline", devname)
  end
  local e = { devname = devname, path = v.path, write_zero = true }
  if v.write_zero ~= nil then
    if type(v.write_zero) ~= "boolean" then
      return nil, string.format("map entry for %s: write_zero must be true or false", devname)
    end
    e.write_zero = v.write_zero
  end
  if v.nofollow ~= nil then
    if type(v.nofollow) ~= "boolean" then
      return nil, string.format("map entry for %s: nofollow must be true or false", devname)
    end
    e.nofollow = v.nofollow or nil
  end
  if v.format ~= nil then
    if type(v.format) ~= "string" then
      return nil, string.format("map entry for %s: format must be a string", devname)
    end
    if v.format ~= "raw" then return nil, unsupported_format(v.format, devname) end
    e.format = v.format
  end
  if v.bps ~= nil then
    if math.type(v.bps) ~= "integer" or v.bps < 0 then
      return nil, string.format("map entry for %s: bps must be a non-negative integer", devname)
    end
    e.bps = v.bps
  end
  for _, f in ipairs({ "group", "cache" }) do
    if v[f] ~= nil then
      if type(v[f]) ~= "string" or v[f] == "" or v[f]:find("[:\n]") then
        return nil, string.format("map entry for %s: bad %s %s", devname, f, tostring(v[f]))
      end
      e[f] = v[f]
    end
  end
  return e
end

--- Validate a map (keyed by device name "drive-scsi0" or config key "scsi0")
-- against ARCHIVE (from archive_info) and return entries in device order, as
-- parse() returns them, or nil and a message. Every device needs an entry
-- (a table, a path string, or false to skip it); a "vmstate" key is ignored.
function M.to_entries(map, archive)
  if type(map) ~= "table" then return nil, "the map must be a table" end
  local by_name, by_key = {}, {}
  for _, d in ipairs(archive.devices) do
    by_name[d.name] = d
    if d.key then by_key[d.key] = d end
  end
  local keys = {}
  for k in pairs(map) do
    if type(k) ~= "string" then
      return nil, string.format("map key %s is not a device name", tostring(k))
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local chosen, from = {}, {}
  for _, k in ipairs(keys) do
    if k ~= "vmstate" then
      local d, merr = devices.match(archive.devices, k)
      if not d and merr:match("^no device named") then
        return nil, string.format("map names unknown device '%s'", k)
      elseif not d then
        return nil, "map key " .. merr
      end
      if from[d.name] then
        return nil, string.format("map names device %s twice ('%s' and '%s')",
                                  d.name, from[d.name], k)
      end
      from[d.name] = k
      chosen[d.name] = map[k]
    end
  end
  local entries = {}
  for _, d in ipairs(archive.devices) do
    local v = chosen[d.name]
    if v == nil then return nil, "no device name mapping for " .. d.name end
    local e, err = make_entry(d.name, v)
    if not e then return nil, err end
    entries[#entries + 1] = e
  end
  local ok, perr = M.check_paths(entries)
  if not ok then return nil, perr end
  return entries
end

--- No two entries may name one path (two disks onto one file would leave
-- the first one overwritten). Returns true or nil, message.
function M.check_paths(entries)
  local paths = {}
  for _, e in ipairs(entries) do
    if e.path then
      if paths[e.path] then
        return nil, string.format("%s and %s map to the same path %s", paths[e.path], e.devname,
          e.path)
      end
      paths[e.path] = e.devname
    end
  end
  return true
end

--- Read a restore map from a file or a FIFO, up to its end ("done" or an
-- empty line: the writer of a FIFO, qmrestore, may keep it open).
-- Returns the entries, or nil and a message.
function M.read_file(path)
  local f, err = io.open(path, "r")
  if not f then return nil, "unable to open restore map: " .. tostring(err) end
  local lines = {}
  local ok, rerr = pcall(function()
    for line in f:lines() do
      lines[#lines + 1] = line
      if line == "done" or line == "" then break end
    end
  end)
  f:close()
  if not ok then
    return nil, "unable to read restore map " .. path .. ": " .. tostring(rerr):gsub("^.-:%d+: ", "")
  end
  local entries, perr = M.parse(table.concat(lines, "\n") .. "\n")
  if not entries then return nil, perr end
  local ok, cerr = M.check_paths(entries)
  if not ok then return nil, cerr end
  return entries
end

--- The map of an archive from a Lua map script or a target (how = { script
-- = FILE | target = SPEC, force = bool }), for the reader R of the archive
-- at PATH. Returns entries, the archive table, and for a target its plugin
-- and ARG (for its prepare and undo); or nil and a message.
function M.resolve(r, path, how)
  local archive, err = M.archive_info(r, path)
  if not archive then return nil, err end
  local map, plugin, arg
  if how.script then
    map, err = M.run_script(how.script, archive)
  else
    plugin, arg = M.load_target(how.target)
    if not plugin then return nil, arg end
    map, err = call_map(plugin.map, "target " .. how.target, archive, arg, { force = how.force })
  end
  if not map then return nil, err end
  local entries
  entries, err = M.to_entries(map, archive)
  if not entries then return nil, err end
  return entries, archive, plugin, arg
end

return M
