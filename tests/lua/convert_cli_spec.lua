-- vma convert (qemu-img over our NBD export) and vma cat (a disk or a range
-- to standard output), on archives made at check time and Proxmox's own;
-- hostile archives end with exit 1 and leave nothing behind.
local H = require "helper"
local A = require "accesshelp"

describe("vma convert", function()
  local dir, fx, pve, bad

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

  local function leftovers(folder)
    local t = {}
    for _, f in ipairs(H.ls(folder) or {}) do
      if f:match("^%.tmp%-vma%-") then t[#t + 1] = f end
    end
    return t
  end

  it("to qcow2, vmdk, vhdx and raw: qemu-img compare says identical", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local out = dir .. "/conv"
    os.execute("mkdir -p " .. H.q(out))
    local list = { { fx.plain, fx.disks } }
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
    if fx.zst then list[2] = { fx.zst, fx.disks } end
    list[#list + 1] = { pve["a-two-drives"].archive, pve["a-two-drives"].disks }
    list[#list + 1] = { pve["e-vmstate"].archive, pve["e-vmstate"].disks }
    for _, c in ipairs(list) do
      for name, raw in pairs(c[2]) do
        for _, fmt in ipairs { "qcow2", "vmdk", "vhdx", "raw" } do
          local o = out .. "/" .. name .. "." .. fmt
          os.remove(o)
          local rc, stdout, err = H.vma("convert", c[1], o, "--disk", name)
          assert.are.equal(0, rc, err)
          assert.are.equal("", stdout)
          local info = A.json(A.sh_ok("qemu-img info --output=json " .. H.q(o)))
          assert.are.equal(fmt, info.format)
          local cmp = A.sh_ok("qemu-img compare -F raw " .. H.q(o) .. " " .. H.q(raw))
          assert.matches("identical", cmp)
          os.remove(o)
        end
      end
    end
    assert.are.same({}, leftovers(out))
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
  end)

  it("keeps the holes of a thin disk", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local o = dir .. "/thin.raw"
    local rc, _, err = H.vma("convert", fx.plain, o, "--disk", "virtio1")
    assert.are.equal(0, rc, err)
    assert.is_true(A.same(o, fx.disks["drive-virtio1"]))
    local _, du = H.sh("du -k " .. H.q(o))
    assert.is_true(tonumber(du:match("^%d+")) < 2048, du)
    os.remove(o)
  end)

  it("never replaces an existing OUT unless --force; -O chooses the format", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local o = dir .. "/exists.qcow2"
    H.write(o, "keep me")
    local rc, _, err = H.vma("convert", fx.plain, o, "--disk", "sata0")
    assert.are.equal(1, rc)
    assert.matches("^vma convert: .*exists", err)
    assert.are.equal("keep me", H.read(o))
    rc, _, err = H.vma("convert", fx.plain, o, "--disk", "sata0", "--force", "-O", "vmdk")
    assert.are.equal(0, rc, err)
    local info = A.json(A.sh_ok("qemu-img info --output=json " .. H.q(o)))
    assert.are.equal("vmdk", info.format)
    assert.matches("identical", A.sh_ok("qemu-img compare -F raw " .. H.q(o) .. " "
      .. H.q(fx.disks["drive-sata0"])))
    os.remove(o)
    assert.are.same({}, leftovers(dir))
  end)

  it("usage errors exit 2: several disks without --disk names them, an unknown format", function()
    local rc, _, err = H.vma("convert", fx.plain, dir .. "/x.qcow2")
    assert.are.equal(2, rc)
    assert.matches("drive%-scsi0, drive%-virtio1, drive%-sata0", err)
    rc, _, err = H.vma("convert", fx.plain, dir .. "/x.img", "--disk", "scsi0", "-O", "nope")
    assert.are.equal(2, rc)
    assert.matches("unknown format", err)
    assert.is_false(H.exists(dir .. "/x.qcow2"))
    rc, _, err = H.vma("convert", fx.plain, dir .. "/x.qcow2", "--disk", "nope")
    assert.are.equal(1, rc)
    assert.matches("no disk named 'nope'", err)
  end)

  it("the only disk is the default", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local o = dir .. "/only.qcow2"
    local rc, _, err = H.vma("convert", pve["c-empty-config"].archive, o)
    assert.are.equal(0, rc, err)
    assert.matches("identical", A.sh_ok("qemu-img compare -F raw " .. H.q(o) .. " "
      .. H.q(pve["c-empty-config"].disks["drive-scsi0"])))
    os.remove(o)
  end)

  it("a missing cluster fails the conversion, and no OUT is left", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local p = A.incomplete(dir)
    local o = dir .. "/inc.qcow2"
    local rc, _, err = H.vma("convert", p, o)
    assert.are.equal(1, rc)
    assert.matches("vma convert: qemu%-img failed", err)
    assert.is_false(H.exists(o))
    assert.are.same({}, leftovers(dir))
  end)

  it("hostile archives: exit 1, a message, nothing left", function()
    if not A.need("nbdkit", "qemu-img") then return end
    for name, h in pairs(bad) do
      local o = dir .. "/h.qcow2"
      local rc, out, err = H.vma("convert", h.path, o)
      assert.are.equal(1, rc, name .. ": " .. err)
      assert.are.equal("", out)
      assert.is_truthy(err:match("^vma convert: [^\n]+\n$"), name .. ": " .. err)
      assert.is_truthy(err:find(h.expect, 1, true), name .. ": " .. err)
      assert.is_false(H.exists(o))
      assert.are.equal("", A.nbdkit_for(h.path))
    end
    assert.are.same({}, leftovers(dir))
  end)
end)

describe("vma cat", function()
  local dir, fx, pve, bad

  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
    pve = A.proxmox(dir)
    bad = A.hostile(dir)
  end)

  teardown(function() H.rm(dir) end)

  -- bytes [off, off + len) of a file
  local function range(path, off, len)
    local f = assert(io.open(path, "rb"))
    f:seek("set", off)
    local d = f:read(len) or ""
    f:close()
    return d
  end

  it("each disk equals the image, into a file and into a pipe", function()
    local list = { { fx.plain, fx.disks } }
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
    if fx.zst then list[2] = { fx.zst, fx.disks } end
    for _, c in pairs(pve) do list[#list + 1] = { c.archive, c.disks } end
    local o = dir .. "/cat.out"
    for _, c in ipairs(list) do
      for name, raw in pairs(c[2]) do
        local rc, _, err = H.sh(H.q(A.bin) .. " cat " .. H.q(c[1]) .. " " .. H.q(name) .. " > " .. H.q(o))
        assert.are.equal(0, rc, err)
        assert.is_true(A.same(o, raw), c[1] .. " " .. name)
        rc, _, err = H.sh(H.q(A.bin) .. " cat " .. H.q(c[1]) .. " " .. H.q(name) .. " | cat > " .. H.q(o))
        assert.are.equal(0, rc, err)
        assert.is_true(A.same(o, raw), c[1] .. " " .. name .. " (pipe)")
      end
    end
    os.remove(o)
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
  end)

  it("the vmstate of a Proxmox archive", function()
    local rc, out = H.vma("cat", pve["e-vmstate"].archive, "vmstate")
    assert.are.equal(0, rc)
    assert.is_true(out == H.read(pve["e-vmstate"].vmstate))
  end)

  it("--offset and --length give that range (clipped at the end)", function()
    local raw = fx.disks["drive-sata0"]
    local size = 8 * A.MiB
    local cases = { { 0, 1 }, { 12345, 100000 }, { 65536 - 7, 14 }, { 4096, 4096 },
      { size - 100, 100 }, { size - 100, 5000 }, { size, 10 }, { 3 * 65536, 0 } }
    for _, c in ipairs(cases) do
      local rc, out, err = H.vma("cat", fx.plain, "sata0", "--offset", tostring(c[1]),
        "--length", tostring(c[2]))
      assert.are.equal(0, rc, err)
      assert.is_true(out == range(raw, c[1], c[2]), c[1] .. "+" .. c[2])
    end
    local rc, out = H.vma("cat", fx.plain, "drive-scsi0", "--offset", "1M", "--length", "64K")
    assert.are.equal(0, rc)
    assert.is_true(out == range(fx.disks["drive-scsi0"], A.MiB, 65536))
    rc, out = H.vma("cat", fx.plain, "scsi0", "--length", "0")
    assert.are.equal(0, rc)
    assert.are.equal("", out)
  end)

  it("refuses a terminal, bad sizes and an offset past the end", function()
    local rc, _, err = H.vma("cat", fx.plain, "sata0", "--offset", "9M")
    assert.are.equal(1, rc)
    assert.matches("past the end", err)
    rc, _, err = H.vma("cat", fx.plain, "sata0", "--length", "-5")
    assert.are.equal(2, rc)
    rc, _, err = H.vma("cat", fx.plain, "nope")
    assert.are.equal(1, rc)
    assert.matches("no device named 'nope'", err)
    rc = H.vma("cat", fx.plain)
    assert.are.equal(2, rc)
    if A.missing("script") then
      pending("needs script (util-linux) for a terminal")
      return
    end
    local _, out = H.sh("script -qec " .. H.q(H.q(A.bin) .. " cat " .. H.q(fx.plain) .. " sata0; echo rc=$?")
      .. " /dev/null")
    assert.matches("standard output is a terminal", out)
    assert.matches("rc=1", out)
  end)

  it("a missing cluster: exit 1 with a message; the clusters before it are written", function()
    local p, img = A.incomplete(dir)
    local rc, out, err = H.vma("cat", p, "scsi0")
    assert.are.equal(1, rc)
    assert.matches("^vma cat: .*not in the archive", err)
    assert.is_true(out == img:sub(1, #out))
    rc, out = H.vma("cat", p, "scsi0", "--offset", "128K")
    assert.are.equal(0, rc)
    assert.is_true(out == img:sub(131073))
  end)

  it("hostile archives: exit 1 and one line, no crash", function()
    for name, h in pairs(bad) do
      local rc, out, err = H.vma("cat", h.path, "scsi0")
      assert.are.equal(1, rc, name .. ": " .. err)
      assert.are.equal("", out)
      assert.is_truthy(err:match("^vma cat: [^\n]+\n$"), name .. ": " .. err)
      assert.is_truthy(err:find(h.expect, 1, true), name .. ": " .. err)
    end
    assert.is_false(H.exists(dir .. "/core"))
  end)
end)
