-- vma.complete: what the shell completion offers (`vma --complete CWORD WORDS...`,
-- called by completions/vma.bash).  Everything comes from the folders and the
-- parsers, nothing from a list here: the command names from the command
-- folders, each command's options from its argparse parser (vma.options), the
-- values of an option from its choices, and by what it names:
--
--   --disk, --drives, a DISK argument   the disks of the archive on the line
--   --target                            the restore targets (dir:, lvm:, ... and
--                                       the user's), then folders after dir:
--   --policy                            the retention policies
--   a command's own `complete` table    { ["--format"] = {...} } or a kind:
--                                       "disks", "configs", "targets", "policies",
--                                       "files", "dirs"
--
-- The answer is a list of words; "@files" and "@dirs" ask the shell to add
-- file or folder names.
local plugins = require "vma.plugins"
local options = require "vma.options"

local M = {}

--- The first line of the answer, so that the shell knows it asked this vma
-- (Proxmox's vma, under the same name, prints something else).
M.PROTOCOL = "vma-complete 1"

local function starts(s, prefix) return s:sub(1, #prefix) == prefix end

local function filter(list, prefix, add)
  local t = {}
  for _, w in ipairs(list) do
    if w:sub(1, 1) == "@" or starts(w, prefix) then t[#t + 1] = (add or "") .. w end
  end
  return t
end

local function expand(path)
  local home = os.getenv("HOME")
  if home and (path == "~" or starts(path, "~/")) then return home .. path:sub(2) end
  return path
end

-- the devices of an archive: header only (a plain .vma or a compressed one:
-- its first bytes); nil when it cannot be opened
local function devices_of(archive)
  if not archive or archive == "-" then return nil end
  local ok, vma = pcall(require, "vma")
  if not ok then return nil end
  local r = vma.open(expand(archive))
  if not r then return nil end
  local devs = r:devices()
  r:close()
  return devs
end

-- the name a user types for a device: scsi0 for drive-scsi0
local function short(name) return (name:gsub("^drive%-", "")) end

local function disks(archive, with_vmstate)
  local t = {}
  for _, d in ipairs(devices_of(archive) or {}) do
    if with_vmstate or not d.vmstate then t[#t + 1] = short(d.name) end
  end
  return t
end

local function configs(archive)
  local ok, vma = pcall(require, "vma")
  if not ok or not archive or archive == "-" then return {} end
  local r = vma.open(expand(archive))
  if not r then return {} end
  local t = {}
  for _, c in ipairs(r:configs()) do t[#t + 1] = c.name end
  r:close()
  return t
end

-- folders under the one a partial path names, each ending in "/"
local function folders(partial)
  local ok, lfs = pcall(require, "lfs")
  if not ok then return {} end
  local dir, base = partial:match("^(.*/)([^/]*)$")
  if not dir then dir, base = "", partial end
  local real = expand(dir ~= "" and dir or ".")
  local t = {}
  local iok, iter, state = pcall(lfs.dir, real)
  if not iok then return t end
  for f in iter, state do
    if f ~= "." and f ~= ".." and starts(f, base) and (base ~= "" or f:sub(1, 1) ~= ".")
        and lfs.attributes(real .. "/" .. f, "mode") == "directory" then
      t[#t + 1] = dir .. f .. "/"
    end
  end
  table.sort(t)
  return t
end

local function targets(cur)
  local kind, rest = cur:match("^([%w_%-%.]+):(.*)$")
  if kind == "dir" then
    return filter(folders(rest), rest, "dir:")
  end
  local t = {}
  for _, n in ipairs(plugins.names("target")) do t[#t + 1] = n .. ":" end
  return filter(t, cur)
end

-- the kind of value an option or argument takes, by its key or name
local function kind_of(spec, cmd)
  local own = type(cmd) == "table" and type(cmd.complete) == "table" and cmd.complete or {}
  for _, n in ipairs(spec.names or {}) do
    if own[n] ~= nil then return own[n] end
  end
  if spec.name and own[spec.name] ~= nil then return own[spec.name] end
  if spec.choices then return spec.choices end
  local key = spec.key or spec.name
  if key == "disk" or key == "drives" then return "disks" end
  if key == "target" then return "targets" end
  if key == "policy" then return "policies" end
  if key == "dir" then return "dirs" end
  return "files"
end

-- the values of a kind for the word cur (ctx: archive = the archive on the line)
local function values(kind, cur, ctx)
  if type(kind) == "table" then return filter(kind, cur) end
  if kind == "disks" then
    -- a comma-separated list (extract -d): complete its last item
    local given, last = cur:match("^(.*,)([^,]*)$")
    local list = disks(ctx.archive, ctx.vmstate)
    if not given then return filter(list, cur) end
    local rest = {}
    for _, d in ipairs(list) do
      if not (("," .. given):find("," .. d .. ",", 1, true)) then rest[#rest + 1] = d end
    end
    return filter(rest, last, given)
  elseif kind == "configs" then
    return filter(configs(ctx.archive), cur)
  elseif kind == "targets" then
    return targets(cur)
  elseif kind == "policies" then
    return filter(plugins.names("policy"), cur)
  elseif kind == "dirs" then
    return { "@dirs" }
  end
  return { "@files" }
end

local function find_option(desc, name)
  for _, o in ipairs(desc.options) do
    for _, n in ipairs(o.names) do
      if n == name then return o end
    end
  end
end

-- the argument spec of the n-th positional word
local function argument_at(desc, n)
  local i = 0
  for _, a in ipairs(desc.arguments) do
    local max = a.max == math.huge and math.huge or (a.max or 1)
    if n <= i + max then return a end
    i = i + max
  end
end

--- The words to offer for the word at index cword (0: the program) of
--- words (as the shell split them, the program first).
function M.candidates(words, cword)
  local args = {}
  for i = 2, #words do args[i - 1] = words[i] end
  local cur = args[cword] or ""
  if cword <= 1 then
    if starts(cur, "-") then return filter({ "--help", "--version" }, cur) end
    return filter(plugins.names("command"), cur)
  end
  local name = args[1]
  if (name == "help" or name == "-h" or name == "--help") and cword == 2 then
    return filter(plugins.names("command"), cur)
  end
  local desc = options.of(name)
  if not desc then return { "@files" } end

  -- the other words: options (and their values) and positionals; before the
  -- current word, the count of positionals and whether it is an option's value
  local positionals, before, value_of, dashdash, cur_dashdash = {}, 0, nil, false, false
  local j = 2
  while j <= #args do
    local w = args[j] or ""
    if j == cword then
      cur_dashdash = dashdash
      if dashdash or not w:match("^%-.") then before = #positionals end
      positionals[#positionals + 1] = false -- a place, not a word
    elseif not dashdash and w == "--" then
      dashdash = true
    elseif not dashdash and w:match("^%-.") then
      local o = find_option(desc, w:match("^(%-%-[^=]+)=") or w)
      if o and o.value and not w:find("=", 1, true) then
        if j + 1 == cword then value_of = o end
        j = j + 1
      end
    else
      positionals[#positionals + 1] = w
    end
    j = j + 1
  end
  dashdash = cur_dashdash

  -- the archive on the line: the argument called archive (or input)
  local ctx = {}
  for i, a in ipairs(desc.arguments) do
    if a.name == "archive" or a.name == "input" then ctx.archive = positionals[i] or nil break end
  end

  if value_of then return values(kind_of(value_of, desc.command), cur, ctx) end
  if not dashdash then
    local oname, partial = cur:match("^(%-%-[^=]+)=(.*)$")
    if oname then
      local o = find_option(desc, oname)
      if not o or not o.value then return {} end
      return values(kind_of(o, desc.command), partial, ctx)
    end
    if starts(cur, "-") then return filter(options.names(desc), cur) end
  end
  local a = argument_at(desc, before + 1)
  if not a then return {} end
  -- cat ARCHIVE DISK: the RAM state is one of the names it takes
  ctx.vmstate = a.name == "disk"
  return values(kind_of(a, desc.command), cur, ctx)
end

--- `vma --complete CWORD WORDS...`: prints the protocol line, then one word a line.
function M.main(argv)
  local cword = math.tointeger(tonumber(argv[2] or ""))
  if not cword then
    io.stderr:write("usage: vma --complete CWORD WORDS...\n")
    return 2
  end
  local words = table.move(argv, 3, #argv, 1, {})
  local ok, list = pcall(M.candidates, words, cword)
  io.write(M.PROTOCOL, "\n")
  if ok then
    for _, w in ipairs(list) do io.write(w, "\n") end
  end
  return 0
end

return M
