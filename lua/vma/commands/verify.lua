-- vma verify ARCHIVE: read everything and check every rule of the format.
local vma = require "vma"
local ui = require "vma.ui"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma verify", "Read a whole archive and check every rule of the format, "
    .. "including that no cluster is missing.")
  p:argument("archive", "the archive (- for standard input)")
  p:flag("-v --verbose", "print the contents and Proxmox's progress lines")
  p:flag("--json", "print the result as a JSON object")
  return p
end

local function run(args)
  local a, st = ui.parse(parser(), args, "verify")
  if not a then return st end
  local r, err = vma.open(a.archive)
  if not r then
    if a.json then io.write(ui.json { ok = false, error = err }, "\n") end
    return ui.fail("verify", err)
  end
  vma.catch_signals()
  if a.verbose then ui.print_content(r) end
  local prog, cb = ui.read_progress(a.verbose, a.json)
  local stats, verr = r:verify { progress = cb }
  prog.finish()
  r:close()
  if a.json then
    local out = { ok = stats ~= nil, error = verr }
    if stats then
      out.clusters = stats.clusters_done
      out.bytes_read = stats.bytes_read
      out.zero_bytes = stats.zero_bytes
      out.archive_bytes = stats.bytes_archive
      out.seconds = stats.elapsed
    end
    io.write(ui.json(out), "\n")
  end
  if not stats then return ui.fail("verify", verr) end
  if a.verbose then ui.print_totals(stats) end
  return 0
end

return {
  description = "check a whole archive (checksums, every cluster present)",
  usage = parser():get_help(),
  run = run,
}
