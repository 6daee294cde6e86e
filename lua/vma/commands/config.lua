-- vma config ARCHIVE [-c NAME]: print one config file of the archive.
local ui = require "vma.ui"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma config", "Print a config file of an archive (reads only the header).")
  ui.archive_argument(p, "stdin")
  p:option("-c --config", "the config to print", "qemu-server.conf")
  return p
end

local function run(args)
  local a, r = ui.parse_open(parser(), args, "config")
  if not a then return r end
  local data, cerr = r:config(a.config)
  r:close()
  if not data then return ui.fail("config", cerr) end
  io.write(data)
  return 0
end

return {
  description = "print a config file stored in an archive",
  usage = parser():get_help(),
  complete = { ["--config"] = "configs" },
  run = run,
}
