-- storegen: a backup store made at test time, and what was put in it.
--
-- Three VMs and an archive of another name, fourteen archives:
--   100 web1  six daily backups 2025-01-10 .. 2025-01-16, the 13th missing
--             (a gap); zstd, one .vma.lzo, one .vma.gz; files added,
--             changed and removed between them (/etc/app.conf, a log that
--             grows, a file that comes and goes, a link); notes on one
--   101 db1   four backups (plain .vma), two disks (the second mounted at
--             /data by the root's fstab, by UUID); protected, notes, a log
--             that says ok and one that says failed
--   102 fs1   two backups, the second rewrote most of its disk (a 5 MiB
--             file whose content changed, as a ransomware night would),
--             and a third archive cut short (broken)
--   manual/export.vma  a name that is not vzdump's (no VM id)
-- Disk images are ext4 file systems made with mke2fs -d from folders (no
-- root, no loop device), every time fixed (E2FSPROGS_FAKE_TIME, touch), and
-- backed up with `vma create --ctime` at the time of the archive's name.
--
-- G.make(root) returns the store { dir, archives = { [name] = facts },
-- order = { names }, vms = {...} } where facts holds what the tests compare
-- with: vmid, ctime, size, compression, disks = {{name, size, data_bytes}},
-- notes, protected, log, broken, files (path -> {type, size, mode, mtime,
-- hash, target}), images (paths of the disk images, kept for diff checks).

local H = require "helper"

local G = {}

local q = H.q

local function sh(cmd)
  local rc, out, err = H.sh(cmd)
  assert(rc == 0, cmd .. "\n" .. err .. out)
  return out
end

local function ts(y, mo, d, h)
  -- seconds of a UTC date (no os.time: no time zone)
  return require("vma.vzdump").to_time(y, mo, d, h or 1, 0, 0)
end
G.ts = ts

-- bytes of 4 KiB blocks that are not all zero, and the image's clusters
local ZERO4K = string.rep("\0", 4096)
function G.data_bytes(path)
  local f = assert(io.open(path, "rb"))
  local n = 0
  while true do
    local b = f:read(4096)
    if not b then break end
    if b ~= ZERO4K:sub(1, #b) then n = n + #b end
  end
  f:close()
  return n
end

--- The 64 KiB clusters that differ between two images (compared up to the
--- larger, zeros past the end): count and runs {offset, length} in bytes.
function G.changed(pa, pb)
  local fa, fb = assert(io.open(pa, "rb")), assert(io.open(pb, "rb"))
  local size = math.max(fa:seek("end"), fb:seek("end"))
  fa:seek("set")
  fb:seek("set")
  local n, runs, c = 0, {}, 0
  local zero = string.rep("\0", 65536)
  while c * 65536 < size do
    local a = fa:read(65536) or ""
    local b = fb:read(65536) or ""
    a = a .. zero:sub(1, 65536 - #a)
    b = b .. zero:sub(1, 65536 - #b)
    if a ~= b then
      n = n + 1
      local last = runs[#runs]
      if last and last.offset + last.length == c * 65536 then
        last.length = last.length + 65536
      else
        runs[#runs + 1] = { offset = c * 65536, length = 65536 }
      end
    end
    c = c + 1
  end
  if #runs > 0 then
    local last = runs[#runs]
    if last.offset + last.length > size then last.length = size - last.offset end
  end
  fa:close()
  fb:close()
  return n, runs, size
end

-- a folder tree from a spec: path -> content (string), {link = target},
-- {dir = true}, {random = bytes}; every entry's mtime set to t (mtimes[path] overrides)
local function tree(dir, spec, t, mtimes)
  sh("rm -rf " .. q(dir) .. " && mkdir -p " .. q(dir))
  local paths = {}
  for p in pairs(spec) do paths[#paths + 1] = p end
  table.sort(paths)
  for _, p in ipairs(paths) do
    local v = spec[p]
    local full = dir .. p
    sh("mkdir -p " .. q(full:match("^(.*)/[^/]*$")))
    if type(v) == "string" then
      H.write(full, v)
      sh("chmod 0644 " .. q(full))
    elseif v.random then
      sh(string.format("head -c %d /dev/urandom > %s && chmod 0644 %s", v.random, q(full), q(full)))
    elseif v.link then
      sh("ln -s " .. q(v.link) .. " " .. q(full))
    elseif v.dir then
      sh("mkdir -p " .. q(full))
    end
    if v.mode then sh(string.format("chmod %o %s", v.mode, q(full))) end
  end
  -- every entry (deepest first) gets its time, folders last
  local rc, out = H.sh("cd " .. q(dir) .. " && find . -mindepth 1 | sort -r")
  assert(rc == 0)
  for rel in out:gmatch("[^\n]+") do
    local p = rel:sub(2)
    sh(string.format("touch -h -d @%d %s", (mtimes and mtimes[p]) or t, q(dir .. p)))
  end
  sh(string.format("touch -h -d @%d %s", t, q(dir)))
end

-- what the guest will show of a tree: path -> {type, size, mode, mtime,
-- hash, target} (the folders included, lost+found as mke2fs makes it)
local function expected_files(dir, t_fs)
  local out = {}
  local rc, list = H.sh("cd " .. q(dir) .. " && find . -mindepth 1 -printf '%y %m %T@ %s %p\\0%l\\0'")
  assert(rc == 0)
  for typ, mode, mtime, size, p, link in list:gmatch("(%a) (%d+) ([%d%.]+) (%d+) %.([^%z]*)%z([^%z]*)%z") do
    local e = { type = typ == "f" and "file" or typ == "d" and "directory" or typ == "l" and "link",
                mode = tonumber(mode, 8), mtime = math.floor(tonumber(mtime)),
                size = typ == "f" and tonumber(size) or 0 }
    if typ == "l" then e.target = link end
    if typ == "f" then
      local _, sum = H.sh("sha256sum " .. q(dir .. p))
      e.hash = sum:match("^(%x+)")
    end
    out[p] = e
  end
  out["/lost+found"] = { type = "directory", mode = 448, mtime = t_fs, size = 0 }
  return out
end

local function mkfs(img, dir, size_mb, uuid, t)
  sh(string.format("E2FSPROGS_FAKE_TIME=%d mke2fs -q -F -t ext4 -O ^has_journal -b 1024 -N 128 "
    .. "-U %s -E root_owner=0:0 -d %s %s %dM", t, uuid, q(dir), q(img), size_mb))
end

local CONF = [[
boot: order=scsi0
cores: 2
memory: 2048
name: %s
scsi0: local-lvm:vm-%s-disk-0,size=8M
%s]]

local function backup(st, store_dir, work, vm, b)
  local name = string.format("vzdump-qemu-%s-%04d_%02d_%02d-%02d_00_00.%s", vm.vmid, b.y, b.mo,
    b.d, b.h or 1, b.ext)
  local t = ts(b.y, b.mo, b.d, b.h or 1)
  local conf = work .. "/qemu-server.conf"
  H.write(conf, string.format(CONF, vm.name, vm.vmid, vm.extra_conf or ""))
  local args = { "create", "-q", "--ctime", tostring(t), "-c", "qemu-server.conf=" .. conf,
                 store_dir .. "/" .. name }
  local disks = {}
  for i, d in ipairs(b.disks) do
    local img = string.format("%s/%s-%d-%d.img", work, vm.vmid, t, i)
    tree(work .. "/tree", d.files, d.t or t - 3600, d.mtimes)
    mkfs(img, work .. "/tree", d.size_mb or 8, d.uuid, d.t or t - 3600)
    if b.rewrite then b.rewrite(img) end
    args[#args + 1] = d.key .. "=" .. img
    disks[#disks + 1] = { name = "drive-" .. d.key, size = (d.size_mb or 8) << 20,
                          data_bytes = G.data_bytes(img), image = img,
                          files = expected_files(work .. "/tree", d.t or t - 3600), mount = d.mount }
  end
  local rc, out, err = H.vma(table.unpack(args))
  assert(rc == 0, err .. out)
  local facts = { name = name, vmid = vm.vmid, vm_name = vm.name, ctime = t,
                  compression = ({ vma = "none", ["vma.zst"] = "zstd", ["vma.gz"] = "gzip",
                                   ["vma.lzo"] = "lzo" })[b.ext], disks = disks }
  -- the guest's files: the root's, and each further disk under its mount point
  facts.files = {}
  for i, d in ipairs(disks) do
    local prefix = i == 1 and "" or d.mount
    for p, e in pairs(d.files) do facts.files[prefix .. p] = e end
    if i > 1 then
      -- the mount point shows the mounted file system's root
      facts.files[d.mount] = nil
    end
  end
  if b.notes then
    H.write(store_dir .. "/" .. name .. ".notes", b.notes .. "\n")
    facts.notes = b.notes
  end
  if b.protected then
    H.write(store_dir .. "/" .. name .. ".protected", "")
    facts.protected = true
  end
  if b.log then
    local base = name:gsub("%.vma.*$", "")
    H.write(store_dir .. "/" .. base .. ".log", b.log)
  end
  facts.log = b.log_verdict
  if b.cut then
    local path = store_dir .. "/" .. name
    local data = H.read(path)
    os.remove(path)
    H.write(path, data:sub(1, b.cut))
    facts.broken = true
  end
  facts.size = require("vma").os.stat(store_dir .. "/" .. name).size
  return facts
end

local LOG_OK = [[
2025-01-11 01:00:00 INFO: Starting Backup of VM 101 (qemu)
2025-01-11 01:00:01 INFO: status = running
2025-01-11 01:00:05 INFO: transferred 16.00 MiB in 4 seconds (4.0 MiB/s)
2025-01-11 01:00:05 INFO: Finished Backup of VM 101 (00:00:05)
]]
local LOG_FAILED = [[
2025-01-12 01:00:00 INFO: Starting Backup of VM 101 (qemu)
2025-01-12 01:00:02 WARN: guest agent not running
2025-01-12 01:00:09 ERROR: Backup of VM 101 failed - job aborted
]]

--- Make the store under root: returns { dir, archives = {name -> facts}, order }.
function G.make(root)
  local st = root .. "/store"
  local work = root .. "/work"
  sh("mkdir -p " .. q(st) .. " " .. q(work) .. " " .. q(st .. "/manual"))
  local S = { dir = st, work = work, archives = {}, order = {} }
  local function add(f)
    S.archives[f.name] = f
    S.order[#S.order + 1] = f.name
  end
  -- VM 100: six days, the 13th missing
  local vm100 = { vmid = "100", name = "web1" }
  local T0 = ts(2025, 1, 1, 0)
  local base = {
    ["/etc/os-release"] = "ID=debian\nVERSION_ID=12\n",
    ["/etc/hostname"] = "web1\n",
    ["/etc/app.conf"] = "threads = 4\n",
    ["/etc/alt.conf"] = { link = "app.conf" },
    ["/var/log/app.log"] = "",
    ["/srv/www/index.html"] = "<h1>hello</h1>\n",
  }
  local days = { 10, 11, 12, 14, 15, 16 }
  local exts = { "vma.zst", "vma.zst", "vma.lzo", "vma.zst", "vma.gz", "vma.zst" }
  local log = ""
  for i, d in ipairs(days) do
    local files = {}
    for k, v in pairs(base) do files[k] = v end
    log = log .. string.format("2025-01-%02d request served\n", d)
    files["/var/log/app.log"] = log
    if i >= 3 then files["/etc/app.conf"] = "threads = 8\n" end
    if i >= 5 then files["/etc/app.conf"] = "threads = 8\nbroken = yes\n" end
    if i == 2 or i == 3 then files["/home/u/a.txt"] = "a note\n" end
    if i >= 4 then files["/srv/www/new.html"] = "<p>new</p>\n" end
    local t = ts(2025, 1, d, 1)
    -- a file keeps the mtime of the day it last changed; the rest is as
    -- installed on the 1st
    local mtimes = {
      ["/var/log/app.log"] = t - 3600,
      ["/etc/app.conf"] = i >= 5 and ts(2025, 1, 15, 0) or i >= 3 and ts(2025, 1, 12, 0) or T0,
    }
    if i >= 4 then mtimes["/srv/www/new.html"] = ts(2025, 1, 14, 0) end
    add(backup(S, st, work, vm100, { y = 2025, mo = 1, d = d, ext = exts[i],
      notes = i == 4 and "before the upgrade" or nil,
      disks = { { key = "scsi0", uuid = "10000000-0000-4000-8000-000000000100", files = files,
                  t = T0, mtimes = mtimes } } }))
  end
  -- VM 101: two disks, the second at /data
  local vm101 = { vmid = "101", name = "db1",
    extra_conf = "scsi1: local-lvm:vm-101-disk-1,size=8M\n" }
  for i = 1, 4 do
    local d = 10 + i
    local t = ts(2025, 1, d, 1)
    local rootfs = {
      ["/etc/os-release"] = "ID=debian\nVERSION_ID=12\n",
      ["/etc/hostname"] = "db1\n",
      ["/etc/fstab"] = "UUID=20000000-0000-4000-8000-000000000102 /data ext4 defaults 0 2\n",
      ["/data"] = { dir = true },
    }
    local datafs = { ["/db/table1"] = string.rep("row\n", 100 * i), ["/db/VERSION"] = "1\n" }
    if i >= 3 then datafs["/db/table2"] = "new table\n" end
    add(backup(S, st, work, vm101, { y = 2025, mo = 1, d = d, ext = "vma",
      protected = i == 2, notes = i == 1 and "first\nsecond line" or nil,
      log = i == 1 and LOG_OK or i == 2 and LOG_FAILED or nil,
      log_verdict = i == 1 and "ok" or i == 2 and "failed" or nil,
      disks = { { key = "scsi0", uuid = "20000000-0000-4000-8000-000000000101", files = rootfs,
                  t = t - 3600 },
                { key = "scsi1", uuid = "20000000-0000-4000-8000-000000000102", files = datafs,
                  t = t - 3600, mount = "/data" } } }))
  end
  -- VM 102: the second night rewrote most of the disk; a third archive cut short
  local vm102 = { vmid = "102", name = "fs1" }
  for i = 1, 3 do
    local t = ts(2025, 1, 10 + i, 3)
    local files = {
      ["/etc/os-release"] = "ID=debian\nVERSION_ID=12\n",
      ["/srv/blob.bin"] = { random = 5 << 20 },
    }
    add(backup(S, st, work, vm102, { y = 2025, mo = 1, d = 10 + i, h = 3,
      ext = i == 3 and "vma" or "vma.zst", cut = i == 3 and 30000 or nil,
      disks = { { key = "scsi0", uuid = "30000000-0000-4000-8000-000000000102", files = files,
                  t = t - 3600 } } }))
  end
  -- an archive of another name
  local img = work .. "/export.img"
  tree(work .. "/tree", { ["/readme.txt"] = "exported\n" }, ts(2025, 1, 5, 0))
  mkfs(img, work .. "/tree", 4, "40000000-0000-4000-8000-000000000000", ts(2025, 1, 5, 0))
  local rc, out, err = H.vma("create", "-q", "--ctime", tostring(ts(2025, 1, 5, 12)),
    st .. "/manual/export.vma", "disk0=" .. img)
  assert(rc == 0, err .. out)
  S.archives["export.vma"] = { name = "export.vma", rel = "manual/export.vma", ctime = ts(2025, 1, 5, 12),
    compression = "none", size = require("vma").os.stat(st .. "/manual/export.vma").size,
    disks = { { name = "disk0", size = 4 << 20, data_bytes = G.data_bytes(img), image = img } } }
  S.order[#S.order + 1] = "export.vma"
  return S
end

--- vma with TZ=UTC (the times of the archives are UTC dates): rc, stdout,
--- stderr
function G.run(...)
  local words = { "TZ=UTC", H.q(H.bin) }
  for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
  return H.sh(table.concat(words, " "))
end

--- G.run and its standard output decoded as JSON: rc, object, stderr
function G.run_json(...)
  local rc, out, err = G.run(...)
  local json = require "dkjson"
  local obj = json.decode(out, 1, json.null)
  assert(obj, "no JSON from vma " .. table.concat({ ... }, " ") .. ": " .. err .. out)
  return rc, obj, err
end

return G
