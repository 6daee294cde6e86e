-- vma.engines.guestfs: the second engine of require("vma.guest").engines,
-- for what the in-process readers cannot read: btrfs (its subvolumes),
-- LUKS and BitLocker volumes (--key, --keyfile), md RAID, Windows dynamic
-- disks, LVM volumes that are not linear, and any other file system the
-- Linux kernel mounts.  It runs libguestfs (Debian: lua-guestfs) over the
-- archive's disks, exported read-only by nbdkit and our plugin on a Unix
-- socket in a private folder (what `vma serve` does): one appliance per
-- archive, launched on first use, every disk added read-only, shut down
-- with nbdkit when the guest is closed (g:close(), which every command
-- does on each way out, Ctrl-C included).
--
-- Its file systems and files have the methods and fields of the in-process
-- ones (stat, dir, readlink, open, walk, close; read, seek, lines, close,
-- size): paths are resolved here, one component at a time, so that no
-- link of the guest is ever followed by the appliance's kernel (an
-- absolute target would lead into the appliance, not the guest).
local vma = require "vma"

local E = { name = "libguestfs" }

E.INSTALL = "apt-get install lua-guestfs"
local MISSING = "libguestfs is not installed (Debian: " .. E.INSTALL .. ")"

local MAX_DEPTH = 4096
local PREAD_MAX = 2 << 20 -- bytes a pread asks for (a message holds at most 4 MiB)
local LIST_MAX = 1000     -- names a lstatnslist asks about

-- what the in-process engine reads (it is asked first) and what is no file system
local NOT_FS = { lvm2 = "an LVM physical volume (its logical volumes are the volumes)",
  swap = "swap space", md = "a member of an md RAID array (the array is the volume)" }

-- partition types of Windows dynamic disks (LDM)
local LDM_TYPES = { ["0x42"] = true, ["5808c8aa-7e8f-42e0-85d2-e1e90434cfb3"] = true,
  ["af9b60a0-1431-4f62-bc68-3311714a69ad"] = true }

-- ---------------------------------------------------------------- the binding

local binding, binding_err
--- The lua-guestfs module, or nil, message (what to install).
function E.binding()
  if binding then return binding end
  if binding_err then return nil, binding_err end
  local ok, G = pcall(require, "guestfs")
  if ok and type(G) == "table" and G.create then
    binding = G
    return G
  end
  binding_err = MISSING
  return nil, binding_err
end

-- the text of a libguestfs error (a table with msg and code, or a string)
local function errtext(e)
  if type(e) == "table" then return tostring(e.msg or e[1] or "libguestfs error"), e.code end
  local s = tostring(e):gsub("^[%w_]+: ", "", 0)
  return s, nil
end

-- call a method of the handle: its results, or nil, message, errno
local function call(h, name, ...)
  local ok, a, b = pcall(h[name], h, ...)
  if ok then return a == nil and true or a, b end
  local msg, code = errtext(a)
  return nil, msg, code
end

local function int(v)
  if v == nil or v == true then return 0 end
  if type(v) == "number" then return math.tointeger(v) or math.floor(v) end
  return math.tointeger(tonumber(v)) or 0
end

-- ---------------------------------------------------------------- launching

-- the backend settings libguestfs will use (LIBGUESTFS_BACKEND_SETTINGS)
local function forced_tcg()
  local s = os.getenv("LIBGUESTFS_BACKEND_SETTINGS") or ""
  return (":" .. s .. ":"):find(":force_tcg:", 1, true) ~= nil
end

-- will qemu try KVM?  /dev/kvm usable and TCG not forced
local function kvm_possible()
  if forced_tcg() then return false end
  local f = io.open("/dev/kvm", "r+b")
  if f then f:close() end
  return f ~= nil
end

local function seconds(name, default)
  local v = tonumber(os.getenv(name) or "")
  if v and v > 0 then return v end
  return default
end

-- A watchdog for a launch that never ends (a KVM that cannot boot a
-- kernel hangs in the firmware; libguestfs waits 20 minutes): after
-- `secs` it ends the qemu that is a child of this process, and exits 3;
-- stopped before (SIGTERM), it exits 0.
local WATCHDOG = [[
trap 'kill $! 2>/dev/null; exit 0' TERM
sleep "$1" & wait $!
for s in /proc/[0-9]*/status; do
  while read -r k v; do
    if [ "$k" = PPid: ]; then
      if [ "$v" = "$2" ]; then
        p=${s#/proc/}; p=${p%/status}
        case "$(readlink "/proc/$p/exe" 2>/dev/null)" in *qemu*) kill "$p" ;; esac
      fi
      break
    fi
  done < "$s" 2>/dev/null
done
exit 3
]]

local function start_watchdog(secs)
  return vma.os.spawn({ "sh", "-c", WATCHDOG, "vma-guestfs-watchdog", tostring(math.ceil(secs)),
    tostring(vma.os.getpid()) }, { stdin = "/dev/null", stdout = "/dev/null", stderr = "/dev/null" })
end

-- stop the watchdog; true when it had fired
local function stop_watchdog(pid)
  if not pid then return false end
  local how, code = vma.os.wait(pid, true)
  if how == false then
    vma.os.kill(pid, "TERM")
    how, code = vma.os.wait(pid)
  end
  return how == "exit" and code == 3
end

local Session = {}
Session.__index = Session

local sessions = setmetatable({}, { __mode = "k" })

local function note(s, text)
  if s.tty then io.stderr:write("\r", text, "\27[K") end
end

local function unnote(s)
  if s.tty then io.stderr:write("\r\27[K") end
end

-- one handle, the disks added, launched; with tcg, KVM is not tried
function Session:_launch(tcg, wait)
  local G = self.G
  local ok, h = pcall(G.create)
  if not ok then return nil, "libguestfs: " .. errtext(h) end
  self.h = h
  -- its overlays in the private folder (removed with it)
  call(h, "set_tmpdir", self.tmp)
  if tcg then
    local cur = call(h, "get_backend_settings")
    local settings = type(cur) == "table" and cur or {}
    settings[#settings + 1] = "force_tcg"
    call(h, "set_backend_settings", settings)
  end
  for _, d in ipairs(self.disks) do
    local added, err = call(h, "add_drive", d.name, { format = "raw", readonly = true,
      protocol = "nbd", server = { "unix:" .. self.socket } })
    if not added then return nil, "libguestfs cannot add " .. d.name .. ": " .. err end
  end
  local dog = start_watchdog(wait)
  local launched, err = call(h, "launch")
  local fired = stop_watchdog(dog)
  if launched then return true end
  return nil, err, fired
end

--- Start nbdkit and the appliance for a reader: true, or nil, message.
function Session:start()
  local G, gerr = E.binding()
  if not G then return nil, gerr end
  self.G = G
  local access = require "vma.access"
  local r = self.reader
  self.disks = access.disks(r)
  if #self.disks == 0 then return nil, "the archive holds no disk" end
  local tmp, terr = access.tmpdir("guestfs")
  if not tmp then return nil, terr end
  self.tmp = tmp
  self.socket = tmp .. "/nbd.sock"
  -- a signal sets a flag: the caller ends the appliance and nbdkit (a
  -- caller that wants signals to end the process says signals = false)
  if self.opts.signals ~= false then vma.os.catch_signals() end
  local nb, nerr = require("vma.process").start_nbdkit { archive = r.path, socket = self.socket, dir = tmp,
    expect = r.header_md5, cache = not self.opts.no_cache }
  if not nb then return nil, nerr end
  self.nbdkit = nb
  local t0 = vma.os.clock()
  note(self, string.format("vma %s: starting libguestfs (its appliance boots a small VM)...",
    self.cmd))
  local kvm = kvm_possible()
  local ok, err, fired = self:_launch(false, kvm and seconds("VMA_GUESTFS_KVM_WAIT", 60)
    or seconds("VMA_GUESTFS_LAUNCH_WAIT", 600))
  if not ok and fired and kvm and not vma.os.interrupted() then
    -- KVM is there but does not boot the appliance (nested virtualisation
    -- without support): once more with software emulation
    call(self.h, "close")
    self.h = nil
    unnote(self)
    io.stderr:write(string.format("vma %s: the libguestfs appliance did not start with KVM in %d s: "
      .. "starting it again without KVM (slower; LIBGUESTFS_BACKEND_SETTINGS=force_tcg "
      .. "skips this wait)\n", self.cmd, math.floor(vma.os.clock() - t0 + 0.5)))
    note(self, string.format("vma %s: starting libguestfs without KVM...", self.cmd))
    ok, err, fired = self:_launch(true, seconds("VMA_GUESTFS_LAUNCH_WAIT", 600))
  end
  unnote(self)
  if vma.os.interrupted() then return nil, "interrupted" end
  if not ok then
    if fired then
      return nil, string.format("the libguestfs appliance did not start in %d s (if this "
        .. "machine's KVM cannot run a guest, set LIBGUESTFS_BACKEND_SETTINGS=force_tcg)",
        math.floor(vma.os.clock() - t0 + 0.5))
    end
    return nil, "libguestfs did not start: " .. err
  end
  self.launch_seconds = vma.os.clock() - t0
  local devs = call(self.h, "list_devices")
  if type(devs) ~= "table" or #devs ~= #self.disks then
    return nil, "libguestfs shows " .. (type(devs) == "table" and #devs or 0) .. " disks, not "
      .. #self.disks
  end
  self.dev_of_disk = {}
  for i, d in ipairs(self.disks) do self.dev_of_disk[d.name] = devs[i] end
  return true
end

--- The session of a reader (started on first use), or nil, message (a
--- start that failed is not tried again).
function E.session(reader, opts)
  if not reader then return nil, "libguestfs needs the archive (open the guest with r:guest())" end
  local s = sessions[reader]
  if s then
    if s.failed then return nil, s.failed end
    return s
  end
  opts = opts or {}
  s = setmetatable({ reader = reader, opts = opts, cmd = opts.cmd or "guest", mounts = {},
    nmount = 0, unlocked = {}, nmapper = 0, fss = {},
    tty = opts.quiet ~= true and vma.os.isatty(2) }, Session)
  sessions[reader] = s
  local ok, err = s:start()
  if not ok then
    s.failed = err
    s:close()
    return nil, err
  end
  return s
end

--- Shut the appliance down, stop nbdkit, remove the private folder.
function Session:close()
  if self.closed then return end
  self.closed = true
  for _, fs in pairs(self.fss) do fs.closed = true end
  if self.h then
    call(self.h, "shutdown")
    call(self.h, "close")
    self.h = nil
  end
  if self.nbdkit then
    require("vma.process").stop(self.nbdkit.pid)
    self.nbdkit = nil
  end
  if self.tmp then
    local st = vma.os.lstat(self.socket)
    if st and st.type == "socket" then os.remove(self.socket) end
    require("vma.access").rmtmp(self.tmp, { "nbdkit.pid" })
    self.tmp = nil
  end
end
Session.__gc = Session.close
Session.__close = Session.close

--- Close the session of a reader, if there is one (vma.guest's g:close).
function E.release(_, reader)
  local s = reader and sessions[reader]
  if s then
    s:close()
    sessions[reader] = nil
  end
end

-- ---------------------------------------------------------------- devices

--- What blkid says of a device of the appliance (once): {TYPE=, LABEL=,
--- UUID=}, empty when nothing is recognised.
function Session:probe(dev)
  self.probes = self.probes or {}
  local p = self.probes[dev]
  if p then return p end
  local t = call(self.h, "blkid", dev)
  p = type(t) == "table" and t or {}
  self.probes[dev] = p
  return p
end

-- the partitions of a disk of the appliance: number -> {start=, size=}
function Session:_parts(base)
  self.parts = self.parts or {}
  if self.parts[base] then return self.parts[base] end
  local t = {}
  local list = call(self.h, "part_list", base)
  for _, p in ipairs(type(list) == "table" and list or {}) do
    t[int(p.part_num)] = { start = int(p.part_start), size = int(p.part_size) }
  end
  self.parts[base] = t
  return t
end

--- The appliance's device of a volume: a partition, a whole disk, an LVM
--- logical volume, or what this engine assembled; nil, message.  A
--- partition is checked against the table libguestfs reads (its start and
--- size), so that no other bytes are read under its name.
function Session:device(vol)
  if vol.gdev then return vol.gdev end
  if vol.vg and vol.lv then return "/dev/" .. vol.vg .. "/" .. vol.lv end
  local base = vol.disk and self.dev_of_disk[vol.disk]
  if not base then return nil, "libguestfs does not show the disk of " .. tostring(vol.name) end
  if not vol.number then return base end
  local p = self:_parts(base)[vol.number]
  if not p then return nil, "libguestfs does not show partition " .. vol.number .. " of " .. base end
  if (vol.start and p.start ~= vol.start) or (vol.length and p.size ~= vol.length) then
    return nil, string.format("libguestfs's partition %d of %s is not %s (start %d, %d bytes)",
      vol.number, base, tostring(vol.name), p.start, p.size)
  end
  return base .. tostring(vol.number)
end

local CRYPT = { luks = "luks", bitlocker = "bitlk" }

--- Open an encrypted volume with the key (once): the device of what it
--- holds, or nil, message.
function Session:unlock(vol, dev, key)
  local u = self.unlocked[dev]
  if u then return u.dev, u.err end
  local what = vol.fstype == "bitlocker" and "BitLocker" or "LUKS"
  if not key or key == "" then
    u = { err = E.need_key(vol) }
  else
    self.nmapper = self.nmapper + 1
    local name = "vmacrypt" .. self.nmapper
    local ok, err = call(self.h, "cryptsetup_open", dev, key, name,
      { readonly = true, crypttype = CRYPT[vol.fstype] or "luks" })
    if ok then
      u = { dev = "/dev/mapper/" .. name }
      -- what it holds may be an LVM physical volume: its volumes then
      if self:probe(u.dev).TYPE == "LVM2_member" then
        call(self.h, "vgscan")
        call(self.h, "vg_activate_all", true)
        self.lvm_changed = true
      end
    elseif err and (err:find("No key available", 1, true) or err:find("status 2", 1, true)) then
      u = { err = string.format("the key given does not open this %s volume", what), wrong_key = true }
    else
      u = { err = string.format("cannot open this %s volume: %s", what, tostring(err)) }
    end
  end
  self.unlocked[dev] = u
  return u.dev, u.err
end

--- The message for an encrypted volume opened without a key.
function E.need_key(vol)
  return string.format("encrypted (%s): give its passphrase with --keyfile FILE (or --key "
    .. "PASSPHRASE)", vol.fstype == "bitlocker" and "BitLocker" or "LUKS")
end

-- a new folder of the appliance to mount on (its root is a tmpfs)
function Session:_mountpoint()
  self.nmount = self.nmount + 1
  local mp = "/vma" .. self.nmount
  local ok, err = call(self.h, "mkmountpoint", mp)
  if not ok then return nil, err end
  return mp
end

-- ---------------------------------------------------------------- files

local File = {}
File.__index = File

local function new_file(fs, apath, st, path)
  return setmetatable({ fs = fs, apath = apath, stat = st, size = st.size, path = path,
    pos = 0, buf = "", bufpos = 0 }, File)
end

local function check_open(f)
  if f.closed then error("attempt to use a closed file", 3) end
end

-- up to n bytes at the position (the buffer first); nil at the end, or
-- nil, message
function File:_take(n)
  if self.pos >= self.size then return nil end
  if n <= 0 then return "" end
  n = math.min(n, self.size - self.pos)
  local parts, got = {}, 0
  -- what the buffer holds at pos
  if #self.buf > 0 and self.pos >= self.bufpos and self.pos < self.bufpos + #self.buf then
    local from = self.pos - self.bufpos + 1
    local piece = self.buf:sub(from, from + n - 1)
    parts[1] = piece
    got = #piece
  end
  while got < n do
    if vma.os.interrupted() then return nil, "interrupted" end
    local want = math.min(n - got, PREAD_MAX)
    local data, err = self.fs:_pread(self.apath, want, self.pos + got)
    if not data then return nil, self.path .. ": " .. err end
    if #data == 0 then break end -- the file is shorter than it said
    parts[#parts + 1] = data
    got = got + #data
  end
  local s = table.concat(parts)
  self.pos = self.pos + #s
  if #s == 0 then return nil end
  return s
end

-- a line (with its newline when keep); nil at the end
function File:_line(keep)
  local parts = {}
  while true do
    if self.pos >= self.size then break end
    if not (#self.buf > 0 and self.pos >= self.bufpos and self.pos < self.bufpos + #self.buf) then
      local want = math.min(65536, self.size - self.pos)
      local data, err = self.fs:_pread(self.apath, want, self.pos)
      if not data then return nil, self.path .. ": " .. err end
      if #data == 0 then break end
      self.buf, self.bufpos = data, self.pos
    end
    local from = self.pos - self.bufpos + 1
    local nl = self.buf:find("\n", from, true)
    if nl then
      parts[#parts + 1] = self.buf:sub(from, keep and nl or nl - 1)
      self.pos = self.bufpos + nl
      return table.concat(parts)
    end
    parts[#parts + 1] = self.buf:sub(from)
    self.pos = self.bufpos + #self.buf
  end
  if #parts == 0 then return nil end
  return table.concat(parts)
end

--- f:read(...): "a", "l", "L" or a byte count, as Lua's files.
function File:read(...)
  check_open(self)
  local fmts = table.pack(...)
  if fmts.n == 0 then fmts = { "l", n = 1 } end
  local out = {}
  for i = 1, fmts.n do
    local fmt = fmts[i]
    local v, err
    if type(fmt) == "number" then
      v, err = self:_take(math.tointeger(fmt) or math.floor(fmt))
      if fmt == 0 and self.pos < self.size then v = "" end
    else
      fmt = tostring(fmt):gsub("^%*", "")
      local c = fmt:sub(1, 1)
      if c == "a" then
        v, err = self:_take(self.size - self.pos)
        v = v or (not err and "" or nil)
      elseif c == "l" or c == "L" then
        v, err = self:_line(c == "L")
      else
        error("bad argument #" .. i .. " to 'read' (invalid format)", 2)
      end
    end
    if err then return nil, err end
    out[i] = v
    if v == nil then return table.unpack(out, 1, i) end
  end
  return table.unpack(out, 1, fmts.n)
end

function File:lines(...)
  check_open(self)
  local fmts = table.pack(...)
  return function()
    local v, err = self:read(table.unpack(fmts, 1, fmts.n))
    if err then error(err, 2) end
    return v
  end
end

function File:seek(whence, offset)
  check_open(self)
  whence = whence or "cur"
  offset = offset or 0
  local base = whence == "set" and 0 or whence == "cur" and self.pos or whence == "end" and self.size
  if not base then error("bad argument #1 to 'seek' (invalid option '" .. tostring(whence) .. "')", 2) end
  local to = base + offset
  if to < 0 then return nil, "Invalid argument", 22 end
  self.pos = to
  return to
end

--- The whole file into an open Lua file (io.stdout).
function File:copy_to(out)
  check_open(self)
  local n = 0
  self.pos = 0
  while true do
    if vma.os.interrupted() then return nil, "interrupted" end
    local s, err = self:_take(PREAD_MAX)
    if err then return nil, err end
    if not s then break end
    local ok, werr = out:write(s)
    if not ok then return nil, "cannot write: " .. tostring(werr) end
    n = n + #s
  end
  local ok, ferr = out:flush()
  if not ok then return nil, "cannot write: " .. tostring(ferr) end
  return n
end

function File:close()
  self.closed = true
  self.buf = ""
  return true
end
File.__close = File.close
File.__name = "vma.guestfs.file"

-- ---------------------------------------------------------------- file systems

local FS = {}
FS.__index = FS
FS.__name = "vma.guestfs.fs"

local TYPES = { [0x8000] = "file", [0x4000] = "directory", [0xa000] = "link", [0x2000] = "char",
  [0x6000] = "block", [0x1000] = "fifo", [0xc000] = "socket" }

local function stat_of(t)
  local mode = int(t.st_mode)
  local rdev = int(t.st_rdev)
  return { type = TYPES[mode & 0xf000] or "unknown", mode = mode & 0xfff, uid = int(t.st_uid),
    gid = int(t.st_gid), nlink = int(t.st_nlink), size = int(t.st_size), blocks = int(t.st_blocks),
    ino = int(t.st_ino), dev = int(t.st_dev), mtime = int(t.st_mtime_sec), mtime_ns = int(t.st_mtime_nsec),
    atime = int(t.st_atime_sec), atime_ns = int(t.st_atime_nsec), ctime = int(t.st_ctime_sec),
    ctime_ns = int(t.st_ctime_nsec), rdev_major = (rdev >> 8) & 0xfff,
    rdev_minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00) }
end

function FS:_check()
  if self.closed then error("attempt to use a closed file system", 3) end
  if vma.os.interrupted() then return nil, "interrupted", "interrupted" end
  return true
end

-- the appliance's path of components (no link among them)
function FS:_apath(comps, n)
  n = n or #comps
  if n == 0 then return self.base end
  return self.base .. "/" .. table.concat(comps, "/", 1, n)
end

function FS:_lstat(apath)
  local c = self.cache[apath]
  if c ~= nil then return c or nil, "no such file or folder", "not-found" end
  local t, err, code = call(self.s.h, "lstatns", apath)
  if not t then
    if code == 2 or code == 20 or (err and err:find("No such file", 1, true)) then
      self.cache[apath] = false
      return nil, "no such file or folder", "not-found"
    end
    return nil, err, "io"
  end
  local st = stat_of(t)
  self.cache[apath] = st
  return st
end

function FS:_pread(apath, n, off)
  local data, err = call(self.s.h, "pread", apath, n, off)
  if not data then return nil, err end
  if data == true then data = "" end
  return data
end

--- Resolve a path in this file system: the components (no link among
--- them), its stat; links are followed inside the file system (an absolute
--- target from its root), the last one only with follow.
function FS:_resolve(path, follow)
  local ok, e1, e2 = self:_check()
  if not ok then return nil, e1, e2 end
  local cur, st, kind = require("vma.guest").follow_links(path, follow, function(comps)
    return self:_lstat(self:_apath(comps))
  end, function(comps)
    local target, err = call(self.s.h, "readlink", self:_apath(comps))
    if not target then return nil, err, "io" end
    return target
  end)
  if not cur then return nil, st, kind end
  if not st then
    local err
    st, err, kind = self:_lstat(self:_apath(cur))
    if not st then return nil, path .. ": " .. err, kind end
  end
  return cur, st
end

function FS:stat(path, follow)
  local comps, st, kind = self:_resolve(path, follow)
  if not comps then return nil, st, kind end
  return st
end

function FS:readlink(path)
  local comps, st, kind = self:_resolve(path, false)
  if not comps then return nil, st, kind end
  if st.type ~= "link" then return nil, path .. ": not a symbolic link", "argument" end
  local target, err = call(self.s.h, "readlink", self:_apath(comps))
  if not target then return nil, path .. ": " .. err end
  return target
end

function FS:open(path)
  local comps, st, kind = self:_resolve(path, true)
  if not comps then return nil, st, kind end
  if st.type == "directory" then return nil, path .. ": a folder, not a file", "argument" end
  if st.type ~= "file" then return nil, path .. ": not a regular file", "argument" end
  return new_file(self, self:_apath(comps), st, path)
end

-- the entries of a folder of the appliance: a sorted list of {name, stat}
-- (stat nil and a message for one that cannot be read), or nil, message
function FS:_list(apath)
  local names, err = call(self.s.h, "ls", apath)
  if not names then return nil, err end
  if names == true then names = {} end
  table.sort(names)
  local out = {}
  for i = 1, #names, LIST_MAX do
    local chunk = table.move(names, i, math.min(i + LIST_MAX - 1, #names), 1, {})
    local stats, serr = call(self.s.h, "lstatnslist", apath, chunk)
    for j, name in ipairs(chunk) do
      local t = type(stats) == "table" and stats[j]
      if t and int(t.st_ino) ~= -1 then
        local st = stat_of(t)
        self.cache[apath .. "/" .. name] = st
        out[#out + 1] = { name, st }
      else
        out[#out + 1] = { name, nil, serr or "cannot be read" }
      end
    end
  end
  return out
end

function FS:dir(path)
  local comps, st, kind = self:_resolve(path, true)
  if not comps then return nil, st, kind end
  if st.type ~= "directory" then return nil, path .. ": not a folder", "not-found" end
  local list, err = self:_list(self:_apath(comps))
  if not list then return nil, path .. ": " .. err end
  local i = 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[1], e[2], e[3] end
  end, { skipped = 0 }
end

local Walker = {}
Walker.__index = Walker
function Walker:prune() self.descend = nil end
function Walker:depth() return #self.stack end

function FS:walk(path)
  local comps, st, kind = self:_resolve(path, true)
  if not comps then return nil, st, kind end
  if st.type ~= "directory" then return nil, path .. ": not a folder", "not-found" end
  local fs = self
  local top = self:_apath(comps)
  local w = setmetatable({ stack = {}, seen = {}, descend = { "", top, st } }, Walker)
  local function step()
    while true do
      if vma.os.interrupted() then
        if w.done then return nil end
        w.done = true
        return "", nil, "interrupted"
      end
      local d = w.descend
      w.descend = nil
      if d then
        local key = tostring(d[3].dev) .. ":" .. tostring(d[3].ino)
        if not w.seen[key] and #w.stack < MAX_DEPTH then
          w.seen[key] = true
          local list, err = fs:_list(d[2])
          if not list then
            if d[1] ~= "" then return d[1], nil, err end
            return nil
          end
          w.stack[#w.stack + 1] = { rel = d[1], apath = d[2], list = list, i = 0 }
        elseif #w.stack >= MAX_DEPTH then
          return d[1], nil, "deeper than " .. MAX_DEPTH .. " folders: not entered"
        end
      end
      local f = w.stack[#w.stack]
      if not f then return nil end
      f.i = f.i + 1
      local e = f.list[f.i]
      if not e then
        w.stack[#w.stack] = nil
      else
        local rel = f.rel == "" and e[1] or (f.rel .. "/" .. e[1])
        if not e[2] then return rel, nil, e[3] end
        if e[2].type == "directory" then w.descend = { rel, f.apath .. "/" .. e[1], e[2] } end
        return rel, e[2]
      end
    end
  end
  return function() return step() end, w
end

--- The subvolumes of a btrfs file system: a list of paths (from its top).
function FS:subvolumes()
  if self.type ~= "btrfs" then return {} end
  if self._subvols then return self._subvols end
  local list = call(self.s.h, "btrfs_subvolume_list", self.base)
  local default = int(call(self.s.h, "btrfs_subvolume_get_default", self.base))
  local out, first = {}, nil
  for _, sv in ipairs(type(list) == "table" and list or {}) do
    local p = sv.btrfssubvolume_path
    if type(p) == "string" and p ~= "" then
      p = p:gsub("^<FS_TREE>/", "")
      if int(sv.btrfssubvolume_id) == default then first = p else out[#out + 1] = p end
    end
  end
  table.sort(out)
  if first then table.insert(out, 1, first) end
  self._subvols = out
  return out
end

--- The file system seen from a folder of it (a btrfs subvolume: what
--- mounting it with subvol=PATH shows), or nil, message.
function FS:subvolume(path)
  local comps, st, kind = self:_resolve(path, false)
  if not comps then return nil, st, kind end
  if st.type ~= "directory" then return nil, path .. ": not a folder", "not-found" end
  local key = table.concat(comps, "/")
  self.views = self.views or {}
  if self.views[key] then return self.views[key] end
  local v = setmetatable({ s = self.s, base = self:_apath(comps), cache = self.cache,
    type = self.type, label = self.label, uuid = self.uuid, engine = E.name, dev = self.dev,
    subvol = key, volume = self.volume }, FS)
  self.views[key] = v
  return v
end

function FS:close()
  -- the mount stays until the session ends (another caller may share it)
  return true
end
FS.__close = FS.close

-- mount a device (once) and make its file system object
function Session:fs_of_device(dev, fstype)
  if self.fss[dev] then return self.fss[dev] end
  local mp, merr = self:_mountpoint()
  if not mp then return nil, merr end
  local options = fstype == "btrfs" and "ro,subvolid=5" or "ro"
  local ok, err = call(self.h, "mount_options", options, dev, mp)
  if not ok then return nil, "libguestfs cannot mount it (" .. tostring(fstype) .. "): " .. err end
  local p = self:probe(dev)
  local fs = setmetatable({ s = self, base = mp, cache = {}, type = fstype,
    label = p.LABEL or "", uuid = p.UUID or "",
    engine = E.name, dev = dev, case_insensitive = false }, FS)
  self.fss[dev] = fs
  return fs
end

-- ---------------------------------------------------------------- the engine

-- the reader of a volume: the guest's options, or what vma.guest set on it
local function reader_of(vol, opts)
  return opts.reader or vol.archive
end

--- Can this engine read the volume?  Everything the kernel mounts, and
--- what it assembles, when libguestfs is installed.
function E:can(vol, opts)
  if vol.engine and vol.engine ~= self.name then return false, "read by " .. vol.engine end
  if NOT_FS[vol.fstype or ""] then return false, "it is " .. NOT_FS[vol.fstype] end
  local G, err = E.binding()
  if not G then return false, err end
  if not reader_of(vol, opts or {}) then return false, "libguestfs needs the archive (r:guest())" end
  return true
end

--- The file system of a volume, or nil, message, kind.
function E:open(vol, opts)
  opts = opts or {}
  -- no appliance started for what cannot be opened anyway
  if CRYPT[vol.fstype or ""] and (not opts.key or opts.key == "") then
    return nil, E.need_key(vol), "key"
  end
  local s, err = E.session(reader_of(vol, opts), opts)
  if not s then return nil, err, "unavailable" end
  if vol.gdev_error then return nil, vol.gdev_error, "format" end
  local dev, derr = s:device(vol)
  if not dev then return nil, derr, "format" end
  if CRYPT[vol.fstype or ""] then
    local inner, uerr = s:unlock(vol, dev, opts.key)
    if not inner then return nil, uerr, "key" end
    dev = inner
  end
  local t = s:probe(dev).TYPE
  if type(t) ~= "string" or t == "" or t == "unknown" then
    return nil, "libguestfs finds no file system on it", "format"
  end
  if t == "LVM2_member" then
    return nil, "it holds an LVM physical volume: its logical volumes are the volumes (see 'vma inspect')", "format"
  end
  if t == "crypto_LUKS" or t == "BitLocker" then
    return nil, "it holds an encrypted volume inside", "format"
  end
  if t == "swap" or t == "linux_raid_member" then return nil, "it holds " .. t, "format" end
  return s:fs_of_device(dev, t)
end

-- ---------------------------------------------------------------- volumes it assembles

local VM = {} -- the volumes this engine makes
VM.__index = VM
function VM:close() end
function VM:fs(opts) return require("vma.guest").fs(self, opts) end
VM.__name = "vma.guestfs.volume"

local function needs_launch(vols, info, opts)
  for _, v in ipairs(vols) do
    if CRYPT[v.fstype or ""] and opts.key then return true end
    if v.fstype == "md" then return true end
    if v.part_type and LDM_TYPES[v.part_type:lower()] then return true end
  end
  for _, vg in ipairs(info.vgs or {}) do
    for _, lv in ipairs(vg.lvs) do
      if not lv.volume then return true end
    end
  end
  return false
end

--- Add the volumes only libguestfs can assemble (what encrypted volumes
--- hold, md RAID arrays, Windows dynamic disks, LVM volumes that are not
--- linear) to the list vols; info.assembled tells about them.  Launches the
--- appliance only when there is such a thing (an encrypted volume counts
--- when a key is given).
function E:volumes(reader, vols, info, opts)
  opts = opts or {}
  if not reader or not needs_launch(vols, info, opts) then return end
  local by_name = {}
  for _, v in ipairs(vols) do by_name[v.name] = v end
  local function note_(text)
    info.engine_notes = info.engine_notes or {}
    info.engine_notes[#info.engine_notes + 1] = text
  end
  if not E.binding() then return note_("some volumes need libguestfs: " .. MISSING) end
  local s, err = E.session(reader, opts)
  if not s then return note_(err) end
  -- the encrypted volumes, opened with the key; what they hold
  local want_md, want_ldm, want_lvs = false, false, false
  for _, v in ipairs(vols) do
    if CRYPT[v.fstype or ""] and opts.key then
      local dev, derr = s:device(v)
      local inner, uerr
      if dev then inner, uerr = s:unlock(v, dev, opts.key) end
      if inner then
        local p = s:probe(inner)
        v.holds, v.inner_label, v.inner_uuid = p.TYPE, p.LABEL, p.UUID
        if p.TYPE == "LVM2_member" then want_lvs = true end
        if p.TYPE == "linux_raid_member" then want_md = true end
      else
        v.unlock_error = derr or uerr
      end
    end
    if v.fstype == "md" then want_md = true end
    if v.part_type and LDM_TYPES[v.part_type:lower()] then want_ldm = true end
  end
  for _, vg in ipairs(info.vgs or {}) do
    for _, lv in ipairs(vg.lvs) do
      if not lv.volume then want_lvs = true end
    end
  end
  -- the devices only libguestfs assembles
  local devs = {}
  local function add(list)
    for _, d in ipairs(type(list) == "table" and list or {}) do devs[#devs + 1] = d end
  end
  if want_md then
    add(call(s.h, "list_md_devices"))
  end
  if want_ldm then add(call(s.h, "list_ldm_volumes")) end
  if want_md and not want_lvs then
    -- LVM on md RAID
    for _, d in ipairs(devs) do
      if s:probe(d).TYPE == "LVM2_member" then want_lvs = true end
    end
    if want_lvs then
      call(s.h, "vgscan")
      call(s.h, "vg_activate_all", true)
    end
  end
  if want_lvs then add(call(s.h, "lvs")) end
  table.sort(devs)
  info.assembled = info.assembled or {}
  local seen = {}
  for _, dev in ipairs(devs) do
    local p = s:probe(dev)
    local t = p.TYPE
    if not seen[dev] and t and t ~= "" and t ~= "swap" and t ~= "LVM2_member"
        and t ~= "linux_raid_member" then
      seen[dev] = true
      local name, vg, lv, from
      local mvg, mlv = dev:match("^/dev/([^/]+)/([^/]+)$")
      if mvg and mvg ~= "mapper" and mvg ~= "md" then
        name, vg, lv, from = mvg .. "/" .. mlv, mvg, mlv, "LVM"
      elseif dev:match("^/dev/md") then
        name, from = dev:match("^/dev/(.*)$"):gsub("/", "-"), "md RAID"
      elseif dev:match("^/dev/mapper/ldm_vol_") then
        name, from = "ldm/" .. dev:match("^/dev/mapper/ldm_vol_(.*)$"), "Windows dynamic disk"
      else
        name, from = dev:match("^/dev/(.*)$") or dev, "libguestfs"
      end
      local existing = by_name[name]
      if not (existing and not existing.engine) then
        -- (an LVM volume the in-process reader has too: its own stays)
        local size = call(s.h, "blockdev_getsize64", dev)
        local v = setmetatable({ name = name, gdev = dev, engine = E.name, fstype = t,
          usage = "filesystem", label = p.LABEL or "", uuid = p.UUID or "",
          size = size and int(size) or nil, length = size and int(size) or nil, vg = vg, lv = lv,
          from = from, archive = reader }, VM)
        vols[#vols + 1] = v
        by_name[name] = v
        info.assembled[#info.assembled + 1] = v
        -- a logical volume not read in-process (striped, thin...): now read
        for _, g in ipairs(info.vgs or {}) do
          for _, l in ipairs(g.lvs) do
            if l.name == name and not l.volume then
              l.volume, l.engine_reason, l.reason = v, l.reason, nil
            end
          end
        end
      end
    end
  end
end

-- ---------------------------------------------------------------- vma mount --files

-- ends the mount and the private folder of a server that died without
-- doing it (killed): polls the server's pid; stopped (SIGTERM) by a server
-- that ends as it should
local CLEANER = [[
trap 'exit 0' TERM
while kill -0 "$1" 2>/dev/null; do sleep 1 & wait $!; done
if [ "$(findmnt -n -o FSTYPE --mountpoint "$2" 2>/dev/null)" = fuse.vma-files ]; then
  fusermount3 -u -z "$2" 2>/dev/null || fusermount -u -z "$2" 2>/dev/null || umount -l "$2"
fi
rm -rf "$3"
]]

--- Serve the guest's tree on the empty folder dir through libguestfs's
--- FUSE mount (mount_local), read-only: every file system of the guest's
--- mount table mounted on its path inside the appliance, the root first.
--- Blocks until the folder is unmounted (vma umount, fusermount -u); a
--- signal ends the process (the mount and the private folder are then
--- removed by a watcher).  o.options: more FUSE options; o.label: the
--- mount's fsname.  Returns true, or nil, message.
function E.serve_guest(g, dir, o)
  o = o or {}
  local ok0, nerr = g:_need_root()
  if not ok0 then return nil, nerr end
  local s, err = E.session(g.reader, g.opts)
  if not s then return nil, err end
  local h = s.h
  -- what the engine mounted for reading goes; the guest's layout instead
  call(h, "umount_all")
  for _, fs in pairs(s.fss) do fs.closed = true end
  s.fss = {}
  local mounts = {}
  for _, m in ipairs(g.mounts) do mounts[#mounts + 1] = m end
  table.sort(mounts, function(a, b)
    if #a.comps ~= #b.comps then return #a.comps < #b.comps end
    return a.path < b.path
  end)
  for _, m in ipairs(mounts) do
    local dev, derr
    if m.fs then
      dev, derr = s:device(m.vol)
      if dev and CRYPT[m.vol.fstype or ""] then dev, derr = s:unlock(m.vol, dev, g.opts.key) end
    else
      derr = m.error
    end
    local okm, merr
    if dev then
      local options = "ro"
      if m.fs.subvol then
        options = options .. ",subvol=" .. m.fs.subvol
      elseif m.fs.type == "btrfs" or s:probe(dev).TYPE == "btrfs" then
        options = options .. ",subvolid=5"
      end
      okm, merr = call(h, "mount_options", options, dev, m.path)
    end
    if not okm then
      local why = merr or derr or "?"
      if m.path == "/" then return nil, "the root file system cannot be mounted: " .. why end
      io.stderr:write("vma mount: ", m.path, " is left out: ", why, "\n")
    end
  end
  local fopts = "ro,subtype=vma-files,fsname=" .. (o.label or "vma")
  if o.options and o.options ~= "" then fopts = fopts .. "," .. o.options end
  local okl, lerr = call(h, "mount_local", dir, { readonly = true, options = fopts })
  if not okl then return nil, "libguestfs cannot mount on " .. dir .. ": " .. lerr end
  local cleaner = vma.os.spawn({ "sh", "-c", CLEANER, "vma-mount-cleaner", tostring(vma.os.getpid()),
    dir, s.tmp }, { stdin = "/dev/null", stdout = "/dev/null", stderr = "/dev/null" })
  if o.ready then o.ready() end
  local okr, rerr = call(h, "mount_local_run")
  if cleaner then
    vma.os.kill(cleaner, "TERM")
    vma.os.wait(cleaner)
  end
  if not okr then return nil, rerr end
  return true
end

-- ---------------------------------------------------------------- inspection

--- What libguestfs's inspection tells of the OS on a volume (Windows:
--- product name, version, build, edition, hostname): a table, or nil,
--- message.  Launches the appliance if it is not running.
function E:os_info(vol, opts)
  opts = opts or {}
  local s, err = E.session(reader_of(vol, opts), opts)
  if not s then return nil, err end
  local dev, derr = s:device(vol)
  if not dev then return nil, derr end
  if not s.roots then
    local roots = call(s.h, "inspect_os")
    s.roots = type(roots) == "table" and roots or {}
  end
  for _, root in ipairs(s.roots) do
    if root == dev then
      local function get(fn)
        local v = call(s.h, fn, root)
        if v == true or v == "unknown" or v == "" then return nil end
        return v
      end
      local major, minor = get("inspect_get_major_version"), get("inspect_get_minor_version")
      return { type = get("inspect_get_type"), distro = get("inspect_get_distro"),
        product_name = get("inspect_get_product_name"),
        product_variant = get("inspect_get_product_variant"),
        version = major and (tostring(int(major)) .. "." .. tostring(int(minor or 0))) or nil,
        build_id = get("inspect_get_build_id"),
        arch = get("inspect_get_arch"), hostname = get("inspect_get_hostname"),
        systemroot = get("inspect_get_windows_systemroot") }
    end
  end
  return nil, "libguestfs's inspection finds no operating system on " .. tostring(vol.name)
end

return E
