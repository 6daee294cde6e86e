-- vma.vzdump - the naming of Proxmox vzdump backups.
--
-- A backup archive is named
--
--   vzdump-<type>-<vmid>-YYYY_MM_DD-HH_MM_SS.<ext>
--
-- where <type> is qemu, lxc or openvz, <vmid> is 3 to 9 digits (no leading
-- zero, as Proxmox allocates them: 100 .. 999999999) and <ext> is one of
-- vma, tar (each optionally followed by .zst, .lzo, .gz or .bz2) or tgz.
-- The part before the extension is the "base".  Side files:
--
--   <base>.log              the vzdump task log
--   <archive>.notes         the notes (what Proxmox writes); <base>.notes is
--                           accepted too
--   <archive>.protected     marks the archive as protected
--
-- The date in the name is the wall clock of the host that made the backup.
-- Times are computed arithmetically from those fields (never through
-- os.time), so nothing here depends on the time zone or on DST: `time` and
-- `ctime` are the seconds since 1970-01-01 00:00:00 of the wall clock read
-- as if it were UTC.

local M = {}

M.TYPES = { "qemu", "lxc", "openvz" }
M.COMPRESSIONS = { "zst", "lzo", "gz", "bz2" }

local is_type = {}
for _, t in ipairs(M.TYPES) do is_type[t] = true end
local is_compression = {}
for _, c in ipairs(M.COMPRESSIONS) do is_compression[c] = true end

-- ---- calendar arithmetic (proleptic Gregorian, no time zones) -----------

--- Days since 1970-01-01 of the date y-m-d (may be negative).
function M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400                               -- [0, 399]
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1     -- [0, 365]
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy     -- [0, 146096]
  return era * 146097 + doe - 719468
end

--- The date (y, m, d) of a count of days since 1970-01-01.
function M.civil_from_days(z)
  z = z + 719468
  local era = z // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

function M.is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

function M.days_in_month(y, m)
  if m == 2 and M.is_leap(y) then return 29 end
  return MDAYS[m]
end

--- ISO weekday of a date: 1 = Monday .. 7 = Sunday.
function M.weekday(y, m, d)
  return (M.days_from_civil(y, m, d) + 3) % 7 + 1
end

--- Seconds of a wall clock time read as UTC.
function M.to_time(y, mo, d, h, mi, s)
  return M.days_from_civil(y, mo, d) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0)
end

--- The wall clock fields of a time made by to_time.
function M.from_time(t)
  local days = t // 86400
  local rest = t - days * 86400
  local y, mo, d = M.civil_from_days(days)
  return { year = y, month = mo, day = d,
           hour = rest // 3600, min = rest % 3600 // 60, sec = rest % 60 }
end

--- "YYYY-MM-DD HH:MM:SS" of a backup (or of anything with the time fields).
function M.time_string(b)
  return string.format("%04d-%02d-%02d %02d:%02d:%02d",
    b.year, b.month, b.day, b.hour, b.min, b.sec)
end

-- ---- names ------------------------------------------------------------------

local function valid_ext(ext)
  if ext == "tgz" then return "tar", "gz" end
  local fmt, comp = ext:match("^(%a+)%.(%w+)$")
  if not fmt then fmt = ext end
  if fmt ~= "vma" and fmt ~= "tar" then return nil end
  if comp and not is_compression[comp] then return nil end
  return fmt, comp
end

local function valid_vmid(v)
  return #v >= 3 and #v <= 9 and v:sub(1, 1) ~= "0"
end

--- Parse a file name (or a path: its last part).  Returns a table {file, base, ext, format,
--- compression, type, vmid (string), year, month, day, hour, min, sec,
--- time, ctime} or nil if the name is not a vzdump archive name (side files
--- .log/.notes/.protected are not archives and give nil too).
function M.parse(name)
  if type(name) ~= "string" then return nil end
  name = name:match("([^/]*)$") -- a path: its file name
  local base, ext = name:match("^(vzdump%-%a+%-%d+%-%d%d%d%d_%d%d_%d%d%-%d%d_%d%d_%d%d)%.([%w%.]+)$")
  if not base then return nil end
  local typ, vmid, Y, Mo, D, h, mi, s =
    base:match("^vzdump%-(%a+)%-(%d+)%-(%d+)_(%d+)_(%d+)%-(%d+)_(%d+)_(%d+)$")
  if not is_type[typ] or not valid_vmid(vmid) then return nil end
  local fmt, comp = valid_ext(ext)
  if not fmt then return nil end
  local y, mo, d = tonumber(Y), tonumber(Mo), tonumber(D)
  local hh, mm, ss = tonumber(h), tonumber(mi), tonumber(s)
  if mo < 1 or mo > 12 or d < 1 or d > M.days_in_month(y, mo)
     or hh > 23 or mm > 59 or ss > 59 then
    return nil
  end
  local t = M.to_time(y, mo, d, hh, mm, ss)
  return {
    file = name, base = base, ext = ext, format = fmt, compression = comp,
    type = typ, vmid = vmid,
    year = y, month = mo, day = d, hour = hh, min = mm, sec = ss,
    time = t, ctime = t,
  }
end

--- True if name is a vzdump archive name.
function M.is_archive(name)
  return M.parse(name) ~= nil
end

--- Build a file name.  t = {type, vmid, ext = "vma.zst" (default "vma"),
--- and either time = <integer as made by to_time> or year, month, day,
--- hour, min, sec}.  Raises an error on invalid input.
function M.format(t)
  local f = t
  if t.time and not t.year then f = M.from_time(t.time) end
  local typ, vmid = t.type or "qemu", tostring(t.vmid)
  if not is_type[typ] then error("invalid backup type '" .. tostring(typ) .. "'", 2) end
  if not vmid:match("^%d+$") or not valid_vmid(vmid) then
    error("invalid vmid '" .. vmid .. "'", 2)
  end
  local ext = t.ext or (t.format and (t.format .. (t.compression and ("." .. t.compression) or ""))) or "vma"
  if not valid_ext(ext) then error("invalid extension '" .. ext .. "'", 2) end
  local name = string.format("vzdump-%s-%s-%04d_%02d_%02d-%02d_%02d_%02d.%s",
    typ, vmid, f.year, f.month, f.day, f.hour or 0, f.min or 0, f.sec or 0, ext)
  if not M.parse(name) then error("invalid date in '" .. name .. "'", 2) end
  return name
end

--- Side file names of a parsed backup.
function M.log_name(b) return b.base .. ".log" end
function M.notes_names(b) return { b.file .. ".notes", b.base .. ".notes" } end
function M.protected_name(b) return b.file .. ".protected" end

--- The verdict of a vzdump task log: { verdict = "ok" | "failed" |
--- "unfinished", message = the first ERROR line's text (failed), warnings =
--- the count of WARN: lines }.  vzdump ends a good log with "Finished Backup
--- of VM N" and a failed one with "ERROR: Backup of VM N failed - ...".
function M.log_verdict(text)
  local first_error, warnings, finished = nil, 0, false
  for line in (text or ""):gmatch("[^\n]+") do
    -- a line is "INFO: ...", or "<date> INFO: ..." in the task log
    local level, msg = line:match("^(%u+): (.*)$")
    if not level then level, msg = line:match("^%S+ %S+ (%u+): (.*)$") end
    if level == "ERROR" and not first_error then
      first_error = msg
    elseif level == "WARN" or level == "WARNING" then
      warnings = warnings + 1
    elseif level == "INFO" and msg:match("^Finished Backup of VM") then
      finished = true
    end
  end
  if first_error then
    return { verdict = "failed", message = first_error, warnings = warnings }
  end
  return { verdict = finished and "ok" or "unfinished", warnings = warnings }
end

--- "qemu/100"
function M.group_key(b) return b.type .. "/" .. b.vmid end

--- Newest first; equal times by file name (descending) so the order is
--- always the same.
function M.newer(a, b)
  if a.time ~= b.time then return a.time > b.time end
  return (a.file or "") > (b.file or "")
end

function M.sort_newest_first(list)
  table.sort(list, M.newer)
  return list
end

-- ---- directories ------------------------------------------------------------

local function join(dir, name)
  if dir:sub(-1) == "/" then return dir .. name end
  return dir .. "/" .. name
end
M.join = join

local function read_all(path, max)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read(max or "a")
  f:close()
  return s
end

--- true when dir is a folder; else nil and a message that calls it a
--- word ("folder", "directory": the caller's word).
function M.check_dir(dir, word)
  local mode, err = require("lfs").attributes(dir, "mode")
  if not mode then
    return nil, string.format("cannot open %s '%s': %s", word, dir, tostring(err))
  end
  if mode ~= "directory" then return nil, string.format("'%s' is not a %s", dir, word) end
  return true
end

--- The names in a folder but . and .., sorted, and the set of them (name
--- -> true); or nil and what lfs.dir raised.
function M.list_dir(dir)
  local lfs = require "lfs"
  local ok, iter, state = pcall(lfs.dir, dir)
  if not ok then return nil, iter end
  local names, present = {}, {}
  for name in iter, state do
    if name ~= "." and name ~= ".." then
      names[#names + 1] = name
      present[name] = true
    end
  end
  table.sort(names)
  return names, present
end

--- The names in the folder dir and their set, as list_dir gives them; or
--- nil and a message that calls it a word, as check_dir does.
function M.read_dir(dir, word)
  local isdir, err = M.check_dir(dir, word)
  if not isdir then return nil, err end
  local names, present = M.list_dir(dir)
  if not names then
    return nil, string.format("cannot read %s '%s': %s", word, dir, tostring(present))
  end
  return names, present
end

--- The notes file of a backup: the first of names (notes_names) present in
--- the folder dir (present as list_dir gives it), and its text without
--- trailing white space (nil when it cannot be read; at most max bytes
--- read, default all); nothing when there is none.
function M.read_notes(dir, names, present, max)
  for _, n in ipairs(names) do
    if present[n] then
      local text = read_all(join(dir, n), max)
      return n, text and (text:gsub("%s+$", "")) or nil
    end
  end
end

local function group_less(a, b)
  if a.type ~= b.type then return a.type < b.type end
  if #a.vmid ~= #b.vmid then return #a.vmid < #b.vmid end
  return a.vmid < b.vmid
end

--- Group a list of backups by type+vmid.  Returns an array of groups
--- {key = "qemu/100", type, vmid, backups = {newest first}} sorted by type
--- then numerically by vmid.
function M.group(backups)
  local by_key, groups = {}, {}
  for _, b in ipairs(backups) do
    local key = M.group_key(b)
    local g = by_key[key]
    if not g then
      g = { key = key, type = b.type, vmid = b.vmid, backups = {} }
      by_key[key] = g
      groups[#groups + 1] = g
    end
    g.backups[#g.backups + 1] = b
  end
  for _, g in ipairs(groups) do M.sort_newest_first(g.backups) end
  table.sort(groups, group_less)
  return groups
end

--- Scan a directory for backups.  opts (optional): {type = "qemu", vmid =
--- "100"} keep only those.  Returns groups as M.group does, plus the flat
--- list of backups; or nil and an error message.
--- Every backup: file, path, base, type, vmid, year .. sec, time, ctime,
--- size, protected (boolean), protected_path, log (path or nil), notes
--- (string or nil), notes_path (path or nil), dir.
function M.scan(dir, opts)
  opts = opts or {}
  local lfs = require "lfs"
  local names, present = M.read_dir(dir, "directory")
  if not names then return nil, present end
  local list = {}
  for _, name in ipairs(names) do
    local b = M.parse(name)
    if b and (not opts.type or b.type == opts.type)
         and (not opts.vmid or b.vmid == tostring(opts.vmid)) then
      local path = join(dir, name)
      local attr = lfs.attributes(path)
      if attr and attr.mode == "file" then
        b.dir = dir
        b.path = path
        b.size = attr.size
        b.protected_path = join(dir, M.protected_name(b))
        b.protected = present[M.protected_name(b)] == true
        if present[M.log_name(b)] then b.log = join(dir, M.log_name(b)) end
        local notes, text = M.read_notes(dir, M.notes_names(b), present)
        if notes then b.notes_path, b.notes = join(dir, notes), text end
        list[#list + 1] = b
      end
    end
  end
  return M.group(list), list
end

--- Delete the backups of a group marked "remove" (never a protected one),
--- with their .log and .notes when no kept backup shares them.  Sets
--- b.deleted; appends messages to errors; returns the count and bytes.
function M.delete_removed(g, errors)
  local bases_left = {}
  for _, b in ipairs(g.backups) do
    if b.mark ~= "remove" then bases_left[b.base] = true end
  end
  local count, bytes = 0, 0
  for _, b in ipairs(g.backups) do
    if b.mark == "remove" and not b.protected then
      local ok, err = os.remove(b.path)
      b.deleted = ok and true or false
      if ok then
        count, bytes = count + 1, bytes + (b.size or 0)
        local side = {}
        if b.log and not bases_left[b.base] then side[#side + 1] = b.log end
        if b.notes_path and (b.notes_path == M.join(b.dir, b.file .. ".notes")
                             or not bases_left[b.base]) then
          side[#side + 1] = b.notes_path
        end
        for _, p in ipairs(side) do
          local sok, serr = os.remove(p)
          if not sok then errors[#errors + 1] = "cannot remove " .. tostring(serr) end
        end
      else
        errors[#errors + 1] = "cannot remove " .. tostring(err)
      end
    end
  end
  return count, bytes
end

--- The groups that would lose every backup.
function M.emptied_groups(groups)
  local out = {}
  for _, g in ipairs(groups) do
    local left = 0
    for _, b in ipairs(g.backups) do
      if b.mark ~= "remove" then left = left + 1 end
    end
    if left == 0 and #g.backups > 0 then out[#out + 1] = g end
  end
  return out
end

return M
