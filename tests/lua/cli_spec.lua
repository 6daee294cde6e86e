-- Command-line tests on real data: the Proxmox fixtures, round trips of our
-- own archives, restore maps, streams and compression.
local H = require "helper"
local json = require "dkjson"

local FIX = H.fixtures .. "/proxmox"
local CASES = { "a-two-drives", "c-empty-config", "d-config-only", "e-vmstate" }

local function fixture(c) return FIX .. "/" .. c .. "/" .. c .. ".vma" end

-- what each fixture's extraction must hold: file -> expected content
local EXPECT = {
  ["a-two-drives"] = {
    ["qemu-server.conf"] = { "cfg/qemu-server.conf" }, ["qemu-server.fw"] = { "cfg/qemu-server.fw" },
    ["disk-drive-scsi0.raw"] = { "disk0.raw", 1053184 }, ["disk-drive-virtio1.raw"] = { "disk1.raw", 144384 },
  },
  ["c-empty-config"] = {
    ["empty.conf"] = { "empty.conf" }, ["qemu-server.conf"] = { "qemu-server.conf" },
    ["disk-drive-scsi0.raw"] = { "tiny.raw", 5120 },
  },
  ["d-config-only"] = { ["qemu-server.conf"] = { "qemu-server.conf" } },
  ["e-vmstate"] = {
    ["qemu-server.conf"] = { "qemu-server.conf" }, ["disk-drive-scsi0.raw"] = { "disk.raw", 65536 },
    ["vmstate.bin"] = { "state.bin" },
  },
}

describe("Proxmox fixtures", function()
  for _, c in ipairs(CASES) do
    it(c .. ": list prints exactly what the real tool printed", function()
      local rc, out = H.vma("list", fixture(c))
      assert.are.equal(0, rc)
      assert.are.equal(H.read(FIX .. "/" .. c .. "/list.txt"), out)
    end)

    it(c .. ": extract gives back the inputs byte for byte", function()
      local dir = H.tmpdir()
      local rc, out, err = H.vma("extract", fixture(c), dir .. "/x")
      assert.are.equal(0, rc, err)
      local want = {}
      for name in pairs(EXPECT[c]) do want[#want + 1] = name end
      table.sort(want)
      assert.are.same(want, H.ls(dir .. "/x"))
      for name, spec in pairs(EXPECT[c]) do
        local input = H.read(FIX .. "/" .. c .. "/" .. spec[1])
        if spec[2] then input = H.padded(input, spec[2]) end
        assert.is_true(input == H.read(dir .. "/x/" .. name), name .. " differs")
      end
      if c ~= "d-config-only" then assert.matches("DEVINFO ", out) end
      H.rm(dir)
    end)

    it(c .. ": verify -v succeeds and never passes 100%", function()
      local rc, out = H.vma("verify", "-v", fixture(c))
      assert.are.equal(0, rc)
      for p in out:gmatch("progress (%d+)%%") do assert.is_true(tonumber(p) <= 100) end
      assert.are.equal(H.read(FIX .. "/" .. c .. "/list.txt"), out:sub(1, #H.read(FIX .. "/" .. c .. "/list.txt")))
    end)
  end

  it("verify -v prints Proxmox's totals", function()
    local _, out = H.vma("verify", "-v", fixture("a-two-drives"))
    assert.matches("total bytes read 1310720, sparse bytes 713728 %(54.5%%%)\n", out)
    assert.matches("space reduction due to 4K zero blocks 64.7%%\n", out)
    _, out = H.vma("verify", "-v", fixture("d-config-only"))
    assert.matches("vma archive contains no image data", out)
  end)

  it("config prints qemu-server.conf or the named config", function()
    local rc, out = H.vma("config", fixture("a-two-drives"))
    assert.are.equal(0, rc)
    assert.are.equal(H.read(FIX .. "/a-two-drives/cfg/qemu-server.conf"), out)
    rc, out = H.vma("config", fixture("a-two-drives"), "-c", "qemu-server.fw")
    assert.are.equal(H.read(FIX .. "/a-two-drives/cfg/qemu-server.fw"), out)
    local err
    rc, out, err = H.vma("config", "-c", "nope.conf", fixture("a-two-drives"))
    assert.are.equal(1, rc)
    assert.matches("unable to find configuration data 'nope.conf'", err)
  end)

  it("list --json gives uuid, ctime, configs and devices", function()
    local rc, out = H.vma("list", "--json", fixture("e-vmstate"))
    assert.are.equal(0, rc)
    local t = json.decode(out)
    assert.are.equal("6c505d01-1602-45c6-a0b5-3038aed6b337", t.uuid)
    assert.are.equal(1795561099, t.ctime)
    assert.are.same({ { name = "qemu-server.conf", size = 42 } }, t.configs)
    assert.are.equal("drive-scsi0", t.devices[1].name)
    assert.are.equal(143360, t.devices[2].size)
    assert.is_true(t.devices[2].vmstate)
    rc, out = H.vma("list", "--json", fixture("d-config-only"))
    assert.are.equal("[]", out:match('"devices":(%[%])'))
  end)

  it("the truncated real-world backup lists but does not verify or extract", function()
    local dir = H.tmpdir()
    local arch = dir .. "/rw.vma.gz"
    os.execute("cp " .. H.q(H.fixtures .. "/real-world/truncated-10g-scsi0.vma.gz") .. " " .. H.q(arch))
    local rc, out = H.vma("list", arch)
    assert.are.equal(0, rc)
    assert.matches("DEV: dev_id=1 size: 10737418240 devname: drive%-scsi0", out)
    rc, out = H.vma("config", arch)
    assert.matches("#qmdump#map:scsi0:drive%-scsi0:local%-lvm:raw:", out)
    local err
    rc, _, err = H.vma("verify", arch)
    assert.are.equal(1, rc)
    assert.matches("incomplete", err)
    rc, _, err = H.vma("extract", arch, dir .. "/x")
    assert.are.equal(1, rc)
    assert.matches("incomplete", err)
    assert.is_false(H.exists(dir .. "/x"))
    H.rm(dir)
  end)
end)

describe("round trips", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  -- images with odd sizes and zero patterns
  local function make_images()
    local imgs = {}
    local a = H.bytes(5000, 1)
    H.write(dir .. "/a.raw", a)
    imgs[#imgs + 1] = { name = "drive-scsi0", path = dir .. "/a.raw", data = a, size = 5120 }
    -- checkerboard of 4 KiB blocks, a zero cluster, then data, odd tail
    local parts = {}
    for i = 0, 15 do parts[#parts + 1] = (i % 2 == 0) and H.bytes(4096, i + 10) or string.rep("\0", 4096) end
    parts[#parts + 1] = string.rep("\0", 65536)
    parts[#parts + 1] = H.bytes(65536 * 3 + 1001, 99)
    local b = table.concat(parts)
    H.write(dir .. "/b.raw", b)
    imgs[#imgs + 1] = { name = "drive-virtio1", path = dir .. "/b.raw", data = b, size = (#b + 511) // 512 * 512 }
    -- a thin image: 20 MiB with data at two places
    H.image(dir .. "/c.raw", 20 * 1048576, { { 0, H.bytes(3000, 5) }, { 15 * 1048576 + 7, H.bytes(70000, 6) } })
    imgs[#imgs + 1] = { name = "drive-sata2", path = dir .. "/c.raw", data = H.read(dir .. "/c.raw"), size = 20 * 1048576 }
    return imgs
  end

  local function create_args(arch, imgs)
    local args = { "create", arch, "-c", dir .. "/qemu-server.conf" }
    for _, i in ipairs(imgs) do args[#args + 1] = i.name .. "=" .. i.path end
    return args
  end

  for _, ext in ipairs { ".vma", ".vma.zst", ".vma.gz", ".vma.lzo" } do
    it("create, verify and extract " .. ext .. " byte for byte", function()
      H.write(dir .. "/qemu-server.conf", "memory: 1024\nscsi0: local:vm-100-disk-0,size=5K\n")
      local imgs = make_images()
      local arch = dir .. "/test" .. ext
      local rc, _, err = H.vma(table.unpack(create_args(arch, imgs)))
      assert.are.equal(0, rc, err)
      local magic = H.read(arch):sub(1, 4)
      local want_magic = ({ [".vma"] = "VMA\0", [".vma.zst"] = "\40\181\47\253", [".vma.gz"] = "\31\139",
        [".vma.lzo"] = "\137LZO" })[ext]
      assert.are.equal(want_magic, magic:sub(1, #want_magic))
      rc, _, err = H.vma("verify", arch)
      assert.are.equal(0, rc, err)
      rc, _, err = H.vma("extract", arch, dir .. "/x")
      assert.are.equal(0, rc, err)
      for _, i in ipairs(imgs) do
        assert.is_true(H.padded(i.data, i.size) == H.read(dir .. "/x/disk-" .. i.name .. ".raw"), i.name)
      end
      -- the config as vzdump stores it: the drive's #qmdump#map: line added
      assert.are.equal(H.read(dir .. "/qemu-server.conf") .. "#qmdump#map:scsi0:drive-scsi0:local:raw:\n",
        H.read(dir .. "/x/qemu-server.conf"))
    end)
  end

  it("reads an archive from standard input and writes one to standard output", function()
    H.write(dir .. "/qemu-server.conf", "x\n")
    local imgs = make_images()
    local rc = H.sh(H.q(H.bin) .. " create - -c " .. H.q(dir .. "/qemu-server.conf") .. " "
      .. H.q(imgs[2].path) .. " | zstd -q > " .. H.q(dir .. "/s.vma.zst"))
    assert.are.equal(0, rc)
    local out
    rc, out = H.sh("zstd -dc " .. H.q(dir .. "/s.vma.zst") .. " | " .. H.q(H.bin) .. " list -")
    assert.are.equal(0, rc)
    assert.matches("DEV: dev_id=1 size: %d+ devname: disk0", out)
    rc = H.sh("cat " .. H.q(dir .. "/s.vma.zst") .. " | " .. H.q(H.bin) .. " extract - " .. H.q(dir .. "/x"))
    assert.are.equal(0, rc)
    assert.is_true(H.padded(imgs[2].data, imgs[2].size) == H.read(dir .. "/x/disk-disk0.raw"))
  end)

  it("reads a plain archive from a pipe whose writer pauses, stops and sends in small pieces", function()
    local imgs = make_images()
    local a = dir .. "/p.vma"
    assert.are.equal(0, (H.vma("create", a, imgs[2].path)))
    local size = #H.read(a)
    -- pauses longer than the reader's wait, in the header, in an extent and
    -- at an extent's end; then the rest written 1000 bytes at a time
    local feed = "{ head -c 3000 A; sleep 0.2; tail -c +3001 A | head -c 70000; sleep 0.1; "
      .. "tail -c +73001 A | head -c 200000; sleep 0.1; tail -c +273001 A | "
      .. "dd bs=1000 status=none iflag=fullblock; }"
    feed = feed:gsub("A", H.q(a))
    local rc, out, err = H.sh(feed .. " | " .. H.q(H.bin) .. " verify -v -")
    assert.are.equal(0, rc, err)
    assert.matches("every rule holds", out .. err)
    rc, _, err = H.sh(feed .. " | " .. H.q(H.bin) .. " extract - " .. H.q(dir .. "/px"))
    assert.are.equal(0, rc, err)
    assert.is_true(H.padded(imgs[2].data, imgs[2].size) == H.read(dir .. "/px/disk-disk0.raw"))
    -- the same archive cut short: an error, not a hang or a partial success
    rc, _, err = H.sh("head -c " .. (size - 70000) .. " " .. H.q(a) .. " | " .. H.q(H.bin)
      .. " extract - " .. H.q(dir .. "/py"))
    assert.are.equal(1, rc)
    assert.matches("vma extract: ", err)
    assert.is_false(H.exists(dir .. "/py/disk-disk0.raw"))
  end)

  it("create never overwrites and leaves nothing on failure", function()
    local imgs = make_images()
    H.write(dir .. "/exists.vma", "precious")
    local rc, _, err = H.vma("create", dir .. "/exists.vma", imgs[1].path)
    assert.are.equal(1, rc)
    assert.matches("already exists", err)
    assert.are.equal("precious", H.read(dir .. "/exists.vma"))
    rc = H.vma("create", dir .. "/new.vma", imgs[1].path, dir .. "/missing.raw")
    assert.are.equal(1, rc)
    assert.is_false(H.exists(dir .. "/new.vma"))
    for _, f in ipairs(H.ls(dir)) do assert.is_nil(f:match("%.tmp%-")) end
    rc = H.vma("create", "-f", dir .. "/exists.vma", imgs[1].path)
    assert.are.equal(0, rc)
    assert.are.equal("VMA\0", H.read(dir .. "/exists.vma"):sub(1, 4))
  end)

  it("create takes -d format=raw:NAME=PATH and prints -v progress and a summary", function()
    local imgs = make_images()
    local rc, _, err = H.vma("create", "-v", dir .. "/d.vma", "-d", "format=raw:drive-scsi0=" .. imgs[2].path)
    assert.are.equal(0, rc, err)
    assert.matches("progress 100%% ", err)
    assert.matches("image drive%-scsi0: size=%d+ zeros=%d+ saved=%d+", err)
    local _, out = H.vma("list", dir .. "/d.vma")
    assert.matches("devname: drive%-scsi0", out)
  end)

  it("extract refuses an existing folder", function()
    local rc, _, err = H.vma("extract", fixture("a-two-drives"), dir)
    assert.are.equal(1, rc)
    assert.matches("vma extract: ", err)
  end)

  it("extract -d extracts only the listed drives", function()
    local rc, _, err = H.vma("extract", "-d", "drive-virtio1", fixture("a-two-drives"), dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.are.same({ "disk-drive-virtio1.raw", "qemu-server.conf", "qemu-server.fw" }, H.ls(dir .. "/x"))
    rc = H.vma("extract", "-d", "scsi0", fixture("a-two-drives"), dir .. "/y")
    assert.are.equal(0, rc)
    assert.are.same({ "disk-drive-scsi0.raw", "qemu-server.conf", "qemu-server.fw" }, H.ls(dir .. "/y"))
    rc, _, err = H.vma("extract", "-d", "nope", fixture("a-two-drives"), dir .. "/z")
    assert.are.equal(1, rc)
    assert.is_false(H.exists(dir .. "/z"))
  end)
end)

describe("restore maps (extract -r)", function()
  local dir
  local A = fixture("a-two-drives")
  local disk0 = H.padded(H.read(FIX .. "/a-two-drives/disk0.raw"), 1053184)
  local disk1 = H.padded(H.read(FIX .. "/a-two-drives/disk1.raw"), 144384)
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("1: writes zeros over old data; 0: onto data clears it where the archive has zeros", function()
    H.write(dir .. "/t0", string.rep("\255", 1053184))
    H.write(dir .. "/t1", string.rep("\255", 144384 + 4096))
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/t0\n1:drive-virtio1=" .. dir .. "/t1\ndone\n")
    local rc, out, err = H.vma("extract", "-r", dir .. "/map", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.are.equal(H.read(FIX .. "/a-two-drives/list.txt"), out:sub(1, #H.read(FIX .. "/a-two-drives/list.txt")))
    local t1 = H.read(dir .. "/t1")
    assert.is_true(t1:sub(1, 144384) == disk1, "1: target equals the disk")
    assert.are.equal(string.rep("\255", 4096), t1:sub(144385))
    assert.is_true(H.read(dir .. "/t0") == disk0, "0: no old data survives")
    assert.are.same({ "qemu-server.conf", "qemu-server.fw" }, H.ls(dir .. "/x"))
  end)

  it("0: onto a file that is all holes (as qmrestore allocates it) is fine", function()
    os.execute("truncate -s 1053184 " .. H.q(dir .. "/t0"))
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/t0\nskip=drive-virtio1\ndone\n")
    local rc, _, err = H.vma("extract", "-r", dir .. "/map", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(H.read(dir .. "/t0") == disk0)
  end)

  it("creates missing files, honours skip= and options, path may hold : and =", function()
    H.write(dir .. "/map", "format=raw:throttling.bps=1000000000:cache=none:0:drive-scsi0="
      .. dir .. "/a:b=c.raw\nskip=drive-virtio1\n")
    local rc, _, err = H.vma("extract", "-r", dir .. "/map", A, dir .. "/x")
    assert.are.equal(0, rc, err)
    assert.is_true(disk0 == H.read(dir .. "/a:b=c.raw"))
  end)

  it("a map that forgets a drive writes nothing", function()
    H.write(dir .. "/map", "0:drive-scsi0=" .. dir .. "/t0\ndone\n")
    local rc, _, err = H.vma("extract", "-r", dir .. "/map", A, dir .. "/x")
    assert.are.equal(1, rc)
    assert.matches("no device name mapping for drive%-virtio1", err)
    assert.is_false(H.exists(dir .. "/t0"))
    assert.is_false(H.exists(dir .. "/x"))
  end)

  it("refuses other formats, too small and much larger targets", function()
    H.write(dir .. "/map", "format=qcow2:0:drive-scsi0=" .. dir .. "/t0\nskip=drive-virtio1\n")
    local rc, _, err = H.vma("extract", "-r", dir .. "/map", A, dir .. "/x")
    assert.are.equal(1, rc)
    assert.matches("qcow2", err)
    H.write(dir .. "/small", string.rep("\0", 4096))
    H.write(dir .. "/map", "1:drive-scsi0=" .. dir .. "/small\nskip=drive-virtio1\n")
    rc = H.vma("extract", "-r", dir .. "/map", A, dir .. "/y")
    assert.are.equal(1, rc)
    os.execute("truncate -s 20M " .. H.q(dir .. "/big"))
    H.write(dir .. "/map", "1:drive-scsi0=" .. dir .. "/big\nskip=drive-virtio1\n")
    rc = H.vma("extract", "-r", dir .. "/map", A, dir .. "/z")
    assert.are.equal(1, rc)
  end)

  it("reads the map from a FIFO after printing the list (as qmrestore does)", function()
    os.execute("mkfifo " .. H.q(dir .. "/fifo"))
    -- the writer waits for the CTIME line before writing the map
    local script = string.format([[
      %s extract -v -r %s %s %s > %s 2>&1 &
      pid=$!
      for i in $(seq 50); do grep -q CTIME %s 2>/dev/null && break; sleep 0.1; done
      printf '0:drive-scsi0=%s\n0:drive-virtio1=%s\ndone\n' > %s
      wait $pid]], H.q(H.bin), H.q(dir .. "/fifo"), H.q(A), H.q(dir .. "/x"), H.q(dir .. "/log"),
      H.q(dir .. "/log"), dir .. "/t0", dir .. "/t1", H.q(dir .. "/fifo"))
    local rc = H.sh("timeout 20 sh -c " .. H.q(script))
    assert.are.equal(0, rc, H.read(dir .. "/log"))
    assert.is_true(disk0 == H.read(dir .. "/t0"))
    assert.matches("progress 100%%", H.read(dir .. "/log"))
  end)
end)

describe("the command line", function()
  it("unknown commands and options are usage errors (exit 2)", function()
    local rc, _, err = H.vma("frobnicate")
    assert.are.equal(2, rc)
    assert.matches("unknown command 'frobnicate'", err)
    rc, _, err = H.vma("list", "--bogus", fixture("a-two-drives"))
    assert.are.equal(2, rc)
    rc = H.vma()
    assert.are.equal(2, rc)
  end)

  it("help lists every command and shows one command's usage", function()
    local rc, out = H.vma("help")
    assert.are.equal(0, rc)
    for _, c in ipairs { "list", "config", "verify", "extract", "create", "help" } do
      assert.matches("\n  " .. c .. " ", out)
    end
    rc, out = H.vma("help", "extract")
    assert.are.equal(0, rc)
    assert.matches("Usage: vma extract", out)
  end)

  it("runs a user command from XDG_CONFIG_HOME and VMA_COMMANDS_PATH", function()
    local dir = H.tmpdir()
    os.execute("mkdir -p " .. H.q(dir .. "/cfg/vma/commands") .. " " .. H.q(dir .. "/more"))
    H.write(dir .. "/cfg/vma/commands/hello.lua", [[
      local vma = require "vma"
      return { description = "say hello", run = function(args)
        local r = assert(vma.open(args[1]))
        print("hello " .. #r:devices())
        return 3
      end }]])
    H.write(dir .. "/more/boom.lua", [[return { description = "fails", run = function() error("it broke") end }]])
    local env = "XDG_CONFIG_HOME=" .. H.q(dir .. "/cfg") .. " VMA_COMMANDS_PATH=" .. H.q(dir .. "/more") .. " "
    local rc, out = H.sh(env .. H.q(H.bin) .. " hello " .. H.q(fixture("a-two-drives")))
    assert.are.equal(3, rc)
    assert.are.equal("hello 2\n", out)
    local err
    rc, out, err = H.sh(env .. H.q(H.bin) .. " boom")
    assert.are.equal(1, rc)
    assert.are.equal("vma boom: it broke\n", err)
    rc, out = H.sh(env .. H.q(H.bin) .. " help")
    assert.matches("hello +say hello", out)
    H.rm(dir)
  end)

  it("bad input is a one-line message and exit 1", function()
    local dir = H.tmpdir()
    H.write(dir .. "/junk", "this is not an archive")
    for _, cmd in ipairs { "list", "verify", "config" } do
      local rc, _, err = H.vma(cmd, dir .. "/junk")
      assert.are.equal(1, rc)
      assert.matches("^vma " .. cmd .. ": not a vma archive", err)
      assert.are.equal(1, select(2, err:gsub("\n", "")))
    end
    local rc = H.vma("list", dir .. "/missing")
    assert.are.equal(1, rc)
    H.rm(dir)
  end)
end)

describe("make install", function()
  it("installs a vma that runs from PREFIX, and vma.so for the stock lua5.4", function()
    local dir = H.tmpdir()
    local rc, _, err = H.sh("make -s -C " .. H.q(H.root) .. " install DESTDIR=" .. H.q(dir) .. " PREFIX=/usr")
    assert.are.equal(0, rc, err)
    local out
    rc, out = H.sh(H.q(dir .. "/usr/bin/vma") .. " list " .. H.q(H.fixtures .. "/proxmox/e-vmstate/e-vmstate.vma"))
    assert.are.equal(0, rc)
    assert.are.equal(H.read(H.fixtures .. "/proxmox/e-vmstate/list.txt"), out)
    rc, out = H.sh("LUA_CPATH=" .. H.q(dir .. "/usr/lib/lua/5.4/?.so") .. " LUA_PATH=" .. H.q(dir .. "/usr/share/lua/5.4/?.lua")
      .. " lua5.4 -e " .. H.q("local vma = require 'vma'; local r = vma.open('" .. H.fixtures
      .. "/proxmox/a-two-drives/a-two-drives.vma'); print(r:devices()[1].name, r:configs()[1].name)"))
    assert.are.equal(0, rc)
    assert.are.equal("drive-scsi0\tqemu-server.conf\n", out)
    assert.is_true(H.exists(dir .. "/usr/share/lua/5.4/vma/commands/extract.lua"))
    -- the documents and examples where Debian has them (DOCDIR, EXAMPLEDIR)
    assert.is_true(H.exists(dir .. "/usr/share/doc/vma/examples/command-du.lua"))
    assert.is_true(H.exists(dir .. "/usr/share/doc/vma/commands.md"))
    assert.is_true(H.exists(dir .. "/usr/share/man/man1/nbdkit-vma-plugin.1"))
    -- the completion lists the commands (from `vma help`) and a command's options
    local comp = dir .. "/usr/share/bash-completion/completions/vma"
    assert.is_true(H.exists(comp))
    rc, out = H.sh("PATH=" .. H.q(dir .. "/usr/bin") .. ":$PATH bash -c " .. H.q(". " .. H.q(comp)
      .. "; COMP_WORDS=(vma ex); COMP_CWORD=1; _vma; echo ${COMPREPLY[*]}; "
      .. "COMP_WORDS=(vma extract --sal); COMP_CWORD=2; _vma; echo ${COMPREPLY[*]}"))
    assert.are.equal(0, rc)
    assert.are.equal("extract\n--salvage\n", out)
    H.rm(dir)
  end)
end)
