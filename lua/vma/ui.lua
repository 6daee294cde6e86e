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
  if i == 1 then return string.format("%d B", math.floor(n)) end
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

--- Write to standard output, at once; a closed output (a pipe whose reader
-- went away) raises an error instead of being ignored.
function M.out(...)
  local ok, err = io.stdout:write(...)
  if ok then ok, err = io.stdout:flush() end
  if not ok then error("cannot write to standard output: " .. tostring(err), 0) end
end

--- Lines for standard output, written 512 at a time: emit(text) adds one,
--- flush() writes what is left (as M.out does).
function M.lines()
  local out = {}
  local function flush()
    M.out(table.concat(out))
    out = {}
  end
  local function emit(text)
    out[#out + 1] = text
    if #out >= 512 then flush() end
  end
  return emit, flush
end

-- ---- what several commands' parsers share (the same names and help)

--- A paragraph of help written as a long string over several indented
--- lines: one line, each line break and the indentation around it folded
--- into one space (argparse wraps it to the terminal again).
function M.text(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""):gsub("%s*\n%s*", " "))
end

local ARCHIVE_HELP = {
  random = "the archive: .vma, .vma.zst, .vma.gz or .vma.lzo (one that can only be read in "
    .. "order is decoded into the cache folder as it is read)",
  stdin = "the archive (- for standard input)",
  stream = "the archive (- for standard input; .zst/.gz/.lzo are read directly)",
}

--- The argument ARCHIVE of a command that reads one: at random ("random":
--- cat, serve, mount, convert and the file commands), in order from a path
--- or standard input ("stdin"), or that and compressed ("stream").
function M.archive_argument(p, how)
  local help = assert(ARCHIVE_HELP[how], how)
  return p:argument("archive", help)
end

--- --no-cache, of the commands that read an archive at random.
function M.no_cache_flag(p)
  return p:flag("--no-cache", "keep no cache: the index and a decoded copy go with the process")
end

--- -q --quiet of the commands that show progress and a summary.
function M.quiet_flag(p)
  return p:flag("-q --quiet", "no progress and no summary")
end

--- --json of the commands whose whole output is one JSON object.
function M.json_flag(p)
  return p:flag("--json", "print a JSON object")
end

--- Seconds between plain progress lines when stderr is not a terminal
-- ($VMA_PROGRESS_INTERVAL, default 5; 0 turns them off).
local function line_interval()
  local v = tonumber(os.getenv("VMA_PROGRESS_INTERVAL") or "")
  if v and v >= 0 then return v end
  return 5
end

-- "45% 450.0 MiB / 1.0 GiB  120.0 MiB/s  ETA 0:05", shortened to fit width
local function status_text(p, done, total, elapsed, width)
  local rate = elapsed > 0 and done / elapsed or 0
  local eta = (rate > 0 and total > done) and clock((total - done) / rate) or "0:00"
  local parts = { string.format("%3d%%", p), M.human(done) .. " / " .. M.human(total),
                  M.human(rate) .. "/s", "ETA " .. eta }
  while #parts > 1 and #table.concat(parts, "  ") > width do table.remove(parts) end
  return table.concat(parts, "  ")
end
M.status_text = status_text

--- A progress reporter.
-- opts.verbose: Proxmox lines through opts.line(percent, done, total, elapsed);
-- otherwise, unless opts.quiet, a bar on stderr when it is a terminal (it
-- fits the width, whatever it is) and a plain line with rate and ETA every
-- few seconds when it is not.
function M.progress(opts)
  local self = { last_percent = -1, last_draw = -1, drawn = false }
  local tty = vma.os.isatty(2)
  local bar = not opts.verbose and not opts.quiet and tty
  local lines = not opts.verbose and not opts.quiet and not tty and line_interval() > 0
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
      local width = vma.os.terminal_width(2) - 1
      local text = status_text(p, done, total, elapsed, math.max(4, width - #label - 14))
      local room = width - #label - #text - 3
      local cells = math.max(0, math.min(40, room))
      local fill = math.floor(cells * p / 100)
      local s = label .. (cells > 0 and ("[" .. string.rep("#", fill)
        .. string.rep(".", cells - fill) .. "] ") or "") .. text
      io.stderr:write("\r", s:sub(1, math.max(1, width)), "\27[K")
      self.drawn = true
    elseif lines and elapsed - math.max(self.last_draw, 0) >= line_interval() and done < total then
      self.last_draw = elapsed
      io.stderr:write(label, status_text(p, done, total, elapsed, 200), "\n")
    end
  end

  function self.finish()
    if self.drawn then io.stderr:write("\r\27[K") end
    self.drawn = false
  end

  return self
end

--- The wait function of vma.open for a command that reads an archive at
-- random: while a read waits for the background decoder (an archive that
-- can only be read from start to end, decoded into a copy), a line on a
-- terminal says how far the decoder is, its speed and the time until it
-- reaches what the read wants; with quiet or without a terminal, nothing.
-- Returns the function, and a function done(r) that clears the line; given
-- the archive (still open) at the command's end, done also says, unless
-- quiet, when this command started a decoded copy that it leaves unfinished
-- (it is not kept) and how to keep one (cached: the cache folder is used,
-- not --no-cache).
function M.waiter(cmd, quiet, cached)
  local function note(r)
    if quiet or not r or not cached or r.stream then return end
    local st = r:status()
    if not st.decoding or st.complete then return end
    local path = r.path
    local word = path:match("^[%w%./_+:=-]+$") and path or "'" .. path:gsub("'", "'\\''") .. "'"
    io.stderr:write(string.format("vma %s: %s was decoded to %d%% for this command; that copy is "
      .. "not kept (vma cache add %s decodes it once for every later command)\n", cmd, path,
      M.percent(st.input_done, st.input_total), word))
  end
  if quiet or not vma.os.isatty(2) then return nil, note end
  local drawn, last = false, -1
  local function wait(w)
    local now = vma.os.clock()
    if now - last < 0.2 then return true end
    last = now
    local width = vma.os.terminal_width(2) - 1
    local text
    if w.other_process then
      text = string.format("vma %s: waiting for another vma decoding the archive (%s so far)",
        cmd, M.human(w.input_done))
    else
      local rate = w.seconds > 0 and w.input_done / w.seconds or 0
      text = string.format("vma %s: decoding %d%% (%s/s)%s", cmd,
        M.percent(w.input_done, w.input_total), M.human(rate),
        w.device and string.format(", %s at %s%s", w.device, M.human(w.offset),
          w.eta and (" in about " .. clock(w.eta)) or "") or "")
    end
    io.stderr:write("\r", text:sub(1, math.max(1, width)), "\27[K")
    drawn = true
    return true
  end
  local function done(r)
    if drawn then io.stderr:write("\r\27[K") end
    drawn = false
    note(r)
  end
  return wait, done
end

--- The one line a long command ends with (on stderr, unless quiet).
function M.summary(cmd, text, quiet)
  if not quiet then io.stderr:write("vma ", cmd, ": ", text, "\n") end
end

--- "1.0 GiB in 3.2 s (320.0 MiB/s)"
function M.throughput(bytes, secs)
  local rate = secs > 0 and bytes / secs or 0
  return string.format("%s in %.1f s (%s/s)", M.human(bytes), secs, M.human(rate))
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
-- message and return nil, 2; -h/--help print the help: nil, 0.
function M.parse(parser, args, cmd)
  -- help is answered here (argparse's own help action would end the process)
  for _, a in ipairs(args) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      io.stdout:write(parser:get_help(), "\n")
      return nil, 0
    end
  end
  local ok, res = parser:pparse(args)
  if not ok then return M.usage_error(cmd, res) end
  return res
end

--- A usage error: one line on stderr, then nil, 2 (the exit status).
function M.usage_error(cmd, msg)
  msg = tostring(msg):gsub("%s*\n%s*", "; ")
  io.stderr:write(string.format("vma %s: %s (see 'vma help %s')\n", cmd, msg, cmd))
  return nil, 2
end

--- The value of an option that takes a whole number from 0 up (text as
--- given; default when it was not given); or nil, 2 after the usage error
--- "OPTION: a number, not 'TEXT'".
function M.whole_number(cmd, option, text, default)
  if text == nil then return default end
  local n = math.tointeger(tonumber(text))
  if not n or n < 0 then return M.usage_error(cmd, option .. ": a number, not '" .. text .. "'") end
  return n
end

--- The same, returning only the exit status (2): a command's run ends with it.
function M.usage(cmd, msg)
  return select(2, M.usage_error(cmd, msg))
end

--- The comma-separated list of a -d option, or nil and a message when it
-- names nothing ("-d ''", "-d ,").
function M.split_list(text, what)
  local t = {}
  for item in text:gmatch("[^,%s]+") do t[#t + 1] = item end
  if #t == 0 then return nil, string.format("%s '%s' names nothing", what, text) end
  return t
end

--- Report a failure the command-line way: one line on stderr, status 1.
-- With json set, the failure is also printed as {"ok":false,"error":...}
-- on stdout, as scripts read it.
function M.fail(cmd, msg, json)
  msg = tostring(msg):gsub("\n+$", ""):gsub("\n", " ")
  if json then io.stdout:write(M.json { ok = false, error = msg }, "\n") end
  io.stderr:write(string.format("vma %s: %s\n", cmd, msg))
  return 1
end

--- vma.open for a command: reading "-" from a terminal says what it waits
-- for first.
function M.open(cmd, path, opts)
  if path == "-" and vma.os.isatty(0) then
    io.stderr:write("vma ", cmd, ": reading an archive from standard input, which is a "
      .. "terminal: pipe one in (zstd -dc A.vma.zst | vma ", cmd, " -), or press Ctrl-D\n")
  end
  return vma.open(path, opts)
end

--- The arguments of a command that reads the archive a.archive, and that
-- archive opened (M.open): a, r; or nil and the exit status, once the usage
-- error or the failure is printed (with a.json also as JSON on stdout).
function M.parse_open(parser, args, cmd)
  local a, st = M.parse(parser, args, cmd)
  if not a then return nil, st end
  local r, err = M.open(cmd, a.archive)
  if not r then return nil, M.fail(cmd, err, a.json) end
  return a, r
end

--- ctime(3) text of a time, as Proxmox's vma prints it (local time).
function M.ctime(t)
  return os.date("%a %b %e %H:%M:%S %Y", t)
end

--- The lines Proxmox's vma prints for an archive (qmrestore parses them),
-- on stdout or the file given.
function M.print_content(r, f)
  local out = {}
  for _, c in ipairs(r:configs()) do
    out[#out + 1] = string.format("CFG: size: %d name: %s\n", #c.data, c.name)
  end
  for _, d in ipairs(r:devices()) do
    if d.vmstate then
      out[#out + 1] = string.format("VMSTATE: dev_id=%d memory: %d\n", d.id, d.size)
    else
      out[#out + 1] = string.format("DEV: dev_id=%d size: %d devname: %s\n", d.id, d.size, d.name)
    end
  end
  out[#out + 1] = "CTIME: " .. M.ctime(r.ctime) .. "\n"
  if f then
    f:write(table.concat(out))
    f:flush()
  else
    M.out(table.concat(out))
  end
end

--- The closing lines of Proxmox's `vma verify -v` / `extract -v` (on
-- stdout, or the file given).
function M.print_totals(st, f)
  local out = {}
  if st.clusters_done == 0 then
    out[1] = "vma archive contains no image data\n"
  else
    local total = st.bytes_read
    out[1] = string.format("total bytes read %d, sparse bytes %d (%.3g%%)\n", total,
      st.zero_bytes, 100.0 * st.zero_bytes / total)
    local data = total - st.zero_bytes
    if data > 0 then
      out[2] = string.format("space reduction due to 4K zero blocks %.3g%%\n",
        100.0 * st.partial_zero_bytes / data)
    end
  end
  if f then f:write(table.concat(out)) else M.out(table.concat(out)) end
end

--- A progress reporter for reading an archive (verify, extract); the -v
-- lines go to stdout, or to the file f (stderr when stdout carries JSON).
function M.read_progress(verbose, quiet, label, f)
  local p = M.progress {
    verbose = verbose, quiet = quiet, label = label,
    line = function(pct, done, _, elapsed)
      local line = string.format("progress %d%% (read %d bytes, duration %d sec)\n", pct, done,
        math.floor(elapsed))
      if f then f:write(line) else M.out(line) end
    end,
  }
  return p, function(st)
    p.update(st.clusters_done * 65536, st.clusters_total * 65536, st.elapsed)
  end
end

--- A plain table: columns padded to the widest cell, the last one not padded.
function M.table(header, rows)
  local widths = {}
  for i, h in ipairs(header) do widths[i] = #h end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i], #c) end
  end
  local lines = {}
  for _, r in ipairs({ header, table.unpack(rows) }) do
    local cells = {}
    for i, c in ipairs(r) do
      cells[i] = i < #r and (c .. string.rep(" ", widths[i] - #c)) or c
    end
    lines[#lines + 1] = table.concat(cells, "  ")
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
