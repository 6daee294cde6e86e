-- vma.devices: archive device names, config keys and qemu-server.conf parsing.
--
-- A VMA archive written by vzdump names its disks after QEMU drive ids:
-- "drive-scsi0", "drive-virtio1", "drive-sata2", "drive-ide0",
-- "drive-efidisk0" and, for the TPM state, "drive-tpmstate0-backup". The
-- VM configuration (qemu-server.conf) names the same disks by config key:
-- "scsi0", "virtio1", ..., "tpmstate0". This module converts between the two
-- and parses the configuration text.

local M = {}

-- Config keys that name a disk (a drive that vzdump backs up).
local DISK_BUSES = { ide = true, sata = true, scsi = true, virtio = true,
                     efidisk = true, tpmstate = true }

-- Extensions of image files on directory storages, with their format.
local IMAGE_EXT = { raw = "raw", qcow2 = "qcow2", vmdk = "vmdk" }

local UNITS = { [""] = 1, K = 1 << 10, M = 1 << 20, G = 1 << 30, T = 1 << 40, P = 1 << 50 }

--- True if KEY is the config key of a disk ("scsi0", "efidisk0", ...).
function M.is_disk_key(key)
  if type(key) ~= "string" then return false end
  local bus = key:match("^(%l+)%d+$")
  return bus ~= nil and DISK_BUSES[bus] == true
end

--- Config key of an archive device name: "drive-scsi0" -> "scsi0",
-- "drive-tpmstate0-backup" -> "tpmstate0". Nil for names that do not follow
-- the "drive-<key>" convention (e.g. "disk0", "vmstate").
function M.key_of(devname)
  if type(devname) ~= "string" then return nil end
  local key = devname:match("^drive%-(%l+%d+)$")
  if key then return key end
  key = devname:match("^drive%-(tpmstate%d+)%-backup$")
  return key
end

--- Archive device name of a config key: "scsi0" -> "drive-scsi0",
-- "tpmstate0" -> "drive-tpmstate0-backup" (the name vzdump uses).
-- A name that already is a device name is returned unchanged.
function M.devname_of(key)
  if type(key) ~= "string" or key == "" then return nil end
  if key:match("^drive%-") then return key end
  if key:match("^tpmstate%d+$") then return "drive-" .. key .. "-backup" end
  return "drive-" .. key
end

--- Size in bytes of a size string, the one rule of vma (config sizes,
-- --offset and --length): "32G", "512M", "1T", "100K", "4m", "1.5G", "64KiB",
-- "1GB" (K, M, G, T, P: powers of 1024, in any case, with or without B or
-- iB after them), or plain bytes "1073741824"; a fraction is rounded down.
-- Nil if it is not a size (or does not fit an integer).
function M.parse_size(s)
  if type(s) == "number" then
    local n = math.tointeger(s)
    if n and n >= 0 then return n end
    return nil
  end
  if type(s) ~= "string" then return nil end
  local num, frac, unit, suffix = s:match("^(%d+)(%.?%d*)(%a?)(%a*)$")
  if not num or frac == "." then return nil end
  local mult = UNITS[unit:upper()]
  suffix = suffix:lower()
  -- "100B" is not a size: B only after a unit
  if not mult or (suffix ~= "" and suffix ~= "b" and suffix ~= "ib") then return nil end
  if frac == "" then
    local n = math.tointeger(tonumber(num))
    if not n or n > math.maxinteger // mult then return nil end
    return n * mult
  end
  local v = tonumber(num .. frac) * mult
  if v >= 2 ^ 63 then return nil end
  return math.tointeger(math.floor(v))
end

--- Split a volume id into storage and volume name.
-- "local-lvm:vm-100-disk-0" -> "local-lvm", "vm-100-disk-0";
-- "/dev/sdb" -> nil, "/dev/sdb".
function M.parse_volid(volid)
  if type(volid) ~= "string" then return nil, nil end
  local storage, volname = volid:match("^([%a][%w%-_%.]*):(.+)$")
  if storage then return storage, volname end
  return nil, volid
end

-- "100/vm-100-disk-0.qcow2" -> "vm-100-disk-0", "qcow2";
-- "base-100-disk-0/vm-101-disk-0" -> "vm-101-disk-0", nil.
local function volume_name(volname)
  if not volname then return nil end
  local base = volname:match("([^/]+)/*$") or volname
  local stem, ext = base:match("^(.+)%.(%w+)$")
  if stem and IMAGE_EXT[ext] then return stem, IMAGE_EXT[ext] end
  return base, nil
end

--- Parse a drive value ("local-lvm:vm-100-disk-0,size=32G,discard=on").
-- Returns a table:
--   file     the volume id or path ("local-lvm:vm-100-disk-0", "none", "/dev/sdb")
--   storage  "local-lvm" (nil for a plain path or "none")
--   volname  the part after "storage:" ("vm-100-disk-0", "100/vm-100-disk-0.qcow2")
--   volume   base name without image extension ("vm-100-disk-0")
--   size     bytes (nil when there is no size= option)
--   format   the format= option, else guessed from the file extension, else nil
--   media    "disk" or "cdrom"
--   options  all key=value options as strings (size="32G", discard="on", ...)
--   is_disk  false for "none" and cdrom media
function M.parse_drive(value)
  if type(value) ~= "string" then return nil end
  local drive = { options = {} }
  local first = true
  for part in (value .. ","):gmatch("([^,]*),") do
    local k, v = part:match("^([%w_%-%.]+)=(.*)$")
    if k then
      if k == "file" or k == "volume" then
        drive.file = v
      else
        drive.options[k] = v
      end
    elseif first and part ~= "" then
      drive.file = part
    elseif part ~= "" then
      drive.options[part] = "1"
    end
    first = false
  end
  drive.media = drive.options.media or "disk"
  if drive.file and drive.file ~= "none" then
    drive.storage, drive.volname = M.parse_volid(drive.file)
    local ext_format
    drive.volume, ext_format = volume_name(drive.volname)
    drive.format = drive.options.format or ext_format
  else
    drive.format = drive.options.format
  end
  if drive.options.size then drive.size = M.parse_size(drive.options.size) end
  drive.is_disk = drive.file ~= nil and drive.file ~= "none" and drive.media ~= "cdrom"
  return drive
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- Parse the text of a qemu-server.conf. Returns a table:
--   raw        the text itself
--   options    key -> value (string) of every "key: value" line of the main part
--   order      the keys in the order of the file
--   drives     key -> parsed drive (see parse_drive) for every disk key
--              (ide/sata/scsi/virtio/efidisk/tpmstate), cdroms and "none" included
--   disks      key -> drive, only the real disks (no cdrom, no "none")
--   description  the "#" comment lines of the main part joined with "\n", or nil
--   qmdump     key -> { key=, devname=, storage=, format= } from the
--              "#qmdump#map:<key>:<devname>:<storage>:<format>:" lines vzdump
--              adds (storage/format nil when empty)
--   snapshots  names of the snapshot sections, in file order (the main part
--              ends at the first "[section]" line; "[PENDING]" and
--              "[special:...]" sections are not snapshots)
--   sections   every section name, in order
--   invalid    lines of the main part that could not be parsed
function M.parse_config(text)
  text = text or ""
  local cfg = { raw = text, options = {}, order = {}, drives = {}, disks = {},
                qmdump = {}, snapshots = {}, sections = {}, invalid = {} }
  local desc = {}
  local in_main = true
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    line = line:gsub("\r$", "")
    local section = line:match("^%[(.-)%]%s*$")
    local key, devname, storage, format =
      line:match("^#qmdump#map:([^:]+):([^:]+):([^:]*):([^:]*):%s*$")
    if key then
      cfg.qmdump[key] = { key = key, devname = devname,
                          storage = storage ~= "" and storage or nil,
                          format = format ~= "" and format or nil }
    elseif section then
      in_main = false
      cfg.sections[#cfg.sections + 1] = section
      if not section:match("^[Pp][Ee][Nn][Dd][Ii][Nn][Gg]$") and not section:match("^special:") then
        cfg.snapshots[#cfg.snapshots + 1] = section
      end
    elseif not in_main then
      -- snapshot / pending data: not part of the current configuration
    elseif line:match("^#") then
      if not line:match("^#qmdump#") and not line:match("^#vzdump#") then
        desc[#desc + 1] = line:sub(2)
      end
    elseif line:match("^%s*$") then
      -- blank line
    else
      local k, v = line:match("^([%a][%w_%-]*):%s*(.-)%s*$")
      if k then
        if cfg.options[k] == nil then cfg.order[#cfg.order + 1] = k end
        cfg.options[k] = v
        if M.is_disk_key(k) then
          local drive = M.parse_drive(v)
          drive.key = k
          drive.devname = M.devname_of(k)
          cfg.drives[k] = drive
          if drive.is_disk then cfg.disks[k] = drive else cfg.disks[k] = nil end
        end
      else
        cfg.invalid[#cfg.invalid + 1] = trim(line)
      end
    end
  end
  if #desc > 0 then cfg.description = table.concat(desc, "\n") end
  return cfg
end

--- Vmid of a vzdump archive file name (or path):
-- "vzdump-qemu-100-2021_10_31-12_00_00.vma.zst" -> 100. Nil otherwise (and
-- for the backups of containers).
function M.vmid_from_filename(path)
  if type(path) ~= "string" or path == "" then return nil end
  local r = require("vma.vzdump").parse(path)
  if type(r) ~= "table" or r.type ~= "qemu" then return nil end
  return math.tointeger(tonumber(r.vmid))
end

--- The device of DEVICES (a list of {name=, vmstate=}) a user means by NAME,
-- by the one rule of every front end (vma.find_device, in C): the exact
-- device name first ("scsi0" when there is one), else its config key
-- ("scsi0" for "drive-scsi0", "tpmstate0" for "drive-tpmstate0-backup").
-- With disks_only the vmstate is left out. Nil and a message when no device
-- or more than one matches.
function M.match(devices, name, disks_only)
  if type(name) ~= "string" then return nil, "no device name given" end
  local d, err = require("vma").find_device(devices, name, disks_only)
  return d, err
end

--- The qemu-server.conf a backup stores, as vzdump writes it: the current
-- configuration only (snapshot, pending and cloud-init sections, lock:,
-- parent: and unused disks left out), then one line per disk,
--   #qmdump#map:<key>:<devname>:<storage>:<format>:
-- with the storage and format of the drive's line in the config ("raw" when
-- the line tells no format: what the archive holds is a raw image). DEVS:
-- the archive's device names. Returns the text and a list of the names that
-- have no drive line (no map line for them). A config that has map lines
-- already is returned as it is.
function M.vzdump_config(text, devs)
  local cfg = M.parse_config(text)
  if next(cfg.qmdump) then return text, {} end
  local out, in_main = {}, true
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local bare = line:gsub("\r$", "")
    if bare:match("^%[.-%]%s*$") then in_main = false end
    if in_main and not bare:match("^#qmdump#") and not bare:match("^#vzdump#")
       and not bare:match("^lock:") and not bare:match("^parent:")
       and not bare:match("^unused%d+:") then
      out[#out + 1] = line
    end
  end
  while #out > 0 and out[#out] == "" do out[#out] = nil end
  local unmapped = {}
  for _, name in ipairs(devs) do
    local key = M.key_of(name)
    local drive = key and cfg.drives[key]
    if drive and drive.is_disk then
      out[#out + 1] = string.format("#qmdump#map:%s:%s:%s:%s:", key, name, drive.storage or "",
        drive.format or "raw")
    elseif name ~= "vmstate" then
      unmapped[#unmapped + 1] = name
    end
  end
  return table.concat(out, "\n") .. "\n", unmapped
end

--- Names for the disks of an archive, one per device of ARCHIVE.devices (same
-- index), unique among themselves: the device's volume name, else (no volume,
-- or a volume name already used by an earlier device) "vm-<vmid>-disk-<n>"
-- with the first free n. VMID defaults to archive.vmid, then 0.
function M.volume_names(archive, vmid)
  vmid = vmid or archive.vmid or 0
  local used, names = {}, {}
  for i, dev in ipairs(archive.devices) do
    local v = dev.volume
    if v and v ~= "" and not used[v] then
      names[i] = v
      used[v] = true
    end
  end
  local n = 0
  for i = 1, #archive.devices do
    if not names[i] then
      local name
      repeat
        name = string.format("vm-%s-disk-%d", tostring(vmid), n)
        n = n + 1
      until not used[name]
      names[i] = name
      used[name] = true
    end
  end
  return names
end

return M
