-- vma help [COMMAND]: list the commands, or show one command's usage.
local cli = require "vma.cli"

local function run(args)
  local cmds = cli.commands()
  if args[1] then
    local path = cmds[args[1]]
    if not path then
      io.stderr:write(string.format("vma help: unknown command '%s'\n", args[1]))
      return 2
    end
    local cmd, err = cli.load(path)
    if not cmd then
      io.stderr:write("vma help: " .. err .. "\n")
      return 1
    end
    io.write(cmd.usage or ("usage: vma " .. args[1] .. "\n"))
    if cmd.usage and not cmd.usage:match("\n$") then io.write("\n") end
    return 0
  end
  local names = {}
  for n in pairs(cmds) do names[#names + 1] = n end
  table.sort(names)
  io.write("usage: vma COMMAND [ARGS...]\n\ncommands:\n")
  for _, n in ipairs(names) do
    local cmd = cli.load(cmds[n])
    io.write(string.format("  %-14s %s\n", n, cmd and cmd.description or "(cannot be loaded)"))
  end
  io.write("\n'vma help COMMAND' shows a command's usage.\n")
  return 0
end

return {
  description = "list the commands, or show the usage of one",
  usage = "usage: vma help [COMMAND]\n",
  run = run,
}
