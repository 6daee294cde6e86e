-- last-backup-with.lua DIR PATH [DEST]: which of the backups in DIR last
-- held the guest file PATH (/etc/nginx/nginx.conf, C:/Users/bob/report.xlsx)
-- and, with DEST, copy it from there.  Nothing is restored or mounted: each
-- archive's guest is read in the process (r:guest()).
--
--   LUA_CPATH='build/?.so;;' LUA_PATH='lua/?.lua;;' \
--     lua5.4 examples/last-backup-with.lua /mnt/pve/dump /etc/nginx/nginx.conf /tmp/restore
--
-- (after `make install`, plain `lua5.4`).  The archives are taken newest
-- first (by their creation time); for each, the file's size and
-- modification time are printed, and the first that has it is the answer.
-- An archive that cannot be read (not seekable, damaged) is said and
-- passed over.  Exit status: 0 found (and copied), 1 not found, 2 usage.

local vma = require "vma"

local dir, want, dest = arg[1], arg[2], arg[3]
if not dir or not want then
  io.stderr:write("usage: last-backup-with.lua DIR PATH [DEST]\n")
  os.exit(2)
end

-- the archives of DIR, newest first
local list = {}
for name in require("lfs").dir(dir) do
  if name:match("%.vma$") or name:match("%.vma%.zst$") then
    local path = dir .. "/" .. name
    local r = vma.open(path)
    if r then
      list[#list + 1] = { path = path, ctime = r.ctime }
      r:close()
    end
  end
end
table.sort(list, function(a, b) return a.ctime > b.ctime end)

for _, b in ipairs(list) do
  local r <close> = assert(vma.open(b.path))
  local g, err = r:guest()
  if not g then
    io.stderr:write(b.path, ": ", err, "\n")
  else
    local obj, path = g:locate(want)
    local st = obj and obj:stat(path, true)
    print(string.format("%s  %s  %s", os.date("!%Y-%m-%d %H:%M", b.ctime), b.path,
      st and string.format("%d bytes, modified %s", st.size, os.date("!%Y-%m-%d %H:%M", st.mtime))
      or "absent"))
    if st and st.type == "file" then
      if dest then
        -- the file writer: a temporary folder in DEST, renamed into place
        local w <close> = assert(vma.file_writer(dest))
        local f <close> = assert(obj:open(path))
        local name = path:match("([^/]+)$")
        assert(w:file(name, f, st))
        assert(w:commit())
        print("copied to " .. dest .. "/" .. name)
      end
      g:close()
      os.exit(0)
    end
    g:close()
  end
end
print("no backup in " .. dir .. " holds " .. want)
os.exit(1)
