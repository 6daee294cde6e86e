-- vma list ARCHIVE: the archive's configs, devices and creation time.
local ui = require "vma.ui"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma list", "List the configs and devices of an archive.")
  ui.archive_argument(p, "stream")
  ui.json_flag(p)
  return p
end

local function run(args)
  local a, r = ui.parse_open(parser(), args, "list")
  if not a then return r end
  if a.json then
    local configs, devices = ui.array(), ui.array()
    for _, c in ipairs(r:configs()) do configs[#configs + 1] = { name = c.name, size = #c.data } end
    for _, d in ipairs(r:devices()) do
      devices[#devices + 1] = { id = d.id, name = d.name, size = d.size, vmstate = d.vmstate }
    end
    ui.out(ui.json { ok = true, uuid = r.uuid, ctime = r.ctime, compression = r.compression,
      configs = configs, devices = devices }, "\n")
  else
    ui.print_content(r)
  end
  r:close()
  return 0
end

return {
  description = "list the configs and devices of an archive",
  usage = parser():get_help(),
  run = run,
}
