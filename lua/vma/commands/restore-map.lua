-- vma restore-map ARCHIVE (--target SPEC | --script FILE.lua) [-f] [--json]
--
-- Prints the restore map for an archive, in the syntax of `vma extract -r`
-- (Proxmox's), computed by a built-in or user target or by a Lua script.
local ui = require "vma.ui"
local restoremap = require "vma.restoremap"
local argparse = require "argparse"

local USAGE = "usage: vma restore-map ARCHIVE (--target SPEC | --script FILE.lua) [-f] [--json]"

local function parser()
  local p = argparse("vma restore-map", ui.text [[
    Print a restore map for ARCHIVE (in the syntax of `vma extract -r MAP`, ending with "done"),
    computed from the archive's devices and config by a target or a Lua script. See
    docs/restore-maps.md.]])
    :usage(USAGE)
  ui.archive_argument(p, "stdin")
  local target = p:option("-t --target", "dir:PATH (raw files PATH/<volume>.raw), lvm:VG[/POOL] "
    .. "(/dev/VG/<volume>), zfs:POOL (/dev/zvol/POOL/<volume>), rbd:POOL[:conf=FILE] (new Ceph "
    .. "RBD images POOL/vm-<vmid>-disk-<n>), or NAME:ARG for a target "
    .. "of your own (docs/plugins.md)")
  local script = p:option("-s --script", "a Lua file returning function(archive) -> map")
  p:mutex(target, script)
  p:flag("-f --force", "map onto existing files and volumes (with zeros written)")
  p:flag("--json", "print the map as JSON instead")
  return p
end

-- { "archive": ..., "vmid": ..., "devices": [ {devname, skip | path, write_zero, format...} ] }
local function to_json(archive, entries)
  local devices = ui.array()
  for _, e in ipairs(entries) do
    local d = { devname = e.devname }
    if e.skip then
      d.skip = true
    else
      d.path, d.write_zero = e.path, e.write_zero
      for _, k in ipairs({ "format", "bps", "group", "cache" }) do d[k] = e[k] end
    end
    devices[#devices + 1] = d
  end
  return ui.json({ archive = archive.path, vmid = archive.vmid or ui.null, devices = devices },
    { "archive", "vmid", "devices", "devname", "skip", "path", "write_zero", "format" }) .. "\n"
end

local function run(args)
  local a, status = ui.parse(parser(), args or {}, "restore-map")
  if not a then return status end
  if not a.target and not a.script then
    return ui.usage("restore-map", "one of --target or --script is required")
  end
  local function fail(msg) return ui.fail("restore-map", msg, a.json) end
  local vma = require "vma"
  local ok, r, oerr = pcall(vma.open, a.archive)
  if not ok or not r then return fail(ok and oerr or r) end
  local entries, archive = restoremap.resolve(r, a.archive,
    { script = a.script, target = a.target, force = a.force })
  pcall(r.close, r)
  if not entries then return fail(archive) end
  local text, ferr
  if a.json then
    text = to_json(archive, entries)
  else
    text, ferr = restoremap.format(entries)
    if not text then return fail(ferr) end
  end
  io.stdout:write(text)
  return 0
end

return {
  description = "print a restore map (for extract -r) from a target or a Lua script",
  usage = parser():get_help(),
  run = run,
}
