-- vma find ARCHIVE [PATH]: the guest's files under PATH that match, read
-- from the archive in the process.
local vma = require "vma"
local ui = require "vma.ui"
local files = require "vma.files"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma find", ui.text [[
    Find files of the guest in an archive under PATH (default /; the forms of 'vma ls'), depth
    first, each folder in name order. The tests all apply; links are not followed. With a folder
    instead of an archive: which catalogued backups of a store hold a file (vma find DIR PATTERN;
    'vma find DIR --help').]])
  ui.archive_argument(p, "random")
  p:argument("path", "where to look"):args("?")
  p:option("--name", "the name matches this glob (*, ?, [...])")
  p:option("--newer", "modified after this date: 2024-05-01, '2024-05-01 12:00' (UTC), @EPOCH, "
    .. "or an age: 7d, 12h, 30m, 2w")
  p:option("--size", "the size in bytes: +N more than N, N exactly, a minus sign before N less than N (K, M, G)")
  p:option("--type", "f (file), d (folder), l (link)"):choices { "f", "d", "l" }
  ui.json_flag(p)
  files.options(p)
  return p
end

local types = { f = "file", d = "directory", l = "link" }

local function run(args)
  -- a folder first (or --db): across the catalogued backups of a store
  local storecmd = require "vma.storecmd"
  if storecmd.wants(args) then return storecmd.find(args) end
  local a, st = ui.parse(parser(), args, "find")
  if not a then return st end
  local pattern, newer, sop, sval
  if a.name then pattern = files.glob_pattern(a.name) end
  if a.newer then
    newer = files.parse_date(a.newer)
    if not newer then return ui.usage_error("find", "--newer: not a date: " .. a.newer) end
  end
  if a.size then
    sop, sval = files.parse_size_filter(a.size)
    if not sop then return ui.usage_error("find", "--size: not a size: " .. a.size) end
  end
  local want = a.type and types[a.type]
  local function match(name, est)
    if want and est.type ~= want then return false end
    if pattern and not name:match(pattern) then return false end
    if newer and not (est.mtime > newer) then return false end
    if sop == "+" and not (est.size > sval) then return false end
    if sop == "-" and not (est.size < sval) then return false end
    if sop == "=" and est.size ~= sval then return false end
    return true
  end

  local r, g, unwait = files.open("find", a.archive, a)
  if not r then return ui.fail("find", g, a.json) end
  local spec = a.path or "/"
  local obj, path = g:locate(spec)
  local entries, failed = ui.array(), false
  local lines, flush = ui.lines()
  local function emit(p, est)
    if a.json then
      local j, raw = files.json_name(p)
      entries[#entries + 1] = { path = j, path_escaped = raw, type = est.type, size = est.size,
        mtime = est.mtime, mode = est.mode, uid = est.uid, gid = est.gid }
    else
      lines(files.escape(p) .. "\n")
    end
  end
  vma.os.catch_signals()
  local ok, err = pcall(function()
    if not obj then error(path, 0) end
    local top, terr = obj:stat(path, true)
    if not top then error(terr, 0) end
    local base = spec:gsub("/+$", "")
    local basename = base:match("([^/:\\]*)$")
    if match(basename == "" and "/" or basename, top) then emit(base == "" and "/" or spec, top) end
    if top.type ~= "directory" then return end
    local prefix = (base == "" and "" or base) .. "/"
    local it, werr = obj:walk(path)
    if not it then error(werr, 0) end
    for rel, est, fs, _, eerr in it do
      if est then
        if match(rel:match("([^/]*)$"), est) then emit(prefix .. rel, est) end
      else
        failed = true
        files.warn("find", prefix .. rel, type(fs) == "string" and fs or eerr)
      end
    end
  end)
  if not ok then
    files.close(r, g, unwait)
    return ui.fail("find", err, a.json)
  end
  if a.json then
    ui.out(ui.json { ok = not failed, entries = entries }, "\n")
  else
    flush()
  end
  files.close(r, g, unwait)
  return failed and 1 or 0
end

return {
  description = "find the guest's files in an archive by name, type, size or date",
  usage = parser():get_help(),
  run = run,
}
