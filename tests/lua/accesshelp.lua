-- Shared by the specs of the random-access commands (serve, mount, convert,
-- cat) and of the Lua disk API: archives made at check time from an ext4
-- file system built with mke2fs -d, a thin disk and a half-zero disk, a
-- seekable .vma.zst made from it by hand, hostile archives, and running
-- vma in the background with a sure clean-up.
local H = require "helper"
local G = require "vmagen"
local vma = require "vma"

local A = {}

A.MiB = 1024 * 1024
A.PVE = H.fixtures .. "/proxmox"

local function abs(p)
  if p:sub(1, 1) == "/" then return p end
  return (vma.os.realpath(p) or p)
end
A.bin = abs(H.bin)
A.root = abs(H.root)

--- The path of a program in $PATH (or in /sbin, /usr/sbin), or nil.
function A.have(prog)
  local rc, out = H.sh("PATH=$PATH:/sbin:/usr/sbin command -v " .. H.q(prog))
  if rc == 0 and out ~= "" then return (out:gsub("\n.*", "")) end
  return nil
end

--- nil when every program is there, else "needs X, Y (not installed)".
function A.missing(...)
  local m = {}
  for _, p in ipairs({ ... }) do
    if not A.have(p) then m[#m + 1] = p end
  end
  if #m == 0 then return nil end
  return "needs " .. table.concat(m, ", ") .. " (not installed)"
end

--- Mark the running test pending when a program is missing.
function A.need(...)
  local why = A.missing(...)
  if why then pending(why) end
  return why == nil
end

function A.sh_ok(cmd)
  local rc, out, err = H.sh(cmd)
  assert(rc == 0, cmd .. " failed (" .. tostring(rc) .. "): " .. err)
  return out
end

--- cmp of two files: true, or false with what cmp said.
function A.same(a, b)
  local rc, out, err = H.sh("cmp " .. H.q(a) .. " " .. H.q(b))
  return rc == 0, out .. err
end

local function random_bytes(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local d = f:read(n)
  f:close()
  return d
end

--- The files put into the ext4 file system: path -> content.
local function fs_files(src)
  local files = {
    ["/etc/hostname"] = "vma-test-host\n",
    ["/etc/motd"] = "Read from a backup, without a restore.\n",
    ["/data/random.bin"] = random_bytes(3 * A.MiB + 1234),
    ["/deep/a/b/c/note.txt"] = string.rep("vma ", 3000),
  }
  for path, data in pairs(files) do
    os.execute("mkdir -p " .. H.q(src .. path:match("^(.*)/")))
    H.write(src .. path, data)
  end
  return files
end

--- A thin image of size bytes with a few pieces of data at odd places.
local function thin_image(path, size)
  H.image(path, size, {
    { 0, random_bytes(4096) },
    { 5 * A.MiB + 12345, random_bytes(200 * 1024 + 17) },
    { size // 2 + 65536 * 3, random_bytes(65536) },
    { size - 4096, random_bytes(4096) },
  })
end

--- Half zero: 64 KiB clusters alternately random and zero, and a few
-- clusters of which only some 4 KiB blocks hold data.
local function half_image(path, size)
  local f = assert(io.open(path, "wb"))
  local zero = string.rep("\0", 65536)
  for c = 0, size // 65536 - 1 do
    if c % 2 == 0 then
      f:write(random_bytes(65536))
    elseif c % 7 == 3 then
      local parts = {}
      for b = 0, 15 do parts[#parts + 1] = (b % 3 == 0) and random_bytes(4096) or string.rep("\0", 4096) end
      f:write(table.concat(parts))
    else
      f:write(zero)
    end
  end
  f:close()
end

--- A copy of a plain archive in zstd's seekable format: independent frames
-- of chunk bytes and the seek table in a skippable frame at the end.
function A.seekable_zst(src, out, chunk)
  chunk = chunk or A.MiB
  local fin = assert(io.open(src, "rb"))
  local fout = assert(io.open(out, "wb"))
  local tmp = out .. ".chunk"
  local entries = {}
  while true do
    local data = fin:read(chunk)
    if not data then break end
    H.write(tmp, data)
    local p = assert(io.popen("zstd -q -c -1 < " .. H.q(tmp)))
    local c = p:read("a")
    assert(p:close(), "zstd failed")
    fout:write(c)
    entries[#entries + 1] = string.pack("<I4I4", #c, #data)
  end
  fin:close()
  os.remove(tmp)
  local tbl = table.concat(entries) .. string.pack("<I4BI4", #entries, 0, 0x8F92EAB1)
  fout:write(string.pack("<I4I4", 0x184D2A5E, #tbl), tbl)
  fout:close()
end

--- Make the test archives in dir (once per spec file):
--   t.plain  an archive of three disks and a config (drive-scsi0: ext4 with
--            t.files, drive-virtio1: thin, drive-sata0: half zero)
--   t.zst    the same as a seekable .vma.zst (made by hand)
--   t.disks  device name -> raw image;  t.names: the device names in order
--   t.conf   the config's content
function A.fixture(dir)
  local t = { dir = dir, disks = {}, names = { "drive-scsi0", "drive-virtio1", "drive-sata0" } }
  local src = dir .. "/fs"
  os.execute("mkdir -p " .. H.q(src))
  t.files = fs_files(src)
  t.disks["drive-scsi0"] = dir .. "/ext4.img"
  A.sh_ok("PATH=$PATH:/sbin:/usr/sbin mke2fs -q -F -t ext4 -d " .. H.q(src) .. " "
    .. H.q(t.disks["drive-scsi0"]) .. " 64M")
  t.disks["drive-virtio1"] = dir .. "/thin.img"
  thin_image(t.disks["drive-virtio1"], 256 * A.MiB)
  t.disks["drive-sata0"] = dir .. "/half.img"
  half_image(t.disks["drive-sata0"], 8 * A.MiB)
  t.conf = "memory: 1024\nscsi0: local:100/vm-100-disk-0.raw,size=64M\n"
  H.write(dir .. "/qemu-server.conf", t.conf)
  t.plain = dir .. "/a.vma"
  local words = { "create", "--no-qmdump-map", t.plain, "-c", dir .. "/qemu-server.conf" }
  for _, n in ipairs(t.names) do words[#words + 1] = n .. "=" .. t.disks[n] end
  local rc, _, err = H.vma(table.unpack(words))
  assert(rc == 0, "vma create: " .. err)
  if A.have("zstd") then
    t.zst = dir .. "/a.vma.zst"
    A.seekable_zst(t.plain, t.zst)
  end
  return t
end

--- The Proxmox fixtures with disks: case -> { archive, disks = {name -> raw
-- image padded to the device size}, vmstate = path }.
function A.proxmox(dir)
  local P = A.PVE
  local cases = {
    ["a-two-drives"] = { ["drive-scsi0"] = { "disk0.raw", 1053184 }, ["drive-virtio1"] = { "disk1.raw", 144384 } },
    ["c-empty-config"] = { ["drive-scsi0"] = { "tiny.raw", 5120 } },
    ["e-vmstate"] = { ["drive-scsi0"] = { "disk.raw", 65536 } },
  }
  local out = {}
  for c, disks in pairs(cases) do
    local t = { archive = P .. "/" .. c .. "/" .. c .. ".vma", disks = {}, names = {} }
    for name, spec in pairs(disks) do
      local p = dir .. "/" .. c .. "-" .. name .. ".raw"
      H.write(p, H.padded(H.read(P .. "/" .. c .. "/" .. spec[1]), spec[2]))
      t.disks[name] = p
      t.names[#t.names + 1] = name
    end
    table.sort(t.names)
    if c == "e-vmstate" then t.vmstate = P .. "/e-vmstate/state.bin" end
    out[c] = t
  end
  return out
end

--- Hostile archives in dir: name -> { path, expect (a part of the message) }.
function A.hostile(dir)
  local out = {}
  local function put(name, data, expect)
    local p = dir .. "/" .. name .. ".vma"
    H.write(p, data)
    out[name] = { path = p, expect = expect }
  end
  local d = G.base()
  d.extents[1].bad_md5 = true
  put("bad-checksum", G.build(d), "checksum")
  local full = G.build(G.base())
  put("truncated", full:sub(1, #full - 1000), "truncated")
  d = G.base()
  d.magic = "VMB\0"
  local wrong = G.build(d)
  put("wrong-magic", wrong, "magic")
  put("empty", "", "empty")
  -- a compressed archive is read through its decoded copy: its header is
  -- checked at once, like a plain one's
  local p = dir .. "/gzip.vma.gz"
  H.write(dir .. "/wrong-for-gz.vma", wrong)
  assert(os.execute("gzip -c " .. H.q(dir .. "/wrong-for-gz.vma") .. " > " .. H.q(p)))
  out["gzip"] = { path = p, expect = "magic" }
  return out
end

--- An archive whose disk lacks its middle cluster (an incomplete backup):
-- returns the path and the image (the missing cluster as zeros).
function A.incomplete(dir)
  local d, img = G.base()
  table.remove(d.extents[1].slots, 2) -- cluster 1 of 3 is not there
  local p = dir .. "/incomplete.vma"
  H.write(p, G.build(d))
  return p, img
end

-- ---- vma in the background ----

--- Start `vma WORDS...` in the background (stdout, stderr and the exit
-- status go to files in dir). Returns a handle for A.wait_output/A.stop.
function A.start(dir, ...)
  local n = (A.started or 0) + 1
  A.started = n
  local b = { out = dir .. "/bg" .. n .. ".out", err = dir .. "/bg" .. n .. ".err",
    pidf = dir .. "/bg" .. n .. ".pid", rcf = dir .. "/bg" .. n .. ".rc" }
  local words = { H.q(A.bin) }
  for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
  os.execute(string.format("( %s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s ) "
    .. ">/dev/null 2>&1 </dev/null &", table.concat(words, " "), H.q(b.out), H.q(b.err),
    H.q(b.pidf), H.q(b.rcf)))
  for _ = 1, 500 do
    local p = H.read(b.pidf)
    if p and p:match("%d+\n") then
      b.pid = tonumber(p:match("%d+"))
      break
    end
    vma.os.sleep(0.01)
  end
  assert(b.pid, "the background vma did not start")
  A.running = A.running or {}
  A.running[#A.running + 1] = b
  return b
end

--- The exit status of a background vma once it ended (within secs), or nil.
function A.status(b, secs)
  local tries = math.floor((secs or 0) / 0.02)
  for i = 0, tries do
    local rc = H.read(b.rcf)
    if rc and rc:match("%d+\n") then return tonumber(rc:match("%d+")) end
    if i < tries then vma.os.sleep(0.02) end
  end
  return nil
end

--- Wait until the background vma printed a line matching pattern (or ended).
-- Returns its stdout then, or nil, stderr when it ended first / timed out.
function A.wait_output(b, pattern, secs)
  for _ = 1, math.floor((secs or 60) / 0.02) do
    local out = H.read(b.out) or ""
    if out:match(pattern) then return out end
    if A.status(b) then return nil, "ended: " .. (H.read(b.err) or "") end
    vma.os.sleep(0.02)
  end
  return nil, "timed out; stderr: " .. (H.read(b.err) or "")
end

--- Stop a background vma with a signal; returns its exit status.
function A.stop(b, sig)
  if not A.status(b) then os.execute("kill -" .. (sig or "TERM") .. " " .. b.pid .. " 2>/dev/null") end
  local rc = A.status(b, 15)
  if not rc then
    os.execute("kill -KILL " .. b.pid .. " 2>/dev/null")
    rc = A.status(b, 5)
  end
  return rc
end

--- Make sure nothing started by a test is left: background vma processes,
-- and any mount on a folder under root.
function A.cleanup(root)
  for _, b in ipairs(A.running or {}) do
    if not A.status(b) then A.stop(b) end
  end
  A.running = {}
  if root then
    for _, m in ipairs(A.mounts_under(root)) do
      os.execute("fusermount3 -u -z " .. H.q(m) .. " 2>/dev/null || umount -l " .. H.q(m) .. " 2>/dev/null")
    end
  end
end

--- The mount points under root (from /proc/mounts).
function A.mounts_under(root)
  local t = {}
  local f = io.open("/proc/mounts", "r")
  if not f then return t end
  for line in f:lines() do
    local at = line:match("^%S+ (%S+)")
    at = at and at:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)
    if at and at:sub(1, #root + 1) == root .. "/" then t[#t + 1] = at end
  end
  f:close()
  return t
end

function A.is_mounted(dir)
  for _, m in ipairs(A.mounts_under(dir:match("^(.*)/[^/]+$"))) do
    if m == dir then return true end
  end
  return false
end

--- The nbdkit processes whose command line names path.
function A.nbdkit_for(path)
  local _, out = H.sh("pgrep -a nbdkit 2>/dev/null | grep -F " .. H.q(path) .. " || true")
  return out
end

--- JSON of a string.
function A.json(s) return require("dkjson").decode(s) end

return A
