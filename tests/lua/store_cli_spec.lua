-- The backup store as a whole: vma store, vma catalog, vma diff, vma create
-- --stable, the HTML page in headless Chromium, the module vma.catalog; on
-- a store made at test time (tests/lua/storegen.lua): every figure checked
-- against what was made.
local H = require "helper"
local G = require "storegen"
local vma = require "vma"
local json = require "dkjson"

local q = H.q

local run, run_json = G.run, G.run_json

local function sqlite(db, sql)
  local rc, out, err = H.sh("sqlite3 -batch " .. q(db) .. " " .. q(sql))
  assert(rc == 0, err)
  return out
end

-- the content of a catalog, without ids and the times of the run: what two
-- catalogs of the same store must both say
local function dump(db)
  return table.concat({
    sqlite(db, "SELECT path, name, size, mtime, header_md5, status, error, vmid, type, name_time, "
      .. "time, uuid, ctime, compression, vm_name, logical_size, data_bytes, zero_bytes, "
      .. "missing_bytes, archive_bytes, digests, files, files_error FROM archives ORDER BY path"),
    sqlite(db, "SELECT a.path, d.dev_id, d.name, d.size, d.vmstate, d.clusters, d.data_bytes, "
      .. "d.zero_bytes, d.missing_bytes, d.zero_clusters, hex(d.digests) FROM disks d JOIN "
      .. "archives a ON a.id = d.archive_id ORDER BY a.path, d.dev_id"),
    sqlite(db, "SELECT a.path, c.name, hex(c.data) FROM configs c JOIN archives a ON "
      .. "a.id = c.archive_id ORDER BY a.path, c.name"),
    sqlite(db, "SELECT a.path, p.path, v.type, v.size, v.mode, v.mtime, v.hash, v.target FROM "
      .. "files f JOIN archives a ON a.id = f.archive_id JOIN versions v ON v.id = f.version_id "
      .. "JOIN paths p ON p.id = v.path_id ORDER BY a.path, p.path"),
    sqlite(db, "SELECT path, size, mtime, header_md5, ok, message FROM verifications "
      .. "ORDER BY path, ok"),
  }, "\n--\n")
end

local function by_file(obj)
  local t = {}
  for _, vm in ipairs(obj.vms) do
    for _, b in ipairs(vm.backups) do t[b.file] = { b = b, vm = vm } end
  end
  return t
end

local function copy_store(S, to)
  assert(os.execute("cp -a " .. q(S.dir) .. " " .. q(to)))
end

describe("the backup store", function()
  local root, S

  setup(function()
    root = H.tmpdir()
    S = G.make(root)
  end)

  teardown(function()
    if root then H.rm(root) end
  end)

  it("vma store shows every archive, grouped by VM, with what was made", function()
    local rc, obj = run_json("store", "--json", S.dir)
    assert.equal(0, rc)
    assert.same({}, obj.catalogs)
    local keys = {}
    for _, vm in ipairs(obj.vms) do keys[#keys + 1] = vm.key end
    assert.same({ "qemu/100", "qemu/101", "qemu/102", "other" }, keys)
    local got = by_file(obj)
    local n = 0
    for name, f in pairs(S.archives) do
      n = n + 1
      local b = assert(got[name], name).b
      assert.equal(f.size, b.size, name)
      assert.equal(f.compression, b.compression, name)
      assert.equal(f.ctime, b.ctime, name)
      assert.equal(os.date("!%Y-%m-%d %H:%M:%S", f.ctime), b.time, name)
      local logical = 0
      for i, d in ipairs(f.disks) do
        logical = logical + d.size
        assert.equal(d.name, b.disks[i].name, name)
        assert.equal(d.size, b.disks[i].size, name)
      end
      assert.equal(logical, b.logical_size, name)
      assert.equal(f.notes, b.notes, name)
      assert.equal(f.protected or false, b.protected, name)
      if f.log then assert.equal(f.log, b.log.verdict, name) else assert.equal(json.null, b.log) end
      assert.is_false(b.catalogued)
      assert.equal(json.null, b.verified)
      assert.equal("ok", b.status, name) -- the header of the cut archive is whole
      if f.vm_name then assert.equal(f.vm_name, got[name].vm.name) end
    end
    assert.equal(14, n)
    -- the usual interval of VM 100 is a day: the missing 13th is a gap
    for _, vm in ipairs(obj.vms) do
      if vm.key == "qemu/100" then
        assert.equal(6, vm.count)
        assert.equal(86400, vm.interval)
        assert.equal(1, vm.gaps)
      end
    end
    assert.equal(2 * 86400, got["vzdump-qemu-100-2025_01_14-01_00_00.vma.zst"].b.gap_before)
  end)

  it("vma store --vmid and the terminal table", function()
    local rc, obj = run_json("store", "--json", "--vmid", "101", S.dir)
    assert.equal(0, rc)
    assert.equal(1, #obj.vms)
    assert.equal(4, obj.vms[1].count)
    local out, err
    rc, out, err = run("store", S.dir)
    assert.equal(0, rc, err)
    for name in pairs(S.archives) do assert.truthy(out:find(name, 1, true), name) end
    assert.truthy(out:find("VM 100 (qemu) web1: 6 backups", 1, true))
    assert.truthy(out:find("1 gap longer than usual", 1, true))
    -- a narrow terminal: columns dropped, every line within the width
    rc, out = H.sh("COLUMNS=70 TZ=UTC script -qec " .. q(q(H.bin) .. " store " .. q(S.dir) .. " 2>/dev/null")
      .. " /dev/null")
    assert.equal(0, rc)
    for line in out:gmatch("[^\r\n]+") do
      assert.is_true(#line <= 70, "too wide: " .. line)
    end
    rc, out, err = run("store", "--vmid", "x", S.dir)
    assert.equal(2, rc)
    rc, out, err = run("store", root .. "/nothing-here")
    assert.equal(1, rc)
    assert.truthy(err:find("nothing-here", 1, true))
  end)

  describe("with a catalog", function()
    local dir

    setup(function()
      dir = root .. "/cat"
      copy_store(S, dir)
    end)

    it("records the allocation of every disk, then verification and digests", function()
      local rc, obj = run_json("catalog", "--json", dir)
      assert.equal(0, rc)
      local c = obj.catalogs[1]
      assert.equal(14, c.found)
      assert.equal(14, c.read)
      assert.equal(1, c.broken)
      rc, obj = run_json("store", "--json", dir)
      assert.equal(0, rc)
      assert.equal(dir .. "/.vma-catalog.sqlite", obj.catalogs[1])
      local got = by_file(obj)
      for name, f in pairs(S.archives) do
        local b = got[name].b
        assert.is_true(b.catalogued, name)
        if f.broken then
          assert.equal("broken", b.status, name)
          assert.truthy(b.error)
        else
          assert.equal("ok", b.status, name)
          local data = 0
          for i, d in ipairs(f.disks) do
            assert.equal(d.data_bytes, b.disks[i].data_bytes, name .. " " .. d.name)
            assert.equal(d.size - d.data_bytes, b.disks[i].zero_bytes, name .. " " .. d.name)
            data = data + d.data_bytes
          end
          assert.equal(data, b.data_bytes, name)
        end
        assert.equal(json.null, b.verified)
        assert.is_nil(b.rewritten_share)
      end
      -- --verify: every archive read whole, digests recorded
      rc, obj = run_json("catalog", "--json", "--verify", dir)
      assert.equal(0, rc)
      assert.equal(13, obj.catalogs[1].read) -- the broken one is known broken
      rc, obj = run_json("store", "--json", dir)
      got = by_file(obj)
      for name, f in pairs(S.archives) do
        local b = got[name].b
        if not f.broken then
          assert.is_true(b.verified.ok, name)
        else
          assert.equal("broken", b.status)
        end
      end
      -- the share rewritten since the backup before, against the images
      for _, vm in ipairs(obj.vms) do
        for i = 1, #vm.backups - 1 do
          local newer, older = vm.backups[i], vm.backups[i + 1]
          local fn, fo = S.archives[newer.file], S.archives[older.file]
          if not fn.broken and not fo.broken then
            assert.truthy(newer.rewritten, newer.file)
            local changed, total = 0, 0
            for k, d in ipairs(fn.disks) do
              local n, _, size = G.changed(fo.disks[k].image, d.image)
              assert.equal(n * 65536, newer.rewritten[k].changed_bytes, newer.file)
              changed, total = changed + n * 65536, total + size
            end
            assert.near(changed / total, newer.rewritten_share, 1e-9)
          else
            assert.is_nil(newer.rewritten)
          end
        end
      end
      -- the night that rewrote most of VM 102's disk stands out
      assert.is_true(got["vzdump-qemu-102-2025_01_12-03_00_00.vma.zst"].b.rewritten_share > 0.5)
    end)

    it("is incremental: unchanged archives are not read, changed ones are, removed ones leave", function()
      local rc, obj = run_json("catalog", "--json", dir)
      assert.equal(0, rc)
      assert.equal(0, obj.catalogs[1].read)
      assert.equal(14, obj.catalogs[1].unchanged)
      -- a new mtime: read again
      local name = "vzdump-qemu-100-2025_01_11-01_00_00.vma.zst"
      assert(os.execute("touch -d @1700000000 " .. q(dir .. "/" .. name)))
      rc, obj = run_json("catalog", "--json", dir)
      assert.equal(1, obj.catalogs[1].read)
      -- the same size and mtime, another header: read again
      -- (the header's ctime changed and its MD5 made again: a valid archive)
      local n13 = "vzdump-qemu-101-2025_01_13-01_00_00.vma"
      local path = dir .. "/" .. n13
      local data = H.read(path)
      local mtime = vma.os.stat(path).mtime
      local hsize = string.unpack(">I4", data, 57)
      local header = data:sub(1, 24) .. string.pack(">i8", 12345) .. string.rep("\0", 16)
        .. data:sub(49, hsize)
      header = header:sub(1, 32) .. vma.md5(header) .. header:sub(49)
      os.remove(path)
      H.write(path, header .. data:sub(hsize + 1))
      assert(os.execute("touch -d @" .. mtime .. " " .. q(path)))
      assert.equal(#data, vma.os.stat(path).size)
      assert.equal(0, (run("verify", "-q", "--no-catalog", path)))
      rc, obj = run_json("catalog", "--json", "-v", dir)
      assert.equal(1, obj.catalogs[1].read)
      -- removed
      os.remove(dir .. "/vzdump-qemu-101-2025_01_11-01_00_00.vma")
      rc, obj = run_json("catalog", "--json", dir)
      assert.equal(1, obj.catalogs[1].removed)
      assert.equal("13", sqlite(dir .. "/.vma-catalog.sqlite", "SELECT count(*) FROM archives"):match("%d+"))
      rc, obj = run_json("store", "--json", "--vmid", "101", dir)
      assert.equal(3, obj.vms[1].count)
    end)
  end)

  it("a catalog rebuilt after an interrupted run holds the same as one made at once", function()
    local dir = root .. "/intr"
    copy_store(S, dir)
    local whole, part = root .. "/whole.sqlite", root .. "/part.sqlite"
    local rc = run("catalog", "-q", "--verify", "--db", whole, dir)
    assert.equal(0, rc)
    -- killed (SIGKILL) once an archive is in
    local pidfile = root .. "/pid"
    assert(os.execute(string.format("TZ=UTC %s catalog -q --verify --db %s %s >/dev/null 2>&1 & "
      .. "echo $! > %s", q(H.bin), q(part), q(dir), q(pidfile))))
    local pid = tonumber(H.read(pidfile))
    local n = 0
    for _ = 1, 2000 do
      if H.exists(part) then
        local _, out = H.sh("sqlite3 -batch " .. q(part) .. " 'SELECT count(*) FROM archives' 2>/dev/null")
        n = tonumber(out:match("%d+")) or 0
        if n >= 1 then break end
      end
      vma.os.sleep(0.005)
    end
    vma.os.kill(pid, "KILL")
    os.execute("sleep 0.2")
    local _, out = H.sh("sqlite3 -batch " .. q(part) .. " 'SELECT count(*) FROM archives'")
    local left = tonumber(out:match("%d+"))
    assert.is_true(left >= 1 and left < 14, "the run was killed with " .. tostring(left) .. " archives in")
    -- interrupted (SIGINT) in the next run, while this process holds the
    -- catalog's write lock (so it cannot finish anything): exit 130, nothing
    -- lost, nothing half written
    local lock = assert(vma.sqlite_open(part))
    assert(lock:exec("BEGIN IMMEDIATE"))
    pid = assert(vma.os.spawn({ H.bin, "catalog", "-q", "--verify", "--db", part, dir },
      { stdout = "/dev/null", stderr = root .. "/int.err" }))
    vma.os.sleep(0.5)
    vma.os.kill(pid, "INT")
    local how, code
    for _ = 1, 1000 do
      how, code = vma.os.wait(pid, true)
      if how then break end
      vma.os.sleep(0.01)
    end
    assert(lock:exec("ROLLBACK"))
    lock:close()
    assert.equal("exit", how)
    assert.equal(130, code)
    assert.truthy(H.read(root .. "/int.err"):find("interrupted", 1, true))
    _, out = H.sh("sqlite3 -batch " .. q(part) .. " 'SELECT count(*) FROM archives'")
    assert.equal(left, tonumber(out:match("%d+")))
    -- a run that reads three, then the rest
    rc = run("catalog", "-q", "--verify", "--max", "3", "--db", part, dir)
    assert.equal(0, rc)
    rc = run("catalog", "-q", "--verify", "--db", part, dir)
    assert.equal(0, rc)
    assert.equal(dump(whole), dump(part))
  end)

  it("several workers make the same catalog", function()
    local dir = root .. "/jobs"
    copy_store(S, dir)
    local one, two = root .. "/one.sqlite", root .. "/two.sqlite"
    assert.equal(0, (run("catalog", "-q", "--verify", "--db", one, dir)))
    local rc, obj = run_json("catalog", "--json", "--verify", "--jobs", "3", "--db", two, dir)
    assert.equal(0, rc)
    assert.equal(14, obj.catalogs[1].read)
    assert.equal(dump(one), dump(two))
  end)

  it("refuses a catalog that is not one, is damaged, or is from a newer vma", function()
    local dir = root .. "/bad"
    copy_store(S, dir)
    local db = root .. "/bad.sqlite"
    assert.equal(0, (run("catalog", "-q", "--db", db, dir)))
    -- newer
    local newer = root .. "/newer.sqlite"
    assert(os.execute("cp " .. q(db) .. " " .. q(newer)))
    sqlite(newer, "UPDATE meta SET value = '99' WHERE key = 'schema'")
    for _, cmd in ipairs({ { "store", "--db", newer, dir }, { "catalog", "--db", newer, dir } }) do
      local rc, out, err = run(table.unpack(cmd))
      assert.equal(1, rc)
      assert.truthy(err:find("written by a newer vma (schema 99; this vma reads schema 1)", 1, true), err)
      assert.equal(1, select(2, err:gsub("\n", "")))
    end
    -- not a database
    local junk = root .. "/junk.sqlite"
    H.write(junk, string.rep("not a database ", 400))
    local rc, _, err = run("store", "--db", junk, dir)
    assert.equal(1, rc)
    assert.truthy(err:find("is not a vma catalog (not an SQLite database)", 1, true), err)
    -- an SQLite database of something else
    local other = root .. "/other.sqlite"
    sqlite(other, "CREATE TABLE t(x); INSERT INTO t VALUES(1)")
    rc, _, err = run("store", "--db", other, dir)
    assert.equal(1, rc)
    assert.truthy(err:find("is not a vma catalog", 1, true), err)
    -- damaged: pages overwritten
    local damaged = root .. "/damaged.sqlite"
    local data = H.read(db)
    H.write(damaged, data:sub(1, 4096) .. string.rep("\255", #data - 4096))
    rc, _, err = run("store", "--db", damaged, dir)
    assert.equal(1, rc)
    assert.truthy(err:find(damaged, 1, true), err)
    assert.truthy(err:find("damaged") or err:find("not a vma catalog"), err)
    -- a planted view is refused, a planted trigger never runs
    local view = root .. "/view.sqlite"
    assert(os.execute("cp " .. q(db) .. " " .. q(view)))
    sqlite(view, "ALTER TABLE archives RENAME TO a2; CREATE VIEW archives AS SELECT * FROM a2")
    rc, _, err = run("store", "--db", view, dir)
    assert.equal(1, rc)
    assert.truthy(err:find(view, 1, true), err)
    assert.equal(1, select(2, err:gsub("\n", "")))
    local tdir = root .. "/trig"
    copy_store(S, tdir)
    assert.equal(0, (run("catalog", "-q", tdir)))
    sqlite(tdir .. "/.vma-catalog.sqlite",
      "CREATE TRIGGER t AFTER INSERT ON verifications BEGIN DELETE FROM archives; END")
    assert.equal(0, (run("verify", "-q", tdir .. "/manual/export.vma")))
    assert.equal("14", sqlite(tdir .. "/.vma-catalog.sqlite", "SELECT count(*) FROM archives"):match("%d+"))
    assert.equal("1", sqlite(tdir .. "/.vma-catalog.sqlite", "SELECT count(*) FROM verifications"):match("%d+"))
    -- no catalog where --db says
    rc, _, err = run("store", "--db", root .. "/none.sqlite", dir)
    assert.equal(1, rc)
    assert.truthy(err:find("no catalog at", 1, true), err)
  end)

  it("vma verify records its result in the folder's catalog", function()
    local dir = root .. "/ver"
    copy_store(S, dir)
    assert.equal(0, (run("catalog", "-q", dir)))
    local name = "vzdump-qemu-101-2025_01_13-01_00_00.vma"
    local rc, _, err = run("verify", "-q", dir .. "/" .. name)
    assert.equal(0, rc, err)
    local _, obj = run_json("store", "--json", "--vmid", "101", dir)
    local b = by_file(obj)[name].b
    assert.is_true(b.verified.ok)
    -- a failed verification is recorded as failed
    local cut = "vzdump-qemu-102-2025_01_13-03_00_00.vma"
    rc = run("verify", "-q", dir .. "/" .. cut)
    assert.equal(1, rc)
    _, obj = run_json("store", "--json", "--vmid", "102", dir)
    b = by_file(obj)[cut].b
    assert.is_false(b.verified.ok)
    assert.truthy(b.verified.message)
  end)

  it("vma verify leaves a file of the catalog's name that is not a catalog alone", function()
    local dir = root .. "/foreign"
    assert(os.execute("mkdir -p " .. q(dir) .. " && cp " .. q(S.dir .. "/manual/export.vma") .. " " .. q(dir)))
    H.write(dir .. "/.vma-catalog.sqlite", "")
    local rc, out, err = run("verify", dir .. "/export.vma")
    assert.equal(0, rc)
    assert.equal("", out)
    assert.equal(1, select(2, err:gsub("\n", "")), err)
    assert.truthy(err:find("^vma verify: verified"), err)
    assert.equal("", H.read(dir .. "/.vma-catalog.sqlite"))
  end)

  describe("vma diff", function()
    local dir

    setup(function()
      dir = root .. "/diff"
      copy_store(S, dir)
    end)

    local pairs_ = {
      { "vzdump-qemu-100-2025_01_11-01_00_00.vma.zst", "vzdump-qemu-100-2025_01_12-01_00_00.vma.lzo" },
      { "vzdump-qemu-101-2025_01_12-01_00_00.vma", "vzdump-qemu-101-2025_01_13-01_00_00.vma" },
      { "vzdump-qemu-102-2025_01_11-03_00_00.vma.zst", "vzdump-qemu-102-2025_01_12-03_00_00.vma.zst" },
    }

    local function check(a, b, from)
      local rc, obj = run_json("diff", "--json", dir .. "/" .. a, dir .. "/" .. b)
      assert.equal(0, rc)
      local fa, fb = S.archives[a], S.archives[b]
      for k, d in ipairs(fb.disks) do
        local n, runs, size = G.changed(fa.disks[k].image, d.image)
        local got = obj.disks[k]
        assert.equal(d.name, got.name)
        assert.equal(from, got.from)
        assert.equal(n * 65536, got.changed_bytes, a .. " " .. d.name)
        assert.equal(n, got.changed_clusters)
        assert.equal(size, got.length)
        assert.same(runs, got.ranges)
      end
      assert.truthy(obj.summary:find("rewritten", 1, true))
    end

    it("reads both archives without a catalog, and uses the digests with one", function()
      for _, p in ipairs(pairs_) do check(p[1], p[2], "read") end
      assert.equal(0, (run("catalog", "-q", "--verify", dir)))
      for _, p in ipairs(pairs_) do check(p[1], p[2], "digests") end
      -- --read reads even then; the same answer
      local _, o1 = run_json("diff", "--json", dir .. "/" .. pairs_[3][1], dir .. "/" .. pairs_[3][2])
      local _, o2 = run_json("diff", "--json", "--read", dir .. "/" .. pairs_[3][1], dir .. "/" .. pairs_[3][2])
      assert.equal("read", o2.disks[1].from)
      o1.disks[1].from, o2.disks[1].from = nil, nil
      assert.same(o1.disks, o2.disks)
    end)

    it("says what share of each disk was rewritten, and disks added or removed", function()
      local rc, out = run("diff", dir .. "/" .. pairs_[3][1], dir .. "/" .. pairs_[3][2])
      assert.equal(0, rc)
      local fa, fb = S.archives[pairs_[3][1]], S.archives[pairs_[3][2]]
      local n, _, size = G.changed(fa.disks[1].image, fb.disks[1].image)
      local line = out:match("summary: ([^\n]*)")
      assert.equal(string.format("drive-scsi0 %.1f%% rewritten", n * 65536 / size * 100), line)
      -- another VM's backup: a disk only in each
      local obj
      rc, obj = run_json("diff", "--json", dir .. "/manual/export.vma", dir .. "/" .. pairs_[1][1])
      assert.equal(0, rc)
      assert.equal("removed", obj.disks[1].change)
      assert.equal("disk0", obj.disks[1].name)
      assert.equal("added", obj.disks[2].change)
      -- a broken archive is an error, said in one line
      local err
      rc, out, err = run("diff", dir .. "/" .. pairs_[3][1], dir .. "/vzdump-qemu-102-2025_01_13-03_00_00.vma")
      assert.equal(1, rc)
      assert.equal(1, select(2, err:gsub("\n", "")), err)
    end)
  end)

  describe("the HTML page", function()
    it("is one self-contained file that Chromium shows with every VM, without errors", function()
      local chromium = H.sh("command -v chromium")
      if chromium ~= 0 then
        pending("chromium is not installed (apt-get install chromium)")
        return
      end
      local dir = root .. "/html"
      copy_store(S, dir)
      assert.equal(0, (run("catalog", "-q", "--verify", dir)))
      local page = root .. "/store.html"
      local rc, _, err = run("store", dir, "--html", page)
      assert.equal(0, rc, err)
      local html = H.read(page)
      assert.falsy(html:find("http:", 1, true))
      assert.falsy(html:find("https:", 1, true))
      assert.falsy(html:find("<link", 1, true))
      assert.falsy(html:find("src=", 1, true))
      -- an existing file is not replaced without --force
      rc, _, err = run("store", dir, "--html", page)
      assert.equal(1, rc)
      assert.truthy(err:find("exists", 1, true))
      assert.equal(0, (run("store", dir, "--html", page, "--force")))
      local profile = H.tmpdir()
      local flags = "--headless --no-sandbox --disable-gpu --disable-background-networking "
        .. "--disable-component-update --disable-sync --no-first-run --enable-logging=stderr "
        .. "--v=0 --user-data-dir=" .. q(profile) .. " --virtual-time-budget=3000 "
      local png = root .. "/store.png"
      local out
      rc, out, err = H.sh("timeout 120 chromium " .. flags .. "--window-size=1200,2400 --screenshot="
        .. q(png) .. " " .. q("file://" .. page))
      assert.equal(0, rc, err)
      local shot = H.read(png)
      assert.truthy(shot and shot:sub(1, 8) == "\137PNG\r\n\26\n", "a PNG screenshot")
      assert.is_true(#shot > 20000)
      assert.falsy(err:find("CONSOLE", 1, true), err)
      rc, out, err = H.sh("timeout 120 chromium " .. flags .. "--dump-dom " .. q("file://" .. page))
      assert.equal(0, rc, err)
      H.rm(profile)
      assert.falsy(err:find("CONSOLE", 1, true), err)
      assert.falsy(err:find("Uncaught", 1, true), err)
      -- the script ran: one section per VM, every VM shown with its backups
      assert.truthy(out:find('data-ready="4"', 1, true), out:sub(1, 300))
      for _, id in ipairs({ "vm-100", "vm-101", "vm-102", "vm-other" }) do
        assert.truthy(out:find('id="' .. id .. '"', 1, true), id)
      end
      for name in pairs(S.archives) do
        assert.truthy(out:find('data-file="' .. name .. '"', 1, true), name)
      end
      assert.truthy(out:find('class="gap"', 1, true), "the gap of VM 100")
      assert.truthy(out:find('fill="#d00"><title>2025-01-12 03:00:00 drive-scsi0', 1, true),
        "VM 102's rewritten disk in red")
      assert.truthy(out:find(" days ago", 1, true), "the ages the script wrote")
    end)
  end)

  describe("vma create --stable", function()
    it("makes the same bytes from the same disks, whenever and however they are stored", function()
      local dir = H.tmpdir()
      local img = S.archives["vzdump-qemu-100-2025_01_10-01_00_00.vma.zst"].disks[1].image
      -- the same content with its zeros written out (no holes)
      assert(os.execute("cp --sparse=never " .. q(img) .. " " .. q(dir .. "/full.img")))
      local conf = dir .. "/q.conf"
      H.write(conf, "name: web1\nscsi0: local:vm-100-disk-0,size=8M\n")
      for _, ext in ipairs({ "vma", "vma.zst" }) do
        local a, b = dir .. "/a." .. ext, dir .. "/b." .. ext
        assert.equal(0, (run("create", "-q", "--stable", "-c", "qemu-server.conf=" .. conf, a, "scsi0=" .. img)))
        os.execute("sleep 1.1")
        assert.equal(0, (run("create", "-q", "--stable", "-c", "qemu-server.conf=" .. conf, b,
          "scsi0=" .. dir .. "/full.img")))
        assert.equal(vma.md5(H.read(a)), vma.md5(H.read(b)), ext)
        local _, l = run_json("list", "--json", a)
        assert.equal(0, l.ctime)
        assert.truthy(l.uuid:match("^%x+%-%x+%-8%x%x%x%-[89ab]%x+%-%x+$"), l.uuid)
      end
      -- another content, another uuid; SOURCE_DATE_EPOCH and --ctime give the time
      local other = S.archives["vzdump-qemu-100-2025_01_11-01_00_00.vma.zst"].disks[1].image
      assert.equal(0, (run("create", "-q", "--stable", dir .. "/c.vma", "scsi0=" .. other)))
      assert(os.execute("SOURCE_DATE_EPOCH=1736470800 " .. q(H.bin) .. " create -q --stable "
        .. q(dir .. "/d.vma") .. " " .. q("scsi0=" .. other)))
      local _, c = run_json("list", "--json", dir .. "/c.vma")
      local _, d = run_json("list", "--json", dir .. "/d.vma")
      local _, a = run_json("list", "--json", dir .. "/a.vma")
      assert.are_not.equal(a.uuid, c.uuid)
      assert.equal(1736470800, d.ctime)
      assert.are_not.equal(c.uuid, d.uuid) -- the ctime is part of what the uuid is made of
      -- --uuid and --ctime alone
      assert.equal(0, (run("create", "-q", "--uuid", "12345678-1234-1234-1234-123456789ABC", "--ctime",
        "2025-01-10 01:00:00", dir .. "/e.vma", "scsi0=" .. other)))
      local _, e = run_json("list", "--json", dir .. "/e.vma")
      assert.equal("12345678-1234-1234-1234-123456789abc", e.uuid)
      assert.equal(G.ts(2025, 1, 10, 1), e.ctime)
      -- usage errors
      for _, bad in ipairs({ { "--ctime", "yesterday" }, { "--ctime", "2025-02-30" }, { "--uuid", "xyz" } }) do
        local rc, _, err = run("create", "-q", bad[1], bad[2], dir .. "/f.vma", "scsi0=" .. other)
        assert.equal(2, rc, bad[2])
        assert.truthy(err:find(bad[1], 1, true), err)
        assert.is_false(H.exists(dir .. "/f.vma"))
      end
      H.rm(dir)
    end)
  end)

  describe("the module vma.catalog", function()
    it("opens a catalog and answers about archives", function()
      local dir = root .. "/mod"
      copy_store(S, dir)
      assert.equal(0, (run("catalog", "-q", "--verify", dir)))
      local catalog = require "vma.catalog"
      local cat = assert(catalog.open(dir, { readonly = true }))
      local list = cat:archives { vmid = "100" }
      assert.equal(6, #list)
      assert.equal("vzdump-qemu-100-2025_01_16-01_00_00.vma.zst", list[1].name)
      assert.equal("web1", list[1].vm_name)
      local disks = cat:disks(list[1].id)
      assert.equal(1, #disks)
      assert.equal(128 * vma.DIGEST_SIZE, #cat:digests(list[1].id, disks[1].dev_id))
      assert.truthy(cat:configs(list[1].id)["qemu-server.conf"]:find("name: web1", 1, true))
      assert.is_true(cat:verification(list[1]).ok == 1)
      assert.equal(dir .. "/" .. list[1].path, cat:file_of(list[1].path))
      cat:close()
      -- a missing catalog, read-only, is an error that says how to make one
      local none, err = catalog.open(root .. "/nowhere", { readonly = true })
      assert.is_nil(none)
      assert.truthy(err:find("vma catalog", 1, true))
    end)
  end)
end)
