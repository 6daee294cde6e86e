-- busted --lpath='lua/?.lua;tests/lua/?.lua' tests/lua/restoremap_spec.lua   (from the project root)
local restoremap = require "vma.restoremap"

local H = require "helper"
local FIX = H.fixtures -- the fixtures kept in tests/fixtures

local tmpdir, write = H.tmpdir, H.write

-- A fake reader with the API of the C module's reader objects.
local function fake_reader(devs, configs, extra)
  local r = { uuid = "0123456789abcdef0123456789abcdef", ctime = 1635681600, closed = false }
  function r:devices()
    local out = {}
    for i, d in ipairs(devs) do
      out[i] = { id = d.id, name = d.name, size = d.size, vmstate = d.name == "vmstate" }
    end
    return out
  end
  function r:configs()
    local out = {}
    for _, c in ipairs(configs or {}) do out[#out + 1] = { name = c[1], data = c[2] } end
    return out
  end
  function r:config(name)
    for _, c in ipairs(configs or {}) do if c[1] == name then return c[2] end end
    return nil
  end
  function r:close() self.closed = true end
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

-- A fake reader built from the header of a real archive.
local function reader_from_vma(data)
  local a = require("vmagen").parse(data)
  local configs, devs = {}, {}
  for _, c in ipairs(a.configs) do configs[#configs + 1] = { c.name, c.data } end
  -- list them in reverse to check that archive_info sorts by id
  for i = #a.devices, 1, -1 do devs[#devs + 1] = a.devices[i] end
  return fake_reader(devs, configs)
end

local function read_file(path, cmd)
  local f = assert(cmd and io.popen(cmd) or io.open(path, "rb"))
  local d = f:read("a")
  f:close()
  return d
end

local REAL_NAME = "vzdump-qemu-100-2021_10_31-12_00_00.vma.gz"
local function real_world_archive()
  local data = read_file(nil, "zcat '" .. FIX .. "/real-world/truncated-10g-scsi0.vma.gz'")
  return restoremap.archive_info(reader_from_vma(data), "/backups/" .. REAL_NAME)
end

local FULL_CONFIG = table.concat({
  "boot: order=scsi0",
  "efidisk0: local-lvm:vm-100-disk-1,efitype=4m,size=4M",
  "ide2: none,media=cdrom",
  "scsi0: local-lvm:vm-100-disk-0,size=32G,discard=on",
  "virtio1: local:100/vm-100-disk-3.qcow2,size=512M",
  "tpmstate0: local-lvm:vm-100-disk-2,size=4M,version=v2.0",
  "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:",
  "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:",
  "#qmdump#map:virtio1:drive-virtio1:local:qcow2:",
  "#qmdump#map:tpmstate0:drive-tpmstate0-backup:local-lvm:raw:",
}, "\n") .. "\n"

local function full_archive(path)
  local reader = fake_reader({
    { id = 3, name = "drive-virtio1", size = 512 << 20 },
    { id = 1, name = "drive-efidisk0", size = 528 * 1024 },
    { id = 5, name = "vmstate", size = 1 << 30 },
    { id = 2, name = "drive-scsi0", size = 32 << 30 },
    { id = 4, name = "drive-tpmstate0-backup", size = 4 << 20 },
  }, { { "qemu-server.conf", FULL_CONFIG }, { "qemu-server.fw", "[OPTIONS]\n" } })
  return restoremap.archive_info(reader, path or "/mnt/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst")
end

describe("restoremap.parse", function()
  it("parses plain lines", function()
    local e = assert(restoremap.parse("0:drive-scsi0=/restore/disk.raw\n1:drive-virtio1=/dev/pve/vm-1-disk-1\ndone\n"))
    assert.same({
      { devname = "drive-scsi0", path = "/restore/disk.raw", write_zero = false },
      { devname = "drive-virtio1", path = "/dev/pve/vm-1-disk-1", write_zero = true },
    }, e)
  end)

  it("parses every option prefix", function()
    local e = assert(restoremap.parse(
      "format=raw:throttling.bps=1048576:throttling.group=g1:cache=writeback:1:drive-scsi0=/dev/x\n"))
    assert.same({ { devname = "drive-scsi0", path = "/dev/x", write_zero = true, format = "raw",
                    bps = 1048576, group = "g1", cache = "writeback" } }, e)
    assert.equal("integer", math.type(e[1].bps))
  end)

  it("accepts the prefixes in any order, as Proxmox does", function()
    local e = assert(restoremap.parse("cache=none:format=raw:0:drive-scsi0=/x\n"))
    assert.equal("none", e[1].cache)
    assert.equal("raw", e[1].format)
  end)

  it("parses bps like strtoull with base 0", function()
    assert.equal(16, restoremap.parse("throttling.bps=0x10:1:d=/x\n")[1].bps)
    assert.equal(8, restoremap.parse("throttling.bps=010:1:d=/x\n")[1].bps)
    assert.equal(0, restoremap.parse("throttling.bps=0:1:d=/x\n")[1].bps)
  end)

  it("splits at the first = and keeps : and = in the path", function()
    local e = assert(restoremap.parse("1:drive-scsi0=rbd:pool/img:conf=/etc/ceph.conf=x\n"))
    assert.equal("drive-scsi0", e[1].devname)
    assert.equal("rbd:pool/img:conf=/etc/ceph.conf=x", e[1].path)
  end)

  it("parses skip lines", function()
    local e = assert(restoremap.parse("skip=drive-scsi1\n0:drive-scsi0=/a\n"))
    assert.same({ { devname = "drive-scsi1", skip = true },
                  { devname = "drive-scsi0", path = "/a", write_zero = false } }, e)
  end)

  it("stops at done, at an empty line and at the end", function()
    assert.equal(1, #restoremap.parse("0:a=/a\ndone\n0:b=/b\n"))
    assert.equal(1, #restoremap.parse("0:a=/a\n\n0:b=/b\n"))
    assert.equal(2, #restoremap.parse("0:a=/a\n0:b=/b"))
    assert.equal(1, #restoremap.parse("0:a=/a\ndone"))
    assert.same({}, restoremap.parse(""))
    assert.same({}, restoremap.parse("done\n"))
    assert.same({}, restoremap.parse("\n0:a=/a\n"))
  end)

  it("strips only the trailing newline", function()
    local e = assert(restoremap.parse("0:drive-scsi0=/x/disk.raw\r\n"))
    assert.equal("/x/disk.raw\r", e[1].path)
    assert.equal(" /sp ", restoremap.parse("0:d= /sp \n")[1].path)
  end)

  it("reports Proxmox's parse errors", function()
    local _, err = restoremap.parse("2:drive-scsi0=/x\n")
    assert.equal("read map failed - parse error ('2:drive-scsi0=/x')", err)
    _, err = restoremap.parse("0:a=/a\ndrive-scsi0=/x\n")
    assert.equal("read map failed - parse error ('drive-scsi0=/x')", err)
    _, err = restoremap.parse("1:/dev/x\n")
    assert.equal("read map failed - no dev name specified ('1:/dev/x')", err)
    _, err = restoremap.parse("1:=/dev/x\n")
    assert.equal("read map failed - no dev name specified ('1:=/dev/x')", err)
    _, err = restoremap.parse("skip\n")
    assert.equal("read map failed - option 'skip' has no value ('skip')", err)
    _, err = restoremap.parse("skip=\n")
    assert.equal("read map failed - option 'skip' has no value ('skip=')", err)
    _, err = restoremap.parse("format=raw\n")
    assert.equal("read map failed - option 'format' not terminated ('format=raw')", err)
    _, err = restoremap.parse("cache=none:cache=none:1:d=/x\n")
    assert.equal("read map failed - duplicate value for option 'cache'", err)
    _, err = restoremap.parse("1:d=\n")
    assert.equal("read map failed - no path specified ('1:d=')", err)
  end)

  it("rejects formats other than raw", function()
    local _, err = restoremap.parse("format=qcow2:0:drive-scsi0=/x.qcow2\n")
    assert.equal("unsupported format 'qcow2' for drive-scsi0 (only raw can be written)", err)
  end)

  it("rejects bad bps numbers", function()
    for _, v in ipairs({ "", "abc", "12k", "-5", "1.5", "0x", "09", "99999999999999999999999" }) do
      local e, err = restoremap.parse("throttling.bps=" .. v .. ":1:d=/x\n")
      assert.is_nil(e, v)
      assert.equal("read map failed - not a number: " .. v, err)
    end
  end)

  it("rejects a device named twice", function()
    local _, err = restoremap.parse("0:d=/a\n1:d=/b\n")
    assert.equal("read map failed - duplicate device name 'd' ('1:d=/b')", err)
    _, err = restoremap.parse("0:d=/a\nskip=d\n")
    assert.matches("duplicate device name 'd'", err, 1, true)
  end)

  it("rejects a non-string", function()
    assert.is_nil(restoremap.parse(nil))
  end)
end)

describe("restoremap.format", function()
  it("formats entries and ends with done", function()
    local text = restoremap.format({
      { devname = "drive-scsi0", path = "/dev/pve/vm-1-disk-0", write_zero = true, format = "raw" },
      { devname = "drive-scsi1", skip = true },
      { devname = "drive-virtio2", path = "/r/a:b=c.raw", write_zero = false },
    })
    assert.equal("format=raw:1:drive-scsi0=/dev/pve/vm-1-disk-0\nskip=drive-scsi1\n"
                 .. "0:drive-virtio2=/r/a:b=c.raw\ndone\n", text)
  end)

  it("formats an empty map", function()
    assert.equal("done\n", restoremap.format({}))
  end)

  it("writes the options in Proxmox's order", function()
    assert.equal("format=raw:throttling.bps=100:throttling.group=g:cache=none:0:d=/x\ndone\n",
      restoremap.format({ { devname = "d", path = "/x", write_zero = false, cache = "none",
                            group = "g", bps = 100, format = "raw" } }))
  end)

  it("round-trips with parse", function()
    local text = "format=raw:throttling.bps=5:cache=unsafe:1:drive-scsi0=/dev/x\nskip=drive-efidisk0\n"
      .. "0:drive-sata1=/y/z.raw\ndone\n"
    assert.equal(text, restoremap.format(assert(restoremap.parse(text))))
  end)

  it("refuses entries that would not parse back", function()
    assert.is_nil(restoremap.format({ { devname = "d", path = "/x\n1:e=/y" } }))
    assert.is_nil(restoremap.format({ { devname = "a=b", path = "/x" } }))
    assert.is_nil(restoremap.format({ { devname = "d", path = "" } }))
    assert.is_nil(restoremap.format({ { devname = "d", path = "/x", format = "qcow2" } }))
    assert.is_nil(restoremap.format({ { devname = "d", path = "/x", cache = "a:b" } }))
    assert.is_nil(restoremap.format({ { devname = "d", path = "/x", bps = 1.5 } }))
  end)
end)

describe("restoremap.archive_info", function()
  it("describes the devices in id order without vmstate", function()
    local a = full_archive()
    local names = {}
    for i, d in ipairs(a.devices) do names[i] = d.name end
    assert.same({ "drive-efidisk0", "drive-scsi0", "drive-virtio1", "drive-tpmstate0-backup" }, names)
    assert.same({ id = 5, name = "vmstate", size = 1 << 30 }, a.vmstate)
  end)

  it("joins the config, the qmdump map and the device sizes", function()
    local a = full_archive()
    local scsi0 = a.devices[2]
    assert.equal("scsi0", scsi0.key)
    assert.equal(32 << 30, scsi0.size)
    assert.equal("local-lvm", scsi0.storage)
    assert.equal("vm-100-disk-0", scsi0.volume)
    assert.equal("raw", scsi0.format)
    assert.equal("on", scsi0.options.discard)
    local virtio1 = a.devices[3]
    assert.equal("local", virtio1.storage)
    assert.equal("qcow2", virtio1.format)
    assert.equal("vm-100-disk-3", virtio1.volume)
    local tpm = a.devices[4]
    assert.equal("tpmstate0", tpm.key)
    assert.equal("vm-100-disk-2", tpm.volume)
  end)

  it("fills in the archive fields", function()
    local a = full_archive()
    assert.equal(100, a.vmid)
    assert.equal("/mnt/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst", a.path)
    assert.equal("vzdump-qemu-100-2024_01_02-03_04_05.vma.zst", a.name)
    assert.equal(1635681600, a.ctime)
    assert.equal("32G", a.config.disks.scsi0.options.size)
    assert.equal("order=scsi0", a.config.options.boot)
    assert.equal(FULL_CONFIG, a.config.raw)
  end)

  it("has no vmid without a vzdump file name, and no name for stdin", function()
    assert.is_nil(full_archive("/tmp/backup.vma").vmid)
    assert.equal("backup.vma", full_archive("/tmp/backup.vma").name)
    local a = full_archive("-")
    assert.is_nil(a.vmid)
    assert.is_nil(a.name)
    assert.equal("-", a.path)
  end)

  it("works without a config and with unknown device names", function()
    local r = fake_reader({ { id = 1, name = "disk0", size = 4096 }, { id = 2, name = "drive-sata3", size = 8192 } })
    local a = restoremap.archive_info(r, "x.vma")
    assert.equal(2, #a.devices)
    assert.is_nil(a.devices[1].key)
    assert.equal("sata3", a.devices[2].key)
    assert.is_nil(a.devices[2].volume)
    assert.same({}, a.devices[2].options)
    assert.same({}, a.config.disks)
  end)

  it("uses configs() when the reader has no config()", function()
    local r = fake_reader({ { id = 1, name = "drive-scsi0", size = 1 << 30 } },
                          { { "qemu-server.conf", "scsi0: local-zfs:vm-5-disk-0,size=1G\n" } })
    r.config = nil
    local a = restoremap.archive_info(r, "x.vma")
    assert.equal("local-zfs", a.devices[1].storage)
  end)

  it("takes the storage from the disk line when there is no qmdump map", function()
    local r = fake_reader({ { id = 1, name = "drive-scsi0", size = 1 << 30 } },
                          { { "qemu-server.conf", "scsi0: local-zfs:vm-5-disk-0,size=1G\n" } })
    local a = restoremap.archive_info(r, "x.vma")
    assert.equal("local-zfs", a.devices[1].storage)
    assert.is_nil(a.devices[1].format)
  end)

  it("reads the real-world fixture", function()
    local a = real_world_archive()
    assert.equal(1, #a.devices)
    local d = a.devices[1]
    assert.same({ id = 1, name = "drive-scsi0", key = "scsi0", size = 10 << 30, storage = "local-lvm",
                  format = "raw", volume = "vm-100-disk-0", volid = "local-lvm:vm-100-disk-0",
                  options = { size = "10G" } }, d)
    assert.equal(100, a.vmid)
    assert.equal("Test", a.config.options.name)
    assert.is_nil(a.vmstate)
  end)

  it("reads the Proxmox fixtures", function()
    local two = restoremap.archive_info(reader_from_vma(
      read_file(FIX .. "/proxmox/a-two-drives/a-two-drives.vma")), "a-two-drives.vma")
    assert.equal(2, #two.devices)
    assert.equal("vm-100-disk-0", two.devices[1].volume)
    assert.equal(1053184, two.devices[1].size)
    assert.equal("virtio1", two.devices[2].key)
    local e = restoremap.archive_info(reader_from_vma(
      read_file(FIX .. "/proxmox/e-vmstate/e-vmstate.vma")), "e-vmstate.vma")
    assert.equal(1, #e.devices)
    assert.equal("vmstate", e.vmstate.name)
  end)

  it("reads a real archive through the C module when it is built", function()
    local vma = require "vma" -- tests/run.sh puts build/ on package.cpath
    local r = assert(vma.open(FIX .. "/proxmox/a-two-drives/a-two-drives.vma"))
    local a = restoremap.archive_info(r, FIX .. "/proxmox/a-two-drives/a-two-drives.vma")
    r:close()
    assert.equal(2, #a.devices)
    assert.equal("drive-scsi0", a.devices[1].name)
    assert.equal("vm-100-disk-1", a.devices[2].volume)
  end)
end)

describe("restoremap.run_script", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("returns the map of the script", function()
    write(dir .. "/ok.lua", [[
      return function(archive)
        local map = {}
        for _, d in ipairs(archive.devices) do
          map[d.name] = { path = "/r/" .. d.key .. ".raw", write_zero = false }
        end
        return map
      end]])
    local a = full_archive()
    local map = assert(restoremap.run_script(dir .. "/ok.lua", a))
    assert.same({ path = "/r/scsi0.raw", write_zero = false }, map["drive-scsi0"])
  end)

  it("gives the script a copy of the archive", function()
    write(dir .. "/mut.lua", "return function(a) a.devices = {} a.vmid = 1 return {} end")
    local a = full_archive()
    assert(restoremap.run_script(dir .. "/mut.lua", a))
    assert.equal(4, #a.devices)
    assert.equal(100, a.vmid)
  end)

  it("returns errors raised by the script without a traceback", function()
    write(dir .. "/err.lua", "return function(a) error('no room for ' .. a.devices[1].name) end")
    local map, err = restoremap.run_script(dir .. "/err.lua", full_archive())
    assert.is_nil(map)
    assert.equal(dir .. "/err.lua:1: no room for drive-efidisk0", err)
    assert.is_nil(err:find("traceback", 1, true))
    write(dir .. "/err0.lua", "return function(a) error('plain message', 0) end")
    assert.same({ nil, "plain message" }, { restoremap.run_script(dir .. "/err0.lua", full_archive()) })
    write(dir .. "/errt.lua", "return function(a) error({}) end")
    _, err = restoremap.run_script(dir .. "/errt.lua", full_archive())
    assert.equal("(error object is a table value)", err)
  end)

  it("reports load errors", function()
    write(dir .. "/syntax.lua", "return function(a\n")
    local map, err = restoremap.run_script(dir .. "/syntax.lua", full_archive())
    assert.is_nil(map)
    assert.matches("syntax.lua:", err, 1, true)
    map, err = restoremap.run_script(dir .. "/missing.lua", full_archive())
    assert.is_nil(map)
    assert.matches("cannot open", err, 1, true)
    write(dir .. "/toplevel.lua", "error('at load', 0)")
    assert.same({ nil, "at load" }, { restoremap.run_script(dir .. "/toplevel.lua", full_archive()) })
  end)

  it("wants a function that returns a table", function()
    write(dir .. "/table.lua", "return { ['drive-scsi0'] = false }")
    local map, err = restoremap.run_script(dir .. "/table.lua", full_archive())
    assert.is_nil(map)
    assert.matches("must return a function", err, 1, true)
    write(dir .. "/nothing.lua", "return function() end")
    map, err = restoremap.run_script(dir .. "/nothing.lua", full_archive())
    assert.is_nil(map)
    assert.matches("must return a map table, not a nil", err, 1, true)
  end)
end)

describe("restoremap.target", function()
  local real_getenv = os.getenv
  local dir
  before_each(function()
    dir = tmpdir()
    os.getenv = function(k)
      if k == "VMA_TARGETS_PATH" then return dir end
      return real_getenv(k)
    end
  end)
  after_each(function()
    os.getenv = real_getenv
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("maps to raw files in a directory", function()
    local a = full_archive()
    local map = assert(restoremap.target("dir:/restore/", a))
    assert.same({
      ["drive-efidisk0"] = { path = "/restore/vm-100-disk-1.raw", write_zero = false, format = "raw", nofollow = true },
      ["drive-scsi0"] = { path = "/restore/vm-100-disk-0.raw", write_zero = false, format = "raw", nofollow = true },
      ["drive-virtio1"] = { path = "/restore/vm-100-disk-3.raw", write_zero = false, format = "raw", nofollow = true },
      ["drive-tpmstate0-backup"] = { path = "/restore/vm-100-disk-2.raw", write_zero = false, format = "raw", nofollow = true },
    }, map)
    assert.is_nil(map.vmstate)
    assert.equal(table.concat({
      "format=raw:0:drive-efidisk0=/restore/vm-100-disk-1.raw",
      "format=raw:0:drive-scsi0=/restore/vm-100-disk-0.raw",
      "format=raw:0:drive-virtio1=/restore/vm-100-disk-3.raw",
      "format=raw:0:drive-tpmstate0-backup=/restore/vm-100-disk-2.raw",
      "done" }, "\n") .. "\n", restoremap.format(assert(restoremap.to_entries(map, a))))
  end)

  it("names disks without a volume after the vmid", function()
    local r = fake_reader({ { id = 1, name = "disk0", size = 4096 }, { id = 2, name = "drive-scsi1", size = 4096 } })
    local a = restoremap.archive_info(r, "/x/vzdump-qemu-321-2024_01_02-03_04_05.vma")
    local map = assert(restoremap.target("dir:rel/dir", a))
    assert.equal("rel/dir/vm-321-disk-0.raw", map.disk0.path)
    assert.equal("rel/dir/vm-321-disk-1.raw", map["drive-scsi1"].path)
    a = restoremap.archive_info(r, "-")
    assert.equal("/vm-0-disk-0.raw", restoremap.target("dir:/", a).disk0.path)
  end)

  it("maps to LVM logical volumes", function()
    local map = assert(restoremap.target("lvm:pve", full_archive()))
    assert.same({ path = "/dev/pve/vm-100-disk-0", write_zero = true, format = "raw" }, map["drive-scsi0"])
    assert.equal("/dev/vg0/vm-100-disk-2", restoremap.target("lvm:/dev/vg0/", full_archive())["drive-tpmstate0-backup"].path)
  end)

  it("maps to zvols", function()
    local map = assert(restoremap.target("zfs:rpool/data", full_archive()))
    -- a new zvol reads as zeros
    assert.same({ path = "/dev/zvol/rpool/data/vm-100-disk-3", write_zero = false, format = "raw" },
                map["drive-virtio1"])
  end)

  it("maps the real-world fixture", function()
    local a = real_world_archive()
    assert.equal("format=raw:1:drive-scsi0=/dev/pve/vm-100-disk-0\ndone\n",
                 restoremap.format(assert(restoremap.to_entries(assert(restoremap.target("lvm:pve", a)), a))))
  end)

  it("reports missing arguments and unknown targets", function()
    local a = full_archive()
    assert.same({ nil, "the dir target needs a directory: dir:PATH" }, { restoremap.target("dir:", a) })
    assert.same({ nil, "the dir target needs a directory: dir:PATH" }, { restoremap.target("dir", a) })
    assert.same({ nil, "the lvm target needs a volume group: lvm:VG" }, { restoremap.target("lvm:", a) })
    assert.same({ nil, "the zfs target needs a pool or dataset: zfs:POOL" }, { restoremap.target("zfs:", a) })
    assert.is_nil(restoremap.target("lvm:a/b/c", a))
    local map, err = restoremap.target("nfs:/x", a)
    assert.is_nil(map)
    assert.matches("unknown target 'nfs' (there are: dir, lvm, rbd, zfs", err, 1, true)
    map, err = restoremap.target("../dir:/x", a)
    assert.is_nil(map)
    assert.matches("bad target", err, 1, true)
    assert.is_nil(restoremap.target("", a))
  end)

  it("prefers user targets", function()
    write(dir .. "/ceph.lua", [[
      return function(archive, pool)
        local map = {}
        for _, d in ipairs(archive.devices) do map[d.name] = { path = "rbd:" .. pool .. "/" .. d.key } end
        return map
      end]])
    write(dir .. "/dir.lua", "return function(archive, arg) return { mine = arg } end")
    assert.same({ path = "rbd:pool1/scsi0" }, restoremap.target("ceph:pool1", full_archive())["drive-scsi0"])
    assert.same({ mine = "/x" }, restoremap.target("dir:/x", full_archive()))
  end)

  it("refuses existing files unless forced, then writes zeros", function()
    local a = full_archive()
    write(dir .. "/vm-100-disk-0.raw", "old")
    local map, err = restoremap.target("dir:" .. dir, a)
    assert.is_nil(map)
    assert.equal(dir .. "/vm-100-disk-0.raw already exists (not writing over it; --force "
      .. "writes over it, zeros included)", err)
    map = assert(restoremap.target("dir:" .. dir, a, { force = true }))
    assert.is_true(map["drive-scsi0"].write_zero)
    assert.is_false(map["drive-virtio1"].write_zero)
  end)
end)

describe("restoremap.to_entries", function()
  local a
  before_each(function() a = full_archive() end)

  it("accepts device names and config keys, in device order", function()
    local e = assert(restoremap.to_entries({
      ["drive-scsi0"] = { path = "/dev/a", write_zero = true, format = "raw" },
      virtio1 = { path = "/b.raw", write_zero = false },
      efidisk0 = false,
      tpmstate0 = { path = "/dev/t" },
    }, a))
    assert.same({
      { devname = "drive-efidisk0", skip = true },
      { devname = "drive-scsi0", path = "/dev/a", write_zero = true, format = "raw" },
      { devname = "drive-virtio1", path = "/b.raw", write_zero = false },
      { devname = "drive-tpmstate0-backup", path = "/dev/t", write_zero = true },
    }, e)
  end)

  it("accepts a path string and the skip field", function()
    local e = assert(restoremap.to_entries({ scsi0 = "/dev/a", virtio1 = { skip = true }, efidisk0 = false,
                                             ["drive-tpmstate0-backup"] = false }, a))
    assert.same({ devname = "drive-scsi0", path = "/dev/a", write_zero = true }, e[2])
    assert.same({ devname = "drive-virtio1", skip = true }, e[3])
  end)

  it("keeps throttling and cache options", function()
    local e = assert(restoremap.to_entries({ scsi0 = { path = "/dev/a", bps = 1000, group = "g", cache = "none" },
                                             virtio1 = false, efidisk0 = false, tpmstate0 = false }, a))
    assert.same({ devname = "drive-scsi0", path = "/dev/a", write_zero = true, bps = 1000, group = "g",
                  cache = "none" }, e[2])
  end)

  it("ignores vmstate", function()
    local e = assert(restoremap.to_entries({ scsi0 = false, virtio1 = false, efidisk0 = false,
                                             tpmstate0 = false, vmstate = { path = "/x" } }, a))
    assert.equal(4, #e)
  end)

  it("needs every device", function()
    local e, err = restoremap.to_entries({ scsi0 = "/a", virtio1 = "/b", efidisk0 = "/c" }, a)
    assert.is_nil(e)
    assert.equal("no device name mapping for drive-tpmstate0-backup", err)
  end)

  it("rejects unknown devices", function()
    local e, err = restoremap.to_entries({ scsi0 = "/a", scsi7 = "/b" }, a)
    assert.is_nil(e)
    assert.equal("map names unknown device 'scsi7'", err)
    _, err = restoremap.to_entries({ [1] = "/a" }, a)
    assert.matches("not a device name", err, 1, true)
  end)

  it("rejects a device named twice", function()
    local _, err = restoremap.to_entries({ scsi0 = "/a", ["drive-scsi0"] = "/b" }, a)
    assert.equal("map names device drive-scsi0 twice ('drive-scsi0' and 'scsi0')", err)
  end)

  it("validates the entries", function()
    local base = { virtio1 = false, efidisk0 = false, tpmstate0 = false }
    local function try(v)
      local m = { scsi0 = v }
      for k, x in pairs(base) do m[k] = x end
      local e, err = restoremap.to_entries(m, a)
      assert.is_nil(e)
      return err
    end
    assert.equal("map entry for drive-scsi0: path must be a non-empty string", try({ path = "" }))
    assert.equal("map entry for drive-scsi0: path must be a non-empty string", try({ write_zero = true }))
    assert.equal("map entry for drive-scsi0: path must be a non-empty string", try(""))
    assert.equal("map entry for drive-scsi0: path must be a non-empty string", try({ path = 5 }))
    assert.equal("map entry for drive-scsi0: path contains a newline", try({ path = "/a\n1:x=/y" }))
    assert.equal("map entry for drive-scsi0: write_zero must be true or false", try({ path = "/a", write_zero = 1 }))
    assert.equal("unsupported format 'qcow2' for drive-scsi0 (only raw can be written)",
                 try({ path = "/a", format = "qcow2" }))
    assert.equal("map entry for drive-scsi0 has unknown field 'wirte_zero'", try({ path = "/a", wirte_zero = false }))
    assert.equal("map entry for drive-scsi0 must be a table, a path or false, not true", try(true))
    assert.equal("map entry for drive-scsi0 must be a table, a path or false, not a number", try(3))
    assert.matches("bps must be", try({ path = "/a", bps = -1 }), 1, true)
    assert.matches("bad cache", try({ path = "/a", cache = "a:b" }), 1, true)
  end)

  it("rejects two devices on one path", function()
    local _, err = restoremap.to_entries({ scsi0 = "/a", virtio1 = "/a", efidisk0 = false, tpmstate0 = false }, a)
    assert.equal("drive-scsi0 and drive-virtio1 map to the same path /a", err)
  end)

  it("rejects a map that is not a table", function()
    assert.same({ nil, "the map must be a table" }, { restoremap.to_entries(nil, a) })
  end)

  it("works on an archive without disks", function()
    local r = fake_reader({}, { { "qemu-server.conf", "name: x\n" } })
    local empty = restoremap.archive_info(r, "d.vma")
    assert.same({}, restoremap.to_entries({}, empty))
    assert.equal("done\n", restoremap.format(restoremap.to_entries(assert(restoremap.target("dir:/x", empty)), empty)))
  end)
end)

describe("examples", function()
  local getenv = os.getenv
  after_each(function() os.getenv = getenv end)
  local function env(t) os.getenv = function(k) if t[k] ~= nil then return t[k] end return getenv(k) end end

  it("map-lvm-newid.lua renames the disks for a new vmid", function()
    env({ VMA_NEWID = "123", VMA_VG = "data" })
    local a = full_archive()
    local map = assert(restoremap.run_script("examples/map-lvm-newid.lua", a))
    assert.equal("format=raw:1:drive-efidisk0=/dev/data/vm-123-disk-1\n"
      .. "format=raw:1:drive-scsi0=/dev/data/vm-123-disk-0\n"
      .. "format=raw:1:drive-virtio1=/dev/data/vm-123-disk-3\n"
      .. "format=raw:1:drive-tpmstate0-backup=/dev/data/vm-123-disk-2\ndone\n",
      restoremap.format(assert(restoremap.to_entries(map, a))))
  end)

  it("map-lvm-newid.lua wants VMA_NEWID", function()
    env({ VMA_NEWID = "" })
    assert.same({ nil, "set VMA_NEWID to the new vmid (an integer >= 100)" },
                { restoremap.run_script("examples/map-lvm-newid.lua", full_archive()) })
  end)

  it("map-lvm-newid.lua numbers disks without a volume name", function()
    env({ VMA_NEWID = "200" })
    local r = fake_reader({ { id = 1, name = "drive-scsi0", size = 1 }, { id = 2, name = "drive-scsi1", size = 1 } },
                          { { "qemu-server.conf", "scsi1: local-lvm:vm-9-disk-0,size=1G\n" } })
    local a = restoremap.archive_info(r, "x.vma")
    local map = assert(restoremap.run_script("examples/map-lvm-newid.lua", a))
    assert.equal("/dev/pve/vm-200-disk-1", map["drive-scsi0"].path)
    assert.equal("/dev/pve/vm-200-disk-0", map["drive-scsi1"].path)
  end)

  it("map-by-size.lua splits by size and skips the TPM state", function()
    env({ VMA_BIG = "1G" })
    local a = full_archive()
    local map = assert(restoremap.run_script("examples/map-by-size.lua", a))
    assert.equal("format=raw:1:drive-efidisk0=/dev/zvol/rpool/data/vm-100-disk-1\n"
      .. "format=raw:1:drive-scsi0=/dev/bulk/vm-100-disk-0\n"
      .. "format=raw:1:drive-virtio1=/dev/zvol/rpool/data/vm-100-disk-3\n"
      .. "skip=drive-tpmstate0-backup\ndone\n",
      restoremap.format(assert(restoremap.to_entries(map, a))))
  end)
end)

describe("vma restore-map command", function()
  local cmd = dofile("lua/vma/commands/restore-map.lua")
  local saved_vma, out, err
  local stdout, stderr = io.stdout, io.stderr
  local function sink() local b = { text = "" } function b:write(...) self.text = self.text .. table.concat({ ... }) return self end return b end

  before_each(function()
    saved_vma = package.loaded.vma
    package.loaded.vma = setmetatable({ open = function(path)
      if path == "bad.vma" then return nil, "bad.vma: not a VMA archive" end
      if path == "raise.vma" then error("read error") end
      local data = read_file(nil, "zcat '" .. FIX .. "/real-world/truncated-10g-scsi0.vma.gz'")
      return reader_from_vma(data)
    end }, { __index = saved_vma })
    out, err = sink(), sink()
    io.stdout, io.stderr = out, err
  end)
  after_each(function()
    io.stdout, io.stderr = stdout, stderr
    package.loaded.vma = saved_vma
  end)

  it("has a description and a usage", function()
    assert.is_string(cmd.description)
    assert.matches("^usage: vma restore%-map ARCHIVE", cmd.usage)
  end)

  it("prints a map for a target", function()
    assert.equal(0, cmd.run({ REAL_NAME, "--target", "dir:/restore" }))
    assert.equal("format=raw:0:drive-scsi0=/restore/vm-100-disk-0.raw\ndone\n", out.text)
    assert.equal("", err.text)
  end)

  it("prints JSON", function()
    assert.equal(0, cmd.run({ "x.vma", "-t", "zfs:tank", "--json" }))
    local cjson = require "cjson"
    assert.same({ archive = "x.vma", vmid = cjson.null, devices = {
      { devname = "drive-scsi0", path = "/dev/zvol/tank/vm-100-disk-0", write_zero = false, format = "raw" },
    } }, cjson.decode(out.text))
  end)

  it("runs a script", function()
    local dir = tmpdir()
    write(dir .. "/s.lua", "return function(a) return { scsi0 = { path = '/dev/sdz', write_zero = true } } end")
    assert.equal(0, cmd.run({ "x.vma", "--script", dir .. "/s.lua" }))
    assert.equal("1:drive-scsi0=/dev/sdz\ndone\n", out.text)
    write(dir .. "/bad.lua", "return function(a) error('no such storage', 0) end")
    assert.equal(1, cmd.run({ "x.vma", "-s", dir .. "/bad.lua" }))
    assert.equal("vma restore-map: no such storage\n", err.text)
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("reports usage errors with status 2", function()
    assert.equal(2, cmd.run({ "x.vma" }))
    assert.matches("^vma restore%-map: one of %-%-target or %-%-script is required %(see 'vma help restore%-map'%)\n", err.text)
    err.text = ""
    assert.equal(2, cmd.run({ "x.vma", "-t", "dir:/a", "-s", "b.lua" }))
    assert.matches("^vma restore%-map: ", err.text)
    err.text = ""
    assert.equal(2, cmd.run({}))
    assert.equal(2, cmd.run({ "x.vma", "-t", "dir:/a", "--frob" }))
    assert.equal("", out.text)
  end)

  it("prints help", function()
    assert.equal(0, cmd.run({ "--help" }))
    assert.matches("^usage: vma restore%-map", out.text)
  end)

  it("reports archive and map errors with status 1", function()
    assert.equal(1, cmd.run({ "bad.vma", "-t", "dir:/x" }))
    assert.equal("vma restore-map: bad.vma: not a VMA archive\n", err.text)
    err.text = ""
    assert.equal(1, cmd.run({ "raise.vma", "-t", "dir:/x" }))
    assert.matches("^vma restore%-map: .*read error\n$", err.text)
    err.text = ""
    assert.equal(1, cmd.run({ "x.vma", "-t", "nope:/x" }))
    assert.matches("^vma restore%-map: unknown target 'nope'", err.text)
    assert.equal("", out.text)
  end)
end)
