-- Instant access to the archives vzdump writes: a one-stream .vma.zst (zstd
-- and zstd -T2 --rsyncable, as vzdump runs it), .vma.gz and .vma.lzo read at
-- random by cat, serve, mount, convert and the Lua disk API, through the copy
-- a background decoder makes; the cache folder (one copy shared, nothing
-- under the final name from a killed decoder, damage detected and the copy
-- made again, the size limit, two archives that only differ in content).
local H = require "helper"
local A = require "accesshelp"
local vma = require "vma"

describe("instant access", function()
  local dir, fx, archives

  -- every way of compressing the plain archive that vzdump has
  local function compressed(plain)
    local t = {}
    local function make(name, cmd)
      local p = dir .. "/" .. name
      A.sh_ok(string.format(cmd, H.q(plain), H.q(p)))
      t[#t + 1] = { name = name, path = p }
    end
    make("one.vma.zst", "zstd -q -c %s > %s")
    make("rsyncable-T2.vma.zst", "zstd -q -T2 --rsyncable -c %s > %s")
    make("a.vma.gz", "gzip -c %s > %s")
    make("a.vma.lzo", "lzop -c %s > %s")
    return t
  end

  -- run vma with the cache folder given
  local function vma_in(cache, ...)
    local words = { "VMA_CACHE_DIR=" .. H.q(cache), H.q(A.bin) }
    for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
    return H.sh(table.concat(words, " "))
  end

  local function files(d, pattern)
    local t = {}
    for _, f in ipairs(H.ls(d)) do
      if f:match(pattern) then t[#t + 1] = f end
    end
    return t
  end

  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
    archives = compressed(fx.plain)
  end)

  teardown(function()
    A.cleanup(dir)
    H.rm(dir)
  end)

  it("vma cat gives each disk of every compressed archive, whole and in ranges", function()
    for _, arc in ipairs(archives) do
      local cache = H.tmpdir()
      for _, name in ipairs(fx.names) do
        local img = H.read(fx.disks[name])
        local rc, out, err = vma_in(cache, "cat", arc.path, name)
        assert.are.equal(0, rc, arc.name .. " " .. name .. ": " .. err)
        assert.is_true(out:sub(1, #img) == img, arc.name .. " " .. name)
        assert.is_true(out:sub(#img + 1):match("^%z*$") ~= nil)
        rc, out, err = vma_in(cache, "cat", arc.path, name, "--offset", "1000000", "--length", "70000")
        assert.are.equal(0, rc, err)
        assert.is_true(out == img:sub(1000001, 1070000), arc.name .. " " .. name .. " range")
      end
      -- the copy is in the cache folder, under its final name, once
      assert.are.equal(1, #files(cache, "%.vma%.zst$"), arc.name)
      assert.are.same({}, files(cache, "%.part$"))
      H.rm(cache)
    end
  end)

  it("the Lua disk API reads at random, and a second open uses the copy", function()
    math.randomseed(7)
    for _, arc in ipairs(archives) do
      local cache = H.tmpdir()
      local r = assert(vma.open(arc.path, { cache_dir = cache }))
      assert.is_false(r.seekable)
      for _, name in ipairs(fx.names) do
        local img = H.read(fx.disks[name])
        local d = assert(r:disk(name))
        for _ = 1, 40 do
          local off = math.random(0, #img - 1)
          local len = math.random(1, 300000)
          assert.is_true(d:read(off, len) == img:sub(off + 1, off + len), arc.name)
        end
        d:close()
      end
      assert(r:wait_complete())
      r:close()
      r = assert(vma.open(arc.path, { cache_dir = cache }))
      local d = assert(r:disk(fx.names[1]))
      assert.is_true(r:status().from_cache, arc.name .. ": the copy is used")
      assert.are.equal(H.read(fx.disks[fx.names[1]]):sub(1, 4096), d:read(0, 4096))
      r:close()
      H.rm(cache)
    end
  end)

  it("vma convert and vma mount give every byte of a one-stream archive", function()
    if not A.need("nbdkit", "qemu-img", "fusermount3") then return end
    local cache = H.tmpdir()
    local arc = archives[1].path
    local name = fx.names[1]
    local out = dir .. "/conv.raw"
    local rc, _, err = vma_in(cache, "convert", arc, out, "--disk", name, "-O", "raw", "-q")
    assert.are.equal(0, rc, err)
    local img = H.read(fx.disks[name])
    assert.is_true(H.read(out):sub(1, #img) == img)
    local m = dir .. "/mnt"
    os.execute("mkdir " .. H.q(m))
    rc, _, err = vma_in(cache, "mount", archives[3].path, m)
    assert.are.equal(0, rc, err)
    for _, n in ipairs(fx.names) do
      local want = H.read(fx.disks[n])
      assert.is_true(H.read(m .. "/" .. n .. ".raw"):sub(1, #want) == want, n)
    end
    assert.are.equal(fx.conf, H.read(m .. "/qemu-server.conf"))
    assert.are.equal(0, (H.vma("umount", m)))
    H.rm(cache)
  end)

  it("vma serve exports a .vma.lzo that nbdcopy copies right", function()
    if not A.need("nbdkit", "nbdcopy") then return end
    local cache = H.tmpdir()
    local sock = dir .. "/s.sock"
    local b = A.start(dir, "serve", archives[4].path, "--socket", sock, "--disk", fx.names[2])
    local out, err = A.wait_output(b, "nbd")
    assert.is_truthy(out, err)
    local uri = out:match("(nbd%+unix://%S+)")
    local copy = dir .. "/served.raw"
    A.sh_ok("nbdcopy " .. H.q(uri) .. " " .. H.q(copy))
    local img = H.read(fx.disks[fx.names[2]])
    assert.is_true(H.read(copy):sub(1, #img) == img)
    assert.are.equal(0, A.stop(b))
    H.rm(cache)
  end)

  it("a read far ahead of the decoder waits for it, then gives the right bytes", function()
    -- standard input from a writer that pauses half way: the read of the
    -- end of the last disk can only be answered after the pause
    local arc = archives[1].path
    local size = #H.read(arc)
    local name = fx.names[#fx.names]
    local img = H.read(fx.disks[name])
    local off = #img - 65536
    local rc, out, err = H.sh(string.format(
      "( head -c %d %s; sleep 1; tail -c +%d %s ) | %s cat - %s --offset %d --length 65536",
      size // 2, H.q(arc), size // 2 + 1, H.q(arc), H.q(A.bin), H.q(name), off))
    assert.are.equal(0, rc, err)
    assert.is_true(out == img:sub(off + 1, off + 65536))
  end)

  it("two commands at once share one copy", function()
    local cache = H.tmpdir()
    local big = dir .. "/big.raw"
    H.random_file(big, 96 * A.MiB)
    local plain = dir .. "/big.vma"
    assert.are.equal(0, (H.vma("create", "-q", plain, "drive-scsi0=" .. big)))
    local gz = dir .. "/big.vma.gz"
    A.sh_ok("gzip -1 -c " .. H.q(plain) .. " > " .. H.q(gz))
    os.remove(plain)
    local env = "VMA_CACHE_DIR=" .. H.q(cache) .. " "
    local cmd = env .. H.q(A.bin) .. " cat " .. H.q(gz) .. " scsi0 --offset 90M > "
    os.execute("( " .. cmd .. H.q(dir .. "/o1") .. " & " .. cmd .. H.q(dir .. "/o2") .. " & wait )")
    local want = H.read(big):sub(90 * A.MiB + 1)
    assert.is_true(H.read(dir .. "/o1") == want)
    assert.is_true(H.read(dir .. "/o2") == want)
    assert.are.equal(1, #files(cache, "%.vma%.zst$"))
    assert.are.same({}, files(cache, "%.part$"))
    H.rm(cache)
  end)

  it("a killed decoder leaves no copy under its final name; the next run makes it", function()
    local cache = H.tmpdir()
    local big = dir .. "/big2.raw"
    H.random_file(big, 192 * A.MiB)
    local plain = dir .. "/big2.vma"
    assert.are.equal(0, (H.vma("create", "-q", plain, "drive-scsi0=" .. big)))
    local gz = dir .. "/big2.vma.gz"
    A.sh_ok("gzip -1 -c " .. H.q(plain) .. " > " .. H.q(gz))
    os.remove(plain)
    local pidf = dir .. "/fill.pid"
    os.execute("VMA_CACHE_DIR=" .. H.q(cache) .. " " .. H.q(A.bin) .. " cache add -q " .. H.q(gz)
      .. " >/dev/null 2>&1 & echo $! > " .. H.q(pidf))
    local pid = tonumber(H.read(pidf):match("%d+"))
    -- freeze it as soon as its copy is being written, then kill it
    local seen = false
    for _ = 1, 2000 do
      if #files(cache, "%.part$") > 0 then
        os.execute("kill -STOP " .. pid)
        seen = true
        break
      end
      vma.os.sleep(0.002)
    end
    assert.is_true(seen, "the decoder started")
    assert.are.same({}, files(cache, "%.vma%.zst$"), "stopped before its end")
    os.execute("kill -KILL " .. pid .. "; sleep 0.2")
    assert.are.same({}, files(cache, "%.vma%.zst$"))
    -- a command that ends before the copy is complete drops its part (it
    -- reads near the start, so that its decoder is far from the end when it
    -- closes: a read at 100M left it 91 MiB to go, which a busy machine's
    -- scheduler sometimes let it finish first)
    local rc, out, err = vma_in(cache, "cat", gz, "scsi0", "--offset", "1M", "--length", "1M")
    assert.are.equal(0, rc, err)
    assert.is_true(out == H.read(big):sub(1 * A.MiB + 1, 2 * A.MiB))
    assert.are.same({}, files(cache, "%.part$"))
    assert.are.same({}, files(cache, "%.vma%.zst$"))
    -- and says so, with the command that keeps one (not with -q)
    local gzp = gz:gsub("%p", "%%%0")
    assert.is_truthy(err:find("vma cat: " .. gzp .. " was decoded to %d+%% for this command; "
      .. "that copy is not kept %(vma cache add " .. gzp .. " decodes it once"), err)
    rc, out, err = vma_in(cache, "cat", "-q", gz, "scsi0", "--offset", "1M", "--length", "1M")
    assert.are.equal(0, rc, err)
    assert.are.equal("", err)
    -- one that lets it complete keeps it
    rc, _, err = vma_in(cache, "cache", "add", "-q", gz)
    assert.are.equal(0, rc, err)
    assert.are.equal(1, #files(cache, "%.vma%.zst$"))
    assert.are.same({}, files(cache, "%.part$"))
    rc, out, err = vma_in(cache, "cat", gz, "scsi0", "--offset", "190M")
    assert.are.equal(0, rc, err)
    assert.is_true(out == H.read(big):sub(190 * A.MiB + 1))
    assert.is_nil(err:find("not kept", 1, true), err) -- read from the kept copy
    H.rm(cache)
  end)

  it("a damaged copy or index is detected and made again", function()
    local cache = H.tmpdir()
    local arc = archives[2].path
    local name = fx.names[1]
    local img = H.read(fx.disks[name])
    assert.are.equal(0, (vma_in(cache, "cache", "add", "-q", arc)))
    local copy = cache .. "/" .. files(cache, "%.vma%.zst$")[1]
    -- a byte in the middle of the copy flipped
    local data = H.read(copy)
    local at = #data // 2
    H.write(copy, data:sub(1, at) .. string.char((data:byte(at + 1) + 1) % 256) .. data:sub(at + 2))
    local rc, out, err = vma_in(cache, "cat", arc, name)
    assert.are.equal(0, rc, err)
    assert.is_true(out:sub(1, #img) == img)
    -- the index replaced by garbage
    local idx = cache .. "/" .. files(cache, "%.idx$")[1]
    H.write(idx, string.rep("x", 4096))
    rc, out, err = vma_in(cache, "cat", arc, name)
    assert.are.equal(0, rc, err)
    assert.is_true(out:sub(1, #img) == img)
    -- a symlink or a FIFO in place of the copy is refused, not followed
    os.remove(copy)
    os.execute("ln -s /dev/zero " .. H.q(copy))
    rc, out, err = vma_in(cache, "cat", arc, name)
    assert.are.equal(0, rc, err)
    assert.is_true(out:sub(1, #img) == img)
    H.rm(cache)
  end)

  it("the size limit removes the least recently used archive first", function()
    local cache = H.tmpdir()
    for _, i in ipairs { 1, 2, 3 } do
      local raw = dir .. "/lim" .. i .. ".raw"
      H.random_file(raw, 12 * A.MiB)
      local plain = dir .. "/lim" .. i .. ".vma"
      assert.are.equal(0, (H.vma("create", "-q", plain, "drive-scsi0=" .. raw)))
      A.sh_ok("gzip -1 -c " .. H.q(plain) .. " > " .. H.q(plain .. ".gz"))
    end
    local function add(i)
      local rc, _, err = H.sh("VMA_CACHE_MB=30 VMA_CACHE_DIR=" .. H.q(cache) .. " " .. H.q(A.bin)
        .. " cache add -q " .. H.q(dir .. "/lim" .. i .. ".vma.gz"))
      assert.are.equal(0, rc, err)
      vma.os.sleep(1.1) -- a later use is a later second
    end
    add(1)
    add(2)
    -- lim1 used again: lim2 is now the least recently used
    assert.are.equal(0, (vma_in(cache, "cat", dir .. "/lim1.vma.gz", "scsi0", "--length", "4K", "-q")))
    vma.os.sleep(1.1)
    add(3)
    local rc, out = vma_in(cache, "cache", "ls", "--json")
    assert.are.equal(0, rc)
    local names = {}
    for _, e in ipairs(A.json(out).entries) do names[#names + 1] = e.archive:match("[^/]+$") end
    table.sort(names)
    assert.are.same({ "lim1.vma.gz", "lim3.vma.gz" }, names)
    assert.is_true(A.json(out).bytes <= 30 * A.MiB)
    H.rm(cache)
  end)

  it("two archives with one uuid, one size and one mtime never share a cache", function()
    local cache = H.tmpdir()
    local paths = {}
    for i, seed in ipairs { 1, 2 } do
      local p = dir .. "/twin" .. i .. ".vma"
      local w = assert(vma.create(p, { uuid = "0123456789abcdef0123456789abcdef", ctime = 1700000000 }))
      assert(w:add_config("qemu-server.conf", "memory: 512\n"))
      local id = assert(w:add_device("drive-scsi0", 128 * 1024))
      assert(w:write_cluster(id, 0, H.bytes(65536, seed)))
      assert(w:write_cluster(id, 1, H.bytes(65536, seed + 10)))
      assert(w:close())
      paths[i] = p
    end
    A.sh_ok("touch -d @1700000000 " .. H.q(paths[1]) .. " " .. H.q(paths[2]))
    A.sh_ok("gzip -k " .. H.q(paths[1]) .. " " .. H.q(paths[2]) .. " && touch -d @1700000000 "
      .. H.q(paths[1] .. ".gz") .. " " .. H.q(paths[2] .. ".gz"))
    for _, suffix in ipairs { "", ".gz" } do
      for i, seed in ipairs { 1, 2 } do
        local rc, out, err = vma_in(cache, "cache", "add", "-q", paths[i] .. suffix)
        assert.are.equal(0, rc, err)
        rc, out, err = vma_in(cache, "cat", paths[i] .. suffix, "scsi0")
        assert.are.equal(0, rc, err)
        assert.is_true(out == H.bytes(65536, seed) .. H.bytes(65536, seed + 10), i .. suffix)
      end
    end
    local rc, out = vma_in(cache, "cache", "ls", "--json")
    assert.are.equal(0, rc)
    assert.are.equal(4, #A.json(out).entries)
    H.rm(cache)
  end)

  it("--no-cache leaves the cache folder as it was", function()
    local cache = H.tmpdir()
    local rc, out, err = vma_in(cache, "cat", archives[3].path, fx.names[1], "--no-cache")
    assert.are.equal(0, rc, err)
    local img = H.read(fx.disks[fx.names[1]])
    assert.is_true(out:sub(1, #img) == img)
    assert.are.same({}, H.ls(cache))
    H.rm(cache)
  end)

  it("a damaged one-stream archive: reads past the damage fail with its reason", function()
    local cache = H.tmpdir()
    -- the plain archive cut 100 bytes before its end (inside its last
    -- extent), then compressed: what the last extent holds is lost
    local data = H.read(fx.plain)
    local cut = dir .. "/cut.vma"
    H.write(cut, data:sub(1, #data - 100))
    A.sh_ok("zstd -q -f " .. H.q(cut) .. " -o " .. H.q(cut .. ".zst"))
    local failed = 0
    for _, name in ipairs(fx.names) do
      local rc, out, err = vma_in(cache, "cat", cut .. ".zst", name)
      if rc == 0 then
        local img = H.read(fx.disks[name])
        assert.is_true(out:sub(1, #img) == img, name)
      else
        failed = failed + 1
        assert.are.equal(1, rc, err)
        assert.is_truthy(err:match("^vma cat: [^\n]+\n$"), err)
        assert.is_truthy(err:find("truncated", 1, true) or err:find("ends early", 1, true), err)
      end
    end
    assert.is_true(failed > 0)
    -- nothing cached of an archive that breaks
    assert.are.same({}, files(cache, "%.vma%.zst$"))
    H.rm(cache)
  end)
end)

describe("the archive object under hostile scripts", function()
  local dir, fx

  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
  end)
  teardown(function() H.rm(dir) end)

  -- a command of our own, run by the vma executable (under ASan in make check)
  local function run_script(name, body, ...)
    local cdir = dir .. "/commands"
    os.execute("mkdir -p " .. H.q(cdir))
    H.write(cdir .. "/" .. name .. ".lua", "local vma = require 'vma'\nreturn { description = 't', "
      .. "run = function(args)\n" .. body .. "\nend }\n")
    local words = { "VMA_COMMANDS_PATH=" .. H.q(cdir), H.q(H.bin), name }
    for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
    return H.sh(table.concat(words, " "))
  end

  it("closing the archive in r:disk's progress callback, and using it after, is safe", function()
    local rc, out, err = run_script("closer", [[
      local r = assert(vma.open(args[1], { cache = false }))
      local d, derr = r:disk(args[2], { progress = function() r:close() end })
      -- the disk holds the archive: it reads, whatever became of r
      print(d and #assert(d:read(0, 4096)) or derr)
      print(pcall(r.devices, r))
      if d then d:close() end
      collectgarbage()
      return 0]], fx.plain, fx.names[1])
    assert.are.equal(0, rc, err)
    assert.is_truthy(out:match("^4096\nfalse\t[^\n]*closed vma%.archive\n$"), out)
  end)

  it("a raised error in r:disk's progress callback comes back as its message", function()
    local rc, out, err = run_script("raiser", [[
      local r = assert(vma.open(args[1], { cache = false }))
      print(r:disk(args[2], { progress = function() error("no thanks", 0) end }))
      print(r:disk(args[2], { progress = function() return false end }))
      return 0]], fx.plain, fx.names[1])
    assert.are.equal(0, rc, err)
    assert.are.equal("nil\tno thanks\tcallback\nnil\tinterrupted\tinterrupted\n", out)
  end)
end)
