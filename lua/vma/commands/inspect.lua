-- vma inspect ARCHIVE: what the guest in an archive holds, read in the
-- process (and through libguestfs for what the in-process readers cannot
-- read): each disk's partitions and volumes (file system, label, UUID,
-- size, space used), the LVM volume groups, what libguestfs assembles, the
-- operating system and its mount table.
local ui = require "vma.ui"
local files = require "vma.files"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma inspect", ui.text [[
    Tell what the guest in an archive holds: each disk's partition table and volumes (file system,
    label, UUID, size, space used), the LVM volume groups and their logical volumes, the root file
    system chosen (and others that hold an operating system), the operating system
    (/etc/os-release, hostname; for Windows its version through libguestfs, where installed), and
    the mount table from /etc/fstab. What the in-process readers cannot read (btrfs, LUKS, md
    RAID...) is read through libguestfs, where installed. The volume names it prints are those of
    'vma ls VOLUME:/path'.]])
  ui.archive_argument(p, "random")
  ui.json_flag(p)
  files.options(p)
  return p
end

local function vol_info(v, g)
  if (v.label or "") == "" and v.usage == "filesystem" and g then
    -- NTFS keeps its label in a file: the file system knows it
    local fs = g:fs_of(v)
    if fs and fs.label ~= "" then v.label = fs.label end
  end
  local used
  if v.fs_size and v.fs_free then used = v.fs_size - v.fs_free end
  return { name = v.name, start = v.start, size = v.size, fstype = v.fstype or "",
    usage = v.usage, label = v.label ~= "" and v.label or nil, uuid = v.uuid ~= "" and v.uuid or nil,
    part_type = v.part_type, part_uuid = v.part_uuid,
    part_name = v.part_name ~= "" and v.part_name or nil, fs_size = v.fs_size, used = used,
    error = v.probe_error or v.lvm_error or v.unlock_error, truncated = v.truncated or nil,
    holds = v.holds, engine = v.engine, from = v.from }
end

local function run(args)
  local a, r, g, unwait = files.parse_open(parser(), args, "inspect")
  if not a then return r end
  local info = g.info
  local report = { ok = true, disks = ui.array(), lvm = ui.array(), mounts = ui.array() }
  for _, d in ipairs(info.disks) do
    local t = d.table
    local item = { name = (require("vma.devices").key_of(d.name)) or d.name, device = d.name,
      size = d.size, partition_table = t and t.scheme or nil, disk_uuid = t and t.disk_uuid or nil,
      warning = t and t.warning or nil, volumes = ui.array() }
    for _, v in ipairs(d.volumes) do item.volumes[#item.volumes + 1] = vol_info(v, g) end
    report.disks[#report.disks + 1] = item
  end
  for _, vg in ipairs(info.vgs) do
    local item = { name = vg.name, id = vg.id, pvs = ui.array(vg.pvs), missing = ui.array(vg.missing),
      error = vg.error, lvs = ui.array() }
    for _, lv in ipairs(vg.lvs) do
      local x = lv.volume and vol_info(lv.volume, g) or { name = lv.name, size = lv.size }
      x.reason = lv.reason
      item.lvs[#item.lvs + 1] = x
    end
    table.sort(item.lvs, function(x, y) return x.name < y.name end)
    report.lvm[#report.lvm + 1] = item
  end
  -- what only libguestfs assembles (md RAID, LVM inside LUKS, dynamic disks)
  if info.assembled and #info.assembled > 0 then
    report.assembled = ui.array()
    for _, v in ipairs(info.assembled) do report.assembled[#report.assembled + 1] = vol_info(v, g) end
  end
  if info.engine_notes then report.notes = ui.array(info.engine_notes) end
  report.root = g.root and g.root.name or nil
  report.root_error = g.root_error
  report.others = #g.others > 0 and ui.array(g.others) or nil
  local o = g:os()
  if o then
    local rel = o.release or {}
    report.os = { kind = o.kind, id = rel.ID, name = rel.NAME, version = rel.VERSION_ID,
      pretty_name = rel.PRETTY_NAME, hostname = o.hostname or nil, system32 = o.system32 }
    if o.kind == "windows" then
      -- its version is in the registry: libguestfs's inspection reads it
      local det, why = g:os_info()
      if det then
        report.os.product_name, report.os.version = det.product_name, det.version
        report.os.edition, report.os.build = det.product_variant, det.build_id
        report.os.arch, report.os.hostname = det.arch, det.hostname
        report.os.systemroot = det.systemroot
      else
        report.os.version_error = why
      end
    end
  end
  if g.root then
    for _, m in ipairs(g:mount_table()) do
      report.mounts[#report.mounts + 1] = { path = m.path, volume = m.volume, spec = m.spec,
        fstype = m.fstype, options = m.options, error = m.error, guessed = m.guessed,
        subvol = m.subvol, engine = m.engine }
    end
  end
  for _, m in ipairs(g.skipped_mounts) do
    report.mounts[#report.mounts + 1] = { path = m.path, spec = m.spec, fstype = m.type,
      skipped = m.reason }
  end

  if a.json then
    ui.out(ui.json(report, { "ok", "disks", "lvm", "assembled", "root", "os", "mounts" }), "\n")
  else
    local out = {}
    local function w(...) out[#out + 1] = table.concat({ ... }) end
    local function vline(v, indent)
      local fs = v.fstype ~= "" and v.fstype or "-"
      local extra = {}
      if v.label then extra[#extra + 1] = "label " .. files.escape(v.label) end
      if v.uuid then extra[#extra + 1] = "UUID " .. files.escape(v.uuid) end
      if v.part_name then extra[#extra + 1] = "name " .. files.escape(v.part_name) end
      if v.used and v.fs_size then
        extra[#extra + 1] = string.format("used %s of %s", ui.human(v.used), ui.human(v.fs_size))
      end
      if v.holds then extra[#extra + 1] = "holds " .. files.escape(v.holds) end
      if v.from then extra[#extra + 1] = v.from end
      if v.engine then extra[#extra + 1] = "read by " .. v.engine end
      if v.reason then extra[#extra + 1] = "not read: " .. v.reason end
      if v.error then extra[#extra + 1] = "error: " .. v.error end
      w(string.format("%s%-12s %10s  %-8s %s", indent, v.name, v.size and ui.human(v.size) or "?",
        fs, table.concat(extra, ", ")))
    end
    for _, d in ipairs(report.disks) do
      w(string.format("disk %s (%s): %s, %s", d.name, d.device, ui.human(d.size),
        d.partition_table and (d.partition_table:upper() .. " partition table") or "no partition table"))
      if d.warning then w("  warning: ", d.warning) end
      for _, v in ipairs(d.volumes) do vline(v, "  ") end
    end
    for _, vg in ipairs(report.lvm) do
      w(string.format("LVM volume group %s on %s%s", vg.name, table.concat(vg.pvs, ", "),
        #vg.missing > 0 and (" (missing PVs: " .. table.concat(vg.missing, ", ") .. ")") or ""))
      if vg.error then w("  error: ", vg.error) end
      for _, lv in ipairs(vg.lvs) do vline(lv, "  ") end
    end
    if report.assembled then
      w("assembled by libguestfs:")
      for _, v in ipairs(report.assembled) do vline(v, "  ") end
    end
    if report.os then
      local os_ = report.os
      if os_.kind == "windows" and os_.product_name then
        w("operating system: ", files.escape(os_.product_name),
          os_.version and (" (" .. os_.version .. (os_.build and (", build " .. files.escape(os_.build)) or "")
            .. ")") or "", " on ", report.root)
        if os_.hostname then w("hostname: ", files.escape(os_.hostname)) end
      elseif os_.kind == "windows" then
        w("operating system: Windows", os_.system32 and " (Windows\\System32 present)" or "",
          " on ", report.root, "; its version needs libguestfs: ", os_.version_error or "?")
      else
        w("operating system: ", files.escape(os_.pretty_name or os_.name or os_.id or "Linux"),
          " on ", report.root)
        if os_.hostname then w("hostname: ", files.escape(os_.hostname)) end
      end
    elseif report.root then
      w("root file system: ", report.root, " (no operating system found in it)")
    end
    if report.root_error then w("root: ", report.root_error) end
    for _, n in ipairs(report.notes or {}) do w("note: ", n) end
    if report.others then w("others holding an operating system: ", table.concat(report.others, ", ")) end
    if #report.mounts > 1 or (report.mounts[1] and report.mounts[1].path ~= "/") then
      w("mounts (/etc/fstab):")
      for _, m in ipairs(report.mounts) do
        local note = m.error and ("error: " .. m.error) or m.skipped and ("not mounted: " .. m.skipped)
          or m.guessed and "(the disk is a guess)" or ""
        if m.subvol then note = "subvolume " .. files.escape(m.subvol) .. (note ~= "" and (", " .. note) or "") end
        w(string.format("  %-16s %-12s %-6s %s %s", files.escape(m.path), m.volume or "-",
          m.fstype or "-", files.escape(m.spec or ""), note))
      end
    end
    ui.out(table.concat(out, "\n"), "\n")
  end
  files.close(r, g, unwait)
  return 0
end

return {
  description = "tell the partitions, volumes, file systems and OS of the guest in an archive",
  usage = parser():get_help(),
  run = run,
}
