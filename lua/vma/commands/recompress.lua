-- vma recompress IN OUT: the same archive, compressed again (or not): the
-- decompressed bytes of OUT equal those of IN.  A .vma.zst written here is in
-- zstd's seekable format, so that serve, mount, cat and convert can read it
-- at random; a Proxmox .vma.zst (one zstd stream), .vma.gz or .vma.lzo cannot
-- be.  Every rule of the format is checked on the way.
local vma = require "vma"
local ui = require "vma.ui"
local argparse = require "argparse"
local compression = require "vma.compression"

local function parser()
  local p = argparse("vma recompress", ui.text [[
    Write the archive IN again as OUT, compressed as OUT's name says (.vma.zst: seekable zstd;
    .vma: plain) or as --compress says. The decompressed bytes stay the same. OUT appears under
    its name only once complete.]])
  p:argument("input", "the archive (- for standard input; .zst/.gz/.lzo are read directly)")
  p:argument("output", "the new archive (- for standard output)")
  compression.options(p, "zstd, gzip, lzo or none (default: from OUT's name)")
  p:flag("-f --force", "replace an existing OUT")
  ui.quiet_flag(p)
  p:flag("--json", "print a JSON summary on standard output (on stderr when OUT is -)")
  return p
end

local function compression_for(a)
  return a.compress or compression.from_name(a.output)
end

local function run(args)
  local a, status = ui.parse(parser(), args, "recompress")
  if not a then return status end
  local function fail(msg) return ui.fail("recompress", msg, a.output ~= "-" and a.json) end
  if a.output == "-" and vma.os.isatty(1) then
    return fail("standard output is a terminal: not writing an archive there")
  end
  local uerr = compression.check(compression_for(a), a.level, a.threads)
  if uerr then return ui.usage("recompress", uerr) end
  vma.os.catch_signals()
  local r, err = ui.open("recompress", a.input)
  if not r then return fail(err) end
  local w, werr = vma.create(a.output, { compress = compression_for(a), level = a.level,
    threads = a.threads, overwrite = a.force })
  if not w then return fail(werr) end
  local prog = ui.progress { quiet = a.quiet or a.json }
  local ok, cerr = w:copy_from(r, { progress = function(st)
    prog.update(st.clusters_done * 65536, st.clusters_total * 65536, st.elapsed)
  end })
  prog.finish()
  r:close()
  if not ok then
    w:abort()
    return fail(cerr)
  end
  local cok, clerr = w:close()
  if not cok then return fail(clerr) end
  local st = vma.os.stat(a.output)
  if a.json then
    local f = a.output == "-" and io.stderr or io.stdout
    f:write(ui.json { ok = true, input = a.input, output = a.output,
      compression = compression_for(a), bytes = st and st.size or ui.null }, "\n")
  end
  ui.summary("recompress", string.format("%s -> %s (%s%s)", a.input, a.output,
    compression_for(a), st and (", " .. ui.human(st.size)) or ""), a.quiet or a.json)
  return 0
end

return {
  description = "write an archive again with another compression (seekable .vma.zst)",
  usage = parser():get_help(),
  run = run,
}
