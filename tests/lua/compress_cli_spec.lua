-- Compressed archives written by `vma create` and vma.create: the zstd
-- seekable format (seek table, independent frames), the same bytes for any
-- thread count, levels per codec, --compress raw, lzop's messages, and the
-- compression ratio against one zstd stream.
local H = require "helper"
local vma = require "vma"

local UUID = "0123456789abcdef0123456789abcdef"
local CTIME = 1700000000
local LUA = os.getenv("LUA") or "lua5.4"

-- the seek table at the end of a zstd seekable file: { {csize, dsize}... }
-- and the offset where the skippable frame that holds it begins, or nil, why
local function seek_table(z)
  if #z < 17 then return nil, "too short" end
  local nf, desc, magic = string.unpack("<I4 B I4", z, #z - 8)
  if magic ~= 0x8F92EAB1 then return nil, "no seekable magic" end
  if desc ~= 0 then return nil, "descriptor " .. desc end
  local tsize = 8 * nf + 9
  local at = #z - tsize - 8 -- 0-based offset of the skippable frame
  if at < 0 then return nil, "table larger than the file" end
  local smagic, fsize = string.unpack("<I4 I4", z, at + 1)
  if smagic ~= 0x184D2A5E then return nil, "no skippable frame" end
  if fsize ~= tsize then return nil, "frame size " .. fsize .. ", want " .. tsize end
  local t = {}
  for i = 0, nf - 1 do
    local c, d = string.unpack("<I4 I4", z, at + 9 + 8 * i)
    t[#t + 1] = { c, d }
  end
  return t, at
end

-- a compressible disk image: text-like, random and zero 64 KiB clusters
local function mixed_image(path, mib)
  local rc = H.sh("head -c " .. (mib << 20) .. " /dev/urandom | " .. H.q(LUA) .. " "
    .. H.q(H.root .. "/bench/mkimage.lua") .. " " .. H.q(path) .. " " .. (mib << 20) .. " 65536 mixed")
  assert(rc == 0, "mkimage.lua failed")
end

-- an archive of one image through the module, with a fixed uuid and ctime
local function write_archive(path, img, opts)
  local o = { uuid = UUID, ctime = CTIME, overwrite = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  local w = assert(vma.create(path, o))
  local id = assert(w:add_device("drive-scsi0", assert(vma.os.stat(img)).size))
  assert(w:add_config("qemu-server.conf", "memory: 512\n"))
  assert(w:write_device(id, img))
  assert(w:close())
end

local function decompress(prog, path)
  local rc, out = H.sh(prog .. " -dc " .. H.q(path))
  assert(rc == 0, prog .. " -dc failed")
  return out
end

describe("zstd archives", function()
  local dir, img
  lazy_setup(function()
    dir = H.tmpdir()
    img = dir .. "/mixed.img"
    mixed_image(img, 24)
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("have a seek table whose frames decompress alone to their byte ranges", function()
    local arch = dir .. "/a.vma.zst"
    local rc, _, err = H.vma("create", "-f", arch, img)
    assert.are.equal(0, rc, err)
    local z = H.read(arch)
    local t, at = seek_table(z)
    assert.is_table(t, at)
    assert.is_true(#t >= 3, "a 24 MiB image makes several frames")
    local plain = decompress("zstd", arch)
    local coff, doff = 0, 0
    for i, e in ipairs(t) do
      local f = dir .. "/frame.zst"
      H.write(f, z:sub(coff + 1, coff + e[1]))
      local got = decompress("zstd", f)
      assert.are.equal(e[2], #got, "frame " .. i .. " size")
      assert.is_true(got == plain:sub(doff + 1, doff + e[2]), "frame " .. i .. " bytes")
      -- frames are larger than an extent: each begins with the header or an extent
      assert.is_true(got:sub(1, 4) == (i == 1 and "VMA\0" or "VMAE"), "frame " .. i .. " start")
      assert.is_true(e[2] < 2 * 4 * 1048576, "frame " .. i .. " below 8 MiB")
      coff, doff = coff + e[1], doff + e[2]
    end
    assert.are.equal(at, coff)
    assert.are.equal(#plain, doff)
    assert.are.equal(0, (H.sh("zstd -q -t " .. H.q(arch))))
  end)

  it("decompress to the plain archive with the same uuid and ctime (zstd and gzip)", function()
    write_archive(dir .. "/p.vma", img, { compress = "none" })
    write_archive(dir .. "/p.vma.zst", img, { compress = "zstd" })
    write_archive(dir .. "/p.vma.gz", img, { compress = "gzip", level = 1 })
    local plain = H.read(dir .. "/p.vma")
    assert.are.equal("VMA\0", plain:sub(1, 4))
    assert.is_true(decompress("zstd", dir .. "/p.vma.zst") == plain, "zstd -dc")
    assert.is_true(decompress("gzip", dir .. "/p.vma.gz") == plain, "gzip -dc")
    assert.are.equal(0, (H.sh("gzip -t " .. H.q(dir .. "/p.vma.gz"))))
  end)

  it("are the same bytes with 1 and 4 threads (zstd and gzip)", function()
    for _, c in ipairs { { "zstd", 3 }, { "gzip", 1 } } do
      write_archive(dir .. "/t1", img, { compress = c[1], level = c[2], threads = 1 })
      write_archive(dir .. "/t4", img, { compress = c[1], level = c[2], threads = 4 })
      write_archive(dir .. "/t0", img, { compress = c[1], level = c[2] })
      local a = H.read(dir .. "/t1")
      assert.is_true(a == H.read(dir .. "/t4"), c[1] .. ": 1 and 4 threads")
      assert.is_true(a == H.read(dir .. "/t0"), c[1] .. ": 1 thread and one per core")
    end
  end)

  it("are read by verify and extract, also as zstd -dc | vma extract -", function()
    local arch = dir .. "/r.vma.zst"
    local rc, _, err = H.vma("create", "-f", "--threads", "3", arch, img)
    assert.are.equal(0, rc, err)
    rc, _, err = H.vma("verify", arch)
    assert.are.equal(0, rc, err)
    rc, _, err = H.vma("extract", arch, dir .. "/x1")
    assert.are.equal(0, rc, err)
    assert.is_true(H.read(img) == H.read(dir .. "/x1/disk-disk0.raw"), "extract")
    rc, _, err = H.sh("zstd -dc " .. H.q(arch) .. " | " .. H.q(H.bin) .. " extract - " .. H.q(dir .. "/x2"))
    assert.are.equal(0, rc, err)
    assert.is_true(H.read(img) == H.read(dir .. "/x2/disk-disk0.raw"), "zstd -dc | extract -")
    H.rm(dir .. "/x1")
    H.rm(dir .. "/x2")
  end)

  it("recompress writes the same seekable frames, with --threads and checked levels", function()
    write_archive(dir .. "/rc.vma", img, { compress = "none" })
    write_archive(dir .. "/rc-direct.vma.zst", img, { compress = "zstd", threads = 1 })
    local rc, _, err = H.vma("recompress", "-q", "--threads", "3", dir .. "/rc.vma", dir .. "/rc.vma.zst")
    assert.are.equal(0, rc, err)
    -- frames depend only on the archive's bytes: the same file as written directly
    assert.is_true(H.read(dir .. "/rc.vma.zst") == H.read(dir .. "/rc-direct.vma.zst"))
    rc, _, err = H.vma("recompress", "--level", "20", dir .. "/rc.vma", dir .. "/rc2.vma.zst")
    assert.are.equal(2, rc)
    assert.matches("%-%-level 20 is out of range for zstd %(1%.%.19%)", err)
    rc, _, err = H.vma("recompress", "--threads", "-3", dir .. "/rc.vma", dir .. "/rc2.vma.gz")
    assert.are.equal(2, rc, err)
    assert.is_false(H.exists(dir .. "/rc2.vma.zst"))
    assert.is_false(H.exists(dir .. "/rc2.vma.gz"))
  end)

  it("compress within 3% of one zstd -3 stream of the same bytes", function()
    local arch = dir .. "/ratio.vma.zst"
    local rc, _, err = H.vma("create", "-f", arch, img)
    assert.are.equal(0, rc, err)
    local framed = #H.read(arch)
    local out
    rc, out = H.sh("zstd -dc " .. H.q(arch) .. " | zstd -3 --single-thread -c | wc -c")
    assert.are.equal(0, rc)
    local single = tonumber(out:match("%d+"))
    assert.is_true(framed <= single * 1.03,
      string.format("framed %d bytes, one stream %d (%.2f%%)", framed, single, 100 * (framed / single - 1)))
  end)
end)

describe("compression options", function()
  local dir
  local F = H.fixtures .. "/proxmox/a-two-drives/disk0.raw"
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("create refuses a level out of the codec's range as a usage error", function()
    local cases = {
      { { "--level", "20" }, "a.vma.zst", "%-%-level 20 is out of range for zstd %(1%.%.19%)" },
      { { "--level", "0" }, "a.vma.zst", "out of range for zstd" },
      { { "--level=-1" }, "a.vma.zst", "out of range for zstd" },
      { { "--level", "10" }, "a.vma.gz", "out of range for gzip %(1%.%.9%)" },
      { { "--level", "10" }, "a.vma.lzo", "out of range for lzo %(1%.%.9%)" },
      { { "--level", "3" }, "a.vma", "not allowed without compression" },
      { { "--level", "3", "--compress", "raw" }, "a.vma.zst", "not allowed without compression" },
      { { "--level", "2.5" }, "a.vma.zst", "%-%-level 2%.5 is out of range for zstd %(1%.%.19%)" },
      { { "--threads", "1.5" }, "a.vma.zst", "%-%-threads 1%.5 is out of range" },
      { { "--threads=-1" }, "a.vma.zst", "%-%-threads %-1 is out of range" },
      { { "--threads", "257" }, "a.vma.zst", "out of range" },
    }
    for _, c in ipairs(cases) do
      local args = { "create" }
      for _, a in ipairs(c[1]) do args[#args + 1] = a end
      args[#args + 1] = dir .. "/" .. c[2]
      args[#args + 1] = F
      local rc, _, err = H.vma(table.unpack(args))
      assert.are.equal(2, rc, table.concat(c[1], " ") .. ": " .. err)
      assert.matches(c[3], err)
      assert.are.same({}, H.ls(dir))
    end
  end)

  it("create takes the levels of each codec, --threads and --compress raw", function()
    for _, c in ipairs { { "1", "a.vma.zst" }, { "19", "b.vma.zst" }, { "1", "c.vma.gz" },
                         { "9", "d.vma.gz" }, { "1", "e.vma.lzo" }, { "9", "f.vma.lzo" } } do
      local arch = dir .. "/" .. c[2]
      local rc, _, err = H.vma("create", "--level", c[1], "--threads", "2", arch, F)
      assert.are.equal(0, rc, c[2] .. ": " .. err)
      rc, _, err = H.vma("verify", arch)
      assert.are.equal(0, rc, c[2] .. ": " .. err)
    end
    local rc, _, err = H.vma("create", "--compress", "raw", dir .. "/raw.vma.zst", F)
    assert.are.equal(0, rc, err)
    assert.are.equal("VMA\0", H.read(dir .. "/raw.vma.zst"):sub(1, 4))
  end)

  it("vma.create refuses bad levels and thread counts with an argument error", function()
    local cases = {
      { { compress = "zstd", level = 20 }, "out of range for zstd" },
      { { compress = "gzip", level = 10 }, "out of range for gzip" },
      { { compress = "lzo", level = 0.5 }, "must be an integer" },
      { { compress = "none", level = 3 }, "takes no compression level" },
      { { level = 1 }, "takes no compression level" },
      { { compress = "zstd", level = "3" }, "must be an integer" },
      { { compress = "zstd", threads = -1 }, "threads must be 0" },
      { { compress = "gzip", threads = 1000 }, "threads must be 0" },
      { { compress = "gzip", threads = 1.5 }, "threads must be an integer" },
    }
    for _, c in ipairs(cases) do
      local w, msg, kind = vma.create(dir .. "/x.vma", c[1])
      assert.is_nil(w)
      assert.matches(c[2], msg)
      assert.are.equal("argument", kind)
    end
    assert.are.same({}, H.ls(dir))
    assert.are.same({ min = 1, max = 19, default = 3 }, vma.compress_levels.zstd)
    assert.are.same({ min = 1, max = 9, default = 6 }, vma.compress_levels.gzip)
    assert.are.same({ min = 1, max = 9, default = 3 }, vma.compress_levels.lzo)
    assert.are.same({}, vma.compress_levels.none)
    local w = assert(vma.create(dir .. "/ok.vma", { compress = "none", level = 0, threads = 0 }))
    w:abort()
  end)

  it("a truncated lzo archive is reported in one line", function()
    local img = dir .. "/big.raw"
    H.random_file(img, 3 << 20)
    local arch = dir .. "/a.vma.lzo"
    local rc, _, err = H.vma("create", arch, img)
    assert.are.equal(0, rc, err)
    H.write(dir .. "/cut.vma.lzo", H.read(arch):sub(1, 1 << 20))
    rc, _, err = H.vma("verify", dir .. "/cut.vma.lzo")
    assert.are.equal(1, rc)
    assert.are.equal("vma verify: the lzo stream is truncated\n", err)
  end)
end)
