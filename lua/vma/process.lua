-- vma.process: the programs vma runs (lvcreate, zfs, nbdkit, qemu-img,
-- vma-fuse, fusermount) and how: looked up in $PATH, run to their end with
-- their output captured, or started in the background, watched and
-- stopped. Always an argument list through vma.os.spawn (posix_spawn), never
-- a shell, so that no name an archive supplies is ever parsed by one.
local vma = require "vma"

local M = {}

--- Is prog (a name looked up in $PATH, or a path) an executable? Its path,
-- or nil.
function M.which(prog)
  local function exe(p)
    local st = vma.os.stat(p)
    return st and st.type == "file" and (st.mode & 0x49) ~= 0
  end
  if prog:find("/", 1, true) then return exe(prog) and prog or nil end
  for dir in (os.getenv("PATH") or "/usr/bin:/bin"):gmatch("[^:]+") do
    local p = dir .. "/" .. prog
    if exe(p) then return p end
  end
  return nil
end

--- The command line of an argument list, each word quoted as /bin/sh would
-- need it: for messages and dry runs, never run.
function M.command_line(argv)
  local words = {}
  for i, a in ipairs(argv) do words[i] = "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
  return table.concat(words, " ")
end

--- How a child ended, in words.
function M.status_text(how, code)
  if how == "signal" then return "killed by signal " .. code end
  return "exit status " .. tostring(code)
end

--- Run argv to its end (standard input /dev/null); returns true and what it
-- wrote on standard output, or nil and a message holding its own error
-- output.
function M.run(argv)
  local how, code, out, err = vma.os.spawn(argv, { capture = true })
  if not how then return nil, code end
  if how == "exit" and code == 0 then return true, out end
  local msg = err:gsub("^%s+", ""):gsub("%s+$", ""):gsub("\n%s*", "; ")
  return nil, string.format("%s failed (%s %s)%s", argv[1], how, tostring(code),
    msg ~= "" and (": " .. msg) or "")
end

--- Wait for a child; with interruptible, stop waiting when a signal came
-- (vma.os.catch_signals). Returns "exit", code | "signal", signo | "interrupted".
function M.wait(pid, interruptible)
  while true do
    local how, code = vma.os.wait(pid, true)
    if how then return how, code end
    if how == nil then return "exit", 127 end -- not our child any more
    if interruptible and vma.os.interrupted() then return "interrupted" end
    vma.os.sleep(0.02)
  end
end

--- Stop a child: SIGTERM, then after `grace` seconds SIGKILL; reaps it.
function M.stop(pid, grace)
  if not pid then return end
  vma.os.kill(pid, "TERM")
  local deadline = os.time() + (grace or 5)
  while true do
    local how = vma.os.wait(pid, true)
    if how ~= false then return end
    if os.time() > deadline then
      vma.os.kill(pid, "KILL")
      vma.os.wait(pid)
      return
    end
    vma.os.sleep(0.02)
  end
end

--- Wait up to secs for path to exist (a device node that udev makes).
function M.wait_for(path, secs)
  for _ = 1, math.floor((secs or 10) * 10) do
    if vma.os.stat(path) then return true end
    vma.os.sleep(0.1)
  end
  return vma.os.stat(path) ~= nil
end

-- ---- vma's own helper programs ----

-- the paths written by `make install` (absent in the source tree)
local function site()
  local ok, s = pcall(require, "vma.site")
  return ok and type(s) == "table" and s or {}
end

-- the build folder of the source tree this vma runs from, if it does
local function build_dir()
  local dir = rawget(_G, "VMA_LUA_DIR")
  if not dir then
    local p = package.searchpath("vma.process", package.path)
    dir = p and p:gsub("/vma/process%.lua$", "")
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
    return vma.os.realpath(b .. "/nbdkit-vma-plugin.so") or (b .. "/nbdkit-vma-plugin.so")
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
  if b and M.which(b .. "/vma-fuse") then return vma.os.realpath(b .. "/vma-fuse") end
  local s = site().fuse
  if s and M.which(s) then return s end
  for _, p in ipairs { "/usr/local/lib/vma/vma-fuse", "/usr/lib/vma/vma-fuse" } do
    if M.which(p) then return p end
  end
  return M.which("vma-fuse")
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
  argv[#argv + 1] = "archive=" .. (vma.os.realpath(o.archive) or o.archive)
  if o.disk then argv[#argv + 1] = "disk=" .. o.disk end
  -- the archive this process opened, and no other under its name
  if o.expect then argv[#argv + 1] = "expect=" .. o.expect end
  if o.cache == false then argv[#argv + 1] = "cache=off" end
  if os.getenv("VMA_NBDKIT_VERBOSE") then table.insert(argv, 2, "-v") end
  local pid, err = vma.os.spawn(argv, { stdin = "/dev/null", stdout = o.stdout })
  if not pid then return nil, err end
  while true do
    local f = io.open(pidfile, "r")
    local content = f and f:read("a")
    if f then f:close() end
    if content and content:match("%d+\n") then
      return { pid = pid, pidfile = pidfile }
    end
    local how, code = vma.os.wait(pid, true)
    if how then
      return nil, "nbdkit did not start (" .. M.status_text(how, code) .. ")"
    end
    if vma.os.interrupted() then
      M.stop(pid)
      return nil, "interrupted"
    end
    vma.os.sleep(0.02)
  end
end

return M
