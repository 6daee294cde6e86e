-- vma extract [-v] [-r MAP | --map-script FILE | --target SPEC] [-d DRIVES] ARCHIVE DIR
--
-- Restores an archive the way Proxmox's vma does: DIR is created, the
-- configs are written into it and the disks go to DIR/disk-<devname>.raw or
-- where a restore map says. Every file it makes is made under a temporary
-- name (tmp-disk-<devname>.raw, tmp-cfg-<name>, .tmp-vma-<pid>-<id> beside a
-- mapped file that did not exist) and renamed to its final name only once the
-- whole archive has been read and checked; the one exception is -r FIFO, the
-- protocol of qmrestore, which reads DIR/qemu-server.conf at the CTIME: line:
-- then the configs are renamed before that line. Existing targets (a block
-- device, a volume, a file a map line names) are written in place. On
-- failure everything it created, and nothing else, is removed again.
local vma = require "vma"
local ui = require "vma.ui"
local devices = require "vma.devices"
local restoremap = require "vma.restoremap"
local ceph = require "vma.ceph"
local argparse = require "argparse"

local SLACK = 4 * 1024 * 1024 -- a map target may be this much larger (volume managers round up)

local function parser()
  local p = argparse("vma extract", ui.text [[
    Restore an archive: configs and vmstate.bin into DIR (which must not exist), disks into
    DIR/disk-<devname>.raw or where a restore map (-r, --map-script, --target) says.]])
  ui.archive_argument(p, "stream")
  p:argument("dir", "the folder to create for the configs (and the disks without a map)")
  p:option("-r --map", "a restore map in Proxmox's syntax (a file or a FIFO)")
  p:option("--map-script", "a Lua script that returns the restore map (see docs/restore-maps.md)")
  p:option("-t --target", "a built-in or user restore target: dir:PATH, lvm:VG, zfs:POOL, "
    .. "rbd:POOL[:conf=FILE][:id=NAME]")
  p:option("-d --drives", "extract only these drives (comma-separated device names or keys)")
  p:option("--mode", "the permissions of the files made (octal)", "0600")
  p:flag("-f --force", "write over existing files and volumes (zeros included, so no old "
    .. "data survives)")
  p:flag("--salvage", "restore what can be read of a damaged or cut archive; report the rest "
    .. "(exit status 3)")
  p:flag("-v --verbose", "print Proxmox's progress lines")
  ui.quiet_flag(p)
  p:flag("-n --dry-run", "print the map and what would be written where; write nothing")
  p:flag("--json", "print a JSON summary of what was written (and only that) on stdout")
  return p
end

-- ---- the plan: one entry per device ----------------------------------------
-- { dev=, skip=, final=, tmp=, fresh=, write_zero=, clear_data=, bps=, mapped=,
--   nofollow=, rbd= (an rbd: target, parsed), rbd_create= (it is made before
--   the restore) }

local NAME_MAX = 255

--- A temporary name in folder DIR: WANT when it fits in a file name, else
-- SHORT (names of 243+ bytes would not fit with a prefix)
local function tmp_name(dir, want, short)
  return dir .. "/" .. (#want <= NAME_MAX and want or short)
end

local function folder_of(path)
  if path:match("[^/]") then path = path:gsub("/+$", "") end
  local dir = path:match("^(.*)/[^/]*$")
  if not dir then return "." end
  return dir == "" and "/" or dir
end

local function selection(a, devs)
  if not a.drives then return nil end
  local names, err = ui.split_list(a.drives, "-d")
  if not names then return nil, err, 2 end
  local only = {}
  for _, name in ipairs(names) do
    local d, merr = devices.match(devs, name)
    if not d then return nil, merr end
    only[d.name] = true
  end
  return only
end

-- an existing file or device that a map entry names
local function check_existing(a, p, e, st)
  local d = p.dev
  if st.type ~= "file" and st.type ~= "block" then
    return nil, "target " .. e.path .. " is not a file or block device"
  end
  if st.size < d.size then
    return nil, string.format("target %s is smaller (%d bytes) than %s (%d bytes)",
      e.path, st.size, d.name, d.size)
  end
  if st.size > d.size + SLACK then
    return nil, string.format("target %s is larger (%d bytes) than %s (%d bytes) "
      .. "by more than 4 MiB", e.path, st.size, d.name, d.size)
  end
  -- "0:" says the target reads as zeros: true of a file that is all holes
  -- (qmrestore allocates one), not of one that holds data (a preallocated
  -- file of written zeros, old data): there the archive's zero blocks are
  -- punched out where the file holds data, so that the result is exact
  if st.type == "file" and not p.write_zero and not vma.os.is_all_holes(e.path) then
    p.clear_data = true
  end
  if not a.dry_run then return true end
  -- what the real run would fail on
  local ok, aerr = vma.os.access(e.path, "w")
  if not ok then return nil, "target " .. aerr end
  return true
end

-- an rbd: map line: the image is made at the device's size when it does
-- not exist (and removed again on failure); an existing one must be at least
-- as large and not in use; "0:" uses it as it is (qmrestore allocated it),
-- "1:" writes zeros too
local function plan_rbd(p, e, made)
  local t, err = ceph.parse(e.path)
  if not t then return nil, err end
  if t.snap then return nil, "target " .. e.path .. " names a snapshot, which cannot be written" end
  p.rbd = t
  if made then -- an image the target made: new and empty
    p.fresh, p.write_zero = true, false
    return true
  end
  local d = p.dev
  -- Ceph blocks writes (and opening an image for writing) on a full pool
  local full, ferr = ceph.pool_full(t)
  if full == nil then return nil, ferr end
  if full then return nil, "pool " .. t.pool .. " is full: cannot restore into " .. ceph.name(t) end
  local size, serr, code = ceph.size(t)
  if not size and code == "ENOENT" then
    p.rbd_create, p.fresh, p.write_zero = true, true, false
    return true
  end
  if not size then return nil, serr end
  if size < d.size then
    return nil, string.format("RBD image %s is smaller (%d bytes) than %s (%d bytes)",
      ceph.name(t), size, d.name, d.size)
  end
  if size > d.size + SLACK then
    return nil, string.format("RBD image %s is larger (%d bytes) than %s (%d bytes) by more "
      .. "than 4 MiB", ceph.name(t), size, d.name, d.size)
  end
  local n, werr = ceph.watchers(t)
  if not n then return nil, werr end
  if n > 0 then
    return nil, string.format("RBD image %s is in use (open by %d client%s: rbd status %s)",
      ceph.name(t), n, n == 1 and "" or "s", ceph.name(t))
  end
  p.fresh = not p.write_zero -- "0:": it reads as zeros, zero blocks are left alone
  return true
end

local function plan_mapped(a, p, e, created)
  if e.format and e.format ~= "raw" then
    return nil, "unsupported format '" .. e.format .. "' for " .. p.dev.name .. " (only raw)"
  end
  p.final, p.write_zero, p.bps, p.mapped, p.nofollow = e.path, e.write_zero, e.bps, true,
    e.nofollow
  if ceph.is_spec(e.path) then return plan_rbd(p, e, created[e.path]) end
  if created[e.path] then return true end -- a volume the target makes
  local lst = vma.os.lstat(e.path)
  if lst and lst.type == "link" and e.nofollow then
    return nil, "target " .. e.path .. " is a symbolic link: not writing through it"
  end
  local st = vma.os.stat(e.path)
  if not st and lst then
    return nil, "target " .. e.path .. " is a symbolic link to nothing"
  elseif not st and e.path:match("^/dev/") then
    -- a missing volume is not made up as a plain file under /dev
    return nil, "target " .. e.path .. " does not exist (create the volume first)"
  elseif not st then
    -- a new file of the device's size, made under a temporary name beside it
    -- and renamed when the restore is complete
    local dir = folder_of(e.path)
    local dst = vma.os.stat(dir)
    if not dst or dst.type ~= "directory" then
      return nil, "no folder " .. dir .. " for the target " .. e.path
    end
    if a.dry_run then
      local ok, aerr = vma.os.access(dir, "w")
      if not ok then return nil, "cannot create " .. e.path .. ": " .. aerr end
    end
    p.fresh = true
    p.tmp = string.format("%s/.tmp-vma-%d-%d", dir, vma.os.getpid(), p.dev.id)
    return true
  end
  return check_existing(a, p, e, st)
end

local function plan_targets(a, r, entries, created)
  local devs = r:devices()
  local only, err, status = selection(a, devs)
  if err then return nil, err, status end
  local by_dev = {}
  for _, e in ipairs(entries or {}) do
    -- a line for a device the archive lacks is a map made for another archive
    -- (or a typo): nothing would go where it says
    local d, merr = devices.match(devs, e.devname)
    if not d and merr:match("^no device named") then
      return nil, "the map names device '" .. e.devname .. "', which is not in the archive"
    elseif not d then
      return nil, "the map's " .. merr
    end
    if by_dev[d.name] then
      return nil, string.format("the map names device %s twice ('%s' and '%s')", d.name,
        by_dev[d.name].devname, e.devname)
    end
    by_dev[d.name] = e
  end
  local plan = {}
  for _, d in ipairs(devs) do
    local p = { dev = d }
    local e = by_dev[d.name]
    if only and not only[d.name] then
      p.skip = true
    elseif d.vmstate then
      p.final, p.tmp, p.fresh = a.dir .. "/vmstate.bin", a.dir .. "/tmp-vmstate.bin", true
      p.nofollow = true
    elseif entries and not e then
      return nil, "no device name mapping for " .. d.name
    elseif e and e.skip then
      p.skip = true
    elseif e then
      local ok, perr = plan_mapped(a, p, e, created or {})
      if not ok then return nil, perr end
    else
      p.final = a.dir .. "/disk-" .. d.name .. ".raw"
      p.tmp = tmp_name(a.dir, "tmp-disk-" .. d.name .. ".raw", "tmp-long-disk-" .. d.id .. ".raw")
      p.fresh, p.nofollow = true, true
    end
    plan[#plan + 1] = p
  end
  return plan
end

local function config_files(a, r)
  local out = {}
  for _, c in ipairs(r:configs()) do
    local name = c.name
    if name:match("^tmp%-") or name:match("^disk%-.*%.raw$") or name == "vmstate.bin" then
      return nil, "config name '" .. name .. "' collides with a file of the extraction"
    end
    out[#out + 1] = { name = name, data = c.data, final = a.dir .. "/" .. name,
                      tmp = tmp_name(a.dir, "tmp-cfg-" .. name, "tmp-long-cfg-" .. #out) }
  end
  return out
end

-- ---- the work, with everything it creates remembered -------------------------

local Job = {}
Job.__index = Job

local function new_job(a)
  return setmetatable({ a = a, created = {}, undo = {}, sinks = {}, dir_made = false }, Job)
end

function Job:remember(path) self.created[#self.created + 1] = path end

function Job:renamed(from, to)
  for i, c in ipairs(self.created) do
    if c == from then self.created[i] = to end
  end
end

--- close the RBD images written (before they can be removed); the first error
function Job:close_sinks()
  local first
  for i = #self.sinks, 1, -1 do
    local ok, err = self.sinks[i]:close()
    if not ok and not first then first = err end
  end
  self.sinks = {}
  return first
end

-- remove an RBD image this run created; say so when it cannot
local function remove_rbd(spec)
  local t = assert(ceph.parse(spec))
  local ok, err = ceph.remove(t)
  if not ok then
    io.stderr:write("vma extract: could not remove the RBD image ", ceph.name(t), " it created: ",
      tostring(err), "; remove it with: rbd rm ", ceph.name(t), "\n")
  end
end

--- remove what this run created, newest first (the target's volumes too)
function Job:cleanup()
  self:close_sinks()
  for i = #self.created, 1, -1 do
    local c = self.created[i]
    if ceph.is_spec(c) then remove_rbd(c) else os.remove(c) end
  end
  self.created = {}
  for i = #self.undo, 1, -1 do pcall(self.undo[i]) end
  self.undo = {}
  if self.dir_made then vma.os.rmdir(self.a.dir) end
end

--- DIR and the config files, complete, under their temporary names, or with
-- final set (qmrestore's FIFO protocol) under their final names
function Job:write_configs(configs, final)
  local a = self.a
  local mode = tonumber(a.mode, 8)
  local ok, err = vma.os.mkdir(a.dir) -- 0755 less the umask
  if not ok then return nil, err end
  self.dir_made = true
  for _, c in ipairs(configs) do
    ok, err = vma.os.write_file(c.tmp, c.data, mode)
    if not ok then return nil, err end
    self:remember(c.tmp)
    if final then
      ok, err = vma.os.rename(c.tmp, c.final)
      if not ok then return nil, err end
      self:renamed(c.tmp, c.final)
      c.tmp = nil
    end
  end
  return vma.os.fsync_dir(a.dir)
end

--- the target's volumes (lvcreate, zfs create): made now, undone on failure
function Job:prepare(plugin, arg, entries, archive)
  if not plugin or not plugin.prepare then return {} end
  local ok, made, undo = pcall(plugin.prepare, entries, archive, arg,
    { force = self.a.force, dry_run = self.a.dry_run })
  if not ok then return nil, tostring(made) end
  if made == nil then return nil, undo end
  if type(undo) == "function" then self.undo[#self.undo + 1] = undo end
  return made
end

-- the RBD image of p: made (and remembered) when it is new, and open
function Job:open_rbd(p)
  if p.rbd_create then
    local ok, err = ceph.create(p.rbd, p.dev.size)
    if not ok then return nil, err end
    self:remember(p.final)
  end
  local sink, err = ceph.sink(p.rbd)
  if not sink then return nil, err end
  self.sinks[#self.sinks + 1] = sink
  return { sink = sink, fresh = p.fresh, write_zero = p.write_zero, bps = p.bps }
end

function Job:restore(r, plan, out)
  local a = self.a
  local mode = tonumber(a.mode, 8)
  local targets = {}
  for _, p in ipairs(plan) do
    if p.rbd and not p.skip then
      local t, err = self:open_rbd(p)
      if not t then return nil, err end
      targets[p.dev.name] = t
    elseif not p.skip then
      local path = p.tmp or p.final
      if not p.mapped and not p.dev.vmstate and not a.json then
        ui.out(string.format("DEVINFO %s %d\n", path, p.dev.size))
      end
      local created = false
      if p.tmp then
        -- made here, empty, never over an existing file: only what this run
        -- made is ever removed
        local ok, err = vma.os.write_file(p.tmp, "", mode)
        if not ok then return nil, err end
        self:remember(p.tmp)
        created = true
      end
      targets[p.dev.name] = { path = path, fresh = p.fresh, created = created,
                              write_zero = p.write_zero, clear_data = p.clear_data,
                              bps = p.bps, mode = mode, nofollow = p.nofollow or created }
    end
  end
  local prog, cb = ui.read_progress(a.verbose, a.quiet or (a.json and not a.verbose), nil, out)
  local stats, err = r:extract { targets = targets, progress = cb, salvage = a.salvage }
  prog.finish()
  r:close()
  local cerr = self:close_sinks()
  if stats and cerr then return nil, cerr end
  return stats, err
end

--- the disks, then the configs, under their final names (never over an
-- existing file), each folder synced
function Job:keep(plan, configs)
  local folders, order = {}, {}
  local function move(from, to)
    local ok, err = vma.os.rename(from, to)
    if not ok then return nil, err end
    self:renamed(from, to)
    local f = folder_of(to)
    if not folders[f] then
      folders[f] = true
      order[#order + 1] = f
    end
    return true
  end
  for _, p in ipairs(plan) do
    if p.tmp and not p.skip then
      local ok, err = move(p.tmp, p.final)
      if not ok then return nil, err end
    end
  end
  for _, c in ipairs(configs) do
    if c.tmp then
      local ok, err = move(c.tmp, c.final)
      if not ok then return nil, err end
    end
  end
  for _, f in ipairs(order) do
    local ok, err = vma.os.fsync_dir(f)
    if not ok then return nil, err end
  end
  return true
end

-- ---- output -------------------------------------------------------------------

local function dry_run_report(a, entries, configs, plan, made)
  local files = ui.array()
  local lines = {}
  if entries and not a.json then lines[#lines + 1] = assert(restoremap.format(entries)) end
  for _, c in ipairs(configs) do
    lines[#lines + 1] = string.format("config %s -> %s\n", c.name, c.final)
    files[#files + 1] = { kind = "config", name = c.name, path = c.final }
  end
  for _, p in ipairs(plan) do
    local new = p.final and (made[p.final] or (p.rbd_create and "a new RBD image"))
    if p.skip then
      lines[#lines + 1] = string.format("device %s: skipped\n", p.dev.name)
    else
      lines[#lines + 1] = string.format("device %s (%d bytes) -> %s%s%s\n", p.dev.name, p.dev.size,
        p.final, p.write_zero and " (writing zeros)"
          or p.clear_data and " (holds data: punched out where the archive has zeros)" or "",
        new and (" (new: " .. new .. ")") or "")
    end
    files[#files + 1] = { kind = p.dev.vmstate and "vmstate" or "disk", name = p.dev.name,
      size = p.dev.size, path = p.final or ui.null, skipped = p.skip or false,
      write_zero = p.write_zero or false, clear_data = p.clear_data or false }
  end
  if a.json then
    ui.out(ui.json { ok = true, dry_run = true, dir = a.dir, files = files }, "\n")
  else
    ui.out(table.concat(lines))
  end
end

local function salvage_report(stats, plan, out)
  local report, lost = ui.array(), 0
  for _, p in ipairs(plan) do
    local m = stats.missing and stats.missing[p.dev.name]
    if m and not p.skip then
      local ranges = ui.array()
      for _, rg in ipairs(m.ranges) do ranges[#ranges + 1] = { offset = rg.offset, length = rg.length } end
      report[#report + 1] = { name = p.dev.name, path = p.final, missing_bytes = m.bytes,
        missing = ranges }
      lost = lost + m.bytes
      if out then
        out:write(string.format("salvage: %s: %s of %s missing (zeros in %s)%s\n", p.dev.name,
          ui.human(m.bytes), ui.human(p.dev.size), p.final, #m.ranges > 0 and ":" or ""))
        for i, rg in ipairs(m.ranges) do
          if i > 20 then
            out:write(string.format("  ... and %d more ranges\n", #m.ranges - 20))
            break
          end
          out:write(string.format("  bytes %d..%d\n", rg.offset, rg.offset + rg.length - 1))
        end
      end
    end
  end
  local damage = ui.array()
  for _, d in ipairs(stats.damage or {}) do
    damage[#damage + 1] = { offset = d.offset, what = d.what }
    if out then out:write(string.format("salvage: at byte %d: %s\n", d.offset, d.what)) end
  end
  return report, damage, lost
end

local function finish_report(a, stats, configs, plan, out)
  local files = ui.array()
  for _, c in ipairs(configs) do files[#files + 1] = { kind = "config", name = c.name, path = c.final } end
  local ndisks, bytes = 0, 0
  for _, p in ipairs(plan) do
    files[#files + 1] = { kind = p.dev.vmstate and "vmstate" or "disk", name = p.dev.name,
      size = p.dev.size, path = p.final or ui.null, skipped = p.skip or false }
    if not p.skip and not p.dev.vmstate then
      ndisks, bytes = ndisks + 1, bytes + p.dev.size
    end
  end
  local report, damage, lost = {}, {}, 0
  if a.salvage then report, damage, lost = salvage_report(stats, plan) end
  local damaged = a.salvage and (lost > 0 or #damage > 0)
  if damaged then salvage_report(stats, plan, io.stderr) end
  if a.verbose then ui.print_totals(stats, out) end
  if a.json then
    local doc = { ok = true, dir = a.dir, files = files, bytes_written = stats.bytes_written,
      seconds = stats.elapsed }
    if a.salvage then
      doc.salvaged = damaged
      doc.devices = report
      doc.damage = damage
    end
    ui.out(ui.json(doc), "\n")
  end
  local what = string.format("%d disk%s, %s", ndisks, ndisks == 1 and "" or "s",
    ui.throughput(bytes, stats.elapsed))
  if damaged then
    ui.summary("extract", string.format("salvaged %d disk%s into %s: %s restored, %s missing "
      .. "(zeros there)", ndisks, ndisks == 1 and "" or "s", a.dir, ui.human(bytes - lost),
      ui.human(lost)), a.quiet)
    return 3
  end
  ui.summary("extract", "restored " .. what .. " into " .. a.dir, a.quiet or a.json)
  return 0
end

-- ---- the command -----------------------------------------------------------------

local function run(args)
  local a, status = ui.parse(parser(), args, "extract")
  if not a then return status end
  local nmaps = (a.map and 1 or 0) + (a.map_script and 1 or 0) + (a.target and 1 or 0)
  if nmaps > 1 then
    return ui.usage("extract", "give only one of -r, --map-script and --target")
  end
  if not tonumber(a.mode, 8) or not a.mode:match("^0?[0-7][0-7][0-7]$") then
    return ui.usage("extract", "bad --mode '" .. a.mode .. "' (octal, e.g. 0600)")
  end
  if a.drives then
    local _, derr = ui.split_list(a.drives, "-d")
    if derr then return ui.usage("extract", derr) end
  end
  -- with --json, stdout carries one JSON document and nothing else
  local out = a.json and io.stderr or nil
  local function fail(msg) return ui.fail("extract", msg, a.json) end
  local ast, dst = vma.os.stat(a.archive), vma.os.lstat(a.dir)
  if ast and ast.type == "directory" and dst and dst.type ~= "directory" then
    return fail(a.archive .. " is a folder and " .. a.dir .. " is not: the archive comes first "
      .. "(vma extract ARCHIVE DIR)")
  end
  if dst then return fail(a.dir .. " already exists") end
  local parent = folder_of(a.dir)
  local pst = vma.os.stat(parent)
  if not pst or pst.type ~= "directory" then
    return fail("cannot create " .. a.dir .. ": no folder " .. parent)
  end
  if a.dry_run then
    local ok, aerr = vma.os.access(parent, "w")
    if not ok then return fail("cannot create " .. a.dir .. ": " .. aerr) end
  end
  -- a map from a FIFO is qmrestore's protocol: it reads DIR/qemu-server.conf
  -- at the CTIME: line, then writes the map
  local mst = a.map and vma.os.stat(a.map)
  if mst and mst.type == "directory" then
    return fail("restore map " .. a.map .. " is a folder, not a file")
  end
  local map_fifo = mst and mst.type == "fifo" or false

  vma.os.catch_signals()
  local r, err = vma.open(a.archive)
  if not r then return fail(err) end
  local configs, cerr = config_files(a, r)
  if not configs then return fail(cerr) end

  local job = new_job(a)
  local function abort(msg)
    -- the failure first: removing what was made may take a while (Ceph)
    local st = fail(msg)
    job:cleanup()
    return st
  end

  local entries, archive, plugin, arg
  if a.map_script or a.target then
    entries, archive, plugin, arg = restoremap.resolve(r, a.archive,
      { script = a.map_script, target = a.target, force = a.force })
    if not entries then return fail(archive) end
  end
  local made, merr = job:prepare(plugin, arg, entries, archive)
  if not made then return abort(merr) end

  if a.map then
    -- qmrestore reads DIR/qemu-server.conf when it sees CTIME:, then writes
    -- the map into the FIFO: the configs are under their final names by then
    if map_fifo and not a.dry_run then
      local ok, werr = job:write_configs(configs, true)
      if not ok then return abort(werr) end
    end
    local pok, perr = pcall(ui.print_content, r, out)
    if not pok then return abort(perr) end
    pok, entries, err = pcall(restoremap.read_file, a.map)
    if not pok then return abort(entries) end
    if not entries then return abort(err) end
  end

  local plan, perr, pstatus = plan_targets(a, r, entries, made)
  if not plan then
    job:cleanup()
    if pstatus == 2 then return ui.usage("extract", perr) end
    return fail(perr)
  end
  if a.dry_run then
    dry_run_report(a, entries, configs, plan, made)
    return 0
  end
  if not (a.map and map_fifo) then
    local ok, werr = job:write_configs(configs, false)
    if not ok then return abort(werr) end
  end
  if vma.os.interrupted() then return abort("interrupted") end

  local ok, stats, xerr = pcall(job.restore, job, r, plan, out)
  if not ok then return abort(stats) end
  if not stats then return abort(xerr) end
  if vma.os.interrupted() then return abort("interrupted") end
  local kept, kerr = job:keep(plan, configs)
  if not kept then return abort(kerr) end
  local fok, code = pcall(finish_report, a, stats, configs, plan, out)
  if not fok then
    io.stderr:write("vma extract: ", tostring(code), "\n")
    return 1
  end
  return code
end

return {
  description = "restore an archive into a folder or onto mapped targets",
  usage = parser():get_help(),
  run = run,
}
