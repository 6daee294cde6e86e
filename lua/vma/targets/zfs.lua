-- Built-in restore target "zfs:POOL": every disk goes to the zvol
-- /dev/zvol/POOL/<volume> (e.g. /dev/zvol/rpool/data/vm-100-disk-0); POOL may
-- name a dataset ("rpool/data"). Names come from the archive's config
-- (vm-<vmid>-disk-<n> when there is none). A zvol that does not exist is
-- created at the disk's size (zfs create -s -V, thin as Proxmox makes them)
-- before the restore and destroyed again when the restore fails; a new zvol
-- reads as zeros, so zero blocks are skipped. An existing zvol is refused,
-- or with --force written over, zeros included.
local devices = require "vma.devices"
local volume = require "vma.volume"

local function parse(pool)
  if pool == nil or pool == "" then
    error("the zfs target needs a pool or dataset: zfs:POOL", 0)
  end
  pool = pool:gsub("^/dev/zvol/", ""):gsub("^/+", ""):gsub("/+$", "")
  if pool == "" or not pool:match("^[%w_][%w_%.%-:/]*$") or pool:find("//", 1, true) then
    error("bad pool name for the zfs target", 0)
  end
  return pool
end

local function volumes(archive, arg)
  local pool = parse(arg)
  local names = devices.volume_names(archive)
  local out = {}
  for i, dev in ipairs(archive.devices) do
    local dataset = pool .. "/" .. names[i]
    -- a volume size is a multiple of its block size (8 KiB by default)
    local size = (dev.size + 8191) // 8192 * 8192
    out[i] = { dev = dev, thin = true, path = "/dev/zvol/" .. dataset,
               create = { "zfs", "create", "-s", "-V", tostring(size), dataset },
               remove = { "zfs", "destroy", dataset },
               check = { what = "pool or dataset " .. pool,
                         argv = { "zfs", "list", "-H", "-o", "name", pool } } }
  end
  return out
end

return volume.target("zvols /dev/zvol/POOL/<volume> (made when missing)", volumes)
