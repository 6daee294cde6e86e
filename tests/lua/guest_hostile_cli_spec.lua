-- A guest file system is hostile input: names with newlines, backslashes,
-- bytes that are not UTF-8, '/' and "..", symbolic link loops and absolute
-- links, a 60-level tree, a damaged superblock, a damaged inode table, an
-- extent past the end of the disk.  Each gets a clear error or is listed
-- safely; nothing crashes or hangs, nothing is written outside DEST.
local H = require "helper"
local G = require "guestimg"
local json = require "dkjson"

local function vma(...) return H.vma(...) end

-- replace the only occurrence of old (same length) in a file
local function patch(path, old, new)
  local data = H.read(path)
  local i = data:find(old, 1, true)
  assert(i, "marker not found: " .. old)
  assert(not data:find(old, i + 1, true), "marker found twice: " .. old)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", i - 1)
  f:write(new)
  f:close()
  return i - 1
end

describe("a hostile ext4", function()
  local dir, A, src, canary
  local deep = string.rep("d/", 60):sub(1, -2)
  lazy_setup(function()
    dir = H.tmpdir()
    src = dir .. "/src"
    canary = dir .. "/canary"
    os.execute("mkdir " .. H.q(canary))
    G.tree(src, {
      ["etc/os-release"] = "ID=evil\n",
      ["loop1"] = { link = "loop2" },
      ["loop2"] = { link = "loop1" },
      ["self"] = { link = "self" },
      ["etcpasswd"] = { link = "/etc/passwd" },
      ["escape"] = { link = "../../../../../../../../" .. canary:sub(2) .. "/pwned" },
      [deep .. "/bottom.txt"] = "deep\n",
      ["back\\slash"] = "b\n",
      ["XXXXSLASHMEXXXX"] = "slash\n",
      ["XXXXDOTDOTXXXXX"] = "dotdot\n",
      ["good.txt"] = "good\n",
      ["bad-extent.bin"] = H.bytes(40000, 9),
    })
    -- names no table key can make portably: a newline, a byte that is not UTF-8
    G.sh("printf 'nl\\n' > " .. H.q(src) .. "/\"$(printf 'new\\nline')\"")
    G.sh("printf 'ff\\n' > " .. H.q(src) .. "/\"$(printf 'bad\\377name')\"")
    G.sh("printf 'rtl\\n' > " .. H.q(src) .. "/\"$(printf 'x\\342\\200\\256txt.exe')\"")
    local img = dir .. "/e.img"
    G.ext4(img, 16, src, { extra = "-b 4096" })
    -- the first extent of bad-extent.bin points far past the end of the disk
    G.sh("debugfs -w -R 'sif /bad-extent.bin block[5] 0x7ffffff0' " .. H.q(img) .. " 2>/dev/null")
    -- a name holding '/', and an entry named ".." pointing to a file
    patch(img, "XXXXSLASHMEXXXX", "XXXX/SLASHMEXXX")
    local at = patch(img, "XXXXDOTDOTXXXXX", "..XXDOTDOTXXXXX")
    local f = assert(io.open(img, "r+b"))
    f:seek("set", at - 2)
    f:write("\2") -- name_len 2: the name is ".."
    f:close()
    A = dir .. "/h.vma"
    G.backup(A, { { "drive-scsi0", img } })
  end)
  lazy_teardown(function() H.rm(dir) end)

  it("ls escapes names and leaves out those that cannot be a path", function()
    local rc, out, err = vma("ls", A, "/")
    assert.are.equal(0, rc, err)
    assert.truthy(out:find("new\\nline\n", 1, true))
    assert.truthy(out:find("bad\\xffname\n", 1, true))
    assert.truthy(out:find("back\\\\slash\n", 1, true))
    assert.truthy(out:find("x\\u{202e}txt.exe\n", 1, true))
    assert.falsy(out:find("SLASHME", 1, true))
    assert.falsy(out:find("DOTDOT", 1, true))
    assert.matches("1 entries with names that cannot be a path", err)
  end)

  it("ls --json gives valid JSON with the exact names (and escaped forms of bad bytes)", function()
    local rc, out = vma("ls", "--json", A, "/")
    assert.are.equal(0, rc)
    local j = assert(json.decode(out))
    local names, escaped = {}, {}
    for _, e in ipairs(j.paths[1].entries) do
      names[e.name] = true
      if e.name_escaped then escaped[e.name_escaped] = true end
    end
    assert.is_true(names["new\nline"])
    assert.is_true(escaped["bad\\xffname"])
  end)

  it("a symbolic link loop is an error, not a hang", function()
    local rc, _, err = vma("ls", A, "/loop1/x")
    assert.are.equal(1, rc)
    assert.matches("too many levels of symbolic links", err)
    rc, _, err = vma("get", A, "/self", "-")
    assert.are.equal(1, rc)
    assert.matches("too many levels", err)
  end)

  it("an absolute link resolves inside the guest, never on the host", function()
    local rc, out, err = vma("get", A, "/etcpasswd", "-")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("no such file", err)
  end)

  it("get copies links as links, the deep tree whole, and nothing outside DEST", function()
    local out = dir .. "/out"
    os.execute("mkdir " .. H.q(out))
    local rc, _, err = vma("get", "-q", A, "/", out)
    -- the file with the bad extent fails, the rest is copied
    assert.are.equal(1, rc)
    assert.matches("bad%-extent%.bin: .*past the end", err)
    local st = G.scan(out .. "/root")
    assert.are.equal("l", st["escape"].type)
    assert.are.equal("l", st["loop1"].type)
    assert.are.equal("/etc/passwd", st["etcpasswd"].target)
    assert.are.equal("deep\n", H.read(out .. "/root/" .. deep .. "/bottom.txt"))
    assert.are.equal("nl\n", H.read(out .. "/root/new\nline"))
    assert.are.equal("good\n", H.read(out .. "/root/good.txt"))
    assert.is_nil(st["bad-extent.bin"])
    assert.are.same({}, H.ls(canary))
    assert.are.same({ "root" }, H.ls(out))
  end)

  it("a link already in DEST is never written through", function()
    local out = dir .. "/out2"
    os.execute("mkdir " .. H.q(out))
    os.execute("ln -s " .. H.q(canary) .. " " .. H.q(out .. "/etc"))
    local rc, _, err = vma("get", A, "/etc", out)
    assert.are.equal(1, rc)
    assert.matches("exists", err)
    rc, _, err = vma("get", "--force", A, "/etc", out)
    assert.are.equal(1, rc)
    assert.matches("not a folder", err)
    assert.are.same({}, H.ls(canary))
    assert.are.same({ "etc" }, H.ls(out))
  end)

  it("find walks the 60-level tree", function()
    local rc, out, err = vma("find", A, "/d", "--name", "bottom.txt")
    assert.are.equal(0, rc, err)
    assert.are.equal("/" .. deep .. "/bottom.txt\n", out)
  end)
end)

describe("damaged file systems", function()
  local dir
  lazy_setup(function()
    dir = H.tmpdir()
    G.tree(dir .. "/src", { ["etc/os-release"] = "ID=x\n", ["a.txt"] = "a\n" })
    for i = 1, 200 do H.write(dir .. "/src/f" .. i, ("file %d\n"):format(i)) end
  end)
  lazy_teardown(function() H.rm(dir) end)

  local function archive(name, damage)
    local img = dir .. "/" .. name .. ".img"
    G.ext4(img, 8, dir .. "/src", { extra = "-b 1024" })
    damage(img)
    local A = dir .. "/" .. name .. ".vma"
    G.backup(A, { { "drive-scsi0", img } })
    return A
  end

  it("a superblock with impossible values: a clear error", function()
    local A = archive("sb", function(img)
      -- s_log_block_size (offset 24 of the superblock at 1024) = 40
      local f = assert(io.open(img, "r+b"))
      f:seek("set", 1024 + 24)
      f:write(string.pack("<I4", 40))
      f:close()
    end)
    local rc, out, err = vma("ls", A, "/")
    assert.are.equal(1, rc)
    assert.are.equal("", out)
    assert.matches("^vma ls: [^\n]+\n$", err)
  end)

  it("an inode table full of garbage: errors, never a crash", function()
    local A = archive("itable", function(img)
      local _, out = H.sh("dumpe2fs " .. H.q(img) .. " 2>/dev/null")
      local first, last = out:match("Inode table at (%d+)%-(%d+)")
      local f = assert(io.open(img, "r+b"))
      f:seek("set", tonumber(first) * 1024 + 2 * 256) -- inode 3 on (the root, inode 2, kept)
      f:write(H.bytes((tonumber(last) - tonumber(first)) * 1024, 99))
      f:close()
    end)
    local rc, _, err = vma("ls", "-l", A, "/")
    assert.is_true(rc == 0 or rc == 1)
    local rc2, _, err2 = vma("get", A, "/", dir .. "/itable-out-does-not-exist/x")
    assert.are.equal(1, rc2)
    assert.is_nil(err:find("Segmentation", 1, true))
    assert.is_nil(err2:find("Segmentation", 1, true))
  end)

  it("a partition table that loops and one that points past the disk", function()
    local img = dir .. "/mbr.raw"
    G.disk(img, 16, "dos", { "start=2048, size=4096, type=83", "start=8192, size=20000, type=5",
      "start=10240, size=2048, type=83" })
    -- the first extended boot record links to a second one (at sector
    -- 10240), whose link points back to itself
    local f = assert(io.open(img, "r+b"))
    local link = string.pack("<I1I1I1I1I1I1I1I1I4I4", 0, 0, 0, 0, 5, 0, 0, 0, 2048, 2048)
    f:seek("set", 8192 * 512 + 446 + 16)
    f:write(link)
    f:seek("set", 10240 * 512 + 446 + 16)
    f:write(link)
    f:seek("set", 10240 * 512 + 510)
    f:write("\x55\xaa")
    -- partition 1 claims 1 TiB
    f:seek("set", 446 + 12)
    f:write(string.pack("<I4", 0x7fffffff))
    f:close()
    local A = dir .. "/mbr.vma"
    G.backup(A, { { "drive-scsi0", img } })
    local rc, out, err = vma("inspect", "--json", A)
    assert.are.equal(0, rc, err)
    local j = json.decode(out)
    assert.is_true(j.disks[1].volumes[1].truncated)
    assert.matches("loops", j.disks[1].warning)
  end)
end)
