-- Built-in restore target "lvm:VG" (or "lvm:VG/THINPOOL"): every disk goes
-- to the logical volume /dev/VG/<volume> (e.g. /dev/pve/vm-100-disk-0), named
-- after the volume in the archive's config (vm-<vmid>-disk-<n> when there is
-- none). A volume that does not exist is created at the disk's size
-- (lvcreate -L, or a thin volume in THINPOOL with lvcreate -V -T) before the
-- restore, and removed again when the restore fails. An existing volume is
-- refused, or with --force written over, zeros included. A new thick volume
-- may hold old data, so its zero blocks are written; a new thin one reads as
-- zeros, so they are skipped.
local vma = require "vma"
local devices = require "vma.devices"
local sys = require "vma.sys"

local function parse(arg)
  if arg == nil or arg == "" then
    error("the lvm target needs a volume group: lvm:VG", 0)
  end
  arg = arg:gsub("^/dev/", ""):gsub("/+$", "")
  local vg, pool = arg:match("^([^/]+)/([^/]+)$")
  if not vg then vg = arg end
  if vg == "" or vg:find("/", 1, true) or not vg:match("^[%w_][%w_%.%+%-]*$")
     or (pool and not pool:match("^[%w_][%w_%.%+%-]*$")) then
    error("bad volume group name for the lvm target: " .. arg, 0)
  end
  return vg, pool
end

local function volumes(archive, vg)
  local names = devices.volume_names(archive)
  local out = {}
  for i, dev in ipairs(archive.devices) do
    out[i] = { dev = dev, name = names[i], path = "/dev/" .. vg .. "/" .. names[i] }
  end
  return out
end

return {
  description = "logical volumes /dev/VG/<volume> (made when missing)",
  map = function(archive, arg, opts)
    local vg, pool = parse(arg)
    local map = {}
    for _, v in ipairs(volumes(archive, vg)) do
      local exists = vma.stat(v.path) ~= nil
      if exists and not (opts and opts.force) then
        error(v.path .. " already exists (not writing over it; --force writes over it, zeros "
          .. "included)", 0)
      end
      map[v.dev.name] = { path = v.path, write_zero = exists or pool == nil, format = "raw" }
    end
    return map
  end,
  -- the volumes that do not exist yet: made (or, in a dry run, only named)
  prepare = function(entries, archive, arg, opts)
    local vg, pool = parse(arg)
    local made, undo = {}, {}
    local by_path = {}
    for _, v in ipairs(volumes(archive, vg)) do by_path[v.path] = v end
    for _, e in ipairs(entries) do
      local v = e.path and by_path[e.path]
      if v and not vma.stat(v.path) then
        local size = tostring(v.dev.size) .. "b"
        local argv = pool and { "lvcreate", "-y", "-n", v.name, "-V", size, "-T", vg .. "/" .. pool }
                          or { "lvcreate", "-y", "-n", v.name, "-L", size, vg }
        made[v.path] = sys.command_line(argv)
        if not opts.dry_run then
          local ok, err = sys.run(argv)
          if ok then
            undo[#undo + 1] = function() sys.run { "lvremove", "-f", vg .. "/" .. v.name } end
          end
          if not ok or not sys.wait_for(v.path, 10) then
            for i = #undo, 1, -1 do undo[i]() end
            return nil, ok and (v.path .. " did not appear after lvcreate") or err
          end
        end
      end
    end
    return made, function() for i = #undo, 1, -1 do undo[i]() end end
  end,
}
