-- vma.lvm: LVM2 metadata, as the physical volumes keep it (plain text, read
-- from the PV by vol:lvm_pv()), parsed into volume groups and their logical
-- volumes' extents.  Nothing is activated: the logical volumes become
-- volumes of the archive (vma.volume_join), read like any disk.
-- The text is hostile input: the parser is bounded (nesting, sizes) and
-- returns nil, message on anything it does not understand.

local M = {}

local MAX_DEPTH = 32

--- Parse the LVM text format: sections `name { ... }`, assignments
-- `key = value` (strings, integers, lists `[...]`), comments from '#'.
-- Returns a table (sections as tables, lists as arrays), or nil, message.
function M.parse(text)
  local pos, len = 1, #text
  local function skip()
    while pos <= len do
      local c = text:sub(pos, pos)
      if c == "#" then
        local nl = text:find("\n", pos, true)
        pos = nl and nl + 1 or len + 1
      elseif c:match("%s") or c == "\0" then
        pos = pos + 1
      else
        return
      end
    end
  end
  local function token()
    skip()
    if pos > len then return nil end
    local c = text:sub(pos, pos)
    if c:match("[{}%[%]=,]") then
      pos = pos + 1
      return c, c
    end
    if c == '"' then
      local out, i = {}, pos + 1
      while i <= len do
        local ch = text:sub(i, i)
        if ch == "\\" then
          out[#out + 1] = text:sub(i + 1, i + 1)
          i = i + 2
        elseif ch == '"' then
          pos = i + 1
          return "string", table.concat(out)
        else
          local j = text:find('[\\"]', i)
          if not j then break end
          out[#out + 1] = text:sub(i, j - 1)
          i = j
        end
      end
      return nil, "an unterminated string"
    end
    local word = text:match("^[%w_%.%-%+]+", pos)
    if not word then
      return nil, string.format("an unexpected character at byte %d", pos)
    end
    pos = pos + #word
    local n = math.tointeger(tonumber(word))
    if n and word:match("^%-?%d+$") then return "number", n end
    if tonumber(word) and word:match("^%-?%d*%.%d+$") then return "number", tonumber(word) end
    return "word", word
  end

  local parse_block
  local function value(kind, v, depth)
    if kind == "string" or kind == "number" then return v end
    if kind == "[" then
      local list = {}
      while true do
        local k, x = token()
        if not k then return nil, x or "a list does not end" end
        if k == "]" then return list end
        if k ~= "," then
          if k ~= "string" and k ~= "number" then return nil, "a list holds something odd" end
          list[#list + 1] = x
          if #list > 1000000 then return nil, "a list is too long" end
        end
      end
    end
    return nil, "a value is missing after '='"
  end
  parse_block = function(depth, closing)
    if depth > MAX_DEPTH then return nil, "the sections nest too deep" end
    local t = {}
    while true do
      local k, name = token()
      if not k then
        if name then return nil, name end
        if closing then return nil, "a section does not end" end
        return t
      end
      if k == "}" then
        if not closing then return nil, "a '}' without its section" end
        return t
      end
      if k ~= "word" and k ~= "string" then return nil, "a key or section name is missing" end
      local k2, x = token()
      if k2 == "{" then
        local sub, err = parse_block(depth + 1, true)
        if not sub then return nil, err end
        t[name] = sub
      elseif k2 == "=" then
        local k3, y = token()
        if not k3 then return nil, y or "a value is missing" end
        local v, err = value(k3, y, depth)
        if v == nil then return nil, err end
        t[name] = v
      else
        return nil, string.format("'%s' is followed by neither '{' nor '='", tostring(name))
      end
    end
  end
  return parse_block(1, false)
end

--- The volume group in a parsed metadata text: name, table (the one
-- top-level section that has physical_volumes), or nil.
function M.vg_of(meta)
  for name, v in pairs(meta) do
    if type(v) == "table" and type(v.physical_volumes) == "table" then return name, v end
  end
  return nil
end

local function has(list, word)
  if type(list) ~= "table" then return false end
  for _, w in ipairs(list) do
    if w == word then return true end
  end
  return false
end

--- The logical volumes of a volume group as lists of extents:
--- { {name=, vg=, size=, visible=, segments={ {pv=id, offset=, length=}, ... }}
-- or reason= when it cannot be read in-process (striped, thin, RAID...).
-- pv offsets are in bytes from the start of the PV.
function M.logical_volumes(vgname, vg)
  local sector = 512
  local esize = math.tointeger(vg.extent_size)
  if not esize or esize <= 0 or esize > (1 << 32) then
    return nil, "the volume group " .. vgname .. " has no valid extent_size"
  end
  local ebytes = esize * sector
  local pvs = {}
  for key, pv in pairs(vg.physical_volumes) do
    if type(pv) == "table" then
      local pe_start = math.tointeger(pv.pe_start) or 0
      pvs[key] = { id = type(pv.id) == "string" and pv.id or "", pe_start = pe_start * sector,
        pe_count = math.tointeger(pv.pe_count) or 0, device = pv.device }
    end
  end
  local out = {}
  for name, lv in pairs(type(vg.logical_volumes) == "table" and vg.logical_volumes or {}) do
    if type(lv) == "table" then
      local item = { name = name, vg = vgname, visible = has(lv.status, "VISIBLE"),
        segments = {}, size = 0 }
      local segs = {}
      for k, s in pairs(lv) do
        if type(s) == "table" and k:match("^segment%d+$") then segs[#segs + 1] = s end
      end
      table.sort(segs, function(a, b)
        return (math.tointeger(a.start_extent) or 0) < (math.tointeger(b.start_extent) or 0)
      end)
      local next_extent = 0
      for _, s in ipairs(segs) do
        local start, count = math.tointeger(s.start_extent), math.tointeger(s.extent_count)
        if not start or not count or count <= 0 or start ~= next_extent then
          item.reason = "its segments do not follow one another"
          break
        end
        if s.type ~= "striped" and s.type ~= "linear" then
          item.reason = "a segment of type " .. tostring(s.type) .. " (only linear volumes are read in-process)"
          break
        end
        local stripes = s.stripes
        if math.tointeger(s.stripe_count) ~= 1 or type(stripes) ~= "table" or #stripes ~= 2 then
          item.reason = "it is striped over several physical volumes (only linear volumes are read in-process)"
          break
        end
        local pv = pvs[stripes[1]]
        local pe = math.tointeger(stripes[2])
        if not pv or not pe or pe < 0 or (pv.pe_count > 0 and pe + count > pv.pe_count) then
          item.reason = "a segment points to a physical volume that is not in the group"
          break
        end
        if count > math.maxinteger // ebytes or pe > (math.maxinteger - pv.pe_start) // ebytes - count then
          item.reason = "a segment is too large"
          break
        end
        item.segments[#item.segments + 1] = { pv = pv.id, offset = pv.pe_start + pe * ebytes,
          length = count * ebytes }
        item.size = item.size + count * ebytes
        next_extent = start + count
      end
      if #segs == 0 and not item.reason then item.reason = "it has no segments" end
      out[#out + 1] = item
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

--- The name of a logical volume under /dev/mapper: each '-' doubled.
function M.mapper_name(vg, lv)
  return vg:gsub("%-", "--") .. "-" .. lv:gsub("%-", "--")
end

return M
