-- busted --lpath='lua/?.lua;tests/lua/?.lua' tests/lua/devices_spec.lua   (from the project root)
local devices = require "vma.devices"

local H = require "helper"
local FIX = H.fixtures -- the fixtures kept in tests/fixtures

-- The qemu-server.conf blob of a VMA header (read with string.unpack, so the
-- test needs no C module).
local function vma_config(data, want)
  local boff = string.unpack(">I4", data, 49)
  local function blob(ptr)
    local len = string.unpack("<I2", data, boff + ptr + 1)
    return data:sub(boff + ptr + 3, boff + ptr + 2 + len)
  end
  for i = 0, 255 do
    local np = string.unpack(">I4", data, 2044 + 4 * i + 1)
    local dp = string.unpack(">I4", data, 3068 + 4 * i + 1)
    if np ~= 0 and dp ~= 0 and blob(np):gsub("%z$", "") == want then
      return (blob(dp):gsub("%z$", ""))
    end
  end
end

local function real_world_config()
  local p = assert(io.popen("zcat '" .. FIX .. "/real-world/truncated-10g-scsi0.vma.gz'", "r"))
  local data = p:read("a")
  p:close()
  return assert(vma_config(data, "qemu-server.conf"))
end

describe("device names and config keys", function()
  it("maps archive device names to config keys", function()
    assert.equal("scsi0", devices.key_of("drive-scsi0"))
    assert.equal("virtio1", devices.key_of("drive-virtio1"))
    assert.equal("sata2", devices.key_of("drive-sata2"))
    assert.equal("ide0", devices.key_of("drive-ide0"))
    assert.equal("efidisk0", devices.key_of("drive-efidisk0"))
    assert.equal("tpmstate0", devices.key_of("drive-tpmstate0-backup"))
    assert.equal("tpmstate0", devices.key_of("drive-tpmstate0"))
    assert.equal("scsi12", devices.key_of("drive-scsi12"))
  end)

  it("has no key for other names", function()
    assert.is_nil(devices.key_of("vmstate"))
    assert.is_nil(devices.key_of("disk0"))
    assert.is_nil(devices.key_of("drive-"))
    assert.is_nil(devices.key_of("drive-scsi"))
    assert.is_nil(devices.key_of("drive-scsi0-x"))
    assert.is_nil(devices.key_of(nil))
  end)

  it("maps config keys to device names", function()
    assert.equal("drive-scsi0", devices.devname_of("scsi0"))
    assert.equal("drive-efidisk0", devices.devname_of("efidisk0"))
    assert.equal("drive-tpmstate0-backup", devices.devname_of("tpmstate0"))
    assert.equal("drive-virtio3", devices.devname_of("drive-virtio3"))
    assert.is_nil(devices.devname_of(""))
    assert.is_nil(devices.devname_of(nil))
  end)

  it("round-trips every disk bus", function()
    for _, key in ipairs({ "ide3", "sata5", "scsi30", "virtio15", "efidisk0", "tpmstate0" }) do
      assert.equal(key, devices.key_of(devices.devname_of(key)))
    end
  end)

  it("knows which keys are disks", function()
    for _, k in ipairs({ "scsi0", "virtio1", "sata2", "ide0", "efidisk0", "tpmstate0" }) do
      assert.is_true(devices.is_disk_key(k), k)
    end
    for _, k in ipairs({ "net0", "unused0", "scsihw", "scsi", "boot", "vmstate", "serial0" }) do
      assert.is_false(devices.is_disk_key(k), k)
    end
  end)
end)

describe("parse_size", function()
  it("parses units and plain bytes", function()
    assert.equal(32 * 1024 ^ 3 // 1, devices.parse_size("32G"))
    assert.equal(512 * 1024 * 1024, devices.parse_size("512M"))
    assert.equal(1 << 40, devices.parse_size("1T"))
    assert.equal(100 * 1024, devices.parse_size("100K"))
    assert.equal(1073741824, devices.parse_size("1073741824"))
    assert.equal(0, devices.parse_size("0"))
    assert.equal(1536 * 1024 * 1024, devices.parse_size("1.5G"))
    assert.equal(4 << 20, devices.parse_size("4m"))
    assert.equal(4096, devices.parse_size(4096))
  end)

  it("is the one size rule: IEC suffixes, any case, and what fits an integer", function()
    assert.equal(64 << 10, devices.parse_size("64KiB"))
    assert.equal(1 << 30, devices.parse_size("1GB"))
    assert.equal(1 << 50, devices.parse_size("1P"))
    assert.equal(2 << 20, devices.parse_size("2mib"))
    assert.is_nil(devices.parse_size("9999999999P"))
    assert.is_nil(devices.parse_size("1KX"))
  end)

  it("returns integers", function()
    assert.equal("integer", math.type(devices.parse_size("10G")))
    assert.equal("integer", math.type(devices.parse_size("1.5G")))
  end)

  it("rejects what is not a size", function()
    for _, s in ipairs({ "", "G", "12X", "-1", "1.", "1..5G", "ten", "10 G", "100B" }) do
      assert.is_nil(devices.parse_size(s), s)
    end
    assert.is_nil(devices.parse_size(-1))
    assert.is_nil(devices.parse_size(1.5))
    assert.is_nil(devices.parse_size(nil))
  end)
end)

describe("parse_drive", function()
  it("parses a storage volume with options", function()
    local d = devices.parse_drive("local-lvm:vm-100-disk-0,size=32G,discard=on")
    assert.equal("local-lvm:vm-100-disk-0", d.file)
    assert.equal("local-lvm", d.storage)
    assert.equal("vm-100-disk-0", d.volname)
    assert.equal("vm-100-disk-0", d.volume)
    assert.equal(32 << 30, d.size)
    assert.same({ size = "32G", discard = "on" }, d.options)
    assert.equal("disk", d.media)
    assert.is_true(d.is_disk)
    assert.is_nil(d.format)
  end)

  it("takes the volume name and format from a directory storage path", function()
    local d = devices.parse_drive("local:100/vm-100-disk-1.qcow2,cache=writeback,size=8G")
    assert.equal("local", d.storage)
    assert.equal("100/vm-100-disk-1.qcow2", d.volname)
    assert.equal("vm-100-disk-1", d.volume)
    assert.equal("qcow2", d.format)
    assert.equal("writeback", d.options.cache)
  end)

  it("prefers an explicit format option", function()
    local d = devices.parse_drive("local:100/vm-100-disk-1.raw,format=raw,size=1G")
    assert.equal("raw", d.format)
    assert.equal("vm-100-disk-1", d.volume)
  end)

  it("handles linked clones and plain paths", function()
    local d = devices.parse_drive("local-zfs:base-100-disk-0/vm-101-disk-0,size=2G")
    assert.equal("vm-101-disk-0", d.volume)
    local p = devices.parse_drive("/dev/disk/by-id/ata-XYZ,size=100G")
    assert.is_nil(p.storage)
    assert.equal("/dev/disk/by-id/ata-XYZ", p.volname)
    assert.equal("ata-XYZ", p.volume)
    assert.is_true(p.is_disk)
  end)

  it("accepts file=", function()
    local d = devices.parse_drive("file=local-lvm:vm-100-disk-2,size=4M")
    assert.equal("local-lvm", d.storage)
    assert.equal("vm-100-disk-2", d.volume)
    assert.equal(4 << 20, d.size)
  end)

  it("says cdroms and none are not disks", function()
    local c = devices.parse_drive("local:iso/Fedora-Server-dvd-x86_64-30-1.2.iso,media=cdrom")
    assert.is_false(c.is_disk)
    assert.equal("cdrom", c.media)
    assert.is_false(devices.parse_drive("none,media=cdrom").is_disk)
    assert.is_false(devices.parse_drive("none").is_disk)
  end)
end)

describe("parse_config", function()
  local text = table.concat({
    "#My test VM",
    "#second line",
    "boot: order=scsi0;ide2",
    "cores: 2",
    "ide2: none,media=cdrom",
    "efidisk0: local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M",
    "scsi0: local-lvm:vm-100-disk-0,size=32G,discard=on",
    "virtio1: local:100/vm-100-disk-3.qcow2,size=512M",
    "tpmstate0: local-lvm:vm-100-disk-2,size=4M,version=v2.0",
    "unused0: local-lvm:vm-100-disk-9",
    "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0",
    "this is not a config line",
    "#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:",
    "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:",
    "#qmdump#map:virtio1:drive-virtio1::qcow2:",
    "#qmdump#map:tpmstate0:drive-tpmstate0-backup::raw:",
    "",
    "[before-upgrade]",
    "scsi0: local-lvm:vm-100-disk-0,size=16G",
    "scsi1: local-lvm:vm-100-disk-5,size=1G",
    "snaptime: 1600000000",
    "",
    "[PENDING]",
    "cores: 4",
    "[special:cloudinit]",
    "ipconfig0: ip=dhcp",
  }, "\n") .. "\n"
  local cfg = devices.parse_config(text)

  it("reads the main part only", function()
    assert.equal("2", cfg.options.cores)
    assert.equal("order=scsi0;ide2", cfg.options.boot)
    assert.is_nil(cfg.options.snaptime)
    assert.is_nil(cfg.disks.scsi1)
    assert.equal(32 << 30, cfg.disks.scsi0.size)
    assert.equal(text, cfg.raw)
  end)

  it("lists disks and drives", function()
    local keys = {}
    for k in pairs(cfg.disks) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "efidisk0", "scsi0", "tpmstate0", "virtio1" }, keys)
    assert.is_not_nil(cfg.drives.ide2)
    assert.is_false(cfg.drives.ide2.is_disk)
    assert.is_nil(cfg.disks.unused0)
    assert.equal("drive-tpmstate0-backup", cfg.disks.tpmstate0.devname)
    assert.equal("vm-100-disk-2", cfg.disks.tpmstate0.volume)
    assert.equal("on", cfg.disks.scsi0.options.discard)
  end)

  it("keeps the key order", function()
    assert.same({ "boot", "cores", "ide2", "efidisk0", "scsi0", "virtio1", "tpmstate0",
                  "unused0", "net0" }, cfg.order)
  end)

  it("reads the #qmdump#map lines", function()
    assert.same({ key = "scsi0", devname = "drive-scsi0", storage = "local-lvm", format = "raw" },
                cfg.qmdump.scsi0)
    assert.same({ key = "virtio1", devname = "drive-virtio1", format = "qcow2" }, cfg.qmdump.virtio1)
    assert.equal("drive-tpmstate0-backup", cfg.qmdump.tpmstate0.devname)
    assert.is_nil(cfg.qmdump.tpmstate0.storage)
  end)

  it("names snapshots and other sections", function()
    assert.same({ "before-upgrade" }, cfg.snapshots)
    assert.same({ "before-upgrade", "PENDING", "special:cloudinit" }, cfg.sections)
  end)

  it("keeps the description and the invalid lines", function()
    assert.equal("My test VM\nsecond line", cfg.description)
    assert.same({ "this is not a config line" }, cfg.invalid)
  end)

  it("parses empty and missing text", function()
    local e = devices.parse_config("")
    assert.same({}, e.disks)
    assert.same({}, e.options)
    assert.same({}, e.snapshots)
    assert.is_nil(e.description)
    assert.same({}, devices.parse_config(nil).disks)
  end)

  it("accepts CRLF line ends", function()
    local c = devices.parse_config("scsi0: local-lvm:vm-1-disk-0,size=1G\r\ncores: 1\r\n")
    assert.equal("1", c.options.cores)
    assert.equal(1 << 30, c.disks.scsi0.size)
  end)

  it("parses the real-world config of the fixture", function()
    local rw = devices.parse_config(real_world_config())
    assert.equal("Test", rw.options.name)
    assert.equal("local-lvm", rw.disks.scsi0.storage)
    assert.equal("vm-100-disk-0", rw.disks.scsi0.volume)
    assert.equal(10 * (1 << 30), rw.disks.scsi0.size)
    assert.is_nil(rw.disks.ide2) -- the Fedora ISO is a cdrom
    assert.is_false(rw.drives.ide2.is_disk)
    assert.same({ key = "scsi0", devname = "drive-scsi0", storage = "local-lvm", format = "raw" },
                rw.qmdump.scsi0)
    assert.same({}, rw.snapshots)
    assert.same({}, rw.invalid)
  end)

  it("parses the configs of the Proxmox fixtures", function()
    local f = assert(io.open(FIX .. "/proxmox/a-two-drives/cfg/qemu-server.conf"))
    local c = devices.parse_config(f:read("a"))
    f:close()
    assert.equal(1028 * 1024, c.disks.scsi0.size)
    assert.equal(144 * 1024, c.disks.virtio1.size)
    assert.equal("vm-100-disk-1", c.disks.virtio1.volume)
  end)
end)

describe("vmid_from_filename", function()
  it("reads the vmid of qemu backups from vzdump names", function()
    assert.equal(100, devices.vmid_from_filename("vzdump-qemu-100-2021_10_31-12_00_00.vma"))
    assert.equal(100, devices.vmid_from_filename("/mnt/dump/vzdump-qemu-100-2021_10_31-12_00_00.vma.zst"))
    assert.equal(123456, devices.vmid_from_filename("vzdump-qemu-123456-2024_01_02-03_04_05.vma.gz"))
    assert.equal(101, devices.vmid_from_filename("vzdump-qemu-101-2024_01_02-03_04_05.vma.lzo"))
    assert.is_nil(devices.vmid_from_filename("vzdump-lxc-100-2021_10_31-12_00_00.tar.zst"))
    assert.is_nil(devices.vmid_from_filename("vzdump-qemu-100-2021_10_31-12_00_00.vma.zst.notes"))
    assert.is_nil(devices.vmid_from_filename("vzdump-qemu-100-2021_10_31.vma"))
    assert.is_nil(devices.vmid_from_filename("backup.vma"))
    assert.is_nil(devices.vmid_from_filename("-"))
    assert.is_nil(devices.vmid_from_filename(""))
    assert.is_nil(devices.vmid_from_filename(nil))
  end)
end)

describe("match", function()
  local devs = { { name = "drive-scsi0" }, { name = "drive-tpmstate0-backup" }, { name = "disk0" } }
  it("finds a device by its name or its config key", function()
    assert.equal(devs[1], devices.match(devs, "drive-scsi0"))
    assert.equal(devs[1], devices.match(devs, "scsi0"))
    assert.equal(devs[2], devices.match(devs, "tpmstate0"))
    assert.equal(devs[3], devices.match(devs, "disk0"))
    assert.are.same({ nil, "no device named 'scsi1' in the archive (the devices: drive-scsi0, "
      .. "drive-tpmstate0-backup, disk0)" }, { devices.match(devs, "scsi1") })
  end)

  it("takes the exact name before a config key, and refuses a key two devices answer to", function()
    local two = { { name = "drive-scsi0" }, { name = "scsi0" }, { name = "drive-tpmstate0" },
                  { name = "drive-tpmstate0-backup" }, { name = "vmstate", vmstate = true } }
    assert.equal(two[2], devices.match(two, "scsi0"))
    assert.equal(two[1], devices.match(two, "drive-scsi0"))
    assert.equal(two[3], devices.match(two, "drive-tpmstate0"))
    assert.are.same({ nil, "'tpmstate0' is ambiguous: the archive has drive-tpmstate0 or "
      .. "drive-tpmstate0-backup (give the full name)" }, { devices.match(two, "tpmstate0") })
    assert.equal(two[5], devices.match(two, "vmstate"))
    assert.are.same({ nil, "no disk named 'vmstate' in the archive (the disks: drive-scsi0, scsi0, "
      .. "drive-tpmstate0, drive-tpmstate0-backup)" }, { devices.match(two, "vmstate", true) })
  end)
end)

describe("volume_names", function()
  it("uses volume names and fills the gaps", function()
    local archive = { vmid = 100, devices = {
      { name = "drive-scsi0", volume = "vm-100-disk-0" },
      { name = "drive-scsi1" },
      { name = "drive-scsi2", volume = "vm-100-disk-0" }, -- same name, other storage
      { name = "drive-scsi3", volume = "vm-100-disk-1" },
    } }
    assert.same({ "vm-100-disk-0", "vm-100-disk-2", "vm-100-disk-3", "vm-100-disk-1" },
                devices.volume_names(archive))
  end)

  it("uses vmid 0 when unknown, or the vmid given", function()
    local archive = { devices = { { name = "drive-scsi0" }, { name = "drive-scsi1" } } }
    assert.same({ "vm-0-disk-0", "vm-0-disk-1" }, devices.volume_names(archive))
    assert.same({ "vm-7-disk-0", "vm-7-disk-1" }, devices.volume_names(archive, 7))
  end)
end)
