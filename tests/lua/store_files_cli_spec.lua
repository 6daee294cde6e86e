-- The guest's files across a store: vma catalog --files, vma find DIR,
-- vma history, vma get DIR, vma diff --files, and a retention policy that
-- reads the catalog; on the store of storegen.lua, every answer checked
-- against the folders its disks were made from.
local H = require "helper"
local G = require "storegen"
local vma = require "vma"
local json = require "dkjson"

local q = H.q

local run, run_json = G.run, G.run_json

local HASH_MAX = 1 << 20

-- what the catalog must hold of an archive's files: the folders it was
-- made from (files above the hash limit without a hash), without the
-- mount points (they show the mounted file system's root)
local function expected(facts)
  local out = {}
  for p, e in pairs(facts.files) do
    local mounted = false
    for _, d in ipairs(facts.disks) do if d.mount == p then mounted = true end end
    if not mounted then
      local x = { type = e.type, size = e.size, mode = e.mode, mtime = e.mtime, target = e.target }
      if e.type == "file" and e.size <= HASH_MAX then x.hash = e.hash end
      out[p] = x
    end
  end
  return out
end

local function catalogued_files(db, name)
  local catalog = require "vma.catalog"
  local cat = assert(catalog.open(db, { readonly = true }))
  local row
  for _, a in ipairs(cat:archives()) do if a.name == name then row = a end end
  assert(row, name)
  local out = {}
  for _, f in ipairs(cat:files(row.id)) do
    out[f.path] = { type = f.type, size = f.size, mode = f.mode, mtime = f.mtime, hash = f.hash,
                    target = f.target }
  end
  cat:close()
  return out, row
end

local function without(t, keys)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  for _, k in ipairs(keys) do c[k] = nil end
  return c
end

describe("the guest's files across a store", function()
  local root, S, dir
  local available = require("vma.storefiles").available

  setup(function()
    root = H.tmpdir()
    S = G.make(root)
    dir = S.dir
  end)

  teardown(function()
    if root then H.rm(root) end
  end)

  local function need_guest()
    local r = assert(vma.open(dir .. "/manual/export.vma"))
    local ok = available(r)
    r:close()
    if not ok then pending("the guest layer (r:guest) is not in this build") end
    return ok
  end

  it("vma catalog --files records every file of every backup as it was made", function()
    if not need_guest() then return end
    local rc, obj = run_json("catalog", "--json", "--files", dir)
    assert.equal(0, rc)
    assert.equal(14, obj.catalogs[1].read)
    assert.equal(0, obj.catalogs[1].files_failed)
    local db = dir .. "/.vma-catalog.sqlite"
    for name, f in pairs(S.archives) do
      if f.files and not f.broken then
        local got, row = catalogued_files(db, name)
        local mounts = {}
        for _, d in ipairs(f.disks) do if d.mount then mounts[#mounts + 1] = d.mount end end
        assert.same(expected(f), without(got, mounts), name)
        assert.is_nil(row.files_error)
      end
    end
    -- unchanged files are one version for all the backups that hold them
    local _, out = H.sh("sqlite3 " .. q(db) .. " \"SELECT count(DISTINCT v.id), count(*) FROM "
      .. "versions v JOIN paths p ON p.id = v.path_id JOIN files f ON f.version_id = v.id JOIN "
      .. "archives a ON a.id = f.archive_id WHERE p.path = '/etc/hostname' AND a.vmid = '100'\"")
    assert.equal("1|6", out:match("[%d|]+"))
  end)

  it("vma find DIR PATTERN: every version, newest backup first", function()
    if not need_guest() then return end
    local rc, obj = run_json("find", "--json", dir, "*/app.conf")
    assert.equal(0, rc)
    local got = {}
    for _, m in ipairs(obj.matches) do
      local files = {}
      for _, b in ipairs(m.backups) do files[#files + 1] = b.file end
      got[#got + 1] = { path = m.path, vmid = m.vmid, size = m.size, files = files }
    end
    local function n(d, ext) return string.format("vzdump-qemu-100-2025_01_%02d-01_00_00.%s", d, ext) end
    assert.same({
      { path = "/etc/app.conf", vmid = 100, size = 25, files = { n(16, "vma.zst"), n(15, "vma.gz") } },
      { path = "/etc/app.conf", vmid = 100, size = 12, files = { n(14, "vma.zst"), n(12, "vma.lzo") } },
      { path = "/etc/app.conf", vmid = 100, size = 12, files = { n(11, "vma.zst"), n(10, "vma.zst") } },
    }, got)
    assert.equal(obj.matches[1].hash, (select(2, H.sh("printf 'threads = 8\\nbroken = yes\\n' | sha256sum")):match("%x+")))
    -- by name, across VMs
    -- by name, across VMs (VM 101's files have the mtime of each night: a
    -- version per backup)
    rc, obj = run_json("find", "--json", dir, "VERSION")
    assert.equal(0, rc)
    assert.equal(4, #obj.matches)
    for i, m in ipairs(obj.matches) do
      assert.equal("/data/db/VERSION", m.path)
      assert.equal(101, m.vmid)
      assert.equal(1, #m.backups)
      assert.equal(string.format("vzdump-qemu-101-2025_01_%02d-01_00_00.vma", 15 - i), m.backups[1].file)
    end
    -- --vmid, and nothing found
    rc, obj = run_json("find", "--json", "--vmid", "102", dir, "*/app.conf")
    assert.equal(0, rc)
    assert.same({}, obj.matches)
    -- the text form: one line per version
    local out
    rc, out = run("find", dir, "*/app.conf")
    assert.equal(0, rc)
    assert.equal(3, select(2, out:gsub("\n", "")))
    assert.truthy(out:find("2025-01-16 01:00:00  100          25  /etc/app.conf  " .. n(16, "vma.zst")
      .. " (and 1 older)", 1, true), out)
    -- the archive form is still the archive form
    rc, out = run("find", dir .. "/" .. n(12, "vma.lzo"), "/etc", "--name", "app.conf")
    assert.equal(0, rc)
    assert.equal("/etc/app.conf\n", out)
  end)

  it("vma history: each version, where it changed, where it is absent", function()
    if not need_guest() then return end
    local rc, obj = run_json("history", "--json", "--vmid", "100", dir, "/etc/app.conf")
    assert.equal(0, rc)
    assert.equal(3, #obj.versions)
    local seq = {}
    for _, b in ipairs(obj.backups) do seq[#seq + 1] = { b.version, b.change } end
    assert.same({ { 1, json.null }, { 1, "changed" }, { 2, json.null }, { 2, "changed" },
                  { 3, json.null }, { 3, "first" } }, seq)
    assert.same({ 25, 12, 12 }, { obj.versions[1].size, obj.versions[2].size, obj.versions[3].size })
    assert.equal(G.ts(2025, 1, 15, 0), obj.versions[1].mtime)
    -- a file that came and went
    rc, obj = run_json("history", "--json", "--vmid", "100", dir, "/home/u/a.txt")
    assert.equal(0, rc)
    seq = {}
    for _, b in ipairs(obj.backups) do seq[#seq + 1] = { b.version, b.change } end
    assert.same({ { json.null, json.null }, { json.null, json.null }, { json.null, "removed" },
                  { 1, json.null }, { 1, "added" }, { json.null, json.null } }, seq)
    -- --vmid may be left out when one VM has the path; not when several do
    rc, obj = run_json("history", "--json", dir, "/etc/app.conf")
    assert.equal(0, rc)
    assert.equal(100, obj.vmid)
    local err
    rc, _, err = run("history", dir, "/etc/hostname")
    assert.equal(1, rc)
    assert.truthy(err:find("give --vmid", 1, true), err)
    rc, _, err = run("history", dir, "--vmid", "100", "/no/such")
    assert.equal(1, rc)
  end)

  it("vma get DIR: any version of a file", function()
    if not need_guest() then return end
    local out = root .. "/got"
    for i = 1, 3 do assert(vma.os.mkdir(out .. i)) end
    local rc, _, err = run("get", dir, "--vmid", "100", "--version", "2", "/etc/app.conf", out .. "1")
    assert.equal(0, rc, err)
    assert.equal("threads = 8\n", H.read(out .. "1/app.conf"))
    assert.truthy(err:find("vzdump-qemu-100-2025_01_14-01_00_00.vma.zst", 1, true), err)
    rc, _, err = run("get", dir, "/etc/app.conf", out .. "2")
    assert.equal(0, rc, err)
    assert.equal("threads = 8\nbroken = yes\n", H.read(out .. "2/app.conf"))
    rc, _, err = run("get", dir, "--backup", "vzdump-qemu-100-2025_01_11-01_00_00.vma.zst",
      "/etc/app.conf", "/home/u/a.txt", out .. "3")
    assert.equal(0, rc, err)
    assert.equal("threads = 4\n", H.read(out .. "3/app.conf"))
    assert.equal("a note\n", H.read(out .. "3/a.txt"))
    rc, _, err = run("get", dir, "--vmid", "100", "--version", "4", "/etc/app.conf", out .. "4")
    assert.equal(1, rc)
    assert.truthy(err:find("3 versions", 1, true), err)
    assert.is_false(H.exists(out .. "4"))
  end)

  local function expected_changes(fa, fb)
    local a, b = expected(fa), expected(fb)
    local out = {}
    for p, e in pairs(b) do
      local o = a[p]
      if not o then
        out[p] = { "added" }
      else
        local what = {}
        if o.type ~= e.type then what[#what + 1] = "type" end
        if o.size ~= e.size then what[#what + 1] = "size" end
        if (o.hash or "") ~= (e.hash or "") then what[#what + 1] = "content" end
        if o.mtime ~= e.mtime then what[#what + 1] = "mtime" end
        if o.mode ~= e.mode then what[#what + 1] = "mode" end
        if (o.target or "") ~= (e.target or "") then what[#what + 1] = "target" end
        if #what > 0 then out[p] = { "changed", what } end
      end
    end
    for p in pairs(a) do if not b[p] then out[p] = { "removed" } end end
    return out
  end

  it("vma diff --files: the files added, removed and changed, from the catalog or read", function()
    if not need_guest() then return end
    local plain = root .. "/nocat"
    assert(os.execute("mkdir -p " .. q(plain) .. " && cp " .. q(dir) .. "/vzdump-qemu-10[01]-* " .. q(plain)))
    local pairs_ = {
      { "vzdump-qemu-100-2025_01_11-01_00_00.vma.zst", "vzdump-qemu-100-2025_01_12-01_00_00.vma.lzo" },
      { "vzdump-qemu-100-2025_01_12-01_00_00.vma.lzo", "vzdump-qemu-100-2025_01_14-01_00_00.vma.zst" },
      { "vzdump-qemu-101-2025_01_12-01_00_00.vma", "vzdump-qemu-101-2025_01_13-01_00_00.vma" },
    }
    for _, p in ipairs(pairs_) do
      local want = expected_changes(S.archives[p[1]], S.archives[p[2]])
      for _, where in ipairs({ { dir, "catalog" }, { plain, "read" } }) do
        local rc, obj = run_json("diff", "--json", "--files", where[1] .. "/" .. p[1], where[1] .. "/" .. p[2])
        assert.equal(0, rc)
        assert.equal(where[2], obj.files_from)
        local got = {}
        for _, c in ipairs(obj.files) do
          got[c.path] = c.change == "changed" and { c.change, c.what } or { c.change }
        end
        -- the mount point of /data is the same either way
        got["/data"] = nil
        assert.same(want, got, p[1] .. " " .. where[2])
      end
    end
  end)

  it("a catalog with file lists rebuilt after a killed run holds the same", function()
    if not need_guest() then return end
    local whole, part = root .. "/whole.sqlite", root .. "/part.sqlite"
    assert.equal(0, (run("catalog", "-q", "--files", "--verify", "--db", whole, dir)))
    local pid = assert(vma.os.spawn({ H.bin, "catalog", "-q", "--files", "--verify", "--db", part, dir },
      { stdout = "/dev/null", stderr = "/dev/null" }))
    for _ = 1, 4000 do
      if H.exists(part) then
        local _, out = H.sh("sqlite3 -batch " .. q(part) .. " 'SELECT count(*) FROM archives' 2>/dev/null")
        if (tonumber(out:match("%d+")) or 0) >= 1 then break end
      end
      vma.os.sleep(0.005)
    end
    vma.os.kill(pid, "KILL")
    vma.os.wait(pid)
    local _, out = H.sh("sqlite3 -batch " .. q(part) .. " 'SELECT count(*) FROM archives'")
    local left = tonumber(out:match("%d+"))
    assert.is_true(left >= 1 and left < 14, "killed with " .. tostring(left) .. " archives in")
    assert.equal(0, (run("catalog", "-q", "--files", "--verify", "--db", part, dir)))
    local function files_dump(db)
      local _, o = H.sh("sqlite3 -batch " .. q(db) .. " \"SELECT a.path, p.path, v.type, v.size, "
        .. "v.mode, v.mtime, v.hash, v.target FROM files f JOIN archives a ON a.id = f.archive_id "
        .. "JOIN versions v ON v.id = f.version_id JOIN paths p ON p.id = v.path_id ORDER BY "
        .. "a.path, p.path\"")
      return o
    end
    assert.equal(files_dump(whole), files_dump(part))
    assert.truthy(#files_dump(whole) > 1000)
  end)

  it("a retention policy keeps every backup in which a file changed", function()
    if not need_guest() then return end
    local policy = H.root .. "/examples/policy-keep-file-changes.lua"
    local rc, out, err = run("prune", "--dry-run", "--json", "--vmid", "100", "--policy", policy,
      "--file", "/etc/app.conf", "--keep-last", "1", dir)
    assert.equal(0, rc, err)
    local list = json.decode(out)
    local marks = {}
    for _, b in ipairs(list) do marks[b.file:match("2025_01_(%d%d)")] = b.mark .. " " .. (b.reason or "") end
    assert.same({
      ["16"] = "keep keep-last #1",
      ["15"] = "keep changed: /etc/app.conf",
      ["14"] = "remove not kept by any rule",
      ["12"] = "keep changed: /etc/app.conf",
      ["11"] = "remove not kept by any rule",
      ["10"] = "keep changed: /etc/app.conf",
    }, marks)
    -- without --file it says what it needs
    rc, _, err = run("prune", "--dry-run", "--policy", policy, dir)
    assert.equal(2, rc)
    assert.truthy(err:find("--file", 1, true), err)
  end)
end)
