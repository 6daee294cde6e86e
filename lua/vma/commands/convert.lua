-- vma convert ARCHIVE OUT: one disk of an archive to an image file (qcow2,
-- vmdk, vhdx, raw) through qemu-img, which reads it from our nbdkit plugin
-- on a private socket (holes stay holes: qemu-img asks for block status).
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local process = require "vma.process"
local argparse = require "argparse"

-- the formats of qemu-img that -O takes (vpc: VHD), in the order help gives them
local FORMAT_NAMES = { "qcow2", "vmdk", "vhdx", "vpc", "vdi", "raw" }
local FORMATS = {}
for _, f in ipairs(FORMAT_NAMES) do FORMATS[f] = true end
local FORMAT_LIST = "qcow2, vmdk, vhdx, vpc (VHD), vdi or raw"
local BY_EXT = { qcow2 = "qcow2", vmdk = "vmdk", vhdx = "vhdx", raw = "raw", img = "raw",
  vhd = "vpc", vdi = "vdi" }

local function parser()
  local p = argparse("vma convert", ui.text [[
    Convert one disk of an archive to an image file with qemu-img, without restoring it first: the
    disk is served by nbdkit on a private Unix socket and qemu-img reads it over NBD, skipping the
    holes. OUT is written under a temporary name in its folder and renamed at the end; an existing
    OUT is never replaced unless --force.]])
  ui.archive_argument(p, "random")
  p:argument("out", "the image to write")
  p:option("--disk", "the disk (scsi0 or drive-scsi0); needed when there are several")
  p:option("-O --format", FORMAT_LIST .. " (default: from OUT's extension, .img: raw, .vhd: "
    .. "vpc; else qcow2)")
  p:flag("--force", "replace OUT if it exists")
  p:flag("-q --quiet", "no progress, even on a terminal")
  ui.no_cache_flag(p)
  return p
end

local function run(args)
  local a, st = ui.parse(parser(), args, "convert")
  if not a then return st end
  local fmt = a.format or BY_EXT[(a.out:match("%.(%w+)$") or ""):lower()] or "qcow2"
  local started = vma.os.clock()
  if not FORMATS[fmt] then
    return ui.usage("convert", "unknown format '" .. fmt .. "': " .. FORMAT_LIST)
  end
  local ost = vma.os.stat(a.out)
  if ost and not a.force then
    return ui.fail("convert", a.out .. " exists (--force replaces it)")
  end
  if ost and ost.type ~= "file" then
    return ui.fail("convert", a.out .. " is not a regular file (for a device: vma cat ARCHIVE "
      .. "DISK > DEVICE)")
  end
  local r, err = access.open(a.archive, { cache = not a.no_cache })
  if not r then return ui.fail("convert", err) end
  local d, derr, dst = access.pick_disk(r, a.disk)
  local expect = r.header_md5
  r:close()
  if not d then
    if dst == 2 then return ui.usage("convert", derr) end
    return ui.fail("convert", derr)
  end
  if not process.which("qemu-img") then
    return ui.fail("convert", "qemu-img is not installed (Debian: apt-get install qemu-utils)")
  end

  local dir, base = a.out:match("^(.*)/([^/]+)$")
  if not dir then dir, base = ".", a.out end
  if dir == "" then dir = "/" end
  local dst_st = vma.os.stat(dir)
  if not dst_st or dst_st.type ~= "directory" then
    return ui.fail("convert", "no folder " .. dir .. " for " .. a.out)
  end
  local tmp, terr = access.tmpdir("convert")
  if not tmp then return ui.fail("convert", terr) end
  local socket = tmp .. "/nbd.sock"
  -- the temporary output: a new file (mode 0600, as extract writes, whatever
  -- the umask: qemu-img keeps the mode of the file it writes into), named so
  -- that nobody else uses it, in OUT's folder; short, whatever OUT's length
  local part, perr
  for _ = 1, 100 do
    part = string.format("%s/.tmp-vma-%d-%06d", dir, vma.os.getpid(), math.random(0, 999999))
    local ok
    ok, perr = vma.os.write_file(part, "", 0x180)
    if ok then break end
    part = nil
  end
  if not part then
    access.rmtmp(tmp)
    return ui.fail("convert", perr)
  end

  vma.os.catch_signals()
  local nb, nerr = process.start_nbdkit { archive = a.archive, disk = d.name, socket = socket,
    dir = tmp, expect = expect, cache = not a.no_cache }
  local qpid
  local function cleanup(keep_part)
    if qpid then process.stop(qpid) end
    if nb then process.stop(nb.pid) end
    if not keep_part then os.remove(part) end
    access.rmtmp(tmp, { "nbd.sock", "nbdkit.pid" })
  end
  if not nb then
    cleanup()
    return ui.fail("convert", nerr)
  end

  local argv = { "qemu-img", "convert", "-f", "raw", "-O", fmt, "-t", "writeback" }
  if vma.os.isatty(1) and not a.quiet then argv[#argv + 1] = "-p" end
  argv[#argv + 1] = access.uri(d.name, socket)
  argv[#argv + 1] = part
  local qerr
  qpid, qerr = vma.os.spawn(argv, { stdin = "/dev/null" })
  if not qpid then
    cleanup()
    return ui.fail("convert", qerr)
  end
  local how, code = process.wait(qpid, true)
  if how == "interrupted" then
    cleanup()
    return ui.fail("convert", "interrupted")
  end
  qpid = nil
  if how ~= "exit" or code ~= 0 then
    cleanup()
    return ui.fail("convert", "qemu-img failed (" .. process.status_text(how, code) .. ")")
  end
  process.stop(nb.pid)
  nb = nil
  local ok, rerr
  if a.force then
    ok, rerr = os.rename(part, a.out)
  else
    ok, rerr = vma.os.rename(part, a.out)
  end
  if not ok then
    cleanup()
    return ui.fail("convert", rerr)
  end
  vma.os.fsync_dir(dir)
  cleanup(true)
  local st = vma.os.stat(a.out)
  ui.summary("convert", string.format("%s -> %s (%s%s) in %.1f s", a.archive, a.out, fmt,
    st and (", " .. ui.human(st.size)) or "", vma.os.clock() - started), a.quiet)
  return 0
end

return {
  description = "convert a disk of an archive to qcow2, vmdk, vhdx, vpc, vdi or raw (qemu-img)",
  usage = parser():get_help(),
  complete = { ["--format"] = FORMAT_NAMES },
  run = run,
}
