-- vma.storefiles - the one place where the store reads a guest's files
-- (vma catalog --files, vma diff --files): the list of every file of every
-- file system of an archive, through the guest layer (r:guest(): the root
-- file system with its fstab applied; the file systems mounted nowhere
-- under their volume's name, "scsi1:1:/data/x", the form vma get accepts).
--
-- A file: { path, type ("file", "directory", "link", ...), size (files
-- only, else 0), mode (permission bits), mtime (seconds), hash (SHA-256
-- hex of the content, files up to hash_max bytes), target (links) }.

local vma = require "vma"

local M = {}

local CHUNK = 1 << 20

local function hash_file(fs, path)
  local f = fs:open(path)
  if not f then return nil end
  local h = vma.hash("sha256")
  while true do
    local s = f:read(CHUNK)
    if not s or #s == 0 then break end
    h:update(s)
  end
  f:close()
  return h:hex()
end

--- Is the guest layer there (r:guest)?
function M.available(r)
  local ok, fn = pcall(function() return r.guest end)
  return ok and type(fn) == "function"
end

--- Every file of an archive's guest: a list sorted by path, or nil and a
--- message ("interrupted" when vma.os.interrupted() stopped it).  opts.hash_max
--- (bytes, default vma.catalog.HASH_MAX; 0: no hash).  Entries that cannot
--- be read are left out and counted in the second value.
function M.list(r, opts)
  opts = opts or {}
  local hash_max = opts.hash_max or require("vma.catalog").HASH_MAX
  if not M.available(r) then
    return nil, "this vma cannot read guest file systems"
  end
  local g, err = r:guest()
  if not g then return nil, err end
  local out, unreadable = {}, 0
  local function add(path, st, fs, fspath)
    local rec = { path = path, type = st.type, size = st.type == "file" and st.size or 0,
                  mode = st.mode or 0, mtime = st.mtime or 0 }
    if st.type == "link" then rec.target = fs:readlink(fspath) end
    if st.type == "file" and hash_max > 0 and (st.size or 0) <= hash_max then
      rec.hash = hash_file(fs, fspath)
    end
    out[#out + 1] = rec
  end
  local ok, werr = pcall(function()
    local mounted = {}
    for _, m in ipairs(g.mounts or {}) do
      if m.vol then mounted[m.vol] = true end
    end
    if g.root then
      local it, ierr = g:walk("/")
      if not it then error(ierr, 0) end
      for rel, st, fs, fspath in it do
        if vma.os.interrupted() then error("interrupted", 0) end
        if st and type(fs) ~= "string" then add("/" .. rel, st, fs, fspath)
        else unreadable = unreadable + 1 end
      end
    end
    -- the file systems mounted nowhere in the guest's tree
    for _, vol in ipairs(g.vols or {}) do
      if not mounted[vol] and vol.usage == "filesystem" then
        local fs = g:fs_of(vol)
        if fs then
          local prefix = vol.name .. ":"
          for rel, st in fs:walk("/") do
            if vma.os.interrupted() then error("interrupted", 0) end
            if st then add(prefix .. "/" .. rel, st, fs, "/" .. rel)
            else unreadable = unreadable + 1 end
          end
        end
      end
    end
  end)
  g:close()
  if not ok then return nil, werr end
  table.sort(out, function(a, b) return a.path < b.path end)
  return out, unreadable
end

--- A lister for vma.catalog.update: function(r) -> list | nil, message.
function M.lister(opts)
  return function(r) return M.list(r, opts) end
end

return M
