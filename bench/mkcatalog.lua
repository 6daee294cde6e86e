-- bench/mkcatalog.lua DIR N FILES: a catalog of N backups of VM 100 with
-- FILES files each, as vma catalog --files records them, made through the
-- module vma.catalog (no archive is read): /usr/share/doc/pkg-P/file-F and
-- a few well-known paths; between two backups about 1% of the files change
-- (mtime, size, hash), /etc/app.conf every third backup.
--
--   LUA_CPATH="build/?.so;;" LUA_PATH="lua/?.lua;;" lua5.4 bench/mkcatalog.lua DIR 20 20000
local catalog = require "vma.catalog"
local vma = require "vma"

local dir, n, nfiles = arg[1], tonumber(arg[2]), tonumber(arg[3])
if not (dir and n and nfiles) then
  io.stderr:write("usage: mkcatalog.lua DIR N FILES\n")
  os.exit(2)
end

local cat = assert(catalog.open(dir, { create = true }))
local base = 1736470800
local files = {}
local fixed = { "/etc/app.conf", "/etc/hostname", "/etc/os-release", "/var/log/syslog" }
for i, p in ipairs(fixed) do
  files[i] = { path = p, type = "file", size = 100 + i, mode = 420, mtime = base - 86400,
               hash = vma.hash("sha256"):update(p):hex() }
end
for k = #fixed + 1, nfiles do
  local pkg, f = k // 20, k % 20
  files[k] = { path = string.format("/usr/share/doc/pkg-%d/file-%d", pkg, k), type = "file",
               size = 1000 + k % 5000, mode = 420, mtime = base - 86400 * 30,
               hash = vma.hash("sha256"):update(tostring(k)):hex() }
  _ = f
end
local seed = 1
local function rnd(m)
  seed = (seed * 1103515245 + 12345) & 0x7fffffff
  return seed % m + 1
end
local t0 = vma.os.clock()
for b = 1, n do
  local t = base + (b - 1) * 86400
  -- about 1% changed
  for _ = 1, math.max(1, nfiles // 100) do
    local k = rnd(nfiles)
    local f = files[k]
    files[k] = { path = f.path, type = f.type, size = f.size + 1, mode = f.mode, mtime = t - 600,
                 hash = vma.hash("sha256"):update(f.path .. b):hex() }
  end
  if b % 3 == 0 then
    files[1] = { path = "/etc/app.conf", type = "file", size = 100 + b, mode = 420, mtime = t - 60,
                 hash = vma.hash("sha256"):update("app" .. b):hex() }
  end
  local name = string.format("vzdump-qemu-100-%s.vma.zst", os.date("!%Y_%m_%d-%H_%M_%S", t))
  local list = {}
  for i, f in ipairs(files) do list[i] = f end
  cat:put { key = name, name = name, size = 1000000 + b, mtime = t, header_md5 = string.format("%032x", b),
    status = "ok", vmid = "100", type = "qemu", name_time = t, ctime = t, uuid = "x", compression = "zstd",
    devices = { { id = 1, name = "drive-scsi0", size = 1 << 30 } }, files = list }
end
cat:close()
io.stderr:write(string.format("mkcatalog: %d backups x %d files in %.1f s\n", n, nfiles, vma.os.clock() - t0))
