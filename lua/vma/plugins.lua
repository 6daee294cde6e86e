-- vma.plugins: the folders are the registry.
--
-- Commands, retention policies and restore targets are Lua files, one per
-- plugin, named after it (NAME.lua).  For each kind, the folders searched,
-- first match wins:
--
--   1. the folders of $VMA_COMMANDS_PATH / $VMA_POLICIES_PATH /
--      $VMA_TARGETS_PATH (colon-separated, in order)
--   2. the user's folder: $XDG_CONFIG_HOME/vma/KIND (else ~/.config/vma/KIND)
--   3. the bundled folder: lua/vma/KIND (on package.path)
--
-- where KIND is commands, policies or targets.  A user file of the same name
-- as a bundled one replaces it.  See docs/plugins.md.

local M = {}

--- What each kind of plugin is: its folder, its variable, and the shape its
-- file must return.
M.KINDS = {
  command = {
    folder = "commands", env = "VMA_COMMANDS_PATH",
    shape = "a table with a run function",
    check = function(v) return type(v) == "table" and type(v.run) == "function" end,
  },
  policy = {
    folder = "policies", env = "VMA_POLICIES_PATH",
    shape = "a function or a table with a mark function",
    check = function(v)
      return type(v) == "function" or (type(v) == "table" and type(v.mark) == "function")
    end,
  },
  target = {
    folder = "targets", env = "VMA_TARGETS_PATH",
    shape = "a function(archive, arg, opts) or a table with a map function",
    check = function(v)
      return type(v) == "function" or (type(v) == "table" and type(v.map) == "function")
    end,
  },
}

local function kind_of(kind)
  local k = M.KINDS[kind]
  if not k then error("unknown plugin kind '" .. tostring(kind) .. "'", 3) end
  return k
end

--- The user's configuration folder ($XDG_CONFIG_HOME/vma, else
-- ~/.config/vma), or nil when neither variable tells (no guess at ".").
function M.config_dir()
  local xdg = os.getenv("XDG_CONFIG_HOME")
  if xdg and xdg:sub(1, 1) == "/" then return xdg .. "/vma" end
  local home = os.getenv("HOME")
  if home and home:sub(1, 1) == "/" then return home .. "/.config/vma" end
  return nil
end

--- The bundled folder of a kind (lua/vma/KIND), found on package.path.
function M.bundled_dir(kind)
  local k = kind_of(kind)
  local path = package.searchpath("vma.plugins", package.path)
  return path and (path:gsub("plugins%.lua$", k.folder)) or nil
end

--- The folders searched for a kind, first match first.
function M.dirs(kind)
  local k = kind_of(kind)
  local dirs = {}
  for dir in (os.getenv(k.env) or ""):gmatch("[^:]+") do dirs[#dirs + 1] = dir end
  local conf = M.config_dir()
  if conf then dirs[#dirs + 1] = conf .. "/" .. k.folder end
  local b = M.bundled_dir(kind)
  if b then dirs[#dirs + 1] = b end
  return dirs
end

--- True when NAME can name a plugin (a file name without folders).
function M.valid_name(name)
  return type(name) == "string" and name:match("^[%w][%w_%-%.]*$") ~= nil
    and not name:match("%.%.")
end

local function is_file(path)
  local ok, lfs = pcall(require, "lfs")
  if ok and lfs.attributes(path, "mode") ~= "file" then return false end
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

--- The file of plugin NAME of a kind, or nil and a message that says where
-- it was looked for.
function M.find(kind, name)
  if not M.valid_name(name) then
    return nil, string.format("bad %s name '%s'", kind, tostring(name))
  end
  local dirs = M.dirs(kind)
  for _, dir in ipairs(dirs) do
    local path = dir .. "/" .. name .. ".lua"
    if is_file(path) then return path end
  end
  local conf = M.config_dir()
  return nil, string.format("unknown %s '%s' (looked in %s)", kind, name,
    #dirs > 0 and table.concat(dirs, ", ") or (conf or "$XDG_CONFIG_HOME/vma"))
end

--- name -> file of every plugin of a kind (the one that wins for each name).
function M.list(kind)
  local found = {}
  local ok, lfs = pcall(require, "lfs")
  if not ok then return found end
  local dirs = M.dirs(kind)
  for i = #dirs, 1, -1 do
    local iter_ok, iter, state = pcall(lfs.dir, dirs[i])
    if iter_ok then
      for f in iter, state do
        local name = f:match("^(.+)%.lua$")
        if name and M.valid_name(name) then found[name] = dirs[i] .. "/" .. f end
      end
    end
  end
  return found
end

--- Sorted names of the plugins of a kind.
function M.names(kind)
  local names = {}
  for n in pairs(M.list(kind)) do names[#names + 1] = n end
  table.sort(names)
  return names
end

local function errmsg(e)
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  return "(error object is a " .. type(e) .. " value)"
end
M.errmsg = errmsg

--- Load a plugin file and check what it returns against its kind.
-- Returns the value, or nil and a one-line message.
function M.load_file(kind, path)
  local k = kind_of(kind)
  local chunk, err = loadfile(path, "t")
  if not chunk then return nil, err end
  local ok, value = pcall(chunk)
  if not ok then return nil, path .. ": " .. errmsg(value) end
  if not k.check(value) then
    return nil, string.format("%s: a %s file must return %s, not a %s", path, kind, k.shape,
      type(value))
  end
  return value
end

--- Find and load plugin NAME (or a file, when SPEC holds a "/" or ends in
-- ".lua").  Returns the value and its file, or nil, a message and a kind of
-- failure: "unknown" (not found) or "load" (found but broken).
function M.load(kind, spec)
  local path, err
  local function folder()
    local st = type(spec) == "string" and require("vma").os.stat(spec)
    return st and st.type == "directory"
  end
  if type(spec) == "string" and (spec:find("/", 1, true) or spec:match("%.lua$")) then
    if folder() then
      return nil, string.format("%s '%s' is a folder, not a Lua file (give its file: %s/NAME.lua)",
        kind, spec, (spec:gsub("/+$", ""))), "unknown"
    end
    if not is_file(spec) then return nil, kind .. " file '" .. spec .. "' not found", "unknown" end
    path = spec
  else
    path, err = M.find(kind, spec)
    if not path and folder() then
      err = string.format("%s '%s' is neither a %s name nor a Lua file: %s is a folder (give "
        .. "its file: %s/NAME.lua)", kind, spec, kind, spec, spec)
    end
    if not path then return nil, err, "unknown" end
  end
  local value, lerr = M.load_file(kind, path)
  if value == nil then return nil, lerr, "load" end
  return value, path
end

return M
