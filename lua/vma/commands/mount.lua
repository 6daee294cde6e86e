-- vma mount ARCHIVE DIR: the disks and configs of an archive as files in DIR
-- (FUSE, read-only), through vma-fuse; with --files the guest's own files
-- (its root file system, /etc/fstab applied), through vma-fuse-files.
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local process = require "vma.process"
local files = require "vma.files"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma mount", ui.text [[
    Mount an archive read-only on the empty folder DIR: each disk is a file DIR/<device>.raw
    (drive-scsi0.raw), sparse (SEEK_DATA/SEEK_HOLE, du and cp --sparse see the holes), the RAM
    state DIR/vmstate.bin, and each config file is beside them. Returns once the mount is ready
    and keeps serving it in the background; 'vma umount DIR' (or fusermount3 -u DIR) ends it. With
    --files, DIR shows the guest's files instead, as the guest sees them (the root file system,
    each file system of /etc/fstab on its path), read in the process: modes, owners and times of
    the guest, links as links, sparse files sparse. When a file system is not read in-process
    (btrfs, LUKS, md RAID...), libguestfs serves the whole tree (its FUSE mount, the same process
    until unmounted).]])
  ui.archive_argument(p, "random")
  p:argument("dir", "an empty folder")
  p:flag("--files", "the guest's files, not its disks")
  p:flag("-f --foreground", "stay in the foreground until interrupted (then unmount)")
  p:option("-o --options", "mount options for FUSE (allow_other, ...)")
  files.options(p) -- --no-cache among them
  return p
end

-- libguestfs's engine, if its binding is installed
local function guestfs_engine()
  local e = require "vma.engines.guestfs"
  return e.binding() and e or nil
end

--- The arguments of vma-fuse-files for the guest of an archive: a list,
-- and the archive's header MD5, or nil, message; or "libguestfs" when
-- a file system of the guest is not read in-process and libguestfs is
-- installed (then libguestfs serves the whole tree).  Without libguestfs,
-- mounts that cannot be served in-process are left out with a warning.
local function files_plan(archive, a)
  if a.engine == "libguestfs" then return "libguestfs" end
  local o = {}
  for k, v in pairs(a) do o[k] = v end
  o.engine = "in-process"
  local r, g, unwait = files.open("mount", archive, o)
  if not r then return nil, g end
  unwait()
  local plan = {}
  -- a file system only libguestfs reads (btrfs, LUKS...): it serves all
  if not a.engine and guestfs_engine() then
    local unread = next(g.fs_errors) ~= nil
    for _, m in ipairs(g.mounts) do
      if not m.fs then unread = true end
    end
    if unread then
      g:close()
      r:close()
      return "libguestfs"
    end
  end
  local ok, err = g:_need_root()
  if not ok then
    g:close()
    r:close()
    return nil, err
  end
  for _, m in ipairs(g.mounts) do
    if not m.fs then
      io.stderr:write("vma mount: ", files.escape(m.path), " is left out: ", files.escape(m.error or "?"), "\n")
    elseif m.fs.engine ~= "in-process" then
      io.stderr:write("vma mount: ", files.escape(m.path), " is left out: its file system is read by ",
        tostring(m.fs.engine), " (see 'vma ls')\n")
    else
      local segs = {}
      for _, s in ipairs(m.vol:segments()) do segs[#segs + 1] = string.format("%d:%d:%d", s[1], s[2], s[3]) end
      plan[#plan + 1] = "--mount"
      plan[#plan + 1] = m.path
      plan[#plan + 1] = m.vol.fstype
      plan[#plan + 1] = table.concat(segs, ",")
    end
  end
  local md5 = r.header_md5
  g:close()
  r:close()
  return plan, md5
end

--- vma-fuse-files: $VMA_FUSE_FILES, or beside vma-fuse.
local function files_program()
  local env = os.getenv("VMA_FUSE_FILES")
  if env and env ~= "" then return env end
  local fuse = process.fuse_program()
  if fuse then
    local p = fuse:gsub("vma%-fuse$", "vma-fuse-files")
    if p ~= fuse and process.which(p) then return p end
  end
  local ok, s = pcall(require, "vma.site")
  if ok and type(s) == "table" and s.fuse_files and process.which(s.fuse_files) then return s.fuse_files end
  return process.which("vma-fuse-files")
end

-- the absolute path of dir; a mount whose FUSE process is gone cannot be
-- resolved itself ("Transport endpoint is not connected"): its folder is
local function absolute(dir)
  local p = vma.os.realpath(dir)
  if p then return p end
  local trimmed = dir:gsub("/+$", "")
  local parent, base = trimmed:match("^(.*)/([^/]+)$")
  if not parent then parent, base = ".", trimmed end
  local ap = vma.os.realpath(parent == "" and "/" or parent)
  return ap and ((ap == "/" and "" or ap) .. "/" .. base) or nil
end

local function check_dir(dir)
  -- a mount there already
  local abs = absolute(dir)
  local typ = abs and access.mounted(abs)
  if typ == "fuse.vma" or typ == "fuse.vma-files" then
    return nil, dir .. " is a vma mount already ('vma umount " .. dir .. "' ends it)"
  elseif typ then
    return nil, dir .. " is a mount point already (" .. typ .. ")"
  end
  local st = vma.os.stat(dir)
  if not st then return nil, dir .. " does not exist" end
  if st.type ~= "directory" then return nil, dir .. " is not a folder" end
  local ok, lfs = pcall(require, "lfs")
  if ok then
    for f in lfs.dir(dir) do
      if f ~= "." and f ~= ".." then return nil, dir .. " is not empty" end
    end
  end
  return true
end

-- the mount's name in the mount table: no commas, no white space
local function fsname(archive)
  local base = archive:match("([^/]*)$"):gsub("[%s,\\]", "_")
  return "vma:" .. base
end

--- Serve the guest's tree through libguestfs in this process until the
-- folder is unmounted (vma mount --files -f, or the process that vma
-- mount --files starts).  A signal ends the process; what it made is then
-- removed by a watcher (lua/vma/engines/guestfs.lua).
local function serve_guestfs(a)
  local o = {}
  for k, v in pairs(a) do o[k] = v end
  o.signals = false
  local r, g = files.open("mount", a.archive, o)
  if not r then return ui.fail("mount", g) end
  local e = require "vma.engines.guestfs"
  local ok, err = e.serve_guest(g, absolute(a.dir), { options = a.options,
    label = fsname(a.archive) })
  g:close()
  r:close()
  if not ok then return ui.fail("mount", err) end
  return 0
end

--- vma mount --files without -f, when libguestfs serves: the same command
-- with -f in a new session, in the background; returns once the folder is
-- mounted (or says why the server ended).
local function start_guestfs_server(a)
  local self = vma.os.realpath("/proc/self/exe")
  if not self or not process.which("setsid") then
    return ui.fail("mount", "cannot start the server (no /proc/self/exe or setsid): use -f")
  end
  local tmp, terr = access.tmpdir("mount")
  if not tmp then return ui.fail("mount", terr) end
  vma.os.catch_signals()
  local log, keyfile = tmp .. "/log", nil
  local argv = { "setsid", self, "mount", "--files", "-f" }
  local function add(...) for _, w in ipairs { ... } do argv[#argv + 1] = w end end
  if a.no_cache then add("--no-cache") end
  if a.root then add("--root", a.root) end
  if a.engine then add("--engine", a.engine) end
  if a.keyfile then add("--keyfile", vma.os.realpath(a.keyfile) or a.keyfile) end
  if a.key then
    -- never on a command line: in the private folder (0700) until the
    -- server has read it
    keyfile = tmp .. "/key"
    local f = io.open(keyfile, "wb")
    if not f or not f:write(a.key) or not f:close() then
      access.rmtmp(tmp, { "key" })
      return ui.fail("mount", "cannot write the key for the server in " .. tmp)
    end
    add("--keyfile", keyfile)
  end
  if a.options then add("-o", a.options) end
  add(vma.os.realpath(a.archive) or a.archive, absolute(a.dir))
  local pid, serr = vma.os.spawn(argv, { stdin = "/dev/null", stdout = log, stderr = log })
  if not pid then
    access.rmtmp(tmp, { "key", "log" })
    return ui.fail("mount", serr)
  end
  local tty = vma.os.isatty(2)
  if tty then io.stderr:write("vma mount: starting libguestfs (its appliance boots a small VM)...") end
  local abs = absolute(a.dir)
  local code
  while true do
    if access.mounted(abs) == "fuse.vma-files" then
      code = 0
      break
    end
    local how = vma.os.wait(pid, true)
    if how then
      if tty then io.stderr:write("\r\27[K") end
      local f = io.open(log, "r")
      local text = f and f:read("a") or ""
      if f then f:close() end
      io.stderr:write(text)
      if not text:find("vma mount: ", 1, true) then
        io.stderr:write("vma mount: the server ended before the mount was ready\n")
      end
      code = 1
      break
    end
    if vma.os.interrupted() then
      process.stop(pid)
      if tty then io.stderr:write("\r\27[K") end
      code = ui.fail("mount", "interrupted")
      break
    end
    vma.os.sleep(0.1)
  end
  if tty and code == 0 then io.stderr:write("\r\27[K") end
  access.rmtmp(tmp, { "key", "log" })
  return code
end

local function run(args)
  local a, st = ui.parse(parser(), args, "mount")
  if not a then return st end
  local ok, derr = check_dir(a.dir)
  if not ok then return ui.fail("mount", derr) end
  local prog, plan, expect
  if a.files then
    plan, expect = files_plan(a.archive, a)
    if not plan then return ui.fail("mount", expect) end
    if plan == "libguestfs" then
      if a.foreground then return serve_guestfs(a) end
      return start_guestfs_server(a)
    end
    prog = files_program()
    if not prog then return ui.fail("mount", "vma-fuse-files is not installed (make install)") end
  else
    prog = process.fuse_program()
    if not prog then return ui.fail("mount", "vma-fuse is not installed (make install)") end
    local r, err = access.open(a.archive, { cache = not a.no_cache })
    if not r then return ui.fail("mount", err) end
    expect = r.header_md5
    r:close()
  end

  local argv = { prog, "--label", "vma mount", "--expect", expect }
  for _, w in ipairs(plan or {}) do argv[#argv + 1] = w end
  if a.no_cache then argv[#argv + 1] = "--no-cache" end
  if a.foreground then argv[#argv + 1] = "-f" end
  if a.options then
    argv[#argv + 1] = "-o"
    argv[#argv + 1] = a.options
  end
  argv[#argv + 1] = a.archive
  argv[#argv + 1] = a.dir
  vma.os.catch_signals()
  local pid, serr = vma.os.spawn(argv)
  if not pid then return ui.fail("mount", serr) end
  -- without -f, vma-fuse's first process ends once the mount is ready
  local how, code = process.wait(pid, true)
  if how == "interrupted" then
    process.stop(pid)
    return a.foreground and 0 or ui.fail("mount", "interrupted")
  end
  if how == "exit" and code == 0 then return 0 end
  if how == "signal" and a.foreground and (code == 2 or code == 15) then return 0 end
  -- vma-fuse printed why
  return 1
end

return {
  description = "mount an archive's disks and configs as files (FUSE), read-only",
  usage = parser():get_help(),
  run = run,
}
