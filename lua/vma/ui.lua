-- vma.ui: what commands share for talking to people and scripts:
-- progress (bar on a terminal, Proxmox lines with -v), sizes, JSON, argparse glue.
local vma = require "vma"

local M = {}

--- Human-readable size: 1536 -> "1.5 KiB".
function M.human(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" }
  local i = 1
  n = n or 0
  while n >= 1024 and i < #units do
    n = n / 1024
    i = i + 1
  end
  if i == 1 then return string.format("%d B", n) end
  return string.format("%.1f %s", n, units[i])
end

local function clock(secs)
  secs = math.floor(secs + 0.5)
  if secs >= 3600 then
    return string.format("%d:%02d:%02d", secs // 3600, secs % 3600 // 60, secs % 60)
  end
  return string.format("%d:%02d", secs // 60, secs % 60)
end

--- The percentage Proxmox prints, never dividing by zero, never past 100.
function M.percent(done, total)
  if not total or total <= 0 then return 100 end
  local p = done * 100 // total
  if p > 100 then p = 100 end
  return p
end

--- A progress reporter.
-- opts.verbose: Proxmox lines through opts.line(percent, done, total, elapsed);
-- otherwise a bar on stderr when it is a terminal (and opts.quiet is not set).
function M.progress(opts)
  local self = { last_percent = -1, last_draw = -1, drawn = false }
  local bar = not opts.verbose and not opts.quiet and vma.isatty(2)
  local label = opts.label or ""

  function self.update(done, total, elapsed)
    local p = M.percent(done, total)
    if opts.verbose then
      if p ~= self.last_percent then
        self.last_percent = p
        opts.line(p, done, total, elapsed)
      end
    elseif bar and (elapsed - self.last_draw >= 0.1 or done >= total) then
      self.last_draw = elapsed
      local width = math.max(10, math.min(40, vma.terminal_width(2) - 60))
      local fill = math.floor(width * p / 100)
      local rate = elapsed > 0 and done / elapsed or 0
      local eta = (rate > 0 and total > done) and clock((total - done) / rate) or "0:00"
      io.stderr:write(string.format("\r%s[%s%s] %3d%% %s / %s  %s/s  ETA %s \27[K", label,
        string.rep("#", fill), string.rep(".", width - fill), p, M.human(done),
        M.human(total), M.human(rate), eta))
      self.drawn = true
    end
  end

  function self.finish()
    if self.drawn then io.stderr:write("\r\27[K") end
  end

  return self
end

--- JSON text of a Lua value (dkjson; empty
-- arrays as arrays when marked with M.array).
-- keyorder (optional): keys written first, in this order; the others follow
-- sorted, so the output is the same from run to run.
function M.json(value, keyorder)
  local json = require "dkjson"
  local order, seen = {}, {}
  for _, k in ipairs(keyorder or {}) do
    order[#order + 1], seen[k] = k, true
  end
  local rest = {}
  local function collect(v)
    if type(v) ~= "table" then return end
    for k, x in pairs(v) do
      if type(k) == "string" and not seen[k] then
        seen[k] = true
        rest[#rest + 1] = k
      end
      collect(x)
    end
  end
  collect(value)
  table.sort(rest)
  table.move(rest, 1, #rest, #order + 1, order)
  return json.encode(value, { keyorder = order })
end

--- The JSON null (a key whose value must be written even when absent).
M.null = setmetatable({}, { __tojson = function() return "null" end })

function M.array(t)
  return setmetatable(t or {}, { __jsontype = "array" })
end

--- Parse args with an argparse parser; on a usage error print a one-line
-- message and return nil, 2.
function M.parse(parser, args, cmd)
  local ok, res = parser:pparse(args)
  if not ok then
    io.stderr:write(string.format("vma %s: %s (see 'vma help %s')\n", cmd, res, cmd))
    return nil, 2
  end
  return res
end

--- Report a failure the command-line way: one line on stderr, status 1.
function M.fail(cmd, msg)
  io.stderr:write(string.format("vma %s: %s\n", cmd, msg))
  return 1
end

--- The device name for a drive given by the user: "scsi0" or "drive-scsi0".
function M.match_drive(devices, name)
  for _, d in ipairs(devices) do
    if d.name == name or d.name == "drive-" .. name then return d end
  end
  return nil
end

--- ctime(3) text of a time, as Proxmox's vma prints it (local time).
function M.ctime(t)
  return os.date("%a %b %e %H:%M:%S %Y", t)
end

--- The lines Proxmox's vma prints for an archive (qmrestore parses them).
function M.print_content(r)
  for _, c in ipairs(r:configs()) do
    io.write(string.format("CFG: size: %d name: %s\n", #c.data, c.name))
  end
  for _, d in ipairs(r:devices()) do
    if d.vmstate then
      io.write(string.format("VMSTATE: dev_id=%d memory: %d\n", d.id, d.size))
    else
      io.write(string.format("DEV: dev_id=%d size: %d devname: %s\n", d.id, d.size, d.name))
    end
  end
  io.write("CTIME: " .. M.ctime(r.ctime) .. "\n")
  io.stdout:flush()
end

--- The closing lines of Proxmox's `vma verify -v` / `extract -v`.
function M.print_totals(st)
  if st.clusters_done == 0 then
    io.write("vma archive contains no image data\n")
    return
  end
  local total = st.bytes_read
  io.write(string.format("total bytes read %d, sparse bytes %d (%.3g%%)\n", total,
    st.zero_bytes, 100.0 * st.zero_bytes / total))
  local data = total - st.zero_bytes
  if data > 0 then
    io.write(string.format("space reduction due to 4K zero blocks %.3g%%\n",
      100.0 * st.partial_zero_bytes / data))
  end
end

--- A progress reporter for reading an archive (verify, extract).
function M.read_progress(verbose, quiet, label)
  local p = M.progress {
    verbose = verbose, quiet = quiet, label = label,
    line = function(pct, done, _, elapsed)
      io.write(string.format("progress %d%% (read %d bytes, duration %d sec)\n", pct, done,
        math.floor(elapsed)))
      io.stdout:flush()
    end,
  }
  return p, function(st)
    p.update(st.clusters_done * 65536, st.clusters_total * 65536, st.elapsed)
  end
end

return M
