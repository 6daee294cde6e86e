-- Device names: one rule for every front end (vma_header_find_device in C,
-- vma.find_device and r:find_device in Lua): the exact device name first,
-- then the config key ("scsi0" for "drive-scsi0"); a short name that two
-- devices answer to is an error naming both. Checked on archives made here
-- whose devices are named "drive-scsi0" and "scsi0" (in that order, so a
-- lookup that tries the alias first finds the wrong one).
local H = require "helper"
local A = require "accesshelp"
local vma = require "vma"

local MiB = 1024 * 1024

--- An archive of the devices { {name, image path}, ... } in that order.
local function make_archive(path, devs)
  local w = assert(vma.create(path))
  local ids = {}
  for i, d in ipairs(devs) do
    local st = assert(vma.os.stat(d[2]))
    ids[i] = assert(w:add_device(d[1], st.size))
  end
  for i, d in ipairs(devs) do assert(w:write_device(ids[i], d[2])) end
  assert(w:close())
end

describe("device names: the exact name first, on every front end", function()
  local dir, arc, img_drive, img_plain
  setup(function()
    dir = H.tmpdir()
    img_drive = dir .. "/drive-scsi0.img"
    img_plain = dir .. "/scsi0.img"
    H.random_file(img_drive, 2 * MiB)
    H.random_file(img_plain, 3 * MiB)
    arc = dir .. "/two.vma"
    make_archive(arc, { { "drive-scsi0", img_drive }, { "scsi0", img_plain } })
  end)
  teardown(function()
    A.cleanup(dir)
    H.rm(dir)
  end)
  after_each(function() A.cleanup(dir) end)

  local function expect(name) return name == "scsi0" and img_plain or img_drive end

  it("the Lua module: r:find_device and vma.find_device", function()
    local r = assert(vma.open(arc))
    assert.are.equal("scsi0", r:find_device("scsi0").name)
    assert.are.equal("drive-scsi0", r:find_device("drive-scsi0").name)
    local d, err, kind = r:find_device("scsi1")
    assert.is_nil(d)
    assert.are.equal("no device named 'scsi1' in the archive (the devices: drive-scsi0, scsi0)", err)
    assert.are.equal("argument", kind)
    local devs = r:devices()
    r:close()
    assert.are.equal(devs[2], vma.find_device(devs, "scsi0"))
    assert.are.equal(devs[1], vma.find_device(devs, "drive-scsi0"))
  end)

  it("vma cat", function()
    for _, name in ipairs { "scsi0", "drive-scsi0" } do
      local out = dir .. "/cat.raw"
      local rc, _, err = H.sh(H.q(H.bin) .. " cat -q " .. H.q(arc) .. " " .. name .. " > " .. H.q(out))
      assert.are.equal(0, rc, err)
      assert.is_true(A.same(out, expect(name)), name)
      os.remove(out)
    end
  end)

  it("vma serve --disk (the URI printed and the default export)", function()
    if not A.need("nbdkit", "nbdcopy") then return end
    for _, name in ipairs { "scsi0", "drive-scsi0" } do
      local b = A.start(dir, "serve", "--json", arc, "--disk", name)
      local out, werr = A.wait_output(b, "}\n")
      assert(out, werr)
      local j = A.json(out)
      assert.are.equal(name, j.exports[1].name)
      for _, uri in ipairs { j.uris[1], "nbd+unix:///?socket=" .. j.socket } do
        local copy = dir .. "/serve.raw"
        A.sh_ok("nbdcopy " .. H.q(uri) .. " " .. H.q(copy))
        assert.is_true(A.same(copy, expect(name)), name .. " " .. uri)
        os.remove(copy)
      end
      assert.are.equal(0, A.stop(b))
    end
  end)

  it("vma convert --disk", function()
    if not A.need("nbdkit", "qemu-img") then return end
    for _, name in ipairs { "scsi0", "drive-scsi0" } do
      local out = dir .. "/conv-" .. name .. ".raw"
      local rc, _, err = H.vma("convert", "-q", "-O", "raw", "--disk", name, arc, out)
      assert.are.equal(0, rc, err)
      assert.is_true(A.same(out, expect(name)), name)
      os.remove(out)
    end
  end)

  it("bare nbdkit vma: the export named and disk=", function()
    if not A.need("nbdkit", "nbdcopy") then return end
    local plugin = A.root .. "/build/nbdkit-vma-plugin.so"
    for _, name in ipairs { "scsi0", "drive-scsi0" } do
      local out = dir .. "/nbd-" .. name .. ".raw"
      A.sh_ok("nbdkit -U - -r " .. H.q(plugin) .. " " .. H.q(arc) .. " --run "
        .. H.q("nbdcopy \"nbd+unix:///" .. name .. "?socket=$unixsocket\" " .. H.q(out)))
      assert.is_true(A.same(out, expect(name)), "export " .. name)
      os.remove(out)
      A.sh_ok("nbdkit -U - -r " .. H.q(plugin) .. " " .. H.q(arc) .. " disk=" .. name
        .. " --run " .. H.q("nbdcopy \"$uri\" " .. H.q(out)))
      assert.is_true(A.same(out, expect(name)), "disk=" .. name)
      os.remove(out)
    end
  end)

  it("vma extract -d and a restore map line", function()
    local rc, _, err = H.vma("extract", "-q", "-d", "scsi0", arc, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.are.same({ "disk-scsi0.raw" }, H.ls(dir .. "/x"))
    assert.is_true(A.same(dir .. "/x/disk-scsi0.raw", img_plain))
    H.rm(dir .. "/x")
    H.write(dir .. "/map", "0:scsi0=" .. dir .. "/p.raw\n0:drive-scsi0=" .. dir .. "/d.raw\ndone\n")
    rc, _, err = H.vma("extract", "-q", "-r", dir .. "/map", arc, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(A.same(dir .. "/p.raw", img_plain))
    assert.is_true(A.same(dir .. "/d.raw", img_drive))
    H.rm(dir .. "/x")
    os.remove(dir .. "/p.raw")
    os.remove(dir .. "/d.raw")
  end)
end)

describe("device names: a short name that two devices answer to", function()
  local dir, arc
  setup(function()
    dir = H.tmpdir()
    H.random_file(dir .. "/a.img", 65536)
    H.random_file(dir .. "/b.img", 65536)
    arc = dir .. "/tpm.vma"
    make_archive(arc, { { "drive-tpmstate0", dir .. "/a.img" },
                        { "drive-tpmstate0-backup", dir .. "/b.img" } })
  end)
  teardown(function() H.rm(dir) end)

  local AMBIGUOUS = "'tpmstate0' is ambiguous: the archive has drive-tpmstate0 or "
    .. "drive-tpmstate0-backup (give the full name)"

  it("is an error naming both, in vma cat, extract -d and the Lua module", function()
    local rc, out, err = H.vma("cat", arc, "tpmstate0")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.are.equal("vma cat: " .. AMBIGUOUS .. "\n", err)
    rc, _, err = H.vma("extract", "-d", "tpmstate0", arc, dir .. "/x")
    assert.are.equal(1, rc)
    assert.are.equal("vma extract: " .. AMBIGUOUS .. "\n", err)
    assert.is_false(H.exists(dir .. "/x"))
    local r = assert(vma.open(arc))
    local d, msg, kind = r:find_device("tpmstate0")
    assert.are.same({ nil, AMBIGUOUS, "argument" }, { d, msg, kind })
    assert.are.equal("drive-tpmstate0", r:find_device("drive-tpmstate0").name)
    r:close()
  end)

  it("is refused by the nbdkit plugin", function()
    if not A.need("nbdkit") then return end
    local plugin = A.root .. "/build/nbdkit-vma-plugin.so"
    local rc, _, err = H.sh("nbdkit -U - -r " .. H.q(plugin) .. " " .. H.q(arc)
      .. " disk=tpmstate0 --run true")
    assert.are.equal(1, rc)
    assert.is_truthy(err:find(AMBIGUOUS, 1, true), err)
  end)
end)
