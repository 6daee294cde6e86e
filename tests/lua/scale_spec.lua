-- Scale: a 1 TiB thin image is archived and verified quickly and in little
-- memory, because holes are skipped unread and bookkeeping is lazy.
local H = require "helper"

local function peak_kb(cmd)
  local rc, _, err = H.sh("/usr/bin/time -f 'peak=%M' " .. cmd)
  return rc, tonumber(err:match("peak=(%d+)")), err
end

describe("scale", function()
  it("creates, verifies and lists an archive of a 1 TiB thin image in under 64 MiB", function()
    local dir = H.tmpdir()
    local img = dir .. "/huge.raw"
    os.execute("truncate -s 1T " .. H.q(img))
    -- a few MiB of data in three places, one of them at the very end
    local f = assert(io.open(img, "r+b"))
    local pieces = {}
    for _, off in ipairs { 0, 600 * 2 ^ 30 // 1, 2 ^ 40 // 1 - 1048576 } do
      pieces[off] = H.bytes(1048576, off % 97 + 1)
      f:seek("set", off)
      f:write(pieces[off])
    end
    f:close()
    local arch = dir .. "/huge.vma"
    local rc, kb, err = peak_kb(H.q(H.bin) .. " create " .. H.q(arch) .. " drive-scsi0=" .. H.q(img))
    assert.are.equal(0, rc, err)
    assert.is_true(kb < 64 * 1024, "create peak " .. tostring(kb) .. " KiB")
    rc, kb, err = peak_kb(H.q(H.bin) .. " verify " .. H.q(arch))
    assert.are.equal(0, rc, err)
    assert.is_true(kb < 64 * 1024, "verify peak " .. tostring(kb) .. " KiB")
    local out
    rc, out = H.vma("list", arch)
    assert.matches("DEV: dev_id=1 size: 1099511627776 devname: drive%-scsi0", out)
    -- the data comes back: extract only reads, the target stays sparse
    rc, _, err = H.vma("extract", arch, dir .. "/x")
    assert.are.equal(0, rc, err)
    -- (comparing a whole TiB of zeros would take twenty minutes: compare
    -- the data, the size and the allocation instead)
    local g = assert(io.open(dir .. "/x/disk-drive-scsi0.raw", "rb"))
    for off, data in pairs(pieces) do
      g:seek("set", off)
      assert.is_true(g:read(#data) == data, "data at " .. off)
      g:seek("set", off + #data)
      local after = g:read(65536)
      assert.is_true(after == nil or after == string.rep("\0", #after), "zeros after " .. off)
    end
    assert.are.equal(2 ^ 40 // 1, g:seek("end"))
    g:close()
    local _, du = H.sh("du -k " .. H.q(dir .. "/x/disk-drive-scsi0.raw"))
    assert.is_true(tonumber(du:match("^(%d+)")) < 16 * 1024, "restored image is sparse")
    H.rm(dir)
  end)
end)
