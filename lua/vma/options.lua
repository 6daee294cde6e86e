-- vma.options: the options and arguments of a command, as its argparse
-- parser declares them, for the shell completion (vma.complete) and the test
-- that keeps the documents in step with the commands.
--
-- A command file builds its parser when it loads (usage = parser():get_help());
-- every argparse parser made while the file loads is watched, and the one
-- named "vma NAME" (else the first) is read. A command that builds no parser
-- when it loads (prune builds its own when it runs, with its policy's options)
-- is read from its usage text instead: the lines that start with an option.

local plugins = require "vma.plugins"

local M = {}

local function copy(list)
  local t = {}
  for i, v in ipairs(list or {}) do t[i] = v end
  return t
end

-- the option's name for values and messages: its longest alias, without dashes
local function key_of(names)
  local best = names[1]
  for _, n in ipairs(names) do
    if #n > #best then best = n end
  end
  return (best:gsub("^%-+", ""))
end

--- The description of an argparse parser: { options = { {names = {"-c",
--- "--config"}, key = "config", value = true|false, choices = {...}|nil,
--- help = "..."} }, arguments = { {name = "archive", min = 1, max = 1,
--- choices = {...}|nil} } }.
--- -h/--help is left out (every command has it).
function M.from_parser(p)
  local t = { options = {}, arguments = {} }
  for _, o in ipairs(p._options or {}) do
    local names = copy(o._aliases)
    if names[1] ~= "-h" then
      t.options[#t.options + 1] = {
        names = names, key = key_of(names), value = (o._maxargs or 0) > 0,
        choices = o._choices and copy(o._choices) or nil, help = o._description,
      }
    end
  end
  for _, a in ipairs(p._arguments or {}) do
    t.arguments[#t.arguments + 1] = { name = a._name, min = a._minargs, max = a._maxargs,
      choices = a._choices and copy(a._choices) or nil }
  end
  return t
end

--- The options of a usage text: each line that starts (after at most twelve
--- spaces: argparse puts a long option's first alias on a line of its own,
--- further in) with "-"; the names are the dashed words before two spaces; a
--- word after a name that is not an option is its value ("--vmid N").
function M.from_usage(text)
  local t = { options = {}, arguments = {} }
  local seen = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local indent, rest = line:match("^( *)(%-%-?[%w].*)$")
    local tag = indent and #indent <= 12 and (rest:match("^(.-)%s%s") or rest:match("^(.-)%s*$"))
    if tag then
      local names, value = {}, false
      for word in tag:gmatch("[^%s,]+") do
        if word:match("^%-%-?[%w][%w%-]*$") then
          names[#names + 1] = word
        elseif word:match("^%-%-?[%w][%w%-]*=") then
          names[#names + 1] = word:match("^(.-)=")
          value = true
        else
          value = true
        end
      end
      if #names > 0 and names[1] ~= "-h" and not seen[names[1]] then
        seen[names[1]] = true
        t.options[#t.options + 1] = { names = names, key = key_of(names), value = value }
      end
    end
  end
  return t
end

-- the argparse that command files loaded by watch get: it records the
-- parsers made while a watch runs (also those of a file loaded by an earlier
-- watch, which keeps it)
local recording
local real_argparse = require "argparse"
local spy = setmetatable({}, {
  __index = real_argparse,
  __call = function(_, ...)
    local p = real_argparse(...)
    if recording then recording[#recording + 1] = p end
    return p
  end,
})

--- Run fn(...) with every argparse parser it makes watched: returns the
--- list of those parsers, then what pcall(fn, ...) returns.
function M.watch(fn, ...)
  local saved, before = recording, package.loaded.argparse
  recording = {}
  package.loaded.argparse = spy
  local res = table.pack(pcall(fn, ...))
  package.loaded.argparse = before
  local made = recording
  recording = saved
  return made, table.unpack(res, 1, res.n)
end

--- The parser named "vma NAME" among parsers (else the first), or nil.
function M.pick(parsers, name)
  for _, p in ipairs(parsers) do
    if p._name == "vma " .. name then return p end
  end
  return parsers[1]
end

--- The options and arguments of the command in file PATH, named NAME (see
--- from_parser), or nil and a message. Loading the file runs only its top
--- level, as vma help does.
function M.of_file(path, name)
  local made, ok, cmd, lerr = M.watch(plugins.load_file, "command", path)
  if not ok then return nil, plugins.errmsg(cmd) end
  if not cmd then return nil, lerr end
  local parser = M.pick(made, name)
  local t
  if parser then
    t = M.from_parser(parser)
  else
    local usage = cmd.usage
    if type(usage) == "function" then usage = usage() end
    t = M.from_usage(usage)
  end
  t.command, t.file = cmd, path
  return t
end

--- The options and arguments of command NAME, found as vma finds it.
function M.of(name)
  local path, err = plugins.find("command", name)
  if not path then return nil, err end
  return M.of_file(path, name)
end

--- Every name of every option of a description, sorted.
function M.names(t)
  local names = {}
  for _, o in ipairs(t.options) do
    for _, n in ipairs(o.names) do names[#names + 1] = n end
  end
  table.sort(names)
  return names
end

return M
