-- vma cat ARCHIVE DISK: a disk of an archive, or a range of it, to standard
-- output (a pipe, a file), read at random: nothing is restored first.
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local devices = require "vma.devices"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma cat", ui.text [[
    Write a disk of an archive, or the range --offset/--length of it, to standard output, zeros
    included (for a pipe: | ssh host dd of=/dev/...). Sizes may end in K, M, G or T (powers of
    1024).]])
  ui.archive_argument(p, "random")
  p:argument("disk", "the device: scsi0 or drive-scsi0 (vmstate: the RAM state)")
  p:option("--offset", "start at this byte of the disk", "0")
  p:option("--length", "write at most this many bytes (default: to the end)")
  p:flag("-q --quiet", "no closing summary and no progress")
  ui.no_cache_flag(p)
  return p
end

local function run(args)
  local a, st = ui.parse(parser(), args, "cat")
  if not a then return st end
  local off = devices.parse_size(a.offset)
  if not off then return ui.usage("cat", "--offset must be a size, not '" .. a.offset .. "'") end
  local len
  if a.length then
    len = devices.parse_size(a.length)
    if not len then return ui.usage("cat", "--length must be a size, not '" .. a.length .. "'") end
  end
  if vma.os.isatty(1) then
    return ui.fail("cat", "standard output is a terminal: redirect it to a file or a pipe")
  end
  local wait, unwait = ui.waiter("cat", a.quiet, not a.no_cache)
  local r, err = vma.open(a.archive, { cache = not a.no_cache, wait = wait })
  if not r then return ui.fail("cat", err) end
  local dev, d
  dev, err = r:find_device(a.disk)
  if not dev then
    r:close()
    return ui.fail("cat", err)
  end
  d, err = r:disk(dev.name)
  if not d then
    r:close()
    return ui.fail("cat", err)
  end
  if off > d.size then
    local size = d.size
    d:close()
    r:close()
    return ui.fail("cat", string.format("--offset %d is past the end of %s (%d bytes)", off,
      a.disk, size))
  end
  len = math.min(len or d.size - off, d.size - off)
  vma.os.catch_signals()
  local name, start = d.name, vma.os.clock()
  local n, cerr = d:copy_to(io.stdout, off, len)
  unwait(n and r)
  d:close()
  r:close()
  if not n then return ui.fail("cat", cerr) end
  ui.summary("cat", string.format("wrote %s of %s from byte %d: %s", name, a.archive, off,
    ui.throughput(n, vma.os.clock() - start)), a.quiet)
  return 0
end

return {
  description = "write a disk (or a range of it) to standard output",
  usage = parser():get_help(),
  run = run,
}
