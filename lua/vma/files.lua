-- vma.files: what the file commands (inspect, ls, get, find, mount --files)
-- share: their common options, opening an archive's guest with a clear
-- message, names made safe to print, modes, owners, times, globs, dates
-- and sizes as the user writes them.
local vma = require "vma"
local ui = require "vma.ui"

local M = {}

--- The options every command that reads guest files takes.
function M.options(p)
  ui.no_cache_flag(p)
  p:option("--root", "the volume holding the root file system (as 'vma inspect' names it), "
    .. "when the choice made is not the one wanted")
  p:option("--keyfile", "a file holding the key (passphrase) of the encrypted volumes (LUKS, "
    .. "BitLocker; read through libguestfs), used as it is, newline included")
  p:option("--key", "the passphrase of the encrypted volumes (others on this machine may see "
    .. "it in the process list: prefer --keyfile)")
  p:option("--engine", "read every file system with this engine only: in-process (never "
    .. "starts libguestfs) or libguestfs (reads ext4, XFS... through it too)")
    :choices { "in-process", "libguestfs" }
end

--- Open the archive and its guest: r, g, and a function that ends the
--- line telling about a wait for the decoder (an archive that can only be
--- read in order is decoded as it is read), or nil, message.
function M.open(cmd, archive, a)
  local wait, unwait = ui.waiter(cmd, a.quiet, not a.no_cache)
  local r, err = vma.open(archive, { cache = not a.no_cache, wait = wait })
  if not r then
    unwait()
    return nil, err
  end
  local key = a.key
  if a.key and a.keyfile then
    unwait()
    r:close()
    return nil, "--key and --keyfile exclude each other"
  end
  if a.keyfile then
    local f, ferr = io.open(a.keyfile, "rb")
    if not f then
      r:close()
      unwait()
      return nil, "cannot read the key file: " .. tostring(ferr)
    end
    key = f:read("a")
    f:close()
  end
  local g, gerr = r:guest { root = a.root, key = key, keyfile = a.keyfile, no_cache = a.no_cache,
    cmd = cmd, quiet = a.quiet, engine = a.engine, signals = a.signals }
  if not g then
    r:close()
    unwait()
    return nil, gerr
  end
  if vma.os.interrupted() then
    -- during libguestfs's launch: what it started is ended already
    g:close()
    r:close()
    unwait()
    return nil, "interrupted"
  end
  return r, g, unwait
end

--- The arguments of a file command (ui.parse) and the guest of the archive
--- a.archive (M.open): a, r, g, unwait; or nil and the exit status, once the
--- usage error or the failure is printed (with a.json also as JSON on stdout).
function M.parse_open(parser, args, cmd)
  local a, st = ui.parse(parser, args, cmd)
  if not a then return nil, st end
  local r, g, unwait = M.open(cmd, a.archive, a)
  if not r then return nil, ui.fail(cmd, g, a.json) end
  return a, r, g, unwait
end

--- The end of what M.open opened: the guest, the waiter's line (and the
--- note on a decoded copy left unfinished), the archive.
function M.close(r, g, unwait)
  g:close()
  unwait(r)
  r:close()
end

local function valid_utf8(s) return utf8.len(s) ~= nil end

local named = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ["\\"] = "\\\\" }

--- A name or path as it may be printed: control characters, backslashes,
--- bytes that are not UTF-8 and the Unicode controls that reorder text
--- written as escapes (\n, \t, \\, \xNN, \u{202E}).
function M.escape(s)
  if not s:find("[%c\\\128-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then
      local ch = s:sub(i, i)
      if named[ch] then out[#out + 1] = named[ch]
      elseif c < 0x20 or c == 0x7f then out[#out + 1] = string.format("\\x%02x", c)
      else out[#out + 1] = ch end
      i = i + 1
    else
      -- one UTF-8 sequence, or one bad byte
      local len = c >= 0xf0 and c < 0xf5 and 4 or c >= 0xe0 and 3 or c >= 0xc2 and c < 0xe0 and 2 or 0
      local seq = len > 0 and s:sub(i, i + len - 1)
      local cp = seq and #seq == len and valid_utf8(seq) and utf8.codepoint(seq)
      if cp and not (cp >= 0x80 and cp <= 0x9f) and not (cp >= 0x202a and cp <= 0x202e)
          and not (cp >= 0x2066 and cp <= 0x2069) then
        out[#out + 1] = seq
        i = i + len
      elseif cp then
        out[#out + 1] = string.format("\\u{%x}", cp)
        i = i + len
      else
        out[#out + 1] = string.format("\\x%02x", c)
        i = i + 1
      end
    end
  end
  return table.concat(out)
end

--- A name for JSON: the name when it is UTF-8, else the name with each bad
--- byte as U+FFFD and a second value: the name escaped (\xNN).
function M.json_name(s)
  if valid_utf8(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xf0 and c < 0xf5 and 4 or c >= 0xe0 and 3 or c >= 0xc2 and c < 0xe0 and 2 or 0
    local seq = len > 0 and s:sub(i, i + len - 1)
    if seq and #seq == len and valid_utf8(seq) then
      out[#out + 1] = seq
      i = i + len
    else
      out[#out + 1] = "\u{FFFD}"
      i = i + 1
    end
  end
  return table.concat(out), M.escape(s)
end

local type_char = { directory = "d", link = "l", char = "c", block = "b", fifo = "p",
  socket = "s", file = "-" }

--- "drwxr-xr-x" for a stat.
function M.mode_string(st)
  local m = st.mode or 0
  local function rwx(shift, special, schar)
    local r = (m >> (shift + 2)) & 1 == 1 and "r" or "-"
    local w = (m >> (shift + 1)) & 1 == 1 and "w" or "-"
    local x = (m >> shift) & 1 == 1
    local xs = x and "x" or "-"
    if m & special ~= 0 then xs = x and schar or schar:upper() end
    return r .. w .. xs
  end
  return (type_char[st.type] or "?") .. rwx(6, 0x800, "s") .. rwx(3, 0x400, "s") .. rwx(0, 0x200, "t")
end

--- "2024-05-01 12:34" (UTC) of a stat's time.
function M.time_string(t)
  return os.date("!%Y-%m-%d %H:%M", t or 0)
end

--- The user and group names of a Linux guest (/etc/passwd, /etc/group),
--- or empty tables.
function M.owner_names(g)
  local users, groups = {}, {}
  local function load(path, t)
    local ok, f = pcall(g.open, g, path)
    if not ok or not f then return end
    if f.size <= 4 << 20 then
      for line in f:lines() do
        local name, id = line:match("^([^:]+):[^:]*:(%d+):")
        id = math.tointeger(tonumber(id))
        if name and id and not t[id] then t[id] = name end
      end
    end
    f:close()
  end
  if g.root and g.root.os and g.root.os.kind == "linux" then
    load("/etc/passwd", users)
    load("/etc/group", groups)
  end
  return users, groups
end

--- A glob (*, ?, [...]) as an anchored Lua pattern.
function M.glob_pattern(glob)
  local out, i = { "^" }, 1
  while i <= #glob do
    local c = glob:sub(i, i)
    if c == "*" then out[#out + 1] = ".*"
    elseif c == "?" then out[#out + 1] = "."
    elseif c == "[" then
      local j = glob:find("]", i + 2, true)
      if not j then
        out[#out + 1] = "%["
      else
        local set = glob:sub(i + 1, j - 1)
        local neg = set:sub(1, 1) == "!" or set:sub(1, 1) == "^"
        if neg then set = set:sub(2) end
        set = set:gsub("[%%%]%^]", "%%%0")
        out[#out + 1] = "[" .. (neg and "^" or "") .. set .. "]"
        i = j
      end
    elseif c:match("[%^%$%(%)%%%.%+%-%]]") then out[#out + 1] = "%" .. c
    else out[#out + 1] = c end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out)
end

--- A date as the user writes it: "2024-05-01", "2024-05-01 12:00[:00]",
--- "2024-05-01T12:00:00" (UTC), "@1714567890", or an age: "3d", "12h",
--- "30m", "2w" before now.  Seconds since 1970, or nil.
function M.parse_date(text, now)
  now = now or os.time()
  local epoch = text:match("^@(%d+)$")
  if epoch then return math.tointeger(tonumber(epoch)) end
  local n, unit = text:match("^(%d+)([smhdw])$")
  if n then
    local mult = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }
    return now - math.tointeger(tonumber(n)) * mult[unit]
  end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local h, mi, s = 0, 0, 0
  if rest ~= "" then
    local hh, mm, ss = rest:match("^[T ](%d%d):(%d%d):?(%d*)Z?$")
    if not hh then return nil end
    h, mi, s = tonumber(hh), tonumber(mm), tonumber(ss) or 0
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  -- days since 1970 of a UTC date (no time zone involved)
  local a = (14 - mo) // 12
  local yy, mm = y + 4800 - a, mo + 12 * a - 3
  local jdn = d + (153 * mm + 2) // 5 + 365 * yy + yy // 4 - yy // 100 + yy // 400 - 32045
  return (jdn - 2440588) * 86400 + h * 3600 + mi * 60 + s
end

--- "+10M" (more than), "-1G" (less than), "4096" (exactly): op, bytes.
function M.parse_size_filter(text)
  local op, rest = text:match("^([+-]?)(.+)$")
  local n = require("vma.devices").parse_size(rest)
  if not n then return nil end
  return op == "" and "=" or op, n
end

--- Print an entry error on stderr (escaped).
function M.warn(cmd, path, msg)
  msg = tostring(msg)
  if msg:sub(1, #path + 1) == path .. ":" then
    io.stderr:write("vma ", cmd, ": ", M.escape(msg), "\n")
  else
    io.stderr:write("vma ", cmd, ": ", M.escape(path), ": ", M.escape(msg), "\n")
  end
end

M.ui = ui
return M
