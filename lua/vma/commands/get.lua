-- vma get ARCHIVE PATH... DEST: copy files and trees of the guest out of an
-- archive, read in the process (nothing restored or mounted).  Writes only
-- inside DEST, through a private folder renamed into place at the end;
-- never over an existing file without --force; an interrupted copy leaves
-- nothing behind.
local vma = require "vma"
local ui = require "vma.ui"
local files = require "vma.files"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma get", ui.text [[
    Copy files or folders of the guest in an archive into the folder DEST (or, for one file, to
    the new name DEST, or to standard output with '-'). PATH is as for 'vma ls': /etc/nginx,
    C:/Users/bob, scsi0:2:/etc. Folders are copied whole; symbolic links inside them are copied as
    links (never followed), a PATH that is a link is followed. Files keep their holes (sparse),
    their mode and times; the owner only with --preserve-owner (without it setuid and setgid bits
    are dropped). Devices, sockets and fifos are skipped. Nothing is written outside DEST, nothing
    existing is replaced without --force (a folder is then merged), and an interrupted copy leaves
    nothing behind. With a folder instead of an archive: a version of a file from a store's
    catalog (vma get DIR PATH DEST; 'vma get DIR --help').]])
  ui.archive_argument(p, "random")
  p:argument("items", "the guest's files or folders (PATH...), then where they go (DEST)"):args("2+")
  p:usage("Usage: vma get [-h] [-f] [--preserve-owner] [-q] [--no-cache] [--root <root>]\n"
    .. "       [--keyfile <keyfile>] [--key <key>] [--engine {in-process,libguestfs}]\n"
    .. "       <archive> <path> [<path>] ... <dest>")
  p:flag("-f --force", "replace existing files (and merge into existing folders)")
  p:flag("--preserve-owner", "keep the owner and group (and setuid/setgid bits)")
  p:flag("-q --quiet", "no closing summary")
  files.options(p)
  return p
end

local function basename(path)
  local comps = {}
  for c in path:gsub("\\", "/"):gmatch("[^/]+") do comps[#comps + 1] = c end
  local b = comps[#comps]
  if b and b:match("^%a:$") then b = nil end
  if b and b:find(":", 1, true) then b = b:match("[^:]*$") end
  if b == "" then b = nil end
  return b
end

local run
function run(args)
  -- a folder first (or --db): a version from a store's catalog, then this
  local storecmd = require "vma.storecmd"
  if storecmd.wants(args) then return storecmd.get(args, run) end
  local a, st = ui.parse(parser(), args, "get")
  if not a then return st end
  local items = a.items
  local dest = table.remove(items)
  local function usage(msg)
    io.stderr:write("vma get: " .. msg .. " (see 'vma help get')\n")
    return 2
  end
  if dest == "-" and #items ~= 1 then return usage("'-' (standard output) takes one file") end

  local r, g, unwait = files.open("get", a.archive, a)
  if not r then return ui.fail("get", g) end
  local function finish(code)
    files.close(r, g, unwait)
    return code
  end

  if dest == "-" then
    local obj, path = g:locate(items[1])
    if not obj then return finish(ui.fail("get", path)) end
    local pst, err = obj:stat(path, true)
    if not pst then return finish(ui.fail("get", err)) end
    if pst.type ~= "file" then
      return finish(ui.fail("get", items[1] .. " is not a file: '-' writes one file"))
    end
    local f, ferr = obj:open(path)
    if not f then return finish(ui.fail("get", ferr)) end
    vma.os.catch_signals()
    local n, cerr = f:copy_to(io.stdout)
    f:close()
    if not n then return finish(ui.fail("get", cerr)) end
    return finish(0)
  end

  -- where each item goes: inside DEST when it is a folder, else DEST is
  -- the new name of the one item
  local dst = vma.os.stat(dest)
  local folder, as_name
  if dst and dst.type == "directory" then
    folder = dest
  elseif dst then
    if not a.force then
      return finish(ui.fail("get", dest .. " exists and is not a folder (--force replaces it)"))
    end
  end
  if not folder then
    if #items ~= 1 then return finish(usage(dest .. " is not a folder: several PATHs need one")) end
    local parent = dest:match("^(.*)/[^/]*$") or "."
    if parent == "" then parent = "/" end
    local pst = vma.os.stat(parent)
    if not pst or pst.type ~= "directory" then
      return finish(ui.fail("get", "the folder of " .. dest .. " does not exist"))
    end
    folder, as_name = parent, dest:match("([^/]*)$")
    if as_name == "" or as_name == "." or as_name == ".." then
      return finish(ui.fail("get", dest .. " is not a name for a file"))
    end
  end

  -- what to copy, checked before anything is written
  local plan = {}
  for _, spec in ipairs(items) do
    local obj, path = g:locate(spec)
    if not obj then return finish(ui.fail("get", path)) end
    local pst, err = obj:stat(path, true)
    if not pst then return finish(ui.fail("get", err)) end
    local name = as_name or basename(path) or basename(spec)
    if not name or name == ".." or name == "." then
      name = pst.type == "directory" and "root" or nil
    end
    if not name then return finish(ui.fail("get", spec .. ": no name to give the copy")) end
    plan[#plan + 1] = { spec = spec, obj = obj, path = path, st = pst, name = name }
  end

  local w, werr = vma.file_writer(folder, { force = a.force, preserve_owner = a.preserve_owner })
  if not w then return finish(ui.fail("get", werr)) end
  local seen = {}
  for _, p in ipairs(plan) do
    if seen[p.name] then
      w:abort()
      return finish(ui.fail("get", "two PATHs would both be copied to " .. p.name))
    end
    seen[p.name] = true
    if w:exists(p.name) and not a.force then
      w:abort()
      return finish(ui.fail("get", folder .. "/" .. p.name .. " exists (--force replaces it)"))
    end
  end

  vma.os.catch_signals()
  local tty = vma.os.isatty(2) and not a.quiet
  local errors, skipped, last_draw = 0, 0, 0
  local start = vma.os.clock()
  local function status(force_draw)
    if not tty then return end
    local now = vma.os.clock()
    if not force_draw and now - last_draw < 0.2 then return end
    last_draw = now
    local s = w:stats()
    io.stderr:write(string.format("\r%d files, %s", s.files, ui.human(s.bytes)), "\27[K")
  end
  local function fail_entry(path, msg)
    errors = errors + 1
    files.warn("get", path, msg)
  end
  local function copy_file(rel, fs, fspath, est, top_path)
    local f, ferr = fs:open(fspath)
    if not f then return fail_entry(top_path, ferr) end
    local progress
    if tty and est.size >= (64 << 20) then
      local bar = ui.progress { label = files.escape(rel) .. " " }
      local t0 = vma.os.clock()
      progress = function(done) bar.update(done, est.size, vma.os.clock() - t0) end
      local ok, cerr = w:file(rel, f, est, { progress = progress })
      bar.finish()
      f:close()
      if not ok then
        if vma.os.interrupted() then error("interrupted", 0) end
        return fail_entry(top_path, cerr)
      end
      return
    end
    local ok, cerr = w:file(rel, f, est)
    f:close()
    if not ok then
      if vma.os.interrupted() then error("interrupted", 0) end
      return fail_entry(top_path, cerr)
    end
  end
  local function copy_link(rel, fs, fspath, est, top_path)
    local target, lerr = fs:readlink(fspath)
    if not target then return fail_entry(top_path, lerr) end
    local ok, serr = w:symlink(rel, target, est)
    if not ok then fail_entry(top_path, serr) end
  end

  local ok, err = pcall(function()
    for _, p in ipairs(plan) do
      if p.st.type == "file" then
        copy_file(p.name, p.obj, p.path, p.st, p.spec)
      elseif p.st.type == "directory" then
        local made, merr = w:mkdir(p.name, p.st)
        if not made then error(merr, 0) end
        local it, e2 = p.obj:walk(p.path)
        if not it then error(e2, 0) end
        local inner = p.path == "/" and "/" or p.path .. "/"
        for rel, est, fs, fspath, eerr in it do
          if vma.os.interrupted() then error("interrupted", 0) end
          local shown = p.spec:gsub("/+$", "") .. "/" .. rel
          local target = p.name .. "/" .. rel
          fs, fspath = fs or p.obj, fspath or (inner .. rel)
          if not est then
            fail_entry(shown, type(fs) == "string" and fs or eerr)
          elseif est.type == "directory" then
            local made2, merr2 = w:mkdir(target, est)
            if not made2 then error(merr2, 0) end
          elseif est.type == "file" then
            copy_file(target, fs, fspath, est, shown)
          elseif est.type == "link" then
            copy_link(target, fs, fspath, est, shown)
          else
            skipped = skipped + 1
          end
          status()
        end
      else
        skipped = skipped + 1
        files.warn("get", p.spec, "a " .. p.st.type .. ": not copied")
      end
    end
  end)
  if tty then io.stderr:write("\r\27[K") end
  if not ok then
    w:abort()
    return finish(ui.fail("get", vma.os.interrupted() and "interrupted: nothing was left in " .. folder
      or err))
  end
  local s = w:stats()
  local cok, cerr = w:commit()
  if not cok then return finish(ui.fail("get", cerr)) end
  local parts = { string.format("%d file%s", s.files, s.files == 1 and "" or "s") }
  if s.folders > 0 then parts[#parts + 1] = string.format("%d folder%s", s.folders, s.folders == 1 and "" or "s") end
  if s.links > 0 then parts[#parts + 1] = string.format("%d link%s", s.links, s.links == 1 and "" or "s") end
  if skipped > 0 then parts[#parts + 1] = string.format("%d special file%s skipped", skipped, skipped == 1 and "" or "s") end
  ui.summary("get", string.format("%s copied to %s: %s", table.concat(parts, ", "), folder,
    ui.throughput(s.bytes, vma.os.clock() - start)), a.quiet)
  if errors > 0 then
    io.stderr:write(string.format("vma get: %d entr%s could not be read (see above)\n", errors,
      errors == 1 and "y" or "ies"))
    return finish(1)
  end
  return finish(0)
end

return {
  description = "copy files and folders of the guest out of an archive",
  usage = parser():get_help(),
  run = run,
}
