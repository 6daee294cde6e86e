-- vma serve ARCHIVE: the disks of an archive over NBD, read-only, through
-- nbdkit and our plugin, until interrupted.
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local argparse = require "argparse"

local DEFAULT_PORT = 10809

local function parser()
  local p = argparse("vma serve", "Serve the disks of an archive over NBD, read-only, one "
    .. "export per disk named by its device name (drive-scsi0), with block status so that "
    .. "nbdcopy and qemu-img skip the holes. Listens on a Unix socket in a private temporary "
    .. "folder unless told otherwise, prints the NBD URIs once it is ready and runs until "
    .. "interrupted (Ctrl-C, SIGTERM).")
  p:argument("archive", "the archive: .vma, .vma.zst, .vma.gz or .vma.lzo (one that can only be read in order is decoded into the cache folder as it is read)")
  p:option("--socket", "listen on this Unix socket (a new path)")
  p:option("--port", "listen on this TCP port (on 127.0.0.1 unless --listen says otherwise)")
  p:option("--listen", "the address to listen on with --port (0.0.0.0: every interface)")
  p:option("--disk", "the default export, and the only URI printed (scsi0 or drive-scsi0)")
  p:flag("--json", "print the URIs as a JSON object")
  p:flag("--no-cache", "keep no cache: the index and a decoded copy go with the process")
  return p
end

local function run(args)
  local a, st = ui.parse(parser(), args, "serve")
  if not a then return st end
  local function usage(msg)
    io.stderr:write("vma serve: " .. msg .. " (see 'vma help serve')\n")
    return 2
  end
  if a.socket and (a.port or a.listen) then return usage("--socket and --port/--listen exclude each other") end
  local port
  if a.port or a.listen then
    port = math.tointeger(tonumber(a.port or DEFAULT_PORT))
    if not port or port < 1 or port > 65535 then return usage("--port must be a number from 1 to 65535") end
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
    if vma.stat(socket) then return ui.fail("serve", socket .. " already exists") end
    local dir, base = socket:match("^(.*)/([^/]+)$")
    if not dir then dir, base = ".", socket end
    local abs = vma.realpath(dir == "" and "/" or dir)
    if not abs then return ui.fail("serve", "no folder " .. dir .. " for the socket") end
    socket = (abs == "/" and "" or abs) .. "/" .. base
  end
  local tmp, terr = access.tmpdir("serve")
  if not tmp then return ui.fail("serve", terr) end
  if not socket and not port then socket = tmp .. "/nbd.sock" end
  local own_socket = socket and not a.socket

  vma.catch_signals()
  local nb, nerr = access.start_nbdkit { archive = a.archive, disk = a.disk and shown[1].name,
    socket = socket, port = port, listen = listen, dir = tmp, expect = expect,
    cache = not a.no_cache }
  local function cleanup()
    if nb then access.stop(nb.pid) end
    if own_socket then os.remove(socket) end
    access.rmtmp(tmp, { "nbdkit.pid" })
  end
  if not nb then
    cleanup()
    return ui.fail("serve", nerr)
  end

  local exports, uris = ui.array(), ui.array()
  for _, d in ipairs(shown) do
    local uri = access.uri(d.name, socket, listen, port)
    exports[#exports + 1] = { name = d.name, size = d.size, uri = uri }
    uris[#uris + 1] = uri
  end
  if a.json then
    io.write(ui.json({ archive = a.archive, socket = socket or ui.null, port = port or ui.null,
      address = port and listen or ui.null, pid = nb.pid, exports = exports, uris = uris },
      { "archive", "uris", "exports" }), "\n")
  else
    local w = 0
    for _, e in ipairs(exports) do w = math.max(w, #e.name) end
    for _, e in ipairs(exports) do
      io.write(string.format("%-" .. w .. "s  %s\n", e.name, e.uri))
    end
  end
  io.stdout:flush()
  if vma.isatty(2) then
    io.stderr:write("vma serve: serving " .. a.archive .. " read-only; Ctrl-C stops\n")
  end

  local how, code = access.wait(nb.pid, true)
  if how ~= "interrupted" then
    nb = nil
    cleanup()
    return ui.fail("serve", "nbdkit ended (" .. access.status_text(how, code) .. ")")
  end
  cleanup()
  return 0
end

return {
  description = "serve the disks of an archive over NBD (nbdkit), read-only",
  usage = parser():get_help(),
  run = run,
}
