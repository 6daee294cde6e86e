-- partition-table.lua: print the partition table of each disk in a VMA
-- archive, read at random from the archive (nothing is restored): sector 0
-- (MBR), and when it is a protective MBR the GPT header at LBA 1 and its
-- partition entries.  512-byte sectors.
--
--   lua5.4 examples/partition-table.lua ARCHIVE [DISK...]
--
-- (vma.so must be on package.cpath: installed by make install, or
-- LUA_CPATH='build/?.so;;' in the source tree.)  The archive is a plain .vma
-- or a seekable .vma.zst.
local vma = require "vma"

local SECTOR = 512

local function human(n)
  local units, i = { "B", "KiB", "MiB", "GiB", "TiB" }, 1
  while n >= 1024 and i < #units do n, i = n / 1024, i + 1 end
  return i == 1 and string.format("%d B", n) or string.format("%.1f %s", n, units[i])
end

local MBR_TYPES = {
  [0x05] = "extended", [0x07] = "NTFS/exFAT", [0x0b] = "FAT32", [0x0c] = "FAT32 (LBA)",
  [0x0f] = "extended (LBA)", [0x82] = "Linux swap", [0x83] = "Linux", [0x8e] = "Linux LVM",
  [0xee] = "GPT protective", [0xef] = "EFI System", [0xfd] = "Linux RAID",
}

local GPT_TYPES = {
  ["C12A7328-F81F-11D2-BA4B-00A0C93EC93B"] = "EFI System",
  ["21686148-6449-6E6F-744E-656564454649"] = "BIOS boot",
  ["0FC63DAF-8483-4772-8E79-3D69D8477DE4"] = "Linux filesystem",
  ["0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"] = "Linux swap",
  ["E6D6D379-F507-44C2-A23C-238F2A3DF928"] = "Linux LVM",
  ["A19D880F-05FC-4D3B-A006-743F0F84911E"] = "Linux RAID",
  ["EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"] = "Microsoft basic data",
  ["E3C9E316-0B5C-4DB8-817D-F92DF00215AE"] = "Microsoft reserved",
}

-- a GUID as text: the first three fields are little-endian
local function guid(b)
  local d1, d2, d3 = string.unpack("<I4I2I2", b)
  local rest = b:sub(9, 16):gsub(".", function(c) return string.format("%02X", c:byte()) end)
  return string.format("%08X-%04X-%04X-%s-%s", d1, d2, d3, rest:sub(1, 4), rest:sub(5))
end

-- UTF-16LE (the BMP) to UTF-8, up to the first NUL
local function utf16(b)
  local out = {}
  for i = 1, #b - 1, 2 do
    local c = string.unpack("<I2", b, i)
    if c == 0 then break end
    out[#out + 1] = utf8.char(c)
  end
  return table.concat(out)
end

local function read(d, off, len)
  local data, err = d:read(off, len)
  if not data then error(err, 0) end
  return data
end

local function print_gpt(d)
  local h = read(d, SECTOR, SECTOR)
  if h:sub(1, 8) ~= "EFI PART" then
    print("  a protective MBR, but no GPT header at LBA 1")
    return
  end
  local first, last = string.unpack("<I8I8", h, 41)
  local entries_lba, n, size = string.unpack("<I8I4I4", h, 73)
  print(string.format("  GPT, disk %s, usable sectors %d-%d, %d entries", guid(h:sub(57, 72)),
    first, last, n))
  if size < 128 or n > 4096 then
    print("  (entries of an unusual size: not shown)")
    return
  end
  local t = read(d, entries_lba * SECTOR, n * size)
  print(string.format("  %3s %12s %12s %10s  %-22s %s", "#", "start", "end", "size", "type", "name"))
  for i = 0, n - 1 do
    local e = t:sub(i * size + 1, i * size + 128)
    if #e == 128 and e:sub(1, 16) ~= string.rep("\0", 16) then
      local s, l = string.unpack("<I8I8", e, 33)
      local ty = guid(e:sub(1, 16))
      print(string.format("  %3d %12d %12d %10s  %-22s %s", i + 1, s, l,
        human((l - s + 1) * SECTOR), GPT_TYPES[ty] or ty, utf16(e:sub(57, 128))))
    end
  end
end

local function print_table(d)
  io.write(string.format("%s: %s (%d bytes)\n", d.name, human(d.size), d.size))
  if d.size < SECTOR then
    print("  too small for a partition table")
    return
  end
  local s = read(d, 0, SECTOR)
  if s:sub(511, 512) ~= "\x55\xaa" then
    print("  no partition table (no 55 AA signature in sector 0)")
    return
  end
  local parts, gpt = {}, false
  for i = 0, 3 do
    local boot, ty, start, count = string.unpack("<B xxx B xxx I4 I4", s, 447 + 16 * i)
    if ty ~= 0 then
      parts[#parts + 1] = { i + 1, boot == 0x80, ty, start, count }
      gpt = gpt or ty == 0xee
    end
  end
  if gpt then return print_gpt(d) end
  if #parts == 0 then
    print("  an MBR with no partition")
    return
  end
  print(string.format("  MBR, disk signature 0x%08x", string.unpack("<I4", s, 441)))
  print(string.format("  %3s %4s %12s %12s %10s  %s", "#", "boot", "start", "sectors", "size", "type"))
  for _, p in ipairs(parts) do
    print(string.format("  %3d %4s %12d %12d %10s  0x%02x %s", p[1], p[2] and "*" or "", p[4],
      p[5], human(p[5] * SECTOR), p[3], MBR_TYPES[p[3]] or ""))
  end
end

local path = arg[1]
if not path then
  io.stderr:write("usage: partition-table.lua ARCHIVE [DISK...]\n")
  os.exit(2)
end
local r, err = vma.open(path)
if not r then
  io.stderr:write("partition-table.lua: " .. err .. "\n")
  os.exit(1)
end
local names = { table.unpack(arg, 2) }
if #names == 0 then
  for _, dev in ipairs(r:devices()) do
    if not dev.vmstate then names[#names + 1] = dev.name end
  end
end
local status = 0
for _, name in ipairs(names) do
  local d, derr = r:disk(name)
  if not d then
    io.stderr:write("partition-table.lua: " .. derr .. "\n")
    status = 1
  else
    local ok, perr = pcall(print_table, d)
    if not ok then
      io.stderr:write("partition-table.lua: " .. name .. ": " .. tostring(perr) .. "\n")
      status = 1
    end
    d:close()
  end
end
r:close()
os.exit(status)
