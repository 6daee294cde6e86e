-- vma restore-map ARCHIVE (--target SPEC | --script FILE.lua) [--json]
--
-- Prints the restore map for an archive, in the syntax of `vma extract -r`
-- (Proxmox's), computed by a built-in or user target or by a Lua script.

local USAGE = "usage: vma restore-map ARCHIVE (--target SPEC | --script FILE.lua) [--json]"

local HELP = USAGE .. [[


Print a restore map for ARCHIVE (in the syntax of `vma extract -r MAP`,
ending with "done"), computed from the archive's devices and config.

  -t, --target SPEC     dir:PATH   raw files PATH/<volume>.raw
                        lvm:VG     logical volumes /dev/VG/<volume>
                        zfs:POOL   zvols /dev/zvol/POOL/<volume>
                        NAME:ARG   $XDG_CONFIG_HOME/vma/targets/NAME.lua
  -s, --script FILE     a Lua file returning function(archive) -> map
      --json            print the map as JSON instead
  -h, --help            show this help

See docs/restore-maps.md.
]]

-- { "archive": ..., "vmid": ..., "devices": [ {devname, skip | path, write_zero, format...} ] }
local function to_json(archive, entries)
  local ui = require "vma.ui"
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

local function fail(msg)
  msg = tostring(msg):gsub("\n+$", ""):gsub("\n", " ")
  io.stderr:write("vma restore-map: ", msg, "\n")
  return 1
end

local function run(args)
  local argparse = require "argparse"
  local parser = argparse("vma restore-map")
    :add_help(false)
    :usage(USAGE)
  parser:argument("archive")
  local target = parser:option("-t --target")
  local script = parser:option("-s --script")
  parser:mutex(target, script)
  parser:flag("--json")
  parser:flag("-h --help")

  local ok, opts = parser:pparse(args or {})
  if not ok then
    -- a lone -h/--help still wins over a missing ARCHIVE
    for _, a in ipairs(args or {}) do
      if a == "-h" or a == "--help" then
        io.stdout:write(HELP)
        return 0
      end
    end
    io.stderr:write("vma restore-map: ", opts, "\n", USAGE, "\n")
    return 2
  end
  if opts.help then
    io.stdout:write(HELP)
    return 0
  end
  if not opts.target and not opts.script then
    io.stderr:write("vma restore-map: one of --target or --script is required\n", USAGE, "\n")
    return 2
  end

  local restoremap = require "vma.restoremap"
  local okv, vma = pcall(require, "vma")
  if not okv then return fail("cannot load the vma module: " .. tostring(vma)) end

  local archive
  local okr, err = pcall(function()
    local reader, oerr = vma.open(opts.archive)
    if not reader then error(oerr or ("cannot open " .. opts.archive), 0) end
    local ok2, info = pcall(restoremap.archive_info, reader, opts.archive)
    pcall(reader.close, reader)
    if not ok2 then error(info, 0) end
    archive = info
  end)
  if not okr then return fail(err) end

  local map, merr
  if opts.target then
    map, merr = restoremap.target(opts.target, archive)
  else
    map, merr = restoremap.run_script(opts.script, archive)
  end
  if not map then return fail(merr) end

  local entries, eerr = restoremap.to_entries(map, archive)
  if not entries then return fail(eerr) end

  local text, ferr
  if opts.json then
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
  usage = HELP,
  run = run,
}
