-- Built-in restore target "rbd:POOL" (also "rbd:POOL/NAMESPACE", with the
-- options of an rbd: name: rbd:POOL:conf=FILE:id=NAME:keyring=FILE...): every
-- disk goes to a NEW image of the Ceph pool, named as Proxmox's RBD storage
-- names the volumes it allocates: vm-<vmid>-disk-<n>, with the first n that
-- no image of the pool (nor an earlier disk) has; vmid from the archive's file
-- name (0 when unknown). An existing image is never written: the names are
-- free when the map is made, and the images are created (rbd_create, which
-- refuses an existing name) before the restore and removed again when it
-- fails. A new image reads as zeros, so zero blocks are skipped (0:, thin).
local ceph = require "vma.ceph"

local function parse(arg)
  local t, err = ceph.parse_pool(arg)
  if not t then error(err, 0) end
  return t
end

-- spec -> { t =, size =, devname = } of the images this map names
local function images(archive, arg)
  local t = parse(arg)
  local existing, err = ceph.list(t)
  if not existing then error(err, 0) end
  local vmid = archive.vmid or 0
  local out, n = {}, 0
  for _, dev in ipairs(archive.devices) do
    local name
    repeat
      name = string.format("vm-%s-disk-%d", tostring(vmid), n)
      n = n + 1
    until not existing[name]
    local spec = ceph.format(t, name)
    out[#out + 1] = { spec = spec, dev = dev, t = assert(ceph.parse(spec)) }
  end
  return out
end

return {
  description = "new Ceph RBD images POOL/vm-<vmid>-disk-<n> (rbd:POOL[:conf=FILE][:id=NAME])",
  map = function(archive, arg)
    local map = {}
    for _, im in ipairs(images(archive, arg)) do
      map[im.dev.name] = { path = im.spec, write_zero = false, format = "raw" }
    end
    return map
  end,
  -- create the images the entries name; a name taken since the map was made
  -- is an error (never written into)
  prepare = function(entries, archive, _, opts)
    local size = {}
    for _, d in ipairs(archive.devices) do size[d.name] = d.size end
    local made, undo = {}, {}
    local function rollback()
      for i = #undo, 1, -1 do
        local ok, err = ceph.remove(undo[i])
        if not ok then
          io.stderr:write("vma: could not remove the RBD image ", ceph.name(undo[i]), ": ",
            tostring(err), "; remove it with: rbd rm ", ceph.name(undo[i]), "\n")
        end
      end
      undo = {}
    end
    for _, e in ipairs(entries) do
      if e.path and ceph.is_spec(e.path) and size[e.devname] then
        local t = assert(ceph.parse(e.path))
        made[e.path] = string.format("rbd create --size %dB %s", size[e.devname], ceph.name(t))
        if not opts.dry_run then
          local ok, err = ceph.create(t, size[e.devname])
          if not ok then
            rollback()
            return nil, err
          end
          undo[#undo + 1] = t
        end
      end
    end
    return made, rollback
  end,
}
