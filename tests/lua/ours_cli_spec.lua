-- Files that are not ours, and nothing under a final name before it is
-- complete: extract makes every new file under a temporary name and renames
-- it once the restore is complete (configs too, except for qmrestore's FIFO
-- protocol), removes only what it made, never writes through a symbolic link
-- of a target folder; mounts take the archive's owner and permissions,
-- convert writes 0600. And the small defects a new user meets.
local H = require "helper"
local A = require "accesshelp"
local vma = require "vma"

local FIX = H.fixtures .. "/proxmox"
local A2 = FIX .. "/a-two-drives/a-two-drives.vma"
local DISK0 = H.padded(H.read(FIX .. "/a-two-drives/disk0.raw"), 1053184)
local DISK1 = H.padded(H.read(FIX .. "/a-two-drives/disk1.raw"), 144384)
local MiB = 1024 * 1024

local function sleep(s) os.execute("sleep " .. s) end

local function wait_for(pred, secs)
  for _ = 1, math.floor((secs or 10) * 50) do
    if pred() then return true end
    sleep(0.02)
  end
  return pred() and true or false
end

--- Start `vma WORDS...` in the background: its pid (vma itself) and log.
local function start(dir, ...)
  local words = { "exec", H.q(H.bin) }
  for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
  local log = dir .. "/bg.log"
  local p = io.popen("sh -c " .. H.q(table.concat(words, " ")) .. " >" .. H.q(log) .. " 2>&1 & echo $!")
  local pid = tonumber(p:read("l"))
  p:close()
  return pid, log
end

local function alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end

local function kill(pid, sig)
  os.execute("kill -" .. sig .. " " .. pid .. " 2>/dev/null")
  assert.is_true(wait_for(function() return not alive(pid) end, 10), "pid " .. pid .. " did not end")
end

local function tmp_of(dir)
  for _, f in ipairs(H.ls(dir) or {}) do
    if f:match("^%.tmp%-vma%-") then return dir .. "/" .. f end
  end
  return nil
end

local function mode_of(path)
  local st = vma.os.stat(path)
  return st and string.format("%04o", st.mode) or nil
end

--- An archive written with the module: configs { {name, data} }, devices
-- { {name, image path} } in that order.
local function make_archive(path, configs, devs)
  local w = assert(vma.create(path))
  for _, c in ipairs(configs) do assert(w:add_config(c[1], c[2])) end
  local ids = {}
  for i, d in ipairs(devs) do ids[i] = assert(w:add_device(d[1], assert(vma.os.stat(d[2])).size)) end
  for i, d in ipairs(devs) do assert(w:write_device(ids[i], d[2])) end
  assert(w:close())
end

describe("extract: nothing under its final name before the restore is complete", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    H.random_file(dir .. "/img.raw", 8 * MiB)
    make_archive(dir .. "/a.vma", { { "qemu-server.conf", "memory: 512\n" } },
      { { "drive-scsi0", dir .. "/img.raw" } })
  end)
  after_each(function() H.rm(dir) end)

  it("-r MAP (a file) with a new target, killed with SIGKILL: no target, no config under its name", function()
    H.write(dir .. "/map", "throttling.bps=1000000:0:drive-scsi0=" .. dir .. "/target.raw\ndone\n")
    local pid, log = start(dir, "extract", "-r", dir .. "/map", dir .. "/a.vma", dir .. "/x")
    assert.is_true(wait_for(function()
      local t = tmp_of(dir)
      local st = t and vma.os.stat(t)
      return st ~= nil and st.size > 0
    end, 10), "the restore did not start: " .. tostring(H.read(log)))
    sleep(0.5)
    assert.is_true(alive(pid))
    kill(pid, "KILL")
    assert.is_false(H.exists(dir .. "/target.raw"))
    assert.is_false(H.exists(dir .. "/x/qemu-server.conf"))
    assert.are.same({ "tmp-cfg-qemu-server.conf" }, H.ls(dir .. "/x"))
  end)

  it("into DIR, killed with SIGKILL: only temporary names in DIR", function()
    -- from a pipe that stalls after 3 MB: the restore stays in the middle
    os.execute("mkfifo " .. H.q(dir .. "/in"))
    local feeder = io.popen("sh -c " .. H.q("exec > " .. H.q(dir .. "/in") .. "; head -c 3000000 "
      .. H.q(dir .. "/a.vma") .. "; exec sleep 30") .. " >/dev/null 2>&1 & echo $!")
    local fpid = tonumber(feeder:read("l"))
    feeder:close()
    local pid, log = start(dir, "extract", dir .. "/in", dir .. "/x")
    assert.is_true(wait_for(function() return H.exists(dir .. "/x/tmp-disk-drive-scsi0.raw") end, 10),
      tostring(H.read(log)))
    sleep(0.3)
    kill(pid, "KILL")
    kill(fpid, "TERM")
    assert.are.same({ "tmp-cfg-qemu-server.conf", "tmp-disk-drive-scsi0.raw" }, H.ls(dir .. "/x"))
  end)

  it("a new target's final name taken during the restore: that file is left alone, exit 1", function()
    H.write(dir .. "/map", "throttling.bps=4000000:0:drive-scsi0=" .. dir .. "/target.raw\ndone\n")
    local pid, log = start(dir, "extract", "-r", dir .. "/map", dir .. "/a.vma", dir .. "/x")
    assert.is_true(wait_for(function() return tmp_of(dir) ~= nil end, 10), tostring(H.read(log)))
    H.write(dir .. "/target.raw", "theirs")
    assert.is_true(wait_for(function() return not alive(pid) end, 30))
    assert.matches("vma extract: .*target%.raw.*File exists\n$", H.read(log))
    assert.are.equal("theirs", H.read(dir .. "/target.raw"))
    assert.is_nil(tmp_of(dir))
    assert.is_false(H.exists(dir .. "/x"))
  end)

  it("the new target and the configs get their names (and --mode) at the end", function()
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/target.raw\ndone\n")
    local rc, _, err = H.vma("extract", "--mode", "0640", "-r", dir .. "/map", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(A.same(dir .. "/target.raw", dir .. "/img.raw"))
    assert.are.equal("0640", mode_of(dir .. "/target.raw"))
    assert.are.same({ "qemu-server.conf" }, H.ls(dir .. "/x"))
    assert.is_nil(tmp_of(dir))
  end)
end)

describe("extract: only what it made is removed, and no symbolic link is written through", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    assert(os.execute("mkdir " .. H.q(dir .. "/tgt") .. " " .. H.q(dir .. "/elsewhere")))
    H.write(dir .. "/elsewhere/victim.img", string.rep("V", #DISK0))
  end)
  after_each(function() H.rm(dir) end)

  it("a dangling symbolic link in the target folder is refused and stays", function()
    assert(os.execute("ln -s /nowhere " .. H.q(dir .. "/tgt/vm-100-disk-0.raw")))
    local rc, _, err = H.vma("extract", "--target", "dir:" .. dir .. "/tgt", A2, dir .. "/ex")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: " .. dir .. "/tgt/vm-100-disk-0.raw already exists (not writing "
      .. "over it; --force writes over it, zeros included)\n", err)
    assert.are.equal("link", vma.os.lstat(dir .. "/tgt/vm-100-disk-0.raw").type)
    assert.are.same({ "vm-100-disk-0.raw" }, H.ls(dir .. "/tgt"))
    assert.is_false(H.exists(dir .. "/ex"))
    -- a restore map line naming it
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/tgt/vm-100-disk-0.raw\nskip=drive-virtio1\ndone\n")
    rc, _, err = H.vma("extract", "-r", dir .. "/map", A2, dir .. "/ex")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: target " .. dir .. "/tgt/vm-100-disk-0.raw is a symbolic link to "
      .. "nothing\n", err)
    assert.are.equal("link", vma.os.lstat(dir .. "/tgt/vm-100-disk-0.raw").type)
  end)

  it("--force never follows a symbolic link out of the target folder", function()
    assert(os.execute("ln -s " .. H.q(dir .. "/elsewhere/victim.img") .. " " .. H.q(dir .. "/tgt/vm-100-disk-0.raw")))
    local rc, _, err = H.vma("extract", "--force", "--target", "dir:" .. dir .. "/tgt", A2, dir .. "/ex")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: target " .. dir .. "/tgt/vm-100-disk-0.raw is a symbolic link: "
      .. "not writing through it\n", err)
    assert.are.equal(string.rep("V", #DISK0), H.read(dir .. "/elsewhere/victim.img"))
    assert.are.equal("link", vma.os.lstat(dir .. "/tgt/vm-100-disk-0.raw").type)
    assert.are.same({ "vm-100-disk-0.raw" }, H.ls(dir .. "/tgt"))
    assert.is_false(H.exists(dir .. "/ex"))
  end)

  it("a target opened with nofollow (r:extract) refuses a link made after the check", function()
    assert(os.execute("ln -s " .. H.q(dir .. "/elsewhere/victim.img") .. " " .. H.q(dir .. "/tgt/t.raw")))
    local r = assert(vma.open(A2))
    local st, err, kind = r:extract { targets = { ["drive-scsi0"] = { path = dir .. "/tgt/t.raw",
      write_zero = true, nofollow = true } } }
    r:close()
    assert.are.same({ nil, "target " .. dir .. "/tgt/t.raw is a symbolic link: not writing through it",
      "argument" }, { st, err, kind })
    assert.are.equal(string.rep("V", #DISK0), H.read(dir .. "/elsewhere/victim.img"))
  end)

  it("--force over a real file in the target folder still writes it, zeros included", function()
    H.write(dir .. "/tgt/vm-100-disk-0.raw", string.rep("\255", #DISK0))
    local rc, _, err = H.vma("extract", "--force", "--target", "dir:" .. dir .. "/tgt", A2, dir .. "/ex")
    assert.are.equal(0, rc, err)
    assert.is_true(H.read(dir .. "/tgt/vm-100-disk-0.raw") == DISK0)
    assert.is_true(H.read(dir .. "/tgt/vm-100-disk-1.raw") == DISK1)
    assert.are.same({ "vm-100-disk-0.raw", "vm-100-disk-1.raw" }, H.ls(dir .. "/tgt"))
  end)
end)

describe("extract: names up to the format's 255 bytes", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("a config name of 250 bytes and a device name of 245 bytes", function()
    local cname, dname = string.rep("c", 250), string.rep("d", 245)
    H.random_file(dir .. "/img.raw", 3 * 65536)
    make_archive(dir .. "/a.vma", { { cname, "config\n" } }, { { dname, dir .. "/img.raw" } })
    local rc, _, err = H.vma("extract", "-q", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.are.same({ cname, "disk-" .. dname .. ".raw" }, H.ls(dir .. "/x"))
    assert.are.equal("config\n", H.read(dir .. "/x/" .. cname))
    assert.is_true(A.same(dir .. "/x/disk-" .. dname .. ".raw", dir .. "/img.raw"))
  end)
end)

describe("extract -r: a 0: line onto a file that holds data", function()
  local dir
  before_each(function()
    dir = H.tmpdir()
    -- a disk with zero blocks and zero clusters among its data
    local parts = {}
    for c = 0, 31 do
      if c % 4 == 1 then
        parts[#parts + 1] = string.rep("\0", 65536)
      else
        for b = 0, 15 do
          parts[#parts + 1] = (b % 5 == 2) and string.rep("\0", 4096) or H.bytes(4096, c * 16 + b + 1)
        end
      end
    end
    H.write(dir .. "/img.raw", table.concat(parts))
    make_archive(dir .. "/a.vma", {}, { { "drive-scsi0", dir .. "/img.raw" } })
    H.write(dir .. "/map", "format=raw:0:drive-scsi0=" .. dir .. "/t.raw\ndone\n")
  end)
  after_each(function() H.rm(dir) end)

  local function allocated(path)
    local _, out = H.sh("stat -c %b " .. H.q(path))
    return tonumber(out)
  end

  it("a preallocated file of written zeros restores silently, exactly, and keeps its size", function()
    local size = 32 * 65536 + MiB -- a volume manager rounds up: 1 MiB more
    assert(os.execute("head -c " .. size .. " /dev/zero > " .. H.q(dir .. "/t.raw")))
    local rc, out, err = H.vma("extract", "-q", "-r", dir .. "/map", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.are.equal("", err)
    assert.matches("^DEV: dev_id=1 size: 2097152 devname: drive%-scsi0\nCTIME: [^\n]+\n$", out)
    assert.are.equal(size, vma.os.stat(dir .. "/t.raw").size)
    local t = H.read(dir .. "/t.raw")
    assert.is_true(t:sub(1, 32 * 65536) == H.read(dir .. "/img.raw"))
    assert.is_true(t:sub(32 * 65536 + 1) == string.rep("\0", MiB))
  end)

  it("a file of old data gets exactly the disk: the old data in the zero blocks is gone", function()
    H.random_file(dir .. "/t.raw", 32 * 65536)
    local before = allocated(dir .. "/t.raw")
    local rc, _, err = H.vma("extract", "-q", "-r", dir .. "/map", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(A.same(dir .. "/t.raw", dir .. "/img.raw"))
    -- the zero parts were punched out, not written
    assert.is_true(allocated(dir .. "/t.raw") < before)
  end)

  it("a file that is all holes is untouched where the archive has zeros", function()
    assert(os.execute("truncate -s " .. 32 * 65536 .. " " .. H.q(dir .. "/t.raw")))
    local rc, _, err = H.vma("extract", "-q", "-r", dir .. "/map", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(A.same(dir .. "/t.raw", dir .. "/img.raw"))
  end)

  it("the built-in targets still refuse an existing file without --force", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/tgt")))
    assert(os.execute("head -c " .. 32 * 65536 .. " /dev/zero > " .. H.q(dir .. "/tgt/vm-0-disk-0.raw")))
    local rc, _, err = H.vma("extract", "--target", "dir:" .. dir .. "/tgt", dir .. "/a.vma", dir .. "/x")
    assert.are.equal(1, rc)
    assert.matches("vm%-0%-disk%-0%.raw already exists", err)
  end)
end)

describe("mounts and conversions take the archive's permissions", function()
  local dir, fx
  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
  end)
  teardown(function()
    A.cleanup(dir)
    H.rm(dir)
  end)
  after_each(function() A.cleanup(dir) end)

  local function mount(archive, mnt, ...)
    os.execute("mkdir -p " .. H.q(mnt))
    local rc, _, err = H.vma("mount", archive, mnt, ...)
    assert.are.equal(0, rc, err)
  end

  it("vma mount: the archive's owner and read bits (the folder gains x)", function()
    if not A.need("fusermount3") then return end
    for _, case in ipairs { { "0600", "0400", "0500" }, { "0640", "0440", "0550" },
                            { "0644", "0444", "0555" } } do
      local arc = dir .. "/perm-" .. case[1] .. ".vma"
      assert(os.execute("cp " .. H.q(fx.plain) .. " " .. H.q(arc) .. " && chmod " .. case[1] .. " "
        .. H.q(arc) .. " && chown 65534:65534 " .. H.q(arc)))
      local mnt = dir .. "/m" .. case[1]
      mount(arc, mnt)
      local _, out = H.sh("stat -c '%a %u %g' " .. H.q(mnt) .. " " .. H.q(mnt .. "/drive-scsi0.raw")
        .. " " .. H.q(mnt .. "/qemu-server.conf"))
      assert.are.equal(string.format("%d 65534 65534\n%d 65534 65534\n%d 65534 65534\n",
        tonumber(case[3]), tonumber(case[2]), tonumber(case[2])), out, case[1])
      assert.are.equal(0, (H.vma("umount", mnt)))
      os.remove(arc)
    end
  end)

  it("with allow_other, a user who cannot read the archive cannot read its mount", function()
    if not A.need("fusermount3", "setpriv") then return end
    local mnt = dir .. "/ao"
    local arc = dir .. "/private.vma"
    assert(os.execute("cp " .. H.q(fx.plain) .. " " .. H.q(arc) .. " && chmod 0600 " .. H.q(arc)))
    assert(os.execute("chmod 0755 " .. H.q(dir)))
    mount(arc, mnt, "-o", "allow_other")
    local nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups "
    local rc, _, err = H.sh(nobody .. "head -c 16 " .. H.q(mnt .. "/qemu-server.conf"))
    assert.are_not.equal(0, rc)
    assert.matches("Permission denied", err)
    assert.are.equal(0, (H.vma("umount", mnt)))
    assert(os.execute("chmod 0644 " .. H.q(arc)))
    mount(arc, mnt, "-o", "allow_other")
    local out
    rc, out, err = H.sh(nobody .. "cat " .. H.q(mnt .. "/qemu-server.conf"))
    assert.are.equal(0, rc, err)
    assert.are.equal(fx.conf, out)
    assert.are.equal(0, (H.vma("umount", mnt)))
  end)

  it("vma mount lists a config named like a disk file once", function()
    if not A.need("fusermount3") then return end
    H.random_file(dir .. "/small.raw", 65536)
    local arc = dir .. "/dup.vma"
    make_archive(arc, { { "drive-scsi0.raw", "a config\n" }, { "vmstate.bin", "another\n" },
                        { "qemu-server.conf", "memory: 1\n" } },
      { { "drive-scsi0", dir .. "/small.raw" }, { "vmstate", dir .. "/small.raw" } })
    local mnt = dir .. "/dup"
    mount(arc, mnt)
    local _, out = H.sh("ls -A " .. H.q(mnt))
    assert.are.equal("drive-scsi0.raw\nqemu-server.conf\nvmstate.bin\n", out)
    assert.is_true(A.same(mnt .. "/drive-scsi0.raw", dir .. "/small.raw"))
    assert.are.equal(0, (H.vma("umount", mnt)))
  end)

  it("vma convert writes mode 0600 whatever the umask", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local out = dir .. "/c.qcow2"
    local rc, _, err = H.sh("umask 000 && " .. H.q(H.bin) .. " convert -q --disk sata0 " .. H.q(fx.plain)
      .. " " .. H.q(out))
    assert.are.equal(0, rc, err)
    assert.are.equal("0600", mode_of(out))
    os.remove(out)
  end)
end)

describe("what a new user meets", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    A.cleanup(dir)
    H.rm(dir)
  end)

  it("extract -r DIR (a folder as the map): one line, nothing made", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/maps")))
    local rc, out, err = H.vma("extract", "-r", dir .. "/maps", A2, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.are.equal("vma extract: restore map " .. dir .. "/maps is a folder, not a file\n", err)
    assert.are.same({ "maps" }, H.ls(dir))
  end)

  it("vma extract DIR ARCHIVE (swapped) says so", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/out") .. " && cp " .. H.q(A2) .. " " .. H.q(dir .. "/a.vma")))
    local rc, _, err = H.vma("extract", dir .. "/out", dir .. "/a.vma")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: " .. dir .. "/out is a folder and " .. dir .. "/a.vma is not: the "
      .. "archive comes first (vma extract ARCHIVE DIR)\n", err)
    assert.are.same({}, H.ls(dir .. "/out"))
  end)

  it("extract -n fails where the real run would: no folder for DIR, none for a new target", function()
    local rc, out, err = H.vma("extract", "-n", A2, dir .. "/no/x")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.are.equal("vma extract: cannot create " .. dir .. "/no/x: no folder " .. dir .. "/no\n", err)
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/gone/t.raw\nskip=drive-virtio1\ndone\n")
    rc, out, err = H.vma("extract", "-n", "-r", dir .. "/map", A2, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: no folder " .. dir .. "/gone for the target " .. dir .. "/gone/t.raw\n", err)
    assert.is_false(H.exists(dir .. "/x"))
  end)

  it("recompress -f IN DIR fails before the work", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/out")))
    local rc, out, err = H.vma("recompress", "-f", A2, dir .. "/out")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.are.equal("vma recompress: " .. dir .. "/out is a folder, not an archive (not replacing it)\n", err)
    assert.are.same({ "out" }, H.ls(dir))
  end)

  it("create -c DIR and prune --policy DIR name the real problem", function()
    assert(os.execute("mkdir " .. H.q(dir .. "/cfg")))
    local rc, _, err = H.vma("create", "-c", dir .. "/cfg", dir .. "/n.vma")
    assert.are.equal(1, rc)
    assert.are.equal("vma create: config " .. dir .. "/cfg is a folder, not a file (-c takes one file: "
      .. "-c DIR/qemu-server.conf)\n", err)
    assert.is_false(H.exists(dir .. "/n.vma"))
    rc, _, err = H.vma("prune", "--policy", dir .. "/cfg", dir)
    assert.are.equal(2, rc)
    assert.are.equal("vma prune: policy '" .. dir .. "/cfg' is a folder, not a Lua file (give its file: "
      .. dir .. "/cfg/NAME.lua)\n", err)
    rc, _, err = H.sh("cd " .. H.q(dir) .. " && " .. H.q(H.bin) .. " prune --policy cfg .")
    assert.are.equal(2, rc)
    assert.are.equal("vma prune: policy 'cfg' is neither a policy name nor a Lua file: cfg is a folder "
      .. "(give its file: cfg/NAME.lua)\n", err)
  end)

  it("mount onto a vma mount says so", function()
    if not A.need("fusermount3") then return end
    local mnt = dir .. "/m"
    assert(os.execute("mkdir " .. H.q(mnt)))
    assert.are.equal(0, (H.vma("mount", A2, mnt)))
    local rc, _, err = H.vma("mount", A2, mnt)
    assert.are.equal(1, rc)
    assert.are.equal("vma mount: " .. mnt .. " is a vma mount already ('vma umount " .. mnt
      .. "' ends it)\n", err)
    assert.are.equal(0, (H.vma("umount", mnt)))
  end)
end)
