-- vma.ceph: Ceph RBD images named in QEMU's rbd: syntax, as Proxmox writes
-- them into restore maps and drive lines:
--
--   rbd:POOL/IMAGE[@SNAP][:conf=FILE][:id=NAME][:keyring=FILE][:KEY=VALUE]...
--   rbd:POOL/NAMESPACE/IMAGE...
--
-- The options come in any order. conf is the Ceph config file (default
-- $CEPH_CONF or /etc/ceph/ceph.conf), id the Ceph user (client.ID, default
-- admin); every other KEY=VALUE is a Ceph option (keyring, mon_host,
-- rados_osd_op_timeout...), as QEMU passes them to rados_conf_set. A
-- backslash escapes the next character (Proxmox writes mon_host=1.2.3.4\:6789).
--
-- The work is done by the C module vma.rbd (librbd); this file parses and
-- formats the names, shares one connection per cluster, and words the
-- messages.
local M = {}

M.REMOVE_SECONDS = 20  -- how long a failed restore tries to remove an image it created

function M.is_spec(s)
  return type(s) == "string" and s:sub(1, 4) == "rbd:"
end

-- the pieces of s between unescaped separators (any char of seps), still escaped
local function split(s, seps)
  local out, start, i = {}, 1, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" then
      i = i + 2
    elseif seps:find(c, 1, true) then
      out[#out + 1] = s:sub(start, i - 1)
      start = i + 1
      i = i + 1
    else
      i = i + 1
    end
  end
  out[#out + 1] = s:sub(start)
  return out
end

local function unescape(s) return (s:gsub("\\(.)", "%1")) end

-- text with the characters that separate the parts of a spec escaped
local function escape(s, chars) return (s:gsub("[\\" .. chars .. "]", "\\%0")) end

-- the options after the name: conf, id and Ceph options, into t
local function parse_options(t, toks, first, spec)
  local seen = {}
  for i = first, #toks do
    local tok = toks[i]
    local kv = split(tok, "=")
    local k = unescape(kv[1])
    if tok == "" or #kv < 2 or k == "" then
      return nil, string.format("bad option '%s' in %s (expected KEY=VALUE)", unescape(tok), spec)
    end
    if not k:match("^[%w_%-%.]+$") then
      return nil, string.format("bad option name '%s' in %s", k, spec)
    end
    local v = unescape(tok:sub(#kv[1] + 2))
    if seen[k] then return nil, string.format("option '%s' given twice in %s", k, spec) end
    seen[k] = true
    if k == "conf" then
      t.conf = v
    elseif k == "id" or k == "user" then
      t.id = v
    else
      t.options[#t.options + 1] = { k, v }
    end
  end
  return t
end

--- Parse "rbd:POOL/[NS/]IMAGE[@SNAP][:KEY=VALUE]...". Returns
-- { pool =, namespace = (or nil), image =, snap = (or nil), conf =, id =,
--   options = { {key, value}... }, spec = } or nil and a message.
function M.parse(spec)
  if not M.is_spec(spec) then return nil, "not an RBD image (rbd:POOL/IMAGE): " .. tostring(spec) end
  local toks = split(spec:sub(5), ":")
  local name = split(toks[1], "@")
  if #name > 2 then return nil, "more than one '@' in " .. spec end
  local parts = split(name[1], "/")
  local bad = string.format("bad RBD image name in %s (expected rbd:POOL/IMAGE or "
    .. "rbd:POOL/NAMESPACE/IMAGE)", spec)
  if #parts < 2 or #parts > 3 then return nil, bad end
  for i, p in ipairs(parts) do
    parts[i] = unescape(p)
    if parts[i] == "" then return nil, bad end
  end
  local t = { pool = parts[1], namespace = #parts == 3 and parts[2] or nil, image = parts[#parts],
              options = {}, spec = spec }
  if name[2] then
    t.snap = unescape(name[2])
    if t.snap == "" then return nil, "empty snapshot name in " .. spec end
  end
  return parse_options(t, toks, 2, spec)
end

--- Parse the ARG of the target "rbd:POOL[/NAMESPACE][:KEY=VALUE]...":
-- { pool =, namespace =, conf =, id =, options = } or nil, message.
function M.parse_pool(arg)
  local spec = "rbd:" .. tostring(arg)
  local toks = split(tostring(arg or ""), ":")
  local parts = split(toks[1], "/")
  if toks[1] == "" or #parts > 2 then
    return nil, "the rbd target needs a pool: rbd:POOL[/NAMESPACE][:conf=FILE][:id=NAME]"
      .. "[:keyring=FILE]"
  end
  for i, p in ipairs(parts) do
    parts[i] = unescape(p)
    if parts[i] == "" then return nil, "bad pool name in the target " .. spec end
  end
  local t = { pool = parts[1], namespace = parts[2], options = {}, spec = spec }
  return parse_options(t, toks, 2, spec)
end

--- The spec of image NAME in the pool of T (a parse_pool or parse result),
-- with T's options.
function M.format(t, image, snap)
  local out = { "rbd:", escape(t.pool, ":/@"), "/" }
  if t.namespace then out[#out + 1] = escape(t.namespace, ":/@") .. "/" end
  out[#out + 1] = escape(image or t.image, ":/@")
  if snap then out[#out + 1] = "@" .. escape(snap, ":@") end
  if t.conf then out[#out + 1] = ":conf=" .. escape(t.conf, ":") end
  if t.id then out[#out + 1] = ":id=" .. escape(t.id, ":") end
  for _, kv in ipairs(t.options) do out[#out + 1] = ":" .. kv[1] .. "=" .. escape(kv[2], ":") end
  return table.concat(out)
end

--- "POOL/[NS/]IMAGE[@SNAP]": how messages name it (and `rbd` takes it)
function M.name(t)
  local n = t.pool .. "/" .. (t.namespace and (t.namespace .. "/") or "") .. t.image
  return t.snap and (n .. "@" .. t.snap) or n
end

-- ---- the C module and the connections -------------------------------------

local mod, mod_err
function M.module()
  if mod then return mod end
  if mod_err then return nil, mod_err end
  local ok, m = pcall(require, "vma.rbd")
  if ok then
    mod = m
    return mod
  end
  mod_err = "RBD images need the Ceph module of vma (vma/rbd.so, built by `make` when "
    .. "librbd-dev is installed), which cannot be loaded: " .. tostring(m):match("^[^\n]*")
  return nil, mod_err
end

--- The client timeout in seconds: $VMA_RBD_TIMEOUT, else nil (the config's,
-- or 30 where the config sets none). Raises on a bad value.
function M.env_timeout()
  local v = os.getenv("VMA_RBD_TIMEOUT")
  if v == nil or v == "" then return nil end
  local n = tonumber(v)
  if not n or n <= 0 or n > 3600 then
    error("VMA_RBD_TIMEOUT must be a number of seconds (1..3600), not '" .. v .. "'", 0)
  end
  return n
end

local conns = {}

local function key_of(t)
  local k = { t.conf or "", t.id or "" }
  for _, kv in ipairs(t.options) do k[#k + 1] = kv[1] .. "=" .. kv[2] end
  return table.concat(k, "\0")
end

--- The connection for T (one per conf, id and options, kept for the run),
-- or nil and a message.
function M.connect(t)
  local key = key_of(t)
  if conns[key] then return conns[key] end
  local rbd, err = M.module()
  if not rbd then return nil, err end
  local ok, timeout = pcall(M.env_timeout)
  if not ok then return nil, timeout end
  local c, cerr = rbd.connect { conf = t.conf, id = t.id, options = t.options,
                                timeout = timeout and tostring(timeout) or nil }
  if not c then return nil, cerr end
  conns[key] = c
  return c
end

--- Drop every connection (they close once their images are closed).
function M.disconnect()
  for k, c in pairs(conns) do
    c:close()
    conns[k] = nil
  end
end

-- the connection and the ns argument for T, or nil, message
local function conn(t)
  local c, err = M.connect(t)
  if not c then return nil, err end
  return c, t.namespace or ""
end

-- a function of T (and more arguments) that first connects: f(c, ns, t, ...)
-- gets the connection and namespace, or the caller nil and a message
local function connected(f)
  return function(t, ...)
    local c, ns = conn(t)
    if not c then return nil, ns end
    return f(c, ns, t, ...)
  end
end

--- The size of the image (or snapshot) of T: size, or nil, message, code
-- ("ENOENT" for no such image or snapshot, "ENOPOOL" for no such pool).
M.size = connected(function(c, ns, t) return c:stat(t.pool, ns, t.image, t.snap) end)

function M.exists(t)
  local size, err, code = M.size(t)
  if size then return true end
  if code == "ENOENT" then return false end
  return nil, err
end

--- The images of the pool of T: a set name -> true, or nil, message.
M.list = connected(function(c, ns, t)
  local names, err = c:list(t.pool, ns)
  if not names then return nil, err end
  local set = {}
  for _, n in ipairs(names) do set[n] = true end
  return set
end)

--- How many clients have the image of T open (watch its header).
M.watchers = connected(function(c, ns, t) return c:watchers(t.pool, ns, t.image) end)

--- Whether the pool of T is full (the monitor's osd dump): true/false, or
-- nil and a message.
M.pool_full = connected(function(c, _, t) return c:pool_full(t.pool) end)

--- A new image of T at SIZE bytes; refused at once when the pool is full
-- (a create on a full pool would block for the client timeout).
M.create = connected(function(c, ns, t, size)
  if c:pool_full(t.pool) == true then
    return nil, string.format("cannot create the RBD image %s: pool %s is full", M.name(t), t.pool)
  end
  return c:create(t.pool, ns, t.image, size)
end)

--- Remove the image of T, retrying for up to SECONDS (default 20) while it
-- is busy or Ceph does not answer, so that an OSD that comes back meanwhile
-- lets it go (a try itself may last the client timeout). true, or nil and a
-- message.
M.remove = connected(function(c, ns, t, seconds)
  -- removing writes to the pool: on a full one it would block for nothing
  if c:pool_full(t.pool) == true then
    return nil, "pool " .. t.pool .. " is full: cannot remove " .. M.name(t) .. " now"
  end
  local ok, err = c:remove(t.pool, ns, t.image, seconds or M.REMOVE_SECONDS)
  if ok then return true end
  return nil, err
end)

--- A sink writing into the image of T (vma.sink for extract's targets).
M.sink = connected(function(c, ns, t) return c:sink(t.pool, ns, t.image) end)

--- A source reading the image (or snapshot) of T (vma.source for w:write_device).
M.source = connected(function(c, ns, t) return c:source(t.pool, ns, t.image, t.snap) end)

return M
