-- vma extract [-v] [-r MAP] [-d DRIVES] ARCHIVE DIR
-- Restores an archive: configs and vmstate.bin into DIR (a new folder), disks
-- into DIR/disk-<devname>.raw or where a restore map says.  Nothing appears
-- under a final name before the whole archive has been read and verified.
local vma = require "vma"
local ui = require "vma.ui"
local restoremap = require "vma.restoremap"
local argparse = require "argparse"

local SLACK = 4 * 1024 * 1024 -- a map target may be this much larger (volume managers round up)

local function parser()
  local p = argparse("vma extract", "Restore an archive: configs and vmstate.bin into DIR "
    .. "(which must not exist), disks into DIR/disk-<devname>.raw or where a restore map "
    .. "(-r, --map-script, --target) says.")
  p:argument("archive", "the archive (- for standard input; .zst/.gz/.lzo are read directly)")
  p:argument("dir", "the folder to create for the configs (and the disks without a map)")
  p:option("-r --map", "a restore map in Proxmox's syntax (a file or a FIFO)")
  p:option("--map-script", "a Lua script that returns the restore map (see docs/restore-maps.md)")
  p:option("-t --target", "a built-in or user restore target: dir:PATH, lvm:VG, zfs:POOL")
  p:option("-d --drives", "extract only these drives (comma-separated device names)")
  p:flag("-v --verbose", "print Proxmox's progress lines")
  p:flag("-n --dry-run", "print the map and what would be written where; write nothing")
  p:flag("--json", "print a JSON summary of what was written")
  return p
end

local function read_map(path)
  local f, err = io.open(path, "r")
  if not f then return nil, "unable to open restore map " .. path .. ": " .. err end
  -- read up to the end marker only: the writer of a FIFO may keep it open
  local lines = {}
  for line in f:lines() do
    lines[#lines + 1] = line
    if line == "done" or line == "" then break end
  end
  f:close()
  return restoremap.parse(table.concat(lines, "\n") .. "\n")
end

-- plan: one entry per device: { dev=, final=, tmp=, fresh=, write_zero=, skip=, bps= }
local function plan_targets(a, r, entries)
  local devices = r:devices()
  local only
  if a.drives then
    only = {}
    for name in a.drives:gmatch("[^,%s]+") do
      local d = ui.match_drive(devices, name)
      if not d then return nil, "no drive named '" .. name .. "' in the archive" end
      only[d.name] = true
    end
  end
  local by_dev = {}
  for _, e in ipairs(entries or {}) do by_dev[e.devname] = e end
  local plan = {}
  for _, d in ipairs(devices) do
    local p = { dev = d }
    if only and not only[d.name] then
      p.skip = true
    elseif d.vmstate then
      p.final, p.tmp, p.fresh = a.dir .. "/vmstate.bin", a.dir .. "/tmp-vmstate.bin", true
    elseif entries then
      local e = by_dev[d.name] or by_dev[d.name:gsub("^drive%-", "")]
      if not e then return nil, "no device name mapping for " .. d.name end
      if e.skip then
        p.skip = true
      else
        if e.format and e.format ~= "raw" then
          return nil, "unsupported format '" .. e.format .. "' for " .. d.name .. " (only raw)"
        end
        p.final, p.write_zero, p.bps, p.mapped = e.path, e.write_zero, e.bps, true
        local st = vma.stat(e.path)
        if not st and e.path:match("^/dev/") then
          -- a missing volume is not made up as a plain file under /dev
          return nil, "target " .. e.path .. " does not exist (create the volume first)"
        elseif not st then
          p.fresh = true -- a new file, created with the device's size
        elseif st.type == "file" or st.type == "block" then
          if st.size < d.size then
            return nil, string.format("target %s is smaller (%d bytes) than %s (%d bytes)",
              e.path, st.size, d.name, d.size)
          end
          if st.size > d.size + SLACK then
            return nil, string.format("target %s is larger (%d bytes) than %s (%d bytes) "
              .. "by more than 4 MiB", e.path, st.size, d.name, d.size)
          end
        else
          return nil, "target " .. e.path .. " is not a file or block device"
        end
      end
    else
      p.final = a.dir .. "/disk-" .. d.name .. ".raw"
      p.tmp = a.dir .. "/tmp-disk-" .. d.name .. ".raw"
      p.fresh = true
    end
    plan[#plan + 1] = p
  end
  return plan
end

local function config_paths(a, r, plan)
  local used, out = {}, {}
  for _, p in ipairs(plan) do
    if p.tmp then used[p.tmp], used[p.final] = true, true end
  end
  for _, c in ipairs(r:configs()) do
    local final, tmp = a.dir .. "/" .. c.name, a.dir .. "/tmp-cfg-" .. c.name
    if used[final] or used[tmp] then
      return nil, "config name '" .. c.name .. "' collides with another file of the extraction"
    end
    used[final], used[tmp] = true, true
    out[#out + 1] = { name = c.name, data = c.data, final = final, tmp = tmp }
  end
  return out
end

local function run(args)
  local a, status = ui.parse(parser(), args, "extract")
  if not a then return status end
  local function early_fail(msg)
    if a.json then io.write(ui.json { ok = false, error = msg }, "\n") end
    return ui.fail("extract", msg)
  end
  local nmaps = (a.map and 1 or 0) + (a.map_script and 1 or 0) + (a.target and 1 or 0)
  if nmaps > 1 then
    io.stderr:write("vma extract: give only one of -r, --map-script and --target\n")
    return 2
  end
  local r, err = vma.open(a.archive)
  if not r then return early_fail(err) end

  local entries
  if a.map then
    -- qmrestore writes the map only after it has read these lines
    ui.print_content(r)
    entries, err = read_map(a.map)
    if not entries then return early_fail(err) end
  elseif a.map_script or a.target then
    local archive, aerr = restoremap.archive_info(r, a.archive)
    if not archive then return early_fail(aerr) end
    local map
    if a.map_script then
      map, err = restoremap.run_script(a.map_script, archive)
    else
      map, err = restoremap.target(a.target, archive)
    end
    if not map then return early_fail(err) end
    entries, err = restoremap.to_entries(map, archive)
    if not entries then return early_fail(err) end
  end

  local plan, perr = plan_targets(a, r, entries)
  if not plan then return early_fail(perr) end
  local configs, cerr = config_paths(a, r, plan)
  if not configs then return early_fail(cerr) end

  if a.dry_run then
    if entries then io.write(restoremap.format(entries)) end
    for _, c in ipairs(configs) do io.write(string.format("config %s -> %s\n", c.name, c.final)) end
    for _, p in ipairs(plan) do
      if p.skip then
        io.write(string.format("device %s: skipped\n", p.dev.name))
      else
        io.write(string.format("device %s (%d bytes) -> %s%s\n", p.dev.name, p.dev.size, p.final,
          p.write_zero and " (writing zeros)" or ""))
      end
    end
    return 0
  end

  local ok, merr = vma.mkdir(a.dir)
  if not ok then return early_fail(merr) end
  vma.catch_signals()

  -- everything we create, to remove on failure
  local created = {}
  local function cleanup()
    for i = #created, 1, -1 do os.remove(created[i]) end
    vma.rmdir(a.dir)
  end
  local function fail(msg)
    cleanup()
    return early_fail(msg)
  end

  for _, c in ipairs(configs) do
    local wok, werr = vma.write_file(c.tmp, c.data)
    if not wok then return fail(werr) end
    created[#created + 1] = c.tmp
  end

  local targets = {}
  for _, p in ipairs(plan) do
    if not p.skip then
      local path = p.tmp or p.final
      if not p.mapped and not p.dev.vmstate and not a.json then
        io.write(string.format("DEVINFO %s %d\n", path, p.dev.size))
      end
      targets[p.dev.name] = { path = path, fresh = p.fresh, write_zero = p.write_zero, bps = p.bps }
      if p.fresh then created[#created + 1] = path end
    end
  end
  io.stdout:flush()

  local prog, cb = ui.read_progress(a.verbose, a.json)
  local stats, xerr = r:extract { targets = targets, progress = cb }
  prog.finish()
  r:close()
  if not stats then return fail(xerr) end

  -- verified: move everything to its final name (never over an existing file)
  local done = {}
  for _, item in ipairs(configs) do done[#done + 1] = item end
  for _, p in ipairs(plan) do
    if p.tmp and not p.skip then done[#done + 1] = p end
  end
  for _, item in ipairs(done) do
    local rok, rerr = vma.rename(item.tmp, item.final)
    if not rok then return fail(rerr) end
    for i, c in ipairs(created) do
      if c == item.tmp then created[i] = item.final end
    end
  end
  vma.fsync_dir(a.dir)

  if a.verbose then ui.print_totals(stats) end
  if a.json then
    local files = ui.array()
    for _, c in ipairs(configs) do files[#files + 1] = { kind = "config", name = c.name, path = c.final } end
    for _, p in ipairs(plan) do
      files[#files + 1] = { kind = p.dev.vmstate and "vmstate" or "disk", name = p.dev.name,
        size = p.dev.size, path = p.final, skipped = p.skip or false }
    end
    io.write(ui.json { ok = true, dir = a.dir, files = files, bytes_written = stats.bytes_written,
      seconds = stats.elapsed }, "\n")
  end
  return 0
end

return {
  description = "restore an archive into a folder or onto mapped targets",
  usage = parser():get_help(),
  run = run,
}
