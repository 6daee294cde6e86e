-- The Debian packages (make deb: debian/, tools/mkdeb.sh), tried as an
-- administrator would: built with dpkg-buildpackage and checked by lintian,
-- installed on this machine with apt-get install ./...deb, used from the
-- installed files only (a clean environment, another folder), purged, and
-- nothing of them left. Then beside a package that owns /usr/bin/vma, as
-- Proxmox VE's pve-qemu-kvm does: ours is vma-standalone, vma-divert on/off
-- switches /usr/bin/vma, an upgrade of the other package goes where the
-- diversion says, and removing ours undoes it.
--
-- It changes the machine's packages, so it runs only as root, only when none
-- of these packages is installed and nothing is at /usr/bin/vma (otherwise
-- every test is pending with the reason), one run at a time (tests/run.sh
-- holds a lock), and puts everything back whatever happens. tests/run.sh runs
-- it in the full pass (not VMA_QUICK).
local H = require "helper"

local ROOT = H.root
local PKGS = { "vma", "vma-rbd", "vma-fuse", "nbdkit-plugin-vma" }
local DUMMY = "vma-test-proxmox"
local APT = "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 "

local function lines(s)
  local t = {}
  for l in (s or ""):gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local function installed(pkg)
  local rc, out = H.sh("dpkg-query -W -f='${Status}' " .. H.q(pkg))
  return rc == 0 and out:find("install ok installed", 1, true) ~= nil
end

local function known(pkg)
  local rc, out = H.sh("dpkg-query -W -f='${Status}' " .. H.q(pkg))
  return rc == 0 and out ~= "" and not out:find("not%-installed")
end

local function diverter()
  local _, out = H.sh("dpkg-divert --listpackage /usr/bin/vma")
  return (out:gsub("%s+$", ""))
end

-- what keeps the test from running here, or nil
local function obstacle()
  local _, uid = H.sh("id -u")
  if uid:match("^%d+") ~= "0" then return "needs root: it installs packages" end
  for _, tool in ipairs({ "apt-get", "dpkg-buildpackage", "dh", "lintian", "nbdkit", "lua5.4" }) do
    if H.sh("command -v " .. tool) ~= 0 then return "needs " .. tool .. " (make deps-check)" end
  end
  for _, p in ipairs(PKGS) do
    if known(p) then return "the package " .. p .. " is installed here: the test would remove it" end
  end
  if known(DUMMY) then return DUMMY .. " is installed here" end
  for _, f in ipairs({ "/usr/bin/vma", "/usr/bin/vma-standalone", "/usr/bin/vma.proxmox" }) do
    local rc = H.sh("test -e " .. f .. " || test -L " .. f)
    if rc == 0 then return f .. " exists here: the test needs a machine without a vma" end
  end
  if diverter() ~= "" then return "/usr/bin/vma is diverted here" end
  if H.sh("update-alternatives --query vma") == 0 then return "an alternative 'vma' exists here" end
  return nil
end

describe("the Debian packages", function()
  local why = obstacle()
  local D, debs, files, new_dirs = nil, {}, {}, {}

  -- a command in a clean environment, in a folder of its own: nothing of the
  -- source tree (no VMA_*, no LUA_PATH, another current folder)
  local function clean(cmd)
    return H.sh("cd " .. H.q(D .. "/work") .. " && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="
      .. H.q(D .. "/home") .. " TMPDIR=" .. H.q(D .. "/tmp") .. " LC_ALL=C.UTF-8 sh -c " .. H.q(cmd))
  end

  local function apt(args)
    local rc, out, err = H.sh(APT .. args)
    return rc, out .. err
  end

  local function purge_all()
    local list = {}
    for _, p in ipairs(PKGS) do if known(p) then list[#list + 1] = p end end
    if known(DUMMY) then list[#list + 1] = DUMMY end
    if #list > 0 then apt("purge " .. table.concat(list, " ")) end
    if diverter() == "vma" then H.sh("dpkg-divert --package vma --rename --remove /usr/bin/vma") end
  end

  local function ready()
    if why then pending(why) end
    return why == nil
  end

  setup(function()
    if why then return end
    D = H.tmpdir()
    os.execute("mkdir -p " .. H.q(D .. "/work") .. " " .. H.q(D .. "/home") .. " " .. H.q(D .. "/tmp")
      .. " " .. H.q(D .. "/dummy1/DEBIAN") .. " " .. H.q(D .. "/dummy1/usr/bin"))
    -- a package that owns /usr/bin/vma, in two versions (an upgrade)
    for v = 1, 2 do
      local root = D .. "/dummy" .. v
      os.execute("mkdir -p " .. H.q(root .. "/DEBIAN") .. " " .. H.q(root .. "/usr/bin"))
      H.write(root .. "/DEBIAN/control", "Package: " .. DUMMY .. "\nVersion: " .. v .. ".0\n"
        .. "Architecture: all\nMaintainer: vma tests <tests@example.invalid>\n"
        .. "Description: owns /usr/bin/vma, as pve-qemu-kvm does\n a test of vma's package\n")
      H.write(root .. "/usr/bin/vma", "#!/bin/sh\necho \"proxmox vma " .. v .. "\"\n")
      os.execute("chmod 755 " .. H.q(root .. "/usr/bin/vma"))
      assert(H.sh("dpkg-deb --root-owner-group -b " .. H.q(root) .. " "
        .. H.q(D .. "/" .. DUMMY .. "_" .. v .. ".0_all.deb")) == 0)
    end
  end)

  teardown(function()
    if why then return end
    purge_all()
    H.rm(D)
  end)

  local function dummy(v) return D .. "/" .. DUMMY .. "_" .. v .. ".0_all.deb" end

  local function all_debs()
    local t = {}
    for _, p in ipairs(PKGS) do t[#t + 1] = H.q(debs[p]) end
    return table.concat(t, " ")
  end

  it("builds with dpkg-buildpackage -us -uc -b, and lintian finds no error", function()
    if not ready() then return end
    local rc, out, err = H.sh("cd " .. H.q(ROOT) .. " && sh tools/mkdeb.sh")
    assert.equal(0, rc, out .. err)
    local _, ls = H.sh("ls " .. H.q(ROOT .. "/build/deb") .. "/*.deb")
    for _, f in ipairs(lines(ls)) do
      local name = f:match("/([^/_]+)_[^/]*%.deb$")
      if name then debs[name] = f end
    end
    for _, p in ipairs(PKGS) do assert.is_string(debs[p], "no " .. p .. "_*.deb") end
    -- every file the packages hold, and the folders that are not here yet
    for _, p in ipairs(PKGS) do
      local _, list = H.sh("dpkg-deb --fsys-tarfile " .. H.q(debs[p]) .. " | tar -t")
      for _, f in ipairs(lines(list)) do
        local path = f:gsub("^%.", ""):gsub("/$", "")
        if path ~= "" then
          files[#files + 1] = path
          if f:sub(-1) == "/" and H.sh("test -e " .. H.q(path)) ~= 0 then new_dirs[path] = true end
        end
      end
    end
  end)

  it("ships no file another package owns, no /usr/bin/vma, and vma pulls no Ceph, qemu or nbdkit", function()
    if not ready() then return end
    for _, f in ipairs(files) do
      assert.is_not.equal("/usr/bin/vma", f)
      local rc, out = H.sh("dpkg-query -S " .. H.q(f))
      if rc == 0 and H.sh("test -d " .. H.q(f)) ~= 0 then
        error(f .. " belongs to " .. out)
      end
    end
    local _, dep = H.sh("dpkg-deb -f " .. H.q(debs.vma) .. " Depends Recommends")
    for _, bad in ipairs({ "rbd", "rados", "ceph", "qemu", "nbdkit%s*[,(]", "fuse3" }) do
      assert.is_nil(dep:match("Depends:[^\n]*" .. bad), "vma depends on " .. bad .. ": " .. dep)
    end
    -- the closure of everything vma pulls on a machine without it (its
    -- Recommends too): no Ceph, no qemu
    local rc, sim = H.sh("apt-get -s -o Dir::State::status=/dev/null install " .. H.q(debs.vma))
    assert.equal(0, rc, sim)
    for name in sim:gmatch("\nInst (%S+)") do
      assert.is_nil(name:match("ceph") or name:match("rbd") or name:match("rados") or name:match("qemu"),
        "installing vma pulls " .. name)
    end
    local _, rdep = H.sh("dpkg-deb -f " .. H.q(debs["vma-rbd"]) .. " Depends")
    assert.matches("librbd1", rdep)
  end)

  it("installs with apt-get install ./...deb and works from the installed files only", function()
    if not ready() then return end
    assert.is_string(debs.vma, "not built")
    local rc, log = apt("install " .. all_debs())
    assert.equal(0, rc, log)
    -- /usr/bin/vma is ours: no other package owns the name here
    local _, out = clean("readlink -f \"$(command -v vma)\"; vma --version; vma-standalone --version")
    assert.same({ "/usr/bin/vma-standalone", "vma 0.1.0", "vma 0.1.0" }, lines(out))
    local rc2, who = H.sh("dpkg-query -S /usr/share/lua/5.4/vma/cli.lua")
    assert.equal(0, rc2)
    assert.matches("^vma: ", who)
    -- the stock interpreter finds vma.so, and vma.rbd (vma-rbd), in Lua's own paths
    _, out = clean("lua5.4 -e 'local v = require \"vma\" print(v.version)'"
      .. " && lua5.4 -e 'print(type(require \"vma.rbd\"))'")
    assert.same({ "0.1.0", "table" }, lines(out))
    -- every command of the installed folder is listed
    rc, out = clean("vma help")
    assert.equal(0, rc)
    local _, cmds = H.sh("ls /usr/share/lua/5.4/vma/commands")
    for _, f in ipairs(lines(cmds)) do
      assert.matches("\n  " .. f:gsub("%.lua$", ""):gsub("%-", "%%-") .. " ", out)
    end
  end)

  it("creates, verifies and extracts an archive, and nbdkit serves it, from the installed files", function()
    if not ready() then return end
    local rc, out, err = clean([[
set -e
head -c 1048576 /dev/urandom > disk.raw
truncate -s 8M disk.raw
printf 'name: deb-test\nscsi0: local:vm-100-disk-0,size=8M\n' > qemu-server.conf
vma create -q --no-qmdump-map a.vma.zst -c qemu-server.conf drive-scsi0=disk.raw
vma verify -q a.vma.zst
vma list a.vma.zst
vma extract -q a.vma.zst out
cmp disk.raw out/disk-drive-scsi0.raw
cmp qemu-server.conf out/qemu-server.conf
nbdkit vma --dump-plugin | grep '^vma_version='
nbdkit -U - vma a.vma.zst --run 'nbdcopy "$uri" copy.raw'
cmp disk.raw copy.raw
echo done
]])
    assert.equal(0, rc, out .. err)
    assert.matches("DEV: dev_id=1 size: 8388608 devname: drive%-scsi0", out)
    assert.matches("\nvma_version=0%.1%.0\n", out)
    assert.matches("\ndone\n$", out)
  end)

  it("mounts an archive through the installed vma-fuse", function()
    if not ready() then return end
    if H.sh("test -c /dev/fuse && command -v fusermount3") ~= 0 then
      pending("needs /dev/fuse and fusermount3")
      return
    end
    local rc, out, err = clean([[
set -e
mkdir m
vma mount a.vma.zst m
cmp disk.raw m/drive-scsi0.raw
vma umount m
echo mounted
]])
    assert.equal(0, rc, out .. err)
    assert.matches("mounted", out)
  end)

  it("has its man pages and a bash completion that answers", function()
    if not ready() then return end
    for _, f in ipairs({ "/usr/share/man/man1/vma.1.gz", "/usr/share/man/man1/vma-standalone.1.gz",
      "/usr/share/man/man8/vma-divert.8.gz", "/usr/share/man/man1/nbdkit-vma-plugin.1.gz",
      "/usr/share/doc/vma/commands.md.gz", "/usr/share/doc/vma/examples/command-du.lua" }) do
      assert.equal(0, H.sh("test -e " .. H.q(f)), f)
    end
    local rc, out = clean([=[
bash -c '. /usr/share/bash-completion/completions/vma
COMP_WORDS=(vma cre); COMP_CWORD=1; _vma; echo "${COMPREPLY[@]}"
COMP_WORDS=(vma-standalone list --j); COMP_CWORD=2; _vma; echo "${COMPREPLY[@]}"'
]=])
    assert.equal(0, rc)
    assert.same({ "create", "--json" }, lines(out))
  end)

  local function nothing_left()
    for _, f in ipairs(files) do
      local gone = H.sh("test -e " .. H.q(f) .. " || test -L " .. H.q(f)) ~= 0
      if not gone and H.sh("test -d " .. H.q(f)) == 0 then gone = not new_dirs[f] end
      assert.is_true(gone, f .. " is left")
    end
    for _, f in ipairs({ "/usr/bin/vma", "/usr/bin/vma.proxmox", "/etc/alternatives/vma",
      "/var/lib/dpkg/alternatives/vma" }) do
      assert.equal(1, H.sh("test -e " .. f .. " || test -L " .. f), f .. " is left")
    end
    assert.equal("", diverter())
    for _, p in ipairs(PKGS) do
      assert.is_false(known(p), p .. " is still known to dpkg")
      local _, left = H.sh("ls /var/lib/dpkg/info/" .. p .. ".* /var/lib/dpkg/info/" .. p .. ":*.* 2>/dev/null")
      assert.equal("", left)
    end
  end

  it("purges with nothing left", function()
    if not ready() then return end
    local rc, log = apt("purge " .. table.concat(PKGS, " "))
    assert.equal(0, rc, log)
    nothing_left()
  end)

  describe("beside a package that owns /usr/bin/vma", function()
    local function vma_says()
      local _, out = clean("vma --version 2>&1 || true")
      return (out:gsub("%s+$", ""))
    end

    it("installs as vma-standalone and leaves the other vma alone", function()
      if not ready() then return end
      assert.is_string(debs.vma, "not built")
      local rc, log = apt("install " .. H.q(dummy(1)))
      assert.equal(0, rc, log)
      rc, log = apt("install " .. all_debs())
      assert.equal(0, rc, log)
      assert.truthy(log:find("/usr/bin/vma belongs to " .. DUMMY .. ", so this vma is vma-standalone", 1, true), log)
      assert.equal("proxmox vma 1", vma_says())
      local _, out = clean("vma-standalone --version")
      assert.equal("vma 0.1.0\n", out)
      local _, owner = H.sh("dpkg-query -S /usr/bin/vma")
      assert.equal(DUMMY .. ": /usr/bin/vma\n", owner)
      assert.equal(2, H.sh("update-alternatives --query vma"))
      _, out = clean("vma-divert status")
      assert.equal(1, out:find("off: /usr/bin/vma is " .. DUMMY .. "'s", 1, true), out)
    end)

    it("vma-divert on makes ours /usr/bin/vma, off gives it back", function()
      if not ready() then return end
      local rc, out, err = clean("vma-divert on")
      assert.equal(0, rc, out .. err)
      assert.equal("vma 0.1.0", vma_says())
      local _, other = clean("vma.proxmox")
      assert.equal("proxmox vma 1\n", other)
      assert.equal("vma", diverter())
      _, out = clean("vma-divert status")
      assert.matches("^on: /usr/bin/vma is this vma", out)
      -- on twice is harmless
      rc = clean("vma-divert on")
      assert.equal(0, rc)
      assert.equal("vma 0.1.0", vma_says())
      -- an upgrade of the other package goes to the diverted name
      local log
      rc, log = apt("install " .. H.q(dummy(2)))
      assert.equal(0, rc, log)
      assert.equal("vma 0.1.0", vma_says())
      _, other = clean("vma.proxmox")
      assert.equal("proxmox vma 2\n", other)
      rc, out, err = clean("vma-divert off")
      assert.equal(0, rc, out .. err)
      assert.equal("proxmox vma 2", vma_says())
      assert.equal("", diverter())
      assert.equal(1, H.sh("test -e /usr/bin/vma.proxmox"))
    end)

    it("removing the package undoes vma-divert on", function()
      if not ready() then return end
      local rc, out, err = clean("vma-divert on")
      assert.equal(0, rc, out .. err)
      assert.equal("vma 0.1.0", vma_says())
      local log
      rc, log = apt("purge " .. table.concat(PKGS, " "))
      assert.equal(0, rc, log)
      assert.equal("proxmox vma 2", vma_says())
      assert.equal("", diverter())
      assert.equal(1, H.sh("test -e /usr/bin/vma.proxmox"))
      local _, owner = H.sh("dpkg-query -S /usr/bin/vma")
      assert.equal(DUMMY .. ": /usr/bin/vma\n", owner)
      rc, log = apt("purge " .. DUMMY)
      assert.equal(0, rc, log)
      nothing_left()
    end)

    it("installed before the other package, ours gives way and is removed without touching it", function()
      if not ready() then return end
      local rc, log = apt("install " .. all_debs())
      assert.equal(0, rc, log)
      assert.equal("vma 0.1.0", vma_says())
      rc, log = apt("install " .. H.q(dummy(1)))
      assert.equal(0, rc, log)
      assert.equal("proxmox vma 1", vma_says())
      local _, out = clean("vma-standalone --version")
      assert.equal("vma 0.1.0\n", out)
      rc, log = apt("purge " .. table.concat(PKGS, " "))
      assert.equal(0, rc, log)
      assert.equal("proxmox vma 1", vma_says())
      rc, log = apt("purge " .. DUMMY)
      assert.equal(0, rc, log)
      nothing_left()
    end)
  end)
end)
