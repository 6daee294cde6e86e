-- vma prune - apply a retention policy to the vzdump backups of a directory.
--
-- run(args) takes the command-line words after "prune" and returns the
-- exit status: 0 success, 1 runtime error, 2 usage error.  An optional
-- second argument {stdout = file, stderr = file} redirects the output
-- (for tests).  See docs/policies.md.

local argparse = require "argparse"
local vzdump = require "vma.vzdump"
local retention = require "vma.retention"

local M = {}

M.description = "apply a retention policy to the vzdump backups of a directory"

M.usage = [[
Usage: vma prune [options] DIR

Mark each vzdump backup in DIR (vzdump-<type>-<vmid>-<date>.<vma|tar>...)
keep, remove or protected, group by group (type + vmid), and delete the
removed ones with their .log and .notes.  Other files are never touched.

Rules (Proxmox's; N = 0 disables a rule; no rule at all keeps everything):
  --keep-last N       keep the N newest backups
  --keep-hourly N     keep the newest backup of each of the last N hours
  --keep-daily N      ... of each of the last N days
  --keep-weekly N     ... of each of the last N ISO weeks (Monday-Sunday)
  --keep-monthly N    ... of each of the last N months
  --keep-yearly N     ... of each of the last N years
  --keep-all          keep everything
  --keep-within DUR   keep every backup less than DUR older than the newest
                      backup of its group (12h, 10d, 2w, 6m, 1y, 1y6m)
  --keep-oldest N     keep the N oldest backups of each group
  Rules run in the order within, oldest, last, hourly, daily, weekly,
  monthly, yearly; periods holding a backup kept by an earlier rule are
  skipped and do not count.  Protected backups are always kept.

Options:
  --policy FILE|NAME  the policy to run: a Lua file, or NAME.lua from
                      $XDG_CONFIG_HOME/vma/policies/ (~/.config/vma/policies),
                      or a bundled one: proxmox (default), keep-within,
                      keep-oldest.  A policy may add options of its own.
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

local COUNT_RULES = {
  { "--keep-last", "keep the N newest backups" },
  { "--keep-hourly", "keep the newest backup of each of the last N hours" },
  { "--keep-daily", "keep the newest backup of each of the last N days" },
  { "--keep-weekly", "keep the newest backup of each of the last N ISO weeks" },
  { "--keep-monthly", "keep the newest backup of each of the last N months" },
  { "--keep-yearly", "keep the newest backup of each of the last N years" },
  { "--keep-oldest", "keep the N oldest backups" },
}

local function convert_count(s)
  if type(s) == "string" and s:match("^%d+$") and #s <= 12 then
    return math.tointeger(tonumber(s))
  end
  return nil, "invalid count '" .. tostring(s) .. "' (expected a whole number >= 0)"
end

local function convert_number(s)
  local n = tonumber(s)
  if n then return n end
  return nil, "invalid number '" .. tostring(s) .. "'"
end

local function convert_duration(s)
  local d, err = retention.parse_duration(s)
  if not d then return nil, err end
  return s
end

local CONVERTERS = {
  integer = convert_count, count = convert_count, number = convert_number,
  duration = convert_duration, string = nil,
}

local function target_of(name)
  return (name:gsub("^%-+", ""):gsub("%-", "_"))
end

-- ---- output helpers ---------------------------------------------------------

local function human_size(n)
  if not n then return "?" end
  local units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" }
  local i, v = 1, n
  while v >= 1024 and i < #units do v = v / 1024; i = i + 1 end
  if i == 1 then return string.format("%d B", n) end
  return string.format("%.1f %s", v, units[i])
end

-- a plain table: columns padded to the widest cell, the last one not padded
local function format_table(header, rows)
  local widths = {}
  for i, h in ipairs(header) do widths[i] = #h end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do
      if #c > widths[i] then widths[i] = #c end
    end
  end
  local lines = {}
  local function line(r)
    local cells = {}
    for i, c in ipairs(r) do
      if i < #r then cells[i] = c .. string.rep(" ", widths[i] - #c) else cells[i] = c end
    end
    lines[#lines + 1] = table.concat(cells, "  ")
  end
  line(header)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(lines, "\n") .. "\n"
end

local JSON_FIELDS = { "file", "path", "group", "type", "vmid", "time", "ctime", "size",
                      "protected", "notes", "mark", "reason", "rule", "deleted" }

local function json_array(records)
  local ui = require "vma.ui"
  local items = ui.array()
  for _, rec in ipairs(records) do
    local item = {}
    for _, k in ipairs(JSON_FIELDS) do item[k] = rec[k] end
    items[#items + 1] = item
  end
  return ui.json(items, JSON_FIELDS) .. "\n"
end

-- ---- calendar ---------------------------------------------------------------

local MONTH_NAMES = { "January", "February", "March", "April", "May", "June", "July",
                      "August", "September", "October", "November", "December" }
local CELL, MONTH_WIDTH, GAP = 3, 27, 3

local COLORS = { x = "31", P = "33;1" }   -- red, bold yellow; the keep codes bold green

local function center(s, w)
  local left = (w - #s) // 2
  return string.rep(" ", left) .. s .. string.rep(" ", w - #s - left)
end

-- the 8 lines (title, header, 6 weeks) of one month; day_code[d] = code
local function month_lines(y, m, day_code, color)
  local lines = { center(MONTH_NAMES[m] .. " " .. y, MONTH_WIDTH),
                  "Mo  Tu  We  Th  Fr  Sa  Su " }
  local first = vzdump.weekday(y, m, 1)
  local ndays = vzdump.days_in_month(y, m)
  local cells = {}
  for _ = 1, first - 1 do cells[#cells + 1] = "   " end
  for d = 1, ndays do
    local code = day_code[d]
    local cell = string.format("%2d", d)
    if code then
      if color then
        local c = COLORS[code] or "32;1"
        cell = "\27[" .. c .. "m" .. cell .. code .. "\27[0m"
      else
        cell = cell .. code
      end
    else
      cell = cell .. " "
    end
    cells[#cells + 1] = cell
  end
  while #cells < 42 do cells[#cells + 1] = "   " end
  for w = 0, 5 do
    local row = {}
    for i = 1, 7 do row[i] = cells[w * 7 + i] end
    lines[#lines + 1] = table.concat(row, " ")
  end
  return lines
end

local function render_calendar(groups, color, width)
  local parts = {}
  local per_row = math.max(1, (width + GAP) // (MONTH_WIDTH + GAP))
  local extra_codes = {}
  for _, g in ipairs(groups) do
    local n = { keep = 0, remove = 0, protected = 0 }
    for _, b in ipairs(g.backups) do n[b.mark] = n[b.mark] + 1 end
    parts[#parts + 1] = string.format("%s: %d backup%s: %d keep, %d remove, %d protected\n\n",
      g.key, #g.backups, #g.backups == 1 and "" or "s", n.keep, n.remove, n.protected)
    -- the code of each day: the newest kept (or protected) backup's, else x
    local days, months = {}, {}
    for _, b in ipairs(g.backups) do          -- newest first
      local mkey = b.year * 12 + b.month - 1
      local dmap = days[mkey]
      if not dmap then
        dmap = {}
        days[mkey] = dmap
        months[#months + 1] = mkey
      end
      local code = retention.code(b)
      if b.mark ~= "remove" and b.code and not retention.CODES[b.rule or ""] then
        extra_codes[b.code] = b.rule or extra_codes[b.code] or "rule of the policy"
      end
      local cur = dmap[b.day]
      if cur == nil or (cur == "x" and code ~= "x") then dmap[b.day] = code end
    end
    table.sort(months)
    for i = 1, #months, per_row do
      local blocks = {}
      for j = i, math.min(i + per_row - 1, #months) do
        local mkey = months[j]
        blocks[#blocks + 1] = month_lines(mkey // 12, mkey % 12 + 1, days[mkey], color)
      end
      for l = 1, 8 do
        local row = {}
        for k, blk in ipairs(blocks) do row[k] = blk[l] end
        parts[#parts + 1] = (table.concat(row, string.rep(" ", GAP)):gsub("%s+$", "")) .. "\n"
      end
      if parts[#parts] ~= "\n" then parts[#parts + 1] = "\n" end
    end
  end
  local legend = { "L keep-last", "H keep-hourly", "D keep-daily", "W keep-weekly",
                   "M keep-monthly", "Y keep-yearly", "I keep-within", "O keep-oldest",
                   "A keep-all", "K kept by the policy" }
  local extras = {}
  for code, rule in pairs(extra_codes) do extras[#extras + 1] = code .. " " .. rule end
  table.sort(extras)
  for _, e in ipairs(extras) do legend[#legend + 1] = e end
  legend[#legend + 1] = "P protected"
  legend[#legend + 1] = "x removed"
  local line = "Legend:"
  for i, item in ipairs(legend) do
    local piece = " " .. item .. (i < #legend and "," or ".")
    if #line + #piece > width and line ~= "Legend:" then
      parts[#parts + 1] = line .. "\n"
      line = "       "
    end
    line = line .. piece
  end
  parts[#parts + 1] = line .. "\n"
  parts[#parts + 1] = "A day shows the rule that kept its newest kept backup (x: none kept);\n"
    .. "months without backups are not shown.  Nothing was deleted.\n"
  return table.concat(parts)
end

local function use_color()
  local nc = os.getenv("NO_COLOR")
  if nc ~= nil and nc ~= "" then return false end -- no-color.org: a non-empty value
  local term = os.getenv("TERM")
  if term == nil or term == "" or term == "dumb" then return false end
  return require("vma").isatty(1)
end

local function terminal_width()
  local c = tonumber(os.getenv("COLUMNS") or "")
  if c and c >= 20 then return c end
  return 80
end

-- ---- the command --------------------------------------------------------------

local BUILTIN_OPTIONS = {
  ["-n"] = true, ["--dry-run"] = true, ["--json"] = true, ["--calendar"] = true,
  ["--vmid"] = true, ["--type"] = true, ["--keep-all"] = true, ["--keep-within"] = true,
  ["--policy"] = true, ["--allow-remove-all"] = true, ["-h"] = true, ["--help"] = true,
}
for _, r in ipairs(COUNT_RULES) do BUILTIN_OPTIONS[r[1]] = true end

local KEEP_ALL_POLICY = {
  name = "keep-all",
  mark = function(backups, _, rules)
    for _, b in ipairs(backups) do rules.keep(b, "keep-all", "keep-all") end
  end,
}

local function build_parser(policy)
  local parser = argparse("vma prune", M.description):add_help(false)
  parser:argument("dir", "the directory holding the backups")
  parser:flag("-n --dry-run", "delete nothing")
  parser:flag("--json", "print JSON")
  parser:flag("--calendar", "draw a calendar (implies --dry-run)")
  parser:option("--vmid", "only this guest"):argname("N")
  parser:option("--type", "only this type"):argname("T"):choices(vzdump.TYPES)
  for _, r in ipairs(COUNT_RULES) do
    parser:option(r[1], r[2]):argname("N"):convert(convert_count)
  end
  parser:flag("--keep-all", "keep everything")
  parser:option("--keep-within", "keep backups within DUR of the newest")
    :argname("DUR"):convert(convert_duration)
  parser:option("--policy", "the policy"):argname("FILE|NAME")
  parser:flag("--allow-remove-all", "allow removing every backup of a group")
  local defaults = {}
  for i, spec in ipairs(policy.options or {}) do
    if type(spec) ~= "table" then
      return nil, string.format("policy '%s': option #%d is not a table", policy.name, i)
    end
    local name = spec[1] or spec.name
    if type(name) ~= "string" or not name:match("^%-%-[%w][%w%-]*$") then
      return nil, string.format("policy '%s': option #%d needs a name like --keep-foo",
        policy.name, i)
    end
    if BUILTIN_OPTIONS[name] then
      return nil, string.format("policy '%s': option %s is already an option of vma prune",
        policy.name, name)
    end
    local target = target_of(name)
    local kind = spec.type or "string"
    local descr = spec.description or spec[2] or ""
    if kind == "flag" then
      parser:flag(name, descr):target(target)
    else
      if not CONVERTERS[kind] and kind ~= "string" then
        return nil, string.format("policy '%s': option %s has unknown type '%s'",
          policy.name, name, tostring(kind))
      end
      local opt = parser:option(name, descr):argname(spec.argname or "VALUE"):target(target)
      if CONVERTERS[kind] then opt:convert(CONVERTERS[kind]) end
    end
    if spec.default ~= nil then defaults[target] = spec.default end
  end
  return parser, defaults
end

local function find_policy_spec(args)
  local spec, missing
  for i = 1, #args do
    local a = args[i]
    if a == "--" then break end
    if a == "--policy" then
      spec = args[i + 1]
      if spec == nil then missing = true end
    elseif a:sub(1, 9) == "--policy=" then
      spec = a:sub(10)
    end
  end
  return spec, missing
end

-- the help of a policy's own options ("" when it adds none)
local function policy_help(policy)
  local lines = {}
  for _, spec in ipairs(type(policy.options) == "table" and policy.options or {}) do
    if type(spec) == "table" then
      local name = spec[1] or spec.name
      local words = tostring(name)
      if spec.type ~= "flag" then words = words .. " " .. (spec.argname or "VALUE") end
      local descr = spec.description or spec[2] or ""
      if #words > 18 then
        lines[#lines + 1] = "  " .. words
        lines[#lines + 1] = string.rep(" ", 22) .. descr
      else
        lines[#lines + 1] = string.format("  %-19s %s", words, descr)
      end
    end
  end
  if #lines == 0 then return "" end
  local what = type(policy.description) == "string" and (": " .. policy.description) or ""
  return string.format("\nOptions of policy %s%s:\n%s\n", tostring(policy.name), what,
    table.concat(lines, "\n"))
end

local function record_of(g, b, dry_run)
  local rec = {
    file = b.file, path = b.path, group = g.key, type = b.type,
    vmid = math.tointeger(tonumber(b.vmid)),
    time = vzdump.time_string(b), ctime = b.ctime, size = b.size,
    protected = b.protected and true or false, notes = b.notes,
    mark = b.mark, reason = b.reason, rule = b.rule,
  }
  if not dry_run then rec.deleted = b.deleted == true end
  return rec
end

-- delete the removed backups of a group; returns deleted count, bytes, errors
local function delete_removed(g, errors)
  local bases_left = {}
  for _, b in ipairs(g.backups) do
    if b.mark ~= "remove" then bases_left[b.base] = true end
  end
  local count, bytes = 0, 0
  for _, b in ipairs(g.backups) do
    if b.mark == "remove" and not b.protected then
      local ok, err = os.remove(b.path)
      if ok then
        b.deleted = true
        count = count + 1
        bytes = bytes + (b.size or 0)
        local side = {}
        if b.log and not bases_left[b.base] then side[#side + 1] = b.log end
        if b.notes_path then
          local own = vzdump.join(b.dir, b.file .. ".notes")
          if b.notes_path == own or not bases_left[b.base] then
            side[#side + 1] = b.notes_path
          end
        end
        for _, p in ipairs(side) do
          local sok, serr = os.remove(p)
          if not sok then errors[#errors + 1] = "cannot remove " .. tostring(serr) end
        end
      else
        b.deleted = false
        errors[#errors + 1] = "cannot remove " .. tostring(err)
      end
    end
  end
  return count, bytes
end

function M.run(args, streams)
  streams = streams or {}
  local stdout = streams.stdout or io.stdout
  local stderr = streams.stderr or io.stderr
  local function out(s) stdout:write(s) end
  local function fail(status, msg)
    stderr:write("vma prune: " .. msg .. "\n")
    return status
  end
  args = args or {}
  for _, a in ipairs(args) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      -- with --policy, the options that policy adds too
      local spec = find_policy_spec(args)
      local extra = ""
      if spec then
        local policy, perr, pkind = retention.load_policy(spec)
        if not policy then return fail(pkind == "usage" and 2 or 1, perr) end
        extra = policy_help(policy)
      end
      out(M.usage .. extra)
      return 0
    end
  end

  -- a negative count would read as an unknown option: say what is wrong
  for i = 1, #args - 1 do
    if args[i] == "--" then break end
    local v = args[i + 1]
    if v:match("^%-%d") then
      for _, r in ipairs(COUNT_RULES) do
        if args[i] == r[1] then
          return fail(2, string.format("invalid count '%s' for %s (expected a whole number >= 0)",
            v, r[1]))
        end
      end
    end
  end

  -- the policy first: it may add options
  local spec, missing = find_policy_spec(args)
  if missing then return fail(2, "option '--policy' requires an argument") end
  local policy, perr, pkind = retention.load_policy(spec or retention.DEFAULT_POLICY)
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

  if opts.vmid and not (opts.vmid:match("^%d+$")) then
    return fail(2, "invalid vmid '" .. opts.vmid .. "'")
  end
  if opts.vmid then opts.vmid = opts.vmid:gsub("^0+(%d)", "%1") end
  if opts.calendar and opts.json then
    return fail(2, "--calendar and --json cannot be used together")
  end
  if opts.calendar then opts.dry_run = true end

  local run_policy = policy
  if opts.keep_all then
    run_policy = KEEP_ALL_POLICY
  elseif type(policy.check) == "function" then
    local cok, cres, cmsg = pcall(policy.check, opts)
    if not cok then return fail(1, "policy '" .. policy.name .. "': " .. tostring(cres)) end
    if cres == nil or cres == false then
      return fail(2, cmsg or ("policy '" .. policy.name .. "' rejects these options"))
    end
  end

  local groups, serr = vzdump.scan(opts.dir, { type = opts.type, vmid = opts.vmid })
  if not groups then return fail(1, serr) end

  local totals = { keep = 0, remove = 0, protected = 0, backups = 0 }
  for _, g in ipairs(groups) do
    local aok, res = pcall(retention.apply, g.backups, run_policy, opts)
    if not aok then
      return fail(1, string.format("policy '%s' failed on %s: %s", policy.name, g.key,
        tostring(res)))
    end
    g.backups = res
    for _, b in ipairs(g.backups) do
      totals[b.mark] = totals[b.mark] + 1
      totals.backups = totals.backups + 1
    end
  end

  if opts.calendar then
    if #groups == 0 then
      out("no vzdump backups in " .. opts.dir .. "\n")
      return 0
    end
    out(render_calendar(groups, use_color(), terminal_width()))
    return 0
  end

  local status, deleted, freed, errors = 0, 0, 0, {}
  if not opts.dry_run then
    local emptied = {}
    for _, g in ipairs(groups) do
      local left = 0
      for _, b in ipairs(g.backups) do
        if b.mark ~= "remove" then left = left + 1 end
      end
      if left == 0 and #g.backups > 0 then emptied[#emptied + 1] = g end
    end
    if #emptied > 0 and not opts.allow_remove_all then
      for _, g in ipairs(emptied) do
        fail(1, string.format("refusing to remove all %d backups of %s (use --allow-remove-all)",
          #g.backups, g.key))
      end
      return fail(1, "nothing deleted")
    end
    for _, g in ipairs(groups) do
      local n, bytes = delete_removed(g, errors)
      deleted, freed = deleted + n, freed + bytes
    end
    for _, e in ipairs(errors) do fail(1, e) end
    if #errors > 0 then status = 1 end
  end

  if opts.json then
    local records = {}
    for _, g in ipairs(groups) do
      for _, b in ipairs(g.backups) do records[#records + 1] = record_of(g, b, opts.dry_run) end
    end
    out(json_array(records))
    return status
  end

  if totals.backups == 0 then
    out("no vzdump backups in " .. opts.dir .. "\n")
    return status
  end
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
  out(format_table({ "BACKUP", "GROUP", "TIME", "MARK", "REASON" }, rows))
  local function plural(n, word) return string.format("%d %s%s", n, word, n == 1 and "" or "s") end
  local summary = string.format("%s in %s: %d keep, %d remove, %d protected",
    plural(totals.backups, "backup"), plural(#groups, "group"),
    totals.keep, totals.remove, totals.protected)
  if opts.dry_run then
    summary = "dry run: " .. summary .. "; nothing deleted"
  else
    summary = summary .. string.format("; deleted %s (%s)", plural(deleted, "archive"),
      human_size(freed))
    if #errors > 0 then summary = summary .. "; " .. plural(#errors, "error") end
  end
  out(summary .. "\n")
  return status
end

return M
