-- Built-in restore target "dir:PATH": every disk becomes a raw image file
-- PATH/<volume>.raw (e.g. /restore/vm-100-disk-0.raw). A device without a
-- volume name in the config (or whose volume name an earlier device already
-- took) gets vm-<vmid>-disk-<n>.raw, with vmid from the archive's file name
-- (0 when unknown). The files are new, so zero blocks are left as holes
-- (write_zero = false); a file that exists already is refused, or with
-- --force written over, zeros included (write_zero = true), so no old data
-- survives. A symbolic link in PATH is never followed, --force or not
-- (nofollow): nothing outside PATH is written. The vmstate device is never
-- part of a map: extract writes it as vmstate.bin in its own folder (the DIR
-- of vma extract).
local devices = require "vma.devices"
local volume = require "vma.volume"

return {
  description = "raw image files PATH/<volume>.raw",
  map = function(archive, dir, opts)
    if dir == nil or dir == "" then
      error("the dir target needs a directory: dir:PATH", 0)
    end
    if dir ~= "/" then dir = dir:gsub("/+$", "") end
    local prefix = dir == "/" and "/" or dir .. "/"
    local names = devices.volume_names(archive)
    local map = {}
    for i, dev in ipairs(archive.devices) do
      local path = prefix .. names[i] .. ".raw"
      map[dev.name] = { path = path, write_zero = volume.existing(path, opts), format = "raw",
                        nofollow = true }
    end
    return map
  end,
}
