-- Hostile seekable .vma.zst archives and index cache files, made at check
-- time (issue #19): the random-access paths (vma cat, convert, serve, mount,
-- the bare nbdkit plugin, the Lua API) serve no byte of a zstd frame before
-- the whole frame was decoded and checked as `vma verify` checks it, bound
-- what a seek table may claim, and take nothing from a cache file that is not
-- a regular file of a sane size.
local H = require "helper"
local G = require "vmagen"
local A = require "accesshelp"
local vma = require "vma"

local ONLY_CLI = (os.getenv("VMA_ONLY_CLI") or "") ~= ""
local PLUGIN = A.root .. "/build/nbdkit-vma-plugin.so"
local FUSE = A.root .. "/build/vma-fuse"
local SKIPPABLE, SEEKABLE = 0x184D2A5E, 0x8F92EAB1

--- One zstd frame of data (the zstd program writes the content checksum).
local function zframe(dir, data)
  local tmp = dir .. "/frame.tmp"
  H.write(tmp, data)
  local p = assert(io.popen("zstd -q -c -3 < " .. H.q(tmp)))
  local c = p:read("a")
  assert(p:close(), "zstd failed")
  os.remove(tmp)
  return c
end

--- The seek table (a skippable frame) of entries { csize, dsize }.
local function seek_table(entries)
  local t = {}
  for i, e in ipairs(entries) do t[i] = string.pack("<I4I4", e[1], e[2]) end
  local body = table.concat(t) .. string.pack("<I4BI4", #entries, 0, SEEKABLE)
  return string.pack("<I4I4", SKIPPABLE, #body) .. body
end

--- A seekable .vma.zst of the plain bytes cut into frames at the offsets
-- cuts (ascending, inside the archive); lie(i, entry) may change entry i
-- of the seek table. Returns the bytes and the compressed frames.
local function seekable(dir, plain, cuts, lie)
  local frames, entries, from = {}, {}, 1
  local bounds = {}
  for _, c in ipairs(cuts) do bounds[#bounds + 1] = c end
  bounds[#bounds + 1] = #plain
  for i, to in ipairs(bounds) do
    local part = plain:sub(from, to)
    frames[i] = zframe(dir, part)
    entries[i] = { #frames[i], #part }
    if lie then lie(i, entries[i]) end
    from = to + 1
  end
  return table.concat(frames) .. seek_table(entries), frames
end

--- One line on stderr starting with "vma CMD: " that holds want.
local function one_line(err, cmd, want)
  assert.is_truthy(err:match("^vma " .. cmd .. ": [^\n]+\n$"), "one line expected: " .. err)
  if want then assert.is_truthy(err:find(want, 1, true), "expected '" .. want .. "' in: " .. err) end
end

describe("seekable .vma.zst: no byte of a frame before the frame is checked", function()
  local dir, xdg

  -- vma with its own index cache folder (a fresh one unless given)
  local function vma_cmd(cache, ...)
    local words = { "XDG_CACHE_HOME=" .. H.q(cache or (dir .. "/xdg-" .. math.random(1 << 30))),
      H.q(A.bin) }
    for _, w in ipairs({ ... }) do words[#words + 1] = H.q(w) end
    return H.sh(table.concat(words, " "))
  end

  setup(function()
    dir = H.tmpdir()
    xdg = dir .. "/xdg"
  end)

  teardown(function()
    A.cleanup(dir)
    H.rm(dir)
  end)

  -- (a) frame 1 really holds E1 (cluster 0, one block) and E2 (cluster 1,
  -- one block); frame 2 an empty extent Ea of 512 bytes. The seek table says
  -- frame 1 is 512 bytes shorter than it is: through the table, E2's last 512
  -- bytes of data are Ea's header. Read from start to end (verify, extract)
  -- the archive is valid.
  local function hidden_extent()
    local b1, b2 = G.bytes(G.BLOCK, 101), G.bytes(G.BLOCK, 202)
    local plain, lay = G.build({
      configs = { { name = "qemu-server.conf", data = "memory: 512\n" } },
      devices = { { id = 1, name = "drive-scsi0", size = 2 * G.CLUSTER } },
      extents = {
        { slots = { { dev = 1, cluster = 0, mask = 1, data = b1 } } },
        { slots = { { dev = 1, cluster = 1, mask = 1, data = b2 } } },
        { slots = {} },
      },
    })
    local e = lay.extents
    local bytes = seekable(dir, plain, { e[1].offset, e[3].offset }, function(i, entry)
      if i == 2 then entry[2] = entry[2] - 512 end
    end)
    local p = dir .. "/hidden.vma.zst"
    H.write(p, bytes)
    local img = b1 .. string.rep("\0", G.CLUSTER - G.BLOCK) .. b2 .. string.rep("\0", G.CLUSTER - G.BLOCK)
    return p, img
  end

  it("(a) a seek table that hides an extent: verify and extract read it, cat/convert/serve/mount/nbdkit refuse it",
    function()
      if not A.need("zstd") then return end
      local p, img = hidden_extent()
      -- read from start to end, the archive is valid
      local rc, _, err = H.vma("verify", p)
      assert.are.equal(0, rc, err)
      local ex = dir .. "/ex-a"
      rc, _, err = H.vma("extract", p, ex)
      assert.are.equal(0, rc, err)
      assert.is_true(H.read(ex .. "/disk-drive-scsi0.raw") == img)
      H.rm(ex)
      -- read through the seek table, it is refused: frame 1 is longer than it says
      local out
      rc, out, err = vma_cmd(nil, "cat", p, "scsi0")
      assert.are.equal(1, rc, err)
      assert.are.equal("", out)
      one_line(err, "cat", "zstd frame 1")
      rc, out, err = vma_cmd(nil, "cat", p, "scsi0", "--offset", "64K", "--length", "4K")
      assert.are.equal(1, rc, err)
      assert.are.equal("", out)
      one_line(err, "cat", "more bytes than the seek table says")
      if not ONLY_CLI then
        local r = assert(vma.open(p, { cache = "off" }))
        local d, msg = r:disk("drive-scsi0")
        r:close()
        assert.is_nil(d)
        assert.is_truthy(tostring(msg):find("zstd frame 1", 1, true), msg)
      end
      if A.have("nbdkit") then
        rc, _, err = H.sh("nbdkit -U - -r " .. H.q(PLUGIN) .. " " .. H.q(p) .. " --run true")
        assert.are.equal(1, rc, err)
        assert.is_truthy(err:find("zstd frame 1", 1, true), err)
        rc, out, err = vma_cmd(nil, "serve", p)
        assert.are.equal(1, rc, err)
        one_line(err, "serve", "zstd frame 1")
        assert.are.equal("", A.nbdkit_for(p))
      end
      if A.have("nbdkit") and A.have("qemu-img") then
        local o = dir .. "/a.qcow2"
        rc, out, err = vma_cmd(nil, "convert", p, o)
        assert.are.equal(1, rc, err)
        one_line(err, "convert", "zstd frame 1")
        assert.is_false(H.exists(o))
      end
      if A.have("fusermount3") then
        local m = dir .. "/mnt-a"
        os.execute("mkdir -p " .. H.q(m))
        rc, out, err = vma_cmd(nil, "mount", p, m)
        assert.are.equal(1, rc, err)
        one_line(err, "mount", "zstd frame 1")
        assert.are.same({}, A.mounts_under(dir))
        rc, _, err = H.sh(H.q(FUSE) .. " " .. H.q(p) .. " " .. H.q(m))
        assert.are.equal(1, rc, err)
        assert.are.same({}, A.mounts_under(dir))
      end
    end)

  -- (b) a valid archive of random data, six extents of 59 clusters, one
  -- frame each after the header's; one byte of the last frame flipped 2,000
  -- bytes into it (past what vma.open's reader decodes ahead)
  local N = 6
  local function flipped()
    local f = assert(io.open("/dev/urandom", "rb"))
    local img = f:read(N * G.SLOTS * G.CLUSTER)
    f:close()
    local exts = {}
    for e = 0, N - 1 do
      local slots = {}
      for c = e * G.SLOTS, (e + 1) * G.SLOTS - 1 do
        slots[#slots + 1] = { dev = 1, cluster = c, mask = 0xffff,
          data = img:sub(c * G.CLUSTER + 1, (c + 1) * G.CLUSTER) }
      end
      exts[#exts + 1] = { slots = slots }
    end
    local plain, lay = G.build({
      devices = { { id = 1, name = "drive-scsi0", size = #img } },
      extents = exts,
    })
    local cuts = {}
    for i = 1, N do cuts[i] = lay.extents[i].offset end
    local bytes, frames = seekable(dir, plain, cuts)
    local good = dir .. "/good.vma.zst"
    H.write(good, bytes)
    local at = 2000 -- 0-based offset of the byte to flip
    for i = 1, N do at = at + #frames[i] end
    local bad = bytes:sub(1, at) .. string.char(bytes:byte(at + 1) ~ 0x20) .. bytes:sub(at + 2)
    local p = dir .. "/flipped.vma.zst"
    H.write(p, bad)
    return p, good, img
  end

  it("(b) one byte flipped 2,000 bytes into a frame: cat of its first 16 KiB fails as verify does", function()
    if not A.need("zstd") then return end
    local p, good, img = flipped()
    local at = (N - 1) * G.SLOTS * G.CLUSTER -- the damaged frame's first cluster
    local rc, out, err = H.vma("verify", good)
    assert.are.equal(0, rc, err)
    rc, out, err = H.vma("verify", p)
    assert.are.equal(1, rc, err)
    rc, out, err = vma_cmd(nil, "cat", p, "scsi0", "--offset", tostring(at), "--length", "16K")
    assert.are.equal(1, rc, err)
    assert.are.equal("", out)
    one_line(err, "cat", "zstd frame " .. N)
    rc, out, err = vma_cmd(nil, "cat", p, "scsi0")
    assert.are.equal(1, rc, err)
    one_line(err, "cat", "zstd frame " .. N)
    -- the good archive reads
    rc, out, err = vma_cmd(nil, "cat", good, "scsi0", "--offset", tostring(at), "--length", "16K")
    assert.are.equal(0, rc, err)
    assert.is_true(out == img:sub(at + 1, at + 16384))
  end)

  it("frames without zstd's content checksum are not read at random: through a decoded copy", function()
    if not A.need("zstd") then return end
    local plain = G.build(G.base())
    local tmp = dir .. "/nock.tmp"
    H.write(tmp, plain)
    local p0 = assert(io.popen("zstd -q -c --no-check -3 < " .. H.q(tmp)))
    local c = p0:read("a")
    assert(p0:close())
    local p = dir .. "/nocheck.vma.zst"
    H.write(p, c .. seek_table({ { #c, #plain } }))
    local rc, _, err = H.vma("verify", p)
    assert.are.equal(0, rc, err)
    local out, want
    rc, want, err = H.vma("cat", tmp, "scsi0")
    assert.are.equal(0, rc, err)
    -- the stream is what it says: read from start to end into a copy, never
    -- a byte of an unchecked frame served at random
    rc, out, err = vma_cmd(nil, "cat", p, "scsi0")
    assert.are.equal(0, rc, err)
    assert.is_true(out == want)
  end)

  it("a seek table of 2^32-1 entries (a sparse file): one line and exit 1", function()
    if not A.need("zstd") then return end
    local p = dir .. "/huge-table.vma.zst"
    local plain = G.build(G.base())
    local fr = zframe(dir, plain)
    local f = assert(io.open(p, "wb"))
    f:write(fr)
    f:close()
    -- a file large enough for the table's 8 bytes a frame (34 GB, sparse)
    local size = 0xffffffff * 8 + 17 + 4096
    A.sh_ok("truncate -s " .. (size - 9) .. " " .. H.q(p))
    f = assert(io.open(p, "ab"))
    f:write(string.pack("<I4BI4", 0xffffffff, 0, SEEKABLE))
    f:close()
    local rc, out, err = vma_cmd(nil, "cat", p, "scsi0")
    assert.are.equal(1, rc, err)
    assert.are.equal("", out)
    one_line(err, "cat", "seek table")
    if A.have("nbdkit") then
      rc, _, err = H.sh("nbdkit -U - -r " .. H.q(PLUGIN) .. " " .. H.q(p) .. " --run true")
      assert.are.equal(1, rc, err)
      assert.is_truthy(err:find("seek table", 1, true), err)
      rc, out, err = vma_cmd(nil, "serve", p)
      assert.are.equal(1, rc, err)
      one_line(err, "serve", "seek table")
    end
    if A.have("fusermount3") then
      local m = dir .. "/mnt-t"
      os.execute("mkdir -p " .. H.q(m))
      rc, out, err = vma_cmd(nil, "mount", p, m)
      assert.are.equal(1, rc, err)
      one_line(err, "mount", "seek table")
      assert.are.same({}, A.mounts_under(dir))
    end
    os.remove(p)
  end)

  it("1 GiB of skippable padding inside a frame (a sparse file): refused, not read", function()
    if not A.need("zstd") then return end
    local plain = G.build(G.base())
    local fr = zframe(dir, plain)
    local pad = 1 << 30
    local p = dir .. "/padded.vma.zst"
    local f = assert(io.open(p, "wb"))
    f:write(fr, string.pack("<I4I4", SKIPPABLE, pad))
    f:seek("cur", pad)
    f:write(seek_table({ { #fr + 8 + pad, #plain } }))
    f:close()
    -- read from start to end, the padding is skipped: the archive is valid
    local rc, out, err = H.vma("verify", p)
    assert.are.equal(0, rc, err)
    rc, out, err = vma_cmd(nil, "cat", p, "scsi0")
    assert.are.equal(1, rc, err)
    assert.are.equal("", out)
    one_line(err, "cat", "compressed size")
    if A.have("nbdkit") then
      rc, _, err = H.sh("nbdkit -U - -r " .. H.q(PLUGIN) .. " " .. H.q(p) .. " --run true")
      assert.are.equal(1, rc, err)
      assert.is_truthy(err:find("compressed size", 1, true), err)
    end
    os.remove(p)
  end)
end)

describe("the index cache file", function()
  local dir, fx

  setup(function()
    dir = H.tmpdir()
    fx = { plain = dir .. "/c.vma" }
    local d, img = G.base()
    fx.img = img
    H.write(fx.plain, G.build(d))
    if A.have("zstd") then
      fx.zst = dir .. "/c.vma.zst"
      A.seekable_zst(fx.plain, fx.zst)
    end
  end)

  teardown(function() H.rm(dir) end)

  -- vma cat of the zst with the cache in xdg, stopped after 60 s should it
  -- hang (a guard, not a measure: it takes well under a second)
  local function cat(xdg)
    return H.sh("XDG_CACHE_HOME=" .. H.q(xdg) .. " exec timeout 60 "
      .. H.q(A.bin) .. " cat " .. H.q(fx.zst) .. " scsi0")
  end

  -- the path of the archive's cache file in xdg (made by a first cat)
  local function cache_path(xdg)
    local rc, _, err = H.sh("XDG_CACHE_HOME=" .. H.q(xdg) .. " " .. H.q(A.bin) .. " cat "
      .. H.q(fx.zst) .. " scsi0 >/dev/null")
    assert.are.equal(0, rc, err)
    local names = {}
    for _, n in ipairs(H.ls(xdg .. "/vma")) do
      if n:match("%.idx$") then names[#names + 1] = n end
    end
    assert.are.equal(1, #names, table.concat(H.ls(xdg .. "/vma") or {}, " "))
    return xdg .. "/vma/" .. names[1]
  end

  local function is_regular(p)
    local rc = H.sh("test -f " .. H.q(p) .. " && ! test -L " .. H.q(p))
    return rc == 0
  end

  it("a symbolic link in its place is not followed: the index is built again, the link replaced", function()
    if not A.need("zstd") then return end
    local xdg = dir .. "/x-link"
    local p = cache_path(xdg)
    -- a valid index elsewhere: not used through the link
    local other = dir .. "/other.idx"
    A.sh_ok("mv " .. H.q(p) .. " " .. H.q(other) .. " && ln -s " .. H.q(other) .. " " .. H.q(p))
    local before = H.read(other)
    local rc, out, err = cat(xdg)
    assert.are.equal(0, rc, err)
    assert.is_true(out == fx.img)
    assert.is_true(is_regular(p))
    assert.is_true(H.read(other) == before)
    -- /dev/zero: not read
    A.sh_ok("ln -sf /dev/zero " .. H.q(p))
    rc, out, err = cat(xdg)
    assert.are.equal(0, rc, err)
    assert.is_true(out == fx.img)
    assert.is_true(is_regular(p))
  end)

  it("a FIFO in its place is not opened for reading: the index is built again", function()
    if not A.need("zstd") then return end
    local xdg = dir .. "/x-fifo"
    local p = cache_path(xdg)
    os.remove(p)
    A.sh_ok("mkfifo " .. H.q(p))
    local rc, out, err = cat(xdg)
    assert.are.equal(0, rc, err)
    assert.is_true(out == fx.img)
    assert.is_true(is_regular(p))
  end)

  it("a 3 GB file in its place: the index is built again", function()
    if not A.need("zstd") then return end
    local xdg = dir .. "/x-big"
    local p = cache_path(xdg)
    A.sh_ok("truncate -s 3G " .. H.q(p))
    local rc, out, err = cat(xdg)
    assert.are.equal(0, rc, err)
    assert.is_true(out == fx.img)
    assert.is_true(is_regular(p))
    local size = vma.os.stat(p).size
    assert.is_true(size < 1 << 20, tostring(size))
  end)
end)
