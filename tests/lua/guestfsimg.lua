-- A guest that only libguestfs reads, built at test time without root,
-- loop devices or mounts, in one libguestfs launch (lua-guestfs in this
-- process):
--   scsi0: GPT, partition 1 btrfs (mkfs.btrfs --rootdir: the top level),
--          subvolumes "root" (the OS: os-release, fstab with subvol=) and
--          "home" made in the appliance and filled from tar files
--   scsi1: MBR, partition 1 LUKS2 (cryptsetup luksFormat on the image file,
--          PBKDF2 with few iterations: quick to open) holding ext4 "secret"
--   scsi2, scsi3: whole-disk md RAID1 members holding ext4 "mdfs"
-- and its archive (vma create).  Returns a table of what was put where,
-- or nil, why when libguestfs cannot start here (then the tests that need
-- it are skipped); any other failure raises.
local H = require "helper"
local G = require "guestimg"

local M = {}

local MiB = 1 << 20
M.KEY = "correct horse battery"
M.BTRFS_UUID = "6b3c2f0e-4a51-4d0b-9c1e-2f6a7d8e9b10"

local function sh(cmd) return G.sh(cmd) end

--- The sources: a table of trees (path -> spec for G.tree).
function M.sources()
  return {
    top = {
      ["README"] = "the top level of the btrfs\n",
      ["sparse.bin"] = { sparse = 16 * MiB, at = { [3 * MiB] = "TOP-DATA" } },
    },
    root = {
      ["etc/os-release"] = 'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39 (btrfs)"\n',
      ["etc/hostname"] = "btrhost\n",
      ["etc/fstab"] = "UUID=" .. M.BTRFS_UUID .. " / btrfs subvol=root,compress=zstd:1 0 0\n"
        .. "UUID=" .. M.BTRFS_UUID .. " /home btrfs subvol=home 0 0\n"
        .. "LABEL=secret /srv ext4 defaults 0 2\n"
        .. "LABEL=mdfs /data ext4 defaults 0 2\n",
      ["etc/motd"] = { data = "welcome\n", mode = 0x1a4, mtime = 1700000000 },
      ["etc/link-abs"] = { link = "/home/bob/notes.txt" },
      ["usr/bin/tool"] = { data = "#!/bin/sh\necho hi\n", mode = 0x1ed },
      ["home"] = { dir = true }, ["srv"] = { dir = true }, ["data"] = { dir = true },
    },
    home = {
      ["bob/notes.txt"] = { data = string.rep("note\n", 300), mtime = 1600000000 },
      ["bob/big.bin"] = { random = 2 * MiB + 77 },
      ["bob/sparse.img"] = { sparse = 24 * MiB, at = { [MiB] = "DATA-AT-1M", [20 * MiB] = "END" } },
      ["bob/up"] = { link = "../../etc/motd" },
      ["bob/café ünï.txt"] = "non-ASCII name\n",
    },
    srv = {
      ["www/index.html"] = "<html>secret</html>\n",
      ["report.txt"] = { data = "quarterly figures\n", mode = 0x180 },
      ["blob.bin"] = { random = 300000 },
    },
    md = {
      ["mirror.txt"] = "on both disks\n",
    },
  }
end

--- Build the disks and the archive in dir: returns the table
--- { archive =, src = { top =, root =, home =, srv =, md = } (folders) },
--- or nil, why (libguestfs cannot start here).
function M.build(dir)
  local ok, Gf = pcall(require, "guestfs")
  if not ok or type(Gf) ~= "table" then
    return nil, "lua-guestfs is not installed (make check-guestfs installs it)"
  end
  for _, prog in ipairs { "mkfs.btrfs", "cryptsetup", "sfdisk", "tar" } do
    if not G.have(prog) then return nil, prog .. " is not installed" end
  end
  local src = {}
  for name, tree in pairs(M.sources()) do
    src[name] = dir .. "/src-" .. name
    G.tree(src[name], tree)
  end
  -- the tar files the appliance unpacks (holes kept: -S)
  for _, name in ipairs { "root", "home", "srv", "md" } do
    sh(string.format("tar -C %s -S --numeric-owner -cf %s .", H.q(src[name]), H.q(dir .. "/" .. name .. ".tar")))
  end
  -- scsi0: GPT, btrfs made from the top level's folder
  sh(string.format("truncate -s 160M %s && mkfs.btrfs -q -f -L btroot -U %s --rootdir %s %s",
    H.q(dir .. "/btrfs.img"), M.BTRFS_UUID, H.q(src.top), H.q(dir .. "/btrfs.img")))
  G.disk(dir .. "/d0.raw", 170, "gpt", { "start=2048, size=327680, type=L, name=system" })
  G.place(dir .. "/d0.raw", dir .. "/btrfs.img", 2048 * 512)
  -- scsi1: MBR, LUKS2 formatted here (the header only; no device is opened)
  H.write(dir .. "/key", M.KEY)
  sh(string.format("truncate -s 40M %s && cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 "
    .. "--pbkdf-force-iterations 1000 --key-file %s %s", H.q(dir .. "/luks.img"), H.q(dir .. "/key"),
    H.q(dir .. "/luks.img")))
  G.disk(dir .. "/d1.raw", 42, "dos", { "start=2048, size=81920, type=83" })
  G.place(dir .. "/d1.raw", dir .. "/luks.img", 2048 * 512)
  -- scsi2, scsi3: empty (the appliance makes the RAID)
  sh(string.format("truncate -s 24M %s %s", H.q(dir .. "/d2.raw"), H.q(dir .. "/d3.raw")))

  -- one launch makes the rest
  local g = Gf.create()
  g:set_backend_settings { "force_tcg" }
  for _, d in ipairs { "d0", "d1", "d2", "d3" } do
    g:add_drive(dir .. "/" .. d .. ".raw", { format = "raw" })
  end
  local launched, lerr = pcall(g.launch, g)
  if not launched then
    pcall(g.close, g)
    return nil, "libguestfs cannot start here: " .. tostring(type(lerr) == "table" and lerr.msg or lerr)
  end
  -- btrfs: the subvolumes, filled from the tar files
  g:mount("/dev/sda1", "/")
  g:btrfs_subvolume_create("/root")
  g:btrfs_subvolume_create("/home")
  g:tar_in(dir .. "/root.tar", "/root")
  g:tar_in(dir .. "/home.tar", "/home")
  g:umount("/")
  -- LUKS2 holding ext4
  g:cryptsetup_open("/dev/sdb1", M.KEY, "secret")
  g:mkfs("ext4", "/dev/mapper/secret", { label = "secret" })
  g:mount("/dev/mapper/secret", "/")
  g:tar_in(dir .. "/srv.tar", "/")
  g:umount("/")
  g:cryptsetup_close("/dev/mapper/secret")
  -- md RAID1 of two whole disks, holding ext4
  g:md_create("mirror", { "/dev/sdc", "/dev/sdd" }, { level = "raid1" })
  g:mkfs("ext4", "/dev/md/mirror", { label = "mdfs" })
  g:mount("/dev/md/mirror", "/")
  g:tar_in(dir .. "/md.tar", "/")
  g:umount("/")
  g:md_stop("/dev/md/mirror")
  g:shutdown()
  g:close()

  local archive = dir .. "/g.vma"
  G.backup(archive, { { "drive-scsi0", dir .. "/d0.raw" }, { "drive-scsi1", dir .. "/d1.raw" },
    { "drive-scsi2", dir .. "/d2.raw" }, { "drive-scsi3", dir .. "/d3.raw" } })
  for _, f in ipairs { "d0.raw", "d1.raw", "d2.raw", "d3.raw", "btrfs.img", "luks.img",
      "root.tar", "home.tar", "srv.tar", "md.tar" } do
    os.remove(dir .. "/" .. f)
  end
  return { archive = archive, src = src, keyfile = dir .. "/key" }
end

return M
