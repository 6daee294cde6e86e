-- restore-map and extract with targets and map scripts, end to end on
-- Proxmox-written archives.
local H = require "helper"

local FIX = H.fixtures .. "/proxmox/a-two-drives"
local A = FIX .. "/a-two-drives.vma"
local disk0 = H.padded(H.read(FIX .. "/disk0.raw"), 1053184)
local disk1 = H.padded(H.read(FIX .. "/disk1.raw"), 144384)

describe("restore maps from targets and scripts", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("restore-map --target dir: maps each drive to DIR/<volume>.raw and restores through -r", function()
    local rc, map, err = H.vma("restore-map", A, "--target", "dir:" .. dir .. "/images")
    assert.are.equal(0, rc, err)
    assert.are.equal("format=raw:0:drive-scsi0=" .. dir .. "/images/vm-100-disk-0.raw\n"
      .. "format=raw:0:drive-virtio1=" .. dir .. "/images/vm-100-disk-1.raw\ndone\n", map)
    os.execute("mkdir " .. H.q(dir .. "/images"))
    H.write(dir .. "/map", map)
    rc, _, err = H.vma("extract", "-r", dir .. "/map", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(disk0 == H.read(dir .. "/images/vm-100-disk-0.raw"))
    assert.is_true(disk1 == H.read(dir .. "/images/vm-100-disk-1.raw"))
  end)

  it("extract --target restores in one step", function()
    os.execute("mkdir " .. H.q(dir .. "/images"))
    local rc, _, err = H.vma("extract", "--target", "dir:" .. dir .. "/images", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(disk0 == H.read(dir .. "/images/vm-100-disk-0.raw"))
    assert.are.same({ "qemu-server.conf", "qemu-server.fw" }, H.ls(dir .. "/x"))
  end)

  it("the real-world backup's #qmdump#map line gives storage and volume", function()
    local rc, map = H.vma("restore-map", H.fixtures .. "/real-world/truncated-10g-scsi0.vma.gz",
      "--target", "lvm:pve")
    assert.are.equal(0, rc)
    assert.are.equal("format=raw:1:drive-scsi0=/dev/pve/vm-100-disk-0\ndone\n", map)
    local _, js = H.vma("restore-map", H.fixtures .. "/real-world/truncated-10g-scsi0.vma.gz",
      "--target", "zfs:tank/vm", "--json")
    assert.matches('"/dev/zvol/tank/vm/vm%-100%-disk%-0"', js)
  end)

  it("a user script (name, key, size) drives restore-map and extract --map-script", function()
    H.write(dir .. "/map.lua", string.format([[
      return function(archive)
        local map = {}
        for _, d in ipairs(archive.devices) do
          if d.size > 500000 then
            map[d.name] = { path = %q .. "/big-" .. d.key .. ".img", write_zero = false }
          else
            map[d.name] = false
          end
        end
        return map
      end]], dir))
    local rc, map, err = H.vma("restore-map", A, "--script", dir .. "/map.lua")
    assert.are.equal(0, rc, err)
    assert.matches("0:drive%-scsi0=" .. dir:gsub("%-", "%%-") .. "/big%-scsi0%.img\n", map)
    assert.matches("skip=drive%-virtio1\n", map)
    assert.matches("done\n$", map)
    rc, _, err = H.vma("extract", "--map-script", dir .. "/map.lua", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(disk0 == H.read(dir .. "/big-scsi0.img"))
    assert.is_false(H.exists(dir .. "/big-virtio1.img"))
  end)

  it("--dry-run prints the map and writes nothing", function()
    H.write(dir .. "/map.lua", "return function(a) return { ['drive-scsi0'] = { path = '"
      .. dir .. "/t0' }, ['drive-virtio1'] = false } end")
    local rc, out, err = H.vma("extract", "--dry-run", "--map-script", dir .. "/map.lua", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.matches("drive%-scsi0=" .. dir:gsub("%-", "%%-") .. "/t0", out)
    assert.is_false(H.exists(dir .. "/x"))
    assert.is_false(H.exists(dir .. "/t0"))
  end)

  it("a script that raises an error gives its message and exit 1", function()
    H.write(dir .. "/bad.lua", "return function(archive) error('no storage for ' .. archive.devices[1].key) end")
    local rc, _, err = H.vma("restore-map", A, "--script", dir .. "/bad.lua")
    assert.are.equal(1, rc)
    assert.matches("no storage for scsi0", err)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
    rc, _, err = H.vma("extract", "--map-script", dir .. "/bad.lua", A, dir .. "/x")
    assert.are.equal(1, rc)
    assert.matches("no storage for scsi0", err)
    assert.is_false(H.exists(dir .. "/x"))
  end)
end)
