-- Restore every disk of an archive into one LVM volume group, under the
-- names of a NEW vmid (so the original VM's volumes are left alone):
--
--   VMA_NEWID=123 VMA_VG=pve vma restore-map vzdump-qemu-100-....vma.zst \
--       --script examples/map-lvm-newid.lua > map.txt
--
-- vm-100-disk-0 becomes /dev/pve/vm-123-disk-0, vm-100-disk-3 becomes
-- /dev/pve/vm-123-disk-3: the disk number is kept when the old name has one,
-- other disks get the next free number. The logical volumes must exist
-- (lvcreate -n vm-123-disk-0 -L <size> pve) before `vma extract -r map.txt`.
-- Block devices may hold old data, so zero blocks are written (write_zero).

return function(archive)
  local newid = tonumber(os.getenv("VMA_NEWID") or "")
  if not newid or newid ~= math.floor(newid) or newid < 100 then
    error("set VMA_NEWID to the new vmid (an integer >= 100)", 0)
  end
  local vg = os.getenv("VMA_VG") or "pve"

  local used, numbers = {}, {}
  for i, dev in ipairs(archive.devices) do
    local n = dev.volume and tonumber(dev.volume:match("^vm%-%d+%-disk%-(%d+)$"))
    if n and not used[n] then
      numbers[i] = n
      used[n] = true
    end
  end
  local next_free = 0
  local map = {}
  for i, dev in ipairs(archive.devices) do
    local n = numbers[i]
    if not n then
      while used[next_free] do next_free = next_free + 1 end
      n = next_free
      used[n] = true
    end
    map[dev.name] = {
      path = string.format("/dev/%s/vm-%d-disk-%d", vg, newid, n),
      write_zero = true,
      format = "raw",
    }
  end
  return map
end
