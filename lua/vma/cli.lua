-- vma.cli: the command dispatcher.  Every command is one Lua file returning
-- { description = "...", usage = "...", run = function(args) ... end };
-- the folders are the registry: bundled lua/vma/commands/, then
-- $XDG_CONFIG_HOME/vma/commands/ and the folders of $VMA_COMMANDS_PATH
-- (a user file of the same name replaces a bundled command).

local M = {}

local function bundled_dir()
  local path = package.searchpath("vma.cli", package.path)
  return path and path:gsub("cli%.lua$", "commands") or nil
end

--- The folders searched for commands, lowest priority first.
function M.command_dirs()
  local dirs = {}
  local b = bundled_dir()
  if b then dirs[#dirs + 1] = b end
  local xdg = os.getenv("XDG_CONFIG_HOME")
  if not xdg or xdg == "" then
    local home = os.getenv("HOME")
    xdg = home and (home .. "/.config") or nil
  end
  if xdg then dirs[#dirs + 1] = xdg .. "/vma/commands" end
  for dir in (os.getenv("VMA_COMMANDS_PATH") or ""):gmatch("[^:]+") do
    dirs[#dirs + 1] = dir
  end
  return dirs
end

local function list_lua(dir)
  local ok, lfs = pcall(require, "lfs")
  local names = {}
  if not ok then return names end
  local iter_ok, iter, state = pcall(lfs.dir, dir)
  if not iter_ok then return names end
  for f in iter, state do
    local name = f:match("^([%w][%w%-_]*)%.lua$")
    if name then names[#names + 1] = name end
  end
  return names
end

--- name -> file path of every command; later folders win.
function M.commands()
  local found = {}
  for _, dir in ipairs(M.command_dirs()) do
    for _, name in ipairs(list_lua(dir)) do
      found[name] = dir .. "/" .. name .. ".lua"
    end
  end
  return found
end

--- Load a command file; returns the command table or nil, message.
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, cmd = pcall(chunk)
  if not ok then return nil, tostring(cmd) end
  if type(cmd) ~= "table" or type(cmd.run) ~= "function" then
    return nil, path .. ": a command file must return a table with a run function"
  end
  return cmd
end

local function debug_on()
  local d = os.getenv("VMA_DEBUG")
  return d and d ~= "" and d ~= "0"
end

--- The file of one command (without listing folders: works without lfs).
function M.find(name)
  if not name:match("^[%w][%w%-_]*$") then return nil end
  local dirs = M.command_dirs()
  for i = #dirs, 1, -1 do
    local path = dirs[i] .. "/" .. name .. ".lua"
    local f = io.open(path, "r")
    if f then
      f:close()
      return path
    end
  end
  return nil
end

--- Run one command with its arguments; returns the exit status.
function M.run(name, args)
  local path = M.find(name)
  if not path then
    io.stderr:write(string.format("vma: unknown command '%s' (see 'vma help')\n", name))
    return 2
  end
  local cmd, err = M.load(path)
  if not cmd then
    io.stderr:write("vma " .. name .. ": " .. err .. "\n")
    return 1
  end
  local handler = debug_on() and debug.traceback or function(e) return e end
  local ok, status = xpcall(cmd.run, handler, args)
  if not ok then
    local msg = tostring(status)
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
  local rest = table.move(argv, 2, #argv, 1, {})
  return M.run(name, rest)
end

return M
