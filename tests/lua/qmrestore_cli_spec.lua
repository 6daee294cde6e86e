-- A simulation of PVE's qmrestore (qemu-server, PVE::QemuServer::restore_vma_archive)
-- driving our vma as it drives Proxmox's own:
--
--   mkfifo FIFO
--   vma extract -v -r FIFO ARCHIVE DIR      (or: zstd -q -d -c ARCHIVE | vma extract -v -r FIFO - DIR)
--
-- qmrestore reads vma's standard output line by line: the DEV: lines give
-- each device's size; at the first line "CTIME: " it opens DIR/qemu-server.conf
-- (it dies with "unable to read qemu-server.conf" when it is not there), takes
-- its #qmdump#map:VIRTDEV:DEVNAME:STOREID:FORMAT: lines, allocates one volume
-- per device (vdisk_alloc: on a dir storage a new sparse raw file of the size
-- rounded up to KiB, which reads as zeros, hence "0:") and writes the map into
-- the FIFO: "format=FMT:0:DEVNAME=PATH\n" per device, then "done\n". Then it
-- waits for vma. On a failure, it removes the volumes it allocated; vma must
-- remove DIR and whatever vma itself created.
local H = require "helper"

local FIX = H.fixtures .. "/proxmox"
local RW = H.fixtures .. "/real-world/truncated-10g-scsi0.vma.gz"

local function kib_round(n) return (n + 1023) // 1024 * 1024 end

local function inode(path)
  local rc, out = H.sh("stat -c %i " .. H.q(path))
  return rc == 0 and out or nil
end

-- the #qmdump#map lines of a config text, as qmrestore's parse_backup_hints
-- reads them: m/^\#qmdump\#map:(\S+):(\S+):(\S*):(\S*):$/
local function map_lines(text)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local virtdev, devname, storeid, format = line:match("^#qmdump#map:(%S+):(%S+):(%S*):(%S*):$")
    if virtdev then
      out[#out + 1] = { virtdev = virtdev, devname = devname, storeid = storeid, format = format }
    end
  end
  table.sort(out, function(a, b) return a.virtdev < b.virtdev end) -- sort keys %$virtdev_hash
  return out
end

--- Run the simulation. opts:
--   archive   the archive path (or "-" with feed)
--   feed      a shell command whose output is piped into vma (archive "-")
--   work      a scratch folder (the FIFO, the storage and DIR go there)
--   alloc     function(dev, default_path, size) -> path, size_to_allocate | nil
--             (default: a sparse file of the size rounded up to KiB, in work/storage)
--   map       function(devs) -> map text: replaces qmrestore's map (for failures)
-- Returns a table: rc, err (vma's stderr), lines (its stdout), at_ctime =
-- { listing =, files = { name -> content } } (DIR at the moment of CTIME:),
-- problems (what qmrestore would have died of), targets = { devname -> {path,size} }.
local function qmrestore(opts)
  local work = opts.work
  local dir = work .. "/vzdumptmp4242"
  local fifo = work .. "/restore.fifo"
  local storage = work .. "/storage"
  assert(os.execute("mkdir -p " .. H.q(storage)))
  assert(os.execute("mkfifo " .. H.q(fifo)))
  local errf = work .. "/vma.err"
  local cmd = string.format("%s extract -v -r %s %s %s 2>%s", H.q(H.bin), H.q(fifo),
    H.q(opts.archive), H.q(dir), H.q(errf))
  if opts.feed then cmd = opts.feed .. " | " .. cmd end
  local p = assert(io.popen("( " .. cmd .. " ) </dev/null; echo \"__rc=$?\"", "r"))
  local res = { lines = {}, problems = {}, targets = {}, dir = dir }
  local devinfo, cfgs = {}, {}
  local ctime_seen, failure = false, nil
  for line in p:lines() do
    res.lines[#res.lines + 1] = line
    local size, devname = line:match("^DEV:%s+dev_id=%d+%s+size:%s+(%d+)%s+devname:%s+(%S+)$")
    if devname then devinfo[devname] = math.tointeger(tonumber(size)) end
    local csize, cname = line:match("^CFG:%s+size:%s+(%d+)%s+name:%s+(%S+)$")
    if cname then cfgs[cname] = math.tointeger(tonumber(csize)) end
    if line:match("^CTIME: ") and not ctime_seen then
      ctime_seen = true
      -- whatever goes wrong in the simulation, vma gets a map (and ends)
      local ok, maptext = pcall(function()
        -- what is in DIR at this very moment
        res.at_ctime = { listing = H.ls(dir), files = {} }
        for name in pairs(cfgs) do res.at_ctime.files[name] = H.read(dir .. "/" .. name) end
        local conf = res.at_ctime.files["qemu-server.conf"]
        local maptext
        if not conf then
          res.problems[#res.problems + 1] = "unable to read qemu-server.conf"
          maptext = "done\n" -- qmrestore would die here; the test fails on problems
        elseif #conf ~= cfgs["qemu-server.conf"] then
          res.problems[#res.problems + 1] = string.format("qemu-server.conf has %d of %d bytes "
            .. "at CTIME:", #conf, cfgs["qemu-server.conf"])
          maptext = "done\n"
        else
          local devs = {}
          for _, m in ipairs(map_lines(conf)) do
            if not devinfo[m.devname] then
              res.problems[#res.problems + 1] = "archive does not contain data for drive '"
                .. m.virtdev .. "'"
            else
              devs[#devs + 1] = { virtdev = m.virtdev, devname = m.devname, storeid = m.storeid,
                format = m.format ~= "" and m.format or "raw", size = devinfo[m.devname] }
            end
          end
          res.devs = devs
          if opts.map then
            maptext = opts.map(devs, storage)
          else
            local out = {}
            for _, d in ipairs(devs) do
              local path = storage .. "/vm-4242-disk-" .. d.virtdev .. ".raw"
              local alloc = kib_round(d.size) -- vdisk_alloc takes KiB
              if opts.alloc then path, alloc = opts.alloc(d, path, alloc) end
              if alloc then
                -- a new sparse file, as "qemu-img create -f raw PATH SIZEK" makes it
                assert(os.execute("truncate -s " .. alloc .. " " .. H.q(path)))
              end
              res.targets[d.devname] = { path = path, size = alloc, inode = alloc and inode(path) }
              out[#out + 1] = string.format("format=%s:0:%s=%s\n", d.format, d.devname, path)
            end
            out[#out + 1] = "done\n"
            maptext = table.concat(out)
          end
        end
        return maptext
      end)
      if not ok then
        failure = maptext
        maptext = "done\n"
      end
      res.map = maptext
      H.write(work .. "/map.txt", maptext)
      -- qmrestore opens the FIFO for writing (which waits for vma to open it),
      -- prints the map and closes it; bounded here, so that a vma that never
      -- opens the FIFO fails the test instead of hanging it
      res.map_written = os.execute("timeout 20 sh -c " .. H.q("cat " .. H.q(work .. "/map.txt")
        .. " > " .. H.q(fifo)))
    end
  end
  p:close()
  if failure then error(failure, 0) end
  local last = table.remove(res.lines)
  res.rc = tonumber(last and last:match("^__rc=(%d+)$"))
  res.err = H.read(errf) or ""
  res.ctime_seen = ctime_seen
  return res
end

-- the byte-for-byte check of a target against an input image
local function assert_target(t, image)
  local got = H.read(t.path)
  assert.is_not_nil(got, t.path .. " is missing")
  assert.are.equal(t.size, #got)
  assert.is_true(got == H.padded(image, t.size), t.path .. " differs from the disk")
  assert.are.equal(t.inode, inode(t.path), "vma replaced the volume qmrestore allocated")
end

local function assert_configs_at_ctime(res, expected)
  assert.is_true(res.ctime_seen, "no CTIME: line")
  assert.are.same({}, res.problems)
  local names = {}
  for name, data in pairs(expected) do
    names[#names + 1] = name
    assert.are.equal(data, res.at_ctime.files[name], name .. " at CTIME:")
  end
  table.sort(names)
  -- complete and under their final names: no temporary file beside them
  assert.are.same(names, res.at_ctime.listing)
end

-- an archive made with our vma create from a config with drive lines and no map lines
local function create(work, name, configs, devices)
  local args = { "create", work .. "/" .. name }
  for _, c in ipairs(configs) do args[#args + 1] = "-c"; args[#args + 1] = c end
  for _, d in ipairs(devices) do args[#args + 1] = d end
  local rc, _, err = H.vma(table.unpack(args))
  assert.are.equal(0, rc, err)
  return work .. "/" .. name
end

local function config_of(archive, name)
  local rc, out, err = H.vma("config", "-c", name or "qemu-server.conf", archive)
  assert.are.equal(0, rc, err)
  return out
end

describe("qmrestore simulation", function()
  local work
  before_each(function() work = H.tmpdir() end)
  after_each(function() H.rm(work) end)

  describe("on Proxmox's archives (configs without map lines)", function()
    local cases = {
      ["a-two-drives"] = { "qemu-server.conf", "qemu-server.fw", cfgdir = "cfg" },
      ["c-empty-config"] = { "empty.conf", "qemu-server.conf" },
      ["e-vmstate"] = { "qemu-server.conf" },
    }
    for case, cfgs in pairs(cases) do
      it(case .. ": every config is in DIR, complete, at CTIME:; the empty map then fails "
        .. "and DIR is removed", function()
        local res = qmrestore { work = work, archive = FIX .. "/" .. case .. "/" .. case .. ".vma" }
        local expected = {}
        for _, n in ipairs(cfgs) do
          expected[n] = H.read(FIX .. "/" .. case .. "/" .. (cfgs.cfgdir and cfgs.cfgdir .. "/" or "") .. n)
        end
        assert_configs_at_ctime(res, expected)
        -- no map line: qmrestore maps nothing and says done
        assert.are.equal("done\n", res.map)
        assert.are.equal(1, res.rc)
        assert.are.equal("vma extract: no device name mapping for drive-scsi0\n", res.err)
        assert.is_false(H.exists(res.dir))
        assert.are.same({ "map.txt", "restore.fifo", "storage", "vma.err" }, H.ls(work))
      end)
    end
  end)

  describe("on archives made with vma create -c qemu-server.conf=FILE", function()
    it("a-two-drives: the map lines create adds map both disks; restored byte for byte", function()
      local F = FIX .. "/a-two-drives"
      local conf = H.read(F .. "/cfg/qemu-server.conf")
      H.write(work .. "/100.conf", conf)
      local A = create(work, "a.vma", { "qemu-server.conf=" .. work .. "/100.conf",
        F .. "/cfg/qemu-server.fw" }, { "scsi0=" .. F .. "/disk0.raw", "drive-virtio1=" .. F .. "/disk1.raw" })
      local stored = config_of(A)
      assert.are.equal(conf .. "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n"
        .. "#qmdump#map:virtio1:drive-virtio1:local-lvm:raw:\n", stored)
      local res = qmrestore { work = work, archive = A }
      assert_configs_at_ctime(res, { ["qemu-server.conf"] = stored,
        ["qemu-server.fw"] = H.read(F .. "/cfg/qemu-server.fw") })
      assert.are.equal(0, res.rc, res.err)
      assert.are.equal(string.format("format=raw:0:drive-scsi0=%s\nformat=raw:0:drive-virtio1=%s\ndone\n",
        work .. "/storage/vm-4242-disk-scsi0.raw", work .. "/storage/vm-4242-disk-virtio1.raw"), res.map)
      -- 1053184 bytes are 1028.5 KiB: the volume is 512 bytes larger, and that is fine
      assert.are.equal(1053696, res.targets["drive-scsi0"].size)
      assert_target(res.targets["drive-scsi0"], H.read(F .. "/disk0.raw"))
      assert_target(res.targets["drive-virtio1"], H.read(F .. "/disk1.raw"))
      -- qmrestore reads the configs back from DIR afterwards
      assert.are.same({ "qemu-server.conf", "qemu-server.fw" }, H.ls(res.dir))
      assert.are.equal(stored, H.read(res.dir .. "/qemu-server.conf"))
      assert.matches("^progress 100%%", res.lines[#res.lines - 2])
    end)

    it("a-two-drives compressed, piped in as qmrestore does (zstd -q -d -c A | vma extract ... -)", function()
      local F = FIX .. "/a-two-drives"
      local A = create(work, "vzdump-qemu-100-2024_05_01-10_00_00.vma.zst",
        { "qemu-server.conf=" .. F .. "/cfg/qemu-server.conf" },
        { "scsi0=" .. F .. "/disk0.raw", "virtio1=" .. F .. "/disk1.raw" })
      local res = qmrestore { work = work, archive = "-", feed = "zstd -q -d -c " .. H.q(A) }
      assert_configs_at_ctime(res, { ["qemu-server.conf"] = config_of(A) })
      assert.are.equal(0, res.rc, res.err)
      assert_target(res.targets["drive-scsi0"], H.read(F .. "/disk0.raw"))
      assert_target(res.targets["drive-virtio1"], H.read(F .. "/disk1.raw"))
    end)

    it("c-empty-config: an empty config beside qemu-server.conf, a 5000-byte disk", function()
      local F = FIX .. "/c-empty-config"
      H.write(work .. "/c.conf", H.read(F .. "/qemu-server.conf") .. "scsi0: local:100/vm-100-disk-0.raw,size=5K\n")
      local A = create(work, "c.vma", { F .. "/empty.conf", "qemu-server.conf=" .. work .. "/c.conf" },
        { "scsi0=" .. F .. "/tiny.raw" })
      local stored = config_of(A)
      assert.are.equal("name: vma-ref-c\nscsi0: local:100/vm-100-disk-0.raw,size=5K\n"
        .. "#qmdump#map:scsi0:drive-scsi0:local:raw:\n", stored)
      local res = qmrestore { work = work, archive = A }
      assert_configs_at_ctime(res, { ["empty.conf"] = "", ["qemu-server.conf"] = stored })
      assert.are.equal(0, res.rc, res.err)
      assert.are.equal(5120, res.targets["drive-scsi0"].size)
      assert_target(res.targets["drive-scsi0"], H.read(F .. "/tiny.raw"))
    end)

    it("e-vmstate: the disk through the map, the RAM state as DIR/vmstate.bin", function()
      local F = FIX .. "/e-vmstate"
      H.write(work .. "/e.conf", H.read(F .. "/qemu-server.conf") .. "scsi0: local-lvm:vm-100-disk-0,size=64K\n")
      local A = create(work, "e.vma", { "qemu-server.conf=" .. work .. "/e.conf" },
        { "scsi0=" .. F .. "/disk.raw", "vmstate=" .. F .. "/state.bin" })
      local stored = config_of(A)
      assert.are.equal(H.read(work .. "/e.conf") .. "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n", stored)
      local res = qmrestore { work = work, archive = A }
      assert_configs_at_ctime(res, { ["qemu-server.conf"] = stored })
      assert.are.equal(0, res.rc, res.err)
      assert.are.equal("format=raw:0:drive-scsi0=" .. work .. "/storage/vm-4242-disk-scsi0.raw\ndone\n", res.map)
      assert_target(res.targets["drive-scsi0"], H.read(F .. "/disk.raw"))
      assert.is_true(H.read(F .. "/state.bin") == H.read(res.dir .. "/vmstate.bin"))
    end)
  end)

  describe("the truncated real-world backup (its config has a map line)", function()
    it("fails with exit 1 after CTIME:; DIR goes, the volume qmrestore allocated stays", function()
      local res = qmrestore { work = work, archive = RW }
      assert.is_true(res.ctime_seen)
      assert.are.same({}, res.problems)
      assert.are.same({ "qemu-server.conf" }, res.at_ctime.listing)
      assert.are.equal(417, #res.at_ctime.files["qemu-server.conf"])
      assert.matches("\n#qmdump#map:scsi0:drive%-scsi0:local%-lvm:raw:\n$", res.at_ctime.files["qemu-server.conf"])
      assert.are.equal("format=raw:0:drive-scsi0=" .. work .. "/storage/vm-4242-disk-scsi0.raw\ndone\n", res.map)
      -- the simulation sees the failure: exit status 1 and one line saying why
      assert.are.equal(1, res.rc)
      assert.matches("^vma extract: archive is incomplete: device 'drive%-scsi0' misses 163724 of "
        .. "163840 clusters %(first missing: cluster 23%)\n$", res.err)
      assert.is_false(H.exists(res.dir))
      local t = res.targets["drive-scsi0"]
      assert.are.equal(10737418240, require("vma").os.stat(t.path).size)
    end)

    it("a target vma created itself (not allocated) is removed again", function()
      local res = qmrestore { work = work, archive = RW,
        alloc = function(_, path) return path, nil end } -- qmrestore names it, vma makes it
      assert.are.equal(1, res.rc)
      assert.is_false(H.exists(res.dir))
      assert.is_false(H.exists(res.targets["drive-scsi0"].path))
      assert.are.same({}, H.ls(work .. "/storage"))
    end)
  end)

  describe("a failure after CTIME: removes DIR and its configs", function()
    local A, F
    before_each(function()
      F = FIX .. "/a-two-drives"
      A = create(work, "a.vma", { "qemu-server.conf=" .. F .. "/cfg/qemu-server.conf",
        F .. "/cfg/qemu-server.fw" }, { "scsi0=" .. F .. "/disk0.raw", "virtio1=" .. F .. "/disk1.raw" })
    end)

    it("a volume smaller than its device", function()
      local res = qmrestore { work = work, archive = A, alloc = function(d, path, size)
        if d.devname == "drive-virtio1" then return path, 65536 end
        return path, size
      end }
      assert.are.same({}, res.problems)
      assert.are.same({ "qemu-server.conf", "qemu-server.fw" }, res.at_ctime.listing)
      assert.are.equal(1, res.rc)
      assert.are.equal(string.format("vma extract: target %s is smaller (65536 bytes) than "
        .. "drive-virtio1 (144384 bytes)\n", res.targets["drive-virtio1"].path), res.err)
      assert.is_false(H.exists(res.dir))
      -- the volumes qmrestore allocated are untouched (still all holes)
      for _, t in pairs(res.targets) do
        assert.is_true(H.read(t.path) == string.rep("\0", t.size))
      end
    end)

    it("a map that leaves out a device", function()
      local res = qmrestore { work = work, archive = A, map = function(devs, storage)
        assert(os.execute("truncate -s 1053696 " .. H.q(storage .. "/s0.raw")))
        return "format=raw:0:" .. devs[1].devname .. "=" .. storage .. "/s0.raw\ndone\n"
      end }
      assert.are.equal(1, res.rc)
      assert.are.equal("vma extract: no device name mapping for drive-virtio1\n", res.err)
      assert.is_false(H.exists(res.dir))
    end)

    it("a map line naming a device that the archive does not have", function()
      local res = qmrestore { work = work, archive = A, map = function(devs, storage)
        local out = {}
        for _, d in ipairs(devs) do
          out[#out + 1] = "format=raw:0:" .. d.devname .. "=" .. storage .. "/" .. d.virtdev .. ".raw\n"
        end
        out[#out + 1] = "format=raw:0:drive-scsi7=" .. storage .. "/scsi7.raw\ndone\n"
        return table.concat(out)
      end }
      assert.are.equal(1, res.rc)
      assert.are.equal("vma extract: the map names device 'drive-scsi7', which is not in the archive\n",
        res.err)
      assert.is_false(H.exists(res.dir))
      assert.are.same({}, H.ls(work .. "/storage")) -- none of the new targets was made
    end)

    it("an archive whose data is damaged after CTIME: (a bad extent)", function()
      -- flip a byte in the first extent header: the header (and CTIME:) are fine
      local data = H.read(A)
      local off = 0
      for pos = 1, #data - 3, 512 do
        if data:sub(pos, pos + 3) == "VMAE" then off = pos break end
      end
      assert.is_true(off > 0)
      H.write(work .. "/bad.vma", data:sub(1, off + 99) .. string.char(data:byte(off + 100) ~ 0xff)
        .. data:sub(off + 101))
      local res = qmrestore { work = work, archive = work .. "/bad.vma" }
      assert.are.same({}, res.problems)
      assert.are.same({ "qemu-server.conf", "qemu-server.fw" }, res.at_ctime.listing)
      assert.are.equal(1, res.rc)
      assert.matches("^vma extract: extent at offset %d+: checksum mismatch\n$", res.err)
      assert.is_false(H.exists(res.dir))
      for _, t in pairs(res.targets) do assert.is_true(H.exists(t.path)) end
    end)
  end)
end)
