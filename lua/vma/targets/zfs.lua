-- Built-in restore target "zfs:POOL": every disk goes to the zvol
-- /dev/zvol/POOL/<volume> (e.g. /dev/zvol/rpool/data/vm-100-disk-0); POOL may
-- name a dataset ("rpool/data"). Names come from the archive's config
-- (vm-<vmid>-disk-<n> when there is none). The zvols must exist and be large
-- enough; extract does not create them. Zero blocks are written
-- (write_zero = true), as for every block device.
local devices = require "vma.devices"

return function(archive, pool)
  if pool == nil or pool == "" then
    error("the zfs target needs a pool or dataset: zfs:POOL", 0)
  end
  pool = pool:gsub("^/dev/zvol/", ""):gsub("^/+", ""):gsub("/+$", "")
  if pool == "" then
    error("bad pool name for the zfs target", 0)
  end
  local names = devices.volume_names(archive)
  local map = {}
  for i, dev in ipairs(archive.devices) do
    map[dev.name] = { path = "/dev/zvol/" .. pool .. "/" .. names[i], write_zero = true, format = "raw" }
  end
  return map
end
