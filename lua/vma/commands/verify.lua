-- vma verify ARCHIVE: read everything and check every rule of the format.
local vma = require "vma"
local ui = require "vma.ui"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma verify", ui.text [[
    Read a whole archive and check every rule of the format, including that no cluster is missing.]])
  ui.archive_argument(p, "stdin")
  p:flag("-v --verbose", "print the contents and Proxmox's progress lines")
  ui.quiet_flag(p)
  p:flag("--json", "print the result as a JSON object (and only that) on stdout")
  p:flag("--no-catalog", "do not record the result in the store's catalog (the "
    .. ".vma-catalog.sqlite of the archive's folder or a folder above it, when there is one)")
  return p
end

-- the result in the store's catalog, when there is one (vma.catalog)
local function record(a, md5, ok, msg, secs)
  if a.no_catalog or a.archive == "-" then return end
  local done, err = require("vma.catalog").record_file_verification(a.archive, md5, ok, msg, secs)
  if done == nil and not a.quiet then
    io.stderr:write("vma verify: note: the result is not recorded in the catalog: ", err, "\n")
  end
end

local function run(args)
  local a, st = ui.parse(parser(), args, "verify")
  if not a then return st end
  local out = a.json and io.stderr or nil
  local t0 = vma.os.clock()
  local r, err = ui.open("verify", a.archive)
  if not r then
    record(a, nil, false, err, vma.os.clock() - t0)
    return ui.fail("verify", err, a.json)
  end
  local md5 = r.header_md5
  vma.os.catch_signals()
  local ok, perr = pcall(function()
    if a.verbose then ui.print_content(r, out) end
  end)
  if not ok then return ui.fail("verify", perr, a.json) end
  local prog, cb = ui.read_progress(a.verbose, a.quiet or (a.json and not a.verbose), nil, out)
  local stats, verr = r:verify { progress = cb }
  prog.finish()
  r:close()
  if not stats then
    record(a, md5, false, verr, vma.os.clock() - t0)
    return ui.fail("verify", verr, a.json)
  end
  record(a, md5, true, nil, vma.os.clock() - t0)
  if a.json then
    ui.out(ui.json { ok = true, clusters = stats.clusters_done, bytes_read = stats.bytes_read,
      zero_bytes = stats.zero_bytes, archive_bytes = stats.bytes_archive,
      seconds = stats.elapsed }, "\n")
  end
  if a.verbose then ui.print_totals(stats, out) end
  ui.summary("verify", string.format("verified %s: every rule holds; %s of disks read",
    a.archive, ui.throughput(stats.bytes_read, stats.elapsed)), a.quiet or a.json)
  return 0
end

return {
  description = "check a whole archive (header checksums, every rule, every cluster present)",
  usage = parser():get_help(),
  run = run,
}
