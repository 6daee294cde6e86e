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
