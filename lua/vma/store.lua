-- vma.store - the archives of a backup store (a dump folder, an NFS or CIFS
-- storage): every VMA archive under the folders, with its side files, and
-- the facts the commands show about each (from the catalog when it has
-- them, else from the archive's header).  See docs/commands.md "vma store".
--
-- An archive is a file named *.vma, *.vma.zst, *.vma.gz or *.vma.lzo (any
-- name: vzdump's and others); folders are walked depth first, symbolic
-- links to folders are not followed, names starting with "." are skipped
-- (the catalog itself, temporary files).  Side files, as Proxmox writes
-- them (vma.vzdump): <archive>.notes (or <base>.notes), <archive>.protected,
-- <base>.log; for other names <archive>.notes, <archive>.protected and the
-- name without .vma... followed by .log.

local vzdump = require "vma.vzdump"

local M = {}

M.SUFFIXES = { ".vma", ".vma.zst", ".vma.gz", ".vma.lzo" }

--- The compression a name says ("none", "zstd", "gzip", "lzo"), or nil when
--- it is not an archive's name.
function M.archive_name(name)
  if type(name) ~= "string" or name:sub(1, 1) == "." then return nil end
  if name:match("%.vma$") then return "none" end
  local ext = name:match("%.vma%.(%w+)$")
  if ext == "zst" then return "zstd" elseif ext == "gz" then return "gzip"
  elseif ext == "lzo" then return "lzo" end
  return nil
end

local function join(dir, name)
  if dir == "" or dir == "." then return name end
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

--- The side files of an archive found in a folder listing (present: name ->
--- true): fills e.notes, e.notes_path, e.protected, e.log_path.
local function side_files(e, dir, present)
  local names
  if e.vz then
    names = vzdump.notes_names(e.vz)
    e.protected = present[vzdump.protected_name(e.vz)] == true
    if present[vzdump.log_name(e.vz)] then e.log_path = join(dir, vzdump.log_name(e.vz)) end
  else
    names = { e.name .. ".notes" }
    e.protected = present[e.name .. ".protected"] == true
    local base = e.name:gsub("%.vma[%.%w]*$", "")
    if present[base .. ".log"] then e.log_path = join(dir, base .. ".log") end
  end
  local notes, text = vzdump.read_notes(dir, names, present, 65536)
  if notes then e.notes_path, e.notes = join(dir, notes), text end
end

--- Every archive under dir (recursively).  Returns a list sorted by
--- relative path of entries { path (dir joined with rel), rel (the path
--- under dir), name, dir (its folder), size, mtime, compression (from the
--- name), vz (vzdump.parse of the name, or nil), vmid, type, protected,
--- notes, notes_path, log_path }; or nil and a message when dir cannot be read.
--- Folders below it that cannot be read are listed in the second value.
function M.scan(dir, opts)
  opts = opts or {}
  local lfs = require "lfs"
  local isdir, err = vzdump.check_dir(dir, "folder")
  if not isdir then return nil, err end
  local list, problems = {}, {}
  local function walk(abs, rel, depth)
    local names, present = vzdump.list_dir(abs)
    if not names then
      if rel == "" then return nil, string.format("cannot read folder '%s': %s", abs, tostring(present)) end
      problems[#problems + 1] = string.format("cannot read folder '%s': %s", abs, tostring(present))
      return true
    end
    for _, name in ipairs(names) do
      local p = join(abs, name)
      local r = join(rel, name)
      local link = lfs.symlinkattributes(p)
      if link and link.mode == "directory" and name:sub(1, 1) ~= "." and depth < 32 then
        walk(p, r, depth + 1)
      elseif link and M.archive_name(name) then
        local attr = link.mode == "link" and lfs.attributes(p) or link
        if attr and attr.mode == "file" then
          local vz = vzdump.parse(name)
          if vz and vz.format ~= "vma" then vz = nil end
          local e = { path = p, rel = r, name = name, dir = abs, size = attr.size,
                      mtime = attr.modification, compression = M.archive_name(name), vz = vz,
                      vmid = vz and vz.vmid or nil, type = vz and vz.type or nil }
          side_files(e, abs, present)
          if not opts.vmid or e.vmid == tostring(opts.vmid) then list[#list + 1] = e end
        end
      end
    end
    return true
  end
  local ok, werr = walk(dir, "", 0)
  if not ok then return nil, werr end
  table.sort(list, function(a, b) return a.rel < b.rel end)
  return list, problems
end

--- The verdict of an archive's vzdump log ({verdict =, message =,
--- warnings =}), or nil when it has none.
function M.log_verdict(e)
  if not e.log_path then return nil end
  local text = read_all(e.log_path, 4 << 20)
  if not text then return { verdict = "unreadable" } end
  return vzdump.log_verdict(text)
end

--- The name of the VM from its config ("name: web1" in qemu-server.conf).
function M.vm_name(config)
  if type(config) ~= "string" then return nil end
  for line in config:gmatch("[^\n]+") do
    if line:match("^%[") then break end -- a snapshot section: the current config is above
    local n = line:match("^name:%s*(%S+)")
    if n then return n end
  end
  return nil
end

--- "YYYY-MM-DD HH:MM:SS" of an archive's time: the header's ctime in local
--- time; without a header, the wall clock of its vzdump name.
function M.time_string(e)
  if e.ctime then return os.date("%Y-%m-%d %H:%M:%S", e.ctime) end
  if e.vz then return vzdump.time_string(e.vz) end
  if e.mtime then return os.date("%Y-%m-%d %H:%M:%S", e.mtime) end
  return "?"
end

--- The time to sort by: the header's ctime, else the name's, else mtime.
function M.sort_time(e)
  return e.ctime or (e.vz and e.vz.time) or e.mtime or 0
end

--- Group entries by VM: an array of { key = "qemu/100" or "other", vmid,
--- type, archives = { newest first } }, by type then vmid, "other" last.
function M.group(entries)
  local by, groups = {}, {}
  for _, e in ipairs(entries) do
    local key = e.vmid and ((e.type or "qemu") .. "/" .. e.vmid) or "other"
    local g = by[key]
    if not g then
      g = { key = key, vmid = e.vmid, type = e.type, archives = {} }
      by[key] = g
      groups[#groups + 1] = g
    end
    g.archives[#g.archives + 1] = e
  end
  for _, g in ipairs(groups) do
    table.sort(g.archives, function(a, b)
      local ta, tb = M.sort_time(a), M.sort_time(b)
      if ta ~= tb then return ta > tb end
      return a.rel > b.rel
    end)
  end
  table.sort(groups, function(a, b)
    if (a.vmid == nil) ~= (b.vmid == nil) then return a.vmid ~= nil end
    if a.vmid == nil then return false end
    if a.type ~= b.type then return (a.type or "") < (b.type or "") end
    if #a.vmid ~= #b.vmid then return #a.vmid < #b.vmid end
    return a.vmid < b.vmid
  end)
  return groups
end

-- ---- the inventory: what `vma store` shows ----------------------------------

local function median(list)
  if #list == 0 then return nil end
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  local m = (#t + 1) // 2
  if #t % 2 == 1 then return t[m] end
  return (t[m] + t[m + 1]) / 2
end
M.median = median

-- the facts of an archive from its header (no catalog)
local function from_header(e)
  local vma = require "vma"
  local r, err = vma.open(e.path, { cache = false })
  if not r then
    e.status, e.error = "broken", (tostring(err):gsub("\n", " "))
    return
  end
  e.header_md5, e.uuid, e.ctime, e.compression = r.header_md5, r.uuid, r.ctime, r.compression
  e.vm_name = M.vm_name(r:config("qemu-server.conf"))
  e.disks = {}
  local logical = 0
  for _, d in ipairs(r:devices()) do
    if not d.vmstate then
      e.disks[#e.disks + 1] = { name = d.name, size = d.size }
      logical = logical + d.size
    else
      e.vmstate = d.size
    end
  end
  e.logical_size = logical
  e.status = "ok"
  r:close()
end

-- the share of each disk rewritten since the backup before (both with
-- digests in the catalog): e.rewritten = { {name, share, changed_bytes,
-- size}... }, e.rewritten_share (of all its disks)
local function rewritten(cat, newer, older)
  local vma = require "vma"
  if not (newer.row and older.row and newer.row.digests == 1 and older.row.digests == 1) then
    return
  end
  local old_disks = {}
  for _, d in ipairs(cat:disks(older.row.id)) do old_disks[d.name] = d end
  local list, changed, total = {}, 0, 0
  for _, d in ipairs(cat:disks(newer.row.id)) do
    local o = old_disks[d.name]
    if d.vmstate == 0 and d.has_digests == 1 then
      local share, bytes
      if o and o.has_digests == 1 then
        local res = vma.diff_digests(cat:digests(newer.row.id, d.dev_id), d.size,
          cat:digests(older.row.id, o.dev_id), o.size, { max_ranges = 0 })
        bytes = res.changed_bytes
        share = res.length > 0 and res.changed_bytes / res.length or 0
      else
        bytes, share = d.size, 1 -- a new disk
      end
      list[#list + 1] = { name = d.name, share = share, changed_bytes = bytes, size = d.size }
      changed, total = changed + bytes, total + d.size
    end
  end
  newer.rewritten = list
  newer.rewritten_share = total > 0 and changed / total or 0
end

--- The inventory of the folders: every archive with what is known of it,
--- grouped by VM.  opts: db (one catalog file for all the folders; default
--- each folder's own, when it has one), vmid.  Returns groups as M.group
--- makes them, each archive an entry of M.scan with: status ("ok",
--- "incomplete", "broken"), error, header_md5, uuid, ctime, compression,
--- vm_name, disks = {{name, size, data_bytes, zero_bytes}}, logical_size,
--- data_bytes (catalogued), verified = {ok, time, message} (the catalog's
--- last), log = {verdict, message, warnings}, catalogued (true when the
--- catalog holds it with this identity), rewritten (see above); and per
--- group name (the VM's), count, size, logical_size, newest, oldest,
--- interval (median seconds between backups), gaps (pairs further apart
--- than 1.5 times that).  The second value: the catalogs used (paths), the
--- third: problems (folders not readable, catalogs not usable are errors:
--- nil, message).
function M.inventory(dirs, opts)
  opts = opts or {}
  local catalog = require "vma.catalog"
  local all, used, problems = {}, {}, {}
  local cats = {}
  local function catalog_of(dir)
    local path = opts.db or catalog.path_for(dir)
    if cats[path] ~= nil then return cats[path] end
    local vma = require "vma"
    if not vma.os.stat(path) then
      if opts.db then return nil, "no catalog at " .. path end
      cats[path] = false
      return false
    end
    local cat, err = catalog.open(path, { readonly = true })
    if not cat then return nil, err end
    cats[path] = cat
    used[#used + 1] = cat.path
    return cat
  end
  local ok, res = pcall(function()
    for _, dir in ipairs(dirs) do
      local entries, perr = M.scan(dir, { vmid = opts.vmid })
      if not entries then error(perr, 0) end
      for _, p in ipairs(perr) do problems[#problems + 1] = p end
      local cat, cerr = catalog_of(dir)
      if cat == nil then error(cerr, 0) end
      for _, e in ipairs(entries) do
        from_header(e)
        e.log = M.log_verdict(e)
        if cat then
          e.cat = cat
          local row = cat:archive(cat:key_of(e.path))
          if row and row.size == e.size and row.mtime == e.mtime and
             row.header_md5 == (e.header_md5 or "") then
            e.row, e.catalogued = row, true
            if row.status ~= "ok" then e.status = row.status end
            if row.error and e.status ~= "ok" then e.error = e.error or row.error end
            e.data_bytes, e.zero_bytes = row.data_bytes, row.zero_bytes
            local by = {}
            for _, d in ipairs(cat:disks(row.id)) do by[d.name] = d end
            for _, d in ipairs(e.disks or {}) do
              local cd = by[d.name]
              if cd then d.data_bytes, d.zero_bytes = cd.data_bytes, cd.zero_bytes end
            end
            e.files = row.files
          end
          local v = e.header_md5 and cat:verification { path = cat:key_of(e.path), size = e.size,
            mtime = e.mtime, header_md5 = e.header_md5 }
          if v then e.verified = { ok = v.ok == 1, time = v.time, message = v.message } end
        end
        all[#all + 1] = e
      end
    end
    local groups = M.group(all)
    for _, g in ipairs(groups) do
      g.count, g.size, g.logical_size = #g.archives, 0, 0
      for i, e in ipairs(g.archives) do
        g.size = g.size + e.size
        g.logical_size = g.logical_size + (e.logical_size or 0)
        g.name = g.name or e.vm_name
        local older = g.archives[i + 1]
        if older and e.cat and e.cat == older.cat then rewritten(e.cat, e, older) end
      end
      g.newest = g.archives[1] and M.sort_time(g.archives[1])
      g.oldest = g.archives[#g.archives] and M.sort_time(g.archives[#g.archives])
      local intervals = {}
      for i = 1, #g.archives - 1 do
        intervals[#intervals + 1] = M.sort_time(g.archives[i]) - M.sort_time(g.archives[i + 1])
      end
      g.interval = median(intervals)
      g.gaps = {}
      if g.interval and g.interval > 0 then
        for i = 1, #g.archives - 1 do
          local d = M.sort_time(g.archives[i]) - M.sort_time(g.archives[i + 1])
          if d > 1.5 * g.interval then
            g.gaps[#g.gaps + 1] = { newer = g.archives[i], older = g.archives[i + 1], seconds = d }
            g.archives[i].gap_before = d
          end
        end
      end
    end
    return groups
  end)
  for _, c in pairs(cats) do if c then c:close() end end
  for _, e in ipairs(all) do e.cat = nil end
  if not ok then return nil, res end
  return res, used, problems
end

return M
