-- vma mount / vma umount: an archive's disks, vmstate and configs as files
-- through vma-fuse (FUSE), read with debugfs, cp --sparse, lseek; hostile
-- archives and bad folders end with exit 1 and nothing mounted.
local H = require "helper"
local A = require "accesshelp"

local function python_seek(path)
  -- the first hole, the first data after it, and the hole after that
  local code = [[
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
h = os.lseek(fd, 0, os.SEEK_HOLE)
try:
    d = os.lseek(fd, h, os.SEEK_DATA)
except OSError:
    d = -1
h2 = os.lseek(fd, d, os.SEEK_HOLE) if d >= 0 else -1
try:
    os.lseek(fd, os.fstat(fd).st_size, os.SEEK_DATA); e = 0
except OSError as x:
    e = x.errno
print(h, d, h2, e)
]]
  local rc, out, err = H.sh("python3 -c " .. H.q(code) .. " " .. H.q(path))
  assert(rc == 0, err)
  local h, d, h2, e = out:match("(%-?%d+) (%-?%d+) (%-?%d+) (%d+)")
  return tonumber(h), tonumber(d), tonumber(h2), tonumber(e)
end

describe("vma mount", function()
  local dir, fx, pve, bad, n = nil, nil, nil, nil, 0

  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
    pve = A.proxmox(dir)
    bad = A.hostile(dir)
  end)

  teardown(function()
    A.cleanup(dir)
    H.rm(dir)
  end)

  after_each(function() A.cleanup(dir) end)

  local function newdir()
    n = n + 1
    local m = dir .. "/mnt" .. n
    os.execute("mkdir -p " .. H.q(m))
    return m
  end

  local function mount(archive, ...)
    local m = newdir()
    local rc, out, err = H.vma("mount", archive, m, ...)
    assert(rc == 0, "vma mount failed: " .. err)
    assert.are.equal("", out)
    assert.is_true(A.is_mounted(m))
    return m
  end

  local function umount(m)
    local rc, _, err = H.vma("umount", m)
    assert.are.equal(0, rc, err)
    assert.is_false(A.is_mounted(m))
  end

  it("shows each disk as DIR/<device>.raw and the configs beside them", function()
    if not A.need("fusermount3") then return end
    local m = mount(fx.plain)
    assert.are.same({ "drive-sata0.raw", "drive-scsi0.raw", "drive-virtio1.raw", "qemu-server.conf" },
      H.ls(m))
    assert.are.equal(fx.conf, H.read(m .. "/qemu-server.conf"))
    for _, name in ipairs(fx.names) do
      assert.is_true(A.same(fx.disks[name], m .. "/" .. name .. ".raw"), name)
    end
    -- read-only
    local rc = H.sh("echo x >> " .. H.q(m .. "/qemu-server.conf"))
    assert.are_not.equal(0, rc)
    umount(m)
  end)

  it("debugfs reads the files of the ext4 disk through the mount", function()
    if not A.need("fusermount3", "debugfs") then return end
    local list = { fx.plain }
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
    if fx.zst then list[2] = fx.zst end
    for _, archive in ipairs(list) do
      local m = mount(archive)
      for path, data in pairs(fx.files) do
        local out = dir .. "/debugfs.out"
        A.sh_ok("PATH=$PATH:/sbin:/usr/sbin debugfs -R " .. H.q("dump " .. path .. " " .. out)
          .. " " .. H.q(m .. "/drive-scsi0.raw"))
        assert.is_true(data == H.read(out), archive .. ": " .. path .. " differs")
        os.remove(out)
      end
      local _, host = H.sh("PATH=$PATH:/sbin:/usr/sbin debugfs -R 'cat /etc/hostname' "
        .. H.q(m .. "/drive-scsi0.raw") .. " 2>/dev/null")
      assert.are.equal(fx.files["/etc/hostname"], host)
      umount(m)
    end
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
  end)

  it("cp --sparse=always keeps the holes, du and SEEK_HOLE/SEEK_DATA see them", function()
    if not A.need("fusermount3", "python3") then return end
    local m = mount(fx.plain)
    local f = m .. "/drive-virtio1.raw"
    local _, du = H.sh("du -k " .. H.q(f))
    assert.is_true(tonumber(du:match("^%d+")) < 1024, "st_blocks counts the holes: " .. du)
    local _, adu = H.sh("du -k --apparent-size " .. H.q(f))
    assert.are.equal(256 * 1024, tonumber(adu:match("^%d+")))
    local copy = dir .. "/thin.copy"
    A.sh_ok("cp --sparse=always " .. H.q(f) .. " " .. H.q(copy))
    assert.is_true(A.same(copy, fx.disks["drive-virtio1"]))
    _, du = H.sh("du -k " .. H.q(copy))
    assert.is_true(tonumber(du:match("^%d+")) < 1024, "the copy is not sparse: " .. du)
    os.remove(copy)
    -- thin: data in [0, 4096), a hole, data at 5 MiB + 12345 (from its 4 KiB block)
    local h, d, h2, e = python_seek(f)
    assert.are.equal(4096, h)
    assert.are.equal(5 * A.MiB + 12288, d)
    assert.is_true(h2 > d and h2 < 6 * A.MiB, tostring(h2))
    assert.are.equal(6, e) -- ENXIO at the end
    -- half zero: the second cluster is a hole
    h, d = python_seek(m .. "/drive-sata0.raw")
    assert.are.equal(65536, h)
    assert.are.equal(131072, d)
    A.sh_ok("cp --sparse=always " .. H.q(m .. "/drive-sata0.raw") .. " " .. H.q(copy))
    assert.is_true(A.same(copy, fx.disks["drive-sata0"]))
    umount(m)
  end)

  it("parallel reads of a seekable zst archive through the mount equal the image", function()
    if not A.need("fusermount3", "zstd") then return end
    local m = mount(fx.zst)
    local f = m .. "/drive-scsi0.raw"
    -- 12 readers at once, each over its own range (several 1 MiB frames each)
    local cmds = {}
    for i = 0, 11 do
      local skip = (i * 5) % 60
      cmds[#cmds + 1] = string.format("dd if=%s of=%s bs=64K skip=%d count=40 2>/dev/null &",
        H.q(f), H.q(dir .. "/par" .. i), skip * 16)
    end
    A.sh_ok(table.concat(cmds, " ") .. " wait")
    for i = 0, 11 do
      local skip = (i * 5) % 60
      local got = H.read(dir .. "/par" .. i)
      local fh = assert(io.open(fx.disks["drive-scsi0"], "rb"))
      fh:seek("set", skip * A.MiB)
      local want = fh:read(40 * 65536)
      fh:close()
      assert.is_true(got == want, "reader " .. i)
      os.remove(dir .. "/par" .. i)
    end
    umount(m)
  end)

  it("Proxmox archives: disks, vmstate.bin and configs equal the inputs", function()
    if not A.need("fusermount3") then return end
    for c, t in pairs(pve) do
      local m = mount(t.archive)
      for name, raw in pairs(t.disks) do
        assert.is_true(A.same(raw, m .. "/" .. name .. ".raw"), c .. " " .. name)
      end
      if t.vmstate then
        assert.is_true(A.same(t.vmstate, m .. "/vmstate.bin"), c .. " vmstate")
      end
      assert.are.equal(H.read(A.PVE .. "/" .. c .. "/" .. (c == "a-two-drives" and "cfg/" or "")
        .. "qemu-server.conf"), H.read(m .. "/qemu-server.conf"))
      umount(m)
    end
  end)

  it("-f stays in the foreground until SIGTERM, then unmounts and exits 0", function()
    if not A.need("fusermount3") then return end
    local m = newdir()
    local b = A.start(dir, "mount", "-f", fx.plain, m)
    for _ = 1, 500 do
      if A.is_mounted(m) then break end
      require("vma").os.sleep(0.01)
    end
    assert.is_true(A.is_mounted(m), H.read(b.err))
    assert.is_true(A.same(fx.disks["drive-sata0"], m .. "/drive-sata0.raw"))
    assert.is_nil(A.status(b))
    assert.are.equal(0, A.stop(b))
    assert.is_false(A.is_mounted(m))
  end)

  it("reading a cluster that an incomplete archive lacks fails with EIO", function()
    if not A.need("fusermount3") then return end
    local p, img = A.incomplete(dir)
    local m = mount(p)
    local f = m .. "/drive-scsi0.raw"
    local rc, _, err = H.sh("cat " .. H.q(f) .. " >/dev/null")
    assert.are_not.equal(0, rc)
    assert.matches("Input/output error", err)
    -- the clusters that are there read fine
    local _, out = H.sh("dd if=" .. H.q(f) .. " bs=65536 count=1 skip=2 2>/dev/null")
    assert.is_true(out == img:sub(131073, 196608))
    umount(m)
  end)

  it("bad archives and bad folders: exit 1, a message, nothing mounted", function()
    if not A.need("fusermount3") then return end
    local cases = {}
    for name, h in pairs(bad) do cases[#cases + 1] = { name, h.path, newdir(), h.expect } end
    local full = newdir()
    H.write(full .. "/x", "x")
    cases[#cases + 1] = { "not empty", fx.plain, full, "not empty" }
    cases[#cases + 1] = { "no folder", fx.plain, dir .. "/absent", "does not exist" }
    cases[#cases + 1] = { "a file", fx.plain, dir .. "/a.vma", "not a folder" }
    cases[#cases + 1] = { "no archive", dir .. "/none.vma", newdir(), "No such file" }
    for _, c in ipairs(cases) do
      local rc, out, err = H.vma("mount", c[2], c[3])
      assert.are.equal(1, rc, c[1] .. ": " .. err)
      assert.are.equal("", out)
      assert.is_truthy(err:match("^vma mount: [^\n]+\n$"), c[1] .. ": " .. err)
      assert.is_truthy(err:find(c[4], 1, true), c[1] .. ": expected '" .. c[4] .. "' in " .. err)
      assert.are.same({}, A.mounts_under(dir), c[1])
    end
    assert.are.equal("x", H.read(full .. "/x"))
  end)

  it("vma-fuse itself refuses a hostile archive with exit 1 before mounting", function()
    if not A.need("fusermount3") then return end
    for name, h in pairs(bad) do
      local m = newdir()
      local rc, _, err = H.sh(H.q(A.root .. "/build/vma-fuse") .. " " .. H.q(h.path) .. " " .. H.q(m))
      assert.are.equal(1, rc, name .. ": " .. err)
      assert.is_truthy(err:match("^vma%-fuse: "), err)
      assert.are.same({}, A.mounts_under(dir), name)
    end
  end)

  it("vma-fuse reads its command line with fuse_opt_parse: --label=NAME, -o lists, usage errors", function()
    local fuse = H.q(A.root .. "/build/vma-fuse")
    local full = newdir()
    H.write(full .. "/x", "")
    -- --label=NAME and --expect=MD5 (the = forms), a -o list: the run gets as
    -- far as the folder, and names itself as told
    local rc, _, err = H.sh(fuse .. " --label=named --expect=00 -o ro,allow_other " .. H.q(fx.plain)
      .. " " .. H.q(full))
    assert.are.equal(1, rc, err)
    assert.are.equal("named: " .. full .. " is not empty\n", err)
    rc, _, err = H.sh(fuse .. " --label named --bogus " .. H.q(fx.plain) .. " " .. H.q(full))
    assert.are.equal(2, rc)
    assert.matches("^named: unknown option %-%-bogus\nusage: vma%-fuse ", err)
    rc, _, err = H.sh(fuse .. " " .. H.q(fx.plain))
    assert.are.equal(2, rc)
    assert.matches("^usage: vma%-fuse ", err)
    rc, _, err = H.sh(fuse .. " --help")
    assert.are.equal(0, rc)
    assert.matches("^usage: vma%-fuse .*%-%-no%-cache%] ARCHIVE DIR\n$", err)
  end)

  it("umount refuses what vma did not mount", function()
    local rc, _, err = H.vma("umount", dir)
    assert.are.equal(1, rc)
    assert.matches("^vma umount: .* is not mounted", err)
    rc, _, err = H.vma("umount", dir .. "/absent")
    assert.are.equal(1, rc)
    assert.matches("does not exist", err)
    rc = H.vma("umount")
    assert.are.equal(2, rc)
  end)
end)
