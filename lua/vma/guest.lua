-- vma.guest: the guest inside an archive, as files.
--
--   d:volumes()    a disk's volumes (its partitions, or the whole disk)
--   r:volumes()    every disk's volumes, and the LVM logical volumes
--                  assembled from them (any VG name, PVs on several disks)
--   vol:fs()       the file system of a volume, opened by the first engine
--                  that can (M.engines: THE place where an engine is chosen)
--   r:guest()      the whole guest: its root file system chosen, /etc/fstab
--                  applied, paths resolved across mounts with the guest's
--                  symbolic links followed inside the guest
--
-- A file system, whichever engine opened it, has the methods stat(path
-- [, follow]), dir(path), readlink(path), open(path), walk(path), close()
-- and the fields type, label, engine; the guest object has the same
-- methods over the mount table.  The C side (src/lua/lvma_guest.c) gives
-- volumes (read, probe, partitions, lvm_pv, slice, open_fs) and the
-- in-process file systems.
local vma = require "vma"
local lvm = require "vma.lvm"
local devices = require "vma.devices"

local M = {}

local MAX_LINKS = 40

-- ---------------------------------------------------------------- engines

--- The engines, tried in order by M.fs: each has a name, can(vol, opts)
--- -> true | false, why, and open(vol, opts) -> fs | nil, message; and may
--- have volumes(reader, vols, info, opts) (add the volumes only it can
--- assemble), release(reader) (end what it started for a reader: the guest
--- calls it when closed) and os_info(vol, opts) (what it knows of the OS on
--- a volume).  A volume with a field engine is read by that engine only.
M.engines = {
  {
    name = "in-process",
    types = { ext2 = true, ext3 = true, ext4 = true, xfs = true, vfat = true, exfat = true,
      ntfs = true, hfsplus = true, iso9660 = true, ufs = true },
    can = function(self, vol)
      if self.types[vol.fstype or ""] then return true end
      return false, "not read in-process"
    end,
    open = function(_, vol)
      return vol:open_fs(vol.fstype)
    end,
  },
  -- libguestfs, found at run time: btrfs, LUKS, BitLocker, md RAID, Windows
  -- dynamic disks, LVM volumes that are not linear, any file system the
  -- kernel mounts (lua/vma/engines/guestfs.lua)
  (require "vma.engines.guestfs"),
}

--- Open the file system of a volume with the first engine that can (opts:
--- key, keyfile, as given to the commands, for the engines that use them;
--- engine: the name of the only engine to ask).
function M.fs(vol, opts)
  local whys = {}
  for _, e in ipairs(M.engines) do
    local ok, why
    if (vol.engine and vol.engine ~= e.name) or (opts and opts.engine and opts.engine ~= e.name) then
      ok = false
    else
      ok, why = e:can(vol, opts or {})
    end
    if ok then
      local fs, err, kind = e:open(vol, opts or {})
      if fs then
        fs.volume = vol.name
        return fs
      end
      return nil, string.format("%s: %s", vol.name or "volume", err), kind
    end
    whys[#whys + 1] = why
  end
  local what = vol.fstype and vol.fstype ~= "" and vol.fstype or "nothing recognised"
  local msg = string.format("%s holds %s: %s", vol.name or "the volume", what,
    #whys > 0 and table.concat(whys, ", and ") or "no engine here reads it")
  return nil, msg, "format"
end

-- ---------------------------------------------------------------- volumes

local function short_name(devname) return devices.key_of(devname) or devname end

local function annotate(vol, info)
  for k, v in pairs(info) do vol[k] = v end
  local p, err = vol:probe()
  if p then
    vol.fstype, vol.usage, vol.label, vol.uuid = p.type, p.usage, p.label, p.uuid
    vol.fs_size, vol.fs_free = p.size, p.free
  else
    vol.fstype, vol.probe_error = "", err
  end
  return vol
end

--- The volumes of a disk: a list of vma.volume, each with the fields name
--- ("scsi0:2", or "scsi0" for a disk without partition table), disk,
--- number, start, length, part_type, part_uuid, part_name, and what
--- probe found: fstype, usage, label, uuid, fs_size, fs_free.  A second
--- value is the partition table ({scheme=, disk_uuid=, warning=}) or false.
function M.disk_volumes(d)
  local whole, err, kind = vma.volume(d)
  if not whole then return nil, err, kind end
  local short = short_name(d.name)
  local t
  t, err, kind = whole:partitions()
  if t == nil then
    whole:close()
    return nil, d.name .. ": " .. err, kind
  end
  local out = {}
  if t then
    for _, p in ipairs(t) do
      if not p.extended then
        local v
        v, err, kind = whole:slice(p.start, p.length)
        if not v then
          whole:close()
          return nil, err, kind
        end
        out[#out + 1] = annotate(v, { name = short .. ":" .. p.number, disk = d.name,
          number = p.number, start = p.start, length = p.length, part_type = p.type,
          part_uuid = p.uuid, part_name = p.name, truncated = p.truncated })
      end
    end
    whole:close()
  else
    out[1] = annotate(whole, { name = short, disk = d.name, start = 0, length = whole.size })
  end
  return out, t and { scheme = t.scheme, disk_uuid = t.disk_uuid, warning = t.warning } or false
end

--- Every volume of the archive: each disk's, then the LVM logical volumes
--- (name "vg/lv", with vg, lv, lvm_reason when it cannot be read); the
--- second value tells about the disks and volume groups:
--- { disks = { {name=, size=, table=}, ... }, vgs = { {name=, pvs=, missing=, lvs=}, ... } }
function M.volumes(r, opts)
  local all, info = {}, { disks = {}, vgs = {} }
  for _, dev in ipairs(r:devices()) do
    if not dev.vmstate then
      local d, err, kind = r:disk(dev.name)
      if not d then return nil, err, kind end
      local vols, tbl = M.disk_volumes(d)
      d:close()
      if not vols then return nil, tbl end
      info.disks[#info.disks + 1] = { name = dev.name, size = dev.size, table = tbl,
        volumes = vols }
      for _, v in ipairs(vols) do all[#all + 1] = v end
    end
  end
  -- LVM: the PVs by their UUID, the newest metadata of each VG
  local pvs, vgs, order = {}, {}, {}
  for _, v in ipairs(all) do
    if v.fstype == "lvm2" then
      local pv, err = v:lvm_pv()
      if pv == nil then
        v.lvm_error = err
      elseif pv then
        pvs[pv.pv_uuid] = v
        v.pv_uuid = pv.pv_uuid
        if pv.metadata then
          local meta, perr = lvm.parse(pv.metadata)
          local name, vg
          if meta then name, vg = lvm.vg_of(meta) end
          if not meta then
            v.lvm_error = "its LVM metadata cannot be parsed: " .. perr
          elseif name then
            local id = type(vg.id) == "string" and vg.id or name
            local seq = math.tointeger(vg.seqno) or 0
            if not vgs[id] then order[#order + 1] = id end
            if not vgs[id] or seq > vgs[id].seqno then
              vgs[id] = { name = name, vg = vg, seqno = seq }
            end
          end
        end
      end
    end
  end
  for _, id in ipairs(order) do
    local g = vgs[id]
    local lvs, err = lvm.logical_volumes(g.name, g.vg)
    local vginfo = { name = g.name, id = id, pvs = {}, missing = {}, lvs = {}, error = err }
    info.vgs[#info.vgs + 1] = vginfo
    for key, pv in pairs(g.vg.physical_volumes) do
      if type(pv) == "table" then
        local vol = pvs[pv.id]
        if vol then vginfo.pvs[#vginfo.pvs + 1] = vol.name
        else vginfo.missing[#vginfo.missing + 1] = tostring(pv.id or key) end
      end
    end
    table.sort(vginfo.pvs)
    for _, lv in ipairs(lvs or {}) do
      if lv.visible then
        local name = g.name .. "/" .. lv.name
        local reason = lv.reason
        local ranges = {}
        for _, s in ipairs(lv.segments) do
          local pv = pvs[s.pv]
          if not pv then
            reason = reason or ("its physical volume " .. s.pv .. " is not in the archive")
            break
          end
          ranges[#ranges + 1] = { pv, s.offset, s.length }
        end
        local vol
        if not reason then
          local e2
          vol, e2 = vma.volume_join(ranges)
          if not vol then reason = e2 end
        end
        if vol then
          annotate(vol, { name = name, vg = g.name, lv = lv.name, length = lv.size })
          all[#all + 1] = vol
        end
        vginfo.lvs[#vginfo.lvs + 1] = { name = name, size = lv.size, reason = reason,
          volume = vol }
      end
    end
  end
  -- the archive, for the engines that read it whole (libguestfs)
  for _, v in ipairs(all) do v.archive = r end
  -- what only another engine assembles (LUKS contents, md RAID...): with
  -- the guest's options only (r:guest(): its key, and it ends what they start)
  if opts and opts.reader then
    for _, e in ipairs(M.engines) do
      if e.volumes and (not opts.engine or opts.engine == e.name) then e:volumes(r, all, info, opts) end
    end
  end
  return all, info
end

-- ---------------------------------------------------------------- paths

--- The components of a path ('/'-separated; "" and "." dropped).
local function split(path)
  local t = {}
  for c in path:gmatch("[^/]+") do
    if c ~= "." then t[#t + 1] = c end
  end
  return t
end
M.split = split

local function join(comps, n)
  return "/" .. table.concat(comps, "/", 1, n or #comps)
end

--- Follow a path through symbolic links, component by component from the
--- root (the libguestfs engine's file systems and the guest's mounts):
--- lstat(comps) gives the stat of the path so far (no link among comps,
--- the last one not followed) or nil, message, kind; readlink(comps) the
--- target of the link there or nil, message, kind.  Links are followed (an
--- absolute target from the root; at most 40), the last one only with
--- follow.  Returns the components (no link among them) and their stat when
--- known (nil after "..", a link or no component: ask again), or nil,
--- "path: message", kind.
local function follow_links(path, follow, lstat, readlink)
  local todo, cur, links, i, steps = split(path), {}, 0, 1, 0
  local st = nil
  while i <= #todo do
    steps = steps + 1
    if steps > 100000 then return nil, path .. ": the path is too long", "argument" end
    local c = todo[i]
    i = i + 1
    if c == ".." then
      if #cur > 0 then cur[#cur] = nil end
      st = nil
    else
      cur[#cur + 1] = c
      local err, kind
      st, err, kind = lstat(cur)
      if not st then return nil, path .. ": " .. err, kind end
      local last = i > #todo
      if st.type == "link" and (not last or follow) then
        links = links + 1
        if links > MAX_LINKS then return nil, path .. ": too many levels of symbolic links", "not-found" end
        local target, terr, tkind = readlink(cur)
        if not target then return nil, path .. ": " .. terr, tkind end
        cur[#cur] = nil
        if target:sub(1, 1) == "/" then cur = {} end
        local rest = split(target)
        for j = i, #todo do rest[#rest + 1] = todo[j] end
        todo, i, st = rest, 1, nil
      elseif not last and st.type ~= "directory" then
        return nil, path .. ": not a folder", "not-found"
      end
    end
  end
  return cur, st
end
M.follow_links = follow_links

-- ---------------------------------------------------------------- the guest

local Guest = {}
Guest.__index = Guest

local function os_release(text)
  local t = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local k, v = line:match("^%s*([%w_]+)=(.*)$")
    if k then
      v = v:gsub("^%s+", ""):gsub("%s+$", "")
      local q = v:match('^"(.*)"$') or v:match("^'(.*)'$")
      t[k] = q and q:gsub('\\(.)', '%1') or v
    end
  end
  return t
end

-- read a small file of a file system (or nil)
local function slurp(fs, path, max)
  local f = fs:open(path)
  if not f then return nil end
  if f.size > (max or 1 << 20) then
    f:close()
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end

-- what a file system holds of an operating system: { kind = "linux" |
-- "windows", release = {...} } or nil
local function os_of(fs)
  for _, p in ipairs { "/etc/os-release", "/usr/lib/os-release" } do
    local st = fs:stat(p, true)
    if st and st.type == "file" then
      local text = slurp(fs, p, 65536)
      return { kind = "linux", release = text and os_release(text) or {}, file = p }
    end
  end
  local st = fs:stat("/Windows", true)
  if st and st.type == "directory" then
    local sys = fs:stat("/Windows/System32", true)
    return { kind = "windows", system32 = sys and sys.type == "directory" or false }
  end
  return nil
end

-- the fstab escapes: \040 for a space...
local function unoctal(s)
  return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8) % 256) end))
end

--- Parse /etc/fstab: a list of {spec=, path=, type=, options=, noauto=}.
function M.parse_fstab(text)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("#.*$", "")
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    if #f >= 2 then
      local opts = f[4] or "defaults"
      out[#out + 1] = { spec = unoctal(f[1]), path = unoctal(f[2]), type = f[3] or "auto",
        options = opts, noauto = (("," .. opts .. ","):find(",noauto,", 1, true)) ~= nil }
    end
  end
  return out
end

local skip_types = { swap = true, proc = true, sysfs = true, devpts = true, tmpfs = true,
  devtmpfs = true, nfs = true, nfs4 = true, cifs = true, smbfs = true, none = true,
  securityfs = true, cgroup = true, cgroup2 = true, debugfs = true, fuse = true,
  ["fuse.sshfs"] = true, sshfs = true, efivarfs = true, hugetlbfs = true, mqueue = true,
  binfmt_misc = true, overlay = true, nfsd = true, ["9p"] = true, virtiofs = true,
  rpc_pipefs = true, bind = true, autofs = true, configfs = true, pstore = true, tracefs = true }

-- the udev escapes of /dev/disk/by-label (\x2f)
local function unhex(s)
  return (s:gsub("\\x(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- The volume an fstab spec names, or nil, why.  guessed is true for
--- /dev/sdXN forms (the guest's disk order is a guess).
function M.find_spec(vols, spec)
  local function by(field, want, ci)
    local function match(x)
      return x and x ~= "" and (x == want or (ci and x:lower() == want:lower()))
    end
    for _, v in ipairs(vols) do
      -- an encrypted volume also answers for what it holds (once opened)
      if match(v[field]) or match(v["inner_" .. field]) then return v end
    end
  end
  local k, val = spec:match("^(%u+)=(.*)$")
  if k then
    val = val:match('^"(.*)"$') or val
    if k == "UUID" then return by("uuid", val, true) end
    if k == "LABEL" then return by("label", val) end
    if k == "PARTUUID" then return by("part_uuid", val, true) end
    if k == "PARTLABEL" then return by("part_name", val) end
    return nil, "unknown form " .. k .. "="
  end
  local kind, rest = spec:match("^/dev/disk/by%-(%a+)/(.+)$")
  if kind then
    rest = unhex(rest)
    if kind == "uuid" then return by("uuid", rest, true) end
    if kind == "label" then return by("label", rest) end
    if kind == "partuuid" then return by("part_uuid", rest, true) end
    if kind == "partlabel" then return by("part_name", rest) end
    return nil, "unknown form /dev/disk/by-" .. kind
  end
  local mapper = spec:match("^/dev/mapper/(.+)$")
  if mapper then
    -- VG-LV, each '-' of a name doubled
    local i = 1
    while true do
      local s, e = mapper:find("%-+", i)
      if not s then break end
      if (e - s + 1) % 2 == 1 then
        local vg = mapper:sub(1, e - 1):gsub("%-%-", "-")
        local lv = mapper:sub(e + 1):gsub("%-%-", "-")
        return by("name", vg .. "/" .. lv)
      end
      i = e + 1
    end
    return nil, "not an LVM volume name"
  end
  local vg, lv = spec:match("^/dev/([^/]+)/([^/]+)$")
  if vg and vg ~= "disk" and vg ~= "mapper" then return by("name", vg .. "/" .. lv) end
  local bus, letter, num = spec:match("^/dev/(x?[svh]d)(%l)(%d*)$")
  if bus then
    -- a guess: the n-th disk of the bus in the archive's order
    local want = {
      vd = { "virtio" }, sd = { "scsi", "sata", "ide" }, hd = { "ide" }, xvd = { "scsi", "virtio" },
    }
    local disks, seen = {}, {}
    for _, v in ipairs(vols) do
      if v.disk and not seen[v.disk] then
        seen[v.disk] = true
        local key = devices.key_of(v.disk) or v.disk
        for _, b in ipairs(want[bus] or {}) do
          if key:match("^" .. b .. "%d+$") then disks[#disks + 1] = v.disk end
        end
      end
    end
    local d = disks[letter:byte() - 96]
    if not d then return nil, "no disk for " .. spec end
    local name = short_name(d) .. (num ~= "" and (":" .. num) or "")
    local v = by("name", name)
    if v then return v, nil, true end
    return nil, "no volume " .. name
  end
  return nil, "a device the in-process reader cannot place"
end

--- Open the guest of a reader: opts.root (a volume name: the root file
--- system), opts.key / opts.keyfile (for the engines that open encrypted
--- volumes).  Returns a guest, or nil, message, kind.
function M.open(r, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  opts = o
  opts.reader = r
  local vols, info = M.volumes(r, opts)
  if not vols then
    M.release(r)
    return nil, info
  end
  local g = setmetatable({ reader = r, vols = vols, info = info, by_name = {}, fss = {},
    fs_errors = {}, opts = opts, mounts = {}, skipped_mounts = {}, others = {} }, Guest)
  for _, v in ipairs(vols) do g.by_name[v.name] = v end
  local ok, err = g:_choose_root()
  if not ok then
    g:close()
    return nil, err
  end
  return g
end

--- The volume of a name ("scsi0:2", "drive-scsi0:2", "pve/root",
--- "pve-root", "/dev/pve/root") or nil.
function Guest:volume(name)
  if self.by_name[name] then return self.by_name[name] end
  local disk, rest = name:match("^([^:]+)(.*)$")
  if disk then
    local v = self.by_name[short_name(disk) .. rest]
    if v then return v end
  end
  local spec = name:match("^/dev/") and name or ("/dev/" .. name)
  local v = M.find_spec(self.vols, spec)
  if v then return v end
  return M.find_spec(self.vols, "/dev/mapper/" .. name)
end

--- The file system of a volume (opened once), or nil, message.
function Guest:fs_of(vol)
  if self.fss[vol] then return self.fss[vol] end
  if self.fs_errors[vol] then return nil, self.fs_errors[vol] end
  local fs, err = M.fs(vol, self.opts)
  if not fs then
    self.fs_errors[vol] = err
    return nil, err
  end
  self.fss[vol] = fs
  return fs
end

function Guest:_choose_root()
  local fsvols = {}
  for _, v in ipairs(self.vols) do
    if v.usage == "filesystem" or v.fstype == "luks" or v.fstype == "bitlocker" then
      fsvols[#fsvols + 1] = v
    end
  end
  local root, candidates = nil, {}
  if self.opts.root then
    root = self:volume(self.opts.root)
    if not root then return nil, "no volume named " .. self.opts.root .. " (see 'vma inspect')" end
  end
  -- the candidates: file systems with an os-release or a Windows folder
  for _, v in ipairs(fsvols) do
    local fs = self:fs_of(v)
    if fs then
      local o = os_of(fs)
      if not o and fs.subvolumes then
        -- btrfs: the OS is in a subvolume (subvol=@, subvol=root), the
        -- default one first
        for _, sv in ipairs(fs:subvolumes()) do
          local sfs = fs:subvolume(sv)
          o = sfs and os_of(sfs)
          if o then
            v.root_subvol = sv
            break
          end
        end
      end
      if o then
        v.os = o
        candidates[#candidates + 1] = v
      end
    end
  end
  if not root then
    if #candidates >= 1 then
      root = candidates[1]
    elseif #fsvols == 1 then
      root = fsvols[1]
    end
  end
  for _, c in ipairs(candidates) do
    if c ~= root then self.others[#self.others + 1] = c.name end
  end
  if not root then
    if #fsvols == 0 then
      self.root_error = "the archive holds no file system"
    else
      local names, errs = {}, {}
      for _, v in ipairs(fsvols) do
        names[#names + 1] = v.name
        if self.fs_errors[v] then errs[#errs + 1] = self.fs_errors[v] end
      end
      self.root_error = "no file system holds an operating system, and there are several ("
        .. table.concat(names, ", ") .. "): name one, as in " .. names[1] .. ":/PATH"
      if #errs > 0 then self.root_error = self.root_error .. " (" .. table.concat(errs, "; ") .. ")" end
    end
    return true
  end
  self.root = root
  local rfs, err = self:fs_of(root)
  if rfs and root.root_subvol then rfs, err = rfs:subvolume(root.root_subvol) end
  if not rfs then
    self.root_error = err
    return true
  end
  if not root.os then root.os = os_of(rfs) end
  self.windows = root.os and root.os.kind == "windows"
  self.mounts = { { path = "/", comps = {}, vol = root, fs = rfs, spec = root.name,
    subvol = root.root_subvol } }
  if root.os and root.os.kind == "linux" then self:_apply_fstab(rfs) end
  return true
end

function Guest:_apply_fstab(rfs)
  local st = rfs:stat("/etc/fstab", true)
  if not st or st.type ~= "file" then return end
  local text = slurp(rfs, "/etc/fstab", 1 << 20)
  if not text then return end
  self.fstab = M.parse_fstab(text)
  for _, e in ipairs(self.fstab) do
    local comps = split(e.path)
    local valid = e.path:sub(1, 1) == "/"
    for _, c in ipairs(comps) do
      if c == ".." then valid = false end
    end
    if not valid or skip_types[e.type] or e.noauto or #comps == 0 then
      if #comps ~= 0 and valid and not skip_types[e.type] then
        self.skipped_mounts[#self.skipped_mounts + 1] = { path = e.path, spec = e.spec,
          type = e.type, reason = "noauto" }
      end
    else
      local vol, why, guessed = M.find_spec(self.vols, e.spec)
      local m = { path = join(comps), comps = comps, spec = e.spec, type = e.type,
        options = e.options, vol = vol, guessed = guessed }
      if not vol then
        m.error = string.format("%s (%s) is not in the archive: %s%s", e.spec, e.path,
          why or "no volume matches", self:_locked())
      else
        local fs, err = self:fs_of(vol)
        -- btrfs: subvol=NAME (or the subvolume the root was found in)
        local sv = ("," .. e.options .. ","):match(",subvol=([^,]*),")
        if fs and sv and fs.subvolume then
          sv = sv:gsub("^/+", "")
          if sv ~= "" then
            fs, err = fs:subvolume(sv)
            m.subvol = sv
          end
        end
        m.fs, m.error = fs, err
      end
      if not (m.vol and m.vol == self.root and #comps == 0) then
        self.mounts[#self.mounts + 1] = m
      end
    end
  end
  -- longest first: the mount of a path is the first whose path is a prefix
  table.sort(self.mounts, function(a, b)
    if #a.comps ~= #b.comps then return #a.comps > #b.comps end
    return a.path < b.path
  end)
end

-- what may hide a file system named by the fstab: the encrypted volumes
-- not opened, and why
function Guest:_locked()
  local t = {}
  for _, v in ipairs(self.vols) do
    if (v.fstype == "luks" or v.fstype == "bitlocker") and not v.holds then
      local why = v.unlock_error or (self.info.engine_notes and self.info.engine_notes[1])
        or (self.opts.key and "not opened")
        or "give its passphrase with --keyfile FILE (or --key PASSPHRASE)"
      t[#t + 1] = string.format("%s is encrypted: %s", v.name, why)
    end
  end
  if #t == 0 then return "" end
  return " (" .. table.concat(t, "; ") .. ")"
end

-- the mount serving the path comps (resolved, no links) and the path
-- inside it
local function mount_for(self, comps)
  for _, m in ipairs(self.mounts) do
    local n = #m.comps
    if n <= #comps then
      local match = true
      for i = 1, n do
        if m.comps[i] ~= comps[i] then
          match = false
          break
        end
      end
      if match then
        local rel = {}
        for i = n + 1, #comps do rel[#rel + 1] = comps[i] end
        return m, join(rel)
      end
    end
  end
  return nil
end

function Guest:_need_root()
  if self.closed then error("attempt to use a closed guest", 3) end
  if not self.root or not self.mounts[1] then
    return nil, self.root_error or "the guest has no root file system"
  end
  return true
end

--- Resolve a guest path: the file system, the path inside it, its stat,
--- and the resolved guest path.  Symbolic links are followed inside the
--- guest (an absolute target from the guest's root, across mounts; at most
--- 40); the last one only with follow.
function Guest:resolve(path, follow)
  local ok, err = self:_need_root()
  if not ok then return nil, err end
  local cur, ferr, fkind = follow_links(path, follow, function(comps)
    local m, rel = mount_for(self, comps)
    if not m.fs then return nil, m.error, "format" end
    local st, serr, kind = m.fs:stat(rel)
    if not st then return nil, kind == "not-found" and "no such file or folder" or serr, kind end
    return st
  end, function(comps)
    local m, rel = mount_for(self, comps)
    local target, terr = m.fs:readlink(rel)
    return target, terr
  end)
  if not cur then return nil, ferr, fkind end
  local m, rel = mount_for(self, cur)
  if not m.fs then return nil, path .. ": " .. m.error, "format" end
  local st, serr, kind = m.fs:stat(rel)
  if not st then return nil, path .. ": " .. serr, kind end
  return m.fs, rel, st, join(cur)
end

function Guest:stat(path, follow)
  local fs, rel, st = self:resolve(path, follow)
  if not fs then return nil, rel, st end
  return st
end

function Guest:readlink(path)
  local fs, rel, st = self:resolve(path, false)
  if not fs then return nil, rel, st end
  return fs:readlink(rel)
end

function Guest:open(path)
  local fs, rel, st = self:resolve(path, true)
  if not fs then return nil, rel, st end
  return fs:open(rel)
end

-- the mounts directly under the guest path comps: name -> mount
local function child_mounts(self, comps)
  local out = {}
  for _, m in ipairs(self.mounts) do
    if #m.comps == #comps + 1 then
      local match = true
      for i = 1, #comps do
        if m.comps[i] ~= comps[i] then
          match = false
          break
        end
      end
      if match then out[m.comps[#m.comps]] = m end
    end
  end
  return out
end

local function mount_root_stat(m)
  if not m.fs then return nil, m.error end
  return m.fs:stat("/")
end

--- for name, stat in g:dir(path): a folder's entries, in name order; a
--- mount point shows the root of what is mounted there.
function Guest:dir(path)
  local fs, rel, st, gpath = self:resolve(path, true)
  if not fs then return nil, rel, st end
  if st.type ~= "directory" then return nil, path .. ": not a folder", "not-found" end
  local it, info, kind = fs:dir(rel)
  if not it then return nil, info, kind end
  local entries = {}
  for name, est, eerr in it do entries[#entries + 1] = { name, est, eerr } end
  local comps = split(gpath)
  local mounts = child_mounts(self, comps)
  local seen = {}
  for _, e in ipairs(entries) do
    local m = mounts[e[1]]
    if m then
      e[2], e[3] = mount_root_stat(m)
      seen[e[1]] = true
    end
  end
  for name, m in pairs(mounts) do
    if not seen[name] then
      local mst, merr = mount_root_stat(m)
      entries[#entries + 1] = { name, mst, merr }
    end
  end
  table.sort(entries, function(a, b) return a[1] < b[1] end)
  local i = 0
  return function()
    i = i + 1
    local e = entries[i]
    if e then return e[1], e[2], e[3] end
  end, { skipped = info.skipped }
end

--- for relpath, stat, fs, fspath in g:walk(path): every entry under path,
--- depth first in name order, crossing into what is mounted; fs and fspath
--- say where the entry is (to open it without resolving again).  An entry
--- that cannot be read gives relpath, nil, message.  Links are not followed.
function Guest:walk(path)
  local fs, rel, st, gpath = self:resolve(path, true)
  if not fs then return nil, rel, st end
  if st.type ~= "directory" then return nil, path .. ": not a folder", "not-found" end
  local base = split(gpath)
  -- a stack of walks: each { iter, walker, prefix (relative path of its top), fs, fsbase }
  local stack = {}
  local function push(f, fspath, prefix)
    local it, w = f:walk(fspath)
    if not it then return nil, w end
    stack[#stack + 1] = { it = it, w = w, prefix = prefix, fs = f,
      fsbase = fspath == "/" and "" or fspath }
    return true
  end
  local ok, err = push(fs, rel, "")
  if not ok then return nil, err end
  local pending = {} -- mounts to enter after the entry that stands for them
  local function nextone()
    while true do
      if #pending > 0 then
        local m = table.remove(pending, 1)
        if m.fs then
          local ok2, e3 = push(m.fs, "/", m.rel .. "/")
          if not ok2 then return m.rel, nil, e3 end
        end
      end
      local top = stack[#stack]
      if not top then return nil end
      local p, est, eerr = top.it(top.w)
      if p == nil then
        stack[#stack] = nil
      else
        local relpath = top.prefix .. p
        local fspath = top.fsbase .. "/" .. p
        local comps = {}
        for _, c in ipairs(base) do comps[#comps + 1] = c end
        for c in relpath:gmatch("[^/]+") do comps[#comps + 1] = c end
        local m = mount_for(self, comps)
        if m and #m.comps == #comps and #comps > 0 then
          -- a mount point: its root instead, then what it holds
          top.w:prune()
          local mst, merr = mount_root_stat(m)
          if not mst then return relpath, nil, merr end
          if mst.type == "directory" then
            pending[#pending + 1] = { fs = m.fs, rel = relpath }
          end
          return relpath, mst, m.fs, "/"
        end
        if est then return relpath, est, top.fs, fspath end
        return relpath, nil, eerr
      end
    end
  end
  return nextone
end

--- The mounts: a list of {path=, volume=, type=, spec=, error=} in path order.
function Guest:mount_table()
  local t = {}
  for _, m in ipairs(self.mounts) do
    t[#t + 1] = { path = m.path, volume = m.vol and m.vol.name, spec = m.spec,
      fstype = m.vol and m.vol.fstype, options = m.options, error = m.error,
      guessed = m.guessed, subvol = m.subvol, engine = m.fs and m.fs.engine }
  end
  table.sort(t, function(a, b) return a.path < b.path end)
  return t
end

--- What the guest is: { kind = "linux" | "windows", release = {...},
--- hostname = } or nil.
function Guest:os()
  if not self.root or not self.root.os then return nil end
  local o = self.root.os
  if o.kind == "linux" and o.hostname == nil then
    o.hostname = false
    local f = self:open("/etc/hostname")
    if f then
      local h = f:read("l")
      f:close()
      if h then o.hostname = h:gsub("%s+$", "") end
    end
  end
  return o
end

--- What an engine knows of the OS beyond what is read in-process (for
--- Windows, through libguestfs: product name, version, build, edition,
--- hostname): a table, or nil, why.  Launches libguestfs's appliance.
function Guest:os_info()
  if not self.root then return nil, self.root_error or "no root file system" end
  local whys = {}
  for _, e in ipairs(M.engines) do
    if e.os_info then
      local info, why = e:os_info(self.root, self.opts)
      if info then return info end
      whys[#whys + 1] = why
    end
  end
  return nil, table.concat(whys, "; ")
end

--- Where a user's path leads: a "guest path", "C:/path" or "C:\path" (a
--- Windows guest's system volume), or "VOLUME:/path" with a volume of
--- 'vma inspect' (scsi0:2:/etc, pve/var:/log).  Returns the object to
--- ask (the guest, or a file system) and the path in it, or nil, message.
function Guest:locate(spec)
  if spec:sub(1, 1) == "/" or not spec:find(":", 1, true) then
    if spec:sub(1, 1) ~= "/" then spec = "/" .. spec end
    return self, spec
  end
  local drive, rest = spec:match("^(%a):(.*)$")
  if drive then
    if not self.windows then
      return nil, spec .. ": a drive letter, but the guest is not Windows"
    end
    if drive:upper() ~= "C" then
      return nil, spec .. ": only C: (the system volume) is known in-process; name other volumes as in 'vma inspect' (scsi0:3:/path)"
    end
    rest = rest:gsub("\\", "/")
    if rest:sub(1, 1) ~= "/" then rest = "/" .. rest end
    return self, rest
  end
  -- the longest known volume name before a ':'
  local i = #spec
  while i > 0 do
    if spec:sub(i, i) == ":" then
      local name, path = spec:sub(1, i - 1), spec:sub(i + 1)
      local v = self:volume(name)
      if v then
        local fs, err = self:fs_of(v)
        if not fs then return nil, err end
        if path == "" then path = "/" end
        if path:sub(1, 1) ~= "/" then path = "/" .. path end
        return fs, path
      end
    end
    i = i - 1
  end
  return nil, "no volume named in " .. spec .. " (see 'vma inspect')"
end

--- End what the engines started for a reader (libguestfs's appliance).
function M.release(r)
  for _, e in ipairs(M.engines) do
    if e.release then e:release(r) end
  end
end

function Guest:close()
  if self.closed then return end
  self.closed = true
  for _, fs in pairs(self.fss or {}) do fs:close() end
  for _, v in ipairs(self.vols or {}) do v:close() end
  self.fss, self.vols, self.mounts = {}, {}, {}
  M.release(self.reader)
end
Guest.__close = Guest.close
Guest.__gc = Guest.close

M.Guest = Guest
return M
