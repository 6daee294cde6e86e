-- vma.cli: the command dispatcher.  Every command is one Lua file returning
-- { description = "...", usage = "...", run = function(args) ... end },
-- found through vma.plugins (the folders are the registry: the bundled
-- lua/vma/commands/, the user's, $VMA_COMMANDS_PATH; see docs/plugins.md).

local plugins = require "vma.plugins"

local M = {}

local function debug_on()
  local d = os.getenv("VMA_DEBUG")
  return d and d ~= "" and d ~= "0"
end

--- Run one command with its arguments; returns the exit status.
function M.run(name, args)
  local cmd, err, why = plugins.load("command", name)
  if not cmd then
    if why == "unknown" then
      io.stderr:write(string.format("vma: unknown command '%s' (see 'vma help')\n", name))
      return 2
    end
    io.stderr:write("vma " .. name .. ": " .. err .. "\n")
    return 1
  end
  local handler = debug_on() and debug.traceback or function(e) return e end
  local ok, status = xpcall(cmd.run, handler, args)
  if not ok then
    local msg = plugins.errmsg(status)
    if not debug_on() then
      -- an error raised with a position: keep only the message
      msg = msg:gsub("^[^:\n]+%.lua:%d+: ", "")
    end
    io.stderr:write("vma " .. name .. ": " .. msg .. "\n")
    return 1
  end
  if status == nil or status == true then return 0 end
  if status == false then return 1 end
  return math.tointeger(status) or 1
end

function M.main(argv)
  local name = argv[1]
  if name == nil then
    io.stderr:write("usage: vma COMMAND [ARGS...]   (see 'vma help')\n")
    return 2
  end
  if name == "-h" or name == "--help" then name = "help" end
  if name == "--version" or name == "-V" then
    print("vma " .. require("vma").version)
    return 0
  end
  -- the shell completion's question (completions/vma.bash, vma.complete)
  if name == "--complete" then return require("vma.complete").main(argv) end
  local rest = table.move(argv, 2, #argv, 1, {})
  return M.run(name, rest)
end

return M
