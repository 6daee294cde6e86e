-- The Lua disk API (r:disk, d:read, d:extents) at random offsets against the
-- raw images, on a plain and a seekable zstd archive made at check time;
-- and examples/partition-table.lua on partitioned disks.
local H = require "helper"
local A = require "accesshelp"
local vma = require "vma"

local ONLY_CLI = (os.getenv("VMA_ONLY_CLI") or "") ~= ""
local describe_ = ONLY_CLI and pending or describe

describe_("the disk API", function()
  local dir, fx

  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
  end)

  teardown(function() H.rm(dir) end)

  local function range(path, off, len)
    local f = assert(io.open(path, "rb"))
    f:seek("set", off)
    local d = f:read(len) or ""
    f:close()
    return d
  end

  local function archives()
    local t = { fx.plain }
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
    if fx.zst then t[2] = fx.zst end
    return t
  end

  it("d:read at random offsets equals the raw image", function()
    math.randomseed(12)
    for _, archive in ipairs(archives()) do
      local r = assert(vma.open(archive, { cache = "off" }))
      for _, name in ipairs(fx.names) do
        local d = assert(r:disk(name))
        local raw = fx.disks[name]
        local size = vma.os.stat(raw).size
        assert.are.equal(size, d.size)
        for i = 1, 300 do
          local off, len
          if i % 3 == 0 then -- near cluster and block boundaries
            off = math.random(0, size // 65536 - 1) * 65536 + math.random(-5, 5) * 1
            if off < 0 then off = 0 end
            len = math.random(1, 9000)
          elseif i % 3 == 1 then
            off, len = math.random(0, size - 1), math.random(1, 300000)
          else
            off, len = math.random(0, size // 4096 - 1) * 4096, 4096
          end
          local got = assert(d:read(off, len))
          local want = range(raw, off, len)
          assert.is_true(got == want, string.format("%s %s at %d+%d", archive, name, off, len))
        end
        assert.are.equal("", d:read(size, 10))
        assert.are.equal(10, #d:read(size - 10, 100))
        d:close()
      end
      r:close()
    end
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
  end)

  it("d:extents covers the disk in order, and its data and zero pieces match the image", function()
    local r = assert(vma.open(fx.plain))
    for _, name in ipairs(fx.names) do
      local d = assert(r:disk(name))
      local pos, data = 0, 0
      for off, len, kind in d:extents() do
        assert.are.equal(pos, off)
        assert.is_true(kind == "data" or kind == "zero", kind)
        if kind == "zero" then
          assert.is_falsy(range(fx.disks[name], off, math.min(len, 1 << 20)):find("[^\0]"))
        else
          data = data + len
        end
        pos = off + len
      end
      assert.are.equal(d.size, pos)
      if name == "drive-virtio1" then assert.is_true(data < 2 * A.MiB, tostring(data)) end
      d:close()
    end
    r:close()
  end)

  it("a seekable .vma.zst written by vma create", function()
    if not A.have("zstd") then pending("needs zstd (not installed)") return end
    local z = dir .. "/created.vma.zst"
    local rc, _, err = H.vma("create", z, "drive-sata0=" .. fx.disks["drive-sata0"])
    assert.are.equal(0, rc, err)
    local r = assert(vma.open(z))
    local d = assert(r:disk("drive-sata0"))
    assert.is_true(d:read(12345, 100000) == range(fx.disks["drive-sata0"], 12345, 100000))
    d:close()
    r:close()
  end)

  -- the spill file of a compressible .vma.zst: open (unlinked) in spill_dir
  -- once frames were read out of order, none with spill_mb = 0
  local function spill_files(sdir)
    local _, out = H.sh("ls -l /proc/" .. vma.os.getpid() .. "/fd")
    local n = 0
    for _ in out:gmatch(sdir:gsub("%p", "%%%0") .. "/[^\n]-%(deleted%)") do n = n + 1 end
    return n
  end

  it("random reads of a compressible .vma.zst: right with and without the spill file", function()
    if not A.have("zstd") then pending("needs zstd (not installed)") return end
    local img = dir .. "/text.img"
    local words = { "backup", "of", "the", "disk", "cluster", "frame", "zstd", "archive" }
    math.randomseed(7)
    local parts = {}
    for i = 1, 40000 do parts[i] = words[math.random(#words)] end
    local chunk = table.concat(parts, " ") -- about 230 KiB
    local f = assert(io.open(img, "wb"))
    for i = 1, 100 do f:write(string.format("%08d", i), chunk) end -- about 23 MiB
    f:close()
    local z = dir .. "/text.vma.zst"
    local rc, _, err = H.vma("create", z, "drive-scsi0=" .. img)
    assert.are.equal(0, rc, err)
    local sdir = dir .. "/spill"
    assert.are.equal(0, (H.sh("mkdir " .. H.q(sdir))))
    local size = #range(img, 0, 1 << 30)
    for _, mb in ipairs({ false, 0 }) do
      local r = assert(vma.open(z, { cache = "off", frame_cache_mb = 1, spill_dir = sdir,
        spill_mb = mb or nil }))
      local d = assert(r:disk("drive-scsi0"))
      math.randomseed(11)
      for _ = 1, 2 do
        for _ = 1, 60 do
          local off = math.random(0, size // 4096 - 1) * 4096
          assert.is_true(d:read(off, 4096) == range(img, off, 4096))
        end
      end
      assert.are.equal(mb == 0 and 0 or 1, spill_files(sdir))
      d:close()
      r:close()
      assert.are.equal(0, spill_files(sdir))
      assert.are.same({}, H.ls(sdir))
    end
    local r, rerr, kind = vma.open(z, { spill_mb = "many" })
    assert.is_nil(r)
    assert.matches("spill_mb must be an integer", rerr)
    assert.are.equal("argument", kind)
  end)
end)

describe_("examples/partition-table.lua", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rm(dir) end)

  local function run_example(archive)
    local cpath = A.root .. "/build/?.so;;"
    return H.sh("LUA_CPATH=" .. H.q(cpath) .. " lua5.4 " .. H.q(A.root .. "/examples/partition-table.lua")
      .. " " .. H.q(archive))
  end

  it("prints an MBR written by hand", function()
    local img = dir .. "/mbr.img"
    local e = {}
    local function entry(boot, ty, start, count)
      return string.pack("<B BBB B BBB I4 I4", boot, 0, 0, 0, ty, 0, 0, 0, start, count)
    end
    e[1] = entry(0x80, 0x83, 2048, 40960)
    e[2] = entry(0, 0x82, 43008, 8192)
    e[3] = entry(0, 0x8e, 51200, 79872)
    e[4] = string.rep("\0", 16)
    local mbr = string.rep("\0", 440) .. string.pack("<I4", 0xdeadbeef) .. "\0\0"
      .. table.concat(e) .. "\x55\xaa"
    assert.are.equal(512, #mbr)
    H.image(img, 64 * A.MiB, { { 0, mbr }, { 2048 * 512, "data" } })
    local a = dir .. "/mbr.vma"
    assert.are.equal(0, (H.vma("create", a, "drive-scsi0=" .. img)))
    local rc, out, err = run_example(a)
    assert.are.equal(0, rc, err)
    assert.matches("drive%-scsi0: 64%.0 MiB", out)
    assert.matches("MBR, disk signature 0xdeadbeef", out)
    assert.matches("\n%s+1%s+%*%s+2048%s+40960%s+20%.0 MiB%s+0x83 Linux\n", out)
    assert.matches("\n%s+2%s+43008%s+8192%s+4%.0 MiB%s+0x82 Linux swap\n", out)
    assert.matches("\n%s+3%s+51200%s+79872%s+39%.0 MiB%s+0x8e Linux LVM\n", out)
  end)

  it("prints a GPT made by sgdisk (or sfdisk)", function()
    local img = dir .. "/gpt.img"
    os.execute("truncate -s 64M " .. H.q(img))
    if A.have("sgdisk") then
      A.sh_ok("PATH=$PATH:/sbin:/usr/sbin sgdisk -o -n 1:2048:+8M -t 1:ef00 -c 1:esp "
        .. "-n 2:0:+40M -t 2:8300 -c 2:root -n 3:0:0 -t 3:8200 -c 3:swap " .. H.q(img) .. " >/dev/null 2>&1")
    elseif A.have("sfdisk") then
      A.sh_ok("printf 'label: gpt\\nstart=2048, size=16384, type=U, name=esp\\n"
        .. "size=81920, type=L, name=root\\ntype=S, name=swap\\n' | PATH=$PATH:/sbin:/usr/sbin sfdisk -q "
        .. H.q(img))
    else
      pending("needs sgdisk or sfdisk (not installed) to make a GPT")
      return
    end
    local a = dir .. "/gpt.vma"
    assert.are.equal(0, (H.vma("create", a, "drive-virtio0=" .. img)))
    local rc, out, err = run_example(a)
    assert.are.equal(0, rc, err)
    assert.matches("drive%-virtio0: 64%.0 MiB", out)
    assert.matches("GPT, disk %x+%-", out)
    assert.matches("\n%s+1%s+2048%s+18431%s+8%.0 MiB%s+EFI System%s+esp\n", out)
    assert.matches("\n%s+2%s+18432%s+100351%s+40%.0 MiB%s+Linux filesystem%s+root\n", out)
    assert.matches("\n%s+3%s+100352%s+%d+%s+[%d.]+ MiB%s+Linux swap%s+swap\n", out)
  end)

  it("a disk without a table, and a bad archive", function()
    local img = dir .. "/blank.img"
    os.execute("truncate -s 1M " .. H.q(img))
    local a = dir .. "/blank.vma"
    assert.are.equal(0, (H.vma("create", a, "drive-scsi1=" .. img)))
    local rc, out = run_example(a)
    assert.are.equal(0, rc)
    assert.matches("no partition table", out)
    H.write(dir .. "/bad.vma", "nonsense")
    local err
    rc, _, err = run_example(dir .. "/bad.vma")
    assert.are.equal(1, rc)
    assert.matches("partition%-table%.lua: ", err)
  end)
end)
