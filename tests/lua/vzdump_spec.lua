-- busted --lpath='lua/?.lua;lua/?/init.lua' tests/lua/vzdump_spec.lua
local vzdump = require "vma.vzdump"
local H = require "helper"
local lfs = require "lfs"

local tmpdir = H.tmpdir

local function rmtree(path)
  for name in lfs.dir(path) do
    if name ~= "." and name ~= ".." then
      local p = path .. "/" .. name
      if lfs.attributes(p, "mode") == "directory" then rmtree(p) else os.remove(p) end
    end
  end
  lfs.rmdir(path)
end

local function touch(path, content) H.write(path, content or "") end

describe("vzdump.parse", function()
  it("parses a qemu vma.zst name", function()
    local b = vzdump.parse("vzdump-qemu-100-2026_01_31-02_00_00.vma.zst")
    assert.is_table(b)
    assert.equal("qemu", b.type)
    assert.equal("100", b.vmid)
    assert.equal("vzdump-qemu-100-2026_01_31-02_00_00", b.base)
    assert.equal("vma.zst", b.ext)
    assert.equal("vma", b.format)
    assert.equal("zst", b.compression)
    assert.same({ 2026, 1, 31, 2, 0, 0 }, { b.year, b.month, b.day, b.hour, b.min, b.sec })
    assert.equal(1769824800, b.ctime)     -- date -u -d '2026-01-31 02:00:00' +%s
    assert.equal(b.ctime, b.time)
    assert.equal("vzdump-qemu-100-2026_01_31-02_00_00.vma.zst", b.file)
  end)

  it("accepts every type, format and compression", function()
    for _, t in ipairs({ "qemu", "lxc", "openvz" }) do
      for _, ext in ipairs({ "vma", "tar", "vma.zst", "vma.lzo", "vma.gz", "vma.bz2",
                             "tar.zst", "tar.lzo", "tar.gz", "tar.bz2", "tgz" }) do
        local name = "vzdump-" .. t .. "-1234-2020_02_29-23_59_59." .. ext
        local b = vzdump.parse(name)
        assert.is_table(b, name)
        assert.equal(t, b.type)
        assert.equal(ext, b.ext)
      end
    end
    local tgz = vzdump.parse("vzdump-lxc-101-2020_01_01-00_00_00.tgz")
    assert.equal("tar", tgz.format)
    assert.equal("gz", tgz.compression)
  end)

  it("accepts vmids of 3 to 9 digits", function()
    assert.is_table(vzdump.parse("vzdump-qemu-100-2020_01_01-00_00_00.vma"))
    assert.is_table(vzdump.parse("vzdump-qemu-999999999-2020_01_01-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-99-2020_01_01-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-1000000000-2020_01_01-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-0100-2020_01_01-00_00_00.vma"))
  end)

  it("rejects names that are not archives", function()
    for _, name in ipairs({
      "vzdump-qemu-100-2026_01_31-02_00_00.log",
      "vzdump-qemu-100-2026_01_31-02_00_00.notes",
      "vzdump-qemu-100-2026_01_31-02_00_00.vma.zst.notes",
      "vzdump-qemu-100-2026_01_31-02_00_00.vma.zst.protected",
      "vzdump-qemu-100-2026_01_31-02_00_00.vma.xz",
      "vzdump-qemu-100-2026_01_31-02_00_00.tgz.zst",
      "vzdump-qemu-100-2026_01_31-02_00_00.iso",
      "vzdump-qemu-100-2026_01_31-02_00_00",
      "vzdump-kvm-100-2026_01_31-02_00_00.vma",
      "vzdump-100-renamed.vma.zst",
      "vzdump-lxc-novmid.tar.gz",
      "xvzdump-qemu-100-2026_01_31-02_00_00.vma",
      "vzdump-qemu-100-2026_01_31-02_00_00.vma.zst.tmp",
      "vzdump-qemu-100-2026_1_31-02_00_00.vma",
      "vzdump-qemu-100-2026_01_31-2_00_00.vma",
      "random.txt", "", ".", "..",
    }) do
      assert.is_nil(vzdump.parse(name), name)
    end
    assert.is_nil(vzdump.parse(nil))
  end)

  it("rejects impossible dates and times", function()
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2023_02_29-00_00_00.vma"))
    assert.is_table(vzdump.parse("vzdump-qemu-100-2024_02_29-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-1900_02_29-00_00_00.vma"))
    assert.is_table(vzdump.parse("vzdump-qemu-100-2000_02_29-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_13_01-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_00_01-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_04_31-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_01_00-00_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_01_01-24_00_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_01_01-00_60_00.vma"))
    assert.is_nil(vzdump.parse("vzdump-qemu-100-2026_01_01-00_00_60.vma"))
  end)

  it("computes times as UTC seconds of the wall clock, sortable", function()
    assert.equal(0, vzdump.parse("vzdump-qemu-100-1970_01_01-00_00_00.vma").ctime)
    assert.equal(83, vzdump.parse("vzdump-lxc-321-1970_01_01-00_01_23.tar.zst").ctime)
    assert.equal(60 * 60 * 24 * (365 * 100 + 25) + 60,
      vzdump.parse("vzdump-lxc-321-2070_01_01-00_01_00.tar.zst").ctime)
    assert.equal(1577881101, vzdump.parse("vzdump-qemu-1234-2020_01_01-12_18_21.tar.zst").ctime)
    assert.equal(-86400, vzdump.parse("vzdump-qemu-100-1969_12_31-00_00_00.vma").ctime)
    local a = vzdump.parse("vzdump-qemu-100-2026_03_29-01_59_59.vma")
    local b = vzdump.parse("vzdump-qemu-100-2026_03_29-02_30_00.vma")  -- a DST gap in Europe
    assert.equal(1801, b.time - a.time)
  end)

  it("agrees with os.date('!*t') for many times", function()
    for t = -5000000000, 7000000000, 9876543 do
      local d = os.date("!*t", t)
      assert.equal(t, vzdump.to_time(d.year, d.month, d.day, d.hour, d.min, d.sec))
      local f = vzdump.from_time(t)
      assert.same({ d.year, d.month, d.day, d.hour, d.min, d.sec },
        { f.year, f.month, f.day, f.hour, f.min, f.sec })
      assert.equal((d.wday + 5) % 7 + 1, vzdump.weekday(d.year, d.month, d.day))
    end
  end)

  it("round-trips civil dates", function()
    for days = -800000, 800000, 997 do
      local y, m, d = vzdump.civil_from_days(days)
      assert.equal(days, vzdump.days_from_civil(y, m, d))
    end
    assert.equal(0, vzdump.days_from_civil(1970, 1, 1))
    assert.equal(11016, vzdump.days_from_civil(2000, 2, 29))
  end)

  it("formats names and round-trips", function()
    local name = vzdump.format({ type = "lxc", vmid = 101, year = 2024, month = 12, day = 31,
                                 hour = 23, min = 30, sec = 5, ext = "tar.zst" })
    assert.equal("vzdump-lxc-101-2024_12_31-23_30_05.tar.zst", name)
    local b = vzdump.parse(name)
    assert.equal(name, vzdump.format({ type = b.type, vmid = b.vmid, time = b.time, ext = b.ext }))
    assert.equal("vzdump-qemu-100-1970_01_01-00_00_00.vma",
      vzdump.format({ vmid = "100", time = 0 }))
    assert.equal("vzdump-qemu-100-1970_01_01-00_00_00.vma.lzo",
      vzdump.format({ vmid = "100", time = 0, format = "vma", compression = "lzo" }))
    assert.has_error(function() vzdump.format({ type = "kvm", vmid = 100, time = 0 }) end)
    assert.has_error(function() vzdump.format({ vmid = 10, time = 0 }) end)
    assert.has_error(function() vzdump.format({ vmid = 100, time = 0, ext = "zip" }) end)
    assert.has_error(function()
      vzdump.format({ vmid = 100, year = 2023, month = 2, day = 29 })
    end)
  end)

  it("names side files", function()
    local b = vzdump.parse("vzdump-qemu-100-2026_01_31-02_00_00.vma.zst")
    assert.equal("vzdump-qemu-100-2026_01_31-02_00_00.log", vzdump.log_name(b))
    assert.same({ "vzdump-qemu-100-2026_01_31-02_00_00.vma.zst.notes",
                  "vzdump-qemu-100-2026_01_31-02_00_00.notes" }, vzdump.notes_names(b))
    assert.equal("vzdump-qemu-100-2026_01_31-02_00_00.vma.zst.protected", vzdump.protected_name(b))
    assert.equal("qemu/100", vzdump.group_key(b))
    assert.equal("2026-01-31 02:00:00", vzdump.time_string(b))
  end)
end)

describe("vzdump.group", function()
  it("groups by type and vmid, newest first, groups sorted", function()
    local list = {}
    for _, n in ipairs({
      "vzdump-qemu-100-2026_01_01-00_00_00.vma",
      "vzdump-qemu-1000-2026_01_03-00_00_00.vma",
      "vzdump-qemu-100-2026_01_02-00_00_00.vma.zst",
      "vzdump-lxc-100-2026_01_05-00_00_00.tar",
      "vzdump-qemu-200-2026_01_01-00_00_00.vma",
    }) do list[#list + 1] = vzdump.parse(n) end
    local groups = vzdump.group(list)
    local keys = {}
    for i, g in ipairs(groups) do keys[i] = g.key end
    assert.same({ "lxc/100", "qemu/100", "qemu/200", "qemu/1000" }, keys)
    assert.equal("vzdump-qemu-100-2026_01_02-00_00_00.vma.zst", groups[2].backups[1].file)
    assert.equal("vzdump-qemu-100-2026_01_01-00_00_00.vma", groups[2].backups[2].file)
  end)
end)

describe("vzdump.scan", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rmtree(dir) end)

  it("finds archives with their side files and ignores the rest", function()
    touch(dir .. "/vzdump-qemu-100-2026_01_31-02_00_00.vma.zst", "12345")
    touch(dir .. "/vzdump-qemu-100-2026_01_31-02_00_00.log", "log")
    touch(dir .. "/vzdump-qemu-100-2026_01_31-02_00_00.vma.zst.notes", "my notes\n\n")
    touch(dir .. "/vzdump-qemu-100-2026_01_30-02_00_00.vma.zst")
    touch(dir .. "/vzdump-qemu-100-2026_01_30-02_00_00.vma.zst.protected")
    touch(dir .. "/vzdump-qemu-100-2026_01_29-02_00_00.vma")
    touch(dir .. "/vzdump-qemu-100-2026_01_29-02_00_00.notes", "base notes")
    touch(dir .. "/vzdump-lxc-101-2026_01_15-02_00_00.tar.zst")
    touch(dir .. "/vzdump-qemu-100-renamed.vma.zst")
    touch(dir .. "/notes.txt")
    assert(lfs.mkdir(dir .. "/vzdump-qemu-100-2026_01_01-02_00_00.vma"))  -- a directory
    local groups, list = vzdump.scan(dir)
    assert.is_table(groups)
    assert.equal(4, #list)
    assert.equal(2, #groups)
    assert.equal("lxc/101", groups[1].key)
    local q = groups[2]
    assert.equal("qemu/100", q.key)
    assert.equal("qemu", q.type)
    assert.equal("100", q.vmid)
    assert.equal(3, #q.backups)
    local b1, b2, b3 = q.backups[1], q.backups[2], q.backups[3]
    assert.equal("vzdump-qemu-100-2026_01_31-02_00_00.vma.zst", b1.file)
    assert.equal(dir .. "/" .. b1.file, b1.path)
    assert.equal(5, b1.size)
    assert.is_false(b1.protected)
    assert.equal(dir .. "/vzdump-qemu-100-2026_01_31-02_00_00.log", b1.log)
    assert.equal("my notes", b1.notes)
    assert.equal(dir .. "/" .. b1.file .. ".notes", b1.notes_path)
    assert.is_true(b2.protected)
    assert.is_nil(b2.log)
    assert.is_nil(b2.notes)
    assert.is_nil(b2.notes_path)
    assert.equal("base notes", b3.notes)
    assert.equal(dir .. "/vzdump-qemu-100-2026_01_29-02_00_00.notes", b3.notes_path)
  end)

  it("filters by type and vmid", function()
    touch(dir .. "/vzdump-qemu-100-2026_01_31-02_00_00.vma.zst")
    touch(dir .. "/vzdump-lxc-100-2026_01_31-02_00_00.tar.zst")
    touch(dir .. "/vzdump-qemu-101-2026_01_31-02_00_00.vma.zst")
    local g = vzdump.scan(dir, { type = "qemu" })
    assert.equal(2, #g)
    g = vzdump.scan(dir, { vmid = 100 })
    assert.equal(2, #g)
    g = vzdump.scan(dir, { vmid = "100", type = "lxc" })
    assert.equal(1, #g)
    assert.equal("lxc/100", g[1].key)
  end)

  it("returns an empty list for an empty directory", function()
    local groups, list = vzdump.scan(dir .. "/")
    assert.same({}, groups)
    assert.same({}, list)
  end)

  it("fails on a missing directory or a file", function()
    local g, err = vzdump.scan(dir .. "/nope")
    assert.is_nil(g)
    assert.matches("cannot open directory", err)
    touch(dir .. "/file")
    g, err = vzdump.scan(dir .. "/file")
    assert.is_nil(g)
    assert.matches("not a directory", err)
  end)
end)
