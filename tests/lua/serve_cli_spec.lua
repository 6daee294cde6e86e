-- vma serve: the disks of an archive over NBD through nbdkit and our plugin,
-- checked with nbdinfo, nbdcopy and qemu-img on archives made at check time
-- (ext4 from mke2fs -d, thin, half zero; plain and seekable zstd) and on
-- Proxmox's own; hostile archives end with exit 1 and leave nothing behind.
local H = require "helper"
local A = require "accesshelp"

local NEED = { "nbdkit", "nbdinfo", "nbdcopy" }

describe("vma serve", function()
  local dir, fx, pve, bad

  setup(function()
    dir = H.tmpdir()
    fx = A.fixture(dir)
    pve = A.proxmox(dir)
    bad = A.hostile(dir)
  end)

  teardown(function()
    A.cleanup(dir)
    H.rm(dir)
  end)

  after_each(function() A.cleanup(dir) end)

  -- serve archive (extra words after it), wait for the JSON; returns it and
  -- the handle
  local function serve(archive, ...)
    local b = A.start(dir, "serve", "--json", archive, ...)
    local out, err = A.wait_output(b, "}\n")
    assert(out, "vma serve did not become ready: " .. tostring(err))
    return A.json(out), b
  end

  local function export_names(uri)
    local out = A.sh_ok("nbdinfo --list --json " .. H.q(uri))
    local names = {}
    for _, e in ipairs(A.json(out).exports) do names[#names + 1] = e["export-name"] end
    table.sort(names)
    return names
  end

  local function sorted(t)
    local c = table.move(t, 1, #t, 1, {})
    table.sort(c)
    return c
  end

  local function archives()
    local list = { { "plain", fx.plain, fx.disks, fx.names } }
    if fx.zst then list[#list + 1] = { "seekable zst", fx.zst, fx.disks, fx.names } end
    for _, c in ipairs { "a-two-drives", "c-empty-config", "e-vmstate" } do
      list[#list + 1] = { "Proxmox " .. c, pve[c].archive, pve[c].disks, pve[c].names }
    end
    return list
  end

  it("nbdinfo --list shows one export per disk, nbdcopy of each equals the disk", function()
    if not A.need(table.unpack(NEED)) then return end
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
    for _, c in ipairs(archives()) do
      local label, archive, disks, names = table.unpack(c)
      local j, b = serve(archive)
      assert.are.same(sorted(names), export_names(j.uris[1]), label)
      assert.are.equal(#names, #j.exports, label)
      for _, e in ipairs(j.exports) do
        assert.is_truthy(e.uri:match("^nbd%+unix:///" .. e.name:gsub("%-", "%%-") .. "%?socket=/"), e.uri)
        local out = dir .. "/copy.raw"
        os.remove(out)
        A.sh_ok("nbdcopy " .. H.q(e.uri) .. " " .. H.q(out))
        local same, why = A.same(disks[e.name], out)
        assert.is_true(same, label .. " " .. e.name .. ": " .. why)
        os.remove(out)
      end
      assert.are.equal(0, A.stop(b), label)
    end
  end)

  it("qemu-img convert of each export to qcow2 compares equal with the raw image", function()
    if not A.need("nbdkit", "qemu-img") then return end
    local list = { { fx.plain, fx.disks } }
    if not fx.zst then pending("needs zstd for the seekable .vma.zst (not installed)") end
    if fx.zst then list[2] = { fx.zst, fx.disks } end
    list[#list + 1] = { pve["a-two-drives"].archive, pve["a-two-drives"].disks }
    for _, c in ipairs(list) do
      local j, b = serve(c[1])
      for _, e in ipairs(j.exports) do
        local q = dir .. "/x.qcow2"
        os.remove(q)
        A.sh_ok("qemu-img convert -f raw -O qcow2 " .. H.q(e.uri) .. " " .. H.q(q))
        local out = A.sh_ok("qemu-img compare -f qcow2 -F raw " .. H.q(q) .. " " .. H.q(c[2][e.name]))
        assert.matches("identical", out)
        os.remove(q)
      end
      assert.are.equal(0, A.stop(b))
    end
  end)

  it("block status reports the holes of a thin disk (and nbdcopy keeps them)", function()
    if not A.need(table.unpack(NEED)) then return end
    local j, b = serve(fx.plain, "--disk", "virtio1")
    assert.are.equal(1, #j.uris)
    assert.matches("/drive%-virtio1%?", j.uris[1])
    local out = A.sh_ok("nbdinfo --map --totals " .. H.q(j.uris[1]))
    -- type 3 (hole, zero): all but the few hundred KiB of data
    local zero = tonumber(out:match("(%d+)%s+[%d.]+%%%s+3%s+hole,zero"))
    assert.is_truthy(zero, out)
    assert.is_true(zero > 250 * A.MiB, out)
    local copy = dir .. "/thin-copy.raw"
    A.sh_ok("nbdcopy " .. H.q(j.uris[1]) .. " " .. H.q(copy))
    assert.is_true(A.same(copy, fx.disks["drive-virtio1"]))
    local _, du = H.sh("du -k " .. H.q(copy))
    assert.is_true(tonumber(du:match("^%d+")) < 2048, "the copy is not sparse: " .. du)
    assert.are.equal(0, A.stop(b))
  end)

  it("the default export is the first disk, or the one given with --disk", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    local j, b = serve(fx.plain, "--disk", "sata0")
    local sock = j.socket
    local out = A.sh_ok("nbdinfo --json " .. H.q("nbd+unix:///?socket=" .. sock))
    assert.are.equal("drive-sata0", A.json(out).exports[1]["export-name"])
    assert.are.equal(0, A.stop(b))
    j, b = serve(fx.plain)
    out = A.sh_ok("nbdinfo --json " .. H.q("nbd+unix:///?socket=" .. j.socket))
    assert.are.equal("drive-scsi0", A.json(out).exports[1]["export-name"])
    -- an export that is not there: the client is refused
    local rc = H.sh("nbdinfo " .. H.q("nbd+unix:///nope?socket=" .. j.socket))
    assert.are_not.equal(0, rc)
    assert.are.equal(0, A.stop(b))
  end)

  it("prints plain URIs, serves until SIGTERM or SIGINT, then exits 0 and removes its folder", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    for _, sig in ipairs { "TERM", "INT" } do
      local b = A.start(dir, "serve", fx.plain)
      local out = assert(A.wait_output(b, "drive%-sata0[^\n]*\n"))
      local sock = out:match("socket=(%S+)")
      assert.is_truthy(sock)
      assert.matches("^drive%-scsi0%s+nbd%+unix:///drive%-scsi0%?socket=", out)
      local folder = sock:match("^(.*)/[^/]+$")
      assert.is_true(H.exists(folder))
      local _, mode = H.sh("stat -c %a " .. H.q(folder))
      assert.are.equal("700\n", mode)
      A.sh_ok("nbdinfo " .. H.q("nbd+unix:///drive-virtio1?socket=" .. sock) .. " >/dev/null")
      assert.are.equal(0, A.stop(b, sig))
      assert.is_false(H.exists(folder))
      assert.are.equal("", A.nbdkit_for(fx.plain))
    end
  end)

  it("--socket PATH listens there and never replaces a file", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    local sock = dir .. "/my.sock"
    local j, b = serve(fx.plain, "--socket", sock)
    assert.are.equal(sock, j.socket)
    A.sh_ok("nbdinfo " .. H.q(j.uris[2]) .. " >/dev/null")
    assert.are.equal(0, A.stop(b))
    H.write(dir .. "/taken", "x")
    local rc, _, err = H.vma("serve", fx.plain, "--socket", dir .. "/taken")
    assert.are.equal(1, rc)
    assert.matches("already exists", err)
    assert.are.equal("x", H.read(dir .. "/taken"))
  end)

  it("--socket PATH: the socket is removed when serve ends on SIGTERM, and PATH serves again", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    local sock = dir .. "/again.sock"
    for round = 1, 2 do
      local j, b = serve(fx.plain, "--socket", sock)
      assert.are.equal(sock, j.socket, "round " .. round)
      A.sh_ok("nbdinfo " .. H.q(j.uris[1]) .. " >/dev/null")
      assert.are.equal(0, A.stop(b, "TERM"))
      assert.is_false(H.exists(sock), "round " .. round .. ": the socket is left")
      assert.are.equal("", H.read(b.err))
    end
  end)

  it("prints the nbd:///EXPORT?socket= form of each URI too (libguestfs 1.48 takes only it)", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    local sock = dir .. "/legacy.sock"
    local j, b = serve(fx.plain, "--socket", sock)
    assert.are.equal(#j.uris, #j.legacy_uris)
    for i, e in ipairs(j.exports) do
      local want = "nbd:///" .. e.name .. "?socket=" .. sock
      assert.are.equal(want, e.legacy_uri)
      assert.are.equal(want, j.legacy_uris[i])
      assert.are.equal("nbd+unix:///" .. e.name .. "?socket=" .. sock, e.uri)
    end
    if A.have("guestfish") then
      -- guestfish adds the drive through qemu-img, which opens the export
      local rc, _, err = H.sh("guestfish --ro --format=raw -a " .. H.q(j.exports[2].legacy_uri) .. " exit")
      assert.are.equal(0, rc, err)
    end
    assert.are.equal(0, A.stop(b))
    -- the text: name, URI, the nbd:/// form
    local t = A.start(dir, "serve", fx.plain, "--socket", sock)
    local out = assert(A.wait_output(t, "drive%-sata0[^\n]*\n"))
    assert.are.equal("drive-scsi0    nbd+unix:///drive-scsi0?socket=" .. sock .. "  nbd:///drive-scsi0?socket=" .. sock .. "\n"
      .. "drive-virtio1  nbd+unix:///drive-virtio1?socket=" .. sock .. "  nbd:///drive-virtio1?socket=" .. sock .. "\n"
      .. "drive-sata0    nbd+unix:///drive-sata0?socket=" .. sock .. "  nbd:///drive-sata0?socket=" .. sock .. "\n", out)
    assert.are.equal(0, A.stop(t))
    assert.is_false(H.exists(sock))
  end)

  it("a device name of 150 bytes is served, and nothing is left after it", function()
    if not A.need("nbdkit", "nbdcopy") then return end
    local name = string.rep("d", 150)
    local img = dir .. "/long.img"
    H.random_file(img, A.MiB)
    local arc = dir .. "/long.vma"
    assert.are.equal(0, (H.vma("create", "-q", arc, name .. "=" .. img)))
    local sock = dir .. "/long.sock"
    local b = A.start(dir, "serve", arc, "--socket", sock)
    local out, werr = A.wait_output(b, "\n")
    assert(out, werr)
    assert.are.equal(name .. "  nbd+unix:///" .. name .. "?socket=" .. sock .. "  nbd:///" .. name
      .. "?socket=" .. sock .. "\n", out)
    A.sh_ok("nbdcopy " .. H.q("nbd+unix:///" .. name .. "?socket=" .. sock) .. " " .. H.q(dir .. "/long.copy"))
    assert.is_true(A.same(dir .. "/long.copy", img))
    os.remove(dir .. "/long.copy")
    assert.are.equal(0, A.stop(b))
    assert.is_false(H.exists(sock))
    assert.are.equal("", A.nbdkit_for(arc))
  end)

  it("nbdkit ending under it: exit 1, and its socket and folder are removed", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    for _, with_socket in ipairs { true, false } do
      local sock = with_socket and dir .. "/dies.sock" or nil
      local j, b
      if sock then j, b = serve(fx.plain, "--socket", sock) else j, b = serve(fx.plain) end
      assert.is_true(H.exists(j.socket))
      os.execute("kill -KILL " .. j.pid)
      assert.are.equal(1, A.status(b, 15))
      assert.matches("^vma serve: nbdkit ended %(killed by signal 9%)\n$", H.read(b.err))
      assert.is_false(H.exists(j.socket))
      if not sock then assert.is_false(H.exists(j.socket:match("^(.*)/[^/]+$"))) end
    end
  end)

  it("--port listens on 127.0.0.1 only, unless --listen says otherwise", function()
    if not A.need("nbdkit", "nbdinfo", "ss") then return end
    local port = 20000 + (os.time() * 7 + math.random(0, 9999)) % 30000
    local j, b = serve(fx.plain, "--port", tostring(port))
    assert.are.equal("nbd://127.0.0.1:" .. port .. "/drive-scsi0", j.uris[1])
    local _, ss = H.sh("ss -ltnH 'sport = :" .. port .. "'")
    assert.matches("127%.0%.0%.1:" .. port, ss)
    assert.is_falsy(ss:match("0%.0%.0%.0:" .. port) or ss:match("%*:" .. port))
    A.sh_ok("nbdinfo " .. H.q(j.uris[3]) .. " >/dev/null")
    assert.are.equal(0, A.stop(b))
  end)

  it("--listen 0.0.0.0 warns that NBD has no authentication and prints a reachable address", function()
    if not A.need("nbdkit", "nbdinfo") then return end
    local v4
    for _, a in ipairs(require("vma").os.addresses()) do
      if a.family == "inet" then v4 = v4 or a.address end
    end
    if not v4 then pending("this host has no IPv4 address but the loopback") return end
    local port = 20000 + (os.time() * 13 + math.random(0, 9999)) % 30000
    local j, b = serve(fx.plain, "--port", tostring(port), "--listen", "0.0.0.0")
    assert.are.equal("nbd://" .. v4 .. ":" .. port .. "/drive-scsi0", j.uris[1])
    assert.are.equal(j.uris[1], j.legacy_uris[1])
    assert.are.equal("0.0.0.0", j.address)
    assert.are.equal(v4, j.host)
    A.sh_ok("nbdinfo " .. H.q(j.uris[2]) .. " >/dev/null")
    assert.are.equal(0, A.stop(b))
    assert.are.equal("vma serve: warning: listening on every interface (0.0.0.0): NBD has no "
      .. "password and no encryption, so anyone who can reach port " .. port .. " of this host "
      .. "can read these disks\n", H.read(b.err))
  end)

  it("usage errors exit 2", function()
    local rc, _, err = H.vma("serve", fx.plain, "--socket", dir .. "/s", "--port", "5000")
    assert.are.equal(2, rc)
    assert.matches("^vma serve: ", err)
    rc = H.vma("serve", fx.plain, "--port", "70000")
    assert.are.equal(2, rc)
    rc = H.vma("serve")
    assert.are.equal(2, rc)
  end)

  it("a missing cluster is data in block status and fails to read with EIO", function()
    if not A.need(table.unpack(NEED)) then return end
    local p = A.incomplete(dir)
    local j, b = serve(p)
    local out = A.sh_ok("nbdinfo --map " .. H.q(j.uris[1]))
    assert.is_falsy(out:match("65536%s+65536%s+3"), out) -- never a hole
    local rc, _, err = H.sh("nbdcopy " .. H.q(j.uris[1]) .. " " .. H.q(dir .. "/inc.raw"))
    assert.are_not.equal(0, rc)
    assert.matches("[Ii]nput/output error", err)
    assert.are.equal(0, A.stop(b))
    os.remove(dir .. "/inc.raw")
  end)

  it("hostile, non-seekable and disk-less archives: exit 1, a message, nothing left", function()
    if not A.need("nbdkit") then return end
    local cases = {}
    for name, h in pairs(bad) do cases[#cases + 1] = { name, h.path, h.expect } end
    cases[#cases + 1] = { "config only", A.PVE .. "/d-config-only/d-config-only.vma", "no disk" }
    cases[#cases + 1] = { "not there", dir .. "/nothing.vma", "No such file" }
    local _, before = H.sh("ls -d /tmp/vma-serve.* 2>/dev/null | sort")
    for _, c in ipairs(cases) do
      local rc, out, err = H.vma("serve", c[2])
      assert.are.equal(1, rc, c[1] .. ": " .. err)
      assert.are.equal("", out, c[1])
      assert.is_truthy(err:match("^vma serve: [^\n]+\n$"), c[1] .. ": " .. err)
      assert.is_truthy(err:find(c[3], 1, true), c[1] .. ": expected '" .. c[3] .. "' in " .. err)
      assert.are.equal("", A.nbdkit_for(c[2]), c[1])
    end
    local _, after = H.sh("ls -d /tmp/vma-serve.* 2>/dev/null | sort")
    assert.are.equal(before, after)
    assert.is_false(H.exists(dir .. "/core"))
  end)

  it("nbdkit vma itself refuses a hostile archive with exit 1", function()
    if not A.need("nbdkit") then return end
    local plugin = A.root .. "/build/nbdkit-vma-plugin.so"
    for name, h in pairs(bad) do
      local rc, _, err = H.sh("nbdkit -U - -r " .. H.q(plugin) .. " " .. H.q(h.path) .. " --run true")
      assert.are.equal(1, rc, name .. ": " .. err)
      assert.is_truthy(err:find(h.expect, 1, true), name .. ": " .. err)
    end
  end)
end)
