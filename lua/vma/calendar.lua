-- vma.calendar: the month calendars of `vma prune --calendar`: each day
-- shows the one-letter code of the rule that kept its newest kept backup
-- (x: none kept). The codes and their names come from vma.retention.
local vzdump = require "vma.vzdump"
local retention = require "vma.retention"

local M = {}

local MONTH_NAMES = { "January", "February", "March", "April", "May", "June", "July",
                      "August", "September", "October", "November", "December" }
local MONTH_WIDTH, GAP = 27, 3
local COLORS = { x = "31", P = "33;1" }   -- red, bold yellow; the keep codes bold green

local function center(s, w)
  local left = (w - #s) // 2
  return string.rep(" ", left) .. s .. string.rep(" ", w - #s - left)
end

-- the 8 lines (title, header, 6 weeks) of one month; day_code[d] = code
local function month_lines(y, m, day_code, color)
  local lines = { center(MONTH_NAMES[m] .. " " .. y, MONTH_WIDTH),
                  "Mo  Tu  We  Th  Fr  Sa  Su " }
  local cells = {}
  for _ = 1, vzdump.weekday(y, m, 1) - 1 do cells[#cells + 1] = "   " end
  for d = 1, vzdump.days_in_month(y, m) do
    local code = day_code[d]
    local cell = string.format("%2d", d)
    if code and color then
      cell = "\27[" .. (COLORS[code] or "32;1") .. "m" .. cell .. code .. "\27[0m"
    else
      cell = cell .. (code or " ")
    end
    cells[#cells + 1] = cell
  end
  while #cells < 42 do cells[#cells + 1] = "   " end
  for w = 0, 5 do
    lines[#lines + 1] = table.concat(cells, " ", w * 7 + 1, w * 7 + 7)
  end
  return lines
end

-- month key -> day -> code of one group, and the months in order; codes of
-- user rules go into extra
local function day_codes(g, extra)
  local days, months = {}, {}
  for _, b in ipairs(g.backups) do          -- newest first
    local mkey = b.year * 12 + b.month - 1
    if not days[mkey] then
      days[mkey] = {}
      months[#months + 1] = mkey
    end
    local code = retention.code(b)
    if b.mark ~= "remove" and b.code and not retention.CODES[b.rule or ""] then
      extra[b.code] = b.rule or extra[b.code] or "rule of the policy"
    end
    local cur = days[mkey][b.day]
    if cur == nil or (cur == "x" and code ~= "x") then days[mkey][b.day] = code end
  end
  table.sort(months)
  return days, months
end

local function legend(extra, width)
  local items = {}
  for _, r in ipairs(retention.ALL_RULES) do items[#items + 1] = r.code .. " " .. r.name end
  items[#items + 1] = "A keep-all"
  items[#items + 1] = retention.OTHER_CODE .. " kept by the policy"
  local extras = {}
  for code, rule in pairs(extra) do extras[#extras + 1] = code .. " " .. rule end
  table.sort(extras)
  table.move(extras, 1, #extras, #items + 1, items)
  items[#items + 1] = "P protected"
  items[#items + 1] = "x removed"
  local out, line = {}, "Legend:"
  for i, item in ipairs(items) do
    local piece = " " .. item .. (i < #items and "," or ".")
    if #line + #piece > width and line ~= "Legend:" then
      out[#out + 1] = line .. "\n"
      line = "       "
    end
    line = line .. piece
  end
  out[#out + 1] = line .. "\n"
  return table.concat(out)
end

--- The calendars of every group (marked by retention.apply), as text.
function M.render(groups, color, width)
  local parts, extra = {}, {}
  local per_row = math.max(1, (width + GAP) // (MONTH_WIDTH + GAP))
  for _, g in ipairs(groups) do
    local n = { keep = 0, remove = 0, protected = 0 }
    for _, b in ipairs(g.backups) do n[b.mark] = n[b.mark] + 1 end
    parts[#parts + 1] = string.format("%s: %d backup%s: %d keep, %d remove, %d protected\n\n",
      g.key, #g.backups, #g.backups == 1 and "" or "s", n.keep, n.remove, n.protected)
    local days, months = day_codes(g, extra)
    for i = 1, #months, per_row do
      local blocks = {}
      for j = i, math.min(i + per_row - 1, #months) do
        local mkey = months[j]
        blocks[#blocks + 1] = month_lines(mkey // 12, mkey % 12 + 1, days[mkey], color)
      end
      for l = 1, 8 do
        local row = {}
        for k, blk in ipairs(blocks) do row[k] = blk[l] end
        parts[#parts + 1] = (table.concat(row, string.rep(" ", GAP)):gsub("%s+$", "")) .. "\n"
      end
      if parts[#parts] ~= "\n" then parts[#parts + 1] = "\n" end
    end
  end
  parts[#parts + 1] = legend(extra, width)
  parts[#parts + 1] = "A day shows the rule that kept its newest kept backup (x: none kept);\n"
    .. "months without backups are not shown.  Nothing was deleted.\n"
  return table.concat(parts)
end

return M
