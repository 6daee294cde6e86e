-- Put big disks on one storage and small ones on another, and leave the TPM
-- state out:
--
--   vma restore-map ARCHIVE --script examples/map-by-size.lua > map.txt
--
-- Disks larger than VMA_BIG (default 100G; any Proxmox size: 512M, 2T, or
-- bytes) go to the LVM volume group "bulk" (/dev/bulk/<volume>); the others to
-- the ZFS dataset rpool/data (/dev/zvol/rpool/data/<volume>). The TPM state
-- (tpmstate0) is skipped. Change BIG_VG / SMALL_POOL below to your storages.

local devices = require "vma.devices"

local BIG_VG = "bulk"
local SMALL_POOL = "rpool/data"

return function(archive)
  local limit = devices.parse_size(os.getenv("VMA_BIG") or "100G")
  if not limit then error("VMA_BIG is not a size: " .. os.getenv("VMA_BIG"), 0) end

  -- unique names, vm-<vmid>-disk-<n> for disks without a volume name
  local names = devices.volume_names(archive)
  local map = {}
  for i, dev in ipairs(archive.devices) do
    if dev.key == "tpmstate0" then
      map[dev.name] = false -- skip it
    elseif dev.size > limit then
      map[dev.name] = { path = "/dev/" .. BIG_VG .. "/" .. names[i], write_zero = true, format = "raw" }
    else
      map[dev.name] = { path = "/dev/zvol/" .. SMALL_POOL .. "/" .. names[i], write_zero = true, format = "raw" }
    end
  end
  return map
end
