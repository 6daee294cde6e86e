-- vma catalog DIR... : the SQLite catalog of the archives under the folders
-- (vma.catalog), brought up to date: new and changed archives read, removed
-- ones dropped.
local vma = require "vma"
local ui = require "vma.ui"
local catalog = require "vma.catalog"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma catalog", ui.text [[
    Record every VMA archive under the folders in a catalog (an SQLite file,
    DIR/.vma-catalog.sqlite): its header, the allocation of each disk, and on demand a
    verification with a digest of every cluster and the guest's file list. Archives already
    recorded with the same path, size, mtime and header are not read again; removed ones leave the
    catalog. Each archive is written in a transaction of its own: an interrupted run keeps what it
    finished.]])
  p:argument("dirs", "the folders (each has its own catalog, unless --db)"):args("+")
  p:option("--db", "the catalog file (default DIR/.vma-catalog.sqlite)"):argname("PATH")
  p:flag("--verify", "read every archive whole: check every rule (recorded as vma verify's "
    .. "result) and record a digest of every 64 KiB cluster (for vma diff and the HTML "
    .. "picture of vma store)")
  p:flag("--files", "record the file list of every guest file system (path, type, size, "
    .. "mode, mtime, and a SHA-256 of files up to --hash-max)")
  p:option("--hash-max", "files up to this size get a content hash (default 1M; 0: none)")
    :argname("SIZE")
  p:option("-j --jobs", "read this many archives at once, in worker processes (default 1)")
    :argname("N")
  p:option("--max", "read at most N archives in this run (the others on the next)"):argname("N")
  p:flag("--json", "print a JSON summary on standard output")
  p:flag("-v --verbose", "a line for every archive read or removed")
  ui.quiet_flag(p)
  return p
end

local function parse_size(s)
  local n, unit = tostring(s):match("^(%d+)([KMGkmg]?)i?[Bb]?$")
  if not n then return nil end
  local mult = ({ [""] = 1, k = 1 << 10, m = 1 << 20, g = 1 << 30 })[unit:lower()]
  return math.tointeger(tonumber(n) * mult)
end

local function count_word(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

local function run(args)
  local a, st = ui.parse(parser(), args, "catalog")
  if not a then return st end
  local jobs, hash_max = 1, catalog.HASH_MAX
  if a.jobs then
    jobs = math.tointeger(tonumber(a.jobs))
    if not jobs or jobs < 1 or jobs > 64 then
      return select(2, ui.usage_error("catalog", "--jobs: a number from 1 to 64, not '" .. a.jobs .. "'"))
    end
  end
  local max, merr = ui.whole_number("catalog", "--max", a.max)
  if merr then return merr end
  if a.hash_max then
    hash_max = parse_size(a.hash_max)
    if not hash_max then
      return select(2, ui.usage_error("catalog", "--hash-max: a size (1M, 64K, 0), not '"
        .. a.hash_max .. "'"))
    end
  end
  local lister
  if a.files then
    local sf = require "vma.storefiles"
    lister = sf.lister { hash_max = hash_max }
  end
  vma.os.catch_signals()
  local results, status = ui.array(), 0
  for _, dir in ipairs(a.dirs) do
    local prog = ui.progress { quiet = a.quiet or a.json, label = "vma catalog: " }
    local t0 = vma.os.clock()
    local counts, err = catalog.update(dir, {
      db = a.db, verify = a.verify, files = lister, jobs = jobs, max = max,
      progress = function(done, total) prog.update(done, total, vma.os.clock() - t0) end,
      on_event = a.verbose and not a.json and function(kind, e, info, secs)
        prog.finish()
        if kind == "read" then
          local what = info.status
          if info.error then what = what .. ": " .. info.error end
          if info.files_error then what = what .. "; files: " .. info.files_error end
          io.stderr:write(string.format("vma catalog: read %s (%s, %.1f s)\n", e.rel, what, secs))
        elseif kind == "removed" then
          io.stderr:write(string.format("vma catalog: removed %s (gone)\n", e.key))
        end
      end or nil,
    })
    prog.finish()
    if not counts then
      status = 1
      if a.json then
        results[#results + 1] = { dir = dir, ok = false, error = err }
      else
        io.stderr:write("vma catalog: ", err, "\n")
      end
    else
      for _, pr in ipairs(counts.problems or {}) do
        io.stderr:write("vma catalog: ", pr, "\n")
      end
      if counts.interrupted then status = 130 end
      local secs = vma.os.clock() - t0
      if a.json then
        results[#results + 1] = { dir = dir, ok = not counts.interrupted, db = counts.db,
          found = counts.found, read = counts.read, unchanged = counts.unchanged,
          removed = counts.removed, broken = counts.broken, incomplete = counts.incomplete,
          files_failed = counts.files_failed, interrupted = counts.interrupted,
          seconds = secs }
      else
        local parts = { count_word(counts.found, "archive"),
          string.format("%d read", counts.read), string.format("%d unchanged", counts.unchanged) }
        if counts.removed > 0 then parts[#parts + 1] = string.format("%d removed", counts.removed) end
        if counts.broken > 0 then parts[#parts + 1] = string.format("%d broken", counts.broken) end
        if counts.incomplete > 0 then
          parts[#parts + 1] = string.format("%d incomplete", counts.incomplete)
        end
        if counts.files_failed > 0 then
          parts[#parts + 1] = string.format("%d without file list", counts.files_failed)
        end
        ui.summary("catalog", string.format("%s: %s in %.1f s%s", counts.db,
          table.concat(parts, ", "), secs, counts.interrupted and "; interrupted (run it again "
          .. "to go on)" or ""), a.quiet and not counts.interrupted)
      end
    end
    if status == 130 then break end
  end
  if a.json then
    ui.out(ui.json { ok = status == 0, catalogs = results }, "\n")
  end
  return status
end

return {
  description = "record the archives under folders in an SQLite catalog",
  usage = parser():get_help(),
  run = run,
}
