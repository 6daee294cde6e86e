-- Shared helpers for the busted specs: run the vma executable, temporary
-- folders, files, and small archives made with the module.
local vma = require "vma"

local H = {}

H.root = os.getenv("VMA_ROOT") or "."
H.bin = os.getenv("VMA_BIN") or (H.root .. "/build/vma")
H.fixtures = os.getenv("VMA_FIXTURES") or (H.root .. "/tests/fixtures")

function H.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Run a shell command; returns status, stdout, stderr.
function H.sh(cmd, stdin_path)
  local tmp = os.tmpname()
  local full = "( " .. cmd .. " ) 2>" .. H.q(tmp) .. " <" .. H.q(stdin_path or "/dev/null")
  local p = io.popen(full .. "; echo \"__rc=$?\"", "r")
  local out = p:read("a")
  p:close()
  local f = io.open(tmp, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  os.remove(tmp)
  local rc = tonumber(out:match("__rc=(%d+)\n?$"))
  out = out:gsub("__rc=%d+\n?$", "")
  return rc, out, err
end

--- Run build/vma with the given words.
function H.vma(...)
  local words = { H.q(H.bin) }
  for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
  return H.sh(table.concat(words, " "))
end

function H.tmpdir()
  local p = io.popen("mktemp -d /tmp/vma-test.XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

function H.rm(path) os.execute("rm -rf " .. H.q(path)) end

function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

function H.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

function H.exists(path)
  return vma.os.stat(path) ~= nil
end

function H.ls(dir)
  local rc, out = H.sh("ls -A " .. H.q(dir))
  if rc ~= 0 then return nil end
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  table.sort(t)
  return t
end

--- Deterministic pseudo-random bytes.
function H.bytes(n, seed)
  local t, x = {}, seed or 1
  for i = 1, n // 4 do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    t[i] = string.pack("<I4", x)
  end
  return table.concat(t) .. string.rep("\1", n % 4)
end

--- A file of n random bytes (fast, for big images).
function H.random_file(path, n)
  assert(os.execute("head -c " .. n .. " /dev/urandom > " .. H.q(path)))
end

--- An image: a list of {offset, data} written into a sparse file of size.
function H.image(path, size, pieces)
  local f = assert(io.open(path, "wb"))
  for _, p in ipairs(pieces or {}) do
    f:seek("set", p[1])
    f:write(p[2])
  end
  f:close()
  os.execute("truncate -s " .. size .. " " .. H.q(path))
end

--- The image padded with zeros to size (what a restore must give back).
function H.padded(data, size)
  return data .. string.rep("\0", size - #data)
end

return H
