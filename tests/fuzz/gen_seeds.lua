-- Write the generated fuzzing seeds into tests/fuzz/seeds/ (each < 64 KiB).
-- Run from the project root:
--   LUA_CPATH='build/?.so;;' LUA_PATH='tests/lua/?.lua;;' lua5.4 tests/fuzz/gen_seeds.lua
local G = require "vmagen"
local dir = arg[1] or "tests/fuzz/seeds"

local function write(name, data)
  assert(#data <= 64 * 1024, name .. " is larger than 64 KiB")
  local f = assert(io.open(dir .. "/" .. name, "wb"))
  f:write(data)
  f:close()
end

-- a sparse image: one stored block every few clusters, the rest zero
local function sparse(clusters, every, seed)
  local parts = {}
  for c = 0, clusters - 1 do
    if c % every == 0 then
      parts[#parts + 1] = G.bytes(G.BLOCK, seed + c) .. string.rep("\0", G.CLUSTER - G.BLOCK)
    else
      parts[#parts + 1] = string.rep("\0", G.CLUSTER)
    end
  end
  return table.concat(parts)
end

-- two disks interleaved, a vmstate, two configs, several extents
do
  local a, b = sparse(6, 3, 1), sparse(3, 2, 50):sub(1, 3 * G.CLUSTER - 1536)
  local sa, sb, slots = G.image_slots(1, a), G.image_slots(2, b), {}
  for i = 1, #sa do
    slots[#slots + 1] = sa[i]
    if sb[i] then slots[#slots + 1] = sb[i] end
  end
  slots[#slots + 1] = { dev = 3, cluster = 0, mask = 0x0001, data = G.bytes(G.BLOCK, 77) }
  slots[#slots + 1] = { dev = 3, cluster = 1, mask = 0 }
  write("gen-interleaved.vma", G.build({
    configs = { { name = "qemu-server.conf", data = "memory: 512\nscsi0: x\n" }, { name = "empty.conf", data = "" } },
    devices = { { id = 1, name = "drive-scsi0", size = #a }, { id = 2, name = "drive-virtio1", size = #b },
      { id = 3, name = "vmstate", size = 4 * G.CLUSTER } },
    extents = G.pack(slots, 4),
  }))
end

-- 40 all-zero devices, one at dev_id 255, full extents of 59 slots
do
  local devices, slots = {}, {}
  for i = 1, 40 do
    local id = i == 40 and 255 or i
    devices[#devices + 1] = { id = id, name = "drive-scsi" .. (i - 1), size = 2 * G.CLUSTER + 512 * i }
    for c = 0, 2 do slots[#slots + 1] = { dev = id, cluster = c, mask = 0 } end
  end
  write("gen-40-devices.vma", G.build({ devices = devices, extents = G.pack(slots, 59) }))
end

-- 256 configs, no device, one empty extent
do
  local configs = {}
  for i = 0, 255 do configs[#configs + 1] = { name = string.format("c%03d.conf", i), data = ("x"):rep(i % 5) } end
  write("gen-256-configs.vma", G.build({ configs = configs, extents = { { slots = {} } } }))
end

-- a 5000-byte device, empty slots in the middle, an empty extent
do
  local E = G.EMPTY
  write("gen-tiny-empty-slots.vma", G.build({
    configs = { { name = "qemu-server.conf", data = "a\n" } },
    devices = { { id = 1, name = "tiny", size = 5000 }, { id = 2, name = "zero", size = 3 * G.CLUSTER } },
    extents = {
      { slots = {} },
      { slots = { E, { dev = 2, cluster = 2, mask = 0 }, E, E, { dev = 1, cluster = 0, mask = 2 }, E,
        { dev = 2, cluster = 0, mask = 0 } } },
      { slots = { E, E, { dev = 2, cluster = 1, mask = 0 } } },
    },
  }))
end

-- hostile: a duplicate cluster and a vmstate out of order (behind valid checksums)
do
  write("gen-duplicate.vma", G.build({
    devices = { { id = 1, name = "d", size = 2 * G.CLUSTER } },
    extents = { { slots = { { dev = 1, cluster = 0, mask = 0 }, { dev = 1, cluster = 1, mask = 1 } } },
      { slots = { { dev = 1, cluster = 1, mask = 0 } } } },
  }))
  write("gen-vmstate-order.vma", G.build({
    devices = { { id = 1, name = "vmstate", size = 3 * G.CLUSTER } },
    extents = { { slots = { { dev = 1, cluster = 0, mask = 0 }, { dev = 1, cluster = 2, mask = 0 } } } },
  }))
end

-- one full extent (59 clusters, every block stored, all zero: 3.8 MB) and a
-- second one, compressed with zstd and gzip: reaches the reads of more than
-- 1 MiB at once
do
  local slots = {}
  for c = 0, 63 do
    slots[#slots + 1] = { dev = 1, cluster = c, mask = 0xffff, data = string.rep("\0", G.CLUSTER) }
  end
  local plain = G.build({
    devices = { { id = 1, name = "drive-scsi0", size = 64 * G.CLUSTER } },
    extents = G.pack(slots, 59),
  })
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(plain)
  f:close()
  assert(os.execute("zstd -q -19 -c " .. tmp .. " > " .. dir .. "/gen-full-extent.vma.zst"))
  assert(os.execute("gzip -9 -n -c " .. tmp .. " > " .. dir .. "/gen-full-extent.vma.gz"))
  os.remove(tmp)
end

-- compressed copies of two of the above
assert(os.execute("gzip -9 -n -c " .. dir .. "/gen-interleaved.vma > " .. dir .. "/gen-interleaved.vma.gz"))
assert(os.execute("zstd -q -19 -c " .. dir .. "/gen-40-devices.vma > " .. dir .. "/gen-40-devices.vma.zst"))

-- seekable .vma.zst (frames cut where given, the zstd program's content
-- checksums, a seek table), honest and hostile (issue #19): for the
-- seekable, index and disk harnesses
local SKIPPABLE, SEEKABLE = 0x184D2A5E, 0x8F92EAB1

local function zframe(data, opts)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local p = assert(io.popen("zstd -q -c -3 " .. (opts or "") .. " < " .. tmp))
  local c = p:read("a")
  assert(p:close(), "zstd failed")
  os.remove(tmp)
  return c
end

-- the plain bytes cut at the offsets cuts (0-based, ascending); lie(i, entry,
-- frames) may change entry i ({csize, dsize}) or frame i
local function seekable(plain, cuts, lie)
  local frames, entries, from = {}, {}, 1
  local bounds = {}
  for _, c in ipairs(cuts) do bounds[#bounds + 1] = c end
  bounds[#bounds + 1] = #plain
  for i, to in ipairs(bounds) do
    local part = plain:sub(from, to)
    frames[i] = zframe(part)
    entries[i] = { #frames[i], #part }
    if lie then lie(i, entries[i], frames, part) end
    from = to + 1
  end
  local t = {}
  for i, e in ipairs(entries) do t[i] = string.pack("<I4I4", e[1], e[2]) end
  local body = table.concat(t) .. string.pack("<I4BI4", #entries, 0, SEEKABLE)
  return table.concat(frames) .. string.pack("<I4I4", SKIPPABLE, #body) .. body
end

-- incompressible bytes (xorshift32): raw zstd blocks
local function noise(n, seed)
  local t, x = {}, seed
  for i = 1, n // 4 do
    x = x ~ ((x << 13) & 0xffffffff)
    x = x ~ (x >> 17)
    x = x ~ ((x << 5) & 0xffffffff)
    t[i] = string.pack("<I4", x)
  end
  return table.concat(t)
end

do
  -- three extents: noise (raw blocks), one byte repeated (RLE blocks), text
  local c0, c1 = noise(2 * G.BLOCK, 7), string.rep("\xaa", G.CLUSTER)
  local c2 = string.rep("the disk of a backup ", 200):sub(1, 3 * G.BLOCK)
  local plain, lay = G.build({
    configs = { { name = "qemu-server.conf", data = "memory: 512\n" } },
    devices = { { id = 1, name = "drive-scsi0", size = 3 * G.CLUSTER } },
    extents = {
      { slots = { { dev = 1, cluster = 0, mask = 0x0003, data = c0 } } },
      { slots = { { dev = 1, cluster = 1, mask = 0xffff, data = c1 } } },
      { slots = { { dev = 1, cluster = 2, mask = 0x0007, data = c2 } } },
    },
  })
  local e = lay.extents
  -- frames at the extents, and one that is the repeated cluster alone
  local cuts = { e[1].offset, e[2].offset, e[2].data_offset, e[3].offset }
  write("sk-raw-rle-text.vma.zst", seekable(plain, cuts))
  -- odd frames of 5000 bytes, across every boundary
  local odd = {}
  for o = 5000, #plain - 1, 5000 do odd[#odd + 1] = o end
  write("sk-odd-frames.vma.zst", seekable(plain, odd))
  -- (a) frame 2 (E2 and the repeated cluster's extent) said 512 bytes short
  write("sk-short-entry.vma.zst", seekable(plain, { e[1].offset, e[3].offset }, function(i, en)
    if i == 2 then en[2] = en[2] - 512 end
  end))
  -- (b) one byte of the noise flipped 2,000 bytes into its frame
  write("sk-flipped.vma.zst", seekable(plain, cuts, function(i, _, frames)
    if i == 2 then
      local f = frames[i]
      frames[i] = f:sub(1, 2000) .. string.char(f:byte(2001) ~ 0x20) .. f:sub(2002)
    end
  end))
  -- a frame without content checksum
  write("sk-no-checksum.vma.zst", seekable(plain, cuts, function(i, _, frames, part)
    if i == 3 then frames[i] = zframe(part, "--no-check") end
  end))
  -- 1000 bytes of skippable padding inside frame 1's entry
  write("sk-padded.vma.zst", seekable(plain, cuts, function(i, en, frames)
    if i == 1 then
      frames[i] = frames[i] .. string.pack("<I4I4", 0x184D2A50, 1000) .. string.rep("\0", 1000)
      en[1] = en[1] + 8 + 1000
    end
  end))
  -- a seek table claiming 2^32-1 frames (the footer of a small file)
  local honest = seekable(plain, cuts)
  write("sk-claims-2e32-frames.vma.zst", honest:sub(1, -10) .. string.pack("<I4BI4", 0xffffffff, 0, SEEKABLE))
  -- a frame claiming 1 GiB of compressed bytes
  write("sk-claims-1g-frame.vma.zst", seekable(plain, cuts, function(i, en)
    if i == 2 then en[1] = 1 << 30 end
  end))
end

-- (a) as issue #19 tells it: E1 and E2 of one block each in frame 1, an empty
-- extent in frame 2; the table says frame 1 is 512 bytes short, so that
-- through it E2's last 512 bytes are the empty extent's header
do
  local plain, lay = G.build({
    devices = { { id = 1, name = "drive-scsi0", size = 2 * G.CLUSTER } },
    extents = {
      { slots = { { dev = 1, cluster = 0, mask = 1 } } },
      { slots = { { dev = 1, cluster = 1, mask = 1 } } },
      { slots = {} },
    },
  })
  local e = lay.extents
  write("sk-hidden-extent.vma.zst", seekable(plain, { e[1].offset, e[3].offset }, function(i, en)
    if i == 2 then en[2] = en[2] - 512 end
  end))
end
