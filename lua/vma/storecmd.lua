-- vma.storecmd - the store's forms of `vma find` and `vma get`, which the
-- two command files call first:
--
--   vma find DIR PATTERN [--vmid N] [--db PATH] [--json]   across a catalogued store
--   vma find ARCHIVE [PATH] [--name GLOB] ...              in one archive (the guest form)
--   vma get DIR PATH... DEST [--vmid N] [--version K | --backup FILE] [get's options]
--   vma get ARCHIVE PATH... DEST ...                       from one archive
--
-- The rule: when the first argument that is not an option names a folder
-- (or --db is given), it is the store form; an archive is a file, never a
-- folder.  The store form of get chooses an archive from the catalog and
-- runs the archive form on it.

local vma = require "vma"
local ui = require "vma.ui"
local catalog = require "vma.catalog"

local M = {}

-- options that take a value, in the store forms and in the guest forms (so
-- that their values are not taken for the first argument)
local VALUE_OPTIONS = {
  ["--db"] = true, ["--vmid"] = true, ["--version"] = true, ["--backup"] = true,
  ["--name"] = true, ["--newer"] = true, ["--size"] = true, ["--type"] = true,
  ["--root"] = true, ["--key"] = true, ["--keyfile"] = true,
}

--- The first word of args that is not an option (or an option's value).
function M.first_operand(args)
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then return args[i + 1] end
    if a:sub(1, 1) == "-" and a ~= "-" then
      if VALUE_OPTIONS[a] then i = i + 1 end
    else
      return a
    end
    i = i + 1
  end
  return nil
end

--- Is this the store form (a folder first, or --db)?
function M.wants(args)
  for _, a in ipairs(args) do
    if a == "--" then break end
    if a == "--db" or a:sub(1, 5) == "--db=" then return true end
  end
  local first = M.first_operand(args)
  if not first then return false end
  local st = vma.os.stat(first)
  return st ~= nil and st.type == "directory"
end

--- A path as it may be printed: control characters and bytes that are not
--- UTF-8 as \xHH (and a backslash doubled); the second value is true when
--- anything was escaped.
function M.printable(s)
  if utf8.len(s) and not s:find("[%c\\]") then return s, false end
  local out = {}
  local i = 1
  while i <= #s do
    local c = s:byte(i)
    local n = c < 0x80 and 1 or c >= 0xf0 and 4 or c >= 0xe0 and 3 or c >= 0xc0 and 2 or 1
    local ch = s:sub(i, i + n - 1)
    if n > 1 and utf8.len(ch) == 1 then
      out[#out + 1] = ch
      i = i + n
    else
      if c < 0x20 or c == 0x7f or c >= 0x80 then out[#out + 1] = string.format("\\x%02x", c)
      elseif c == 0x5c then out[#out + 1] = "\\\\"
      else out[#out + 1] = string.char(c) end
      i = i + 1
    end
  end
  return table.concat(out), true
end

local function time_text(t)
  return t and os.date("%Y-%m-%d %H:%M:%S", t) or "-"
end

local function open_catalog(dir, db)
  return catalog.open(db or dir, { readonly = true })
end

local function check_vmid(cmd, v)
  if v and not v:match("^%d+$") then
    return nil, select(2, ui.usage_error(cmd, "--vmid: a number, not '" .. v .. "'"))
  end
  return true
end

-- ---- vma find DIR PATTERN ----

local function find_parser()
  local argparse = require "argparse"
  local p = argparse("vma find", ui.text [[
    Find files in every catalogued backup of a store (vma catalog --files DIR): a glob (*, ?,
    [...]) on the guest path when it holds a '/', else on the file's name; newest backup first.
    One line per VM, path and version (the same content in several backups is one line, with the
    newest backup holding it). With an archive instead of a folder: the files of that archive (vma
    find ARCHIVE --help).]])
  p:argument("dir", "the store's folder (its catalog: DIR/.vma-catalog.sqlite)")
  p:argument("pattern", "the glob")
  p:option("--vmid", "only the backups of this VM"):argname("N")
  p:option("--db", "the catalog file"):argname("PATH")
  p:flag("--all", "a line for every backup holding a match, not one per version")
  ui.json_flag(p)
  return p
end
M.find_usage = find_parser

function M.find(args)
  local a, st = ui.parse(find_parser(), args, "find")
  if not a then return st end
  local okv, vst = check_vmid("find", a.vmid)
  if not okv then return vst end
  local cat, err = open_catalog(a.dir, a.db)
  if not cat then return ui.fail("find", err, a.json) end
  local ok, matches = pcall(cat.find, cat, a.pattern, { vmid = a.vmid })
  local listed = ok and cat:first("SELECT count(*) AS n FROM archives WHERE files IS NOT NULL")
  cat:close()
  if not ok then return ui.fail("find", matches, a.json) end
  if listed.n == 0 then
    io.stderr:write("vma find: no backup in the catalog has a file list (run 'vma catalog "
      .. "--files " .. a.dir .. "')\n")
  end
  if a.json then
    local list = ui.array()
    for _, m in ipairs(matches) do
      local backups = ui.array()
      for _, b in ipairs(m.backups) do
        backups[#backups + 1] = { file = b.file, path = cat:file_of(b.archive), time = b.time }
      end
      local p, escaped = M.printable(m.path)
      list[#list + 1] = { path = p, path_escaped = escaped or nil, vmid = m.vmid and math.tointeger(tonumber(m.vmid)),
        type = m.type, size = m.size, mode = m.mode, mtime = m.mtime, hash = m.hash,
        target = m.target, backups = backups }
    end
    ui.out(ui.json({ ok = true, pattern = a.pattern, matches = list }, { "ok", "pattern", "matches" }), "\n")
    return 0
  end
  local emit, flush = ui.lines()
  for _, m in ipairs(matches) do
    local backups = a.all and m.backups or { m.backups[1] }
    for _, b in ipairs(backups) do
      local more = (not a.all and #m.backups > 1)
        and string.format(" (and %d older)", #m.backups - 1) or ""
      emit(string.format("%s  %s  %10s  %s  %s%s\n", time_text(b.time),
        m.vmid or "-", m.type == "file" and tostring(m.size) or m.type, M.printable(m.path),
        b.file, more))
    end
  end
  flush()
  return 0
end

-- ---- vma history DIR --vmid N PATH ----

function M.history_parser()
  local argparse = require "argparse"
  local p = argparse("vma history", ui.text [[
    Every version of one guest file in the catalogued backups of a VM (vma catalog --files DIR):
    which backups hold it, its size, mtime, content hash, and where it changed; newest first. vma
    get DIR --vmid N --version K PATH DEST copies a version out.]])
  p:argument("dir", "the store's folder")
  p:argument("path", "the guest path (as vma find prints it)")
  p:option("--vmid", "the VM"):argname("N")
  p:option("--db", "the catalog file"):argname("PATH")
  ui.json_flag(p)
  return p
end

-- the VM of a path: --vmid, or the only VM whose backups hold it
local function vm_of(cat, vmid, path)
  if vmid then return vmid end
  local rows = cat:rows([[SELECT DISTINCT a.vmid AS vmid FROM paths p JOIN versions v ON
    v.path_id = p.id JOIN files f ON f.version_id = v.id JOIN archives a ON a.id = f.archive_id
    WHERE p.path = ? ORDER BY a.vmid]], path)
  if #rows == 1 and rows[1].vmid then return rows[1].vmid end
  if #rows == 0 then return nil, "no catalogued backup holds " .. M.printable(path) end
  local ids = {}
  for _, r in ipairs(rows) do ids[#ids + 1] = r.vmid or "?" end
  return nil, string.format("%s is in the backups of VMs %s: give --vmid", M.printable(path),
    table.concat(ids, ", "))
end

function M.history(args)
  local a, st = ui.parse(M.history_parser(), args, "history")
  if not a then return st end
  local okv, vst = check_vmid("history", a.vmid)
  if not okv then return vst end
  local cat, err = open_catalog(a.dir, a.db)
  if not cat then return ui.fail("history", err, a.json) end
  local ok, res = pcall(function()
    local vmid, verr = vm_of(cat, a.vmid, a.path)
    if not vmid then error(verr, 0) end
    local h = cat:versions(vmid, a.path)
    if #h.backups == 0 then
      error(string.format("no backup of VM %s has a file list in the catalog (run 'vma catalog "
        .. "--files %s')", vmid, a.dir), 0)
    end
    if #h.versions == 0 then
      error(string.format("no catalogued backup of VM %s holds %s", vmid, M.printable(a.path)), 0)
    end
    h.vmid = vmid
    return h
  end)
  cat:close()
  if not ok then return ui.fail("history", res, a.json) end
  local h = res
  -- newest first
  local rows = {}
  for i = #h.backups, 1, -1 do
    local b = h.backups[i]
    local change = ""
    if b.changed then
      local before = h.backups[i - 1]
      if not b.version then change = "removed"
      elseif not before or not before.version then change = i == 1 and "first" or "added"
      else change = "changed" end
    end
    rows[#rows + 1] = { b = b, change = change }
  end
  if a.json then
    local versions, backups = ui.array(), ui.array()
    for _, v in ipairs(h.versions) do
      versions[#versions + 1] = { version = v.number, type = v.type, size = v.size, mode = v.mode,
        mtime = v.mtime, hash = v.hash, target = v.target, first = v.first, last = v.last,
        backups = v.backups }
    end
    for _, r in ipairs(rows) do
      backups[#backups + 1] = { file = r.b.file, path = cat:file_of(r.b.archive), time = r.b.time,
        version = r.b.version and r.b.version.number or ui.null,
        change = r.change ~= "" and r.change or ui.null }
    end
    ui.out(ui.json({ ok = true, vmid = math.tointeger(tonumber(h.vmid)), path = a.path,
      versions = versions, backups = backups }, { "ok", "vmid", "path", "versions", "backups" }), "\n")
    return 0
  end
  local table_rows = {}
  for _, r in ipairs(rows) do
    local v = r.b.version
    table_rows[#table_rows + 1] = {
      time_text(r.b.time), v and tostring(v.number) or "-", r.change,
      v and (v.type == "file" and tostring(v.size) or v.type) or "",
      v and time_text(v.mtime) or "", v and (v.hash and v.hash:sub(1, 16) or v.target or "") or "",
      r.b.file }
  end
  ui.out(string.format("%s in VM %s: %d version%s in %d of %d backups with a file list\n",
    M.printable(a.path), h.vmid, #h.versions, #h.versions == 1 and "" or "s",
    (function() local n = 0 for _, b in ipairs(h.backups) do if b.version then n = n + 1 end end return n end)(),
    #h.backups))
  ui.out(ui.table({ "TIME", "VERSION", "CHANGE", "SIZE", "MTIME", "SHA-256", "BACKUP" }, table_rows))
  return 0
end

-- ---- vma get DIR PATH... DEST ----

--- The help of the store's form of get (what `vma get --help` adds).
function M.get_usage()
  local argparse = require "argparse"
  local p = argparse("vma get", ui.text [[
    The store's form: a file as it was in any catalogued backup (vma catalog --files DIR).
    --version K takes the newest backup holding version K of the file (as vma history numbers
    them; default 1, the newest), --backup FILE that backup; the archive chosen is said on
    standard error, then 'vma get ARCHIVE PATH... DEST' runs on it with the other options.]])
  p:usage("Usage: vma get DIR PATH DEST [--vmid N] [--version K] [--db PATH] [options]\n"
    .. "       vma get DIR PATH... DEST --backup FILE [--db PATH] [options]")
  p:argument("dir", "the store's folder (its catalog: DIR/.vma-catalog.sqlite)")
  p:argument("items", "the guest's files (PATH...), then DEST"):args("2+")
  p:option("--vmid", "the VM (needed when several VMs have the path)"):argname("N")
  p:option("--version", "the version, as vma history numbers them (1: the newest)"):argname("K")
  p:option("--backup", "the backup, by its file name or its path in the catalog"):argname("FILE")
  p:option("--db", "the catalog file"):argname("PATH")
  return p
end

-- the store's own options of get, taken out of args; the rest is passed on
local function take_options(args)
  local own, rest = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, val = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    if name == "--db" or name == "--vmid" or name == "--version" or name == "--backup" then
      if not val then
        val = args[i + 1]
        i = i + 1
      end
      if val == nil then return nil, "option '" .. name .. "' requires an argument" end
      own[name:sub(3)] = val
    elseif a == "--" then
      for j = i, #args do rest[#rest + 1] = args[j] end
      break
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return own, rest
end

--- The archive (its path) of the store form of get; opts: vmid, version,
--- backup; paths: the guest paths asked.
function M.choose_archive(dir, opts, paths)
  local cat, err = open_catalog(dir, opts.db)
  if not cat then return nil, err end
  local ok, res = pcall(function()
    if opts.backup then
      for _, arow in ipairs(cat:archives()) do
        if arow.name == opts.backup or arow.path == opts.backup then
          return cat:file_of(arow.path)
        end
      end
      error("no archive named " .. opts.backup .. " in the catalog", 0)
    end
    if #paths ~= 1 then
      error("give one PATH with --version (or several with --backup FILE)", 0)
    end
    local vmid, verr = vm_of(cat, opts.vmid, paths[1])
    if not vmid then error(verr, 0) end
    local h = cat:versions(vmid, paths[1])
    local want = opts.version and math.tointeger(tonumber(opts.version))
    if opts.version and (not want or want < 1) then
      error("--version: a number from 1 (the newest), not '" .. opts.version .. "'", 0)
    end
    want = want or 1
    local v
    for _, x in ipairs(h.versions) do if x.number == want then v = x end end
    if not v then
      error(string.format("%s has %d version%s in the backups of VM %s (vma history)",
        M.printable(paths[1]), #h.versions, #h.versions == 1 and "" or "s", vmid), 0)
    end
    -- the newest backup holding that version
    for i = #h.backups, 1, -1 do
      local b = h.backups[i]
      if b.version == v then return cat:file_of(b.archive) end
    end
    error("no backup holds that version", 0)
  end)
  cat:close()
  if not ok then return nil, res end
  return res
end

function M.get(args, run_archive_form)
  for _, w in ipairs(args) do
    if w == "--" then break end
    if w == "-h" or w == "--help" then
      io.stdout:write(M.get_usage():get_help(), "\n")
      return 0
    end
  end
  local own, rest = take_options(args)
  if not own then return select(2, ui.usage_error("get", rest)) end
  if own.vmid and not own.vmid:match("^%d+$") then
    return select(2, ui.usage_error("get", "--vmid: a number, not '" .. own.vmid .. "'"))
  end
  -- rest: DIR PATH... DEST and get's own options
  local operands, options = {}, {}
  local i = 1
  while i <= #rest do
    local w = rest[i]
    if w == "--" then
      for j = i + 1, #rest do operands[#operands + 1] = rest[j] end
      break
    elseif w:sub(1, 1) == "-" and w ~= "-" then
      options[#options + 1] = w
      if VALUE_OPTIONS[w] and rest[i + 1] then
        options[#options + 1] = rest[i + 1]
        i = i + 1
      end
    else
      operands[#operands + 1] = w
    end
    i = i + 1
  end
  if #operands < 3 then
    return select(2, ui.usage_error("get", "the store form is vma get DIR PATH... DEST "
      .. "[--vmid N] [--version K | --backup FILE]"))
  end
  local dir, dest = operands[1], operands[#operands]
  local paths = {}
  for k = 2, #operands - 1 do paths[#paths + 1] = operands[k] end
  local archive, err = M.choose_archive(dir, own, paths)
  if not archive then return ui.fail("get", err) end
  local new = {}
  for _, o in ipairs(options) do new[#new + 1] = o end
  new[#new + 1] = "--"
  new[#new + 1] = archive
  for _, p in ipairs(paths) do new[#new + 1] = p end
  new[#new + 1] = dest
  io.stderr:write("vma get: from ", archive, "\n")
  return run_archive_form(new)
end

return M
