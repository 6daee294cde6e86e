-- vma.sys: running the programs of the system (lvcreate, zfs, nbdkit, ...)
-- from the bundled scripts: argument lists, never a shell string built from
-- names an archive supplied.
local M = {}

--- The last part of a path ("/a/b/" -> "b").
function M.basename(path)
  return (path:gsub("/+$", ""):match("([^/]+)$")) or path
end

--- A word quoted for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The command line of an argument list, quoted.
function M.command_line(argv)
  local words = {}
  for i, a in ipairs(argv) do words[i] = M.quote(a) end
  return table.concat(words, " ")
end

--- Run argv; returns true, its output, or nil and a message holding the
-- program's own error output.
function M.run(argv)
  local err = os.tmpname()
  local p = io.popen(M.command_line(argv) .. " 2>" .. M.quote(err) .. " </dev/null", "r")
  local out = p:read("a")
  local ok, how, code = p:close()
  local f = io.open(err, "r")
  local msg = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  if ok then return true, out end
  msg = msg:gsub("^%s+", ""):gsub("%s+$", ""):gsub("\n%s*", "; ")
  return nil, string.format("%s failed (%s %s)%s", argv[1], how, tostring(code),
    msg ~= "" and (": " .. msg) or "")
end

--- True when a program of that name is on PATH.
function M.has(name)
  return os.execute("command -v " .. M.quote(name) .. " >/dev/null 2>&1") == true
end

--- Wait up to secs for path to exist (a device node that udev makes).
function M.wait_for(path, secs)
  local vma = require "vma"
  for _ = 1, math.floor((secs or 10) * 10) do
    if vma.stat(path) then return true end
    os.execute("sleep 0.1")
  end
  return vma.stat(path) ~= nil
end

return M
