-- Built-in restore target "lvm:VG": every disk goes to the logical volume
-- /dev/VG/<volume> (e.g. /dev/pve/vm-100-disk-0), named after the volume in
-- the archive's config (vm-<vmid>-disk-<n> when there is none). The logical
-- volumes must exist and be large enough; extract does not create them.
-- Block devices may hold old data, so zero blocks are written (write_zero = true).
local devices = require "vma.devices"

return function(archive, vg)
  if vg == nil or vg == "" then
    error("the lvm target needs a volume group: lvm:VG", 0)
  end
  vg = vg:gsub("^/dev/", ""):gsub("/+$", "")
  if vg == "" or vg:find("/", 1, true) then
    error("bad volume group name for the lvm target: " .. vg, 0)
  end
  local names = devices.volume_names(archive)
  local map = {}
  for i, dev in ipairs(archive.devices) do
    map[dev.name] = { path = "/dev/" .. vg .. "/" .. names[i], write_zero = true, format = "raw" }
  end
  return map
end
