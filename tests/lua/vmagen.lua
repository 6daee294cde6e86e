-- vmagen: a generator of VMA archives, valid or malformed, for the tests.
--
-- G.build(desc) returns the bytes of an archive described by a table, and a
-- table of offsets (header_size, extents = { {offset, data_offset, size} }).
-- Every checksum is right unless the description says otherwise, so a test can
-- break exactly one thing.  A description:
--
--   {
--     magic = "VMA\0", version = 1, uuid = 16 bytes, ctime = 0,
--     configs = { { name = "qemu-server.conf", data = "..." }, ... },
--         -- per config: name_raw (the whole blob, no NUL added), name_ptr,
--         -- data_ptr (explicit blob pointers), index (slot 0..255)
--     devices = { { id = 1, name = "drive-scsi0", size = 65536 }, ... },
--         -- per device: name_raw, name_ptr
--     blob = raw blob buffer (then every pointer comes from name_ptr/data_ptr),
--     blob_offset = , blob_size = , header_size = (the field values),
--     header_len = bytes of header actually written (default: header_size
--         when that is sane, else the natural size),
--     header_md5 = 16 bytes | bad_header_md5 = true,
--     hpatch = { {offset, bytes}, ... } applied to the header before its MD5,
--     extents = { extent, ... },
--     trailing = bytes appended after the last extent,
--     truncate = keep only this many bytes,
--   }
--
-- An extent:
--   {
--     slots = { slot, ... }   -- at most 59; G.EMPTY (or {}) is an empty slot
--     magic = "VMAE", reserved = 0, block_count = (default: from the masks),
--     uuid = (default: the archive's), md5 = 16 bytes | bad_md5 = true,
--     data = the bytes after the header (default: the slots' data in order),
--     extra = bytes appended to the data,
--   }
-- A slot: { dev = 1, cluster = 0, mask = 0xffff, data = , reserved = }
-- (data defaults to deterministic bytes for the stored blocks) or
-- { word = a raw 64-bit blockinfo word }.
local vma = require "vma"

local G = {}

G.BLOCK = 4096
G.CLUSTER = 65536
G.FIXED = 12288
G.SLOTS = 59
G.UUID = "\x5e\xc7\x3a\x01\x9b\x44\x4f\x2e\x8d\x10\x66\x42\xa7\x3c\x0f\x91"
G.EMPTY = {}

local function popcount(m)
  local n = 0
  while m ~= 0 do
    n = n + (m & 1)
    m = m >> 1
  end
  return n
end
G.popcount = popcount

--- Deterministic pseudo-random bytes (never all zero in a 4 KiB block).
function G.bytes(n, seed)
  local t, x = {}, (seed or 1) & 0x7fffffff
  for i = 1, (n + 3) // 4 do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    t[i] = string.pack("<I4", x | 1)
  end
  return table.concat(t):sub(1, n)
end

local function roundup(n, m) return (n + m - 1) // m * m end

local function splice(s, off, bytes)
  return s:sub(1, off) .. bytes .. s:sub(off + #bytes + 1)
end
G.splice = splice

--- The header: returns its bytes.
function G.header(d)
  local blob = d.blob
  local cfg_ptrs, dev_ptrs = {}, {}
  local parts, pos = { "\0" }, 1
  local function add(s)
    assert(#s <= 0xffff, "blob too long")
    local p = pos
    parts[#parts + 1] = string.pack("<I2", #s) .. s
    pos = pos + 2 + #s
    return p
  end
  for i, c in ipairs(d.configs or {}) do
    local np, dp = c.name_ptr, c.data_ptr
    if not blob then
      if np == nil and (c.name or c.name_raw) then np = add(c.name_raw or (c.name .. "\0")) end
      if dp == nil and c.data then dp = add(c.data) end
    end
    cfg_ptrs[(c.index or (i - 1)) + 1] = { np or 0, dp or 0 }
  end
  for i, dv in ipairs(d.devices or {}) do
    local np = dv.name_ptr
    if not blob and np == nil and (dv.name or dv.name_raw) then
      np = add(dv.name_raw or (dv.name .. "\0"))
    end
    dev_ptrs[dv.id or i] = { np or 0, dv.size or 0 }
  end
  blob = blob or table.concat(parts)

  local natural = roundup(G.FIXED + #blob, 512)
  local header_size = d.header_size or natural
  local len = d.header_len
  if not len then
    if d.header_size and header_size >= natural and header_size % 512 == 0
        and header_size <= 64 * 1024 * 1024 then
      len = header_size
    else
      len = natural
    end
  end

  local t = {}
  t[1] = (d.magic or "VMA\0")
  t[2] = string.pack(">I4", d.version or 1)
  t[3] = d.uuid or G.UUID
  t[4] = string.pack(">i8", d.ctime or 0)
  t[5] = string.rep("\0", 16)
  t[6] = string.pack(">I4>I4>I4", d.blob_offset or G.FIXED, d.blob_size or #blob, header_size)
  t[7] = string.rep("\0", 1984)
  for i = 1, 256 do t[#t + 1] = string.pack(">I4", cfg_ptrs[i] and cfg_ptrs[i][1] or 0) end
  for i = 1, 256 do t[#t + 1] = string.pack(">I4", cfg_ptrs[i] and cfg_ptrs[i][2] or 0) end
  t[#t + 1] = string.rep("\0", 4)
  for id = 0, 255 do
    local p = dev_ptrs[id]
    t[#t + 1] = string.pack(">I4I4>I8", p and p[1] or 0, 0, p and p[2] or 0) .. string.rep("\0", 16)
  end
  local h = table.concat(t)
  assert(#h == G.FIXED)
  h = h .. blob
  if #h < len then h = h .. string.rep("\0", len - #h) else h = h:sub(1, len) end
  for _, p in ipairs(d.hpatch or {}) do h = splice(h, p[1], p[2]) end
  local md5 = d.header_md5 or vma.md5(h)
  if d.bad_header_md5 then md5 = string.char(md5:byte(1) ~ 0xff) .. md5:sub(2) end
  return splice(h, 32, md5)
end

--- One extent: returns its bytes.
function G.extent(e, uuid)
  local words, datas, blocks = {}, {}, 0
  local slots = e.slots or {}
  assert(#slots <= G.SLOTS, "more than 59 slots")
  for i = 1, G.SLOTS do
    local s = slots[i]
    local w = 0
    if s and s.word then
      w = s.word
    elseif s and s.dev then
      local mask = s.mask or 0xffff
      w = (mask << 48) | ((s.reserved or 0) << 40) | (s.dev << 32) | (s.cluster or 0)
      local n = popcount(mask)
      blocks = blocks + n
      datas[#datas + 1] = s.data or G.bytes(n * G.BLOCK, (s.dev << 20) + (s.cluster or 0) + 7)
    end
    words[i] = string.pack(">i8", w)
  end
  local h = (e.magic or "VMAE") .. string.pack(">I2>I2", e.reserved or 0, e.block_count or blocks)
    .. (e.uuid or uuid or G.UUID) .. string.rep("\0", 16) .. table.concat(words)
  assert(#h == 512)
  local md5 = e.md5 or vma.md5(h)
  if e.bad_md5 then md5 = string.char(md5:byte(1) ~ 0xff) .. md5:sub(2) end
  h = splice(h, 24, md5)
  return h .. (e.data or table.concat(datas)) .. (e.extra or "")
end

--- The whole archive: bytes, layout.
function G.build(d)
  local h = G.header(d)
  local out, layout = { h }, { header_size = #h, extents = {} }
  local off = #h
  for _, e in ipairs(d.extents or {}) do
    local x = G.extent(e, d.uuid)
    out[#out + 1] = x
    layout.extents[#layout.extents + 1] = { offset = off, data_offset = off + 512, size = #x }
    off = off + #x
  end
  out[#out + 1] = d.trailing or ""
  local s = table.concat(out)
  layout.size = #s
  if d.truncate then s = s:sub(1, d.truncate) end
  return s, layout
end

--- The slots that store a device image (zero blocks elided, all-zero
--- clusters as mask 0): one per cluster of size bytes.
--- Parse an archive's bytes (the one parser of the tests): {header_size,
--- uuid, ctime, configs = {{name, data}}, devices = {{id, name, size}} by
--- id, extents = {{offset, block_count, slots = {{dev, cluster, mask}}}}}.
--- Checks nothing: for reading archives the tests trust.
function G.parse(data)
  local hs = string.unpack(">I4", data, 57)
  local boff = string.unpack(">I4", data, 49)
  local function blob(ptr)
    local len = string.unpack("<I2", data, boff + ptr + 1)
    return data:sub(boff + ptr + 3, boff + ptr + 2 + len)
  end
  local a = { header_size = hs, uuid = data:sub(9, 24), ctime = string.unpack(">i8", data, 25),
              configs = {}, devices = {}, extents = {} }
  for i = 0, 255 do
    local np = string.unpack(">I4", data, 2044 + 4 * i + 1)
    local dp = string.unpack(">I4", data, 3068 + 4 * i + 1)
    if np ~= 0 and dp ~= 0 then
      a.configs[#a.configs + 1] = { name = (blob(np):gsub("%z$", "")), data = blob(dp) }
    end
  end
  for id = 1, 255 do
    local ptr, size = string.unpack(">I4 xxxx I8", data, 4096 + 32 * id + 1)
    if ptr ~= 0 and size ~= 0 then
      a.devices[#a.devices + 1] = { id = id, name = (blob(ptr):gsub("%z$", "")), size = size }
    end
  end
  local pos = hs + 1
  while pos + 511 <= #data do
    local e = { offset = pos - 1, block_count = string.unpack(">I2", data, pos + 6), slots = {} }
    for i = 0, G.SLOTS - 1 do
      local w = string.unpack(">I8", data, pos + 40 + 8 * i)
      local dev = (w >> 32) & 0xff
      if dev ~= 0 then
        e.slots[#e.slots + 1] = { dev = dev, cluster = w & 0xffffffff, mask = (w >> 48) & 0xffff }
      end
    end
    a.extents[#a.extents + 1] = e
    pos = pos + 512 + e.block_count * G.BLOCK
  end
  return a
end

function G.image_slots(dev, image, size)
  size = size or #image
  local slots = {}
  for c = 0, (size + G.CLUSTER - 1) // G.CLUSTER - 1 do
    local mask, parts = 0, {}
    for j = 0, 15 do
      local off = c * G.CLUSTER + j * G.BLOCK
      local blk = image:sub(off + 1, off + G.BLOCK)
      if #blk < G.BLOCK then blk = blk .. string.rep("\0", G.BLOCK - #blk) end
      if blk:find("[^\0]") then
        mask = mask | (1 << j)
        parts[#parts + 1] = blk
      end
    end
    slots[#slots + 1] = { dev = dev, cluster = c, mask = mask, data = table.concat(parts) }
  end
  return slots
end

--- Pack a list of slots into extents of at most per slots (default 59).
function G.pack(slots, per)
  per = per or G.SLOTS
  local extents, cur = {}, nil
  for _, s in ipairs(slots) do
    if not cur or #cur.slots == per then
      cur = { slots = {} }
      extents[#extents + 1] = cur
    end
    cur.slots[#cur.slots + 1] = s
  end
  return extents
end

--- An image of size bytes: some random blocks, some zero blocks.
function G.image(size, seed)
  local parts = {}
  local nblocks = (size + G.BLOCK - 1) // G.BLOCK
  for b = 0, nblocks - 1 do
    local n = math.min(G.BLOCK, size - b * G.BLOCK)
    if (b + (seed or 0)) % 3 == 1 then
      parts[#parts + 1] = string.rep("\0", n)
    else
      parts[#parts + 1] = G.bytes(n, (seed or 0) * 7919 + b)
    end
  end
  return table.concat(parts)
end

--- A small valid archive: one config, one 3-cluster disk, one extent.
--- Returns the description (change it, then build) and the disk image.
function G.base()
  local size = 3 * G.CLUSTER
  local img = G.image(size, 1)
  return {
    configs = { { name = "qemu-server.conf", data = "memory: 512\nscsi0: local:0,size=192K\n" } },
    devices = { { id = 1, name = "drive-scsi0", size = size } },
    extents = { { slots = G.image_slots(1, img) } },
  }, img
end

return G
