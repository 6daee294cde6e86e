-- The guest's layout: which file system is '/', Windows paths (C:/, C:\),
-- several root candidates, --root, a disk without partition table, the
-- guest's tree mounted with FUSE, and an interrupted copy.
local H = require "helper"
local G = require "guestimg"
local json = require "dkjson"

local function vma(...) return H.vma(...) end

local MiB = 1 << 20

describe("root choice and Windows paths", function()
  local dir, A
  lazy_setup(function()
    dir = H.tmpdir()
    G.tree(dir .. "/data", { ["notes.txt"] = "data disk\n" })
    G.tree(dir .. "/linux", { ["etc/os-release"] = 'ID=alpine\nPRETTY_NAME="Alpine Linux v3.19"\n',
      ["etc/hostname"] = "alp\n" })
    G.tree(dir .. "/win", { ["Windows/System32/drivers/etc/hosts"] = "127.0.0.1 localhost\r\n",
      ["Users/Bob/Documents/Report.txt"] = "quarterly\n" })
    G.ext4(dir .. "/data.img", 8, dir .. "/data")
    G.ext4(dir .. "/linux.img", 8, dir .. "/linux")
    G.vfat(dir .. "/win.img", 16, dir .. "/win", { label = "WINSYS" })
    G.disk(dir .. "/disk.raw", 40, "gpt", { "start=2048, size=16384, type=L",
      "start=18432, size=16384, type=L", "start=34816, size=32768, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" })
    G.place(dir .. "/disk.raw", dir .. "/data.img", 2048 * 512)
    G.place(dir .. "/disk.raw", dir .. "/linux.img", 18432 * 512)
    G.place(dir .. "/disk.raw", dir .. "/win.img", 34816 * 512)
    A = dir .. "/a.vma"
    G.backup(A, { { "drive-scsi0", dir .. "/disk.raw" } })
    -- a Windows guest alone, on a disk without partition table
    G.backup(dir .. "/w.vma", { { "drive-sata0", dir .. "/win.img" } })
    -- two file systems, neither an operating system
    G.disk(dir .. "/two.raw", 20, "gpt", { "start=2048, size=16384, type=L", "start=18432, type=L" })
    G.place(dir .. "/two.raw", dir .. "/data.img", 2048 * 512)
    G.ext4(dir .. "/data2.img", 8, dir .. "/data")
    G.place(dir .. "/two.raw", dir .. "/data2.img", 18432 * 512)
    G.backup(dir .. "/two.vma", { { "drive-scsi0", dir .. "/two.raw" } })
    -- one file system, no operating system: it is '/'
    G.backup(dir .. "/one.vma", { { "drive-scsi0", dir .. "/data.img" } })
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("takes the file system with an os-release as '/' and inspect names the others", function()
    local rc, out, err = vma("inspect", "--json", A)
    assert.are.equal(0, rc, err)
    local j = json.decode(out)
    assert.are.equal("scsi0:2", j.root)
    assert.are.same({ "scsi0:3" }, j.others)
    assert.are.equal("Alpine Linux v3.19", j.os.pretty_name)
    rc, out = vma("ls", A, "/etc/hostname")
    assert.are.equal("/etc/hostname\n", out)
  end)

  it("--root chooses another one", function()
    local rc, out, err = vma("ls", "--root", "scsi0:3", A, "/Users/Bob/Documents")
    assert.are.equal(0, rc, err)
    assert.are.equal("Report.txt\n", out)
  end)

  it("a Windows guest: C:/ and C:\\ paths, names without regard to case", function()
    local W = dir .. "/w.vma"
    local rc, out, err = vma("get", W, "C:/Users/Bob/Documents/Report.txt", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal("quarterly\n", out)
    rc, out, err = vma("get", W, "C:\\users\\bob\\documents\\report.txt", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal("quarterly\n", out)
    rc, out, err = vma("ls", W, "c:/windows/system32/drivers/etc")
    assert.are.equal(0, rc, err)
    assert.are.equal("hosts\n", out)
    rc, out = vma("inspect", "--json", W)
    local j = json.decode(out)
    assert.are.equal("windows", j.os.kind)
    assert.is_true(j.os.system32)
    assert.are.equal("sata0", j.root)
    rc, _, err = vma("ls", W, "D:/x")
    assert.are.equal(1, rc)
    assert.matches("only C:", err)
  end)

  it("C:/ on a guest that is not Windows is an error", function()
    local rc, _, err = vma("ls", A, "C:/Windows")
    assert.are.equal(1, rc)
    assert.matches("not Windows", err)
  end)

  it("the example last-backup-with.lua finds the backup that holds a file and copies it", function()
    local folder = dir .. "/backups"
    os.execute("mkdir " .. H.q(folder) .. " " .. H.q(dir .. "/restore"))
    os.execute("cp " .. H.q(A) .. " " .. H.q(folder .. "/vzdump-qemu-100-a.vma"))
    os.execute("cp " .. H.q(dir .. "/one.vma") .. " " .. H.q(folder .. "/vzdump-qemu-100-b.vma"))
    local rc, out, err = H.sh(string.format("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s /notes.txt %s",
      H.q(H.root .. "/lua/?.lua;;"), H.q(H.root .. "/build/?.so;;"),
      H.q(H.root .. "/examples/last-backup-with.lua"), H.q(folder), H.q(dir .. "/restore")))
    assert.are.equal(0, rc, err)
    assert.matches("vzdump%-qemu%-100%-b%.vma  10 bytes", out)
    assert.are.equal("data disk\n", H.read(dir .. "/restore/notes.txt"))
    rc = H.sh(string.format("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s /nope",
      H.q(H.root .. "/lua/?.lua;;"), H.q(H.root .. "/build/?.so;;"),
      H.q(H.root .. "/examples/last-backup-with.lua"), H.q(folder)))
    assert.are.equal(1, rc)
  end)

  it("one file system without an operating system is '/'; two need a name", function()
    local rc, out, err = vma("ls", dir .. "/one.vma", "/")
    assert.are.equal(0, rc, err)
    assert.are.equal("lost+found\nnotes.txt\n", out)
    rc, out, err = vma("ls", dir .. "/two.vma", "/")
    assert.are.equal(1, rc)
    assert.matches("several %(scsi0:1, scsi0:2%)", err)
    rc, out, err = vma("ls", dir .. "/two.vma", "scsi0:2:/")
    assert.are.equal(0, rc, err)
    assert.are.equal("lost+found\nnotes.txt\n", out)
  end)
end)

describe("vma mount --files", function()
  local dir, A, src
  local fuse = H.sh("test -e /dev/fuse && command -v fusermount3 >/dev/null") == 0
  lazy_setup(function()
    dir = H.tmpdir()
    src = dir .. "/root"
    G.tree(src, { ["etc/os-release"] = "ID=debian\n", ["etc/fstab"] = "LABEL=data /srv ext4 defaults 0 2\n",
      ["srv"] = { dir = true }, ["home/a.txt"] = "a\n", ["home/l"] = { link = "a.txt" },
      ["home/sparse"] = { sparse = 64 * MiB, at = { [MiB] = "x" } } })
    G.tree(dir .. "/srv", { ["www/index.html"] = "<html/>\n" })
    G.ext4(dir .. "/root.img", 16, src)
    G.ext4(dir .. "/srv.img", 8, dir .. "/srv", { label = "data" })
    G.disk(dir .. "/disk.raw", 30, "dos", { "start=2048, size=32768, type=83", "start=34816, type=83" })
    G.place(dir .. "/disk.raw", dir .. "/root.img", 2048 * 512)
    G.place(dir .. "/disk.raw", dir .. "/srv.img", 34816 * 512)
    A = dir .. "/a.vma"
    G.backup(A, { { "drive-scsi0", dir .. "/disk.raw" } })
  end)
  lazy_teardown(function()
    os.execute("fusermount3 -u " .. H.q(dir .. "/m") .. " 2>/dev/null")
    H.rm(dir)
  end)

  it("shows the guest's tree with its mounts, links and holes", function()
    if not fuse then
      pending("no /dev/fuse or fusermount3 here")
      return
    end
    local m = dir .. "/m"
    os.execute("mkdir " .. H.q(m))
    local rc, _, err = vma("mount", "--files", A, m)
    assert.are.equal(0, rc, err)
    local ok, e = pcall(function()
      assert.are.equal("<html/>\n", H.read(m .. "/srv/www/index.html"))
      assert.are.equal("a\n", H.read(m .. "/home/l"))
      local _, t = H.sh("readlink " .. H.q(m .. "/home/l"))
      assert.are.equal("a.txt\n", t)
      assert.are.equal(0, H.sh("cmp " .. H.q(m .. "/home/sparse") .. " " .. H.q(src .. "/home/sparse")))
      H.sh("cp --sparse=always " .. H.q(m .. "/home/sparse") .. " " .. H.q(dir .. "/copy"))
      assert.is_true(G.allocated(dir .. "/copy") <= 256 * 1024)
      local rc2 = H.sh("touch " .. H.q(m .. "/home/new"))
      assert.are_not.equal(0, rc2)
    end)
    assert.are.equal(0, (H.sh("fusermount3 -u " .. H.q(m))))
    assert(ok, e)
  end)
end)

describe("an interrupted get", function()
  local dir, A
  lazy_setup(function()
    dir = H.tmpdir()
    local spec = { ["etc/os-release"] = "ID=x\n", ["big/blob"] = { random = 48 * MiB } }
    for i = 1, 3000 do spec[string.format("many/%02d/f%d", i % 50, i)] = ("%d\n"):format(i) end
    G.tree(dir .. "/src", spec)
    G.ext4(dir .. "/r.img", 120, dir .. "/src")
    A = dir .. "/a.vma"
    G.backup(A, { { "drive-scsi0", dir .. "/r.img" } })
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("leaves nothing in DEST", function()
    local out = dir .. "/out"
    os.execute("mkdir " .. H.q(out))
    local p = io.popen(H.q(H.bin) .. " get " .. H.q(A) .. " / " .. H.q(out) .. " >/dev/null 2>"
      .. H.q(dir .. "/log") .. " & echo $!")
    local pid = tonumber(p:read("l"))
    p:close()
    -- stop it once it has written something, then Ctrl-C
    local stopped = false
    for _ = 1, 2000 do
      local rc, found = H.sh("find " .. H.q(out) .. " -mindepth 2 -type f | head -1")
      if rc == 0 and found ~= "" then
        os.execute("kill -STOP " .. pid)
        stopped = true
        break
      end
      os.execute("sleep 0.01")
    end
    assert.is_true(stopped)
    local _, staged = H.sh("find " .. H.q(out) .. " -mindepth 1 | wc -l")
    assert.is_true(tonumber(staged) > 0)
    os.execute("kill -INT " .. pid .. "; kill -CONT " .. pid)
    for _ = 1, 600 do
      if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true then break end
      os.execute("sleep 0.05")
    end
    assert.are.same({}, H.ls(out))
    assert.matches("interrupted", H.read(dir .. "/log"))
  end)
end)
