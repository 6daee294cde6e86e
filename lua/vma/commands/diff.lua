-- vma diff A B: what changed between two backups of one VM: per disk the
-- 64 KiB clusters that differ (from the catalog's digests when both have
-- them, else by reading both), and with --files the guest's files added,
-- removed and changed.
local vma = require "vma"
local ui = require "vma.ui"
local catalog = require "vma.catalog"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma diff", ui.text [[
    Compare two backups of one VM (A the older, B the newer): for each disk the bytes and ranges
    that differ, 64 KiB cluster by cluster (from the catalog's cluster digests when both archives
    have them, else by reading both), and a summary line with the share of each disk rewritten.
    With --files, the guest's files added, removed and changed (from the catalog's file lists,
    else read from both).]])
  p:argument("a", "the older backup")
  p:argument("b", "the newer backup")
  p:flag("--files", "compare the guest's files too")
  p:flag("--read", "read both archives even when the catalog has their digests")
  p:option("--db", "the catalog (default each archive's folder's .vma-catalog.sqlite)")
    :argname("PATH")
  p:option("--ranges", "print at most N ranges per disk (default 20; JSON has them all)")
    :argname("N")
  ui.json_flag(p)
  p:flag("-q --quiet", "no progress")
  return p
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- the catalog record of an archive (same identity), and the catalog
local function recorded(path, r, db, cats)
  local cpath = db or catalog.path_for(dirname(path))
  if not vma.os.stat(cpath) then return nil end
  local cat = cats[cpath]
  if cat == nil then
    local err
    cat, err = catalog.open(cpath, { readonly = true })
    if not cat then error(err, 0) end
    cats[cpath] = cat
  end
  local st = vma.os.stat(path)
  local row = cat:archive(cat:key_of(path))
  if row and st and row.size == st.size and row.mtime == st.mtime and
     row.header_md5 == r.header_md5 then
    return row, cat
  end
  return nil, cat
end

local function share_text(changed, length)
  if length == 0 then return "0%" end
  local x = changed / length
  if x > 0 and x < 0.001 then return "<0.1%" end
  return string.format("%.1f%%", x * 100)
end

-- ---- files ----

local function file_list(path, r, row, cat)
  if row and row.files then return cat:files(row.id), "catalog" end
  local list, err = require("vma.storefiles").list(r)
  if not list then return nil, string.format("%s: %s", path, tostring(err)) end
  return list, "read"
end

local function file_changes(fa, fb)
  local by = {}
  for _, f in ipairs(fa) do by[f.path] = f end
  local out = {}
  local seen = {}
  for _, f in ipairs(fb) do
    seen[f.path] = true
    local o = by[f.path]
    if not o then
      out[#out + 1] = { change = "added", path = f.path, new = f }
    else
      local what = {}
      if o.type ~= f.type then what[#what + 1] = "type" end
      if o.size ~= f.size then what[#what + 1] = "size" end
      if (o.hash or "") ~= (f.hash or "") then what[#what + 1] = "content" end
      if o.mtime ~= f.mtime then what[#what + 1] = "mtime" end
      if o.mode ~= f.mode then what[#what + 1] = "mode" end
      if (o.target or "") ~= (f.target or "") then what[#what + 1] = "target" end
      if #what > 0 then
        out[#out + 1] = { change = "changed", path = f.path, old = o, new = f, what = what }
      end
    end
  end
  for _, f in ipairs(fa) do
    if not seen[f.path] then out[#out + 1] = { change = "removed", path = f.path, old = f } end
  end
  table.sort(out, function(x, y) return x.path < y.path end)
  return out
end

local function file_json(f)
  if not f then return nil end
  return { type = f.type, size = f.size, mode = f.mode, mtime = f.mtime, hash = f.hash,
           target = f.target }
end

-- ---- the command ----

local function run(args)
  local a, st = ui.parse(parser(), args, "diff")
  if not a then return st end
  local max_ranges, rerr = ui.whole_number("diff", "--ranges", a.ranges, 20)
  if rerr then return rerr end
  local cats = {}
  local function close_all(...)
    for _, c in pairs(cats) do c:close() end
    return ...
  end
  local ra, err = vma.open(a.a)
  if not ra then return ui.fail("diff", err, a.json) end
  local rb
  rb, err = vma.open(a.b)
  if not rb then return ui.fail("diff", err, a.json) end
  vma.os.catch_signals()
  local ok, res = pcall(function()
    local vz = require "vma.vzdump"
    local va, vb = vz.parse(a.a:match("[^/]*$")), vz.parse(a.b:match("[^/]*$"))
    if va and vb and va.vmid ~= vb.vmid and not a.json then
      io.stderr:write(string.format("vma diff: note: %s is a backup of VM %s, %s of VM %s\n",
        a.a, va.vmid, a.b, vb.vmid))
    end
    local rowa, cata = recorded(a.a, ra, a.db, cats)
    local rowb, catb = recorded(a.b, rb, a.db, cats)
    local disks_a, disks_b = {}, {}
    for _, d in ipairs(ra:devices()) do if not d.vmstate then disks_a[#disks_a + 1] = d end end
    for _, d in ipairs(rb:devices()) do if not d.vmstate then disks_b[#disks_b + 1] = d end end
    local cat_disks_a, cat_disks_b = {}, {}
    if rowa and rowa.digests == 1 then
      for _, d in ipairs(cata:disks(rowa.id)) do cat_disks_a[d.name] = d end
    end
    if rowb and rowb.digests == 1 then
      for _, d in ipairs(catb:disks(rowb.id)) do cat_disks_b[d.name] = d end
    end
    local by_b = {}
    for _, d in ipairs(disks_b) do by_b[d.name] = d end
    local results = {}
    local total = 0
    for _, d in ipairs(disks_a) do
      if by_b[d.name] then total = total + math.max(d.size, by_b[d.name].size) end
    end
    local prog = ui.progress { quiet = a.quiet or a.json, label = "vma diff: " }
    local t0, base = vma.os.clock(), 0
    for _, d in ipairs(disks_a) do
      local e = by_b[d.name]
      if not e then
        results[#results + 1] = { name = d.name, change = "removed", size_a = d.size }
      else
        local ca, cb = cat_disks_a[d.name], cat_disks_b[d.name]
        local diff, how
        if ca and cb and ca.has_digests == 1 and cb.has_digests == 1 and not a.read then
          diff = assert(vma.diff_digests(cata:digests(rowa.id, ca.dev_id), d.size,
            catb:digests(rowb.id, cb.dev_id), e.size))
          how = "digests"
        else
          local da = assert(ra:disk(d.name))
          local db = assert(rb:disk(e.name))
          local derr, dkind
          diff, derr, dkind = vma.diff(da, db, { progress = function(p)
            prog.update(base + p.done, total, vma.os.clock() - t0)
          end })
          da:close()
          db:close()
          if not diff then
            if dkind == "interrupted" then error("interrupted", 0) end
            error(derr, 0)
          end
          how = "read"
        end
        base = base + math.max(d.size, e.size)
        results[#results + 1] = { name = d.name, change = diff.changed_bytes > 0 and "changed"
          or "same", size_a = d.size, size_b = e.size, diff = diff, how = how }
      end
    end
    prog.finish()
    local by_a = {}
    for _, d in ipairs(disks_a) do by_a[d.name] = true end
    for _, d in ipairs(disks_b) do
      if not by_a[d.name] then
        results[#results + 1] = { name = d.name, change = "added", size_b = d.size }
      end
    end
    local files
    if a.files then
      local fa, how_a = file_list(a.a, ra, rowa, cata)
      if not fa then error(how_a, 0) end
      local fb, how_b = file_list(a.b, rb, rowb, catb)
      if not fb then error(how_b, 0) end
      files = { changes = file_changes(fa, fb), from = (how_a == how_b) and how_a or "both" }
    end
    return { disks = results, files = files }
  end)
  ra:close()
  rb:close()
  close_all()
  if not ok then return ui.fail("diff", res, a.json) end

  -- the summary line: the share of each disk rewritten
  local summary = {}
  for _, r in ipairs(res.disks) do
    if r.change == "added" then
      summary[#summary + 1] = r.name .. " added"
    elseif r.change == "removed" then
      summary[#summary + 1] = r.name .. " removed"
    else
      summary[#summary + 1] = string.format("%s %s rewritten", r.name,
        share_text(r.diff.changed_bytes, r.diff.length))
    end
  end
  if a.json then
    local disks = ui.array()
    for _, r in ipairs(res.disks) do
      local ranges
      if r.diff then
        ranges = ui.array()
        for _, x in ipairs(r.diff.ranges) do ranges[#ranges + 1] = { offset = x.offset, length = x.length } end
      end
      disks[#disks + 1] = { name = r.name, change = r.change, size_a = r.size_a, size_b = r.size_b,
        changed_bytes = r.diff and r.diff.changed_bytes, length = r.diff and r.diff.length,
        share = r.diff and (r.diff.length > 0 and r.diff.changed_bytes / r.diff.length or 0),
        clusters = r.diff and r.diff.clusters, changed_clusters = r.diff and r.diff.changed_clusters,
        ranges = ranges, from = r.how }
    end
    local out = { ok = true, a = a.a, b = a.b, disks = disks, summary = table.concat(summary, ", ") }
    if res.files then
      local list = ui.array()
      for _, c in ipairs(res.files.changes) do
        local p, escaped = require("vma.storecmd").printable(c.path)
        list[#list + 1] = { change = c.change, path = p, path_escaped = escaped or nil,
          what = c.what and ui.array(c.what),
          old = file_json(c.old), new = file_json(c.new) }
      end
      out.files = list
      out.files_from = res.files.from
    end
    ui.out(ui.json(out, { "ok", "a", "b", "summary", "disks", "files" }), "\n")
    return 0
  end
  local lines = {}
  for _, r in ipairs(res.disks) do
    if r.change == "added" then
      lines[#lines + 1] = string.format("%s: only in B (%s)", r.name, ui.human(r.size_b))
    elseif r.change == "removed" then
      lines[#lines + 1] = string.format("%s: only in A (%s)", r.name, ui.human(r.size_a))
    else
      local dd = r.diff
      local sizes = r.size_a == r.size_b and ui.human(r.size_a)
        or (ui.human(r.size_a) .. " -> " .. ui.human(r.size_b))
      lines[#lines + 1] = string.format("%s: %s, %s differ (%s) in %d range%s (from %s)", r.name,
        sizes, ui.human(dd.changed_bytes), share_text(dd.changed_bytes, dd.length),
        dd.range_count, dd.range_count == 1 and "" or "s",
        r.how == "digests" and "the catalog's digests" or "reading both")
      for i, x in ipairs(dd.ranges) do
        if i > max_ranges then
          lines[#lines + 1] = string.format("  ... and %d more (--ranges N, --json)", #dd.ranges - max_ranges)
          break
        end
        lines[#lines + 1] = string.format("  %d+%d  (%s at %s)", x.offset, x.length,
          ui.human(x.length), ui.human(x.offset))
      end
    end
  end
  if res.files then
    local n = { added = 0, removed = 0, changed = 0 }
    for _, c in ipairs(res.files.changes) do
      n[c.change] = n[c.change] + 1
      local mark = c.change == "added" and "+" or c.change == "removed" and "-" or "M"
      local detail = ""
      if c.change == "changed" then
        detail = "  (" .. table.concat(c.what, ", ")
        if c.old.size ~= c.new.size then
          detail = detail .. string.format("; %d -> %d bytes", c.old.size, c.new.size)
        end
        detail = detail .. ")"
      end
      lines[#lines + 1] = string.format("%s %s%s", mark, (require("vma.storecmd").printable(c.path)), detail)
    end
    summary[#summary + 1] = string.format("files: %d added, %d removed, %d changed", n.added,
      n.removed, n.changed)
  end
  lines[#lines + 1] = "summary: " .. table.concat(summary, ", ")
  ui.out(table.concat(lines, "\n"), "\n")
  return 0
end

return {
  description = "what changed between two backups: disk clusters and guest files",
  usage = parser():get_help(),
  run = run,
}
