-- vma recompress: the same decompressed bytes in another container; every
-- rule checked on the way; nothing left on failure.
local H = require "helper"
local G = require "vmagen"

local FIX = H.fixtures .. "/proxmox"

local function decompressed(path)
  local rc, out = H.sh("zcat -f " .. H.q(path) .. " 2>/dev/null || zstd -dcf " .. H.q(path))
  assert(rc == 0)
  return out
end

describe("vma recompress", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("gives back the same bytes, plain to gzip to zstd to plain", function()
    local a = FIX .. "/a-two-drives/a-two-drives.vma"
    local plain = H.read(a)
    local rc, _, err = H.vma("recompress", a, dir .. "/b.vma.gz")
    assert.are.equal(0, rc, err)
    assert.matches("^vma recompress: .* %-> .*b%.vma%.gz %(gzip, ", err)
    assert.is_true(H.read(dir .. "/b.vma.gz"):sub(1, 2) == "\31\139")
    assert.is_true(decompressed(dir .. "/b.vma.gz") == plain)
    rc, _, err = H.vma("recompress", dir .. "/b.vma.gz", dir .. "/c.vma.zst")
    assert.are.equal(0, rc, err)
    rc, _, err = H.vma("recompress", "-q", dir .. "/c.vma.zst", dir .. "/d.vma")
    assert.are.equal(0, rc, err)
    assert.are.equal("", err)
    assert.is_true(H.read(dir .. "/d.vma") == plain, "the round trip is byte-identical")
    -- from a pipe, and to a pipe
    rc = H.sh("cat " .. H.q(dir .. "/c.vma.zst") .. " | " .. H.q(H.bin) .. " recompress -q - - > "
      .. H.q(dir .. "/e.vma"))
    assert.are.equal(0, rc)
    assert.is_true(H.read(dir .. "/e.vma") == plain)
  end)

  it("never replaces OUT unless --force", function()
    H.write(dir .. "/out.vma", "precious")
    local rc, _, err = H.vma("recompress", FIX .. "/d-config-only/d-config-only.vma", dir .. "/out.vma")
    assert.are.equal(1, rc)
    assert.matches("already exists", err)
    assert.are.equal("precious", H.read(dir .. "/out.vma"))
    rc = H.vma("recompress", "-f", FIX .. "/d-config-only/d-config-only.vma", dir .. "/out.vma")
    assert.are.equal(0, rc)
    assert.is_true(H.read(dir .. "/out.vma") == H.read(FIX .. "/d-config-only/d-config-only.vma"))
  end)

  it("refuses a damaged archive and leaves no output", function()
    local d = G.base()
    d.extents[1].bad_md5 = true
    H.write(dir .. "/bad.vma", G.build(d))
    local rc, _, err = H.vma("recompress", dir .. "/bad.vma", dir .. "/out.vma.zst")
    assert.are.equal(1, rc)
    assert.matches("^vma recompress: extent at offset %d+: checksum mismatch", err)
    assert.are.same({ "bad.vma" }, H.ls(dir))
    -- the truncated real backup is incomplete
    rc, _, err = H.vma("recompress", H.fixtures .. "/real-world/truncated-10g-scsi0.vma.gz", dir .. "/rw.vma")
    assert.are.equal(1, rc)
    assert.matches("incomplete", err)
    assert.are.same({ "bad.vma" }, H.ls(dir))
  end)

  it("refuses a bad --compress as a usage error", function()
    local rc, _, err = H.vma("recompress", "--compress", "bz2", FIX .. "/a-two-drives/a-two-drives.vma", "-")
    assert.are.equal(2, rc)
    assert.matches("^vma recompress: argument for option '%-%-compress' must be one of", err)
  end)
end)
