-- Nothing lost, nothing half-done: full disks, kills and interrupts leave no
-- file under a final name and remove partial output.
local H = require "helper"

local function wait_for(pred, secs)
  for _ = 1, (secs or 10) * 20 do
    if pred() then return true end
    os.execute("sleep 0.05")
  end
  return false
end

local function tmp_files(dir)
  local n = 0
  for _, f in ipairs(H.ls(dir) or {}) do
    if f:match("%.tmp%-") or f:match("^tmp%-") then n = n + 1 end
  end
  return n
end

-- start a command in the background; returns its pid
local function spawn(cmd, log)
  local p = io.popen(cmd .. " >" .. H.q(log) .. " 2>&1 & echo $!")
  local pid = tonumber(p:read("l"))
  p:close()
  return pid
end

local function wait_pid(pid)
  -- the command's exit status, through a status file written by the wrapper
  return wait_for(function() return os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true end, 30)
end

describe("full disk (ENOSPC)", function()
  local dir, mnt
  before_each(function()
    dir = H.tmpdir()
    mnt = dir .. "/small"
    os.execute("mkdir " .. H.q(mnt))
  end)
  after_each(function()
    os.execute("umount " .. H.q(mnt) .. " 2>/dev/null")
    H.rm(dir)
  end)

  local function mount_small()
    return H.sh("mount -t tmpfs -o size=1m tmpfs " .. H.q(mnt)) == 0
  end

  it("create onto a full tmpfs fails with a message and leaves nothing", function()
    if not mount_small() then pending("cannot mount a tmpfs here (not root?)") return end
    H.random_file(dir .. "/img.raw", 3 * 1048576)
    local rc, _, err = H.vma("create", mnt .. "/full.vma", dir .. "/img.raw")
    assert.are.equal(1, rc)
    assert.matches("^vma create: .*No space left on device", err)
    assert.are.same({}, H.ls(mnt))
  end)

  it("extract onto a full tmpfs fails with a message and removes its folder", function()
    if not mount_small() then pending("cannot mount a tmpfs here (not root?)") return end
    H.random_file(dir .. "/img.raw", 3 * 1048576)
    assert.are.equal(0, (H.vma("create", dir .. "/a.vma", dir .. "/img.raw")))
    local rc, _, err = H.vma("extract", dir .. "/a.vma", mnt .. "/x")
    assert.are.equal(1, rc)
    assert.matches("No space left on device", err)
    assert.are.same({}, H.ls(mnt))
  end)
end)

describe("kills and interrupts", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm(dir) end)

  it("a create killed with SIGKILL leaves no archive under the final name", function()
    H.random_file(dir .. "/img.raw", 48 * 1048576)
    -- gzip -9 of random data is slow enough to be killed in the middle
    local pid = spawn(H.q(H.bin) .. " create --compress gzip --level 9 " .. H.q(dir .. "/k.vma.gz")
      .. " " .. H.q(dir .. "/img.raw"), dir .. "/log")
    assert.is_true(wait_for(function() return tmp_files(dir) > 0 end), "no temporary file appeared")
    os.execute("sleep 0.3")
    os.execute("kill -9 " .. pid)
    wait_pid(pid)
    assert.is_false(H.exists(dir .. "/k.vma.gz"))
  end)

  for _, sig in ipairs { "INT", "TERM" } do
    it("a create stopped with SIG" .. sig .. " removes its temporary file and exits 1", function()
      H.random_file(dir .. "/img.raw", 48 * 1048576)
      local pid = spawn("sh -c " .. H.q(H.q(H.bin) .. " create --compress gzip --level 9 "
        .. H.q(dir .. "/k.vma.gz") .. " " .. H.q(dir .. "/img.raw") .. "; echo rc=$?"), dir .. "/log")
      assert.is_true(wait_for(function() return tmp_files(dir) > 0 end))
      os.execute("sleep 0.3")
      os.execute("pkill -" .. sig .. " -f 'create --compress gzip --level 9 " .. dir .. "'")
      wait_pid(pid)
      local log = H.read(dir .. "/log")
      assert.matches("interrupted", log)
      assert.matches("rc=1", log)
      assert.is_false(H.exists(dir .. "/k.vma.gz"))
      assert.are.equal(0, tmp_files(dir))
    end)
  end

  it("an extract stopped with SIGINT removes what it wrote and exits 1", function()
    H.random_file(dir .. "/img.raw", 8 * 1048576)
    assert.are.equal(0, (H.vma("create", dir .. "/a.vma", "drive-scsi0=" .. dir .. "/img.raw")))
    -- a throttled restore-map target makes the extract slow (about 8 s)
    H.write(dir .. "/map", "throttling.bps=1000000:0:drive-scsi0=" .. dir .. "/target.raw\ndone\n")
    local pid = spawn("sh -c " .. H.q(H.q(H.bin) .. " extract -r " .. H.q(dir .. "/map") .. " "
      .. H.q(dir .. "/a.vma") .. " " .. H.q(dir .. "/x") .. "; echo rc=$?"), dir .. "/log")
    -- the new target is written under a temporary name beside it
    assert.is_true(wait_for(function()
      for _, f in ipairs(H.ls(dir) or {}) do
        if f:match("^%.tmp%-vma%-") then return true end
      end
      return false
    end))
    assert.is_false(H.exists(dir .. "/target.raw"))
    os.execute("sleep 0.5")
    os.execute("pkill -INT -f 'extract -r " .. dir .. "'")
    wait_pid(pid)
    local log = H.read(dir .. "/log")
    assert.matches("vma extract: .*interrupted", log)
    assert.matches("rc=1", log)
    assert.is_false(H.exists(dir .. "/x"))
    assert.is_false(H.exists(dir .. "/target.raw"))
    assert.are.equal(0, tmp_files(dir)) -- it created it: it removes it
  end)

  it("an extract from a stalled pipe stops at SIGINT", function()
    H.random_file(dir .. "/img.raw", 2 * 1048576)
    assert.are.equal(0, (H.vma("create", dir .. "/a.vma", dir .. "/img.raw")))
    local pid = spawn("sh -c " .. H.q("(head -c 100000 " .. H.q(dir .. "/a.vma") .. "; sleep 30) | "
      .. H.q(H.bin) .. " extract - " .. H.q(dir .. "/x") .. "; echo rc=$?"), dir .. "/log")
    assert.is_true(wait_for(function() return H.exists(dir .. "/x") end))
    os.execute("sleep 0.3")
    os.execute("pkill -INT -f 'extract - " .. dir .. "'")
    -- vma stops at once; the shell pipeline still waits for its writer
    assert.is_true(wait_for(function() return (H.read(dir .. "/log") or ""):match("interrupted") ~= nil end, 5),
      H.read(dir .. "/log"))
    os.execute("pkill -f '^sleep 30$' 2>/dev/null")
    assert.is_true(wait_for(function() return (H.read(dir .. "/log") or ""):match("rc=") ~= nil end, 5))
    assert.matches("rc=1", H.read(dir .. "/log"))
    assert.is_false(H.exists(dir .. "/x"))
    wait_pid(pid)
  end)
end)
