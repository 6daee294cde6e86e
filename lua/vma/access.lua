-- vma.access: what the random-access commands (serve, mount, convert, cat)
-- share: opening an archive's disks with a clear message, finding the helper
-- programs (our nbdkit plugin, vma-fuse), and starting, watching and
-- stopping child processes (nbdkit, qemu-img, vma-fuse).
local vma = require "vma"

local M = {}

--- Is prog (a name looked up in $PATH, or a path) an executable?
function M.which(prog)
  if prog:find("/", 1, true) then
    local st = vma.stat(prog)
    return st and st.type == "file" and (st.mode & 0x49) ~= 0 and prog or nil
  end
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local p = dir .. "/" .. prog
    local st = vma.stat(p)
    if st and st.type == "file" and (st.mode & 0x49) ~= 0 then return p end
  end
  return nil
end

-- the paths written by `make install` (absent in the source tree)
local function site()
  local ok, s = pcall(require, "vma.site")
  return ok and type(s) == "table" and s or {}
end

-- the build folder of the source tree this vma runs from, if it does
local function build_dir()
  local dir = rawget(_G, "VMA_LUA_DIR")
  if not dir then
    local p = package.searchpath("vma.access", package.path)
    dir = p and p:gsub("/vma/access%.lua$", "")
  end
  return dir and (dir .. "/../build") or nil
end

local function readable(p)
  local f = p and io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

--- The nbdkit plugin to load: $VMA_NBDKIT_PLUGIN, the one built in the
-- source tree, the installed one, or "vma" (nbdkit's plugin folder).
function M.nbdkit_plugin()
  local env = os.getenv("VMA_NBDKIT_PLUGIN")
  if env and env ~= "" then return env end
  local b = build_dir()
  if b and readable(b .. "/nbdkit-vma-plugin.so") then
    return vma.realpath(b .. "/nbdkit-vma-plugin.so") or (b .. "/nbdkit-vma-plugin.so")
  end
  local s = site().nbdkit_plugin
  if s and readable(s) then return s end
  return "vma"
end

--- The vma-fuse program: $VMA_FUSE, the source tree's, the installed one,
-- or vma-fuse in $PATH; nil when there is none.
function M.fuse_program()
  local env = os.getenv("VMA_FUSE")
  if env and env ~= "" then return env end
  local b = build_dir()
  if b and M.which(b .. "/vma-fuse") then return vma.realpath(b .. "/vma-fuse") end
  local s = site().fuse
  if s and M.which(s) then return s end
  for _, p in ipairs { "/usr/local/lib/vma/vma-fuse", "/usr/lib/vma/vma-fuse" } do
    if M.which(p) then return p end
  end
  return M.which("vma-fuse")
end

--- The disks of an archive (the vmstate is not one): a list of device
-- tables ({id, name, size}) in dev_id order.
function M.disks(r)
  local t = {}
  for _, d in ipairs(r:devices()) do
    if not d.vmstate then t[#t + 1] = d end
  end
  return t
end

--- The disk given by the user ("scsi0" or "drive-scsi0"), or the only one.
-- Returns the device, or nil, message, exit status (2: a usage error: no
-- name given and several disks).
function M.pick_disk(r, name)
  local disks = M.disks(r)
  local names = {}
  for _, d in ipairs(disks) do names[#names + 1] = d.name end
  if #disks == 0 then return nil, "the archive holds no disk", 1 end
  if not name then
    if #disks == 1 then return disks[1] end
    return nil, "the archive has " .. #disks .. " disks: say which with --disk ("
      .. table.concat(names, ", ") .. ")", 2
  end
  local d, err = require("vma.devices").match(disks, name, true)
  if d then return d end
  return nil, err, 1
end

--- Open an archive for random access: returns the archive object, or nil,
-- message.  o.cache (false: --no-cache), o.wait (ui.waiter).  A plain .vma
-- or a seekable .vma.zst is checked whole here (the index of every extent,
-- which a later nbdkit or vma-fuse finds in the cache); any other archive
-- has its header checked here, and is decoded by whoever reads it (in this
-- process with o.prepare, else in nbdkit's or vma-fuse's).
function M.open(path, o)
  o = o or {}
  local r, err = vma.open(path, { cache = o.cache, wait = o.wait })
  if not r then return nil, err end
  if r.random_error then
    err = r.random_error
    r:close()
    return nil, err
  end
  if r.seekable or o.prepare then
    local ok, perr = r:prepare()
    if not ok then
      r:close()
      return nil, perr
    end
  end
  return r
end

-- the mount table's escapes (\040 for a space ...)
local function unescape(s)
  return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end))
end

--- The type of what is mounted on the absolute path ("fuse.vma" for a vma
-- mount), or nil.
function M.mounted(path)
  local f = io.open("/proc/self/mounts", "r")
  if not f then return nil end
  local found
  for line in f:lines() do
    local dev, at, typ = line:match("^(%S+) (%S+) (%S+)")
    if dev and unescape(at) == path then found = typ end
  end
  f:close()
  return found
end

--- A size: 4096, 64K, 1M, 2G, 1T (K/M/G/T with or without iB: powers of
-- 1024); nil when the text is not one.
function M.parse_size(text)
  local n, unit = tostring(text):match("^(%d+)%s*(%a*)$")
  if not n then return nil end
  local u = unit:upper()
  if u ~= "B" then u = u:gsub("I?B$", "") end
  local mult = ({ [""] = 1, B = 1, K = 1 << 10, M = 1 << 20, G = 1 << 30, T = 1 << 40,
    P = 1 << 50 })[u]
  n = math.tointeger(tonumber(n))
  if not n or not mult or n > math.maxinteger // mult then return nil end
  return n * mult
end

--- A private temporary folder (mode 0700) under $TMPDIR or /tmp.
function M.tmpdir(what)
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  return vma.mkdtemp(base .. "/vma-" .. what .. ".XXXXXX")
end

--- Remove a temporary folder made by M.tmpdir and the files in it.
function M.rmtmp(dir, names)
  if not dir then return end
  for _, n in ipairs(names or {}) do os.remove(dir .. "/" .. n) end
  vma.rmdir(dir)
end

--- Wait for a child; with interruptible, stop waiting when a signal came
-- (vma.catch_signals). Returns "exit", code | "signal", signo | "interrupted".
function M.wait(pid, interruptible)
  while true do
    local how, code = vma.wait(pid, true)
    if how then return how, code end
    if how == nil then return "exit", 127 end -- not our child any more
    if interruptible and vma.interrupted() then return "interrupted" end
    vma.sleep(0.02)
  end
end

--- Stop a child: SIGTERM, then after `grace` seconds SIGKILL; reaps it.
function M.stop(pid, grace)
  if not pid then return end
  vma.kill(pid, "TERM")
  local deadline = os.time() + (grace or 5)
  while true do
    local how = vma.wait(pid, true)
    if how ~= false then return end
    if os.time() > deadline then
      vma.kill(pid, "KILL")
      vma.wait(pid)
      return
    end
    vma.sleep(0.02)
  end
end

--- How a child ended, in words.
function M.status_text(how, code)
  if how == "signal" then return "killed by signal " .. code end
  return "exit status " .. tostring(code)
end

--- Start nbdkit with our plugin, read-only, in the foreground (a child of
-- this process that ends with it), and wait until it listens.
-- o: archive (path), disk (default export), socket (a Unix socket path) or
-- port and listen (address), dir (a private folder for the pid file),
-- expect (the header's MD5 the caller read), cache (false: none).
-- Returns { pid =, pidfile = } or nil, message.
function M.start_nbdkit(o)
  if not M.which("nbdkit") then
    return nil, "nbdkit is not installed (Debian: apt-get install nbdkit)"
  end
  local pidfile = o.dir .. "/nbdkit.pid"
  local argv = { "nbdkit", "-f", "-r", "--exit-with-parent", "-P", pidfile }
  if o.socket then
    argv[#argv + 1] = "-U"
    argv[#argv + 1] = o.socket
  else
    argv[#argv + 1] = "-p"
    argv[#argv + 1] = tostring(o.port)
    argv[#argv + 1] = "-i"
    argv[#argv + 1] = o.listen or "127.0.0.1"
  end
  argv[#argv + 1] = M.nbdkit_plugin()
  argv[#argv + 1] = "archive=" .. (vma.realpath(o.archive) or o.archive)
  if o.disk then argv[#argv + 1] = "disk=" .. o.disk end
  -- the archive this process opened, and no other under its name
  if o.expect then argv[#argv + 1] = "expect=" .. o.expect end
  if o.cache == false then argv[#argv + 1] = "cache=off" end
  if os.getenv("VMA_NBDKIT_VERBOSE") then table.insert(argv, 2, "-v") end
  local pid, err = vma.spawn(argv, { stdin = "/dev/null", stdout = o.stdout })
  if not pid then return nil, err end
  while true do
    local f = io.open(pidfile, "r")
    local content = f and f:read("a")
    if f then f:close() end
    if content and content:match("%d+\n") then
      return { pid = pid, pidfile = pidfile }
    end
    local how, code = vma.wait(pid, true)
    if how then
      return nil, "nbdkit did not start (" .. M.status_text(how, code) .. ")"
    end
    if vma.interrupted() then
      M.stop(pid)
      return nil, "interrupted"
    end
    vma.sleep(0.02)
  end
end

-- percent-encoding of what a URI part may not hold as it is
local function pct(s, keep)
  return (s:gsub("[^%w%-%._~" .. (keep or "") .. "]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

--- An NBD URI for an export. With legacy, a Unix socket's URI is in the
-- form nbd:///EXPORT?socket=PATH, the only one libguestfs 1.48 takes
-- (nbd+unix:// is the standard form, which qemu and libnbd take).
function M.uri(export, socket, host, port, legacy)
  export = pct(export, "/:@!$'()*+,;=")
  if socket then
    return (legacy and "nbd:///" or "nbd+unix:///") .. export .. "?socket="
      .. pct(socket, "/:@!$'()*+,;")
  end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return string.format("nbd://%s:%d/%s", host, port, export)
end

return M
