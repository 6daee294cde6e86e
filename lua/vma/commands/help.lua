-- vma help [COMMAND]: list the commands, or show one command's usage.
local plugins = require "vma.plugins"

local function show(name)
  local cmd, err, why = plugins.load("command", name)
  if not cmd then
    io.stderr:write(string.format("vma help: %s\n", why == "unknown"
      and ("unknown command '" .. name .. "'") or err))
    return why == "unknown" and 2 or 1
  end
  local usage = cmd.usage
  if type(usage) == "function" then usage = usage() end
  usage = usage or ("usage: vma " .. name .. " ...\n" .. (cmd.description or "") .. "\n")
  io.write(usage)
  if not usage:match("\n$") then io.write("\n") end
  return 0
end

local function run(args)
  if args[1] then return show(args[1]) end
  io.write("usage: vma COMMAND [ARGS...]\n\ncommands:\n")
  for _, n in ipairs(plugins.names("command")) do
    local cmd, err = plugins.load("command", n)
    local what
    if cmd then
      -- one line each, whatever the description holds
      what = type(cmd.description) == "string" and cmd.description:match("^%s*([^\n]*)") or ""
    else
      what = "(cannot be loaded: " .. tostring(err):gsub("\n.*", "") .. ")"
    end
    io.write((string.format("  %-14s %s", n, what):gsub("%s+$", "")), "\n")
  end
  io.write("\n'vma help COMMAND' shows a command's usage.\n")
  return 0
end

return {
  description = "list the commands, or show the usage of one",
  usage = "usage: vma help [COMMAND]\n",
  run = run,
}
