-- vma.retention - the retention engine of `vma prune`.
--
-- A policy marks every backup of one group (type + vmid) "keep" or
-- "remove" with a reason; the engine runs it over each group, forces
-- "protected" on protected backups and marks what the policy left alone
-- "remove" ("not kept by any rule").  See docs/policies.md.
--
-- Calendar periods are computed from the wall clock written in the file
-- name, arithmetically (no os.time/os.date, no time zone, no DST):
--   hour  %Y/%m/%d/%H     day   %Y/%m/%d     week  %G/%V (ISO 8601)
--   month %Y/%m           year  %Y           last  every backup its own

local vzdump = require "vma.vzdump"
local plugins = require "vma.plugins"

local M = {}

-- a rule: its name ("keep-last"), the option that holds it ("keep_last"),
-- its one-letter code for the calendar, its help; then its period (the
-- Proxmox rules) or the word of its argument (vma's own)
local function rule(name, code, help, extra)
  local r = { name = name, option = name:gsub("-", "_"), code = code, help = help }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

--- The Proxmox rules, in the order they run.
M.RULES = {
  rule("keep-last", "L", "keep the N newest backups", { period = "last" }),
  rule("keep-hourly", "H", "keep the newest backup of each of the last N hours", { period = "hour" }),
  rule("keep-daily", "D", "... of each of the last N days", { period = "day" }),
  rule("keep-weekly", "W", "... of each of the last N ISO weeks (Monday-Sunday)", { period = "week" }),
  rule("keep-monthly", "M", "... of each of the last N months", { period = "month" }),
  rule("keep-yearly", "Y", "... of each of the last N years", { period = "year" }),
}

--- vma's two rules, which run before the Proxmox ones when given.
M.EXTRA_RULES = {
  rule("keep-within", "I", "keep every backup less than DUR older than the newest backup of its "
    .. "group (12h, 10d, 2w, 6m, 1y, 1y6m)", { arg = "DUR" }),
  rule("keep-oldest", "O", "keep the N oldest backups of each group"),
}

--- Every rule, in the order of the calendar's legend.
M.ALL_RULES = {}
for _, r in ipairs(M.RULES) do M.ALL_RULES[#M.ALL_RULES + 1] = r end
for _, r in ipairs(M.EXTRA_RULES) do M.ALL_RULES[#M.ALL_RULES + 1] = r end

--- One-letter codes of the rules, for the calendar.
M.CODES = { ["keep-all"] = "A", protected = "P", remove = "x" }
for _, r in ipairs(M.ALL_RULES) do M.CODES[r.name] = r.code end
M.OTHER_CODE = "K"   -- kept by a rule of a user policy

M.DEFAULT_POLICY = "proxmox"

-- ---- calendar ---------------------------------------------------------------

--- ISO 8601 week of a date: week-year, week (1..53).  Weeks run Monday to
--- Sunday; week 1 is the one holding the year's first Thursday.
function M.iso_week(y, m, d)
  local days = vzdump.days_from_civil(y, m, d)
  local wd = (days + 3) % 7 + 1              -- 1 = Monday
  local thursday = days - wd + 4
  local ty = vzdump.civil_from_days(thursday)
  return ty, (thursday - vzdump.days_from_civil(ty, 1, 1)) // 7 + 1
end

local function fields(b)
  if b.year then return b end
  return vzdump.from_time(b.time)
end

local PERIOD_LABEL = { last = "backup", hour = "hour", day = "day", week = "week",
                       month = "month", year = "year" }
M.PERIOD_LABEL = PERIOD_LABEL

--- The calendar bucket of a backup: kind is "last", "hour", "day", "week",
--- "month", "year" or a function(b) returning a key.
function M.period(b, kind)
  if type(kind) == "function" then return kind(b) end
  if kind == "last" then return b.file or b.path or tostring(b) end
  local f = fields(b)
  if kind == "hour" then
    return string.format("%04d/%02d/%02d/%02d", f.year, f.month, f.day, f.hour)
  elseif kind == "day" then
    return string.format("%04d/%02d/%02d", f.year, f.month, f.day)
  elseif kind == "week" then
    return string.format("%04d/%02d", M.iso_week(f.year, f.month, f.day))
  elseif kind == "month" then
    return string.format("%04d/%02d", f.year, f.month)
  elseif kind == "year" then
    return string.format("%04d", f.year)
  end
  error("unknown period kind '" .. tostring(kind) .. "'", 2)
end

-- ---- marking ----------------------------------------------------------------

local function premark_protected(backups)
  for _, b in ipairs(backups) do
    if b.protected then
      b.mark, b.reason, b.rule = "protected", "protected", "protected"
    end
  end
end

--- A copy of the list, newest first.
function M.newest_first(backups)
  local list = {}
  for i, b in ipairs(backups) do list[i] = b end
  return vzdump.sort_newest_first(list)
end

local function get(opts, option)
  local v = opts[option]
  if v == nil then v = opts[(option:gsub("_", "-"))] end
  return v
end

--- Mark a keep rule (n > 0 periods), exactly as Proxmox's prune_mark:
--- periods holding a backup already marked "keep" are covered: their
--- backups are skipped (left unmarked) and they do not count; walking
--- newest to oldest, the first unmarked backup of a new period is kept
--- unless n periods are kept already, which ends the rule; the later ones
--- of a period this rule kept are marked "remove".  Marked backups are
--- skipped.  backups must be newest first.  name is the rule's name for
--- the reasons ("keep-daily"), label names a period ("day").  Returns the
--- number of periods kept.
function M.mark_rule(backups, n, kind, name, label)
  if not n or n <= 0 then return 0 end
  name = name or ("keep-" .. tostring(kind))
  label = label or PERIOD_LABEL[kind] or "period"
  premark_protected(backups)
  local covered = {}
  for _, b in ipairs(backups) do
    if b.mark == "keep" then covered[M.period(b, kind)] = true end
  end
  local kept_by, count = {}, 0
  for _, b in ipairs(backups) do
    if b.mark == nil then
      local id = M.period(b, kind)
      if not covered[id] then
        local first = kept_by[id]
        if not first then
          if count >= n then break end
          count = count + 1
          kept_by[id] = b
          b.mark, b.rule, b.reason = "keep", name, name .. " #" .. count
        else
          b.mark, b.rule = "remove", name
          b.reason = string.format("%s: %s %s already kept by %s",
            name, label, id, first.file or "?")
        end
      end
    end
  end
  return count
end

--- Parse a duration such as "10d", "12h", "2w", "6m", "1y" or "1y6m".
--- Units: h hours, d days, w weeks, m months, y years.  Returns a table
--- {years, months, weeks, days, hours, text} or nil and a message.
function M.parse_duration(s)
  if type(s) == "number" then s = tostring(math.tointeger(s) or s) .. "d" end
  if type(s) ~= "string" or s == "" then return nil, "empty duration" end
  local d = { years = 0, months = 0, weeks = 0, days = 0, hours = 0, text = s }
  local unit_field = { y = "years", m = "months", w = "weeks", d = "days", h = "hours" }
  local rest = s:gsub("(%d+)([ymwdh])", function(num, unit)
    local f = unit_field[unit]
    d[f] = d[f] + tonumber(num)
    return ""
  end)
  if rest ~= "" then
    return nil, "invalid duration '" .. s .. "' (use e.g. 12h, 10d, 2w, 6m, 1y, 1y6m)"
  end
  if d.years + d.months + d.weeks + d.days + d.hours == 0 then
    return nil, "duration '" .. s .. "' is zero"
  end
  return d
end

--- The time DURATION before time t (both as vzdump times): years and
--- months by the calendar (the day clamped to the month's end: 03-31 minus
--- 1m is 02-28/29), then weeks, days and hours.
function M.subtract(t, dur)
  local f = vzdump.from_time(t)
  local months = f.year * 12 + (f.month - 1) - dur.years * 12 - dur.months
  local y, m = months // 12, months % 12 + 1
  local d = math.min(f.day, vzdump.days_in_month(y, m))
  return vzdump.to_time(y, m, d, f.hour, f.min, f.sec)
         - (dur.weeks * 7 + dur.days) * 86400 - dur.hours * 3600
end

--- Keep every unmarked backup strictly newer than DURATION before the
--- newest backup of the list (protected ones included when finding the
--- newest).  Returns the number kept.
function M.keep_within(backups, duration, name)
  local dur, err = M.parse_duration(duration)
  if not dur then error(err, 2) end
  name = name or "keep-within"
  premark_protected(backups)
  local newest
  for _, b in ipairs(backups) do
    if not newest or b.time > newest then newest = b.time end
  end
  if not newest then return 0 end
  local cutoff = M.subtract(newest, dur)
  local count = 0
  for _, b in ipairs(backups) do
    if b.mark == nil and b.time > cutoff then
      count = count + 1
      b.mark, b.rule, b.reason = "keep", name, name .. " " .. dur.text
    end
  end
  return count
end

--- Keep the n oldest unmarked backups (protected ones never count).
--- Returns the number kept.
function M.keep_oldest(backups, n, name)
  if not n or n <= 0 then return 0 end
  name = name or "keep-oldest"
  premark_protected(backups)
  local list = M.newest_first(backups)
  local count = 0
  for i = #list, 1, -1 do
    local b = list[i]
    if count >= n then break end
    if b.mark == nil then
      count = count + 1
      b.mark, b.rule, b.reason = "keep", name, name .. " #" .. count
    end
  end
  return count
end

--- True if opts hold any keep rule (keep-last .. keep-yearly > 0,
--- keep-within, keep-oldest > 0).  keep-all is not a rule.
function M.has_rules(opts)
  opts = opts or {}
  for _, r in ipairs(M.RULES) do
    local n = get(opts, r.option)
    if n and n > 0 then return true end
  end
  local w = get(opts, "keep_within")
  if w ~= nil and w ~= "" and w ~= false then return true end
  local o = get(opts, "keep_oldest")
  return (o and o > 0) and true or false
end

--- The Proxmox algorithm (PVE::Storage::prune_mark_backup_group): with
--- keep-all, or no rule at all, everything is kept (marks other than
--- "remove" are left as they are); otherwise keep-within and keep-oldest
--- (vma's additions, when given) then keep-last, -hourly, -daily, -weekly,
--- -monthly, -yearly run in that order, each covering the periods of what
--- the earlier ones kept.  Backups no rule kept are left unmarked (the
--- engine, or M.finish, marks them "remove").  keep: {keep_last = N, ...}
--- (keys with dashes work too).  backups need not be sorted.
function M.proxmox(backups, keep)
  keep = keep or {}
  premark_protected(backups)
  local keep_all = get(keep, "keep_all")
  if keep_all or not M.has_rules(keep) then
    for _, b in ipairs(backups) do
      if b.mark == nil or b.mark == "remove" then
        b.mark, b.rule = "keep", "keep-all"
        b.reason = keep_all and "keep-all" or "keep-all (no keep rule given)"
      end
    end
    return backups
  end
  local list = M.newest_first(backups)
  local within = get(keep, "keep_within")
  if within ~= nil and within ~= "" and within ~= false then
    M.keep_within(list, within)
  end
  M.keep_oldest(list, get(keep, "keep_oldest"))
  for _, r in ipairs(M.RULES) do
    M.mark_rule(list, get(keep, r.option), r.period, r.name)
  end
  return backups
end

--- Mark every unmarked backup "remove" ("not kept by any rule").
function M.finish(backups)
  for _, b in ipairs(backups) do
    if b.mark == nil then
      b.mark, b.rule, b.reason = "remove", nil, "not kept by any rule"
    end
  end
  return backups
end

--- Helpers handed to policies as their third argument.
M.rules = {
  RULES = M.RULES,
  proxmox = M.proxmox,
  mark_rule = M.mark_rule,
  period = M.period,
  iso_week = M.iso_week,
  keep_within = M.keep_within,
  keep_oldest = M.keep_oldest,
  parse_duration = M.parse_duration,
  subtract = M.subtract,
  has_rules = M.has_rules,
  newest_first = M.newest_first,
  finish = M.finish,
  days_from_civil = vzdump.days_from_civil,
  civil_from_days = vzdump.civil_from_days,
  weekday = vzdump.weekday,
  --- Mark b kept (unless it is protected); rule names the rule.
  keep = function(b, reason, rule)
    if b.mark == "protected" or b.protected then return false end
    b.mark, b.reason, b.rule = "keep", reason, rule
    return true
  end,
  --- Mark b for removal (unless it is protected).
  remove = function(b, reason, rule)
    if b.mark == "protected" or b.protected then return false end
    b.mark, b.reason, b.rule = "remove", reason, rule
    return true
  end,
}

-- ---- codes ------------------------------------------------------------------

--- The one-letter calendar code of a marked backup.
function M.code(b)
  if b.mark == "protected" then return "P" end
  if b.mark == "remove" then return "x" end
  if b.code then return b.code end
  return (b.rule and M.CODES[b.rule]) or M.OTHER_CODE
end

-- ---- policies ---------------------------------------------------------------

--- Turn what a policy chunk returned into a policy table.
function M.normalize_policy(value, name, source)
  local p
  if type(value) == "function" then
    p = { mark = value }
  elseif type(value) == "table" and type(value.mark) == "function" then
    p = value
  else
    return nil, string.format(
      "policy '%s' (%s) must return a function or a table with a mark function",
      name, source or "?")
  end
  if p.options ~= nil and type(p.options) ~= "table" then
    return nil, string.format("policy '%s': options must be a table", name)
  end
  p.name = p.name or name
  p.source = p.source or source
  p.description = p.description or ""
  p.options = p.options or {}
  return p
end

--- Load a policy: a file (SPEC holds a "/" or ends in ".lua") or a NAME
--- found through vma.plugins (docs/plugins.md).  Returns the policy table,
--- or nil, a message and a kind ("usage" when it is not found, "load" when
--- it fails to load).
function M.load_policy(spec)
  spec = spec or M.DEFAULT_POLICY
  if type(spec) ~= "string" or spec == "" then
    return nil, "empty policy name", "usage"
  end
  local value, path, why = plugins.load("policy", spec)
  if value == nil then
    if why == "unknown" and not spec:find("/", 1, true) and not spec:match("%.lua$")
       and not path:find(" is a folder", 1, true) then
      path = string.format("unknown policy '%s' (there are: %s; see docs/policies.md)", spec,
        table.concat(plugins.names("policy"), ", "))
    end
    return nil, path, why == "unknown" and "usage" or "load"
  end
  return M.normalize_policy(value, spec:match("([^/]+)%.lua$") or spec, path)
end

-- ---- the engine -------------------------------------------------------------

--- Run a policy over one group's backups (any order).  Clears old marks,
--- marks protected backups, calls policy.mark(list, opts, M.rules) with a
--- newest-first copy, then forces "protected" on protected backups and
--- marks the unmarked ones "remove".  Raises an error if the policy fails
--- or sets an invalid mark.  Returns the backups newest first.
function M.apply(backups, policy, opts)
  opts = opts or {}
  if type(policy) == "function" then policy = { mark = policy, name = "policy" } end
  local pname = policy.name or "policy"
  local list = M.newest_first(backups)
  for _, b in ipairs(list) do
    b.mark, b.reason, b.rule, b.code = nil, nil, nil, nil
  end
  premark_protected(list)
  local view = {}
  for i, b in ipairs(list) do view[i] = b end
  policy.mark(view, opts, M.rules)
  for _, b in ipairs(list) do
    if b.protected then
      b.mark, b.reason, b.rule = "protected", "protected", "protected"
    elseif b.mark == nil then
      b.mark, b.rule, b.reason = "remove", nil, "not kept by any rule"
    elseif b.mark == "keep" or b.mark == "remove" then
      if b.reason == nil or b.reason == "" then
        b.reason = (b.mark == "keep" and "kept by policy " or "removed by policy ") .. pname
      end
      b.reason = tostring(b.reason)
      if b.rule == nil and b.mark == "keep" then
        b.rule = b.reason:match("^(keep%-[%w_%-]+)")
      end
    else
      error(string.format("policy '%s' set an invalid mark '%s' on %s",
        pname, tostring(b.mark), tostring(b.file)), 0)
    end
  end
  return list
end

--- Run a policy over every group (as vzdump.group/scan make them).
--- Returns totals {keep, remove, protected, backups, groups}.
function M.run(groups, policy, opts)
  local totals = { keep = 0, remove = 0, protected = 0, backups = 0, groups = #groups }
  for _, g in ipairs(groups) do
    local ok, res = pcall(M.apply, g.backups, policy, opts)
    if not ok then error(string.format("on %s: %s", g.key, tostring(res)), 0) end
    g.backups = res
    for _, b in ipairs(g.backups) do
      totals[b.mark] = totals[b.mark] + 1
      totals.backups = totals.backups + 1
    end
  end
  return totals
end

return M
