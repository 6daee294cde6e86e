-- Issue 10, "a drop-in for Proxmox, for real": one describe per item, each
-- tried the way an administrator (or Proxmox's own tools) would.
-- The qmrestore simulation of item 1 is in qmrestore_cli_spec.lua.
local H = require "helper"
local G = require "vmagen"
local vma = require "vma"
local cjson = require "cjson"

local FIX = H.fixtures .. "/proxmox"
local RW = H.fixtures .. "/real-world/truncated-10g-scsi0.vma.gz"
local A2 = FIX .. "/a-two-drives/a-two-drives.vma"
local DISK0 = H.padded(H.read(FIX .. "/a-two-drives/disk0.raw"), 1053184)
local DISK1 = H.padded(H.read(FIX .. "/a-two-drives/disk1.raw"), 144384)
local EXISTS_MSG = " already exists (not writing over it; --force writes over it, zeros included)"

-- ---- helpers ------------------------------------------------------------------

local function sleep(s) os.execute("sleep " .. s) end

local function wait_for(pred, secs)
  for _ = 1, math.floor((secs or 10) * 50) do
    if pred() then return true end
    sleep(0.02)
  end
  return pred() and true or false
end

--- The whole of stdout must be one JSON document (one line).
local function one_json(out)
  assert.matches("^[^\n]+\n$", out)
  local ok, doc = pcall(cjson.decode, out)
  assert.is_true(ok, "not one JSON document: " .. tostring(out))
  return doc
end

local function mode_of(path)
  local st = vma.os.stat(path)
  return st and string.format("%04o", st.mode) or nil
end

local function leftovers(dir)
  local bad = {}
  for _, f in ipairs(H.ls(dir) or {}) do
    if f:match("%.tmp%-") or f:match("^tmp%-") then bad[#bad + 1] = f end
  end
  return bad
end

-- ---- background processes: started, signalled and ended by their own pid ------

local procs = {}

--- Start a shell command line in the background; its pid is the pid of the
-- command itself (exec), its exit status lands in a file.
local function start(cmd, ctl)
  local n = #procs + 1
  local p = { pidf = ctl .. "/p" .. n .. ".pid", rcf = ctl .. "/p" .. n .. ".rc",
              logf = ctl .. "/p" .. n .. ".log" }
  os.execute(string.format("( sh -c %s; echo $? > %s ) > %s 2>&1 < /dev/null &",
    H.q("echo $$ > " .. H.q(p.pidf) .. "; exec " .. cmd), H.q(p.rcf), H.q(p.logf)))
  assert(wait_for(function() return (H.read(p.pidf) or ""):match("^%d+\n") ~= nil end, 10),
    "the process did not start")
  p.pid = tonumber(H.read(p.pidf):match("%d+"))
  procs[#procs + 1] = p
  return p
end

local function alive(p)
  -- its own pid, and still the program we started (not a reused pid)
  if H.read(p.rcf) then return false end
  return os.execute("kill -0 " .. p.pid .. " 2>/dev/null") == true
end

local function signal(p, sig)
  if alive(p) then os.execute("kill -" .. sig .. " " .. p.pid .. " 2>/dev/null") end
end

--- Wait (bounded) for the process to end; its exit status, or nil.
local function wait_exit(p, secs)
  wait_for(function() return (H.read(p.rcf) or ""):match("^%d+\n") ~= nil end, secs or 30)
  local rc = (H.read(p.rcf) or ""):match("^(%d+)\n")
  return rc and tonumber(rc) or nil
end

local function log_of(p) return H.read(p.logf) or "" end

local function stop_all()
  for _, p in ipairs(procs) do
    if alive(p) then os.execute("kill -9 " .. p.pid .. " 2>/dev/null") end
    wait_exit(p, 5)
  end
  procs = {}
end

-- ---- item 2 ---------------------------------------------------------------------

describe("item 2: never overwrite silently", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  local FF0 = string.rep("\255", #DISK0)

  describe("extract --target dir:PATH", function()
    before_each(function()
      assert(os.execute("mkdir " .. H.q(dir .. "/images")))
      H.write(dir .. "/images/vm-100-disk-0.raw", FF0)
    end)

    it("refuses an existing PATH/vm-N-disk-M.raw, naming it, and leaves it byte-identical", function()
      local rc, out, err = H.vma("extract", "--target", "dir:" .. dir .. "/images", A2, dir .. "/x")
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.are.equal("vma extract: " .. dir .. "/images/vm-100-disk-0.raw" .. EXISTS_MSG .. "\n", err)
      assert.is_true(H.read(dir .. "/images/vm-100-disk-0.raw") == FF0)
      assert.are.same({ "vm-100-disk-0.raw" }, H.ls(dir .. "/images"))
      assert.is_false(H.exists(dir .. "/x"))
    end)

    it("with --force gives exactly the disk: no old data survives in the zero blocks", function()
      local rc, _, err = H.vma("extract", "--force", "--target", "dir:" .. dir .. "/images", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(H.read(dir .. "/images/vm-100-disk-0.raw") == DISK0)
      assert.is_true(H.read(dir .. "/images/vm-100-disk-1.raw") == DISK1)
    end)

    it("restore-map --target dir: refuses it too, and maps it with 1: under --force", function()
      local rc, out, err = H.vma("restore-map", "--target", "dir:" .. dir .. "/images", A2)
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.are.equal("vma restore-map: " .. dir .. "/images/vm-100-disk-0.raw" .. EXISTS_MSG .. "\n", err)
      rc, out = H.vma("restore-map", "--force", "--target", "dir:" .. dir .. "/images", A2)
      assert.are.equal(0, rc)
      assert.are.equal("format=raw:1:drive-scsi0=" .. dir .. "/images/vm-100-disk-0.raw\n"
        .. "format=raw:0:drive-virtio1=" .. dir .. "/images/vm-100-disk-1.raw\ndone\n", out)
    end)
  end)

  describe("extract -r MAP", function()
    local function map(line0)
      H.write(dir .. "/map", line0 .. "\nformat=raw:0:drive-virtio1=" .. dir .. "/t1.raw\ndone\n")
    end

    it("a 0: line naming a file full of data gives exactly the disk (the map is the caller's choice)", function()
      H.write(dir .. "/t0.raw", FF0)
      map("format=raw:0:drive-scsi0=" .. dir .. "/t0.raw")
      local rc, _, err = H.vma("extract", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(H.read(dir .. "/t0.raw") == DISK0)
      assert.is_true(H.read(dir .. "/t1.raw") == DISK1)
    end)

    it("the same with --force gives exactly the disk", function()
      H.write(dir .. "/t0.raw", FF0)
      map("format=raw:0:drive-scsi0=" .. dir .. "/t0.raw")
      local rc, _, err = H.vma("extract", "--force", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(H.read(dir .. "/t0.raw") == DISK0)
      assert.is_true(H.read(dir .. "/t1.raw") == DISK1)
    end)

    it("0: onto a file that is all holes (as qmrestore allocates it) is accepted", function()
      assert(os.execute("truncate -s " .. #DISK0 .. " " .. H.q(dir .. "/t0.raw")))
      map("format=raw:0:drive-scsi0=" .. dir .. "/t0.raw")
      local rc, _, err = H.vma("extract", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(H.read(dir .. "/t0.raw") == DISK0)
    end)

    it("1: onto a file full of data writes the zeros too (Proxmox's meaning of 1:)", function()
      H.write(dir .. "/t0.raw", FF0)
      map("format=raw:1:drive-scsi0=" .. dir .. "/t0.raw")
      local rc, _, err = H.vma("extract", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(H.read(dir .. "/t0.raw") == DISK0)
    end)
  end)

  describe("lvm and zfs targets", function()
    local vg, fake, created_zvol, fake_fail
    local LVCREATE = [[#!/bin/sh
echo "lvcreate $*" >> "$FAKE_LOG"
name= size= vg=
while [ $# -gt 0 ]; do
  case $1 in
    -y) ;;
    -n) name=$2; shift ;;
    -L|-V) size=${2%b}; shift ;;
    -T) vg=${2%%/*}; shift ;;
    *) vg=$1 ;;
  esac
  shift
done
if [ "$name" = "$FAKE_FAIL" ]; then
  echo "  Volume group \"$vg\" has insufficient free space" >&2
  exit 5
fi
mkdir -p "/dev/$vg" && truncate -s "$size" "/dev/$vg/$name"
]]
    local LVREMOVE = [[#!/bin/sh
echo "lvremove $*" >> "$FAKE_LOG"
rm -f "/dev/$2"
]]
    local ZFS = [[#!/bin/sh
echo "zfs $*" >> "$FAKE_LOG"
case $1 in
  create) mkdir -p "$(dirname "/dev/zvol/$5")" && truncate -s "$4" "/dev/zvol/$5" ;;
  destroy) rm -f "/dev/zvol/$2" ;;
  list) if [ "$5" = "$FAKE_FAIL" ]; then echo "cannot open '$5': dataset does not exist" >&2; exit 1; fi ;;
esac
]]
    -- vgs VG / lvs VG/POOL: found unless it is $FAKE_FAIL
    local VGS = [[#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
for last; do :; done
if [ "$last" = "$FAKE_FAIL" ]; then
  echo "  Volume group \"$last\" not found" >&2
  exit 5
fi
echo "  $last"
]]

    before_each(function()
      local p = io.popen("od -An -N4 -tx4 /dev/urandom")
      vg = "vma-test-" .. p:read("a"):gsub("%s", "")
      p:close()
      fake = dir .. "/bin"
      assert(os.execute("mkdir " .. H.q(fake)))
      for name, text in pairs { lvcreate = LVCREATE, lvremove = LVREMOVE, zfs = ZFS, vgs = VGS,
                                lvs = VGS } do
        H.write(fake .. "/" .. name, text)
        assert(os.execute("chmod +x " .. H.q(fake .. "/" .. name)))
      end
      created_zvol = false
    end)
    after_each(function()
      H.rm("/dev/" .. vg)
      H.rm("/dev/zvol/" .. vg)
      if created_zvol then os.execute("rmdir /dev/zvol 2>/dev/null") end
    end)

    local function can_use_dev()
      if not vma.os.stat("/dev/zvol") then
        if not os.execute("mkdir /dev/zvol 2>/dev/null") then return false end
        created_zvol = true
      end
      return os.execute("mkdir " .. H.q("/dev/" .. vg) .. " 2>/dev/null") == true
    end

    -- vma with the fake volume tools first in PATH
    local function run(...)
      local words = {}
      for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
      return H.sh("PATH=" .. H.q(fake) .. ":$PATH FAKE_LOG=" .. H.q(dir .. "/tools.log")
        .. " FAKE_FAIL=" .. H.q(fake_fail or "") .. " " .. H.q(H.bin) .. " " .. table.concat(words, " "))
    end

    it("restore-map --target lvm:VG/POOL maps thin volumes with 0:, lvm:VG thick ones with 1:", function()
      local rc, out, err = H.vma("restore-map", "--target", "lvm:" .. vg .. "/data", A2)
      assert.are.equal(0, rc, err)
      assert.are.equal("format=raw:0:drive-scsi0=/dev/" .. vg .. "/vm-100-disk-0\n"
        .. "format=raw:0:drive-virtio1=/dev/" .. vg .. "/vm-100-disk-1\ndone\n", out)
      rc, out, err = H.vma("restore-map", "--target", "lvm:" .. vg, A2)
      assert.are.equal(0, rc, err)
      assert.are.equal("format=raw:1:drive-scsi0=/dev/" .. vg .. "/vm-100-disk-0\n"
        .. "format=raw:1:drive-virtio1=/dev/" .. vg .. "/vm-100-disk-1\ndone\n", out)
    end)

    it("extract -n --target zfs:POOL prints the zfs create it would run, and runs nothing", function()
      local rc, out, err = run("extract", "-n", "--target", "zfs:" .. vg .. "/data", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.matches("device drive%-scsi0 %(1053184 bytes%) %-> /dev/zvol/" .. vg:gsub("%-", "%%-")
        .. "/data/vm%-100%-disk%-0 %(new: 'zfs' 'create' '%-s' '%-V' '1056768' '" .. vg:gsub("%-", "%%-")
        .. "/data/vm%-100%-disk%-0'%)\n", out)
      assert.matches("'zfs' 'create' '%-s' '%-V' '147456' '" .. vg:gsub("%-", "%%-")
        .. "/data/vm%-100%-disk%-1'", out)
      -- it only looked (once) whether the pool is there
      assert.are.equal("zfs list -H -o name " .. vg .. "/data\n", H.read(dir .. "/tools.log"))
      assert.is_false(H.exists(dir .. "/x"))
    end)

    it("extract -n fails as the real run would: no volume group, no pool, no lvcreate", function()
      fake_fail = vg
      local rc, out, err = run("extract", "-n", "--target", "lvm:" .. vg, A2, dir .. "/x")
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.are.equal("vma extract: volume group " .. vg .. " not found (vgs failed (exit 5): "
        .. "Volume group \"" .. vg .. "\" not found)\n", err)
      fake_fail = vg .. "/data"
      rc, _, err = run("extract", "-n", "--target", "lvm:" .. vg .. "/data", A2, dir .. "/x")
      assert.are.equal(1, rc)
      assert.matches("^vma extract: thin pool " .. vg:gsub("%-", "%%-") .. "/data not found ", err)
      rc, _, err = run("extract", "-n", "--target", "zfs:" .. vg .. "/data", A2, dir .. "/x")
      assert.are.equal(1, rc)
      assert.matches("^vma extract: pool or dataset " .. vg:gsub("%-", "%%-") .. "/data not found .*"
        .. "dataset does not exist%)\n$", err)
      fake_fail = nil
      -- no lvcreate on PATH (the fake tools alone, without lvcreate)
      os.remove(fake .. "/lvcreate")
      os.remove(dir .. "/tools.log")
      rc, _, err = H.sh("PATH=" .. H.q(fake) .. " FAKE_LOG=" .. H.q(dir .. "/tools.log") .. " "
        .. H.q(H.bin) .. " extract -n --target lvm:" .. vg .. " " .. H.q(A2) .. " " .. H.q(dir .. "/x"))
      assert.are.equal(1, rc)
      assert.are.equal("vma extract: lvcreate is not installed: cannot make /dev/" .. vg
        .. "/vm-100-disk-0\n", err)
      assert.is_false(H.exists(dir .. "/x"))
      for line in (H.read(dir .. "/tools.log") or ""):gmatch("[^\n]+") do
        assert.matches("^[vl][gv]s ", line) -- it only looked
      end
    end)

    it("an existing volume path is refused without --force (map side and extract)", function()
      if not can_use_dev() then pending("cannot make a scratch folder under /dev") return end
      H.write("/dev/" .. vg .. "/vm-100-disk-0", string.rep("\255", #DISK0))
      local rc, out, err = H.vma("restore-map", "--target", "lvm:" .. vg, A2)
      assert.are.equal(1, rc)
      assert.are.equal("", out)
      assert.are.equal("vma restore-map: /dev/" .. vg .. "/vm-100-disk-0" .. EXISTS_MSG .. "\n", err)
      rc, out = H.vma("restore-map", "--force", "--target", "lvm:" .. vg .. "/data", A2)
      assert.are.equal(0, rc)
      assert.are.equal("format=raw:1:drive-scsi0=/dev/" .. vg .. "/vm-100-disk-0\n"
        .. "format=raw:0:drive-virtio1=/dev/" .. vg .. "/vm-100-disk-1\ndone\n", out)
      rc, _, err = run("extract", "--target", "lvm:" .. vg, A2, dir .. "/x")
      assert.are.equal(1, rc)
      assert.are.equal("vma extract: /dev/" .. vg .. "/vm-100-disk-0" .. EXISTS_MSG .. "\n", err)
      assert.is_nil(H.read(dir .. "/tools.log")) -- nothing made
      assert.is_true(H.read("/dev/" .. vg .. "/vm-100-disk-0") == string.rep("\255", #DISK0))
      assert.is_false(H.exists(dir .. "/x"))
      -- with --force the existing volume gets the disk, zeros included
      rc, _, err = run("extract", "--force", "--target", "lvm:" .. vg, A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(H.read("/dev/" .. vg .. "/vm-100-disk-0") == DISK0)
      assert.is_true(H.read("/dev/" .. vg .. "/vm-100-disk-1") == DISK1)
      assert.are.equal("lvcreate -y -n vm-100-disk-1 -L 144384b " .. vg .. "\n", H.read(dir .. "/tools.log"))
    end)

    it("extract --target lvm:VG/POOL makes thin volumes (lvcreate -V -T) and restores onto them", function()
      if not can_use_dev() then pending("cannot make a scratch folder under /dev") return end
      local rc, _, err = run("extract", "--target", "lvm:" .. vg .. "/data", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.are.equal("lvcreate -y -n vm-100-disk-0 -V 1053184b -T " .. vg .. "/data\n"
        .. "lvcreate -y -n vm-100-disk-1 -V 144384b -T " .. vg .. "/data\n", H.read(dir .. "/tools.log"))
      assert.is_true(H.read("/dev/" .. vg .. "/vm-100-disk-0") == DISK0)
      assert.is_true(H.read("/dev/" .. vg .. "/vm-100-disk-1") == DISK1)
      assert.are.same({ "qemu-server.conf", "qemu-server.fw" }, H.ls(dir .. "/x"))
    end)

    it("extract --target zfs:POOL makes sparse zvols (zfs create -s -V) and restores onto them", function()
      if not can_use_dev() then pending("cannot make a scratch folder under /dev") return end
      local rc, _, err = run("extract", "--target", "zfs:" .. vg, A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.are.equal("zfs create -s -V 1056768 " .. vg .. "/vm-100-disk-0\n"
        .. "zfs create -s -V 147456 " .. vg .. "/vm-100-disk-1\n", H.read(dir .. "/tools.log"))
      assert.is_true(H.read("/dev/zvol/" .. vg .. "/vm-100-disk-0") == H.padded(DISK0, 1056768))
      assert.is_true(H.read("/dev/zvol/" .. vg .. "/vm-100-disk-1") == H.padded(DISK1, 147456))
    end)

    it("a failed restore removes the volumes it made (lvremove, zfs destroy) and DIR", function()
      if not can_use_dev() then pending("cannot make a scratch folder under /dev") return end
      local rc, _, err = run("extract", "--target", "lvm:" .. vg, RW, dir .. "/x")
      assert.are.equal(1, rc)
      assert.matches("archive is incomplete", err)
      assert.are.equal("lvcreate -y -n vm-100-disk-0 -L 10737418240b " .. vg .. "\n"
        .. "lvremove -f " .. vg .. "/vm-100-disk-0\n", H.read(dir .. "/tools.log"))
      assert.are.same({}, H.ls("/dev/" .. vg))
      assert.is_false(H.exists(dir .. "/x"))
      os.remove(dir .. "/tools.log")
      rc, _, err = run("extract", "--target", "zfs:" .. vg, RW, dir .. "/x")
      assert.are.equal(1, rc)
      assert.matches("archive is incomplete", err)
      assert.are.equal("zfs create -s -V 10737418240 " .. vg .. "/vm-100-disk-0\n"
        .. "zfs destroy " .. vg .. "/vm-100-disk-0\n", H.read(dir .. "/tools.log"))
      assert.are.same({}, H.ls("/dev/zvol/" .. vg))
      assert.is_false(H.exists(dir .. "/x"))
    end)

    it("an lvcreate that fails: the volume made before it is removed, the message says why", function()
      if not can_use_dev() then pending("cannot make a scratch folder under /dev") return end
      fake_fail = "vm-100-disk-1"
      local rc, _, err = run("extract", "--target", "lvm:" .. vg, A2, dir .. "/x")
      fake_fail = nil
      assert.are.equal(1, rc)
      assert.matches("^vma extract: lvcreate failed %(exit 5%): +Volume group \"" .. vg:gsub("%-", "%%-")
        .. "\" has insufficient free space\n$", err)
      assert.are.equal("lvcreate -y -n vm-100-disk-0 -L 1053184b " .. vg .. "\n"
        .. "lvcreate -y -n vm-100-disk-1 -L 144384b " .. vg .. "\n"
        .. "lvremove -f " .. vg .. "/vm-100-disk-0\n", H.read(dir .. "/tools.log"))
      assert.are.same({}, H.ls("/dev/" .. vg))
      assert.is_false(H.exists(dir .. "/x"))
    end)
  end)
end)

-- ---- item 3 ---------------------------------------------------------------------

describe("item 3: vma create that PVE restores", function()
  local dir, img
  before_each(function()
    dir = H.tmpdir()
    img = dir .. "/img.raw"
    H.image(img, 131072, { { 0, H.bytes(8192, 3) }, { 70000, H.bytes(4096, 4) } })
  end)
  after_each(function() H.rm(dir) end)

  local function stored(archive, name)
    local rc, out, err = H.vma("config", "-c", name or "qemu-server.conf", archive)
    assert.are.equal(0, rc, err)
    return out
  end

  it("-c qemu-server.conf=/some/100.conf stores it under that name", function()
    assert(os.execute("mkdir -p " .. H.q(dir .. "/etc/pve/qemu-server")))
    H.write(dir .. "/etc/pve/qemu-server/100.conf", "memory: 512\n")
    local rc, _, err = H.vma("create", dir .. "/a.vma", "-c",
      "qemu-server.conf=" .. dir .. "/etc/pve/qemu-server/100.conf", "-c",
      dir .. "/etc/pve/qemu-server/100.conf", img)
    assert.are.equal(0, rc, err)
    local out
    rc, out = H.vma("list", dir .. "/a.vma")
    assert.are.equal(0, rc)
    assert.matches("^CFG: size: 12 name: qemu%-server%.conf\nCFG: size: 12 name: 100%.conf\n", out)
    assert.are.equal("memory: 512\n", stored(dir .. "/a.vma", "100.conf"))
  end)

  it("adds #qmdump#map lines from the drive lines; drops snapshots, lock:, parent:, unusedN:", function()
    H.write(dir .. "/100.conf", table.concat({
      "#my description",
      "boot: order=scsi0;sata1",
      "lock: backup",
      "parent: before-upgrade",
      "scsi0: local-lvm:vm-100-disk-0,size=128K",
      "sata1: local:100/vm-100-disk-1.qcow2,size=128K",
      "virtio2: nfs:100/vm-100-disk-2.raw,discard=on,size=128K",
      "efidisk0: ceph:vm-100-disk-3,format=raw,size=128K",
      "ide2: none,media=cdrom",
      "unused0: local-lvm:vm-100-disk-9",
      "memory: 512",
      "",
      "[before-upgrade]",
      "scsi0: local-lvm:vm-100-disk-0,size=128K",
      "snaptime: 1700000000",
      "",
      "[PENDING]",
      "memory: 1024",
      "" }, "\n"))
    local rc, _, err = H.vma("create", dir .. "/a.vma", "-c", "qemu-server.conf=" .. dir .. "/100.conf",
      "scsi0=" .. img, "sata1=" .. img, "virtio2=" .. img, "efidisk0=" .. img)
    assert.are.equal(0, rc, err)
    assert.are.equal(table.concat({
      "#my description",
      "boot: order=scsi0;sata1",
      "scsi0: local-lvm:vm-100-disk-0,size=128K",
      "sata1: local:100/vm-100-disk-1.qcow2,size=128K",
      "virtio2: nfs:100/vm-100-disk-2.raw,discard=on,size=128K",
      "efidisk0: ceph:vm-100-disk-3,format=raw,size=128K",
      "ide2: none,media=cdrom",
      "memory: 512",
      "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:",
      "#qmdump#map:sata1:drive-sata1:local:qcow2:",
      "#qmdump#map:virtio2:drive-virtio2:nfs:raw:",
      "#qmdump#map:efidisk0:drive-efidisk0:ceph:raw:",
      "" }, "\n"), stored(dir .. "/a.vma"))
    local out
    rc, out = H.vma("list", dir .. "/a.vma")
    assert.matches("DEV: dev_id=1 size: 131072 devname: drive%-scsi0\n"
      .. "DEV: dev_id=2 size: 131072 devname: drive%-sata1\n"
      .. "DEV: dev_id=3 size: 131072 devname: drive%-virtio2\n"
      .. "DEV: dev_id=4 size: 131072 devname: drive%-efidisk0\n", out)
  end)

  it("a drive line without a format gets raw; a device without a drive line gets no map line "
    .. "(and a note)", function()
    H.write(dir .. "/100.conf", "scsi0: local-lvm:vm-100-disk-0,size=128K\nmemory: 512\n")
    local rc, _, err = H.vma("create", dir .. "/a.vma", "-c", "qemu-server.conf=" .. dir .. "/100.conf",
      "scsi0=" .. img, "scsi1=" .. img)
    assert.are.equal(0, rc, err)
    assert.are.equal("scsi0: local-lvm:vm-100-disk-0,size=128K\nmemory: 512\n"
      .. "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n", stored(dir .. "/a.vma"))
    assert.matches("vma create: note: device drive%-scsi1 has no drive line in " .. dir:gsub("%p", "%%%0")
      .. "/100%.conf", err)
  end)

  it("a config that has map lines already is stored as it is", function()
    local text = "scsi0: local-lvm:vm-100-disk-0,size=128K\nlock: backup\n"
      .. "#qmdump#map:scsi0:drive-scsi0:other:raw:\n"
    H.write(dir .. "/100.conf", text)
    local rc, _, err = H.vma("create", dir .. "/a.vma", "-c", "qemu-server.conf=" .. dir .. "/100.conf",
      "scsi0=" .. img)
    assert.are.equal(0, rc, err)
    assert.are.equal(text, stored(dir .. "/a.vma"))
  end)

  it("--no-qmdump-map keeps the config verbatim", function()
    local text = "scsi0: local-lvm:vm-100-disk-0,size=128K\nlock: backup\n\n[snap]\nmemory: 1\n"
    H.write(dir .. "/100.conf", text)
    local rc, _, err = H.vma("create", "--no-qmdump-map", dir .. "/a.vma", "-c",
      "qemu-server.conf=" .. dir .. "/100.conf", "scsi0=" .. img)
    assert.are.equal(0, rc, err)
    assert.are.equal(text, stored(dir .. "/a.vma"))
  end)

  it("only the config stored as qemu-server.conf gets map lines", function()
    local text = "scsi0: local-lvm:vm-100-disk-0,size=128K\n"
    H.write(dir .. "/other.conf", text)
    local rc, _, err = H.vma("create", dir .. "/a.vma", "-c", dir .. "/other.conf", "scsi0=" .. img)
    assert.are.equal(0, rc, err)
    assert.are.equal(text, stored(dir .. "/a.vma", "other.conf"))
  end)

  it("vma create DIR --vmid 100 writes DIR/vzdump-qemu-100-<now>.vma.zst, zstd, that verifies", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/dump")))
    local before = os.time()
    local rc, _, err = H.vma("create", dir .. "/dump", "--vmid", "100", "scsi0=" .. img)
    local after = os.time()
    assert.are.equal(0, rc, err)
    local files = H.ls(dir .. "/dump")
    assert.are.equal(1, #files)
    local y, mo, d, h, mi, s = files[1]:match("^vzdump%-qemu%-100%-(%d%d%d%d)_(%d%d)_(%d%d)%-(%d%d)_(%d%d)_(%d%d)%.vma%.zst$")
    assert.is_not_nil(y, files[1])
    local t = os.time { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
      min = tonumber(mi), sec = tonumber(s) }
    assert.is_true(t >= before - 1 and t <= after + 1, files[1])
    local path = dir .. "/dump/" .. files[1]
    assert.are.equal("\x28\xb5\x2f\xfd", H.read(path):sub(1, 4)) -- the zstd magic
    local out
    rc, out = H.vma("list", "--json", path)
    assert.are.equal(0, rc)
    local doc = one_json(out)
    assert.are.equal("zstd", doc.compression)
    assert.are.equal("drive-scsi0", doc.devices[1].name)
    assert.are.equal(0, (H.vma("verify", path)))
    -- what prune and restore-map see in the name
    rc, out = H.vma("restore-map", "--json", "--target", "dir:/restore", path)
    assert.are.equal(0, rc)
    assert.matches('"vmid":100,', out)
  end)

  it("--vmid with a file, a folder without --vmid, a bad vmid are refused", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/dump")))
    local rc, _, err = H.vma("create", dir .. "/dump", "scsi0=" .. img)
    assert.are.equal(1, rc)
    assert.are.equal("vma create: " .. dir .. "/dump is a folder (give --vmid N to name the archive "
      .. "as vzdump does)\n", err)
    rc, _, err = H.vma("create", dir .. "/a.vma", "--vmid", "100", "scsi0=" .. img)
    assert.are.equal(1, rc)
    assert.matches("%-%-vmid names an archive in a folder", err)
    rc = H.vma("create", dir .. "/dump", "--vmid", "abc", "scsi0=" .. img)
    assert.are.equal(2, rc)
    assert.are.same({}, H.ls(dir .. "/dump"))
    assert.is_false(H.exists(dir .. "/a.vma"))
  end)
end)

-- ---- item 4 ---------------------------------------------------------------------

describe("item 4: signals leave nothing behind", function()
  local dir, ctl
  before_each(function()
    dir = H.tmpdir()
    ctl = H.tmpdir()
  end)
  after_each(function()
    stop_all()
    H.rm(dir)
    H.rm(ctl)
  end)

  describe("extract onto a new map target (throttled: about 4 s)", function()
    local cmd
    before_each(function()
      H.random_file(dir .. "/img.raw", 16 * 1048576)
      assert.are.equal(0, (H.vma("create", "-q", dir .. "/a.vma", "drive-scsi0=" .. dir .. "/img.raw")))
      H.write(dir .. "/map", "throttling.bps=4000000:0:drive-scsi0=" .. dir .. "/target.raw\ndone\n")
      cmd = H.q(H.bin) .. " extract -r " .. H.q(dir .. "/map") .. " " .. H.q(dir .. "/a.vma") .. " "
        .. H.q(dir .. "/x")
    end)

    local function assert_clean()
      assert.are.same({ "a.vma", "img.raw", "map" }, H.ls(dir))
    end

    -- the new target is written under a temporary name beside it
    local function running(p)
      assert.is_true(wait_for(function()
        for _, f in ipairs(H.ls(dir) or {}) do
          local st = f:match("^%.tmp%-vma%-") and vma.os.stat(dir .. "/" .. f)
          if st and st.size > 0 then return true end
        end
        return false
      end, 10), "the restore did not start: " .. log_of(p))
      assert.is_false(H.exists(dir .. "/target.raw"), "the target is under its final name already")
      sleep(0.3)
      assert.is_true(alive(p), "the restore ended too soon: " .. log_of(p))
    end

    it("a double SIGINT (an impatient Ctrl-C Ctrl-C)", function()
      local p = start(cmd, ctl)
      running(p)
      signal(p, "INT")
      signal(p, "INT")
      assert.are.equal(1, wait_exit(p, 30))
      assert.matches("\nvma extract: interrupted\n$", log_of(p))
      assert_clean()
    end)

    it("SIGINT held down (a signal every 20 ms until it ends, so some come during clean-up)", function()
      local p = start(cmd, ctl)
      running(p)
      for _ = 1, 1500 do
        if not alive(p) then break end
        signal(p, "INT")
        sleep(0.02)
      end
      assert.are.equal(1, wait_exit(p, 30))
      assert.matches("vma extract: interrupted", log_of(p))
      assert_clean()
    end)

    it("SIGHUP (the terminal went away)", function()
      local p = start(cmd, ctl)
      running(p)
      signal(p, "HUP")
      assert.are.equal(1, wait_exit(p, 30))
      assert.matches("vma extract: interrupted", log_of(p))
      assert_clean()
    end)

    it("timeout -s TERM 1 (which signals the command and then its whole process group)", function()
      local p = start("timeout -s TERM 1 " .. cmd, ctl)
      assert.are.equal(124, wait_exit(p, 30))
      assert.matches("vma extract: interrupted", log_of(p))
      assert_clean()
    end)

    it("SIGPIPE: vma extract -v ... | head -c 10", function()
      local rc, out, err = H.sh("timeout 60 sh -c " .. H.q("{ " .. H.q(H.bin) .. " extract -v -r "
        .. H.q(dir .. "/map") .. " " .. H.q(dir .. "/a.vma") .. " " .. H.q(dir .. "/x") .. "; echo \"vma=$?\" >&2; }"
        .. " | head -c 10"))
      assert.are.equal(0, rc)
      assert.are.equal("DEV: dev_i", out)
      assert.are.equal("vma extract: cannot write to standard output: Broken pipe\nvma=1\n", err)
      assert_clean()
    end)

    it("a throttled restore stops soon after SIGINT (within 1.5 s)", function()
      H.write(dir .. "/map", "throttling.bps=1000000:0:drive-scsi0=" .. dir .. "/target.raw\ndone\n")
      local p = start(cmd, ctl)
      running(p)
      signal(p, "INT")
      local quick = wait_for(function() return not alive(p) end, 1.5)
      assert.are.equal(1, wait_exit(p, 30))
      assert_clean()
      assert.is_true(quick, "a throttled extract noticed SIGINT only after 1.5 s")
    end)
  end)

  describe("extract into DIR (DIR/tmp-disk-*) from a stalled pipe", function()
    local feeder, fifo, cmd
    before_each(function()
      H.random_file(dir .. "/img.raw", 8 * 1048576)
      assert.are.equal(0, (H.vma("create", "-q", dir .. "/a.vma", "drive-scsi0=" .. dir .. "/img.raw")))
      fifo = ctl .. "/in"
      assert(os.execute("mkfifo " .. H.q(fifo)))
      -- a writer that sends 3 MB and then stalls, keeping the FIFO open: its pid
      -- becomes the pid of that sleep (it opens the FIFO when vma does)
      feeder = start("sh -c " .. H.q("exec > " .. H.q(fifo) .. "; head -c 3000000 " .. H.q(dir .. "/a.vma")
        .. "; exec sleep 60"), ctl)
      cmd = H.q(H.bin) .. " extract " .. H.q(fifo) .. " " .. H.q(dir .. "/x")
    end)

    local function running(p)
      assert.is_true(wait_for(function() return H.exists(dir .. "/x/tmp-disk-drive-scsi0.raw") end, 10),
        "the restore did not start: " .. log_of(p))
      sleep(0.3)
      assert.is_true(alive(p))
    end

    for _, case in ipairs { { "a double SIGINT", { "INT", "INT" } }, { "SIGHUP", { "HUP" } },
                            { "SIGTERM twice", { "TERM", "TERM" } } } do
      it(case[1], function()
        local p = start(cmd, ctl)
        running(p)
        for _, sig in ipairs(case[2]) do signal(p, sig) end
        assert.are.equal(1, wait_exit(p, 10))
        assert.matches("vma extract: interrupted", log_of(p))
        assert.is_false(H.exists(dir .. "/x"))
        assert.are.same({ "a.vma", "img.raw" }, H.ls(dir))
        signal(feeder, "TERM")
      end)
    end

    it("timeout -s TERM 1", function()
      local p = start("timeout -s TERM 1 " .. cmd, ctl)
      assert.are.equal(124, wait_exit(p, 10))
      assert.matches("vma extract: interrupted", log_of(p))
      assert.is_false(H.exists(dir .. "/x"))
      signal(feeder, "TERM")
    end)
  end)

  describe("create", function()
    local cmd
    before_each(function()
      -- gzip -9 of random data: slow enough to be stopped in the middle
      H.random_file(dir .. "/img.raw", 64 * 1048576)
      cmd = H.q(H.bin) .. " create --compress gzip --level 9 " .. H.q(dir .. "/k.vma.gz") .. " "
        .. H.q(dir .. "/img.raw")
    end)

    local function running(p)
      assert.is_true(wait_for(function() return #leftovers(dir) > 0 end, 10),
        "no temporary file appeared: " .. log_of(p))
      sleep(0.1)
      assert.is_true(alive(p), "the create ended too soon")
    end

    local function assert_clean()
      assert.are.same({ "img.raw" }, H.ls(dir))
    end

    for _, case in ipairs { { "a double SIGINT", { "INT", "INT" } }, { "SIGHUP", { "HUP" } },
                            { "a double SIGTERM", { "TERM", "TERM" } } } do
      it(case[1], function()
        local p = start(cmd, ctl)
        running(p)
        for _, sig in ipairs(case[2]) do signal(p, sig) end
        assert.are.equal(1, wait_exit(p, 30))
        assert.are.equal("vma create: interrupted\n", log_of(p))
        assert_clean()
      end)
    end

    it("SIGINT held down", function()
      local p = start(cmd, ctl)
      running(p)
      for _ = 1, 1500 do
        if not alive(p) then break end
        signal(p, "INT")
        sleep(0.02)
      end
      assert.are.equal(1, wait_exit(p, 30))
      assert.are.equal("vma create: interrupted\n", log_of(p))
      assert_clean()
    end)

    it("timeout -s TERM 0.5 (the process group)", function()
      local p = start("timeout -s TERM 0.5 " .. cmd, ctl)
      assert.are.equal(124, wait_exit(p, 30))
      assert.are.equal("vma create: interrupted\n", log_of(p))
      assert_clean()
    end)

    it("SIGPIPE: vma create - IMG | head -c 100 exits 1 and leaves nothing", function()
      local rc, out, err = H.sh("cd " .. H.q(dir) .. " && timeout 60 sh -c " .. H.q("{ " .. H.q(H.bin)
        .. " create - img.raw; echo \"vma=$?\" >&2; } | head -c 100"))
      assert.are.equal(0, rc)
      assert.are.equal(100, #out)
      assert.are.equal("VMA\0", out:sub(1, 4))
      assert.matches("write failed: Broken pipe\nvma=1\n$", err)
      assert.are.equal(1, select(2, err:gsub("^vma create: ", "")))
      assert_clean()
    end)

    it("SIGINT while zstd finishes a high level stops the create too", function()
      H.random_file(dir .. "/img.raw", 12 * 1048576)
      local p = start(H.q(H.bin) .. " create -v --compress zstd --level 19 " .. H.q(dir .. "/k.vma.zst")
        .. " " .. H.q(dir .. "/img.raw"), ctl)
      -- every byte read and handed to zstd: what is left is its flush
      assert.is_true(wait_for(function() return log_of(p):find("progress 100%", 1, true) ~= nil end, 60),
        log_of(p))
      assert.is_true(alive(p), "the create ended too soon")
      signal(p, "INT")
      local quick = wait_for(function() return not alive(p) end, 2)
      local rc = wait_exit(p, 120)
      assert.are.equal(1, rc)
      assert.is_true(quick)
      assert.matches("vma create: interrupted\n$", log_of(p))
      assert_clean()
    end)
  end)
end)

-- ---- item 5 ---------------------------------------------------------------------

describe("item 5: output that scripts read", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("create --json - IMG > A.vma: a sound archive on stdout, the JSON on stderr", function()
    local img = FIX .. "/a-two-drives/disk0.raw"
    local rc, _, err = H.sh(H.q(H.bin) .. " create --json - scsi0=" .. H.q(img) .. " > " .. H.q(dir .. "/a.vma"))
    assert.are.equal(0, rc, err)
    local doc = one_json(err)
    assert.is_true(doc.ok)
    assert.are.equal("-", doc.archive)
    assert.are.equal("drive-scsi0", doc.devices[1].name)
    local vrc, _, verr = H.vma("verify", dir .. "/a.vma")
    assert.are.equal(0, vrc, verr)
    local xrc = H.vma("extract", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, xrc)
    assert.is_true(H.read(dir .. "/x/disk-drive-scsi0.raw") == DISK0)
    -- nothing of the JSON in the archive
    local data = H.read(dir .. "/a.vma")
    assert.is_nil(data:find('"ok":true', 1, true))
    assert.is_nil(data:find(doc.uuid, 1, true))
  end)

  describe("extract --json prints exactly one JSON document on stdout", function()
    local function map()
      H.write(dir .. "/map", "format=raw:0:drive-scsi0=" .. dir .. "/t0.raw\n"
        .. "format=raw:0:drive-virtio1=" .. dir .. "/t1.raw\ndone\n")
    end

    it("with -r MAP (the CFG:/DEV:/CTIME: lines go to stderr)", function()
      map()
      local rc, out, err = H.vma("extract", "--json", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      local doc = one_json(out)
      assert.is_true(doc.ok)
      assert.are.equal(dir .. "/t0.raw", doc.files[3].path)
      assert.matches("^CFG: size: 260 name: qemu%-server%.conf\n.*CTIME: ", err)
      assert.is_true(H.read(dir .. "/t0.raw") == DISK0)
    end)

    it("with -v -r MAP (the progress lines go to stderr)", function()
      map()
      local rc, out, err = H.vma("extract", "--json", "-v", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.is_true(one_json(out).ok)
      assert.matches("progress 100%% %(read 1310720 bytes", err)
      assert.matches("total bytes read 1310720", err)
    end)

    it("with -v alone", function()
      local rc, out, err = H.vma("extract", "--json", "-v", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      local doc = one_json(out)
      assert.are.equal(dir .. "/x/disk-drive-scsi0.raw", doc.files[3].path)
      assert.matches("progress 100%%", err)
    end)

    it("with -n (and -r): the plan, nothing written", function()
      map()
      local rc, out, err = H.vma("extract", "--json", "-n", "-r", dir .. "/map", A2, dir .. "/x")
      assert.are.equal(0, rc, err)
      local doc = one_json(out)
      assert.is_true(doc.dry_run)
      assert.are.equal(4, #doc.files)
      assert.is_false(H.exists(dir .. "/x"))
      assert.is_false(H.exists(dir .. "/t0.raw"))
      rc, out = H.vma("extract", "--json", "-n", "-v", A2, dir .. "/x")
      assert.are.equal(0, rc)
      assert.is_true(one_json(out).dry_run)
    end)

    it("on failure: {\"ok\":false,\"error\":...}, exit 1", function()
      local rc, out, err = H.vma("extract", "--json", "-r", dir .. "/nonexist.map", A2, dir .. "/x")
      assert.are.equal(1, rc)
      local doc = one_json(out)
      assert.is_false(doc.ok)
      assert.are.equal("unable to open restore map: " .. dir .. "/nonexist.map: No such file or directory",
        doc.error)
      assert.matches("^CFG: ", err)
      assert.is_false(H.exists(dir .. "/x"))
    end)
  end)

  it("list --json and create --json on failure: {\"ok\":false,\"error\":...} and exit 1", function()
    local rc, out = H.vma("list", "--json", dir .. "/nonexist.vma")
    assert.are.equal(1, rc)
    assert.are.same({ ok = false, error = "cannot open " .. dir .. "/nonexist.vma: No such file or directory" },
      one_json(out))
    rc, out = H.vma("create", "--json", dir .. "/a.vma", dir .. "/nonexist.img")
    assert.are.equal(1, rc)
    assert.are.same({ ok = false, error = "cannot stat " .. dir .. "/nonexist.img: No such file or directory" },
      one_json(out))
    assert.are.same({}, H.ls(dir))
    -- to standard output: the failure's JSON goes where a success's goes (stderr)
    local err
    rc, _, err = H.sh(H.q(H.bin) .. " create --json - " .. H.q(dir .. "/nonexist.img") .. " > "
      .. H.q(dir .. "/out"))
    assert.are.equal(1, rc)
    assert.are.equal("", H.read(dir .. "/out"))
    os.remove(dir .. "/out")
    local first = err:match("^[^\n]*\n")
    assert.are.same({ ok = false, error = "cannot stat " .. dir .. "/nonexist.img: No such file or directory" },
      one_json(first))
    rc, out = H.vma("verify", "--json", RW)
    assert.are.equal(1, rc)
    assert.is_false(one_json(out).ok)
  end)

  it("vmid is a number in prune --json and in restore-map --json alike", function()
    for _, day in ipairs { "01", "02" } do
      assert(os.execute("cp " .. H.q(FIX .. "/e-vmstate/e-vmstate.vma") .. " "
        .. H.q(dir .. "/vzdump-qemu-101-2024_01_" .. day .. "-00_00_00.vma")))
    end
    local rc, out = H.vma("prune", "-n", "--json", "--keep-last", "1", dir)
    assert.are.equal(0, rc)
    local list = one_json(out)
    assert.are.equal(2, #list)
    for _, b in ipairs(list) do
      assert.are.equal("number", type(b.vmid))
      assert.are.equal(101, b.vmid)
    end
    assert.matches('"vmid":101,', out)
    rc, out = H.vma("restore-map", "--json", "--target", "dir:/restore",
      dir .. "/vzdump-qemu-101-2024_01_01-00_00_00.vma")
    assert.are.equal(0, rc)
    local doc = one_json(out)
    assert.are.equal("number", type(doc.vmid))
    assert.are.equal(101, doc.vmid)
    assert.matches('"vmid":101,', out)
  end)
end)

-- ---- item 6 ---------------------------------------------------------------------

-- three devices of 3 clusters: only drive-scsi0 is complete
local function incomplete_archive(path)
  local s = 3 * G.CLUSTER
  local imgs = { G.image(s, 11), G.image(s, 12), G.image(s, 13) }
  local slots = G.image_slots(1, imgs[1])
  table.insert(slots, G.image_slots(2, imgs[2])[1])
  table.insert(slots, G.image_slots(3, imgs[3])[3])
  local d = { configs = { { name = "qemu-server.conf", data = "memory: 512\n" } },
    devices = { { id = 1, name = "drive-scsi0", size = s }, { id = 2, name = "drive-scsi1", size = s },
                { id = 3, name = "drive-scsi2", size = s } },
    extents = G.pack(slots, 2) }
  H.write(path, (G.build(d)))
  return imgs
end

describe("item 6: selections", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("-d '' and -d , are usage errors (exit 2) and create nothing", function()
    for _, sel in ipairs { "", ",", " , " } do
      local rc, out, err = H.vma("extract", "-d", sel, A2, dir .. "/x")
      assert.are.equal(2, rc)
      assert.are.equal("", out)
      assert.are.equal("vma extract: -d '" .. sel .. "' names nothing (see 'vma help extract')\n", err)
      assert.is_false(H.exists(dir .. "/x"))
    end
  end)

  it("extract -d drive-scsi0 succeeds when the unselected disks are incomplete", function()
    local imgs = incomplete_archive(dir .. "/inc.vma")
    for _, sel in ipairs { "drive-scsi0", "scsi0" } do
      local rc, _, err = H.vma("extract", "-d", sel, dir .. "/inc.vma", dir .. "/x")
      assert.are.equal(0, rc, err)
      assert.are.same({ "disk-drive-scsi0.raw", "qemu-server.conf" }, H.ls(dir .. "/x"))
      assert.is_true(H.read(dir .. "/x/disk-drive-scsi0.raw") == imgs[1])
      H.rm(dir .. "/x")
    end
    -- and with a map that skips them
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/t0.raw\nskip=drive-scsi1\nskip=drive-scsi2\ndone\n")
    local rc, _, err = H.vma("extract", "-r", dir .. "/map", dir .. "/inc.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(H.read(dir .. "/t0.raw") == imgs[1])
  end)

  it("verify and extract name every incomplete device in one message", function()
    incomplete_archive(dir .. "/inc.vma")
    local want = "archive is incomplete: device 'drive-scsi1' misses 2 of 3 clusters (first missing: "
      .. "cluster 1); device 'drive-scsi2' misses 2 of 3 clusters (first missing: cluster 0)\n"
    local rc, _, err = H.vma("verify", dir .. "/inc.vma")
    assert.are.equal(1, rc)
    assert.are.equal("vma verify: " .. want, err)
    local out
    rc, out, err = H.vma("extract", dir .. "/inc.vma", dir .. "/x")
    assert.are.equal(1, rc)
    assert.matches("^DEVINFO ", out)
    assert.are.equal("vma extract: " .. want, err)
    assert.is_false(H.exists(dir .. "/x"))
    -- a selection names only what it restores
    rc, _, err = H.vma("extract", "-d", "scsi0,scsi2", dir .. "/inc.vma", dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: archive is incomplete: device 'drive-scsi2' misses 2 of 3 clusters "
      .. "(first missing: cluster 0)\n", err)
    assert.is_false(H.exists(dir .. "/x"))
  end)

  it("an unknown drive in -d is refused before anything is made", function()
    local rc, _, err = H.vma("extract", "-d", "scsi0,bogus", A2, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: no device named 'bogus' in the archive (the devices: "
      .. "drive-scsi0, drive-virtio1)\n", err)
    assert.is_false(H.exists(dir .. "/x"))
  end)
end)

-- ---- item 7 ---------------------------------------------------------------------

-- An archive of two disks whose clusters are spread, out of order, over
-- extents of three slots; returns its bytes, its layout, and per extent the
-- clusters it holds.
local function salvage_archive()
  local size1, size2 = 20 * G.CLUSTER + 5120, 7 * G.CLUSTER
  local img1, img2 = G.image(size1, 21), G.image(size2, 22)
  local slots = {}
  for _, s in ipairs(G.image_slots(1, img1)) do slots[#slots + 1] = s end
  for i, s in ipairs(G.image_slots(2, img2)) do table.insert(slots, 3 * i, s) end
  -- a fixed shuffle (clusters out of order, as in real backups)
  local x = 7
  for i = #slots, 2, -1 do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    local j = x % i + 1
    slots[i], slots[j] = slots[j], slots[i]
  end
  local extents = G.pack(slots, 3)
  local d = { configs = { { name = "qemu-server.conf", data = "memory: 512\n" } },
    devices = { { id = 1, name = "drive-scsi0", size = size1 }, { id = 2, name = "drive-scsi1", size = size2 } },
    extents = extents }
  local bytes, layout = G.build(d)
  local held = {}
  for i, e in ipairs(extents) do
    held[i] = {}
    for _, s in ipairs(e.slots) do held[i][#held[i] + 1] = { dev = s.dev, cluster = s.cluster } end
  end
  return bytes, layout, held, { img1, img2 }, { size1, size2 }
end

-- what a salvage must give: the clusters of every extent complete in the first
-- `prefix` bytes, zeros elsewhere; and the missing clusters of each device
local function salvage_expected(layout, held, imgs, sizes, prefix, skip)
  local out, have = {}, { {}, {} }
  for i, e in ipairs(layout.extents) do
    if e.offset + e.size <= prefix and not (skip and skip[i]) then
      for _, c in ipairs(held[i]) do have[c.dev][c.cluster] = true end
    end
  end
  local missing = {}
  for dev = 1, 2 do
    local parts, ranges, bytes = {}, {}, 0
    local n = (sizes[dev] + G.CLUSTER - 1) // G.CLUSTER
    for c = 0, n - 1 do
      local len = math.min(G.CLUSTER, sizes[dev] - c * G.CLUSTER)
      if have[dev][c] then
        parts[#parts + 1] = imgs[dev]:sub(c * G.CLUSTER + 1, c * G.CLUSTER + len)
      else
        parts[#parts + 1] = string.rep("\0", len)
        bytes = bytes + len
        local last = ranges[#ranges]
        if last and last.offset + last.length == c * G.CLUSTER then
          last.length = last.length + len
        else
          ranges[#ranges + 1] = { offset = c * G.CLUSTER, length = len }
        end
      end
    end
    out[dev] = table.concat(parts)
    missing[dev] = { bytes = bytes, ranges = ranges }
  end
  return out, missing
end

describe("item 7: salvage", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("the truncated real-world backup: exit 3, the 10 GiB disk kept (sparse), a report per device", function()
    local rc, out, err = H.vma("extract", "--salvage", RW, dir .. "/x")
    assert.are.equal(3, rc, err)
    assert.are.equal("DEVINFO " .. dir .. "/x/tmp-disk-drive-scsi0.raw 10737418240\n", out)
    assert.are.same({ "disk-drive-scsi0.raw", "qemu-server.conf" }, H.ls(dir .. "/x"))
    assert.are.equal(10737418240, vma.os.stat(dir .. "/x/disk-drive-scsi0.raw").size)
    local _, blocks = H.sh("stat -c %b " .. H.q(dir .. "/x/disk-drive-scsi0.raw"))
    assert.is_true(tonumber(blocks) * 512 < 16 * 1048576, "not sparse: " .. blocks .. " blocks")
    assert.are.equal(table.concat({
      "salvage: drive-scsi0: 10.0 GiB of 10.0 GiB missing (zeros in " .. dir .. "/x/disk-drive-scsi0.raw):",
      "  bytes 1507328..2097151",
      "  bytes 3604480..4194303",
      "  bytes 6815744..7340031",
      "  bytes 7864320..8388607",
      "  bytes 8912896..9437183",
      "  bytes 9895936..10485759",
      "  bytes 10944512..10737418239",
      "" }, "\n"), err:gsub("vma extract: salvaged [^\n]*\n$", ""))
    assert.matches("\nvma extract: salvaged 1 disk into " .. dir:gsub("%p", "%%%0")
      .. "/x: 7%.2 MiB restored, 10%.0 GiB missing %(zeros there%)\n$", err)
  end)

  it("the real-world backup with --json: one document with the missing ranges", function()
    local rc, out = H.vma("extract", "--salvage", "--json", RW, dir .. "/x")
    assert.are.equal(3, rc)
    local doc = one_json(out)
    assert.is_true(doc.ok)
    assert.is_true(doc.salvaged)
    assert.are.equal(1, #doc.devices)
    local d = doc.devices[1]
    assert.are.equal("drive-scsi0", d.name)
    assert.are.equal(dir .. "/x/disk-drive-scsi0.raw", d.path)
    assert.are.equal(10729816064, d.missing_bytes)
    local sum = 0
    for _, r in ipairs(d.missing) do sum = sum + r.length end
    assert.are.equal(d.missing_bytes, sum)
    assert.are.same({ offset = 1507328, length = 589824 }, d.missing[1])
  end)

  it("a sound archive with --salvage exits 0 and reports nothing", function()
    local rc, _, err = H.vma("extract", "--salvage", A2, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_nil(err:find("salvage:", 1, true))
    assert.is_true(H.read(dir .. "/x/disk-drive-scsi0.raw") == DISK0)
    assert.is_true(H.read(dir .. "/x/disk-drive-virtio1.raw") == DISK1)
  end)

  -- one salvage of `file` (holding the archive's first `prefix` bytes)
  local function check_cut(file, prefix, layout, held, imgs, sizes, label, skip)
    H.rm(dir .. "/x")
    local rc, out, err = H.vma("extract", "--salvage", "--json", file, dir .. "/x")
    local expected, missing = salvage_expected(layout, held, imgs, sizes, prefix, skip)
    local complete = missing[1].bytes == 0 and missing[2].bytes == 0
    assert.are.equal(complete and 0 or 3, rc, label .. ": " .. err)
    assert.are.same({ "disk-drive-scsi0.raw", "disk-drive-scsi1.raw", "qemu-server.conf" }, H.ls(dir .. "/x"))
    for dev, name in ipairs { "drive-scsi0", "drive-scsi1" } do
      local got = H.read(dir .. "/x/disk-" .. name .. ".raw")
      assert.are.equal((sizes[dev] + 511) // 512 * 512, #got, label)
      assert.is_true(got == H.padded(expected[dev], #got), label .. ": " .. name .. " is not what the "
        .. "complete extents hold")
    end
    local doc = one_json(out)
    for dev = 1, 2 do
      local d = doc.devices[dev]
      assert.are.equal(missing[dev].bytes, d.missing_bytes, label)
      assert.are.same(missing[dev].ranges, d.missing, label)
    end
    return doc, err
  end

  it("plain .vma cut at hidden points: what is complete before the cut is exact, the rest zeros", function()
    local bytes, layout, held, imgs, sizes = salvage_archive()
    local cuts = { layout.header_size } -- right after the header: no data at all
    for i, e in ipairs(layout.extents) do
      if i % 3 == 1 then
        cuts[#cuts + 1] = e.offset            -- an extent boundary
        cuts[#cuts + 1] = e.offset + 1        -- inside an extent header
        cuts[#cuts + 1] = e.offset + 511
        cuts[#cuts + 1] = e.data_offset + 4096 * 2 + 7 -- inside the data
        cuts[#cuts + 1] = e.offset + e.size - 1
      end
    end
    local x = 12345
    for _ = 1, 8 do -- and anywhere
      x = (x * 1103515245 + 12345) & 0x7fffffff
      cuts[#cuts + 1] = layout.header_size + x % (#bytes - layout.header_size)
    end
    cuts[#cuts + 1] = #bytes -- all of it
    for _, cut in ipairs(cuts) do
      H.write(dir .. "/cut.vma", bytes:sub(1, cut))
      check_cut(dir .. "/cut.vma", cut, layout, held, imgs, sizes, "cut at " .. cut)
    end
  end)

  it("a cut inside the archive's header leaves nothing to salvage: exit 1, nothing made", function()
    local bytes, layout = salvage_archive()
    for _, cut in ipairs { 100, layout.header_size - 1 } do
      H.write(dir .. "/cut.vma", bytes:sub(1, cut))
      local rc, _, err = H.vma("extract", "--salvage", dir .. "/cut.vma", dir .. "/x")
      assert.are.equal(1, rc)
      assert.matches("^vma extract: archive is truncated: the header ends after " .. cut, err)
      assert.is_false(H.exists(dir .. "/x"))
    end
  end)

  it(".vma.gz cut at hidden points: the same, for what the gzip stream holds", function()
    local bytes, layout, held, imgs, sizes = salvage_archive()
    H.write(dir .. "/full.vma", bytes)
    assert(os.execute("gzip -9 -c " .. H.q(dir .. "/full.vma") .. " > " .. H.q(dir .. "/full.vma.gz")))
    local gz = H.read(dir .. "/full.vma.gz")
    local x, tried = 777, 0
    while tried < 8 do
      x = (x * 1103515245 + 12345) & 0x7fffffff
      local cut = 200 + x % (#gz - 200)
      H.write(dir .. "/cut.vma.gz", gz:sub(1, cut))
      -- what a gzip reader gets out of the cut stream
      local _, plain = H.sh("gzip -dc " .. H.q(dir .. "/cut.vma.gz") .. " 2>/dev/null")
      local prefix = #plain
      local near = false
      for _, e in ipairs(layout.extents) do
        if math.abs(e.offset + e.size - prefix) < 64 then near = true end
      end
      if prefix > layout.header_size and not near then -- a clear case
        tried = tried + 1
        assert.is_true(plain == bytes:sub(1, prefix))
        local _, err = check_cut(dir .. "/cut.vma.gz", prefix, layout, held, imgs, sizes,
          "gz cut at " .. cut .. " (" .. prefix .. " bytes)")
        assert.matches("salvage: at byte %d+: .*truncated", err)
      end
    end
  end)

  it("a corrupted extent header in the middle is skipped, the extents after it restored", function()
    local bytes, layout, held, imgs, sizes = salvage_archive()
    for _, k in ipairs { 4, 7 } do
      local e = layout.extents[k]
      -- a flipped byte in the blockinfo: the header's MD5 no longer matches
      local pos = e.offset + 100
      local bad = bytes:sub(1, pos) .. string.char(bytes:byte(pos + 1) ~ 0x5a) .. bytes:sub(pos + 2)
      H.write(dir .. "/bad.vma", bad)
      local doc, err = check_cut(dir .. "/bad.vma", #bytes, layout, held, imgs, sizes,
        "bad extent " .. k, { [k] = true })
      assert.is_true(doc.salvaged)
      assert.matches("salvage: at byte " .. e.offset .. ": extent at offset " .. e.offset
        .. ": checksum mismatch; skipped " .. e.size .. " bytes to the next extent\n", err)
    end
    -- a header overwritten with garbage (no magic at all)
    local e = layout.extents[5]
    local bad = bytes:sub(1, e.offset) .. G.bytes(512, 99) .. bytes:sub(e.offset + 513)
    H.write(dir .. "/bad.vma", bad)
    local _, err = check_cut(dir .. "/bad.vma", #bytes, layout, held, imgs, sizes, "garbage header",
      { [5] = true })
    assert.matches("not an extent header %(wrong magic%); skipped " .. e.size, err)
  end)
end)

-- ---- item 8 ---------------------------------------------------------------------

describe("item 8: terminal hygiene", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  -- run a shell line on a pseudo-terminal (util-linux script); input: what
  -- is typed, after a pause
  local function on_tty(line, input)
    local cmd = "timeout 30 script -qfec " .. H.q(line) .. " /dev/null"
    if not input then return H.sh(cmd) end
    return H.sh("(sleep 1; printf " .. H.q(input) .. "; sleep 1) | " .. cmd)
  end

  it("vma create - IMG with stdout a terminal is refused: the message and nothing else", function()
    local rc, out = on_tty(H.q(H.bin) .. " create - " .. H.q(FIX .. "/a-two-drives/disk0.raw"))
    assert.are.equal(1, rc)
    assert.are.equal("vma create: standard output is a terminal: not writing an archive there "
      .. "(redirect it to a file or a pipe)\r\n", out)
  end)

  it("vma list - with a terminal on stdin says what it waits for; Ctrl-D ends it", function()
    local rc, out = on_tty(H.q(H.bin) .. " list -", "\4")
    assert.are.equal(1, rc)
    assert.are.equal("vma list: reading an archive from standard input, which is a terminal: pipe one in "
      .. "(zstd -dc A.vma.zst | vma list -), or press Ctrl-D\r\n"
      .. "vma list: not a vma archive: the file is empty\r\n", out)
  end)

  it("the progress bar fits 40 columns: no frame is longer", function()
    H.random_file(dir .. "/img.raw", 6 * 1048576)
    assert.are.equal(0, (H.vma("create", "-q", dir .. "/a.vma", "drive-scsi0=" .. dir .. "/img.raw")))
    H.write(dir .. "/map", "throttling.bps=3000000:0:drive-scsi0=" .. dir .. "/t.raw\ndone\n")
    local rc, out = on_tty("stty cols 40; COLUMNS=40 " .. H.q(H.bin) .. " extract -r " .. H.q(dir .. "/map")
      .. " " .. H.q(dir .. "/a.vma") .. " " .. H.q(dir .. "/x") .. " >/dev/null")
    assert.are.equal(0, rc, out)
    local frames, bars = 0, 0
    for frame in out:gmatch("[^\r\n]+") do
      local text = frame:gsub("\27%[K", "")
      frames = frames + 1
      if text:match("%d+%%") then
        bars = bars + 1
        assert.is_true(#text <= 40, "a frame of " .. #text .. " columns: " .. text)
      end
    end
    assert.is_true(bars >= 2, "no progress bar drawn: " .. out)
    -- the bar is erased before the summary
    assert.matches("\r\27%[Kvma extract: restored 1 disk", out)
  end)

  it("without a terminal, progress lines carry the rate and an ETA", function()
    H.random_file(dir .. "/img.raw", 6 * 1048576)
    assert.are.equal(0, (H.vma("create", "-q", dir .. "/a.vma", "drive-scsi0=" .. dir .. "/img.raw")))
    H.write(dir .. "/map", "throttling.bps=3000000:0:drive-scsi0=" .. dir .. "/t.raw\ndone\n")
    local rc, _, err = H.sh("VMA_PROGRESS_INTERVAL=0.2 " .. H.q(H.bin) .. " extract -r " .. H.q(dir .. "/map")
      .. " " .. H.q(dir .. "/a.vma") .. " " .. H.q(dir .. "/x"))
    assert.are.equal(0, rc, err)
    local lines = {}
    for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.is_true(#lines >= 2, err)
    for i = 1, #lines - 1 do
      assert.matches("^ *%d+%%  [%d%.]+ [KMG]?i?B / 6%.0 MiB  [%d%.]+ [KMG]?i?B/s  ETA %d+:%d%d$", lines[i])
    end
    assert.matches("^vma extract: restored 1 disk, 6%.0 MiB in [%d%.]+ s %([%d%.]+ [KMGT]?i?B/s%) into ", lines[#lines])
  end)

  it("create, extract and verify each end with a one-line summary on stderr (none with -q)", function()
    local img = FIX .. "/a-two-drives/disk0.raw"
    local rc, _, err = H.vma("create", dir .. "/a.vma", "scsi0=" .. img)
    assert.are.equal(0, rc)
    assert.matches("^vma create: " .. dir:gsub("%p", "%%%0") .. "/a%.vma: 1 device, 1%.0 MiB in [%d%.]+ s "
      .. "%([%d%.]+ [KMGT]?i?B/s%) %([%d%.]+ KiB zero, not stored%)\n$", err)
    rc, _, err = H.vma("verify", dir .. "/a.vma")
    assert.are.equal(0, rc)
    assert.matches("^vma verify: verified " .. dir:gsub("%p", "%%%0") .. "/a%.vma: every rule holds; "
      .. "[%d%.]+ [KM]?i?B in [%d%.]+ s %([%d%.]+ [KMGT]?i?B/s%) of disks read\n$", err)
    rc, _, err = H.vma("extract", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, rc)
    assert.matches("^vma extract: restored 1 disk, 1%.0 MiB in [%d%.]+ s %([%d%.]+ [KMGT]?i?B/s%) into "
      .. dir:gsub("%p", "%%%0") .. "/x\n$", err)
    for _, args in ipairs { { "create", "-q", dir .. "/b.vma", img }, { "verify", "-q", dir .. "/b.vma" },
                            { "extract", "-q", dir .. "/b.vma", dir .. "/y" } } do
      rc, _, err = H.vma(table.unpack(args))
      assert.are.equal(0, rc)
      assert.are.equal("", err)
    end
  end)
end)

-- ---- item 9 ---------------------------------------------------------------------

describe("item 9: permissions", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  local function vma_umask(umask, ...)
    local words = {}
    for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
    return H.sh("umask " .. umask .. "; " .. H.q(H.bin) .. " " .. table.concat(words, " "))
  end

  for _, umask in ipairs { "000", "022", "077" } do
    it("disks, configs and vmstate.bin are 0600 under umask " .. umask, function()
      local rc, _, err = vma_umask(umask, "extract", FIX .. "/e-vmstate/e-vmstate.vma", dir .. "/x")
      assert.are.equal(0, rc, err)
      for _, f in ipairs { "disk-drive-scsi0.raw", "qemu-server.conf", "vmstate.bin" } do
        assert.are.equal("0600", mode_of(dir .. "/x/" .. f), f)
      end
      -- the folder itself: 0755 less the umask
      local want = string.format("%04o", tonumber("755", 8) & ~tonumber(umask, 8))
      assert.are.equal(want, mode_of(dir .. "/x"))
      -- map targets and dir: targets that vma creates
      assert(os.execute("mkdir " .. H.q(dir .. "/img")))
      rc, _, err = vma_umask(umask, "extract", "--target", "dir:" .. dir .. "/img", A2, dir .. "/y")
      assert.are.equal(0, rc, err)
      assert.are.equal("0600", mode_of(dir .. "/img/vm-100-disk-0.raw"))
      assert.are.equal("0600", mode_of(dir .. "/y/qemu-server.fw"))
      H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/t0.raw\n0:drive-virtio1=" .. dir .. "/t1.raw\n")
      rc, _, err = vma_umask(umask, "extract", "-r", dir .. "/map", A2, dir .. "/z")
      assert.are.equal(0, rc, err)
      assert.are.equal("0600", mode_of(dir .. "/t0.raw"))
      assert.are.equal("0600", mode_of(dir .. "/z/qemu-server.conf"))
    end)
  end

  it("--mode 0640 gives 0640", function()
    local rc, _, err = vma_umask("022", "extract", "--mode", "0640", FIX .. "/e-vmstate/e-vmstate.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    for _, f in ipairs { "disk-drive-scsi0.raw", "qemu-server.conf", "vmstate.bin" } do
      assert.are.equal("0640", mode_of(dir .. "/x/" .. f), f)
    end
  end)

  it("a bad --mode is a usage error", function()
    for _, m in ipairs { "rw", "0999", "12345", "" } do
      local rc, _, err = H.vma("extract", "--mode", m, A2, dir .. "/x")
      assert.are.equal(2, rc)
      assert.matches("^vma extract: bad %-%-mode", err)
      assert.is_false(H.exists(dir .. "/x"))
    end
  end)
end)

-- ---- item 10 ----------------------------------------------------------------------

describe("item 10: docs and messages that agree with the program", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)
  local img = FIX .. "/a-two-drives/disk1.raw"

  it("--compress raw is accepted (an uncompressed archive)", function()
    local rc, _, err = H.vma("create", "--compress", "raw", dir .. "/a.vma", img)
    assert.are.equal(0, rc, err)
    assert.are.equal("VMA\0", H.read(dir .. "/a.vma"):sub(1, 4))
    assert.are.equal(0, (H.vma("verify", dir .. "/a.vma")))
  end)

  it("a bad --compress is a usage error (exit 2), as docs/commands.md says", function()
    local rc, _, err = H.vma("create", "--compress", "bzip2", dir .. "/a.vma", img)
    assert.are.equal(2, rc)
    assert.matches("^vma create: argument for option '%-%-compress' must be one of", err)
    -- the docs say what the program does
    local doc = H.read(H.root .. "/docs/commands.md")
    assert.is_truthy(doc:find("Usage errors (status 2): nothing to archive, an unknown `--compress` name",
      1, true))
    assert.is_nil(doc:find("Failures %(status 1%):[^\n]*\n?[^\n]*an unknown `%-%-compress` name"))
  end)

  it("compression levels out of range for the codec are refused", function()
    for _, case in ipairs { { "gzip", "10", "gzip (1..9)" }, { "gzip", "0", "gzip (1..9)" },
                            { "zstd", "99", "zstd (1..19)" }, { "zstd", "2.5", "zstd (1..19)" } } do
      local rc, _, err = H.vma("create", "--compress", case[1], "--level", case[2], dir .. "/a.vma", img)
      assert.are.equal(2, rc)
      assert.are.equal("vma create: --level " .. case[2] .. " is out of range for " .. case[3]
        .. " (see 'vma help create')\n", err)
    end
    assert.are.same({}, H.ls(dir))
    assert.are.equal(0, (H.vma("create", "-q", "--level", "9", dir .. "/a.vma.gz", img)))
    assert.are.equal(0, (H.vma("create", "-q", "--level", "19", dir .. "/a.vma.zst", img)))
  end)

  it("lzop's work leaves no stray \"Inappropriate ioctl\" line", function()
    for _, args in ipairs { { "create", dir .. "/a.vma.lzo", img }, { "list", dir .. "/a.vma.lzo" },
                            { "verify", dir .. "/a.vma.lzo" }, { "extract", dir .. "/a.vma.lzo", dir .. "/x" } } do
      local rc, _, err = H.vma(table.unpack(args))
      assert.are.equal(0, rc, err)
      assert.is_nil(err:find("ioctl", 1, true), err)
      assert.is_true(select(2, err:gsub("\n", "")) <= 1, err)
    end
  end)

  it("vma help restore-map shows its usage", function()
    local rc, out = H.vma("help", "restore-map")
    assert.are.equal(0, rc)
    assert.matches("^usage: vma restore%-map ARCHIVE %(%-%-target SPEC | %-%-script FILE%.lua%) %[%-f%] %[%-%-json%]\n", out)
    assert.matches("%-%-target", out)
  end)

  it("vma help lists a user command without description, not as \"(cannot be loaded)\"", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/cmds")))
    H.write(dir .. "/cmds/mycmd.lua", "return { run = function() print('hi') return 0 end }\n")
    local rc, out = H.sh("VMA_COMMANDS_PATH=" .. H.q(dir .. "/cmds") .. " " .. H.q(H.bin) .. " help")
    assert.are.equal(0, rc)
    assert.matches("\n  mycmd\n", out)
    assert.is_nil(out:find("cannot be loaded", 1, true))
    rc, out = H.sh("VMA_COMMANDS_PATH=" .. H.q(dir .. "/cmds") .. " " .. H.q(H.bin) .. " mycmd")
    assert.are.equal(0, rc)
    assert.are.equal("hi\n", out)
  end)

  it("extract -n fails when DIR exists (as the real run would)", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/x")))
    local rc, out, err = H.vma("extract", "-n", A2, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.are.equal("vma extract: " .. dir .. "/x already exists\n", err)
  end)

  it("prune --policy FILE --help shows the policy's own options", function()
    H.write(dir .. "/tagged.lua", [[
return {
  description = "keep the tagged backups",
  options = { { "--keep-tag", "keep the backups whose notes hold this tag", argname = "TAG" },
              { name = "--strict", description = "fail on untagged groups", type = "flag" } },
  mark = function() end,
}]])
    local rc, out = H.vma("prune", "--policy", dir .. "/tagged.lua", "--help")
    assert.are.equal(0, rc)
    assert.matches("^Usage: vma prune", out)
    assert.matches("\nOptions of policy tagged: keep the tagged backups:\n"
      .. "  %-%-keep%-tag TAG      keep the backups whose notes hold this tag\n"
      .. "  %-%-strict            fail on untagged groups\n$", out)
    -- and the bundled examples
    rc, out = H.vma("prune", "--help", "--policy", H.root .. "/examples/policy-quarterly.lua")
    assert.are.equal(0, rc)
    assert.matches("%-%-keep%-quarterly N", out)
    rc, out = H.vma("prune", "--help")
    assert.is_nil(out:find("Options of policy", 1, true))
    local err
    rc, out, err = H.vma("prune", "--help", "--policy", "nonexist")
    assert.are.equal(2, rc)
    assert.are.equal("", out)
    assert.matches("^vma prune: unknown policy 'nonexist'", err)
  end)

  it("vma list/verify/extract of a folder name the folder", function()
    for _, cmd in ipairs { "list", "verify", "extract" } do
      local rc, _, err
      if cmd == "extract" then rc, _, err = H.vma(cmd, dir, dir .. "/x") else rc, _, err = H.vma(cmd, dir) end
      assert.are.equal(1, rc)
      assert.are.equal("vma " .. cmd .. ": " .. dir .. " is a folder, not an archive\n", err)
    end
  end)

  it("-r nonexist.map names the path once", function()
    local rc, _, err = H.vma("extract", "-r", dir .. "/nonexist.map", A2, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: unable to open restore map: " .. dir .. "/nonexist.map: "
      .. "No such file or directory\n", err)
    assert.are.equal(1, select(2, err:gsub("nonexist%.map", "")))
    assert.is_false(H.exists(dir .. "/x"))
  end)

  it("two map lines with one path are refused, nothing written", function()
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/t.raw\n0:drive-virtio1=" .. dir .. "/t.raw\ndone\n")
    local rc, _, err = H.vma("extract", "-r", dir .. "/map", A2, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: drive-scsi0 and drive-virtio1 map to the same path " .. dir .. "/t.raw\n", err)
    assert.is_false(H.exists(dir .. "/t.raw"))
    assert.is_false(H.exists(dir .. "/x"))
  end)

  it("a copied binary outside its prefix prints a short hint, not Lua's search path", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/bin") .. " && cp " .. H.q(H.bin) .. " " .. H.q(dir .. "/bin/vma")))
    -- decided by the machine, before the command runs: an installed vma in
    -- /usr/local gives the copy its scripts
    if H.exists("/usr/local/share/lua/5.4/vma/cli.lua") then
      pending("vma is installed in /usr/local here: the copy finds its scripts") return
    end
    local rc, out, err = H.sh("cd " .. H.q(dir) .. " && env -u VMA_LUA_DIR -u LUA_PATH -u LUA_PATH_5_4 " .. H.q(dir .. "/bin/vma")
      .. " list " .. H.q(A2))
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    local nlines = select(2, err:gsub("\n", ""))
    assert.is_nil(err:find("no file '", 1, true), err)
    assert.is_true(nlines <= 3, err)
    assert.matches("^vma: ", err)
    assert.is_nil(err:find("stack traceback", 1, true))
  end)

  it("the messages of a full disk name the file written (create too)", function()
    local mnt = dir .. "/small"
    assert(os.execute("mkdir " .. H.q(mnt)))
    if H.sh("mount -t tmpfs -o size=1m tmpfs " .. H.q(mnt)) ~= 0 then
      pending("cannot mount a tmpfs here (not root?)") return
    end
    H.random_file(dir .. "/img.raw", 3 * 1048576)
    local ok, perr = pcall(function()
      assert.are.equal(0, (H.vma("create", "-q", dir .. "/a.vma", "drive-scsi0=" .. dir .. "/img.raw")))
      local rc, _, err = H.vma("extract", dir .. "/a.vma", mnt .. "/y")
      assert.are.equal(1, rc)
      assert.matches("^vma extract: " .. mnt:gsub("%p", "%%%0") .. "/y/tmp%-disk%-drive%-scsi0%.raw: "
        .. "write failed at offset %d+: No space left on device\n$", err)
      rc, _, err = H.vma("create", mnt .. "/full.vma", dir .. "/img.raw")
      assert.are.equal(1, rc)
      assert.are.same({}, H.ls(mnt))
      assert.is_nil(err:find(dir .. "/img.raw: write failed", 1, true), err)
      assert.is_not_nil(err:find(mnt .. "/full.vma", 1, true), err)
    end)
    os.execute("umount " .. H.q(mnt))
    if not ok then error(perr, 0) end
  end)

  describe("docs/lua-api.md and the module agree", function()
    local api
    before_each(function() api = H.read(H.root .. "/docs/lua-api.md") end)

    it("vma.create with an unknown compression or a malformed uuid", function()
      local ok1, w1, e1, k1 = pcall(vma.create, dir .. "/a.vma", { compress = "bogus" })
      local ok2, w2, e2, k2 = pcall(vma.create, dir .. "/b.vma", { uuid = "xyz" })
      assert.are.same({}, H.ls(dir))
      assert.are.same({ true, nil, "unknown compression 'bogus'", "argument" }, { ok1, w1, e1, k1 })
      assert.are.same({ true, nil, "bad uuid 'xyz'", "argument" }, { ok2, w2, e2, k2 })
      -- and the docs say so
      assert.is_truthy(api:find("Any other name gives `nil, \"unknown compression 'NAME'\", \"argument\"`",
        1, true))
      assert.is_truthy(api:find("A malformed uuid gives `nil, \"bad uuid 'TEXT'\", \"argument\"`", 1, true))
      assert.is_truthy(api:find("An unknown compression name, a level or thread count out of range or a\n"
        .. "malformed uuid in `vma.create` and an unsafe name given to `w:add_config` /\n"
        .. "`w:add_device` are `nil, message, \"argument\"`.", 1, true))
    end)

    it("w:add_config with an unsafe name", function()
      local w = assert(vma.create(dir .. "/a.vma"))
      local ok, err, kind = w:add_config("../evil", "x")
      w:abort()
      assert.is_nil(ok)
      assert.are.equal("unsafe name '../evil': name contains '/'", err)
      assert.are.equal("argument", kind)
      assert.is_truthy(api:find("must be a safe name (see `vma.is_safe_name`; an unsafe one is an\n"
        .. "  `\"argument\"` error)", 1, true))
    end)

    it("r:config of a missing config", function()
      local r = assert(vma.open(A2))
      local data, err, kind = r:config("nope")
      r:close()
      assert.is_nil(data)
      assert.are.equal("unable to find configuration data 'nope'", err)
      assert.are.equal("missing", kind)
      assert.is_nil(api:find("`reader:config` returns `nil, message` (no kind)", 1, true))
      assert.is_not_nil(api:find("\"unable to find configuration data 'NAME'\",\n  \"missing\"", 1, true))
    end)

    it("w:write_device given a folder", function()
      local w = assert(vma.create(dir .. "/a.vma"))
      local id = assert(w:add_device("drive-scsi0", 65536))
      local ok, err, kind = w:write_device(id, dir)
      w:abort()
      assert.is_nil(ok)
      assert.are.same({}, H.ls(dir))
      -- the docs show it for the folder /tmp/ex/d
      local msg, dkind = api:match("`write_device`\nreturns `nil, \"([^\"]+)\", \"(%a+)\"`")
      assert.are.equal("/tmp/ex/d is a folder, not a disk image", msg)
      assert.are.equal(dkind, kind)
      assert.are.equal(dir .. " is a folder, not a disk image", err)
    end)

    it("vma.os.write_file's mode", function()
      assert.is_true(vma.os.write_file(dir .. "/f", "x"))
      assert.are.equal("0600", mode_of(dir .. "/f"))
      assert.is_truthy(api:find("**`vma.os.write_file(path, data, mode)`** creates a new file with exactly\n"
        .. "  `mode` (default 0600, `tonumber(\"600\", 8)`; the umask does not apply", 1, true))
    end)

    it("what a second signal does: nothing more than the first", function()
      assert.is_truthy(api:find("A second signal changes nothing (an impatient\n  double Ctrl-C", 1, true))
      assert.is_nil(api:find("A second signal of the same kind ends the process", 1, true))
      -- a process that catches signals gets two SIGINTs and SIGTERM, and lives on
      local rc, out, err = H.sh("LUA_CPATH=" .. H.q(H.root .. "/build/?.so;;") .. " lua5.4 -e "
        .. H.q("local vma = require 'vma'; vma.os.catch_signals(); "
          .. "for _, s in ipairs { 'INT', 'INT', 'TERM' } do assert(vma.os.kill(vma.os.getpid(), s)) end; "
          .. "vma.os.sleep(0.1); print(vma.os.interrupted())"))
      assert.are.equal(0, rc, err)
      assert.are.equal("true\n", out)
    end)
  end)

  it("the README's lua5.4 -e one-liner runs", function()
    local readme = H.read(H.root .. "/README.md")
    local line = readme:match("```sh\n(LUA_CPATH=[^\n]*lua5%.4 %-e[^`]-)\n```")
    assert.is_not_nil(line, "no lua5.4 -e example in README.md")
    assert(os.execute("cp " .. H.q(A2) .. " " .. H.q(dir .. "/backup.vma")))
    assert(os.execute("ln -s " .. H.q(H.root .. "/build") .. " " .. H.q(dir .. "/build")))
    local rc, out, err = H.sh("cd " .. H.q(dir) .. " && " .. line)
    assert.are.equal(0, rc, err)
    assert.are.equal("drive-scsi0\t1053184\ndrive-virtio1\t144384\n", out)
  end)

  it("make install installs examples/, docs/ (DOCDIR) and a bash completion", function()
    local rc, _, err = H.sh("make -s -C " .. H.q(H.root) .. " install DESTDIR=" .. H.q(dir) .. " PREFIX=/usr")
    assert.are.equal(0, rc, err)
    local has_examples = H.exists(dir .. "/usr/share/doc/vma/examples/map-by-size.lua")
    local has_docs = H.exists(dir .. "/usr/share/doc/vma/commands.md")
    local _, comp = H.sh("ls " .. H.q(dir .. "/usr/share/bash-completion/completions") .. " 2>/dev/null")
    assert.is_true(has_examples)
    assert.is_true(has_docs)
    assert.matches("vma", comp)
  end)
end)
