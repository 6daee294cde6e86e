-- vma prune - apply a retention policy to the vzdump backups of a directory.
--
-- run(args) takes the command-line words after "prune" and returns the exit
-- status: 0 success, 1 runtime error, 2 usage error.  The rules come from
-- vma.retention, the policy from vma.plugins, the calendar from
-- vma.calendar.  See docs/policies.md.

local argparse = require "argparse"
local ui = require "vma.ui"
local vzdump = require "vma.vzdump"
local retention = require "vma.retention"
local calendar = require "vma.calendar"

local M = {}

M.description = "apply a retention policy to the vzdump backups of a directory"

local function rules_help()
  local lines = {}
  for _, r in ipairs(retention.RULES) do
    lines[#lines + 1] = string.format("  --%-17s %s", r.name .. " N", r.help)
  end
  lines[#lines + 1] = "  --keep-all          keep everything"
  for _, r in ipairs(retention.EXTRA_RULES) do
    lines[#lines + 1] = string.format("  --%-17s %s", r.name .. " " .. (r.arg or "N"), r.help)
  end
  return table.concat(lines, "\n")
end

M.usage = [[
Usage: vma prune [options] DIR

Mark each vzdump backup in DIR (vzdump-<type>-<vmid>-<date>.<vma|tar>...)
keep, remove or protected, group by group (type + vmid), and delete the
removed ones with their .log and .notes.  Other files are never touched.

Rules (Proxmox's; N = 0 disables a rule; no rule at all keeps everything):
]] .. rules_help() .. [[

  Rules run in the order within, oldest, last, hourly, daily, weekly,
  monthly, yearly; periods holding a backup kept by an earlier rule are
  skipped and do not count.  Protected backups are always kept.

Options:
  --policy FILE|NAME  the policy to run: a Lua file, or NAME.lua from the
                      policy folders (docs/plugins.md): proxmox (default),
                      keep-within, keep-oldest, or your own.  A policy may add
                      options of its own (vma prune --policy NAME --help).
  --vmid N            only the backups of guest N
  --type T            only backups of type T (qemu, lxc, openvz)
  -n, --dry-run       show what would happen, delete nothing
  --json              print a JSON array instead of a table
  --calendar          draw a calendar of each group's marks (implies
                      --dry-run)
  --allow-remove-all  allow removing every backup of a group
  -h, --help          show this help

Exit status: 0 ok, 1 error (nothing or not everything deleted), 2 usage error.
]]

-- ---- options -------------------------------------------------------------------

local function convert_count(s)
  if type(s) == "string" and s:match("^%d+$") and #s <= 12 then
    return math.tointeger(tonumber(s))
  end
  return nil, "invalid count '" .. tostring(s) .. "' (expected a whole number >= 0)"
end

local function convert_duration(s)
  local d, err = retention.parse_duration(s)
  if not d then return nil, err end
  return s
end

local CONVERTERS = {
  integer = convert_count, count = convert_count, duration = convert_duration,
  number = function(s)
    return tonumber(s) or nil, "invalid number '" .. tostring(s) .. "'"
  end,
}

local BUILTIN = { "-n", "--dry-run", "--json", "--calendar", "--vmid", "--type", "--keep-all",
                  "--policy", "--allow-remove-all", "-h", "--help" }

local function builtin_options()
  local set = {}
  for _, o in ipairs(BUILTIN) do set[o] = true end
  for _, r in ipairs(retention.ALL_RULES) do set["--" .. r.name] = true end
  return set
end

-- the options a policy adds: { name, type = "count"|..|"flag", description, default }
local function add_policy_options(parser, policy)
  local defaults, builtin = {}, builtin_options()
  for i, spec in ipairs(policy.options or {}) do
    if type(spec) ~= "table" then
      return nil, string.format("policy '%s': option #%d is not a table", policy.name, i)
    end
    local name = spec[1] or spec.name
    if type(name) ~= "string" or not name:match("^%-%-[%w][%w%-]*$") then
      return nil, string.format("policy '%s': option #%d needs a name like --keep-foo",
        policy.name, i)
    end
    if builtin[name] then
      return nil, string.format("policy '%s': option %s is already an option of vma prune",
        policy.name, name)
    end
    local target = name:gsub("^%-%-", ""):gsub("%-", "_")
    local kind = spec.type or "string"
    local descr = spec.description or spec[2] or ""
    if kind == "flag" then
      parser:flag(name, descr):target(target)
    elseif kind == "string" or CONVERTERS[kind] then
      local opt = parser:option(name, descr):argname(spec.argname or "VALUE"):target(target)
      if CONVERTERS[kind] then opt:convert(CONVERTERS[kind]) end
    else
      return nil, string.format("policy '%s': option %s has unknown type '%s'",
        policy.name, name, tostring(kind))
    end
    if spec.default ~= nil then defaults[target] = spec.default end
  end
  return defaults
end

local function build_parser(policy)
  local parser = argparse("vma prune", M.description):add_help(false)
  parser:argument("dir", "the directory holding the backups")
  parser:flag("-n --dry-run", "delete nothing")
  parser:flag("--json", "print JSON")
  parser:flag("--calendar", "draw a calendar (implies --dry-run)")
  parser:option("--vmid", "only this guest"):argname("N")
  parser:option("--type", "only this type"):argname("T"):choices(vzdump.TYPES)
  for _, r in ipairs(retention.RULES) do
    parser:option("--" .. r.name, r.help):argname("N"):convert(convert_count)
  end
  parser:option("--keep-oldest", "keep the N oldest backups"):argname("N"):convert(convert_count)
  parser:flag("--keep-all", "keep everything")
  parser:option("--keep-within", "keep backups within DUR of the newest")
    :argname("DUR"):convert(convert_duration)
  parser:option("--policy", "the policy"):argname("FILE|NAME")
  parser:flag("--allow-remove-all", "allow removing every backup of a group")
  local defaults, err = add_policy_options(parser, policy)
  if not defaults then return nil, err end
  return parser, defaults
end

-- the --policy word, looked for before parsing (the policy adds options)
local function find_policy_spec(args)
  for i = 1, #args do
    local a = args[i]
    if a == "--" then break end
    if a == "--policy" then
      if args[i + 1] == nil then return nil, true end
      return args[i + 1]
    elseif a:sub(1, 9) == "--policy=" then
      return a:sub(10)
    end
  end
end

-- a negative count would read as an unknown option: say what is wrong
local function negative_count(args)
  for i = 1, #args - 1 do
    if args[i] == "--" then break end
    if args[i + 1]:match("^%-%d") and args[i]:match("^%-%-keep%-") then
      return string.format("invalid count '%s' for %s (expected a whole number >= 0)",
        args[i + 1], args[i])
    end
  end
end

local function wants_help(args)
  for _, a in ipairs(args) do
    if a == "--" then return false end
    if a == "-h" or a == "--help" then return true end
  end
  return false
end

-- the help of the policy's own options, after the command's
local function policy_help(policy)
  if not policy.options or #policy.options == 0 then return "" end
  local what = type(policy.description) == "string" and policy.description ~= ""
    and (": " .. policy.description) or ""
  local lines = { "", string.format("Options of policy %s%s:", policy.name, what) }
  for _, spec in ipairs(policy.options) do
    if type(spec) == "table" then
      local name = spec[1] or spec.name or "?"
      local arg = spec.type == "flag" and "" or (" " .. (spec.argname or "VALUE"))
      lines[#lines + 1] = string.format("  %-19s %s%s", name .. arg,
        spec.description or spec[2] or "",
        spec.default ~= nil and (" (default " .. tostring(spec.default) .. ")") or "")
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

--- parse the words: the options (and the policy), or nil and the status
local function parse(args)
  local fail = function(status, msg)
    io.stderr:write("vma prune: ", msg, "\n")
    return nil, status
  end
  local neg = negative_count(args)
  if neg then return fail(2, neg) end
  local spec, missing = find_policy_spec(args)
  if missing then return fail(2, "option '--policy' requires an argument") end
  local policy, perr, pkind = retention.load_policy(spec or retention.DEFAULT_POLICY)
  if wants_help(args) and (policy or not spec) then
    io.stdout:write(M.usage, policy and policy_help(policy) or "")
    return nil, 0
  end
  if not policy then return fail(pkind == "usage" and 2 or 1, perr) end
  local parser, defaults = build_parser(policy)
  if not parser then return fail(1, defaults) end
  local ok, opts = parser:pparse(args)
  if not ok then
    local msg = tostring(opts):gsub("\n[Dd]id you mean (.-)%?", " (did you mean %1?)")
    return fail(2, (msg:gsub("%s*\n%s*", "; ")))
  end
  for k, v in pairs(defaults) do
    if opts[k] == nil then opts[k] = v end
  end
  opts.policy = policy.name
  if opts.vmid and not opts.vmid:match("^%d+$") then
    return fail(2, "invalid vmid '" .. opts.vmid .. "'")
  end
  if opts.vmid then opts.vmid = opts.vmid:gsub("^0+(%d)", "%1") end
  if opts.calendar and opts.json then
    return fail(2, "--calendar and --json cannot be used together")
  end
  if opts.calendar then opts.dry_run = true end
  return opts, policy
end

local KEEP_ALL_POLICY = {
  name = "keep-all",
  mark = function(backups, _, rules)
    for _, b in ipairs(backups) do rules.keep(b, "keep-all", "keep-all") end
  end,
}

-- the policy to run, once its check accepts the options
local function checked_policy(policy, opts)
  if opts.keep_all then return KEEP_ALL_POLICY end
  if type(policy.check) ~= "function" then return policy end
  local ok, res, msg = pcall(policy.check, opts)
  if not ok then return nil, 1, "policy '" .. policy.name .. "': " .. tostring(res) end
  if res == nil or res == false then
    return nil, 2, msg or ("policy '" .. policy.name .. "' rejects these options")
  end
  return policy
end

-- ---- output --------------------------------------------------------------------

local JSON_FIELDS = { "file", "path", "group", "type", "vmid", "time", "ctime", "size",
                      "protected", "notes", "mark", "reason", "rule", "deleted" }

local function json_records(groups, dry_run)
  local items = ui.array()
  for _, g in ipairs(groups) do
    for _, b in ipairs(g.backups) do
      local rec = {
        file = b.file, path = b.path, group = g.key, type = b.type,
        vmid = math.tointeger(tonumber(b.vmid)),
        time = vzdump.time_string(b), ctime = b.ctime, size = b.size,
        protected = b.protected and true or false, notes = b.notes,
        mark = b.mark, reason = b.reason, rule = b.rule,
      }
      if not dry_run then rec.deleted = b.deleted == true end
      items[#items + 1] = rec
    end
  end
  return ui.json(items, JSON_FIELDS) .. "\n"
end

local function plural(n, word) return string.format("%d %s%s", n, word, n == 1 and "" or "s") end

local function text_report(groups, totals, opts, deleted, freed, nerrors)
  if totals.backups == 0 then return "no vzdump backups in " .. opts.dir .. "\n" end
  local rows = {}
  for _, g in ipairs(groups) do
    for _, b in ipairs(g.backups) do
      local mark = b.mark
      if not opts.dry_run and b.mark == "remove" then
        mark = b.deleted and "removed" or "remove (failed)"
      end
      rows[#rows + 1] = { b.file, g.key, vzdump.time_string(b), mark, b.reason or "" }
    end
  end
  local summary = string.format("%s in %s: %d keep, %d remove, %d protected",
    plural(totals.backups, "backup"), plural(#groups, "group"),
    totals.keep, totals.remove, totals.protected)
  if opts.dry_run then
    summary = "dry run: " .. summary .. "; nothing deleted"
  else
    summary = summary .. string.format("; deleted %s (%s)", plural(deleted, "archive"),
      ui.human(freed))
    if nerrors > 0 then summary = summary .. "; " .. plural(nerrors, "error") end
  end
  return ui.table({ "BACKUP", "GROUP", "TIME", "MARK", "REASON" }, rows) .. summary .. "\n"
end

local function use_color()
  local nc = os.getenv("NO_COLOR")
  if nc ~= nil and nc ~= "" then return false end -- no-color.org: a non-empty value
  local term = os.getenv("TERM")
  if term == nil or term == "" or term == "dumb" then return false end
  return require("vma").os.isatty(1)
end

-- ---- the command ----------------------------------------------------------------

function M.run(args)
  args = args or {}
  local opts, policy = parse(args)
  if not opts then return policy end
  local fail = function(status, msg)
    io.stderr:write("vma prune: ", msg, "\n")
    return status
  end
  local run_policy, cstatus, cmsg = checked_policy(policy, opts)
  if not run_policy then return fail(cstatus, cmsg) end

  local groups, serr = vzdump.scan(opts.dir, { type = opts.type, vmid = opts.vmid })
  if not groups then return fail(1, serr) end
  local ok, totals = pcall(retention.run, groups, run_policy, opts)
  if not ok then
    return fail(1, string.format("policy '%s' failed %s", policy.name, tostring(totals)))
  end

  if opts.calendar then
    if #groups == 0 then
      io.stdout:write("no vzdump backups in " .. opts.dir .. "\n")
    else
      io.stdout:write(calendar.render(groups, use_color(), require("vma").os.terminal_width(1)))
    end
    return 0
  end

  local status, deleted, freed, errors = 0, 0, 0, {}
  local emptied = opts.allow_remove_all and {} or vzdump.emptied_groups(groups)
  if not opts.dry_run then
    if #emptied > 0 then
      for _, g in ipairs(emptied) do
        fail(1, string.format("refusing to remove all %d backups of %s (use --allow-remove-all)",
          #g.backups, g.key))
      end
      return fail(1, "nothing deleted")
    end
    for _, g in ipairs(groups) do
      local n, bytes = vzdump.delete_removed(g, errors)
      deleted, freed = deleted + n, freed + bytes
    end
    for _, e in ipairs(errors) do fail(1, e) end
    if #errors > 0 then status = 1 end
  end
  if opts.json then
    io.stdout:write(json_records(groups, opts.dry_run))
  else
    io.stdout:write(text_report(groups, totals, opts, deleted, freed, #errors))
  end
  -- what the real run would fail on: the dry run fails on it too
  if opts.dry_run and #emptied > 0 then
    for _, g in ipairs(emptied) do
      fail(1, string.format("the real run would refuse to remove all %d backups of %s (use "
        .. "--allow-remove-all)", #g.backups, g.key))
    end
    status = 1
  end
  return status
end

return M
