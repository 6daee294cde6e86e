-- The libguestfs engine through the commands: a guest only libguestfs
-- reads (btrfs with its OS in a subvolume, LUKS2 holding ext4, md RAID1;
-- tests/lua/guestfsimg.lua builds it in one launch), backed up with vma
-- create.  Every test here that needs libguestfs is skipped (pending,
-- never passed) where it cannot start; each command launches its
-- appliance once (15-20 s under TCG here: LIBGUESTFS_BACKEND_SETTINGS=
-- force_tcg, as this machine's KVM cannot boot a kernel).
local H = require "helper"
local G = require "guestimg"
local GI = require "guestfsimg"
local json = require "dkjson"

-- libguestfs's appliance, built once (as for the image builder here)
local cachedir = os.getenv("LIBGUESTFS_CACHEDIR") or os.getenv("TMPDIR") or "/var/tmp"

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- processes whose command line holds text (the test's private folder)
local function processes_with(text)
  local out = {}
  local p = io.popen("ls /proc")
  for pid in p:read("a"):gmatch("%d+") do
    local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
    local cmd = f and f:read("a")
    if f then f:close() end
    if cmd and cmd:find(text, 1, true) then out[#out + 1] = pid .. " " .. cmd:gsub("%z", " ") end
  end
  p:close()
  return out
end

describe("libguestfs: btrfs subvolumes, LUKS2, md RAID #guestfs", function()
  local dir, A, src, keyfile, tmp, why

  lazy_setup(function()
    dir = H.tmpdir()
    local built
    built, why = GI.build(dir)
    if built then
      A, src, keyfile = built.archive, built.src, built.keyfile
    end
    tmp = dir .. "/tmp"
    os.execute("mkdir -p " .. H.q(tmp))
  end)
  lazy_teardown(function()
    os.execute("fusermount3 -u " .. H.q(dir .. "/m") .. " 2>/dev/null")
    H.rm(dir)
  end)

  local function ready()
    if why then pending(why) end
    return why == nil
  end

  -- vma with libguestfs under TCG, its temporary files in tmp
  local function gvma(...)
    local words = { "LIBGUESTFS_BACKEND_SETTINGS=force_tcg", "TMPDIR=" .. H.q(tmp),
      "LIBGUESTFS_CACHEDIR=" .. H.q(cachedir), H.q(H.bin) }
    for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
    return H.sh(table.concat(words, " "))
  end

  -- nothing left behind: no process and no folder of ours
  local function nothing_left()
    assert.are.same({}, processes_with(tmp))
    local _, out = H.sh("ls -A " .. H.q(tmp))
    assert.are.equal("", out)
  end

  it("inspect finds the root in a btrfs subvolume, opens the LUKS volume and assembles the RAID", function()
    if not ready() then return end
    local rc, out, err = gvma("inspect", "--json", "--keyfile", keyfile, A)
    assert.are.equal(0, rc, err)
    local r = json.decode(out)
    assert.are.equal("scsi0:1", r.root)
    assert.are.equal("Fedora Linux 39 (btrfs)", r.os.pretty_name)
    assert.are.equal("btrhost", r.os.hostname)
    local vols = {}
    for _, d in ipairs(r.disks) do
      for _, v in ipairs(d.volumes) do vols[v.name] = v end
    end
    assert.are.equal("btrfs", vols["scsi0:1"].fstype)
    assert.are.equal("btroot", vols["scsi0:1"].label)
    assert.are.equal("luks", vols["scsi1:1"].fstype)
    assert.are.equal("ext4", vols["scsi1:1"].holds)
    assert.are.equal("md", vols["scsi2"].fstype)
    assert.are.equal(1, #r.assembled)
    assert.are.equal("ext4", r.assembled[1].fstype)
    assert.are.equal("mdfs", r.assembled[1].label)
    assert.are.equal("libguestfs", r.assembled[1].engine)
    local mounts = {}
    for _, m in ipairs(r.mounts) do mounts[m.path] = m end
    assert.are.equal("root", mounts["/"].subvol)
    assert.are.equal("home", mounts["/home"].subvol)
    assert.are.equal("scsi1:1", mounts["/srv"].volume)
    assert.are.equal(r.assembled[1].name, mounts["/data"].volume)
    for _, m in ipairs(r.mounts) do assert.is_nil(m.error, m.path) end
    nothing_left()
  end)

  it("get / copies the whole guest across subvolumes, the LUKS volume and the RAID: every byte, holes kept", function()
    if not ready() then return end
    local out = dir .. "/out"
    os.execute("mkdir -p " .. H.q(out))
    local rc, _, err = gvma("get", "-q", "--keyfile", keyfile, A, "/", "scsi0:1:/README",
      "scsi0:1:/sparse.bin", "scsi0:1:/root/etc/hostname", out)
    assert.are.equal(0, rc, err)
    local lf = { ["lost+found"] = true }
    -- the root subvolume, with what is mounted on it compared apart
    assert.are.same({}, G.compare(src.root, out .. "/root", { mode = true, mtime = true,
      extra = { ["home/bob"] = true, ["home/bob/notes.txt"] = true, ["home/bob/big.bin"] = true,
        ["home/bob/sparse.img"] = true, ["home/bob/up"] = true, ["home/bob/café ünï.txt"] = true,
        ["srv/www"] = true, ["srv/www/index.html"] = true, ["srv/report.txt"] = true,
        ["srv/blob.bin"] = true, ["srv/lost+found"] = true, ["data/mirror.txt"] = true,
        ["data/lost+found"] = true } }))
    assert.are.same({}, G.compare(src.home, out .. "/root/home", { mode = true, mtime = true }))
    assert.are.same({}, G.compare(src.srv, out .. "/root/srv", { mode = true, extra = lf }))
    assert.are.same({}, G.compare(src.md, out .. "/root/data", { extra = lf }))
    -- the top level of the btrfs: its files, and the subvolume root as a folder
    assert.are.equal(H.read(src.top .. "/README"), H.read(out .. "/README"))
    assert.are.equal(0, H.sh("cmp " .. H.q(src.top .. "/sparse.bin") .. " " .. H.q(out .. "/sparse.bin")))
    assert.are.equal(H.read(src.root .. "/etc/hostname"), H.read(out .. "/hostname"))
    -- libguestfs does not tell holes: blocks of zeros are written as holes
    assert.is_true(G.allocated(out .. "/root/home/bob/sparse.img") <= 256 * 1024)
    assert.is_true(G.allocated(out .. "/sparse.bin") <= 256 * 1024)
    nothing_left()
  end)

  it("ls follows links inside the guest, across mounts; --key opens the LUKS volume", function()
    if not ready() then return end
    local rc, out, err = gvma("ls", "-l", "--key", GI.KEY, A, "/etc/link-abs", "/srv", "/home/bob/up",
      "scsi0:1:/")
    assert.are.equal(0, rc, err)
    assert.matches("lrwxrwxrwx .* /etc/link%-abs %-> /home/bob/notes%.txt", out)
    assert.matches("%-rw%-%-%-%-%-%-%- .* 18 .* report%.txt", out)
    assert.matches("lrwxrwxrwx .* /home/bob/up %-> %.%./%.%./etc/motd", out)
    -- the top level of the btrfs shows the subvolumes as folders
    assert.matches("\ndrwx.* root\n", out)
    assert.matches("\ndrwx.* home\n", out)
    assert.matches(" README\n", out)
    nothing_left()
  end)

  it("get - writes one file to standard output, read through a link that crosses mounts", function()
    if not ready() then return end
    local rc, out, err = gvma("get", "--keyfile", keyfile, A, "/etc/link-abs", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal(H.read(src.home .. "/bob/notes.txt"), out)
    nothing_left()
  end)

  it("a wrong key is a clear error (exit 1) that never shows the key", function()
    if not ready() then return end
    local rc, out, err = gvma("get", "--key", "not the key", A, "/srv/report.txt", "-")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("the key given does not open this LUKS volume", err)
    assert.is_nil(err:find("not the key", 1, true))
    nothing_left()
  end)

  it("mount --files serves the guest's tree through libguestfs, read-only, until vma umount", function()
    if not ready() then return end
    if H.sh("test -e /dev/fuse") ~= 0 then
      pending("no /dev/fuse here")
      return
    end
    local m = dir .. "/m"
    os.execute("mkdir -p " .. H.q(m))
    local rc, _, err = gvma("mount", "--files", "--key", GI.KEY, A, m)
    assert.are.equal(0, rc, err)
    local ok, e = pcall(function()
      assert.are.equal(H.read(src.root .. "/etc/os-release"), H.read(m .. "/etc/os-release"))
      assert.are.equal(H.read(src.srv .. "/report.txt"), H.read(m .. "/srv/report.txt"))
      assert.are.equal(H.read(src.md .. "/mirror.txt"), H.read(m .. "/data/mirror.txt"))
      assert.are.equal(0, H.sh("cmp " .. H.q(src.home .. "/bob/big.bin") .. " " .. H.q(m .. "/home/bob/big.bin")))
      local _, t = H.sh("readlink " .. H.q(m .. "/home/bob/up"))
      assert.are.equal("../../etc/motd\n", t)
      assert.are_not.equal(0, (H.sh("touch " .. H.q(m .. "/etc/new"))))
      -- the key is on no command line
      assert.are.same({}, processes_with(GI.KEY))
    end)
    local urc, _, uerr = H.vma("umount", m)
    assert.are.equal(0, urc, uerr)
    assert(ok, e)
    -- the server ends with the mount: its appliance, nbdkit, its folder
    local left
    for _ = 1, 100 do
      left = processes_with(tmp)
      if #left == 0 then break end
      os.execute("sleep 0.1")
    end
    nothing_left()
  end)

  it("Ctrl-C while the appliance starts ends it, nbdkit and every temporary file", function()
    if not ready() then return end
    -- in a session of its own, as a shell's job: Ctrl-C signals its group
    local rcfile, pidfile = dir .. "/int.rc", dir .. "/int.pid"
    -- (the shell that records the exit status outlives the signal: trapped)
    H.write(dir .. "/int.sh", "trap : INT\necho $$ > \"$1\"\nshift\n\"$@\" >\"$INT_OUT\" 2>\"$INT_ERR\"\n"
      .. "echo $? > \"$INT_RC\"\n")
    os.execute(string.format("LIBGUESTFS_BACKEND_SETTINGS=force_tcg TMPDIR=%s LIBGUESTFS_CACHEDIR=%s "
      .. "INT_OUT=%s INT_ERR=%s INT_RC=%s setsid sh %s %s %s ls --keyfile %s %s / </dev/null >/dev/null 2>&1 &",
      H.q(tmp), H.q(cachedir), H.q(dir .. "/int.out"), H.q(dir .. "/int.err"), H.q(rcfile), H.q(dir .. "/int.sh"),
      H.q(pidfile), H.q(H.bin), H.q(keyfile), H.q(A)))
    -- once the appliance is starting (its overlay is in the private folder)
    local started = false
    for _ = 1, 300 do
      if #processes_with(tmp .. "/vma-guestfs.") > 1 then
        started = true
        break
      end
      os.execute("sleep 0.1")
    end
    assert.is_true(started)
    os.execute("sleep 2")
    local pid = H.read(pidfile):match("%d+")
    os.execute("kill -INT -" .. pid)
    for _ = 1, 300 do
      if H.exists(rcfile) and H.read(rcfile):match("%d") then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal("1", H.read(rcfile):match("%d+"))
    assert.matches("interrupted", H.read(dir .. "/int.err"))
    nothing_left()
  end)
end)

describe("libguestfs missing #guestfs", function()
  local dir, A, why
  lazy_setup(function()
    dir = H.tmpdir()
    if not G.have("mkfs.btrfs") then
      why = "mkfs.btrfs is not installed"
      return
    end
    G.tree(dir .. "/top", { ["a.txt"] = "a\n" })
    G.sh(string.format("truncate -s 120M %s && mkfs.btrfs -q -f --rootdir %s %s", H.q(dir .. "/b.img"),
      H.q(dir .. "/top"), H.q(dir .. "/b.img")))
    A = dir .. "/b.vma"
    G.backup(A, { { "drive-scsi0", dir .. "/b.img" } })
  end)
  lazy_teardown(function() H.rm(dir) end)

  -- vma with C modules from the build folder only: no lua-guestfs
  local function vma_without(...)
    local words = { "LUA_CPATH=" .. H.q(H.root .. "/build/?.so"), H.q(H.bin) }
    for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
    return H.sh(table.concat(words, " "))
  end

  it("says what to install, and exits 1", function()
    if why then return pending(why) end
    local rc, out, err = vma_without("ls", A, "/")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("scsi0 holds btrfs: not read in%-process, and libguestfs is not installed "
      .. "%(Debian: apt%-get install lua%-guestfs%)", err)
    rc, _, err = vma_without("get", A, "scsi0:/a.txt", "-")
    assert.are.equal(1, rc)
    assert.matches("apt%-get install lua%-guestfs", err)
  end)

  it("--engine in-process never starts libguestfs, and says so", function()
    if why then return pending(why) end
    local rc, _, err = H.vma("ls", "--engine", "in-process", A, "scsi0:/")
    assert.are.equal(1, rc)
    assert.matches("scsi0 holds btrfs: not read in%-process", err)
    assert.is_nil(err:find("libguestfs", 1, true))
  end)
end)
