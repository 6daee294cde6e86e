-- vma serve ARCHIVE: the disks of an archive over NBD, read-only, through
-- nbdkit and our plugin, until interrupted.
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local process = require "vma.process"
local argparse = require "argparse"

local DEFAULT_PORT = 10809

local function parser()
  local p = argparse("vma serve", ui.text [[
    Serve the disks of an archive over NBD, read-only, one export per disk named by its device
    name (drive-scsi0), with block status so that nbdcopy and qemu-img skip the holes. Listens on
    a Unix socket in a private temporary folder unless told otherwise, prints the NBD URIs once it
    is ready and runs until interrupted (Ctrl-C, SIGTERM).]])
  ui.archive_argument(p, "random")
  p:option("--socket", "listen on this Unix socket (a new path)")
  p:option("--port", "listen on this TCP port (on 127.0.0.1 unless --listen says otherwise)")
  p:option("--listen", "the address to listen on with --port (0.0.0.0: every interface)")
  p:option("--disk", "the default export, and the only URI printed (scsi0 or drive-scsi0)")
  p:flag("--json", "print the URIs as a JSON object")
  ui.no_cache_flag(p)
  return p
end

-- the address clients use for a server that listens on every interface:
-- this host's first IPv4 address, else its first global IPv6 one, else its
-- name
local function reachable_host(listen)
  local list = vma.os.addresses() or {}
  for _, fam in ipairs { "inet", "inet6" } do
    if fam == "inet" or listen ~= "0.0.0.0" then
      for _, a in ipairs(list) do
        if a.family == fam and not a.address:match("^fe80:") and not a.address:find("%", 1, true) then
          return a.address
        end
      end
    end
  end
  local f = io.open("/proc/sys/kernel/hostname", "r")
  local name = f and f:read("l")
  if f then f:close() end
  return name and name ~= "" and name or "127.0.0.1"
end

local function every_interface(listen)
  return listen == "0.0.0.0" or listen == "::" or listen == "[::]" or listen == ""
end

-- the URIs are printed; runs until nbdkit ends or a signal comes: the exit
-- status, or raises an error (the caller cleans up)
local function serve(a, nb, shown, socket, port, listen)
  local host = port and (every_interface(listen) and reachable_host(listen) or listen)
  local exports, uris, legacy = ui.array(), ui.array(), ui.array()
  for _, d in ipairs(shown) do
    local uri = access.uri(d.name, socket, host, port)
    local old = access.uri(d.name, socket, host, port, true)
    exports[#exports + 1] = { name = d.name, size = d.size, uri = uri, legacy_uri = old }
    uris[#uris + 1] = uri
    legacy[#legacy + 1] = old
  end
  if a.json then
    ui.out(ui.json({ archive = a.archive, socket = socket or ui.null, port = port or ui.null,
      address = port and listen or ui.null, host = host or ui.null, pid = nb.pid,
      exports = exports, uris = uris, legacy_uris = legacy },
      { "archive", "uris", "legacy_uris", "exports" }), "\n")
  else
    local w = 0
    for _, e in ipairs(exports) do w = math.max(w, #e.name) end
    for _, e in ipairs(exports) do
      -- padded by hand: string.format takes no width above 99
      local line = e.name .. string.rep(" ", w - #e.name) .. "  " .. e.uri
      if e.legacy_uri ~= e.uri then line = line .. "  " .. e.legacy_uri end
      ui.out(line, "\n")
    end
  end
  if vma.os.isatty(2) then
    io.stderr:write("vma serve: serving " .. a.archive .. " read-only; Ctrl-C stops\n")
  end
  local how, code = process.wait(nb.pid, true)
  if how ~= "interrupted" then
    nb.ended = true
    error("nbdkit ended (" .. process.status_text(how, code) .. ")", 0)
  end
  return 0
end

local function run(args)
  local a, st = ui.parse(parser(), args, "serve")
  if not a then return st end
  if a.socket and (a.port or a.listen) then return ui.usage("serve", "--socket and --port/--listen exclude each other") end
  local port
  if a.port or a.listen then
    port = math.tointeger(tonumber(a.port or DEFAULT_PORT))
    if not port or port < 1 or port > 65535 then return ui.usage("serve", "--port must be a number from 1 to 65535") end
  end
  local listen = a.listen or "127.0.0.1"

  local r, err = access.open(a.archive, { cache = not a.no_cache })
  if not r then return ui.fail("serve", err) end
  local expect = r.header_md5
  local disks = access.disks(r)
  if #disks == 0 then
    r:close()
    return ui.fail("serve", a.archive .. ": the archive holds no disk to serve")
  end
  local shown = disks
  if a.disk then
    local d, derr = access.pick_disk(r, a.disk)
    if not d then
      r:close()
      return ui.fail("serve", derr)
    end
    shown = { d }
  end
  r:close()

  local socket = a.socket
  if socket then
    if vma.os.lstat(socket) then return ui.fail("serve", socket .. " already exists") end
    local dir, base = socket:match("^(.*)/([^/]+)$")
    if not dir then dir, base = ".", socket end
    local abs = vma.os.realpath(dir == "" and "/" or dir)
    if not abs then return ui.fail("serve", "no folder " .. dir .. " for the socket") end
    socket = (abs == "/" and "" or abs) .. "/" .. base
  end
  if port and every_interface(listen) then
    io.stderr:write(string.format("vma serve: warning: listening on every interface (%s): NBD "
      .. "has no password and no encryption, so anyone who can reach port %d of this host "
      .. "can read these disks\n", listen, port))
  end
  local tmp, terr = access.tmpdir("serve")
  if not tmp then return ui.fail("serve", terr) end
  if not socket and not port then socket = tmp .. "/nbd.sock" end

  vma.os.catch_signals()
  local nb, nerr = process.start_nbdkit { archive = a.archive, disk = a.disk and shown[1].name,
    socket = socket, port = port, listen = listen, dir = tmp, expect = expect,
    cache = not a.no_cache }
  -- everything made is removed whatever happens: nbdkit, the socket it made
  -- (it leaves it behind), the private folder
  local function cleanup()
    if nb and not nb.ended then process.stop(nb.pid) end
    if nb and socket then
      local sst = vma.os.lstat(socket)
      if sst and sst.type == "socket" then os.remove(socket) end
    end
    access.rmtmp(tmp, { "nbdkit.pid" })
  end
  if not nb then
    cleanup()
    return ui.fail("serve", nerr)
  end
  local ok, res = pcall(serve, a, nb, shown, socket, port, listen)
  cleanup()
  if not ok then return ui.fail("serve", res) end
  return res
end

return {
  description = "serve the disks of an archive over NBD (nbdkit), read-only",
  usage = parser():get_help(),
  run = run,
}
