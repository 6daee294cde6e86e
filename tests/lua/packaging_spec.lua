-- The set-up and the package's sources agree with each other: the Makefile's
-- dependency sets name real Debian packages and the build set is in
-- debian/control's Build-Depends; every version says the same; tools/deps.sh
-- installs only what is missing and waits, bounded and saying so, for another
-- apt that holds the lock (a fake apt-get here: the real lock is never taken).
-- Building, installing and removing the package itself: tests/deb/deb_spec.lua.
local H = require "helper"

local ROOT = H.root

local function words(s)
  local t = {}
  for w in (s or ""):gmatch("%S+") do t[#t + 1] = w end
  return t
end

local function make_var(name)
  local rc, out, err = H.sh("make -s --no-print-directory -C " .. H.q(ROOT)
    .. " --eval 'print-%: ; @echo $($*)' print-" .. name)
  assert.equal(0, rc, err)
  return words(out)
end

local SETS = { "DEBS_BUILD", "DEBS_RUN", "DEBS_CHECK", "DEBS_DEB", "DEBS_CEPH", "DEBS_GUESTFS", "DEBS_FUZZ" }

describe("the dependency sets and the package's sources", function()
  it("name packages the archive has, each set once", function()
    local seen = {}
    for _, set in ipairs(SETS) do
      local list = make_var(set)
      assert.is_true(#list > 0, set .. " is empty")
      for _, p in ipairs(list) do
        assert.is_nil(seen[p], p .. " is in " .. set .. " and " .. tostring(seen[p]))
        seen[p] = set
        local rc = H.sh("apt-cache show --no-all-versions " .. H.q(p) .. " >/dev/null 2>&1")
        assert.equal(0, rc, set .. ": no package " .. p)
      end
    end
  end)

  it("build with what debian/control's Build-Depends names", function()
    local rc, out = H.sh("sh " .. H.q(ROOT .. "/tools/mkdeb.sh") .. " --build-depends")
    assert.equal(0, rc)
    local bd = {}
    for _, p in ipairs(words(out)) do bd[p] = true end
    assert.is_true(bd.debhelper)
    assert.is_nil(bd["debhelper-compat"])
    -- gcc and make come with build-essential, which dpkg-buildpackage assumes
    local missing = {}
    for _, p in ipairs(make_var("DEBS_BUILD")) do
      if not bd[p] and p ~= "gcc" and p ~= "make" then missing[#missing + 1] = p end
    end
    assert.same({}, missing)
  end)

  it("say one version: the Makefile, debian/changelog and the man pages", function()
    local mk = H.read(ROOT .. "/Makefile"):match("\nVERSION%s*:=%s*(%S+)")
    local ch = H.read(ROOT .. "/debian/changelog"):match("^vma %(([^)]+)%)")
    assert.is_string(mk)
    assert.equal(mk, ch)
    for _, page in ipairs({ "docs/vma.1", "docs/nbdkit-vma-plugin.1", "debian/vma-divert.8" }) do
      local th = H.read(ROOT .. "/" .. page):match("^%.TH [^\n]-\"vma ([^\"]+)\"")
      assert.equal(mk, th, page)
    end
  end)
end)

describe("tools/deps.sh", function()
  local dir, bin

  setup(function()
    dir = H.tmpdir()
    bin = dir .. "/bin"
    os.execute("mkdir -p " .. H.q(bin))
    -- dpkg-query: the packages named in $dir/installed are installed
    H.write(bin .. "/dpkg-query", "#!/bin/sh\nfor p; do :; done\n"
      .. "grep -qx \"$p\" " .. H.q(dir .. "/installed") .. " 2>/dev/null && echo 'install ok installed'\n")
    -- apt-get: locked for the first $(cat locked) calls, then it logs its words
    H.write(bin .. "/apt-get", "#!/bin/sh\nn=$(cat " .. H.q(dir .. "/calls") .. " 2>/dev/null || echo 0)\n"
      .. "echo $((n + 1)) > " .. H.q(dir .. "/calls") .. "\n"
      .. "if [ -f " .. H.q(dir .. "/fail") .. " ]; then echo 'E: Unable to locate package nope' >&2; exit 100; fi\n"
      .. "if [ \"$n\" -lt \"$(cat " .. H.q(dir .. "/locked") .. ")\" ]; then\n"
      .. "  echo 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)' >&2\n"
      .. "  echo 'E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?' >&2\n"
      .. "  exit 100\nfi\necho \"$*\" >> " .. H.q(dir .. "/log") .. "\n")
    H.write(bin .. "/sudo", "#!/bin/sh\nexec \"$@\"\n")
    os.execute("chmod +x " .. H.q(bin) .. "/*")
  end)
  teardown(function() H.rm(dir) end)

  local function run(locked, wait, ...)
    os.execute("rm -f " .. H.q(dir .. "/calls") .. " " .. H.q(dir .. "/log") .. " " .. H.q(dir .. "/fail"))
    H.write(dir .. "/locked", tostring(locked) .. "\n")
    local args = {}
    for i, p in ipairs({ ... }) do args[i] = H.q(p) end
    return H.sh("PATH=" .. H.q(bin) .. ":$PATH VMA_APT_POLL=0.05 VMA_APT_WAIT=" .. wait
      .. " sh " .. H.q(ROOT .. "/tools/deps.sh") .. " " .. table.concat(args, " "))
  end

  local function calls() return tonumber(H.read(dir .. "/calls") or "0") end

  it("does nothing when every package is installed", function()
    H.write(dir .. "/installed", "pkg-a\npkg-b\n")
    local rc, out, err = run(0, 10, "pkg-a", "pkg-b")
    assert.equal(0, rc)
    assert.equal("", out .. err)
    assert.equal(0, calls())
  end)

  it("installs only the missing ones", function()
    H.write(dir .. "/installed", "pkg-a\n")
    local rc, out = run(0, 10, "pkg-a", "pkg-b", "pkg-c")
    assert.equal(0, rc)
    assert.equal("deps: installing pkg-b pkg-c\n", out)
    assert.equal("update -qq\ninstall -y -qq pkg-b pkg-c\n", H.read(dir .. "/log"))
  end)

  it("waits for another apt holding the lock, saying so once, then installs", function()
    H.write(dir .. "/installed", "")
    local rc, _, err = run(5, 600, "pkg-a")
    assert.equal(0, rc, err)
    assert.equal("deps: another apt or dpkg is running (process 4242 (unattended-upgr));"
      .. " waiting for it to finish, at most 600 s\n", err)
    assert.equal(7, calls()) -- five refused, then update and install
    assert.equal("update -qq\ninstall -y -qq pkg-a\n", H.read(dir .. "/log"))
  end)

  it("gives up after VMA_APT_WAIT seconds with a message", function()
    H.write(dir .. "/installed", "")
    local rc, _, err = run(1000000, 1, "pkg-a")
    assert.equal(1, rc)
    assert.matches("^deps: another apt or dpkg is running %(process 4242 %(unattended%-upgr%)%); "
      .. "waiting for it to finish, at most 1 s\ndeps: apt is still locked by process 4242 "
      .. "%(unattended%-upgr%) after %d+ s; run 'make' again once it has finished "
      .. "%(VMA_APT_WAIT=SECONDS waits longer%)\n$", err)
    assert.is_nil(H.read(dir .. "/log"))
  end)

  it("fails at once on any other error of apt-get, with apt's message", function()
    H.write(dir .. "/installed", "")
    os.execute("rm -f " .. H.q(dir .. "/calls"))
    H.write(dir .. "/locked", "0\n")
    H.write(dir .. "/fail", "")
    local rc, _, err = H.sh("PATH=" .. H.q(bin) .. ":$PATH VMA_APT_POLL=0.05 sh "
      .. H.q(ROOT .. "/tools/deps.sh") .. " nope")
    assert.equal(1, rc)
    assert.equal("E: Unable to locate package nope\n", err)
    assert.equal(1, calls())
  end)
end)
