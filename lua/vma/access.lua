-- vma.access: what the random-access commands (serve, mount, convert, cat)
-- share: an archive opened for reads at random with a clear message, its
-- disks and the one a user means, what is mounted where, private folders
-- for sockets, NBD URIs. The programs they start (nbdkit, qemu-img,
-- vma-fuse) are vma.process's.
local vma = require "vma"

local M = {}

--- The disks of an archive (the vmstate is not one): a list of device
-- tables ({id, name, size}) in dev_id order.
function M.disks(r)
  local t = {}
  for _, d in ipairs(r:devices()) do
    if not d.vmstate then t[#t + 1] = d end
  end
  return t
end

--- The disk given by the user ("scsi0" or "drive-scsi0"), or the only one.
-- Returns the device, or nil, message, exit status (2: a usage error: no
-- name given and several disks).
function M.pick_disk(r, name)
  local disks = M.disks(r)
  local names = {}
  for _, d in ipairs(disks) do names[#names + 1] = d.name end
  if #disks == 0 then return nil, "the archive holds no disk", 1 end
  if not name then
    if #disks == 1 then return disks[1] end
    return nil, "the archive has " .. #disks .. " disks: say which with --disk ("
      .. table.concat(names, ", ") .. ")", 2
  end
  local d, err = require("vma.devices").match(disks, name, true)
  if d then return d end
  return nil, err, 1
end

--- Open an archive for random access: returns the archive object, or nil,
-- message.  o.cache (false: --no-cache), o.wait (ui.waiter).  A plain .vma
-- or a seekable .vma.zst is checked whole here (the index of every extent,
-- which a later nbdkit or vma-fuse finds in the cache); any other archive
-- has its header checked here, and is decoded by whoever reads it (in this
-- process with o.prepare, else in nbdkit's or vma-fuse's).
function M.open(path, o)
  o = o or {}
  local r, err = vma.open(path, { cache = o.cache, wait = o.wait })
  if not r then return nil, err end
  if r.random_error then
    err = r.random_error
    r:close()
    return nil, err
  end
  if r.seekable or o.prepare then
    local ok, perr = r:prepare()
    if not ok then
      r:close()
      return nil, perr
    end
  end
  return r
end

-- the mount table's escapes (\040 for a space ...)
local function unescape(s)
  return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end))
end

--- The type of what is mounted on the absolute path ("fuse.vma" for a vma
-- mount), or nil.
function M.mounted(path)
  local f = io.open("/proc/self/mounts", "r")
  if not f then return nil end
  local found
  for line in f:lines() do
    local dev, at, typ = line:match("^(%S+) (%S+) (%S+)")
    if dev and unescape(at) == path then found = typ end
  end
  f:close()
  return found
end

--- A private temporary folder (mode 0700) under $TMPDIR or /tmp.
function M.tmpdir(what)
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  return vma.os.mkdtemp(base .. "/vma-" .. what .. ".XXXXXX")
end

--- Remove a temporary folder made by M.tmpdir and the files in it.
function M.rmtmp(dir, names)
  if not dir then return end
  for _, n in ipairs(names or {}) do os.remove(dir .. "/" .. n) end
  vma.os.rmdir(dir)
end

-- percent-encoding of what a URI part may not hold as it is
local function pct(s, keep)
  return (s:gsub("[^%w%-%._~" .. (keep or "") .. "]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- An NBD URI for an export. With legacy, a Unix socket's URI is in the
-- form nbd:///EXPORT?socket=PATH, the only one libguestfs 1.48 takes
-- (nbd+unix:// is the standard form, which qemu and libnbd take).
function M.uri(export, socket, host, port, legacy)
  export = pct(export, "/:@!$'()*+,;=")
  if socket then
    return (legacy and "nbd:///" or "nbd+unix:///") .. export .. "?socket="
      .. pct(socket, "/:@!$'()*+,;")
  end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return string.format("nbd://%s:%d/%s", host, port, export)
end

return M
