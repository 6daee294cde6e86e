-- vma.catalog - the catalog of a backup store: one SQLite file (Debian's
-- libsqlite3, through vma.sqlite_open) holding what vma learnt of every
-- archive of a folder: its header, the allocation of each disk, with
-- --verify the result of a full read and a digest of every 64 KiB cluster,
-- with --files the file list of every guest file system.
--
--   local catalog = require "vma.catalog"
--   local cat = assert(catalog.open("/mnt/pve/dump"))      -- the folder or the file
--   for _, a in ipairs(cat:archives { vmid = "100" }) do print(a.name, a.time) end
--   for _, v in ipairs(cat:versions("100", "/etc/app.conf")) do ... end
--   cat:close()
--
-- The catalog lives in DIR/.vma-catalog.sqlite (or anywhere: --db PATH).
-- Archives are recorded by their path relative to the catalog's folder
-- (absolute when they lie outside it), so that a catalog on NFS or CIFS
-- reads the same from every machine that mounts the storage, wherever.  An
-- archive's identity is that path, its size, its mtime (whole seconds) and
-- the MD5 of its header: an archive whose identity is in the catalog is not
-- read again; any change of one of them reads it again; an archive that is
-- gone leaves the catalog.  See docs/commands.md "vma catalog".
--
-- Every archive is written in a transaction of its own: an interrupted run
-- leaves every archive it finished, and nothing of the one it was reading.
-- SQLite's locks let other vma processes read the catalog meanwhile (a
-- reader waits for a writer's commit, at most timeout_ms). The journal is
-- SQLite's rollback journal (not WAL, which network file systems cannot
-- share).

local vma = require "vma"
local store = require "vma.store"

local M = {}

M.NAME = ".vma-catalog.sqlite"
--- The schema this vma writes and reads; a catalog of a later schema is
--- refused (a newer vma wrote it).
M.SCHEMA = 1
M.APPLICATION = "vma catalog"
--- Files up to this size get a content hash (SHA-256) in --files.
M.HASH_MAX = 1 << 20

local SCHEMA_SQL = [[
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE archives(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  header_md5 TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT,
  vmid TEXT,
  type TEXT,
  name_time INTEGER,
  time INTEGER NOT NULL,
  uuid TEXT,
  ctime INTEGER,
  compression TEXT,
  vm_name TEXT,
  logical_size INTEGER,
  data_bytes INTEGER,
  zero_bytes INTEGER,
  missing_bytes INTEGER,
  archive_bytes INTEGER,
  digests INTEGER NOT NULL DEFAULT 0,
  files INTEGER,
  files_error TEXT,
  catalogued INTEGER NOT NULL
);
CREATE INDEX archives_vmid ON archives(vmid, time);
CREATE TABLE disks(
  archive_id INTEGER NOT NULL,
  dev_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  vmstate INTEGER NOT NULL,
  clusters INTEGER NOT NULL,
  data_bytes INTEGER NOT NULL,
  zero_bytes INTEGER NOT NULL,
  missing_bytes INTEGER NOT NULL,
  zero_clusters INTEGER NOT NULL,
  digests BLOB,
  PRIMARY KEY(archive_id, dev_id)
) WITHOUT ROWID;
CREATE TABLE configs(
  archive_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY(archive_id, name)
) WITHOUT ROWID;
CREATE TABLE verifications(
  path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  header_md5 TEXT NOT NULL,
  time INTEGER NOT NULL,
  ok INTEGER NOT NULL,
  message TEXT,
  seconds REAL
);
CREATE INDEX verifications_id ON verifications(path, size, mtime, header_md5, time);
CREATE TABLE paths(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL
);
CREATE INDEX paths_name ON paths(name);
CREATE TABLE versions(
  id INTEGER PRIMARY KEY,
  path_id INTEGER NOT NULL,
  type TEXT NOT NULL,
  size INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  hash TEXT NOT NULL,
  target TEXT NOT NULL,
  UNIQUE(path_id, type, size, mode, mtime, hash, target)
);
CREATE TABLE files(
  archive_id INTEGER NOT NULL,
  version_id INTEGER NOT NULL,
  PRIMARY KEY(archive_id, version_id)
) WITHOUT ROWID;
CREATE INDEX files_version ON files(version_id, archive_id);
]]

local Catalog = {}
Catalog.__index = Catalog

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

local function is_dir(path)
  local st = vma.os.stat(path)
  return st and st.type == "directory"
end

--- The catalog file of a folder or a path: DIR/.vma-catalog.sqlite for a
--- folder, the path itself otherwise.
function M.path_for(p)
  if is_dir(p) then return store.join(p, M.NAME) end
  return p
end

-- the message of an SQLite failure on the catalog at path
local function sql_failure(path, msg, code)
  if code == "notadb" then
    return string.format("%s is not a vma catalog (not an SQLite database)", path)
  elseif code == "corrupt" then
    return string.format("the catalog %s is damaged (%s): remove it and run 'vma catalog' "
      .. "again to rebuild it", path, msg)
  elseif code == "busy" then
    return string.format("the catalog %s is locked by another process (%s)", path, msg)
  end
  return string.format("catalog %s: %s", path, tostring(msg))
end

-- a statement, prepared once per catalog
function Catalog:stmt(sql)
  local st = self.cache[sql]
  if st then return st end
  local s, err, _, code = self.db:prepare(sql)
  if not s then error(sql_failure(self.path, err, code), 0) end
  self.cache[sql] = s
  return s
end

function Catalog:run(sql, ...)
  local n, err, _, code = self:stmt(sql):run(...)
  if not n then error(sql_failure(self.path, err, code), 0) end
  return n
end

function Catalog:first(sql, ...)
  local row, err, _, code = self:stmt(sql):first(...)
  if row == nil and err then error(sql_failure(self.path, err, code), 0) end
  return row
end

function Catalog:rows(sql, ...)
  local out = {}
  for row in self:stmt(sql):rows(...) do out[#out + 1] = row end
  return out
end

function Catalog:exec(sql)
  local ok, err, _, code = self.db:exec(sql)
  if not ok then error(sql_failure(self.path, err, code), 0) end
  return true
end

-- check what the file holds: our application, a schema we read
local function check_schema(db, path)
  local st, err, _, code = db:prepare("SELECT value FROM meta WHERE key = ?")
  if not st then
    if code == "other" and tostring(err):match("no such table") then
      return nil, string.format("%s is not a vma catalog (an SQLite database without vma's "
        .. "tables)", path), "foreign"
    end
    return nil, sql_failure(path, err, code), code == "notadb" and "foreign" or "damaged"
  end
  local app, aerr, _, acode = st:first("application")
  if aerr then st:close() return nil, sql_failure(path, aerr, acode) end
  local schema = st:first("schema")
  st:close()
  if not app or app.value ~= M.APPLICATION or not schema then
    return nil, string.format("%s is not a vma catalog (an SQLite database without vma's "
      .. "marks)", path), "foreign"
  end
  local n = math.tointeger(tonumber(schema.value))
  if not n then return nil, string.format("%s is not a vma catalog (schema '%s')", path,
    tostring(schema.value)) end
  if n > M.SCHEMA then
    return nil, string.format("the catalog %s was written by a newer vma (schema %d; this "
      .. "vma reads schema %d): use that vma, or remove the file and run 'vma catalog' to "
      .. "rebuild it", path, n, M.SCHEMA), "newer"
  end
  if n < 1 then return nil, string.format("%s is not a vma catalog (schema %d)", path, n) end
  return n
end

-- a new catalog: made under a temporary name and renamed into place (never
-- over an existing file)
local function create(path)
  local tmp = string.format("%s.tmp-%d-%d", path, vma.os.getpid(), math.random(1, 1 << 30))
  local db, err = vma.sqlite_open(tmp, { create = true })
  if not db then
    os.remove(tmp)
    return nil, string.format("cannot create the catalog %s: %s", path, tostring(err))
  end
  local sql = "BEGIN;" .. SCHEMA_SQL
    .. string.format("INSERT INTO meta VALUES('application', '%s');", M.APPLICATION)
    .. string.format("INSERT INTO meta VALUES('schema', '%d');", M.SCHEMA)
    .. string.format("INSERT INTO meta VALUES('created', '%d');", os.time())
    .. string.format("INSERT INTO meta VALUES('created_by', 'vma %s');", vma.version)
    .. "COMMIT;"
  local ok, eerr, _, ecode = db:exec(sql)
  db:close()
  if not ok then
    os.remove(tmp)
    return nil, sql_failure(path, eerr, ecode)
  end
  local rok, rerr = vma.os.rename(tmp, path)
  os.remove(tmp)
  if not rok and not vma.os.stat(path) then
    return nil, string.format("cannot create the catalog %s: %s", path, tostring(rerr))
  end
  -- a rename that lost a race: the other process's catalog is used
  return true
end

--- Open a catalog: p is its folder (DIR/.vma-catalog.sqlite) or its file.
--- opts: create (make it when missing), readonly, timeout_ms (how long to
--- wait for another process's lock, default 30000).  Returns the catalog or
--- nil, a message and its kind: "missing", "foreign" (not a vma catalog),
--- "damaged", "newer" (written by a newer vma).
function M.open(p, opts)
  opts = opts or {}
  local path = M.path_for(p)
  local st = vma.os.stat(path)
  if not st then
    if not opts.create then
      return nil, string.format("no catalog at %s (make one with 'vma catalog %s')", path,
        dirname(path) == "." and "." or dirname(path)), "missing"
    end
    local ok, err = create(path)
    if not ok then return nil, err end
  elseif st.type ~= "file" then
    return nil, string.format("%s is not a file", path)
  end
  local db, err, _, code = vma.sqlite_open(path, { readonly = opts.readonly,
    timeout_ms = opts.timeout_ms })
  if not db then return nil, sql_failure(path, err, code), "damaged" end
  local schema, serr, skind = check_schema(db, path)
  if not schema then
    db:close()
    return nil, serr, skind
  end
  local real = vma.os.realpath(path) or path
  local self = setmetatable({ db = db, path = path, dir = dirname(real), schema = schema,
    cache = {}, readonly = opts.readonly and true or false }, Catalog)
  return self
end

function Catalog:close()
  if not self.db then return end
  for _, s in pairs(self.cache) do s:close() end
  self.cache = {}
  self.db:close()
  self.db = nil
end
Catalog.__close = Catalog.close
Catalog.__gc = Catalog.close

-- ---- paths --------------------------------------------------------------------

--- The path an archive is recorded by: relative to the catalog's folder
--- when it lies under it, else absolute.
function Catalog:key_of(archive_path)
  local real = vma.os.realpath(archive_path) or archive_path
  local dir = self.dir == "/" and "" or self.dir
  if real:sub(1, #dir + 1) == dir .. "/" then return real:sub(#dir + 2) end
  return real
end

--- The path to open a recorded archive by.
function Catalog:file_of(key)
  if key:sub(1, 1) == "/" then return key end
  return store.join(self.dir, key)
end

-- ---- queries ----------------------------------------------------------------

local ARCHIVE_ORDER = " ORDER BY time DESC, path DESC"

--- Every archive recorded (opts.vmid: of one VM; opts.under: whose path
--- starts with this folder key), newest first: rows of the archives table
--- (path, name, size, mtime, header_md5, status, error, vmid, type, time,
--- uuid, ctime, compression, vm_name, logical_size, data_bytes,
--- zero_bytes, missing_bytes, digests, files, files_error, catalogued).
function Catalog:archives(opts)
  opts = opts or {}
  local list
  if opts.vmid then
    list = self:rows("SELECT * FROM archives WHERE vmid = ?" .. ARCHIVE_ORDER, tostring(opts.vmid))
  else
    list = self:rows("SELECT * FROM archives" .. ARCHIVE_ORDER)
  end
  if opts.under and opts.under ~= "" then
    local keep = {}
    local prefix = opts.under:gsub("/+$", "") .. "/"
    for _, a in ipairs(list) do
      if a.path:sub(1, #prefix) == prefix then keep[#keep + 1] = a end
    end
    list = keep
  end
  return list
end

--- One archive by its recorded path, or nil.
function Catalog:archive(key)
  return self:first("SELECT * FROM archives WHERE path = ?", key)
end

--- The disks of an archive (by id), in dev_id order, without digests.
function Catalog:disks(archive_id)
  return self:rows("SELECT dev_id, name, size, vmstate, clusters, data_bytes, zero_bytes, "
    .. "missing_bytes, zero_clusters, digests IS NOT NULL AS has_digests FROM disks "
    .. "WHERE archive_id = ? ORDER BY dev_id", archive_id)
end

--- The cluster digests of a disk (8 bytes a cluster), or nil.
function Catalog:digests(archive_id, dev_id)
  local row = self:first("SELECT digests, clusters FROM disks WHERE archive_id = ? AND dev_id = ?",
    archive_id, dev_id)
  if not row or not row.digests then return nil end
  local raw, err = vma.zstd_decompress(row.digests, row.clusters * vma.DIGEST_SIZE)
  if not raw then
    error(string.format("the catalog %s is damaged (digests of archive %d: %s): remove it and "
      .. "run 'vma catalog' again", self.path, archive_id, err), 0)
  end
  return raw
end

--- The configs of an archive: { name = data }.
function Catalog:configs(archive_id)
  local out = {}
  for _, c in ipairs(self:rows("SELECT name, data FROM configs WHERE archive_id = ?", archive_id)) do
    out[c.name] = c.data
  end
  return out
end

--- The last verification of an archive (a row of the archives table, or
--- {path, size, mtime, header_md5}): { time, ok, message, seconds } or nil.
function Catalog:verification(a)
  return self:first("SELECT time, ok, message, seconds FROM verifications WHERE path = ? AND "
    .. "size = ? AND mtime = ? AND header_md5 = ? ORDER BY time DESC LIMIT 1",
    a.path, a.size, a.mtime, a.header_md5)
end

--- Record the result of a full read of an archive (vma verify, vma catalog
--- --verify): id = {path (as recorded), size, mtime, header_md5}.
function Catalog:record_verification(id, ok, message, seconds)
  self:run("INSERT INTO verifications(path, size, mtime, header_md5, time, ok, message, seconds) "
    .. "VALUES(?, ?, ?, ?, ?, ?, ?, ?)", id.path, id.size, id.mtime, id.header_md5, os.time(),
    ok and 1 or 0, message, seconds)
end

-- a glob pattern: one with a "/" is matched against the whole path, one
-- without against the file's name.  The joins go from the paths that match
-- (CROSS JOIN keeps SQLite to that order: the few paths that match, then
-- their versions and the backups holding them, never every file of every
-- backup of a VM)
local function glob_column(pattern)
  if pattern:find("/", 1, true) then return "p.path" end
  return "p.name"
end

local FIND_SQL = [[
SELECT p.path AS path, v.id AS version, v.type AS type, v.size AS size, v.mode AS mode,
       v.mtime AS mtime, v.hash AS hash, v.target AS target, a.vmid AS vmid,
       max(a.time) AS newest, group_concat(a.id) AS ids
FROM paths p CROSS JOIN versions v ON v.path_id = p.id CROSS JOIN files f ON f.version_id = v.id
     CROSS JOIN archives a ON a.id = f.archive_id
WHERE %s GLOB ?%s
GROUP BY a.vmid, v.id
ORDER BY newest DESC, p.path]]

--- The files whose guest path (a pattern with a "/") or name (without)
--- matches a glob (*, ?, [...]; SQLite's GLOB: case-sensitive, * also
--- matches "/"), newest backup first.  opts.vmid: of one VM.  Returns a list
--- of matches, one per VM, path and version (the same content in several
--- backups is one match): { path, vmid, type, size, mode, mtime, hash,
--- target, backups = { {file, archive (its recorded path), time}, ...
--- newest first } }, ordered by their newest backup (newest first), then
--- path.
function Catalog:find(pattern, opts)
  opts = opts or {}
  local sql = string.format(FIND_SQL, glob_column(pattern), opts.vmid and " AND a.vmid = ?" or "")
  local archives = {}
  for _, a in ipairs(self:rows("SELECT id, name, path, time FROM archives")) do
    archives[a.id] = { file = a.name, archive = a.path, time = a.time, archive_id = a.id }
  end
  local function newer(x, y)
    if x.time ~= y.time then return x.time > y.time end
    return x.archive > y.archive
  end
  local matches = {}
  local st = self:stmt(sql)
  local iter = opts.vmid and st:rows(pattern, tostring(opts.vmid)) or st:rows(pattern)
  for row in iter do
    local backups = {}
    for id in row.ids:gmatch("%d+") do backups[#backups + 1] = archives[math.tointeger(tonumber(id))] end
    table.sort(backups, newer)
    matches[#matches + 1] = { path = row.path, vmid = row.vmid, type = row.type, size = row.size,
      mode = row.mode, mtime = row.mtime, hash = row.hash ~= "" and row.hash or nil,
      target = row.target ~= "" and row.target or nil, version_id = row.version,
      backups = backups }
  end
  return matches
end

--- The history of one guest path in the backups of a VM: the backups whose
--- files were listed, oldest first, each with the version of the path it
--- holds (nil: absent), and the versions.  Returns
---   { backups = { {archive_id, file, archive, time, version = v or nil,
---                  changed = true when it differs from the backup before} },
---     versions = { v = {number (1 = newest), type, size, mode, mtime, hash,
---                  target, first, last (times), backups = count} } (newest first) }
function Catalog:versions(vmid, path)
  local listed = self:rows("SELECT id, path, name, time FROM archives WHERE vmid = ? AND "
    .. "files IS NOT NULL ORDER BY time, path", tostring(vmid))
  local rows = self:rows([[
SELECT f.archive_id AS archive_id, v.id AS id, v.type AS type, v.size AS size, v.mode AS mode,
       v.mtime AS mtime, v.hash AS hash, v.target AS target
FROM paths p JOIN versions v ON v.path_id = p.id JOIN files f ON f.version_id = v.id
WHERE p.path = ?]], path)
  local in_archive = {}
  for _, r in ipairs(rows) do in_archive[r.archive_id] = r end
  local backups, versions, by_id = {}, {}, {}
  local prev = false
  for _, a in ipairs(listed) do
    local r = in_archive[a.id]
    local v
    if r then
      v = by_id[r.id]
      if not v then
        v = { id = r.id, type = r.type, size = r.size, mode = r.mode, mtime = r.mtime,
              hash = r.hash ~= "" and r.hash or nil, target = r.target ~= "" and r.target or nil,
              first = a.time, backups = 0 }
        by_id[r.id] = v
        versions[#versions + 1] = v
      end
      v.last = a.time
      v.backups = v.backups + 1
    end
    local vid = v and v.id or nil
    backups[#backups + 1] = { archive_id = a.id, file = a.name, archive = a.path, time = a.time,
      version = v, changed = prev ~= false and prev ~= vid or (prev == false and vid ~= nil) }
    prev = vid
  end
  table.sort(versions, function(x, y) return x.last > y.last end)
  for i, v in ipairs(versions) do v.number = i end
  return { backups = backups, versions = versions }
end

--- The files of an archive (by id): a list of { path, type, size, mode,
--- mtime, hash, target } in path order.
function Catalog:files(archive_id)
  local out = {}
  for row in self:stmt([[
SELECT p.path AS path, v.type AS type, v.size AS size, v.mode AS mode, v.mtime AS mtime,
       v.hash AS hash, v.target AS target
FROM files f JOIN versions v ON v.id = f.version_id JOIN paths p ON p.id = v.path_id
WHERE f.archive_id = ? ORDER BY p.path]]):rows(archive_id) do
    if row.hash == "" then row.hash = nil end
    if row.target == "" then row.target = nil end
    out[#out + 1] = row
  end
  return out
end

-- ---- writing --------------------------------------------------------------------

-- one write transaction; fn's error rolls it back and is raised again
function Catalog:transaction(fn)
  self:exec("BEGIN IMMEDIATE")
  local ok, err = pcall(fn)
  if not ok then
    pcall(self.db.exec, self.db, "ROLLBACK")
    error(err, 0)
  end
  self:exec("COMMIT")
end

local function delete_archive_rows(self, id)
  self:run("DELETE FROM files WHERE archive_id = ?", id)
  self:run("DELETE FROM disks WHERE archive_id = ?", id)
  self:run("DELETE FROM configs WHERE archive_id = ?", id)
  self:run("DELETE FROM archives WHERE id = ?", id)
end

--- Remove the record of an archive (by its recorded path).
function Catalog:remove(key)
  local a = self:archive(key)
  if not a then return false end
  self:transaction(function() delete_archive_rows(self, a.id) end)
  return true
end

--- Drop the versions and paths no archive holds any longer.
function Catalog:collect_garbage()
  self:transaction(function()
    self:run("DELETE FROM versions WHERE NOT EXISTS (SELECT 1 FROM files WHERE version_id = "
      .. "versions.id)")
    self:run("DELETE FROM paths WHERE NOT EXISTS (SELECT 1 FROM versions WHERE path_id = "
      .. "paths.id)")
  end)
end

local function path_id(self, path)
  local ids = self.path_ids
  local id = ids[path]
  if id then return id end
  local row = self:first("SELECT id FROM paths WHERE path = ?", path)
  if row then
    id = row.id
  else
    local name = path:match("([^/]*)$")
    if name == "" then name = path end
    self:run("INSERT INTO paths(path, name) VALUES(?, ?)", path, name)
    id = self.db:last_id()
  end
  ids[path] = id
  return id
end

local function version_id(self, pid, f)
  local hash, target = f.hash or "", f.target or ""
  local row = self:first("SELECT id FROM versions WHERE path_id = ? AND type = ? AND size = ? "
    .. "AND mode = ? AND mtime = ? AND hash = ? AND target = ?", pid, f.type, f.size or 0,
    f.mode or 0, f.mtime or 0, hash, target)
  if row then return row.id end
  self:run("INSERT INTO versions(path_id, type, size, mode, mtime, hash, target) "
    .. "VALUES(?, ?, ?, ?, ?, ?, ?)", pid, f.type, f.size or 0, f.mode or 0, f.mtime or 0, hash,
    target)
  return self.db:last_id()
end

--- Record an archive (replacing what was recorded at its path), in one
--- transaction.  info: { key, name, size, mtime, header_md5, status, error,
--- vmid, type, name_time, uuid, ctime, compression, vm_name, configs =
--- {{name, data}}, survey = r:survey() result or nil, digests (the survey
--- holds them), files = list or nil, files_error }.
function Catalog:put(info)
  self.path_ids = self.path_ids or {}
  local ok, err = pcall(self.transaction, self, function()
    local old = self:archive(info.key)
    if old then delete_archive_rows(self, old.id) end
    local s = info.survey
    local logical, data, zero, missing = nil, nil, nil, nil
    if s then
      logical, data, zero, missing = 0, 0, 0, 0
      for _, d in ipairs(s.devices) do
        if not d.vmstate then
          logical = logical + d.size
          data, zero, missing = data + d.data_bytes, zero + d.zero_bytes, missing + d.missing_bytes
        end
      end
    end
    local time = info.ctime or info.name_time or info.mtime
    self:run([[INSERT INTO archives(path, name, size, mtime, header_md5, status, error, vmid,
      type, name_time, time, uuid, ctime, compression, vm_name, logical_size, data_bytes,
      zero_bytes, missing_bytes, archive_bytes, digests, files, files_error, catalogued)
      VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
      info.key, info.name, info.size, info.mtime, info.header_md5 or "", info.status, info.error,
      info.vmid, info.type, info.name_time, time, info.uuid, info.ctime, info.compression,
      info.vm_name, logical, data, zero, missing, s and s.bytes_archive or nil,
      (s and info.digests) and 1 or 0, info.files and #info.files or nil, info.files_error,
      os.time())
    local id = self.db:last_id()
    for _, c in ipairs(info.configs or {}) do
      self:run("INSERT OR REPLACE INTO configs(archive_id, name, data) VALUES(?, ?, ?)", id,
        c.name, vma.sqlite_blob(c.data))
    end
    for _, d in ipairs(s and s.devices or info.devices or {}) do
      local blob = d.digests and vma.sqlite_blob(vma.zstd_compress(d.digests)) or nil
      self:run([[INSERT INTO disks(archive_id, dev_id, name, size, vmstate, clusters, data_bytes,
        zero_bytes, missing_bytes, zero_clusters, digests) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
        id, d.id, d.name, d.size, d.vmstate and 1 or 0, d.clusters or 0, d.data_bytes or 0,
        d.zero_bytes or 0, d.missing_bytes or 0, d.zero_clusters or 0, blob)
    end
    for _, f in ipairs(info.files or {}) do
      local vid = version_id(self, path_id(self, f.path), f)
      self:run("INSERT OR IGNORE INTO files(archive_id, version_id) VALUES(?, ?)", id, vid)
    end
    if info.verified then
      self:record_verification({ path = info.key, size = info.size, mtime = info.mtime,
        header_md5 = info.header_md5 or "" }, info.verified.ok, info.verified.message,
        info.verified.seconds)
    end
    info.id = id
  end)
  -- ids of paths inserted by a transaction rolled back are not valid
  if not ok then self.path_ids = {} error(err, 0) end
  return info.id
end

-- ---- cataloguing a folder ---------------------------------------------------------

local function readable_error(err)
  return (tostring(err):gsub("\n+$", ""):gsub("\n", " "))
end

--- What a catalog records of one archive, read from it (nothing written):
--- entry as vma.store.scan gives it; opts: verify (read it whole: digests,
--- verification), files (the guest's file list: a function(r) returning
--- a list or nil, message), progress (r:survey's), cache_dir.  Returns info
--- for Catalog:put, and when the reading was interrupted nil, "interrupted".
function M.read_archive(entry, opts)
  opts = opts or {}
  local info = { name = entry.name, size = entry.size, mtime = entry.mtime,
                 vmid = entry.vmid, type = entry.type, name_time = entry.vz and entry.vz.time,
                 compression = entry.compression }
  local r, err, kind = vma.open(entry.path, { cache = false })
  if not r then
    if kind == "interrupted" then return nil, "interrupted" end
    info.status, info.error = "broken", readable_error(err)
    return info
  end
  info.header_md5 = r.header_md5
  info.uuid, info.ctime, info.compression = r.uuid, r.ctime, r.compression
  info.configs = {}
  for _, c in ipairs(r:configs()) do info.configs[#info.configs + 1] = { name = c.name, data = c.data } end
  info.vm_name = store.vm_name(r:config("qemu-server.conf"))
  info.devices = {}
  for _, d in ipairs(r:devices()) do
    info.devices[#info.devices + 1] = { id = d.id, name = d.name, size = d.size,
      vmstate = d.vmstate }
  end
  local t0 = vma.os.clock()
  local s, serr, skind = r:survey { digests = opts.verify, progress = opts.progress }
  if not s then
    r:close()
    if skind == "interrupted" or skind == "callback" then return nil, "interrupted" end
    info.status, info.error = "broken", readable_error(serr)
    if opts.verify then info.verified = { ok = false, message = info.error,
      seconds = vma.os.clock() - t0 } end
    return info
  end
  info.survey, info.digests = s, opts.verify
  info.status = "ok"
  local missing = 0
  for _, d in ipairs(s.devices) do missing = missing + d.missing_bytes end
  if missing > 0 then
    info.status = "incomplete"
    info.error = string.format("%d bytes of disks missing", missing)
  end
  if opts.verify then
    info.verified = { ok = missing == 0, message = missing > 0 and info.error or nil,
                      seconds = vma.os.clock() - t0 }
  end
  if opts.files then
    local list, ferr = opts.files(r)
    if list then info.files = list
    elseif ferr == "interrupted" then r:close() return nil, "interrupted"
    else info.files_error = readable_error(ferr) end
  end
  r:close()
  return info
end

--- Does the record of an archive hold what this run asks (else it is read
--- again)?  row: the catalog's, entry: the folder's, md5: its header's.
function M.up_to_date(row, entry, md5, opts)
  if not row then return false end
  if row.size ~= entry.size or row.mtime ~= entry.mtime then return false end
  if row.header_md5 ~= (md5 or "") then return false end
  if row.status == "broken" then return true end -- read once; a change reads it again
  if opts.verify and row.digests ~= 1 then return false end
  if opts.files and row.files == nil and row.files_error == nil then return false end
  return true
end

-- the entries of a list shared among n workers: the largest first, each to
-- the worker with the fewest bytes so far
local function shares(list, n)
  local sorted = {}
  for i, e in ipairs(list) do sorted[i] = e end
  table.sort(sorted, function(a, b)
    if a.size ~= b.size then return a.size > b.size end
    return a.rel < b.rel
  end)
  local out, load = {}, {}
  for i = 1, n do out[i], load[i] = {}, 0 end
  for _, e in ipairs(sorted) do
    local best = 1
    for i = 2, n do if load[i] < load[best] then best = i end end
    out[best][#out[best] + 1] = e
    load[best] = load[best] + e.size
  end
  for i = 1, n do table.sort(out[i], function(a, b) return a.rel < b.rel end) end
  return out
end

-- read the entries and record each (one transaction each); on_event(kind,
-- entry, info) after each; progress(done, total) in bytes of archives.
-- Returns the counts, or raises the catalog's errors.
local function read_entries(cat, list, opts, counts)
  local total, done = 0, 0
  for _, e in ipairs(list) do total = total + e.size end
  for _, e in ipairs(list) do
    if vma.os.interrupted() then counts.interrupted = true break end
    local base = done
    local function survey_progress(st)
      if opts.progress and st.clusters_total > 0 then
        opts.progress(base + e.size * st.clusters_done // st.clusters_total, total)
      end
    end
    local t0 = vma.os.clock()
    local info, err = M.read_archive(e, { verify = opts.verify, files = opts.files,
      progress = opts.progress and survey_progress or nil })
    if not info then
      counts.interrupted = true
      break
    end
    info.key = e.key
    local pok, perr = pcall(cat.put, cat, info)
    if not pok then
      -- a signal while waiting for another process's lock
      if vma.os.interrupted() then counts.interrupted = true break end
      error(perr, 0)
    end
    counts.read = counts.read + 1
    if info.status == "broken" then counts.broken = counts.broken + 1 end
    if info.status == "incomplete" then counts.incomplete = counts.incomplete + 1 end
    if info.files_error then counts.files_failed = counts.files_failed + 1 end
    done = done + e.size
    if opts.progress then opts.progress(done, total) end
    if opts.on_event then opts.on_event("read", e, info, vma.os.clock() - t0) end
  end
  return counts
end

local function new_counts()
  return { found = 0, read = 0, unchanged = 0, removed = 0, broken = 0, incomplete = 0,
           files_failed = 0, interrupted = false }
end

--- Bring the catalog of a folder up to date: every archive under dir not
--- recorded with the same identity (or without what opts ask: verify,
--- files) is read and recorded, each in a transaction of its own; the
--- records of archives no longer there are removed.  opts: db (the
--- catalog's file or folder; default dir), verify, files (a function(r)
--- listing a guest's files: vma.storefiles.lister), jobs (worker
--- processes, default 1), max (read at most this many archives), progress
--- (done, total bytes), on_event(kind, entry, info, seconds) with kind
--- "read", "unchanged" or "removed" (entry = {key =} then).  Returns the
--- counts { db, found, read, unchanged, removed, broken, incomplete,
--- files_failed, interrupted, problems = {folders that could not be read} },
--- or nil and a message.
function M.update(dir, opts)
  opts = opts or {}
  local cat, err = M.open(opts.db or dir, { create = true, timeout_ms = opts.timeout_ms })
  if not cat then return nil, err end
  local counts = new_counts()
  counts.db = cat.path
  local ok, res = pcall(function()
    local entries, problems = store.scan(dir)
    if not entries then error(problems, 0) end
    counts.problems = problems
    counts.found = #entries
    local real = vma.os.realpath(dir) or dir
    local under = real == cat.dir and "" or cat:key_of(dir)
    local present, todo = {}, {}
    for _, e in ipairs(entries) do
      e.key = cat:key_of(e.path)
      present[e.key] = true
      local row = cat:archive(e.key)
      local md5 = row and row.size == e.size and row.mtime == e.mtime and M.header_md5(e.path)
      if M.up_to_date(row, e, md5 or nil, opts) then
        counts.unchanged = counts.unchanged + 1
        if opts.on_event then opts.on_event("unchanged", e, row) end
      else
        todo[#todo + 1] = e
      end
    end
    -- the records of archives that are gone (under this folder only)
    local prefix = under == "" and "" or (under:gsub("/+$", "") .. "/")
    for _, a in ipairs(cat:archives()) do
      local mine = (prefix == "" and a.path:sub(1, 1) ~= "/") or
                   (prefix ~= "" and a.path:sub(1, #prefix) == prefix)
      if mine and not present[a.path] then
        cat:remove(a.path)
        counts.removed = counts.removed + 1
        if opts.on_event then opts.on_event("removed", { key = a.path, name = a.name }) end
      end
    end
    if opts.max and #todo > opts.max then
      for i = #todo, opts.max + 1, -1 do todo[i] = nil end
    end
    local jobs = math.max(1, math.min(opts.jobs or 1, #todo))
    if jobs == 1 then
      read_entries(cat, todo, opts, counts)
    else
      cat:close()
      local pids = {}
      for i, share in ipairs(shares(todo, jobs)) do
        local pid, ferr = vma.os.fork()
        if not pid then error(ferr, 0) end
        if pid == 0 then
          -- a worker: its own connection, its share, quietly
          local status = 0
          local wok, werr = pcall(function()
            local wcat = assert(M.open(cat.path, { timeout_ms = opts.timeout_ms or 600000 }))
            local c = read_entries(wcat, share, { verify = opts.verify, files = opts.files,
              on_event = opts.on_event }, new_counts())
            wcat:close()
            if c.interrupted then status = 130 end
          end)
          if not wok then
            io.stderr:write("vma catalog: ", tostring(werr), "\n")
            status = 1
          end
          os.exit(status, false)
        end
        pids[i] = pid
      end
      local failed = false
      local total_bytes = 0
      for _, e in ipairs(todo) do total_bytes = total_bytes + e.size end
      local left = #pids
      local alive = {}
      for _, p in ipairs(pids) do alive[p] = true end
      while left > 0 do
        for p in pairs(alive) do
          local how, code = vma.os.wait(p, true)
          if how then
            alive[p] = nil
            left = left - 1
            if how ~= "exit" or code ~= 0 then
              failed = true
              if code == 130 or how == "signal" then counts.interrupted = true end
            end
          end
        end
        if left > 0 then
          if opts.progress then
            local pcat = M.open(cat.path, { readonly = true, timeout_ms = 200 })
            if pcat then
              local okq, n = pcall(function()
                local d = 0
                for _, e in ipairs(todo) do
                  local row = pcat:archive(e.key)
                  if row and row.size == e.size and row.mtime == e.mtime then d = d + e.size end
                end
                return d
              end)
              pcat:close()
              if okq then opts.progress(n, total_bytes) end
            end
          end
          vma.os.sleep(0.2)
        end
      end
      cat = assert(M.open(cat.path, { timeout_ms = opts.timeout_ms }))
      for _, e in ipairs(todo) do
        local row = cat:archive(e.key)
        if row and row.size == e.size and row.mtime == e.mtime and
           row.catalogued and M.up_to_date(row, e, row.header_md5, opts) then
          counts.read = counts.read + 1
          if row.status == "broken" then counts.broken = counts.broken + 1 end
          if row.status == "incomplete" then counts.incomplete = counts.incomplete + 1 end
          if row.files_error then counts.files_failed = counts.files_failed + 1 end
        end
      end
      if failed and not counts.interrupted then error("a worker failed", 0) end
    end
    if not counts.interrupted then cat:collect_garbage() end
  end)
  cat:close()
  if not ok then return nil, res end
  return counts
end

--- Record the result of `vma verify PATH` in the catalog of the store that
--- holds it: the .vma-catalog.sqlite of its folder or of a folder above.
--- Returns true when recorded, false when there is no catalog, nil and a
--- message when there is one that cannot take it.
function M.record_file_verification(path, md5, ok, message, seconds)
  local real = vma.os.realpath(path)
  local st = real and vma.os.stat(real)
  if not st or st.type ~= "file" then return false end
  -- the archive's folder and up to three above it (a store's subfolders),
  -- never the root of the file system
  local dir = dirname(real)
  local found
  for _ = 1, 4 do
    if dir == "/" or dir == "." then break end
    local c = store.join(dir, M.NAME)
    if vma.os.stat(c) then found = c break end
    dir = dirname(dir)
  end
  if not found then return false end
  local cat, err, kind = M.open(found, { timeout_ms = 10000 })
  if not cat then
    -- a file of that name that is not a vma catalog is not ours to touch
    if kind == "foreign" then return false end
    return nil, err
  end
  local rok, rerr = pcall(cat.record_verification, cat, { path = cat:key_of(real), size = st.size,
    mtime = st.mtime, header_md5 = md5 or "" }, ok, message and readable_error(message), seconds)
  cat:close()
  if not rok then return nil, rerr end
  return true
end

--- The header MD5 of an archive file (its identity's last part), or nil.
function M.header_md5(path)
  local r = vma.open(path, { cache = false })
  if not r then return nil end
  local md5 = r.header_md5
  r:close()
  return md5
end

return M
