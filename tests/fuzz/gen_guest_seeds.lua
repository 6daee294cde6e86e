-- Make the seeds of the guest fuzzer (tests/fuzz/fuzz_guest.c) into
-- tests/fuzz/seeds-guest/: small disk images of every kind the guest layer
-- reads, each as the raw bytes or (for the large ones) in the sparse form
-- "VMAS" + {u32 LE block of 4 KiB, u16 LE length, bytes}...
--   VMA_ROOT=$PWD LUA_PATH="lua/?.lua;tests/lua/?.lua;;" LUA_CPATH="build/?.so;;" \
--     lua5.4 tests/fuzz/gen_guest_seeds.lua
local H = require "helper"
local G = require "guestimg"

local out = (os.getenv("VMA_ROOT") or ".") .. "/tests/fuzz/seeds-guest"
os.execute("mkdir -p " .. H.q(out))
local tmp = H.tmpdir()

-- the non-zero 4 KiB blocks of an image
local function sparse(name, img)
  local f = assert(io.open(img, "rb"))
  local parts, blk = { "VMAS" }, 0
  while true do
    local b = f:read(4096)
    if not b then break end
    if b:find("[^%z]") then
      local last = #b
      while last > 0 and b:byte(last) == 0 do last = last - 1 end
      parts[#parts + 1] = string.pack("<I4I2", blk, last) .. b:sub(1, last)
    end
    blk = blk + 1
  end
  f:close()
  H.write(out .. "/" .. name, table.concat(parts))
end

local src = tmp .. "/src"
local spec = {
  ["etc/os-release"] = "ID=seed\n",
  ["etc/fstab"] = "UUID=x / ext4 defaults 0 1\n",
  ["a/b/c/deep.txt"] = "deep\n",
  ["big.bin"] = string.rep("0123456789abcdef", 1300), -- past 12 blocks of 1 KiB
  ["sparse"] = { sparse = 1 << 20, at = { [500000] = "x" } },
  ["fast"] = { link = "etc/os-release" },
  ["slow"] = { link = string.rep("long/", 30) .. "target" },
  ["loop"] = { link = "loop" },
}
for i = 1, 40 do spec["many/f" .. i] = "file " .. i .. "\n" end
G.tree(src, spec)

G.ext4(tmp .. "/e4.img", 1, src, { extra = "-b 1024 -N 96 -O ^has_journal" })
sparse("ext4-1k.vmas", tmp .. "/e4.img")
G.ext4(tmp .. "/e2.img", 1, src, { type = "ext2", extra = "-b 1024 -N 96" })
sparse("ext2-1k.vmas", tmp .. "/e2.img")
G.ext4(tmp .. "/e4i.img", 1, src, { extra = "-b 1024 -N 96 -I 256 -O inline_data,^has_journal" })
sparse("ext4-inline.vmas", tmp .. "/e4i.img")
G.ext4(tmp .. "/e44k.img", 8, src, { extra = "-b 4096 -O ^has_journal" })
sparse("ext4-4k.vmas", tmp .. "/e44k.img")

G.tree(tmp .. "/fsrc", { ["EFI/BOOT/BOOTX64.EFI"] = string.rep("e", 5000), ["Windows/System32/x.dll"] = "x",
  ["readme.txt"] = "r\n" })
G.vfat(tmp .. "/fat.img", 1, tmp .. "/fsrc", { label = "SEED" })
sparse("vfat.vmas", tmp .. "/fat.img")

if G.have("mkfs.exfat") then
  G.sh("truncate -s 8M " .. H.q(tmp .. "/exfat.img") .. " && mkfs.exfat -b 4K -L SEED " .. H.q(tmp .. "/exfat.img") .. " >/dev/null")
  sparse("exfat.vmas", tmp .. "/exfat.img")
end

G.ntfs(tmp .. "/ntfs.img", 2, { ["hello.txt"] = "hello\n", ["日本.txt"] = "x" }, { label = "SEED" })
sparse("ntfs.vmas", tmp .. "/ntfs.img")

local xsrc = tmp .. "/xsrc"
local xspec = { ["etc/os-release"] = "ID=x\n", ["l"] = { link = "etc/os-release" },
  ["big"] = string.rep("z", 70000) }
for i = 1, 200 do xspec["dir/file-with-a-longer-name-" .. i] = "x" .. i end
for i = 1, 20 do xspec["mid/n" .. i] = "y" end
G.tree(xsrc, xspec)
G.xfs(tmp .. "/xfs.img", 300, xsrc)
sparse("xfs.vmas", tmp .. "/xfs.img")

-- a GPT disk with an ext4 partition
G.ext4(tmp .. "/p.img", 1, src, { extra = "-b 1024 -N 64 -O ^has_journal" })
G.disk(tmp .. "/gpt.raw", 4, "gpt", { "start=2048, size=2048, type=L" })
G.place(tmp .. "/gpt.raw", tmp .. "/p.img", 2048 * 512)
sparse("gpt-ext4.vmas", tmp .. "/gpt.raw")

-- an MBR disk: a logical partition holding an LVM PV whose LV is the ext4
G.disk(tmp .. "/mbr.raw", 8, "dos", { "start=2048, size=14336, type=5", "start=4096, size=12288, type=8e" })
local raw_uuid, dashed = G.pv_uuid(7)
local text = G.lvm_text { name = "pve", id = "seedvg-0000-0000-0000-0000-0000-000000", extent_mb = 1,
  pvs = { { key = "pv0", uuid = dashed, dev_size = 12288, pe_count = 4 } },
  lvs = { { name = "root", segments = { { pv = "pv0", pe = 1, count = 1 } } } } }
G.lvm_pv(tmp .. "/mbr.raw", 4096 * 512, 12288 * 512, raw_uuid, text)
G.place(tmp .. "/mbr.raw", tmp .. "/p.img", 4096 * 512 + 2 * (1 << 20))
sparse("mbr-lvm.vmas", tmp .. "/mbr.raw")

H.rm(tmp)
print("seeds in " .. out)
