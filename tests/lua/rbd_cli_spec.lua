-- Ceph RBD as a restore target and a backup source, on a real single-node
-- cluster started here (tests/ceph/cluster.sh, bluestore) once for the whole
-- spec: rbd: map lines, --target rbd:POOL, vma create from rbd:POOL/IMAGE@SNAP,
-- the messages of every mistake, a killed OSD, a full OSD, Ctrl-C.
-- When the cluster cannot run here (its packages or vma.rbd missing), every
-- test is pending with the reason: never passed. A cluster that is installed
-- but does not start fails every test.
--
-- Under ASan (tests/run.sh's cli-asan pass: VMA_ONLY_CLI) only the round
-- trips run: the fault tests wait for client timeouts and take a minute.
local H = require "helper"

local ROOT = H.root
local CLUSTER = ROOT .. "/tests/ceph/cluster.sh"
local ONLY_CLI = (os.getenv("VMA_ONLY_CLI") or "") ~= ""
local MiB = 1024 * 1024

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

describe("vma and Ceph RBD #ceph", function()
  local dir, cdir, conf, why, broken

  setup(function()
    dir = H.tmpdir()
    local missing = {}
    for _, tool in ipairs({ "ceph-mon", "ceph-osd", "ceph", "rbd" }) do
      if H.sh("command -v " .. tool) ~= 0 then missing[#missing + 1] = tool end
    end
    local so = ROOT .. "/build/cmod/vma/rbd.so"
    if #missing > 0 then
      why = "needs " .. table.concat(missing, ", ") .. " (apt-get install ceph-mon ceph-osd ceph-common)"
      return
    end
    if not H.exists(so) then
      why = "needs " .. so .. " (make with librbd-dev librados-dev installed)"
      return
    end
    local p = io.popen("mktemp -d /tmp/vma-rbd.XXXXXX")
    cdir = p:read("l")
    p:close()
    local rc, _, err = H.sh(H.q(CLUSTER) .. " start " .. H.q(cdir))
    if rc ~= 0 then
      broken = "the test cluster did not start: " .. (err:match("([^\n]+)\n?$") or err)
      H.sh(H.q(CLUSTER) .. " stop " .. H.q(cdir) .. " --rm")
      cdir = nil
      return
    end
    conf = cdir .. "/ceph.conf"
  end)

  teardown(function()
    if cdir then H.sh(H.q(CLUSTER) .. " stop " .. H.q(cdir) .. " --rm") end
    H.rm(dir)
  end)

  local function ready()
    assert(not broken, broken)
    if why then pending(why) end
    return why == nil
  end

  -- a shell command with the cluster's config in the environment
  local function sh(cmd) return H.sh("CEPH_CONF=" .. H.q(conf) .. "; export CEPH_CONF\n" .. cmd) end

  local function vma(...)
    local w = { H.q(H.bin) }
    for _, a in ipairs({ ... }) do w[#w + 1] = H.q(a) end
    return sh(table.concat(w, " "))
  end

  local function rbd(args)
    local rc, out, err = sh("rbd " .. args)
    return rc, out, err
  end

  local function images()
    local rc, out, err = rbd("ls rbd")
    assert(rc == 0, err)
    local set = {}
    for n in out:gmatch("[^\n]+") do set[n] = true end
    return set
  end

  local function export(name)
    local path = dir .. "/export-" .. name:gsub("[/@]", "_") .. ".raw"
    os.remove(path)
    local rc, _, err = rbd("export --no-progress " .. name .. " " .. H.q(path))
    assert(rc == 0, err)
    return path
  end

  local function same(a, b) return H.sh("cmp -s " .. H.q(a) .. " " .. H.q(b)) == 0 end

  -- the used bytes of an image (rbd du: whole objects)
  local function used(name)
    local rc, out, err = rbd("du --format json " .. name)
    assert(rc == 0, err)
    return tonumber(out:match('"used_size":(%d+)'))
  end

  local function import(path, name)
    local rc, _, err = rbd("import --no-progress " .. H.q(path) .. " " .. name)
    assert(rc == 0, err)
  end

  -- a 24 MiB disk: 1 MiB of data at 0, 64 KiB at 9 MiB, 512 KiB at 20 MiB and
  -- 1 MiB of written zeros at 5 MiB; in an archive named for vmid 100
  local DATA = MiB + 64 * 1024 + 512 * 1024
  local n_arch = 0
  local function archive(ndisks)
    n_arch = n_arch + 1
    local disks = {}
    local args = {}
    for i = 1, ndisks or 1 do
      local img = string.format("%s/disk%d-%d.raw", dir, n_arch, i)
      H.image(img, 24 * MiB, {
        { 0, H.bytes(MiB, 10 * n_arch + i) },
        { 5 * MiB, string.rep("\0", MiB) },
        { 9 * MiB, H.bytes(64 * 1024, 20 * n_arch + i) },
        { 20 * MiB, H.bytes(512 * 1024, 30 * n_arch + i) },
      })
      disks[i] = img
      args[#args + 1] = string.format("scsi%d=%s", i - 1, img)
    end
    local cfg = dir .. "/qemu-server.conf"
    local lines = { "memory: 512" }
    for i = 1, ndisks or 1 do
      lines[#lines + 1] = string.format("scsi%d: ceph:vm-100-disk-%d,size=24M", i - 1, i - 1)
    end
    H.write(cfg, table.concat(lines, "\n") .. "\n")
    local a = string.format("%s/a%d/vzdump-qemu-100-2026_01_0%d-00_00_00.vma", dir, n_arch,
      n_arch % 9 + 1)
    os.execute("mkdir -p " .. H.q(dir .. "/a" .. n_arch))
    local rc, _, err = H.vma("create", a, "-c", cfg, table.unpack(args))
    assert(rc == 0, err)
    return a, disks
  end

  local n_out = 0
  local function outdir()
    n_out = n_out + 1
    return dir .. "/out" .. n_out
  end

  local function map_file(text)
    local m = outdir() .. ".map"
    H.write(m, text)
    return m
  end

  it("restores onto an rbd: map line: the bytes of the disk, thin (zero clusters not written)", function()
    if not ready() then return end
    local a, disks = archive()
    local m = map_file("format=raw:0:drive-scsi0=rbd:rbd/m1:conf=" .. conf .. "\n")
    local rc, out, err = vma("extract", "--json", "-r", m, a, outdir())
    assert.are.equal(0, rc, err)
    assert.is_true(same(export("rbd/m1"), disks[1]))
    -- 3 objects of 4 MiB hold data; the written zeros at 5 MiB made no object
    assert.is_true(used("rbd/m1") <= 3 * 4 * MiB, "used " .. used("rbd/m1"))
    assert.are.equal(DATA, tonumber(out:match('"bytes_written":(%d+)')))
    local _, info = rbd("info --format json rbd/m1")
    assert.are.equal(24 * MiB, tonumber(info:match('"size":(%d+)')))
  end)

  it("writes zeros into an existing image for 1: (write_zeroes, not discard)", function()
    if not ready() then return end
    local a, disks = archive()
    -- an image full of old data, of the device's size
    local old = dir .. "/old.raw"
    H.random_file(old, 24 * MiB)
    import(old, "rbd/z1")
    local m = map_file("format=raw:1:drive-scsi0=rbd:rbd/z1\n")
    local rc, _, err = vma("extract", "-r", m, a, outdir())
    assert.are.equal(0, rc, err)
    assert.is_true(same(export("rbd/z1"), disks[1]))
    -- and 0: uses an existing image as it is (qmrestore allocated it empty)
    assert.are.equal(0, rbd("create -s 24M rbd/z0"))
    rc, _, err = vma("extract", "-r", map_file("format=raw:0:drive-scsi0=rbd:rbd/z0\n"), a, outdir())
    assert.are.equal(0, rc, err)
    assert.is_true(same(export("rbd/z0"), disks[1]))
  end)

  it("--target rbd:POOL makes new images vm-<vmid>-disk-<n> and never touches an existing one", function()
    if not ready() then return end
    local a, disks = archive(2)
    -- vm-100-disk-0 exists (another VM's disk, say) and must stay as it is
    local mine = dir .. "/mine.raw"
    H.random_file(mine, 4 * MiB)
    local before = images()
    if not before["vm-100-disk-0"] then import(mine, "rbd/vm-100-disk-0") end
    local rc, out, err = vma("restore-map", a, "--target", "rbd:rbd:conf=" .. conf)
    assert.are.equal(0, rc, err)
    assert.are.equal("format=raw:0:drive-scsi0=rbd:rbd/vm-100-disk-1:conf=" .. conf .. "\n"
      .. "format=raw:0:drive-scsi1=rbd:rbd/vm-100-disk-2:conf=" .. conf .. "\ndone\n", out)
    rc, _, err = vma("extract", "--target", "rbd:rbd", a, outdir())
    assert.are.equal(0, rc, err)
    assert.is_true(same(export("rbd/vm-100-disk-1"), disks[1]))
    assert.is_true(same(export("rbd/vm-100-disk-2"), disks[2]))
    assert.is_true(used("rbd/vm-100-disk-1") <= 3 * 4 * MiB)
    assert.is_true(same(export("rbd/vm-100-disk-0"), mine))
    -- again: the next free numbers
    rc, out = vma("restore-map", a, "--target", "rbd:rbd")
    assert.are.equal(0, rc)
    assert.matches("drive%-scsi0=rbd:rbd/vm%-100%-disk%-3\n", out)
    assert.matches("drive%-scsi1=rbd:rbd/vm%-100%-disk%-4\n", out)
    -- a dry run makes nothing
    rc, out = vma("extract", "-n", "--target", "rbd:rbd", a, outdir())
    assert.are.equal(0, rc)
    assert.matches("new: rbd create", out)
    assert.is_nil(images()["vm-100-disk-3"])
  end)

  it("takes rbd: paths from a map script, which may require vma.rbd itself", function()
    if not ready() then return end
    local a, disks = archive()
    local script = dir .. "/map-rbd.lua"
    H.write(script, [[
local rbd = require "vma.rbd"
assert(rbd.connect, "vma.rbd loads in the host")
return function(archive)
  return { scsi0 = { path = "rbd:rbd/script-" .. archive.vmid, write_zero = false } }
end
]])
    local rc, _, err = vma("extract", "--map-script", script, a, outdir())
    assert.are.equal(0, rc, err)
    assert.is_true(same(export("rbd/script-100"), disks[1]))
    -- and from the stock interpreter
    rc, _, err = H.sh("LUA_CPATH=" .. H.q(ROOT .. "/build/cmod/?.so;;") .. " lua5.4 -e "
      .. H.q('assert(require("vma.rbd").connect)'))
    assert.are.equal(0, rc, err)
  end)

  it("backs up rbd:POOL/IMAGE@SNAP: the snapshot's bytes, not what was written after it", function()
    if not ready() then return end
    local _, disks = archive()
    import(disks[1], "rbd/src1")
    assert.are.equal(0, rbd("snap create rbd/src1@s1"))
    -- change the image after the snapshot
    assert.are.equal(0, rbd("bench --io-type write --io-size 64K --io-total 4M --io-pattern rand rbd/src1"))
    assert.is_false(same(export("rbd/src1"), disks[1]))
    local out = dir .. "/snap.vma"
    local rc, _, err = vma("create", out, "drive-scsi0=rbd:rbd/src1@s1:conf=" .. conf)
    assert.are.equal(0, rc, err)
    local x = outdir()
    rc, _, err = vma("extract", out, x)
    assert.are.equal(0, rc, err)
    assert.is_true(same(x .. "/disk-drive-scsi0.raw", disks[1]))
    -- without a snapshot: read as it is (nobody has it open), with a note
    rc, _, err = vma("create", dir .. "/head.vma", "rbd:rbd/src1")
    assert.are.equal(0, rc, err)
    assert.matches("read without a snapshot", err)
  end)

  it("refuses an existing image smaller than the device", function()
    if not ready() then return end
    local a = archive()
    assert.are.equal(0, rbd("create -s 1M rbd/small1"))
    local x = outdir()
    local rc, _, err = vma("extract", "-r", map_file("format=raw:0:drive-scsi0=rbd:rbd/small1\n"), a, x)
    assert.are.equal(1, rc)
    assert.matches("RBD image rbd/small1 is smaller %(1048576 bytes%) than drive%-scsi0", err)
    local _, info = rbd("info --format json rbd/small1")
    assert.are.equal(MiB, tonumber(info:match('"size":(%d+)')))
    assert.is_false(H.exists(x))
  end)

  it("removes the image it created when the restore fails", function()
    if not ready() then return end
    local a = archive()
    local cut = dir .. "/cut.vma"
    local data = H.read(a)
    H.write(cut, data:sub(1, #data - 300000))
    local rc, _, err = vma("extract", "-r", map_file("format=raw:0:drive-scsi0=rbd:rbd/cut1\n"), cut, outdir())
    assert.are.equal(1, rc)
    assert.matches("truncated", err)
    assert.is_nil(images()["cut1"])
  end)

  it("names what is wrong: pool, image, snapshot, keyring, key, user, conf", function()
    if not ready() then return end
    local a = archive()
    local before = images()
    local function restore(spec, want)
      local x = outdir()
      local rc, _, err = vma("extract", "-r", map_file("format=raw:0:drive-scsi0=" .. spec .. "\n"), a, x)
      assert.are.equal(1, rc, spec)
      assert.matches(want, err, 1, true)
      assert.is_false(H.exists(x))
    end
    restore("rbd:nopool/x", "no pool 'nopool' in the Ceph cluster")
    restore("rbd:rbd/x:keyring=/nonexistent/keyring", "no keyring found (keyring = /nonexistent/keyring)")
    local bad = dir .. "/bad.keyring"
    H.write(bad, "[client.admin]\n\tkey = AQBzKl9mAAAAABAAZ3sN5QwAAAAAAAAAAAAAAA==\n")
    restore("rbd:rbd/x:keyring=" .. bad, "Ceph refused client.admin: permission denied")
    restore("rbd:rbd/x:id=nobody", "Ceph refused client.nobody: permission denied")
    restore("rbd:rbd/x:conf=/nonexistent/ceph.conf", "cannot read the Ceph config /nonexistent/ceph.conf")
    restore("rbd:rbd/x:no_such_option=1", "bad Ceph option no_such_option=1")
    restore("rbd:rbd", "bad RBD image name in rbd:rbd")
    restore("rbd:rbd/x@s1", "names a snapshot, which cannot be written")
    local function backup(spec, want)
      local rc, _, err = vma("create", dir .. "/err.vma", "drive-scsi0=" .. spec)
      assert.are.equal(1, rc, spec)
      assert.matches(want, err, 1, true)
      assert.is_false(H.exists(dir .. "/err.vma"))
    end
    backup("rbd:rbd/nosuchimage@s1", "no RBD image rbd/nosuchimage")
    H.random_file(dir .. "/errsrc.raw", MiB)
    import(dir .. "/errsrc.raw", "rbd/errsrc")
    backup("rbd:rbd/errsrc@nosnap", "the RBD image rbd/errsrc has no snapshot 'nosnap'")
    backup("rbd:nopool/x@s", "no pool 'nopool'")
    rbd("rm --no-progress rbd/errsrc")
    assert.are.same(before, images())
    -- no monitor: a bounded wait, then a message
    local t0 = now()
    local rc, _, err = sh("VMA_RBD_TIMEOUT=3 " .. H.q(H.bin) .. " create " .. H.q(dir .. "/e.vma")
      .. " 'drive-scsi0=rbd:rbd/x@s:mon_host=v2\\:127.0.0.1\\:9'")
    assert.are.equal(1, rc)
    assert.matches("no Ceph monitor answered within 3", err)
    assert.is_true(now() - t0 < 20)
  end)

  it("vma.rbd's objects: methods and properties, and once closed they raise 'closed'", function()
    if not ready() then return end
    local script = dir .. "/closed.lua"
    H.write(script, [[
local rbd = require "vma.rbd"
local c = assert(rbd.connect { conf = os.getenv("CEPH_CONF") })
assert(type(c.timeout) == "number" and c.who == "client.admin", "the connection's properties")
assert(c.nosuchkey == nil, "an unknown key is nil")
assert(c:create("rbd", "", "closedtest", 1048576))
local s = assert(c:sink("rbd", "", "closedtest"))
assert(s.size == 1048576 and s.label == "rbd:rbd/closedtest", "the sink's properties")
assert(s:close() == true and s:close() == true, "a sink closes once, then again quietly")
local function closed(f, what)
  local ok, err = pcall(f)
  assert(not ok and tostring(err):find("attempt to use a closed " .. what, 1, true), tostring(err))
end
closed(function() return s.size end, "vma.sink")
closed(function() return s.label end, "vma.sink")
local src = assert(c:source("rbd", "", "closedtest"))
assert(src.size == 1048576 and src:data_bytes() == 0, "the source's properties")
assert(src:close() == true)
closed(function() return src:data_bytes() end, "vma.source")
closed(function() return src.label end, "vma.source")
assert(c:remove("rbd", "", "closedtest"))
c:close()
c:close()
closed(function() return c:list("rbd") end, "vma.rbd.cluster")
closed(function() return c.timeout end, "vma.rbd.cluster")
print("all held")
]])
    local rc, out, err = sh("LUA_CPATH=" .. H.q(ROOT .. "/build/cmod/?.so;;") .. " lua5.4 " .. H.q(script))
    assert.are.equal(0, rc, err)
    assert.are.equal("all held\n", out)
    assert.is_nil(images().closedtest)
  end)

  if ONLY_CLI then return end

  it("is valgrind clean: a restore into RBD, a backup of a snapshot, a failed restore", function()
    if not ready() then return end
    if H.sh("command -v valgrind") ~= 0 then pending("needs valgrind (not installed)") return end
    local a, disks = archive()
    local vg = "valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect "
      .. "--error-exitcode=99 " .. H.q(H.bin) .. " "
    local rc, _, err = sh(vg .. "extract -q -r " .. H.q(map_file("format=raw:0:drive-scsi0=rbd:rbd/vg1\n"))
      .. " " .. H.q(a) .. " " .. H.q(outdir()))
    assert.are.equal(0, rc, err)
    assert.is_true(same(export("rbd/vg1"), disks[1]))
    assert.are.equal(0, rbd("snap create rbd/vg1@s"))
    rc, _, err = sh(vg .. "create -q " .. H.q(dir .. "/vg.vma") .. " drive-scsi0=rbd:rbd/vg1@s")
    assert.are.equal(0, rc, err)
    -- a restore that fails (a cut archive) into an image it creates, and removes
    local cut = dir .. "/vgcut.vma"
    local data = H.read(a)
    H.write(cut, data:sub(1, #data - 300000))
    rc, _, err = sh(vg .. "extract -q -r " .. H.q(map_file("format=raw:0:drive-scsi0=rbd:rbd/vg2\n"))
      .. " " .. H.q(cut) .. " " .. H.q(outdir()))
    assert.are.equal(1, rc, err)
    assert.matches("truncated", err)
    assert.is_nil(images()["vg2"])
  end)

  -- a 64 MiB archive of random data, fed through a FIFO with a pause after
  -- 30 MB, so that something can happen in the middle of the restore
  local big
  local function big_archive()
    if big then return big end
    local img = dir .. "/big.raw"
    H.random_file(img, 64 * MiB)
    big = dir .. "/big.vma"
    local rc, _, err = H.vma("create", big, "drive-scsi0=" .. img)
    assert(rc == 0, err)
    return big
  end

  -- the shell lines that start vma extract from a FIFO (pausing PAUSE s after
  -- 30 MB, and then until the file GATE exists when one is given) in the
  -- background: $vpid, its stderr in $err (`wait $vpid` gives its status)
  local function bg_restore(map, pause, env, gate)
    local x = outdir()
    local wait_gate = gate and ("; while [ ! -e " .. H.q(gate) .. " ]; do sleep 0.1; done") or ""
    return table.concat({
      "fifo=" .. H.q(x .. ".fifo"), "err=" .. H.q(x .. ".err"),
      'rm -f "$fifo"; mkfifo "$fifo"',
      "( head -c 30000000 " .. H.q(big_archive()) .. "; sleep " .. pause .. wait_gate .. "; tail -c +30000001 "
        .. H.q(big_archive()) .. " ) >\"$fifo\" & feeder=$!",
      (env or "") .. " " .. H.q(H.bin) .. " extract -q -r " .. H.q(map) .. " \"$fifo\" "
        .. H.q(x) .. " 2>\"$err\" >/dev/null & vpid=$!",
      "t0=$(date +%s.%N)",
      "since() { awk -v a=\"$(date +%s.%N)\" -v b=\"$t0\" 'BEGIN { printf \"%.1f\", a - b }'; }",
      -- wait until vma has said what went wrong (at most 120 s)
      "wait_err() { i=0; while ! grep -q '^vma extract:' \"$err\" && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done; }",
    }, "\n") .. "\n"
  end

  it("ends with exit 1 within a minute when the OSD is killed mid-restore, and removes the image", function()
    if not ready() then return end
    local m = map_file("format=raw:0:drive-scsi0=rbd:rbd/kill1\n")
    local c = H.q(CLUSTER) .. " "
    local script = bg_restore(m, 3, "VMA_RBD_TIMEOUT=3") .. table.concat({
      "sleep 1.5",
      c .. "kill-osd " .. H.q(cdir),
      "killed=$(since)",
      "wait_err",
      "failed=$(since)",
      -- the OSD comes back while vma retries the removal of its image
      c .. "start-osd " .. H.q(cdir) .. " || echo 'start-osd failed'",
      "wait $vpid; rc=$?",
      "echo \"killed=$killed failed=$failed ended=$(since) rc=$rc\"",
      "kill $feeder 2>/dev/null; cat \"$err\"",
    }, "\n")
    local _, out = sh(script)
    local killed, failed, ended, rc = out:match("killed=([%d.]+) failed=([%d.]+) ended=([%d.]+) rc=(%d+)")
    assert(rc, out)
    assert.are.equal("1", rc, out)
    assert.matches("rbd:rbd/kill1: writing at offset %d+: Ceph did not answer within the client "
      .. "timeout %(3 s", out)
    assert.is_true(tonumber(failed) - tonumber(killed) < 60, out)
    assert.is_true(tonumber(ended) - tonumber(killed) < 60, out)
    assert.is_nil(images()["kill1"], out)
  end)

  it("ends with exit 1 within a minute when the OSD is killed mid-backup", function()
    if not ready() then return end
    local img = dir .. "/kb.raw"
    H.random_file(img, 64 * MiB)
    import(img, "rbd/kb")
    assert.are.equal(0, rbd("snap create rbd/kb@s"))
    local out_vma = dir .. "/kb.vma"
    local c = H.q(CLUSTER) .. " "
    -- the archive goes to a pipe that stops reading for a while: the backup
    -- is still reading the image when the OSD dies
    local script = table.concat({
      "t0=$(date +%s.%N)",
      "since() { awk -v a=\"$(date +%s.%N)\" -v b=\"$t0\" 'BEGIN { printf \"%.1f\", a - b }'; }",
      "( VMA_RBD_TIMEOUT=3 " .. H.q(H.bin) .. " create -q - drive-scsi0=rbd:rbd/kb@s 2>"
        .. H.q(out_vma .. ".err") .. "; echo $? >" .. H.q(out_vma .. ".rc") .. " ) | "
        .. "( head -c 20000000 >/dev/null; sleep 6; cat >/dev/null ) & p=$!",
      "sleep 1.5",
      c .. "kill-osd " .. H.q(cdir),
      "killed=$(since)",
      "wait $p",
      "ended=$(since)",
      c .. "start-osd " .. H.q(cdir) .. " || echo 'start-osd failed'",
      "echo \"killed=$killed ended=$ended rc=$(cat " .. H.q(out_vma .. ".rc") .. ")\"",
      "cat " .. H.q(out_vma .. ".err"),
    }, "\n")
    local _, out = sh(script)
    local killed, ended, rc = out:match("killed=([%d.]+) ended=([%d.]+) rc=(%d+)")
    assert(rc, out)
    assert.are.equal("1", rc, out)
    assert.matches("rbd:rbd/kb@s: reading at offset %d+: Ceph did not answer", out)
    assert.is_true(tonumber(ended) - tonumber(killed) < 60, out)
  end)

  it("reports a full pool instead of waiting for it: mid-restore, and before a restore", function()
    if not ready() then return end
    H.random_file(dir .. "/wf.raw", MiB)
    import(dir .. "/wf.raw", "rbd/wf")
    local m = map_file("format=raw:0:drive-scsi0=rbd:rbd/full1\n")
    local c = H.q(CLUSTER) .. " "
    -- the rest of the archive comes once the monitor shows the pool full
    -- (that can take longer than the pause: then the restore used to end
    -- before the pool was full)
    local gate = dir .. "/full1.gate"
    local script = bg_restore(m, 6, nil, gate) .. table.concat({
      "sleep 1",
      c .. "full " .. H.q(cdir) .. " on || echo 'full on failed'",
      "touch " .. H.q(gate),
      "wait $vpid; rc=$?",
      "echo \"ended=$(since) rc=$rc\"",
      "cat \"$err\"",
    }, "\n")
    local _, out = sh(script)
    local ok, err = pcall(function()
      local ended, rc = out:match("ended=([%d.]+) rc=(%d+)")
      assert(rc, out)
      assert.are.equal("1", rc, out)
      assert.matches("rbd:rbd/full1: pool rbd is full: Ceph blocks writes to it", out)
      -- the data resumed at 6 s; detected within 5 s of a write waiting
      assert.is_true(tonumber(ended) < 40, out)
      -- an image cannot be removed from a full pool: vma says how to do it later
      assert.matches("remove it with: rbd rm rbd/full1", out)
      -- while full: a restore is refused at once, a backup still works
      local t0 = now()
      local a = archive()
      local rc2, _, err2 = vma("extract", "-r", map_file("format=raw:0:drive-scsi0=rbd:rbd/full2\n"), a, outdir())
      assert.are.equal(1, rc2)
      assert.matches("pool rbd is full", err2)
      assert.is_true(now() - t0 < 10)
      rc2, _, err2 = vma("create", dir .. "/whilefull.vma", "rbd:rbd/wf")
      assert.are.equal(0, rc2, err2)
    end)
    sh(c .. "full " .. H.q(cdir) .. " off")
    -- the image left behind, once there is space again
    for _ = 1, 30 do
      if not images()["full1"] then break end
      rbd("rm --no-progress rbd/full1")
      if images()["full1"] then os.execute("sleep 1") end
    end
    assert(ok, err)
    assert.is_nil(images()["full1"])
  end)

  it("stops at Ctrl-C and removes the image it created", function()
    if not ready() then return end
    local m = map_file("format=raw:0:drive-scsi0=rbd:rbd/int1\n")
    local script = bg_restore(m, 30) .. table.concat({
      "sleep 2",
      "kill -INT $vpid",
      "wait $vpid; rc=$?",
      "echo \"ended=$(since) rc=$rc\"",
      "kill $feeder 2>/dev/null; cat \"$err\"",
    }, "\n")
    local _, out = sh(script)
    local ended, rc = out:match("ended=([%d.]+) rc=(%d+)")
    assert(rc, out)
    assert.are.equal("1", rc, out)
    assert.matches("interrupted", out)
    assert.is_true(tonumber(ended) < 10, out)
    assert.is_nil(images()["int1"])
  end)
end)
