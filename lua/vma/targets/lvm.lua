-- Built-in restore target "lvm:VG" (or "lvm:VG/THINPOOL"): every disk goes
-- to the logical volume /dev/VG/<volume> (e.g. /dev/pve/vm-100-disk-0), named
-- after the volume in the archive's config (vm-<vmid>-disk-<n> when there is
-- none). A volume that does not exist is created at the disk's size
-- (lvcreate -L, or a thin volume in THINPOOL with lvcreate -V -T) before the
-- restore, and removed again when the restore fails. An existing volume is
-- refused, or with --force written over, zeros included. A new thick volume
-- may hold old data, so its zero blocks are written; a new thin one reads as
-- zeros, so they are skipped.
local devices = require "vma.devices"
local volume = require "vma.volume"

local NAME = "^[%w_][%w_%.%+%-]*$"

local function parse(arg)
  if arg == nil or arg == "" then
    error("the lvm target needs a volume group: lvm:VG", 0)
  end
  arg = arg:gsub("^/dev/", ""):gsub("/+$", "")
  local vg, pool = arg:match("^([^/]+)/([^/]+)$")
  if not vg then vg = arg end
  if not vg:match(NAME) or (pool and not pool:match(NAME)) then
    error("bad volume group name for the lvm target: " .. arg, 0)
  end
  return vg, pool
end

local function volumes(archive, arg)
  local vg, pool = parse(arg)
  local names = devices.volume_names(archive)
  local out = {}
  for i, dev in ipairs(archive.devices) do
    local size = tostring(dev.size) .. "b"
    out[i] = {
      dev = dev, thin = pool ~= nil, path = "/dev/" .. vg .. "/" .. names[i],
      create = pool and { "lvcreate", "-y", "-n", names[i], "-V", size, "-T", vg .. "/" .. pool }
                    or { "lvcreate", "-y", "-n", names[i], "-L", size, vg },
      remove = { "lvremove", "-f", vg .. "/" .. names[i] },
      check = pool and { what = "thin pool " .. vg .. "/" .. pool,
                         argv = { "lvs", "--noheadings", "-o", "lv_name", vg .. "/" .. pool } }
                    or { what = "volume group " .. vg,
                         argv = { "vgs", "--noheadings", "-o", "vg_name", vg } },
    }
  end
  return out
end

return volume.target("logical volumes /dev/VG/<volume> (made when missing)", volumes)
