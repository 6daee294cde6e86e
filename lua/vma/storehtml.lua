-- vma.storehtml - the picture of a store (vma store DIR --html FILE): one
-- self-contained HTML page, inline SVG and style, a few lines of inline
-- script (ages as "3 days ago"), nothing fetched from anywhere (a Content
-- Security Policy that allows no source at all says so to the browser).
--
-- Per VM: a summary, the timeline of its backups (size on storage and
-- logical size as bars, a mark for verified, failed, broken and protected
-- ones, gaps longer than 1.5 times its usual interval in red), the share of
-- each disk rewritten since the backup before (from the catalog's cluster
-- digests: vma catalog --verify) as bars, red above half, and a table.

local ui = require "vma.ui"
local store = require "vma.store"

local M = {}

local function esc(s)
  s = tostring(s == nil and "" or s)
  return (s:gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&#39;" }))
end
M.escape = esc

local function fmt(x) return string.format("%.1f", x) end

local STYLE = [[
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .3em; border-bottom: 1px solid #ccc; }
.meta { color: #555; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: 2px 8px; text-align: left; border-bottom: 1px solid #eee; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b00; font-weight: bold; }
.ok { color: #070; }
.warn { color: #b60; }
svg { display: block; width: 100%; max-width: 1000px; height: auto; margin: .4em 0; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
.legend span { margin-right: 1.2em; }
.sw { display: inline-block; width: .9em; height: .9em; vertical-align: -1px; margin-right: .3em; }
.notes { color: #555; white-space: normal; max-width: 30em; }
.wrap { overflow-x: auto; }
]]

local SCRIPT = [[
(function () {
  var now = Date.now() / 1000;
  function age(s) {
    var d = now - s;
    if (d < 0) return "in the future";
    if (d < 3600) return Math.round(d / 60) + " min ago";
    if (d < 86400 * 2) return Math.round(d / 3600) + " h ago";
    return Math.round(d / 86400) + " days ago";
  }
  var els = document.querySelectorAll("[data-t]");
  for (var i = 0; i < els.length; i++) {
    els[i].textContent = age(parseFloat(els[i].getAttribute("data-t")));
  }
  document.documentElement.setAttribute("data-ready", String(document.querySelectorAll("section.vm").length));
})();
]]

local W, H = 1000, 190     -- the timeline's viewBox
local L, R = 60, 20        -- margins left and right
local TOP, BASE = 28, 150  -- bars from BASE up to TOP

local function x_of(t, t0, t1)
  if t1 <= t0 then return L + (W - L - R) / 2 end
  return L + (W - L - R) * (t - t0) / (t1 - t0)
end

local function status_of(e)
  if e.status == "broken" then return "broken", "#c00" end
  if e.verified and not e.verified.ok then return "verification failed", "#c00" end
  if e.status == "incomplete" then return "incomplete", "#c00" end
  if e.verified then return "verified", "#2a2" end
  return "not verified", "#999"
end

local function timeline(g)
  local out = {}
  local list = {}
  for i = #g.archives, 1, -1 do list[#list + 1] = g.archives[i] end -- oldest first
  local t0, t1 = store.sort_time(list[1]), store.sort_time(list[#list])
  local max = 1
  for _, e in ipairs(list) do max = math.max(max, e.size or 0, e.logical_size or 0) end
  out[#out + 1] = string.format('<svg class="timeline" viewBox="0 0 %d %d" role="img" '
    .. 'aria-label="backups of %s over time">', W, H, esc(g.key))
  -- scale
  out[#out + 1] = string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>',
    L, BASE, W - R, BASE)
  out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="end">%s</text>', L - 6, TOP + 4,
    esc(ui.human(max)))
  out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="end">0</text>', L - 6, BASE)
  -- gaps: the axis between the two backups in red
  for _, gap in ipairs(g.gaps) do
    local xa = x_of(store.sort_time(gap.older), t0, t1)
    local xb = x_of(store.sort_time(gap.newer), t0, t1)
    out[#out + 1] = string.format('<g class="gap"><title>gap of %.1f days (usual interval '
      .. '%.1f days)</title><line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#d00" '
      .. 'stroke-width="5"/><text x="%s" y="%d" text-anchor="middle" style="fill:#d00">gap '
      .. '%.1f d</text></g>', gap.seconds / 86400, g.interval / 86400, fmt(xa), BASE + 3,
      fmt(xb), BASE + 3, fmt((xa + xb) / 2), BASE + 18, gap.seconds / 86400)
  end
  local bw = math.max(3, math.min(18, (W - L - R) / math.max(1, #list) * 0.6))
  for _, e in ipairs(list) do
    local x = x_of(store.sort_time(e), t0, t1)
    local hl = (e.logical_size or 0) / max * (BASE - TOP)
    local hs = (e.size or 0) / max * (BASE - TOP)
    local what, color = status_of(e)
    local tip = string.format("%s&#10;%s&#10;on storage %s, logical %s&#10;%s%s", esc(e.rel),
      esc(store.time_string(e)), esc(ui.human(e.size)),
      esc(e.logical_size and ui.human(e.logical_size) or "?"), esc(what),
      e.protected and ", protected" or "")
    out[#out + 1] = string.format('<g class="backup"><title>%s</title>', tip)
    out[#out + 1] = string.format('<rect x="%s" y="%s" width="%s" height="%s" fill="#cfd8e6"/>',
      fmt(x - bw / 2), fmt(BASE - hl), fmt(bw), fmt(hl))
    out[#out + 1] = string.format('<rect x="%s" y="%s" width="%s" height="%s" fill="#3b6fb6"/>',
      fmt(x - bw / 4), fmt(BASE - hs), fmt(bw / 2), fmt(hs))
    out[#out + 1] = string.format('<circle cx="%s" cy="%d" r="5" fill="%s"/>', fmt(x), TOP - 14,
      color)
    if e.status == "broken" then
      out[#out + 1] = string.format('<text x="%s" y="%d" text-anchor="middle" '
        .. 'style="fill:#c00;font-weight:bold">&#215;</text>', fmt(x), BASE - 4)
    end
    if e.protected then
      out[#out + 1] = string.format('<rect x="%s" y="%d" width="8" height="8" fill="#e6b800">'
        .. '<title>protected</title></rect>', fmt(x + 6), TOP - 18)
    end
    out[#out + 1] = "</g>"
  end
  -- dates under the first and the last
  out[#out + 1] = string.format('<text x="%s" y="%d" text-anchor="start">%s</text>',
    fmt(x_of(t0, t0, t1) - 10), H - 6, esc(store.time_string(list[1])))
  if #list > 1 and x_of(t1, t0, t1) - x_of(t0, t0, t1) > 260 then
    out[#out + 1] = string.format('<text x="%s" y="%d" text-anchor="end">%s</text>',
      fmt(x_of(t1, t0, t1) + 10), H - 6, esc(store.time_string(list[#list])))
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

local RH = 110 -- the rewritten chart's height

local function rewritten_chart(g)
  local list, any = {}, false
  for i = #g.archives, 1, -1 do
    local e = g.archives[i]
    list[#list + 1] = e
    if e.rewritten then any = true end
  end
  if not any then return nil end
  local t0, t1 = store.sort_time(list[1]), store.sort_time(list[#list])
  local out = {}
  local top, base = 14, RH - 22
  out[#out + 1] = string.format('<svg class="rewritten" viewBox="0 0 %d %d" role="img" '
    .. 'aria-label="share of each disk rewritten since the backup before">', W, RH)
  out[#out + 1] = string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>', L, base,
    W - R, base)
  out[#out + 1] = string.format('<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#d00" '
    .. 'stroke-dasharray="4 3"/>', L, fmt(base - (base - top) / 2), W - R, fmt(base - (base - top) / 2))
  out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="end">100%%</text>', L - 6, top + 4)
  out[#out + 1] = string.format('<text x="%d" y="%s" text-anchor="end">50%%</text>', L - 6,
    fmt(base - (base - top) / 2 + 4))
  out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="end">0</text>', L - 6, base)
  local slot = math.max(4, math.min(24, (W - L - R) / math.max(1, #list) * 0.7))
  for _, e in ipairs(list) do
    if e.rewritten and #e.rewritten > 0 then
      local x = x_of(store.sort_time(e), t0, t1)
      local bw = slot / #e.rewritten
      for k, d in ipairs(e.rewritten) do
        local h = d.share * (base - top)
        local color = d.share > 0.5 and "#d00" or d.share > 0.2 and "#e80" or "#4a4"
        out[#out + 1] = string.format('<rect x="%s" y="%s" width="%s" height="%s" fill="%s">'
          .. '<title>%s %s: %.1f%% rewritten (%s) since the backup before</title></rect>',
          fmt(x - slot / 2 + (k - 1) * bw), fmt(base - math.max(h, 0.5)), fmt(math.max(1, bw - 1)),
          fmt(math.max(h, 0.5)), color, esc(store.time_string(e)), esc(d.name), d.share * 100,
          esc(ui.human(d.changed_bytes)))
      end
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

local function verified_cell(e)
  if e.status == "broken" then return '<td class="bad">broken</td>' end
  if not e.verified then return '<td>' .. (e.catalogued and "no" or "") .. '</td>' end
  if e.verified.ok then
    return string.format('<td class="ok">ok, %s</td>', esc(os.date("%Y-%m-%d", e.verified.time)))
  end
  return string.format('<td class="bad" title="%s">failed, %s</td>', esc(e.verified.message),
    esc(os.date("%Y-%m-%d", e.verified.time)))
end

local function log_cell(e)
  if not e.log then return "<td></td>" end
  local cls = e.log.verdict == "ok" and "ok" or "bad"
  return string.format('<td class="%s" title="%s">%s</td>', cls, esc(e.log.message or ""),
    esc(e.log.verdict))
end

local function backups_table(g)
  local out = { '<div class="wrap"><table class="backups"><tr><th>time</th><th>file</th><th>on storage</th>'
    .. '<th>logical</th><th>data</th><th>disks</th><th>compression</th><th>rewritten</th>'
    .. '<th>verified</th><th>log</th><th>protected</th><th>notes</th></tr>' }
  for _, e in ipairs(g.archives) do
    local disks = {}
    for _, d in ipairs(e.disks or {}) do disks[#disks + 1] = d.name .. " " .. ui.human(d.size) end
    out[#out + 1] = string.format('<tr class="backup" data-file="%s"><td>%s</td><td>%s</td>'
      .. '<td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td>%s</td><td>%s</td>'
      .. '<td class="n%s">%s</td>%s%s<td>%s</td><td class="notes">%s</td></tr>',
      esc(e.name), esc(store.time_string(e)), esc(e.rel), esc(ui.human(e.size)),
      esc(e.logical_size and ui.human(e.logical_size) or "?"),
      esc(e.data_bytes and ui.human(e.data_bytes) or ""), esc(table.concat(disks, ", ")),
      esc(e.compression or ""),
      (e.rewritten_share or 0) > 0.5 and " bad" or "",
      e.rewritten_share and string.format("%.1f%%", e.rewritten_share * 100) or "",
      verified_cell(e), log_cell(e), e.protected and "yes" or "", esc(e.notes or ""))
  end
  out[#out + 1] = "</table></div>"
  return table.concat(out, "\n")
end

local function section(g)
  local id = g.vmid and ("vm-" .. g.vmid) or "vm-other"
  local title = g.vmid and string.format("VM %s (%s)", g.vmid, g.type or "qemu") or "Other archives"
  if g.name then title = title .. " " .. g.name end
  local broken = 0
  for _, e in ipairs(g.archives) do
    if e.status ~= "ok" or (e.verified and not e.verified.ok) then broken = broken + 1 end
  end
  local out = { string.format('<section class="vm" id="%s" data-vmid="%s">', esc(id),
    esc(g.vmid or "")) }
  out[#out + 1] = string.format("<h2>%s</h2>", esc(title))
  local parts = { string.format("%d backup%s", g.count, g.count == 1 and "" or "s"),
    string.format("%s on storage", esc(ui.human(g.size))),
    string.format('newest %s (<span data-t="%d"></span>)', esc(store.time_string(g.archives[1])),
      store.sort_time(g.archives[1])) }
  if g.interval and g.interval > 0 then parts[#parts + 1] = string.format("usually every %.1f days", g.interval / 86400) end
  if #g.gaps > 0 then
    parts[#parts + 1] = string.format('<span class="bad">%d gap%s longer than usual</span>',
      #g.gaps, #g.gaps == 1 and "" or "s")
  end
  if broken > 0 then
    parts[#parts + 1] = string.format('<span class="bad">%d broken or failed</span>', broken)
  end
  out[#out + 1] = "<p>" .. table.concat(parts, ", ") .. "</p>"
  out[#out + 1] = timeline(g)
  local rw = rewritten_chart(g)
  if rw then
    out[#out + 1] = "<p>Share of each disk rewritten since the backup before:</p>"
    out[#out + 1] = rw
  end
  out[#out + 1] = backups_table(g)
  out[#out + 1] = "</section>"
  return table.concat(out, "\n")
end

--- The page: groups as vma.store.inventory makes them; opts.dirs,
--- opts.catalogs (shown), opts.now (the time it was made, default now).
function M.render(groups, opts)
  opts = opts or {}
  local n, size = 0, 0
  for _, g in ipairs(groups) do n, size = n + g.count, size + g.size end
  local out = { "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    .. "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    string.format("<title>Backup store: %d VM%s, %d backup%s</title>", #groups,
      #groups == 1 and "" or "s", n, n == 1 and "" or "s"),
    "<style>" .. STYLE .. "</style>", "</head>", "<body>" }
  out[#out + 1] = "<h1>Backup store</h1>"
  out[#out + 1] = string.format('<p class="meta">%s: %d VM%s, %d backup%s, %s on storage. '
    .. 'Catalog: %s. Made %s by vma %s.</p>', esc(table.concat(opts.dirs or {}, ", ")), #groups,
    #groups == 1 and "" or "s", n, n == 1 and "" or "s", esc(ui.human(size)),
    esc(#(opts.catalogs or {}) > 0 and table.concat(opts.catalogs, ", ") or "none"),
    esc(os.date("%Y-%m-%d %H:%M:%S", opts.now or os.time())), esc(require("vma").version))
  out[#out + 1] = '<p class="legend"><span><i class="sw" style="background:#3b6fb6"></i>on '
    .. 'storage</span><span><i class="sw" style="background:#cfd8e6"></i>logical size</span>'
    .. '<span><i class="sw" style="background:#2a2;border-radius:50%"></i>verified</span>'
    .. '<span><i class="sw" style="background:#c00;border-radius:50%"></i>broken or failed</span>'
    .. '<span><i class="sw" style="background:#999;border-radius:50%"></i>not verified</span>'
    .. '<span><i class="sw" style="background:#e6b800"></i>protected</span>'
    .. '<span><i class="sw" style="background:#d00"></i>gap longer than usual; more than half '
    .. 'of a disk rewritten</span></p>'
  -- the overview
  out[#out + 1] = '<table class="overview"><tr><th>VM</th><th>name</th><th>backups</th>'
    .. '<th>newest</th><th>age</th><th>on storage</th><th>gaps</th><th>problems</th></tr>'
  for _, g in ipairs(groups) do
    local problems = 0
    for _, e in ipairs(g.archives) do
      if e.status ~= "ok" or (e.verified and not e.verified.ok) then problems = problems + 1 end
    end
    out[#out + 1] = string.format('<tr><td><a href="#%s">%s</a></td><td>%s</td><td class="n">%d'
      .. '</td><td>%s</td><td data-t="%d"></td><td class="n">%s</td><td class="n%s">%d</td>'
      .. '<td class="n%s">%d</td></tr>', esc(g.vmid and ("vm-" .. g.vmid) or "vm-other"),
      esc(g.vmid or "other"), esc(g.name or ""), g.count, esc(store.time_string(g.archives[1])),
      store.sort_time(g.archives[1]), esc(ui.human(g.size)), #g.gaps > 0 and " bad" or "",
      #g.gaps, problems > 0 and " bad" or "", problems)
  end
  out[#out + 1] = "</table>"
  for _, g in ipairs(groups) do out[#out + 1] = section(g) end
  out[#out + 1] = "<script>" .. SCRIPT .. "</script>"
  out[#out + 1] = "</body></html>"
  return table.concat(out, "\n") .. "\n"
end

--- Write the page to path (a temporary name renamed into place; an
--- existing file only with force).
function M.write(path, html, force)
  local vma = require "vma"
  if vma.os.stat(path) and not force then
    return nil, path .. " exists (use --force to replace it)"
  end
  local tmp = string.format("%s.tmp-%d-%d", path, vma.os.getpid(), math.random(1, 1 << 30))
  local ok, err = vma.os.write_file(tmp, html, 420)
  if not ok then return nil, err end
  local rok, rerr
  if force then rok, rerr = os.rename(tmp, path) else rok, rerr = vma.os.rename(tmp, path) end
  if not rok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

return M
