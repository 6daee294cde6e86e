-- Guest disk images built at test time, without root, loop devices or
-- mounts: file systems made from a folder (mke2fs -d, mkfs.vfat + mcopy,
-- mkfs.xfs -p with a protofile, mkntfs + ntfscp), partition tables
-- (sfdisk on the image file), LVM2 physical volumes written here (label,
-- PV header, metadata area with their CRCs, as LVM writes them), and the
-- archive of the disks (vma create).  And the checks: a tree copied out
-- equals the folder it was made from.
local H = require "helper"

local G = {}

local function sh(cmd)
  local rc, out, err = H.sh(cmd)
  if rc ~= 0 then error(cmd .. " failed (" .. tostring(rc) .. "): " .. err .. out, 2) end
  return out
end
G.sh = sh

function G.have(prog)
  return H.sh("command -v " .. prog .. " >/dev/null 2>&1") == 0
end

--- Make files under dir from a spec: { ["a/b.txt"] = "content",
--- ["l"] = { link = "target" }, ["d"] = { dir = true, mode = 0700 },
--- ["f"] = { data = "...", mode = 0x180, mtime = 1700000000 },
--- ["r"] = { random = bytes }, ["s"] = { sparse = size, at = { [offset] = data } } }.
function G.tree(dir, spec)
  sh("mkdir -p " .. H.q(dir))
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  table.sort(names)
  local made = {}
  for _, name in ipairs(names) do
    local v = spec[name]
    local path = dir .. "/" .. name
    local parent = path:match("^(.*)/[^/]*$")
    if not made[parent] then
      sh("mkdir -p " .. H.q(parent))
      made[parent] = true
    end
    if type(v) == "string" then v = { data = v } end
    if v.dir then
      sh("mkdir -p " .. H.q(path))
    elseif v.link then
      sh("ln -s " .. H.q(v.link) .. " " .. H.q(path))
    elseif v.random then
      sh("head -c " .. v.random .. " /dev/urandom > " .. H.q(path))
    elseif v.sparse then
      -- size bytes, with data at the given offsets
      sh("truncate -s " .. v.sparse .. " " .. H.q(path))
      for off, data in pairs(v.at or {}) do
        local f = assert(io.open(path, "r+b"))
        f:seek("set", off)
        f:write(data)
        f:close()
      end
    else
      H.write(path, v.data or "")
    end
    if v.mode then sh(string.format("chmod %o %s", v.mode, H.q(path))) end
    if v.mtime then sh(string.format("touch -h -d @%d %s", v.mtime, H.q(path))) end
  end
end

--- An ext2/3/4 file system of size MiB made from dir.
function G.ext4(img, size_mb, dir, opts)
  opts = opts or {}
  sh(string.format("mke2fs -q -F -t %s %s %s %s -d %s %s %dM", opts.type or "ext4",
    opts.label and ("-L " .. H.q(opts.label)) or "", opts.uuid and ("-U " .. opts.uuid) or "",
    opts.extra or "", H.q(dir), H.q(img), size_mb))
end

--- A FAT file system of size MiB (mkfs.vfat, then mcopy of dir).
function G.vfat(img, size_mb, dir, opts)
  opts = opts or {}
  os.remove(img)
  sh(string.format("mkfs.vfat -C %s %s %s %s %d >/dev/null", opts.fat and ("-F " .. opts.fat) or "",
    opts.serial and ("-i " .. opts.serial) or "", opts.label and ("-n " .. H.q(opts.label)) or "",
    H.q(img), size_mb * 1024))
  if dir then
    local rc, out = H.sh("ls -A " .. H.q(dir))
    if rc == 0 and out ~= "" then
      sh(string.format("cd %s && mcopy -s -m -i %s -- * ::/", H.q(dir), H.q(img)))
    end
  end
end

-- a protofile line's mode: type char, suid/sgid chars, octal permissions
local function proto_mode(kind, perm)
  return kind .. (perm & 0x800 ~= 0 and "u" or "-") .. (perm & 0x400 ~= 0 and "g" or "-")
    .. string.format("%03o", perm & 0x1ff)
end

--- An XFS file system of size MiB made from dir through a protofile.
function G.xfs(img, size_mb, dir, opts)
  opts = opts or {}
  local lines = { "/dev/null", "0 0", "d--755 0 0" }
  local function walk(d)
    local rc, out = H.sh("ls -A " .. H.q(d))
    assert(rc == 0)
    for name in out:gmatch("[^\n]+") do
      local p = d .. "/" .. name
      local _, info = H.sh("stat -c '%F|%a|%u|%g' " .. H.q(p))
      local kind, perm, uid, gid = info:match("^([^|]+)|(%d+)|(%d+)|(%d+)")
      perm = tonumber(perm, 8)
      assert(not name:find("%s"), "protofile names cannot hold spaces: " .. name)
      if kind == "symbolic link" then
        local _, t = H.sh("readlink " .. H.q(p))
        lines[#lines + 1] = string.format("%s %s %s %s %s", name, proto_mode("l", perm), uid, gid,
          t:gsub("\n$", ""))
      elseif kind == "directory" then
        lines[#lines + 1] = string.format("%s %s %s %s", name, proto_mode("d", perm), uid, gid)
        walk(p)
        lines[#lines + 1] = "$"
      else
        lines[#lines + 1] = string.format("%s %s %s %s %s", name, proto_mode("-", perm), uid, gid, p)
      end
    end
  end
  walk(dir)
  lines[#lines + 1] = "$"
  local proto = img .. ".proto"
  H.write(proto, table.concat(lines, "\n") .. "\n")
  sh("truncate -s " .. size_mb .. "M " .. H.q(img))
  sh(string.format("mkfs.xfs -q -f %s %s -p %s %s", opts.label and ("-L " .. opts.label) or "",
    opts.extra or "", H.q(proto), H.q(img)))
  os.remove(proto)
end

--- An NTFS file system of size MiB holding the files of a flat table
--- { name = content } in its root folder (ntfscp cannot make folders).
function G.ntfs(img, size_mb, flat, opts)
  opts = opts or {}
  sh("truncate -s " .. size_mb .. "M " .. H.q(img))
  sh(string.format("mkntfs -q -F -Q %s %s >/dev/null 2>&1", opts.label and ("-L " .. H.q(opts.label)) or "",
    H.q(img)))
  local tmp = img .. ".src"
  for name, data in pairs(flat) do
    H.write(tmp, data)
    sh(string.format("ntfscp -q -f %s %s %s", H.q(img), H.q(tmp), H.q(name)))
  end
  os.remove(tmp)
end

--- A disk image of size MiB with a partition table: kind "gpt" or "dos",
--- parts a list of sfdisk lines ("start=2048, size=65536, type=U").
function G.disk(img, size_mb, kind, parts)
  sh("truncate -s " .. size_mb .. "M " .. H.q(img))
  if kind then
    local script = "label: " .. kind .. "\n" .. table.concat(parts, "\n") .. "\n"
    local tmp = img .. ".sfdisk"
    H.write(tmp, script)
    sh("sfdisk -q " .. H.q(img) .. " < " .. H.q(tmp))
    os.remove(tmp)
  end
end

--- Copy the file src into img at byte offset (holes kept).
function G.place(img, src, offset, length)
  assert(offset % 512 == 0)
  sh(string.format("dd if=%s of=%s bs=512 seek=%d %s conv=notrunc,sparse status=none", H.q(src),
    H.q(img), offset // 512, length and ("count=" .. (length // 512)) or ""))
end

--- Copy length bytes of src from src_off into img at offset.
function G.place_part(img, src, src_off, offset, length)
  assert(offset % 512 == 0 and src_off % 512 == 0 and length % 512 == 0)
  sh(string.format("dd if=%s of=%s bs=512 skip=%d seek=%d count=%d conv=notrunc,sparse status=none",
    H.q(src), H.q(img), src_off // 512, offset // 512, length // 512))
end

-- ---- LVM2, written here

local crctab
local function lvm_crc(s, crc)
  if not crctab then
    crctab = {}
    for i = 0, 255 do
      local c = i
      for _ = 1, 8 do
        c = (c & 1) ~= 0 and (0xedb88320 ~ (c >> 1)) or (c >> 1)
      end
      crctab[i] = c
    end
  end
  crc = crc or 0xf597a6cf
  for i = 1, #s do
    crc = crctab[(crc ~ s:byte(i)) & 0xff] ~ (crc >> 8)
  end
  return crc & 0xffffffff
end
G.lvm_crc = lvm_crc

--- A PV UUID (32 characters) from a seed, and its dashed form.
function G.pv_uuid(seed)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  local t, x = {}, seed
  for i = 1, 32 do
    x = (x * 1103515245 + 12345) & 0x7fffffff
    local k = (x >> 16) % #chars + 1
    t[i] = chars:sub(k, k)
  end
  local raw = table.concat(t)
  local dashed = raw:sub(1, 6) .. "-" .. raw:sub(7, 10) .. "-" .. raw:sub(11, 14) .. "-"
    .. raw:sub(15, 18) .. "-" .. raw:sub(19, 22) .. "-" .. raw:sub(23, 26) .. "-" .. raw:sub(27, 32)
  return raw, dashed
end

--- The metadata text of a VG: vg = { name=, id=, extent_mb=, seqno=,
--- pvs = { {key="pv0", uuid=dashed, dev_size=sectors, pe_count=} },
--- lvs = { {name=, segments = { {pv="pv0", pe=, count=} }, type=} } }
function G.lvm_text(vg)
  local o = {}
  local function w(s) o[#o + 1] = s end
  w(vg.name .. " {")
  w('id = "' .. vg.id .. '"')
  w("seqno = " .. (vg.seqno or 1))
  w('format = "lvm2"')
  w('status = ["RESIZEABLE", "READ", "WRITE"]')
  w("flags = []")
  w("extent_size = " .. (vg.extent_mb * 2048))
  w("max_lv = 0")
  w("max_pv = 0")
  w("metadata_copies = 0")
  w("")
  w("physical_volumes {")
  for _, pv in ipairs(vg.pvs) do
    w("")
    w(pv.key .. " {")
    w('id = "' .. pv.uuid .. '"')
    w('device = "/dev/' .. pv.key .. '"')
    w("")
    w('status = ["ALLOCATABLE"]')
    w("flags = []")
    w("dev_size = " .. pv.dev_size)
    w("pe_start = 2048")
    w("pe_count = " .. pv.pe_count)
    w("}")
  end
  w("}")
  w("")
  w("logical_volumes {")
  for _, lv in ipairs(vg.lvs) do
    w("")
    w(lv.name .. " {")
    w('id = "' .. (lv.id or "aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg") .. '"')
    w('status = ["READ", "WRITE", "VISIBLE"]')
    w("flags = []")
    w('creation_time = 1700000000\t# 2023-11-14 22:13:20 +0000')
    w('creation_host = "pve"')
    w("segment_count = " .. #lv.segments)
    local start = 0
    for i, s in ipairs(lv.segments) do
      w("")
      w("segment" .. i .. " {")
      w("start_extent = " .. start)
      w("extent_count = " .. s.count)
      w("")
      w('type = "' .. (s.type or "striped") .. '"')
      w("stripe_count = " .. (s.stripe_count or 1))
      w("")
      w("stripes = [")
      w('"' .. s.pv .. '", ' .. s.pe)
      w("]")
      w("}")
      start = start + s.count
    end
    w("}")
  end
  w("}")
  w("")
  w("}")
  w("# Generated by LVM2 version 2.03.16(2) (2022-05-18): Tue Nov 14 22:13:20 2023")
  w("")
  w('contents = "Text Format Volume Group"')
  w("version = 1")
  w("")
  w('description = "vma test"')
  w("")
  w('creation_host = "pve"\t# Linux pve 6.2.16-3-pve #1 SMP x86_64')
  w("creation_time = 1700000000\t# Tue Nov 14 22:13:20 2023")
  w("")
  return table.concat(o, "\n")
end

local function le32(v) return string.pack("<I4", v) end
local function le64(v) return string.pack("<I8", v) end

--- Write an LVM2 PV into img at offset: label in sector 1, metadata area
--- from 4 KiB to 1 MiB, data (pe_start) at 1 MiB.  raw_uuid: 32 chars.
function G.lvm_pv(img, offset, size, raw_uuid, text)
  local mda_start, mda_size = 4096, (1 << 20) - 4096
  local ph = raw_uuid .. le64(size) .. le64(1 << 20) .. le64(0) .. le64(0) .. le64(0)
    .. le64(mda_start) .. le64(mda_size) .. le64(0) .. le64(0)
  local body = le32(32) .. "LVM2 001" .. ph
  body = body .. string.rep("\0", 512 - 20 - #body)
  local label = "LABELONE" .. le64(1) .. le32(lvm_crc(body)) .. body
  assert(#label == 512)
  local rl = le64(512) .. le64(#text) .. le32(lvm_crc(text)) .. le32(0)
  local hb = " LVM2 x[5A%r0N*>" .. le32(1) .. le64(mda_start) .. le64(mda_size) .. rl
  hb = hb .. string.rep("\0", 508 - #hb)
  local mh = le32(lvm_crc(hb)) .. hb
  local f = assert(io.open(img, "r+b"))
  f:seek("set", offset + 512)
  f:write(label)
  f:seek("set", offset + mda_start)
  f:write(mh)
  f:seek("set", offset + mda_start + 512)
  f:write(text)
  f:close()
end

-- ---- archives and checks

function G.backup(archive, disks, opts)
  local words = { H.q(H.bin), "create", "-q" }
  if opts and opts.compress then words[#words + 1] = "--compress " .. opts.compress end
  words[#words + 1] = H.q(archive)
  for _, d in ipairs(disks) do words[#words + 1] = H.q(d[1] .. "=" .. d[2]) end
  sh(table.concat(words, " "))
end

--- Every entry under dir: path -> { type=, size=, mode=, mtime=, target= }
function G.scan(dir)
  local out = sh("cd " .. H.q(dir) .. " && find . -mindepth 1 -printf '%y|%s|%m|%T@|%l|%p\\0'")
  local t = {}
  for rec in out:gmatch("([^%z]+)%z") do
    local y, s, m, tt, l, p = rec:match("^(.)|(%d+)|(%d+)|([%d%.]+)|(.-)|%./(.*)$")
    t[p] = { type = y, size = tonumber(s), mode = tonumber(m, 8), mtime = math.floor(tonumber(tt)),
      target = y == "l" and l or nil }
  end
  return t
end

--- Compare a copied tree with its source: a list of differences (empty
--- when equal). opts.mode, opts.mtime: compare those too; opts.skip: paths
--- of the source not expected.
function G.compare(src, copy, opts)
  opts = opts or {}
  local a, b = G.scan(src), G.scan(copy)
  local diffs = {}
  for p, x in pairs(a) do
    local y = b[p]
    if not (opts.skip and opts.skip[p]) then
      if not y then
        diffs[#diffs + 1] = "missing " .. p
      elseif x.type ~= y.type then
        diffs[#diffs + 1] = "type of " .. p
      elseif x.type == "f" then
        if x.size ~= y.size then
          diffs[#diffs + 1] = string.format("size of %s: %d, not %d", p, y.size, x.size)
        elseif H.sh("cmp -s " .. H.q(src .. "/" .. p) .. " " .. H.q(copy .. "/" .. p)) ~= 0 then
          diffs[#diffs + 1] = "content of " .. p
        end
      elseif x.type == "l" and x.target ~= y.target then
        diffs[#diffs + 1] = "target of " .. p
      end
      if y and opts.mode and x.type ~= "l" and x.mode ~= y.mode then
        diffs[#diffs + 1] = string.format("mode of %s: %o, not %o", p, y.mode, x.mode)
      end
      if y and opts.mtime and x.type == "f" and x.mtime ~= y.mtime then
        diffs[#diffs + 1] = string.format("mtime of %s: %d, not %d", p, y.mtime, x.mtime)
      end
    end
  end
  for p in pairs(b) do
    if not a[p] and not (opts.extra and opts.extra[p]) then diffs[#diffs + 1] = "extra " .. p end
  end
  table.sort(diffs)
  return diffs
end

--- Bytes a file takes on disk (du).
function G.allocated(path)
  local out = sh("du -B1 " .. H.q(path))
  return tonumber(out:match("^(%d+)"))
end

return G
