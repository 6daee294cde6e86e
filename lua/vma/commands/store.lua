-- vma store DIR... : every VMA archive under the folders, grouped by VM,
-- with what the catalog knows of each (vma.store.inventory); a table that
-- fits the terminal, JSON, or a self-contained HTML page (vma.storehtml).
local vma = require "vma"
local ui = require "vma.ui"
local store = require "vma.store"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma store", ui.text [[
    Show every VMA archive under the folders (plain, .zst, .gz, .lzo; vzdump names and others),
    grouped by VM: time, size on storage, logical size, disks, compression, notes, protection, the
    vzdump log's verdict, and from the catalog (vma catalog) the data stored, the last
    verification and the share of each disk rewritten since the backup before. Nothing is written,
    except --html's page.]])
  p:argument("dirs", "the folders"):args("+")
  p:option("--db", "the catalog file (default each folder's .vma-catalog.sqlite, when there "
    .. "is one)"):argname("PATH")
  p:option("--vmid", "only the backups of this VM"):argname("N")
  p:option("--html", "write a self-contained HTML page (inline SVG, no script or style "
    .. "from anywhere) to FILE"):argname("FILE")
  p:flag("-f --force", "replace an existing --html file")
  ui.json_flag(p)
  return p
end

local function pct(x)
  if x == nil then return "" end
  if x > 0 and x < 0.001 then return "<0.1%" end
  return string.format("%.1f%%", x * 100)
end

local function verified_text(e)
  if e.status == "broken" then return "BROKEN" end
  if not e.verified then return e.catalogued and "no" or "" end
  local day = os.date("%Y-%m-%d", e.verified.time)
  return e.verified.ok and ("ok " .. day) or ("FAILED " .. day)
end

local function log_text(e)
  if not e.log then return "-" end
  if e.log.verdict == "ok" and (e.log.warnings or 0) > 0 then
    return string.format("ok, %d warn", e.log.warnings)
  end
  return e.log.verdict
end

local function first_line(s, n)
  if not s then return "" end
  local line = s:match("[^\n]*") or ""
  if #line > n then line = line:sub(1, n - 3) .. "..." end
  return line
end

-- columns: header, cell function, priority (the lowest go first when the
-- table does not fit), the last one (FILE) is cut instead
local COLUMNS = {
  { "TIME", function(e) return store.time_string(e) end, 100 },
  { "SIZE", function(e) return ui.human(e.size) end, 90 },
  { "LOGICAL", function(e) return e.logical_size and ui.human(e.logical_size) or "?" end, 60 },
  { "DATA", function(e) return e.data_bytes and ui.human(e.data_bytes) or "" end, 30 },
  { "DISKS", function(e) return e.disks and tostring(#e.disks) or "?" end, 20 },
  { "COMP", function(e) return e.compression or "?" end, 25 },
  { "REWRITTEN", function(e) return pct(e.rewritten_share) end, 50 },
  { "VERIFIED", verified_text, 80 },
  { "LOG", log_text, 40 },
  { "PROT", function(e) return e.protected and "yes" or "" end, 70 },
  { "NOTES", function(e) return first_line(e.notes, 24) end, 10 },
  { "FILE", function(e) return e.rel end, 1000 },
}

local function fit(rows, width)
  local cols = {}
  for i, c in ipairs(COLUMNS) do cols[i] = { i = i, head = c[1], prio = c[3] } end
  local function widths()
    local total = 0
    for _, c in ipairs(cols) do
      c.w = #c.head
      for _, r in ipairs(rows) do c.w = math.max(c.w, #r[c.i]) end
      total = total + c.w + 2
    end
    return total - 2
  end
  -- drop empty optional columns first, then the least important
  for k = #cols, 1, -1 do
    local c = cols[k]
    local empty = true
    for _, r in ipairs(rows) do if r[c.i] ~= "" then empty = false break end end
    if empty and c.head ~= "FILE" and c.prio < 100 then table.remove(cols, k) end
  end
  while widths() > width and #cols > 3 do
    local low
    for k, c in ipairs(cols) do
      if c.head ~= "FILE" and (not low or c.prio < cols[low].prio) then low = k end
    end
    -- the file name cut to 20 characters first
    local file = cols[#cols]
    local rest = widths() - file.w
    if rest + 2 + 20 <= width then break end
    table.remove(cols, low)
  end
  widths()
  return cols
end

local function render_table(groups, width)
  local out = {}
  for gi, g in ipairs(groups) do
    if gi > 1 then out[#out + 1] = "" end
    local title = g.vmid and string.format("VM %s (%s)", g.vmid, g.type or "qemu") or "other archives"
    if g.name then title = title .. " " .. g.name end
    local head = string.format("%s: %d backup%s, %s on storage, newest %s", title, g.count,
      g.count == 1 and "" or "s", ui.human(g.size),
      g.archives[1] and store.time_string(g.archives[1]) or "-")
    if #g.gaps > 0 then
      head = head .. string.format(", %d gap%s longer than usual", #g.gaps, #g.gaps == 1 and "" or "s")
    end
    out[#out + 1] = head:sub(1, math.max(20, width))
    local rows = {}
    for _, e in ipairs(g.archives) do
      local r = {}
      for i, c in ipairs(COLUMNS) do r[i] = c[2](e) end
      rows[#rows + 1] = r
    end
    local cols = fit(rows, width - 2)
    local function line(cells)
      local parts, used = {}, 0
      for k, c in ipairs(cols) do
        local v = cells[c.i]
        if k < #cols then
          parts[#parts + 1] = v .. string.rep(" ", c.w - #v)
          used = used + c.w + 2
        else
          local room = math.max(8, width - 2 - used)
          if #v > room then v = "..." .. v:sub(#v - room + 4) end
          parts[#parts + 1] = v
        end
      end
      return "  " .. table.concat(parts, "  ")
    end
    local hdr = {}
    for i, c in ipairs(COLUMNS) do hdr[i] = c[1] end
    out[#out + 1] = line(hdr)
    for _, r in ipairs(rows) do out[#out + 1] = line(r) end
  end
  return table.concat(out, "\n") .. "\n"
end

local function json_of(groups, dirs, used)
  local vms = ui.array()
  for _, g in ipairs(groups) do
    local backups = ui.array()
    for _, e in ipairs(g.archives) do
      local disks = ui.array()
      for _, d in ipairs(e.disks or {}) do
        disks[#disks + 1] = { name = d.name, size = d.size, data_bytes = d.data_bytes,
          zero_bytes = d.zero_bytes }
      end
      local rw
      if e.rewritten then
        rw = ui.array()
        for _, x in ipairs(e.rewritten) do
          rw[#rw + 1] = { name = x.name, share = x.share, changed_bytes = x.changed_bytes }
        end
      end
      backups[#backups + 1] = {
        file = e.name, path = e.path, rel = e.rel, time = store.time_string(e),
        ctime = e.ctime, size = e.size, logical_size = e.logical_size, data_bytes = e.data_bytes,
        zero_bytes = e.zero_bytes, disks = disks, vmstate = e.vmstate,
        compression = e.compression, uuid = e.uuid, notes = e.notes,
        protected = e.protected and true or false,
        log = e.log and { verdict = e.log.verdict, message = e.log.message,
                          warnings = e.log.warnings } or ui.null,
        verified = e.verified and { ok = e.verified.ok, time = e.verified.time,
                                    message = e.verified.message } or ui.null,
        status = e.status, error = e.error, catalogued = e.catalogued and true or false,
        files = e.files, rewritten = rw, rewritten_share = e.rewritten_share,
        gap_before = e.gap_before,
      }
    end
    vms[#vms + 1] = { key = g.key, vmid = g.vmid and math.tointeger(tonumber(g.vmid)) or ui.null,
      type = g.type, name = g.name, count = g.count, size = g.size,
      logical_size = g.logical_size, interval = g.interval, gaps = #g.gaps, backups = backups }
  end
  return ui.json({ ok = true, dirs = ui.array(dirs), catalogs = ui.array(used), vms = vms },
    { "ok", "dirs", "catalogs", "vms" })
end

local function run(args)
  local a, st = ui.parse(parser(), args, "store")
  if not a then return st end
  if a.vmid and not a.vmid:match("^%d+$") then
    return select(2, ui.usage_error("store", "--vmid: a number, not '" .. a.vmid .. "'"))
  end
  if a.html and a.json then
    return select(2, ui.usage_error("store", "--html and --json cannot be used together"))
  end
  local groups, used, problems = store.inventory(a.dirs, { db = a.db, vmid = a.vmid })
  if not groups then return ui.fail("store", used, a.json) end
  for _, p in ipairs(problems) do io.stderr:write("vma store: ", p, "\n") end
  if a.html then
    local html = require("vma.storehtml").render(groups, { dirs = a.dirs, catalogs = used })
    local ok, err = require("vma.storehtml").write(a.html, html, a.force)
    if not ok then return ui.fail("store", err) end
    local n = 0
    for _, g in ipairs(groups) do n = n + g.count end
    ui.summary("store", string.format("wrote %s (%d VM%s, %d archive%s)", a.html, #groups,
      #groups == 1 and "" or "s", n, n == 1 and "" or "s"), false)
    return 0
  end
  if a.json then
    ui.out(json_of(groups, a.dirs, used), "\n")
    return 0
  end
  if #groups == 0 then
    ui.out("no VMA archives under " .. table.concat(a.dirs, ", ") .. "\n")
    return 0
  end
  local width = vma.os.isatty(1) and vma.os.terminal_width(1) or 200
  ui.out(render_table(groups, width))
  if #used == 0 then
    io.stderr:write("vma store: no catalog: run 'vma catalog ", a.dirs[1], "' for the data "
      .. "stored, and with --verify, verification and rewritten shares\n")
  end
  return 0
end

return {
  description = "show every archive under folders, grouped by VM (table, JSON, HTML)",
  usage = parser():get_help(),
  run = run,
}
