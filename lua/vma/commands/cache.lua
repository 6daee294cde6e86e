-- vma cache [ls | add ARCHIVE... | rm ARCHIVE|KEY... | clear]: the cache folder,
-- where the index of an archive and, for one that can only be read from
-- start to end (vzdump's one-stream .vma.zst, .vma.gz, .vma.lzo), its
-- decoded copy are kept for the commands that read at random.
local vma = require "vma"
local ui = require "vma.ui"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma cache", ui.text [[
    See and free the cache folder ($VMA_CACHE_DIR, else $XDG_CACHE_HOME/vma, else ~/.cache/vma):
    the index of each archive read at random, and the decoded copy of each one that can only be
    read from start to end. 'ls' lists it, 'add' decodes archives ahead of time (and compresses
    their copies), 'rm' removes what belongs to archives (given as paths, or as the keys 'ls'
    prints), 'clear' removes everything that no vma is writing. The folder is bounded by
    $VMA_CACHE_MB (default: a quarter of its file system): the least recently used archives go
    first.]])
  p:argument("action", "ls, add, rm or clear"):args("?"):choices { "ls", "add", "rm", "clear" }
  p:argument("archives", "archives (or keys, for rm)"):args("*")
  p:flag("--json", "print JSON on standard output")
  p:flag("-q --quiet", "no progress")
  return p
end

local function ago(t)
  local s = os.time() - t
  if s < 120 then return s .. " s ago" end
  if s < 7200 then return s // 60 .. " min ago" end
  if s < 172800 then return s // 3600 .. " h ago" end
  return s // 86400 .. " days ago"
end

local function list(dir, a)
  local entries, err = vma.cache_list(dir)
  if not entries then return ui.fail("cache", err, a.json) end
  table.sort(entries, function(x, y) return x.last_used > y.last_used end)
  local total = 0
  for _, e in ipairs(entries) do total = total + e.bytes end
  if a.json then
    local out = ui.array()
    for _, e in ipairs(entries) do
      out[#out + 1] = { key = e.key, archive = e.archive or ui.null, codec = e.codec or ui.null,
        archive_size = e.archive_size, bytes = e.bytes, last_used = e.last_used,
        index = e.index, copy = e.data, raw_frames = e.raw_frames, partial = e.partial,
        busy = e.busy }
    end
    io.write(ui.json({ dir = dir, limit = vma.cache_limit(dir), bytes = total, entries = out },
      { "dir", "limit", "bytes", "entries" }), "\n")
    return 0
  end
  for _, e in ipairs(entries) do
    local what = e.data and "copy" or e.index and "index" or e.partial and "partial" or "-"
    if e.busy then what = what .. ", being written" end
    if e.raw_frames > 0 then what = what .. ", not compacted" end
    io.write(string.format("%s  %10s  %-12s  %s  (%s)\n", e.key, ui.human(e.bytes), ago(e.last_used),
      ui.escape and ui.escape(e.archive or "?") or (e.archive or "?"), what))
  end
  io.write(string.format("%d archive(s), %s in %s (limit %s)\n", #entries, ui.human(total), dir,
    ui.human(vma.cache_limit(dir))))
  return 0
end

-- the keys of the arguments: an archive's (opened: its identity), or a key
local function keys_of(a)
  local keys = {}
  for _, p in ipairs(a.archives) do
    if p:match("^%x+$") and #p == 32 then
      keys[#keys + 1] = { key = p, name = p }
    else
      local r, err = vma.open(p)
      if not r then return nil, err end
      keys[#keys + 1] = { key = r.cache_key, name = p }
      r:close()
    end
  end
  return keys
end

local function remove(dir, a)
  if #a.archives == 0 then
    return ui.usage("cache", "rm needs archives (or keys)")
  end
  local keys, err = keys_of(a)
  if not keys then return ui.fail("cache", err, a.json) end
  local present = {}
  for _, e in ipairs(vma.cache_list(dir) or {}) do present[e.key] = e end
  local removed = ui.array()
  for _, k in ipairs(keys) do
    if present[k.key] then
      local ok, rerr = vma.cache_remove(k.key, dir)
      if not ok then return ui.fail("cache", rerr, a.json) end
      removed[#removed + 1] = k.key
      if not a.json and not a.quiet then io.write("removed ", k.key, " (", k.name, ")\n") end
    elseif not a.json and not a.quiet then
      io.write("nothing cached for ", k.name, "\n")
    end
  end
  if a.json then io.write(ui.json({ removed = removed }), "\n") end
  return 0
end

local function clear(dir, a)
  local entries, err = vma.cache_list(dir)
  if not entries then return ui.fail("cache", err, a.json) end
  local removed, busy = ui.array(), ui.array()
  for _, e in ipairs(entries) do
    if e.busy then
      busy[#busy + 1] = e.key
    else
      local ok, rerr = vma.cache_remove(e.key, dir)
      if not ok then return ui.fail("cache", rerr, a.json) end
      removed[#removed + 1] = e.key
    end
  end
  if a.json then
    io.write(ui.json({ removed = removed, busy = busy }), "\n")
  elseif not a.quiet then
    io.write(string.format("removed %d archive(s)%s\n", #removed,
      #busy > 0 and string.format(", %d being written by another vma kept", #busy) or ""))
  end
  return 0
end

local function add(a)
  if #a.archives == 0 then
    return ui.usage("cache", "add needs archives")
  end
  vma.os.catch_signals()
  local out = ui.array()
  for _, p in ipairs(a.archives) do
    local prog = ui.progress { quiet = a.quiet or a.json, label = "vma cache: " }
    local start = vma.os.clock()
    local r, err = vma.open(p, { cache = "on",
      wait = function(w)
        if w.input_total > 0 then prog.update(w.input_done, w.input_total, vma.os.clock() - start) end
      end })
    if not r then return ui.fail("cache", err, a.json) end
    local ok, werr = r:wait_complete()
    local filled = vma.os.clock() - start
    if ok then ok, werr = r:wait_compacted() end
    prog.finish()
    if not ok then
      r:close()
      return ui.fail("cache", p .. ": " .. tostring(werr), a.json)
    end
    local key = r.cache_key
    local st = r:status()
    r:close()
    local bytes = 0
    for _, e in ipairs(vma.cache_list() or {}) do
      if e.key == key then bytes = e.bytes end
    end
    out[#out + 1] = { archive = p, key = key, seekable = st.seekable, bytes = bytes,
      fill_seconds = filled, seconds = vma.os.clock() - start }
    ui.summary("cache", string.format("%s: %s %s (%s) in %.1f s", p,
      st.seekable and "index" or "decoded copy", key, ui.human(bytes), vma.os.clock() - start),
      a.quiet or a.json)
  end
  if a.json then io.write(ui.json({ added = out }), "\n") end
  return 0
end

local function run(args)
  local a, st = ui.parse(parser(), args, "cache")
  if not a then return st end
  local action = a.action or "ls"
  if (action == "ls" or action == "clear") and #a.archives > 0 then
    return ui.usage("cache", action .. " takes no archive")
  end
  if action == "add" then return add(a) end
  local dir = vma.cache_dir()
  if not dir then return ui.fail("cache", "no cache folder: set VMA_CACHE_DIR or HOME", a.json) end
  if action == "ls" then return list(dir, a) end
  if action == "rm" then return remove(dir, a) end
  return clear(dir, a)
end

return {
  description = "list, fill or free the cache of indexes and decoded copies",
  usage = parser():get_help(),
  run = run,
}
