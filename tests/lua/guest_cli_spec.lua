-- Files, not disks: vma ls / get / find / inspect on guests built at test
-- time (no root, no loop device, no mount) and backed up with vma create:
-- GPT + EFI vfat + ext4 root; MBR with a logical partition + LVM (VG pve)
-- spanning two disks, ext4 root LV and XFS /var LV; NTFS with non-ASCII
-- names; the ext4 sparse file TSK cuts.  Every file read back equals what
-- was put in.
local H = require "helper"
local G = require "guestimg"
local json = require "dkjson"

local function vma(...) return H.vma(...) end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local MiB = 1 << 20

describe("a GPT disk with an EFI vfat partition and an ext4 root", function()
  local dir, A, src, efi
  lazy_setup(function()
    dir = H.tmpdir()
    src, efi = dir .. "/root", dir .. "/efi"
    G.tree(src, {
      ["etc/os-release"] = { link = "../usr/lib/os-release" },
      ["usr/lib/os-release"] = 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
      ["etc/hostname"] = "web1\n",
      ["etc/fstab"] = "# static\nUUID=1234-ABCD  /boot/efi  vfat  umask=0077  0 1\n"
        .. "tmpfs /tmp tmpfs defaults 0 0\n",
      ["etc/passwd"] = "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n",
      ["etc/group"] = "root:x:0:\nbob:x:1000:\n",
      ["etc/nginx/nginx.conf"] = { data = "worker_processes 4;\n", mode = 0x1a0, mtime = 1700000000 },
      ["etc/secret"] = { data = "s3cret", mode = 0x180 },
      ["usr/bin/sudo"] = { data = "#!/bin/sh\n", mode = 0x9ed }, -- 04755
      ["home/bob/report.txt"] = { data = string.rep("line\n", 1000), mtime = 1600000000 },
      ["home/bob/big.bin"] = { random = 3 * MiB + 123 },
      ["home/bob/link-abs"] = { link = "/etc/hostname" },
      ["home/bob/link-rel"] = { link = "../../etc/nginx" },
      -- the trap of TSK: a hole that runs past the last block of the file system
      ["home/bob/sparse.img"] = { sparse = 1 << 30, at = { [4096 * 100] = "DATA-AT-400K" } },
      ["boot/efi"] = { dir = true },
      ["tmp"] = { dir = true, mode = 0x3ff }, -- 01777
      ["var/log/syslog"] = "boot\n",
    })
    G.tree(efi, { ["EFI/debian/grubx64.efi"] = H.bytes(50000, 3), ["EFI/BOOT/BOOTX64.EFI"] = "x" })
    G.vfat(dir .. "/efi.img", 32, efi, { serial = "1234ABCD", label = "EFI" })
    G.ext4(dir .. "/root.img", 100, src, { label = "rootfs" })
    G.disk(dir .. "/disk.raw", 160, "gpt", {
      "start=2048, size=65536, type=U, name=\"EFI system\"",
      "start=67584, size=204800, type=L, name=root",
    })
    G.place(dir .. "/disk.raw", dir .. "/efi.img", 2048 * 512)
    G.place(dir .. "/disk.raw", dir .. "/root.img", 67584 * 512)
    A = dir .. "/a.vma"
    G.backup(A, { { "drive-scsi0", dir .. "/disk.raw" } })
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("ls / lists the root file system with the EFI partition mounted on /boot/efi", function()
    local rc, out, err = vma("ls", A, "/")
    assert.are.equal(0, rc, err)
    assert.are.same({ "boot", "etc", "home", "lost+found", "tmp", "usr", "var" }, lines(out))
    rc, out, err = vma("ls", A, "/boot/efi/EFI")
    assert.are.equal(0, rc, err)
    assert.are.same({ "BOOT", "debian" }, lines(out))
  end)

  it("ls -l shows mode, owner names of the guest, size, time and link targets", function()
    local rc, out, err = vma("ls", "-l", A, "/etc/nginx", "/home/bob/link-abs", "/usr/bin/sudo")
    assert.are.equal(0, rc, err)
    assert.matches("%-rw%-r%-%-%-%-%-%s+1 root%s+root%s+20 2023%-11%-14 22:13 nginx.conf", out)
    assert.matches("lrwxrwxrwx .* /home/bob/link%-abs %-> /etc/hostname", out)
    assert.matches("%-rwsr%-xr%-x .* /usr/bin/sudo", out)
  end)

  it("ls -R --json walks a tree across the mount on /boot/efi", function()
    local rc, out, err = vma("ls", "-R", "--json", A, "/boot")
    assert.are.equal(0, rc, err)
    local j = json.decode(out)
    assert.is_true(j.ok)
    local paths = {}
    for _, e in ipairs(j.paths[1].entries) do paths[#paths + 1] = e.path end
    assert.are.same({ "/boot/efi", "/boot/efi/EFI", "/boot/efi/EFI/BOOT", "/boot/efi/EFI/BOOT/BOOTX64.EFI",
      "/boot/efi/EFI/debian", "/boot/efi/EFI/debian/grubx64.efi" }, paths)
  end)

  it("get of the whole tree gives back every file, link, mode and time", function()
    local out = dir .. "/out1"
    os.execute("mkdir " .. H.q(out))
    local rc, _, err = vma("get", "-q", A, "/", out)
    assert.are.equal(0, rc, err)
    -- the root's tree, with the EFI partition's files in boot/efi
    local expect = dir .. "/expect"
    G.sh("cp -a " .. H.q(src) .. " " .. H.q(expect) .. " && cp -a " .. H.q(efi) .. "/. "
      .. H.q(expect .. "/boot/efi/"))
    local diffs = G.compare(expect, out .. "/root", { mode = true, extra = { ["lost+found"] = true },
      skip = { ["usr/bin/sudo"] = true } })
    assert.are.same({}, diffs)
    -- setuid dropped without --preserve-owner
    local st = G.scan(out .. "/root")
    assert.are.equal(0x1ed, st["usr/bin/sudo"].mode) -- 0755
    assert.are.equal(1700000000, st["etc/nginx/nginx.conf"].mtime)
    assert.are.equal(1600000000, st["home/bob/report.txt"].mtime)
    assert.are.equal("l", st["home/bob/link-abs"].type)
    assert.are.equal("/etc/hostname", st["home/bob/link-abs"].target)
  end)

  it("get keeps the sparse file that TSK cuts whole and sparse", function()
    local out = dir .. "/out2"
    os.execute("mkdir " .. H.q(out))
    local rc, _, err = vma("get", "-q", A, "/home/bob/sparse.img", out)
    assert.are.equal(0, rc, err)
    assert.are.equal(0, H.sh("cmp " .. H.q(src .. "/home/bob/sparse.img") .. " " .. H.q(out .. "/sparse.img")))
    assert.is_true(G.allocated(out .. "/sparse.img") <= 64 * 1024)
  end)

  it("get - writes one file to standard output, following a link", function()
    local rc, out, err = vma("get", A, "/etc/os-release", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal(H.read(src .. "/usr/lib/os-release"), out)
    rc, out, err = vma("get", A, "scsi0:1:/EFI/debian/grubx64.efi", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal(H.read(efi .. "/EFI/debian/grubx64.efi"), out)
  end)

  it("get never replaces an existing file without --force, and with it does", function()
    local out = dir .. "/out3"
    os.execute("mkdir " .. H.q(out))
    H.write(out .. "/hostname", "mine\n")
    local rc, _, err = vma("get", A, "/etc/hostname", out)
    assert.are.equal(1, rc)
    assert.matches("exists", err)
    assert.are.equal("mine\n", H.read(out .. "/hostname"))
    rc, _, err = vma("get", "-q", "--force", A, "/etc/hostname", out)
    assert.are.equal(0, rc, err)
    assert.are.equal("web1\n", H.read(out .. "/hostname"))
    -- a new name for one file
    rc, _, err = vma("get", "-q", A, "/etc/hostname", out .. "/h2")
    assert.are.equal(0, rc, err)
    assert.are.equal("web1\n", H.read(out .. "/h2"))
    assert.are.same({ "h2", "hostname" }, H.ls(out))
  end)

  it("paths of one volume as inspect names them", function()
    local rc, out, err = vma("ls", A, "scsi0:2:/etc/nginx")
    assert.are.equal(0, rc, err)
    assert.are.equal("nginx.conf\n", out)
    rc, out, err = vma("ls", A, "drive-scsi0:1:/EFI")
    assert.are.equal(0, rc, err)
    assert.are.equal("BOOT\ndebian\n", out)
  end)

  it("any archive: a .vma.gz is read through the copy its decoder makes", function()
    local gz = dir .. "/a.vma.gz"
    G.backup(gz, { { "drive-scsi0", dir .. "/disk.raw" } }, { compress = "gzip" })
    local rc, out, err = vma("get", "--no-cache", gz, "/home/bob/report.txt", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal(string.rep("line\n", 1000), out)
    rc, out, err = vma("ls", "--no-cache", gz, "/boot/efi/EFI")
    assert.are.equal(0, rc, err)
    assert.are.equal("BOOT\ndebian\n", out)
  end)

  it("a missing path is a clear error", function()
    local rc, out, err = vma("ls", A, "/etc/nope")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("/etc/nope: no such file or folder", err)
    rc, _, err = vma("get", A, "/etc/nope", dir)
    assert.are.equal(1, rc)
    assert.matches("no such file", err)
    rc, _, err = vma("ls", A, "zz9:/x")
    assert.are.equal(1, rc)
    assert.matches("no volume", err)
  end)

  it("inspect tells the partitions, file systems, OS, hostname and mounts", function()
    local rc, out, err = vma("inspect", "--json", A)
    assert.are.equal(0, rc, err)
    local j = json.decode(out)
    assert.are.equal("gpt", j.disks[1].partition_table)
    local v1, v2 = j.disks[1].volumes[1], j.disks[1].volumes[2]
    assert.are.equal("scsi0:1", v1.name)
    assert.are.equal("vfat", v1.fstype)
    assert.are.equal("1234-ABCD", v1.uuid)
    assert.are.equal("EFI", v1.label)
    assert.are.equal("ext4", v2.fstype)
    assert.are.equal("rootfs", v2.label)
    assert.are.equal("root", v2.part_name)
    assert.are.equal("scsi0:2", j.root)
    assert.are.equal("linux", j.os.kind)
    assert.are.equal("Debian GNU/Linux 12 (bookworm)", j.os.pretty_name)
    assert.are.equal("web1", j.os.hostname)
    assert.are.equal("/boot/efi", j.mounts[2].path)
    assert.are.equal("scsi0:1", j.mounts[2].volume)
    rc, out = vma("inspect", A)
    assert.are.equal(0, rc)
    assert.matches("Debian GNU/Linux 12", out)
  end)

  it("find by name, type, size and date", function()
    local rc, out, err = vma("find", A, "/etc", "--name", "*.conf")
    assert.are.equal(0, rc, err)
    assert.are.equal("/etc/nginx/nginx.conf\n", out)
    rc, out = vma("find", A, "/home", "--size", "+1M", "--type", "f")
    assert.are.equal(0, rc)
    assert.are.equal("/home/bob/big.bin\n/home/bob/sparse.img\n", out)
    rc, out = vma("find", A, "/home/bob", "--type", "l")
    assert.are.equal("/home/bob/link-abs\n/home/bob/link-rel\n", out)
    rc, out = vma("find", A, "/etc", "--newer", "2023-11-14", "--name", "nginx*", "--json")
    local j = json.decode(out)
    local names = {}
    for _, e in ipairs(j.entries) do names[#names + 1] = e.path end
    assert.are.same({ "/etc/nginx", "/etc/nginx/nginx.conf" }, names)
  end)

  it("the Lua API: r:guest(), d:volumes(), vol:fs(), files read like Lua's", function()
    local script = dir .. "/api.lua"
    H.write(script, [[
      local vma = require "vma"
      local r <close> = assert(vma.open(arg[1]))
      local d <close> = assert(r:disk("drive-scsi0"))
      local vols = assert(d:volumes())
      assert(#vols == 2 and vols[2].name == "scsi0:2" and vols[2].fstype == "ext4")
      local fs <close> = assert(vols[2]:fs())
      assert(fs.type == "ext4" and fs.label == "rootfs")
      local f <close> = assert(fs:open("/etc/nginx/nginx.conf"))
      assert(f:read("l") == "worker_processes 4;")
      assert(f:read("a") == "")
      f:seek("set", 7)
      assert(f:read(9) == "processes")
      local n = 0
      local g <close> = assert(r:guest())
      local rf <close> = assert(g:open("/home/bob/report.txt"))
      for l in rf:lines() do n = n + 1 end
      assert(n == 1000)
      local names = {}
      for name, st in assert(g:dir("/home/bob")) do names[#names + 1] = name .. ":" .. st.type end
      assert(table.concat(names, ",") == "big.bin:file,link-abs:link,link-rel:link,report.txt:file,sparse.img:file", table.concat(names, ","))
      assert(g:readlink("/home/bob/link-rel") == "../../etc/nginx")
      assert(g:stat("/home/bob/link-rel/nginx.conf").size == 20)
      local count = 0
      for p, st in g:walk("/etc") do count = count + 1 end
      assert(count == 8, count)
      local st, err, kind = g:stat("/nope")
      assert(st == nil and kind == "not-found", tostring(err))
      f:close(); f:close()
      assert(not pcall(f.read, f, 1))
      print("ok")
    ]])
    local rc, out, err = H.sh(string.format("LUA_PATH=%s LUA_CPATH=%s lua5.4 %s %s",
      H.q(H.root .. "/lua/?.lua;;"), H.q(H.root .. "/build/?.so;;"), H.q(script), H.q(A)))
    assert.are.equal(0, rc, err)
    assert.are.equal("ok\n", out)
  end)
end)

describe("an MBR disk with a logical partition and LVM (VG pve) over two disks", function()
  local dir, A, rootsrc, varsrc
  local EXT = 4 * MiB
  lazy_setup(function()
    dir = H.tmpdir()
    rootsrc, varsrc = dir .. "/root", dir .. "/var"
    G.tree(rootsrc, {
      ["etc/os-release"] = 'ID=debian\nPRETTY_NAME="Proxmox-like guest"\n',
      ["etc/hostname"] = "db1\n",
      ["etc/fstab"] = "/dev/mapper/pve-root / ext4 errors=remount-ro 0 1\n"
        .. "/dev/pve/var /var xfs defaults 0 2\n"
        .. "/dev/pve/swap none swap sw 0 0\n",
      ["var"] = { dir = true },
      ["opt/data.bin"] = { random = 9 * MiB + 77 }, -- spans the two physical volumes
    })
    G.tree(varsrc, {
      ["log/syslog"] = "Nov 14 started\n",
      ["log/nginx/access.log"] = string.rep("GET / 200\n", 5000),
      ["lib/dpkg/status"] = "Package: vma\n",
      ["lib/link"] = { link = "../log/syslog" },
    })
    G.ext4(dir .. "/root.img", 24, rootsrc, { label = "pveroot" })
    G.xfs(dir .. "/var.img", 300, varsrc, { label = "pvevar" })
    -- disk 1: MBR, partition 1 (a small ext2 /boot-like fs), extended
    -- partition 2 with the logical partition 5: PV 1; disk 2: a whole-disk PV
    G.disk(dir .. "/d1.raw", 400, "dos", {
      "start=2048, size=8192, type=83",
      "start=12288, size=804864, type=5",
      "start=14336, size=802816, type=8e",
    })
    local pv1_off, pv1_size = 14336 * 512, 802816 * 512
    G.disk(dir .. "/d2.raw", 64)
    local pv2_off, pv2_size = 0, 64 * MiB
    local r1, u1 = G.pv_uuid(1)
    local r2, u2 = G.pv_uuid(2)
    local n1 = (pv1_size - MiB) // EXT
    local n2 = (pv2_size - MiB) // EXT
    -- root: 4 extents on PV 1 then 2 on PV 2 (24 MiB); var: 75 extents on PV 1
    local vg = { name = "pve", id = "vgidvg-vgid-vgid-vgid-vgid-vgid-vgidvg", extent_mb = 4, pvs = {
      { key = "pv0", uuid = u1, dev_size = pv1_size // 512, pe_count = n1 },
      { key = "pv1", uuid = u2, dev_size = pv2_size // 512, pe_count = n2 },
    }, lvs = {
      { name = "root", segments = { { pv = "pv0", pe = 0, count = 4 }, { pv = "pv1", pe = 0, count = 2 } } },
      { name = "var", segments = { { pv = "pv0", pe = 10, count = 75 } } },
      { name = "swap", segments = { { pv = "pv1", pe = 5, count = 1 } } },
    } }
    local text = G.lvm_text(vg)
    G.lvm_pv(dir .. "/d1.raw", pv1_off, pv1_size, r1, text)
    G.lvm_pv(dir .. "/d2.raw", pv2_off, pv2_size, r2, text)
    G.place_part(dir .. "/d1.raw", dir .. "/root.img", 0, pv1_off + MiB, 4 * EXT)
    G.place_part(dir .. "/d2.raw", dir .. "/root.img", 4 * EXT, pv2_off + MiB, 2 * EXT)
    G.place_part(dir .. "/d1.raw", dir .. "/var.img", 0, pv1_off + MiB + 10 * EXT, 75 * EXT)
    A = dir .. "/b.vma.zst"
    G.backup(A, { { "drive-scsi0", dir .. "/d1.raw" }, { "drive-virtio1", dir .. "/d2.raw" } },
      { compress = "zstd" })
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("finds the volume group on both disks and mounts the XFS /var", function()
    local rc, out, err = vma("ls", A, "/var/log")
    assert.are.equal(0, rc, err)
    assert.are.equal("nginx\nsyslog\n", out)
    rc, out, err = vma("get", A, "/var/log/syslog", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal("Nov 14 started\n", out)
  end)

  it("get of both logical volumes gives back every byte", function()
    local out = dir .. "/o"
    os.execute("mkdir " .. H.q(out))
    local rc, _, err = vma("get", "-q", A, "/", out)
    assert.are.equal(0, rc, err)
    local expect = dir .. "/expect"
    G.sh("cp -a " .. H.q(rootsrc) .. " " .. H.q(expect) .. " && cp -a " .. H.q(varsrc) .. "/. "
      .. H.q(expect .. "/var/"))
    assert.are.same({}, G.compare(expect, out .. "/root", { mode = true, extra = { ["lost+found"] = true } }))
  end)

  it("inspect names the volume group, its logical volumes and the mounts", function()
    local rc, out, err = vma("inspect", "--json", A)
    assert.are.equal(0, rc, err)
    local j = json.decode(out)
    assert.are.equal("mbr", j.disks[1].partition_table)
    local names = {}
    for _, v in ipairs(j.disks[1].volumes) do names[#names + 1] = v.name .. "=" .. v.fstype end
    assert.are.same({ "scsi0:1=", "scsi0:5=lvm2" }, names)
    assert.are.equal("pve", j.lvm[1].name)
    assert.are.same({ "scsi0:5", "virtio1" }, j.lvm[1].pvs)
    local lvs = {}
    for _, lv in ipairs(j.lvm[1].lvs) do lvs[#lvs + 1] = lv.name .. "=" .. (lv.fstype or "") end
    assert.are.same({ "pve/root=ext4", "pve/swap=", "pve/var=xfs" }, lvs)
    assert.are.equal("pve/root", j.root)
    assert.are.equal("/var", j.mounts[2].path)
    assert.are.equal("pve/var", j.mounts[2].volume)
  end)

  it("explicit volumes: pve/var:/log and pve-root:/etc", function()
    local rc, out, err = vma("ls", A, "pve/var:/log")
    assert.are.equal(0, rc, err)
    assert.are.equal("nginx\nsyslog\n", out)
    rc, out, err = vma("ls", A, "pve-root:/etc/hostname")
    assert.are.equal(0, rc, err)
    assert.are.equal("pve-root:/etc/hostname\n", out)
  end)
end)

describe("NTFS with non-ASCII names", function()
  local dir, A
  local files = {
    ["Bericht Ü1.txt"] = "grüße\n",
    ["日本語.txt"] = H.bytes(70000, 5),
    ["plain.txt"] = "plain\n",
  }
  lazy_setup(function()
    dir = H.tmpdir()
    G.ntfs(dir .. "/n.img", 32, files, { label = "Daten" })
    G.disk(dir .. "/disk.raw", 40, "dos", { "start=2048, type=7" })
    G.place(dir .. "/disk.raw", dir .. "/n.img", 2048 * 512)
    A = dir .. "/n.vma"
    G.backup(A, { { "drive-sata0", dir .. "/disk.raw" } })
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("lists the names as UTF-8 and reads every file", function()
    local rc, out, err = vma("ls", A, "/")
    assert.are.equal(0, rc, err)
    assert.are.same({ "Bericht Ü1.txt", "plain.txt", "日本語.txt" }, lines(out))
    local o = dir .. "/o"
    os.execute("mkdir " .. H.q(o))
    rc, _, err = vma("get", "-q", A, "/", o)
    assert.are.equal(0, rc, err)
    for name, data in pairs(files) do assert.are.equal(data, H.read(o .. "/root/" .. name), name) end
  end)

  it("matches names without regard to case, and tells the volume label", function()
    local rc, out, err = vma("get", A, "/PLAIN.TXT", "-")
    assert.are.equal(0, rc, err)
    assert.are.equal("plain\n", out)
    rc, out = vma("inspect", "--json", A)
    local j = json.decode(out)
    assert.are.equal("ntfs", j.disks[1].volumes[1].fstype)
    assert.are.equal("Daten", j.disks[1].volumes[1].label)
  end)
end)
