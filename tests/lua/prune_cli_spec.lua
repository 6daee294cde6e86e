-- busted --lpath='lua/?.lua;lua/?/init.lua' tests/lua/prune_cli_spec.lua
local prune = require "vma.commands.prune"
local H = require "helper"
local cjson = require "cjson"
local lfs = require "lfs"

-- the checkout (tests/run.sh runs from there and sets VMA_ROOT)
local ROOT = os.getenv("VMA_ROOT") or "."

local tmpdir = H.tmpdir

local function touch(path, content) H.write(path, content or "x") end

local function listdir(dir)
  local names = {}
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local function exists(path) return lfs.attributes(path) ~= nil end

local function sink()
  local s = { parts = {} }
  function s:write(...)
    for _, v in ipairs({ ... }) do self.parts[#self.parts + 1] = tostring(v) end
    return self
  end
  function s:text() return table.concat(self.parts) end
  function s:flush() return self end
  return s
end

-- run the command in this process; returns status, stdout, stderr
local function run(args)
  local out, err = sink(), sink()
  local stdout, stderr = io.stdout, io.stderr
  io.stdout, io.stderr = out, err
  local ok, status = pcall(prune.run, args)
  io.stdout, io.stderr = stdout, stderr
  assert(ok, status)
  return status, out:text(), err:text()
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- run in a subprocess (lua5.4 -e ...) as the vma host would; env is a
-- string of assignments put before the command
local function run_sub(args, env)
  local words = {}
  for i, a in ipairs(args) do words[i] = string.format("%q", a) end
  local code = string.format("package.path=%q..package.path; ",
    ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;")
    .. "os.exit(require('vma.commands.prune').run({" .. table.concat(words, ",") .. "}))"
  local errfile = os.tmpname()
  local p = io.popen((env or "") .. " lua5.4 -e " .. shell_quote(code) .. " 2>" .. errfile)
  local out = p:read("a")
  local _, _, status = p:close()
  local f = io.open(errfile)
  local err = f:read("a")
  f:close()
  os.remove(errfile)
  return status, out, err
end

local function rmtree(dir) os.execute("rm -rf " .. shell_quote(dir)) end

local Q = "vzdump-qemu-100-"
-- a directory with 45 days of daily qemu/100 backups (2025-12-18 ..
-- 2026-01-31 at 02:00, plus 2026-01-31 14:00), logs, notes, a protected
-- one, an lxc group and files that are not backups
local function populate(dir)
  for d = 18, 31 do
    local base = string.format("%s2025_12_%02d-02_00_00", Q, d)
    touch(dir .. "/" .. base .. ".vma.zst", "data")
    touch(dir .. "/" .. base .. ".log", "log")
  end
  for d = 1, 31 do
    local base = string.format("%s2026_01_%02d-02_00_00", Q, d)
    touch(dir .. "/" .. base .. ".vma.zst", "data")
    touch(dir .. "/" .. base .. ".log", "log")
  end
  touch(dir .. "/" .. Q .. "2026_01_31-14_00_00.vma.zst", "data")
  touch(dir .. "/" .. Q .. "2026_01_10-02_00_00.vma.zst.notes", "before upgrade")
  touch(dir .. "/" .. Q .. "2026_01_05-02_00_00.vma.zst.protected", "")
  touch(dir .. "/vzdump-lxc-101-2026_01_15-02_00_00.tar.zst", "data")
  touch(dir .. "/vzdump-lxc-101-2026_01_14-02_00_00.tar.zst", "data")
  touch(dir .. "/vzdump-lxc-101-2026_01_14-02_00_00.log", "log")
  touch(dir .. "/vzdump-qemu-100-renamed.vma.zst", "data")
  touch(dir .. "/README.txt", "hello")
  touch(dir .. "/" .. Q .. "2026_01_09-02_00_00.vma.zst.tmp", "partial")
end

describe("vma prune", function()
  local dir
  before_each(function()
    dir = tmpdir()
    populate(dir)
  end)
  after_each(function() rmtree(dir) end)

  it("has a description and usage", function()
    assert.is_string(prune.description)
    assert.is_nil(prune.description:find("\n"))
    assert.matches("Usage: vma prune", prune.usage)
    local status, out = run({ "--help" })
    assert.equal(0, status)
    assert.equal(prune.usage, out)
  end)

  describe("usage errors", function()
    local cases = {
      { {}, "missing argument" },
      { { "--frobnicate", "DIR" }, "unknown option" },
      { { "--keep-daily", "x", "DIR" }, "invalid count 'x'" },
      { { "--keep-daily", "-1", "DIR" }, "invalid count '%-1' for %-%-keep%-daily" },
      { { "-n", "--keep-hourly", "1.5", "DIR" }, "invalid count '1.5'" },
      { { "--keep-daily" }, "requires an argument" },
      { { "--type", "vm", "DIR" }, "must be one of" },
      { { "--keep-within", "10x", "DIR" }, "invalid duration" },
      { { "--vmid", "abc", "DIR" }, "invalid vmid" },
      { { "--calendar", "--json", "DIR" }, "cannot be used together" },
      { { "--policy", "no-such-policy", "DIR" }, "unknown policy" },
      { { "DIR", "--policy" }, "requires an argument" },
      { { "--policy", "keep-within", "DIR" }, "needs %-%-keep%-within" },
      { { "--policy", "keep-within", "--keep-within", "1d", "--keep-daily", "3", "DIR" },
        "leave out %-%-policy" },
      { { "--keep-quarterly", "3", "DIR" }, "unknown option" },
      { { "DIR", "OTHER" }, "too many arguments" },
    }
    for _, c in ipairs(cases) do
      it(table.concat(c[1], " "), function()
        local args = {}
        for i, a in ipairs(c[1]) do args[i] = a == "DIR" and dir or a end
        local before = listdir(dir)
        local status, out, err = run(args)
        assert.equal(2, status)
        assert.equal("", out)
        assert.matches("^vma prune: [^\n]*\n$", err)
        assert.matches(c[2], err)
        assert.same(before, listdir(dir))
      end)
    end
  end)

  it("fails with status 1 on a missing directory", function()
    local status, out, err = run({ "--keep-last", "1", dir .. "/nope" })
    assert.equal(1, status)
    assert.equal("", out)
    assert.matches("^vma prune: cannot open directory", err)
  end)

  it("prints JSON in a dry run and deletes nothing", function()
    local before = listdir(dir)
    local status, out, err = run({ "--dry-run", "--json", "--keep-daily", "7", "--keep-weekly", "2",
                                   "--keep-monthly", "2", dir })
    assert.equal(0, status)
    assert.equal("", err)
    assert.same(before, listdir(dir))
    local list = cjson.decode(out)
    assert.equal(48, #list)
    -- sorted by group, then newest first
    assert.equal("vzdump-lxc-101-2026_01_15-02_00_00.tar.zst", list[1].file)
    assert.equal("vzdump-lxc-101-2026_01_14-02_00_00.tar.zst", list[2].file)
    local q = list[3]
    assert.equal(Q .. "2026_01_31-14_00_00.vma.zst", q.file)
    assert.equal("qemu", q.type)
    assert.equal(100, q.vmid)
    assert.equal("qemu/100", q.group)
    assert.equal(1769824800 + 12 * 3600, q.ctime)
    assert.matches('"ctime":1769868000,', out, 1, true)
    assert.equal("2026-01-31 14:00:00", q.time)
    assert.equal("keep", q.mark)
    assert.equal("keep-daily #1", q.reason)
    assert.equal(4, q.size)
    assert.is_nil(q.deleted)
    assert.equal("remove", list[4].mark)
    assert.equal("keep-daily: day 2026/01/31 already kept by " .. q.file, list[4].reason)
    local by_file = {}
    for i = 2, #list do
      assert.is_true(list[i - 1].group < list[i].group or
        (list[i - 1].group == list[i].group and list[i - 1].ctime >= list[i].ctime))
    end
    for _, r in ipairs(list) do by_file[r.file] = r end
    local p = by_file[Q .. "2026_01_05-02_00_00.vma.zst"]
    assert.equal("protected", p.mark)
    assert.equal("protected", p.reason)
    assert.is_true(p.protected)
    assert.equal("before upgrade", by_file[Q .. "2026_01_10-02_00_00.vma.zst"].notes)
    assert.equal("not kept by any rule", by_file[Q .. "2026_01_20-02_00_00.vma.zst"].reason)
    assert.equal("keep-monthly #1", by_file[Q .. "2025_12_31-02_00_00.vma.zst"].reason)
    for _, r in ipairs(list) do
      assert.is_truthy(({ keep = 1, remove = 1, protected = 1 })[r.mark])
      assert.is_string(r.reason)
    end
  end)

  it("prints [] for a directory without backups", function()
    local empty = tmpdir()
    touch(empty .. "/README.txt")
    local status, out = run({ "--json", "--keep-last", "1", empty })
    assert.equal(0, status)
    assert.equal("[]", out:gsub("%s+$", ""))
    status, out = run({ "--keep-last", "1", empty })
    assert.equal(0, status)
    assert.matches("no vzdump backups", out)
    rmtree(empty)
  end)

  it("prints a table with a summary", function()
    local status, out = run({ dir, "--dry-run", "--keep-last", "3" })
    assert.equal(0, status)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("^BACKUP%s+GROUP%s+TIME%s+MARK%s+REASON$", lines[1])
    assert.matches("^vzdump%-lxc%-101%-2026_01_15%-02_00_00%.tar%.zst%s+lxc/101%s+2026%-01%-15 02:00:00%s+keep%s+keep%-last #1$",
      lines[2])
    assert.matches("qemu/100%s+2026%-01%-31 14:00:00%s+keep%s+keep%-last #1", out)
    assert.matches("2026%-01%-05 02:00:00%s+protected%s+protected", out)
    assert.matches("remove%s+not kept by any rule", out)
    assert.matches("^dry run: 48 backups in 2 groups: 5 keep, 42 remove, 1 protected; nothing deleted$",
      lines[#lines])
    assert.equal(48 + 2, #lines)
  end)

  it("accepts options after DIR and filters by --vmid and --type", function()
    local status, out = run({ dir, "--json", "--dry-run", "--vmid", "101", "--keep-last", "1" })
    assert.equal(0, status)
    local list = cjson.decode(out)
    assert.equal(2, #list)
    assert.equal("lxc", list[1].type)
    status, out = run({ dir, "--json", "--dry-run", "--type", "qemu" })
    list = cjson.decode(out)
    assert.equal(46, #list)
    for _, r in ipairs(list) do assert.equal("qemu", r.type) end
    status, out = run({ dir, "--json", "--dry-run", "--type", "openvz" })
    assert.equal("[]", out:gsub("%s+$", ""))
  end)

  it("keeps everything with no rule and with --keep-all", function()
    for _, args in ipairs({ { dir }, { dir, "--keep-all", "--keep-last", "1" },
                            { dir, "--keep-last", "0", "--keep-daily", "0" } }) do
      local before = listdir(dir)
      local status, out = run(args)
      assert.equal(0, status)
      assert.same(before, listdir(dir))
      assert.matches("48 backups in 2 groups: 47 keep, 0 remove, 1 protected", out)
    end
  end)

  it("deletes removed archives with their .log and .notes, nothing else", function()
    local status, out, err = run({ "--keep-last", "2", dir })
    assert.equal(0, status, err)
    assert.equal("", err)
    local names = listdir(dir)
    assert.same({
      "README.txt",
      "vzdump-lxc-101-2026_01_14-02_00_00.log",
      "vzdump-lxc-101-2026_01_14-02_00_00.tar.zst",
      "vzdump-lxc-101-2026_01_15-02_00_00.tar.zst",
      Q .. "2026_01_05-02_00_00.log",
      Q .. "2026_01_05-02_00_00.vma.zst",
      Q .. "2026_01_05-02_00_00.vma.zst.protected",
      Q .. "2026_01_09-02_00_00.vma.zst.tmp",
      Q .. "2026_01_31-02_00_00.log",
      Q .. "2026_01_31-02_00_00.vma.zst",
      Q .. "2026_01_31-14_00_00.vma.zst",
      "vzdump-qemu-100-renamed.vma.zst",
    }, names)
    assert.matches("removed%s+not kept by any rule", out)
    assert.matches("48 backups in 2 groups: 4 keep, 43 remove, 1 protected; deleted 43 archives %(172 B%)\n$",
      out)
  end)

  it("keeps a .log shared with an archive that stays", function()
    touch(dir .. "/" .. Q .. "2026_01_31-14_00_00.vma", "other format")
    touch(dir .. "/" .. Q .. "2026_01_31-14_00_00.log", "log")
    touch(dir .. "/" .. Q .. "2026_01_31-14_00_00.notes", "shared notes")
    -- both 14:00 archives are kept by keep-last 2; 02:00 is removed
    local status = run({ "--keep-last", "2", "--vmid", "100", dir })
    assert.equal(0, status)
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_31-14_00_00.log"))
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_31-14_00_00.notes"))
    assert.is_false(exists(dir .. "/" .. Q .. "2026_01_31-02_00_00.vma.zst"))
    -- now keep only one of the two: the shared log stays with the other
    status = run({ "--keep-last", "1", "--vmid", "100", dir })
    assert.equal(0, status)
    local left = 0
    for _, n in ipairs(listdir(dir)) do
      if n:match("^" .. Q:gsub("%-", "%%-") .. "2026_01_31%-14_00_00%.vma") then left = left + 1 end
    end
    assert.equal(1, left)
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_31-14_00_00.log"))
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_31-14_00_00.notes"))
  end)

  it("refuses to remove every backup of a group unless --allow-remove-all", function()
    local pol = os.tmpname() .. ".lua"
    touch(pol, "return function(bs) for _, b in ipairs(bs) do b.mark = 'remove'; b.reason = 'drop' end end")
    local before = listdir(dir)
    local status, out, err = run({ "--policy", pol, dir })
    assert.equal(1, status)
    assert.equal("", out)
    assert.matches("refusing to remove all 2 backups of lxc/101", err)
    assert.is_nil(err:find("qemu/100", 1, true))   -- a protected backup stays there
    assert.same(before, listdir(dir))
    -- the dry run shows the plan and fails as the real run would
    status, out, err = run({ "--policy", pol, dir, "--dry-run" })
    assert.equal(1, status)
    assert.matches("lxc/101", out)
    assert.equal("vma prune: the real run would refuse to remove all 2 backups of lxc/101 (use "
      .. "--allow-remove-all)\n", err)
    assert.same(before, listdir(dir))
    status = run({ "--policy", pol, dir, "--dry-run", "--allow-remove-all" })
    assert.equal(0, status)
    status, out, err = run({ "--policy", pol, "--allow-remove-all", "--vmid", "101", dir })
    assert.equal(0, status, err)
    assert.is_false(exists(dir .. "/vzdump-lxc-101-2026_01_15-02_00_00.tar.zst"))
    assert.is_false(exists(dir .. "/vzdump-lxc-101-2026_01_14-02_00_00.log"))
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_31-02_00_00.vma.zst"))
    os.remove(pol)
    os.remove(pol:sub(1, -5))
  end)

  it("never deletes a protected archive whatever the policy says", function()
    local pol = os.tmpname() .. ".lua"
    touch(pol, "return { mark = function(bs) for _, b in ipairs(bs) do b.mark = 'remove' end end }")
    local status, out = run({ "--policy", pol, "--allow-remove-all", "--json", dir })
    assert.equal(0, status)
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_05-02_00_00.vma.zst"))
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_05-02_00_00.vma.zst.protected"))
    assert.is_true(exists(dir .. "/" .. Q .. "2026_01_05-02_00_00.log"))
    assert.is_true(exists(dir .. "/README.txt"))
    assert.is_true(exists(dir .. "/vzdump-qemu-100-renamed.vma.zst"))
    local list = cjson.decode(out)
    for _, r in ipairs(list) do
      if r.mark == "remove" then assert.is_true(r.deleted) else assert.is_false(r.deleted) end
    end
    os.remove(pol)
    os.remove(pol:sub(1, -5))
  end)

  it("reports a failing policy with status 1", function()
    local pol = os.tmpname() .. ".lua"
    touch(pol, "return function(bs) error('kaput') end")
    local before = listdir(dir)
    local status, out, err = run({ "--policy", pol, dir })
    assert.equal(1, status)
    assert.matches("^vma prune: policy '.-' failed on lxc/101: .*kaput", err)
    assert.same(before, listdir(dir))
    os.remove(pol)
    os.remove(pol:sub(1, -5))
  end)

  it("runs a policy with options of its own", function()
    local status, out, err = run({ "--policy", ROOT .. "/examples/policy-quarterly.lua", "--keep-quarterly", "2",
                                   "--json", "--dry-run", "--type", "qemu", dir })
    assert.equal(0, status, err)
    local kept = {}
    for _, r in ipairs(cjson.decode(out)) do
      if r.mark == "keep" then kept[#kept + 1] = r.file .. " " .. r.reason end
    end
    assert.same({ Q .. "2026_01_31-14_00_00.vma.zst keep-quarterly #1",
                  Q .. "2025_12_31-02_00_00.vma.zst keep-quarterly #2" }, kept)
    status, out, err = run({ "--policy=" .. ROOT .. "/examples/policy-keep-notes.lua", "--keep-last", "1",
                             "--json", "--dry-run", "--type", "qemu", dir })
    assert.equal(0, status, err)
    kept = {}
    for _, r in ipairs(cjson.decode(out)) do
      if r.mark == "keep" then kept[#kept + 1] = r.reason end
    end
    assert.same({ "keep-last #1", "has notes: before upgrade" }, kept)
  end)

  it("combines --keep-within with the Proxmox rules", function()
    local status, out = run({ "--keep-within", "10d", "--keep-daily", "3", "--keep-oldest", "1",
                              "--json", "--dry-run", "--type", "qemu", dir })
    assert.equal(0, status)
    local reasons = {}
    for _, r in ipairs(cjson.decode(out)) do
      if r.mark == "keep" then reasons[#reasons + 1] = r.time:sub(1, 10) .. " " .. r.reason end
    end
    assert.same({
      "2026-01-31 keep-within 10d", "2026-01-31 keep-within 10d", "2026-01-30 keep-within 10d",
      "2026-01-29 keep-within 10d", "2026-01-28 keep-within 10d", "2026-01-27 keep-within 10d",
      "2026-01-26 keep-within 10d", "2026-01-25 keep-within 10d", "2026-01-24 keep-within 10d",
      "2026-01-23 keep-within 10d", "2026-01-22 keep-within 10d",
      -- 01-21 02:00 is 10 days 12 hours before the newest (01-31 14:00)
      "2026-01-21 keep-daily #1", "2026-01-20 keep-daily #2", "2026-01-19 keep-daily #3",
      "2025-12-18 keep-oldest #1",
    }, reasons)
  end)

  it("draws a calendar and deletes nothing", function()
    local before = listdir(dir)
    local status, out, err = run({ "--calendar", "--keep-daily", "7", "--keep-weekly", "2",
                                   "--keep-monthly", "1", dir })
    assert.equal(0, status, err)
    assert.same(before, listdir(dir))
    assert.matches("qemu/100: 46 backups: 10 keep, 35 remove, 1 protected", out)
    assert.matches("December 2025", out)
    assert.matches("January 2026", out)
    assert.matches("Mo  Tu  We  Th  Fr  Sa  Su", out)
    assert.matches("Legend:", out)
    assert.is_nil(out:find("\27[", 1, true))   -- no colors into a pipe
    -- January 2026 starts on a Thursday; 31 D, 5 P, 18 W, 11 W, 24 x
    assert.matches("19x 20x 21x 22x 23x 24x 25D", out)
    assert.matches("26D 27D 28D 29D 30D 31D", out)
    assert.matches(" 5P ", out)
    assert.matches("17x 18W", out)
    assert.matches("31M", out)            -- 2025-12-31, keep-monthly
    assert.matches("%s1x  2x  3x  4x", out)
  end)

  it("runs in a subprocess with the real exit status", function()
    local status, out, err = run_sub({ "--dry-run", "--json", "--keep-last", "1", dir })
    assert.equal(0, status)
    assert.equal("", err)
    assert.equal(48, #cjson.decode(out))
    status, out, err = run_sub({ "--bogus", dir })
    assert.equal(2, status)
    assert.matches("^vma prune: unknown option '%-%-bogus'\n$", err)
    status = run_sub({ dir .. "/missing" })
    assert.equal(1, status)
  end)

  it("loads NAME from $XDG_CONFIG_HOME/vma/policies in a subprocess", function()
    local xdg = tmpdir()
    os.execute("mkdir -p " .. shell_quote(xdg .. "/vma/policies"))
    touch(xdg .. "/vma/policies/newest-only.lua",
      "return { description = 'x', mark = function(bs, o, rules) rules.keep(bs[1], 'newest') end }")
    local status, out, err = run_sub({ "--policy", "newest-only", "--json", "--dry-run", "--vmid", "101", dir },
      "XDG_CONFIG_HOME=" .. shell_quote(xdg))
    assert.equal(0, status, err)
    local list = cjson.decode(out)
    assert.same({ "keep", "remove" }, { list[1].mark, list[2].mark })
    assert.equal("newest", list[1].reason)
    rmtree(xdg)
  end)

  local vma = os.getenv("VMA_BIN") or (ROOT .. "/build/vma")
  it("works through " .. vma, function()
    assert.is_true(exists(vma), vma .. " is not built (make check builds it)")
    local qv = shell_quote(vma)
    local p = io.popen(qv .. " prune --dry-run --json --keep-last 1 " .. shell_quote(dir) .. " 2>/dev/null")
    local out = p:read("a")
    local _, _, status = p:close()
    assert.equal(0, status)
    assert.equal(48, #cjson.decode(out))
    p = io.popen(qv .. " prune --nope " .. shell_quote(dir) .. " 2>&1")
    out = p:read("a")
    _, _, status = p:close()
    assert.equal(2, status)
    assert.matches("vma prune: unknown option", out)
  end)
end)
