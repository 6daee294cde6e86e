-- The Lua module's own contract: nil, message, kind; callbacks; closing.
local vma = require "vma"
local H = require "helper"

local A = H.fixtures .. "/proxmox/a-two-drives/a-two-drives.vma"

describe("the vma module", function()
  it("returns nil, message, kind for failures", function()
    local r, msg, kind = vma.open("/nonexistent.vma")
    assert.is_nil(r)
    assert.matches("cannot open /nonexistent.vma", msg)
    assert.are.equal("io", kind)
    r = assert(vma.open(A))
    local data
    data, msg, kind = r:config("nope.conf")
    assert.is_nil(data)
    assert.are.equal("missing", kind)
    local w
    w, msg, kind = vma.create("/tmp/x.vma", { compress = "bz2" })
    assert.is_nil(w)
    assert.are.equal("argument", kind)
    w, msg, kind = vma.create("/tmp/x.vma", { uuid = "0123456789abcdef0123456789abcdef00" })
    assert.is_nil(w)
    assert.matches("bad uuid", msg)
  end)

  it("keeps the system helpers in vma.os only (docs/lua-api.md: Moved to vma.os)", function()
    local moved = { "stat", "lstat", "addresses", "is_all_holes", "mkdir", "rmdir", "write_file",
      "rename", "fsync_dir", "isatty", "terminal_width", "catch_signals", "interrupted", "spawn",
      "wait", "kill", "sleep", "mkdtemp", "realpath", "getpid", "fork", "access", "clock" }
    for _, name in ipairs(moved) do
      assert.are.equal("function", type(vma.os[name]), "vma.os." .. name)
      assert.is_nil(rawget(vma, name), "vma." .. name)
    end
    local names = {}
    for k in pairs(vma.os) do names[#names + 1] = k end
    table.sort(names)
    table.sort(moved)
    assert.are.same(moved, names)
    assert.are.equal("file", assert(vma.os.stat(A)).type)
    local doc = assert(io.open(H.root .. "/docs/lua-api.md")):read("a")
    for _, name in ipairs(moved) do
      assert.truthy(doc:find("- `vma." .. name .. "` → `vma.os." .. name .. "`", 1, true), name)
    end
  end)

  it("an archive file is read as often as asked, a stream once; it closes twice safely", function()
    local r = assert(vma.open(A))
    local first = assert(r:verify())
    assert.are.same(first.clusters_done, assert(r:verify()).clusters_done)
    assert.are.equal("vma.disk (drive-scsi0)", tostring(assert(r:disk("drive-scsi0"))))
    assert.is_table(r:verify())
    -- standard input from a pipe: one pass
    local out = H.tmpdir() .. "/once.txt"
    local script = "local vma = require 'vma'; local r = assert(vma.open('-')); "
      .. "assert(r:verify()); print(select(3, r:verify()))"
    local rc = os.execute(string.format("cat %s | LUA_CPATH=%s lua5.4 -e %s > %s", H.q(A),
      H.q(package.cpath), H.q(script), H.q(out)))
    assert.is_true(rc)
    assert.are.equal("not-seekable\n", H.read(out))
    r:close()
    r:close()
    assert.matches("closed", tostring(r))
    assert.has_error(function() r:devices() end)
    do
      local r2 <close> = assert(vma.open(A))
      assert.are.equal(2, #r2:devices())
    end
  end)

  it("a progress callback that returns false stops a write; the archive never appears", function()
    local dir = H.tmpdir()
    H.random_file(dir .. "/img", 8 * 1048576)
    local w = assert(vma.create(dir .. "/a.vma"))
    local id = assert(w:add_device("disk0", 8 * 1048576))
    local calls = 0
    local ok, msg, kind = w:write_device(id, dir .. "/img", {
      progress = function() calls = calls + 1; return false end })
    assert.is_nil(ok)
    assert.are.equal("interrupted", kind)
    assert.are.equal(1, calls)
    assert.is_nil((w:close()))
    assert.are.same({ "img" }, H.ls(dir))
    H.rm(dir)
  end)

  it("an error raised in a progress callback comes back as its message", function()
    local r = assert(vma.open(A))
    local st, msg, kind = r:verify { progress = function() error("stop here", 0) end }
    assert.is_nil(st)
    assert.are.equal("stop here", msg)
    assert.are.equal("callback", kind)
  end)

  it("a dropped writer removes its unfinished archive", function()
    local dir = H.tmpdir()
    do
      local w <close> = assert(vma.create(dir .. "/a.vma"))
      assert(w:add_config("qemu-server.conf", "x"))
    end
    collectgarbage()
    assert.are.same({}, H.ls(dir))
    H.rm(dir)
  end)

  it("write_device refuses a pipe (its data would be lost as zeros)", function()
    local w = assert(vma.create("/tmp/vma-api-pipe.vma", { overwrite = true }))
    local id = assert(w:add_device("disk0", 65536))
    local ok, msg = w:write_device(id, "/dev/stdin")
    assert.is_nil(ok)
    assert.matches("not a regular file or a block device", msg)
    w:abort()
  end)
end)

describe("vma.os.spawn and vma.process", function()
  local process = require "vma.process"

  it("runs a program without a shell and, with capture, returns how it ended and what it wrote", function()
    local how, code, out, err = vma.os.spawn({ "sh", "-c", "echo out; echo err >&2; exit 3" },
      { capture = true })
    assert.are.same({ "exit", 3, "out\n", "err\n" }, { how, code, out, err })
    -- a word is never parsed by a shell
    how, code, out = vma.os.spawn({ "echo", "$(id); rm -rf x" }, { capture = true })
    assert.are.same({ "exit", 0, "$(id); rm -rf x\n" }, { how, code, out })
    -- far more error output than a pipe holds, beside output: no deadlock
    how, code, out, err = vma.os.spawn({ "sh", "-c", "head -c 300000 /dev/zero >&2; echo done" },
      { capture = true })
    assert.are.same({ "exit", 0, "done\n", 300000 }, { how, code, out, #err })
    how, code = vma.os.spawn({ "sh", "-c", "kill -TERM $$" }, { capture = true })
    assert.are.same({ "signal", 15 }, { how, code })
    local ok, msg = vma.os.spawn({ "no-such-program-here" }, { capture = true })
    assert.is_nil(ok)
    assert.matches("cannot run no%-such%-program%-here", msg)
  end)

  it("process.run: true and the output, or a message with the program's own words", function()
    assert.are.same({ true, "a b\n" }, { process.run { "echo", "a", "b" } })
    local ok, msg = process.run { "sh", "-c", "echo 'no such volume group' >&2; exit 5" }
    assert.is_nil(ok)
    assert.are.equal("sh failed (exit 5): no such volume group", msg)
    assert.is_truthy(process.which("sh"))
    assert.is_nil(process.which("no-such-program-here"))
    assert.are.equal("'a b' 'it'\\''s'", process.command_line { "a b", "it's" })
  end)
end)
