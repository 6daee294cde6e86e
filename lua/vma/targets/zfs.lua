-- Built-in restore target "zfs:POOL": every disk goes to the zvol
-- /dev/zvol/POOL/<volume> (e.g. /dev/zvol/rpool/data/vm-100-disk-0); POOL may
-- name a dataset ("rpool/data"). Names come from the archive's config
-- (vm-<vmid>-disk-<n> when there is none). A zvol that does not exist is
-- created at the disk's size (zfs create -s -V, thin as Proxmox makes them)
-- before the restore and destroyed again when the restore fails; a new zvol
-- reads as zeros, so zero blocks are skipped. An existing zvol is refused,
-- or with --force written over, zeros included.
local vma = require "vma"
local devices = require "vma.devices"
local sys = require "vma.sys"

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

local function volumes(archive, pool)
  local names = devices.volume_names(archive)
  local out = {}
  for i, dev in ipairs(archive.devices) do
    out[i] = { dev = dev, dataset = pool .. "/" .. names[i],
               path = "/dev/zvol/" .. pool .. "/" .. names[i] }
  end
  return out
end

return {
  description = "zvols /dev/zvol/POOL/<volume> (made when missing)",
  map = function(archive, arg, opts)
    local pool = parse(arg)
    local map = {}
    for _, v in ipairs(volumes(archive, pool)) do
      local exists = vma.stat(v.path) ~= nil
      if exists and not (opts and opts.force) then
        error(v.path .. " already exists (not writing over it; --force writes over it, zeros "
          .. "included)", 0)
      end
      map[v.dev.name] = { path = v.path, write_zero = exists, format = "raw" }
    end
    return map
  end,
  prepare = function(entries, archive, arg, opts)
    local pool = parse(arg)
    local made, undo = {}, {}
    local by_path = {}
    for _, v in ipairs(volumes(archive, pool)) do by_path[v.path] = v end
    for _, e in ipairs(entries) do
      local v = e.path and by_path[e.path]
      if v and not vma.stat(v.path) then
        -- a volume size is a multiple of its block size (8 KiB by default)
        local size = (v.dev.size + 8191) // 8192 * 8192
        local argv = { "zfs", "create", "-s", "-V", tostring(size), v.dataset }
        made[v.path] = sys.command_line(argv)
        if not opts.dry_run then
          local ok, err = sys.run(argv)
          if ok then undo[#undo + 1] = function() sys.run { "zfs", "destroy", v.dataset } end end
          if not ok or not sys.wait_for(v.path, 10) then
            for i = #undo, 1, -1 do undo[i]() end
            return nil, ok and (v.path .. " did not appear after zfs create") or err
          end
        end
      end
    end
    return made, function() for i = #undo, 1, -1 do undo[i]() end end
  end,
}
