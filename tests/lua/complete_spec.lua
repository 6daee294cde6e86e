-- The shell completion: `vma --complete CWORD WORDS...` (lua/vma/complete.lua)
-- and completions/vma.bash, which asks it. The commands, targets and policies
-- come from their folders and the options from each command's parser, so
-- the expectations here are read from the same places (the folders, `vma help
-- NAME`), never from a list; a command of one's own completes like a bundled one.
local H = require "helper"
local lfs = require "lfs"

local ROOT = H.root
local FIX = H.fixtures .. "/proxmox"
local A2 = FIX .. "/a-two-drives/a-two-drives.vma"   -- drive-scsi0, drive-virtio1
local EV = FIX .. "/e-vmstate/e-vmstate.vma"         -- drive-scsi0 and the RAM state

local function lua_files(dir)
  local t = {}
  for f in lfs.dir(dir) do
    local n = f:match("^([%w][%w_%-%.]*)%.lua$")
    if n then t[#t + 1] = n end
  end
  table.sort(t)
  return t
end

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

describe("completion", function()
  local dir, env

  setup(function()
    dir = H.tmpdir()
    -- no user folders but the ones a test makes
    env = "env -u VMA_COMMANDS_PATH -u VMA_TARGETS_PATH -u VMA_POLICIES_PATH XDG_CONFIG_HOME="
      .. H.q(dir .. "/config") .. " "
  end)
  teardown(function() H.rm(dir) end)

  -- the words offered for the last of words (vma first), or the one at
  -- index cword (vma: 0), the protocol line checked
  local function complete(words, extra_env, cword)
    local w = {}
    for i, x in ipairs(words) do w[i] = H.q(x) end
    local rc, out, err = H.sh(env .. (extra_env or "") .. " " .. H.q(H.bin) .. " --complete "
      .. (cword or #words - 1) .. " " .. table.concat(w, " "))
    assert.equal(0, rc, err)
    local lines = {}
    for l in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
    assert.equal("vma-complete 1", table.remove(lines, 1))
    return lines
  end

  it("offers the commands of the command folder after vma and vma help", function()
    local want = lua_files(ROOT .. "/lua/vma/commands")
    assert.same(want, sorted(complete({ "vma", "" })))
    assert.same(want, sorted(complete({ "vma", "help", "" })))
    local c = complete({ "vma", "c" })
    for _, n in ipairs(c) do assert.equal("c", n:sub(1, 1)) end
    assert.is_true(#c >= 1)
    assert.same({ "--help", "--version" }, sorted(complete({ "vma", "--" })))
  end)

  it("offers every option of every command, as its help names them", function()
    local opts = require "vma.options"
    for _, name in ipairs(lua_files(ROOT .. "/lua/vma/commands")) do
      local rc, help = H.vma("help", name)
      assert.equal(0, rc)
      local want = {}
      for _, n in ipairs(opts.names(opts.from_usage(help))) do
        if n ~= "-h" and n ~= "--help" then want[#want + 1] = n end
      end
      local got = {}
      for _, n in ipairs(complete({ "vma", name, "-" })) do
        if n ~= "-h" and n ~= "--help" then got[#got + 1] = n end
      end
      assert.same(sorted(want), sorted(got))
      -- and only the long ones after --
      for _, n in ipairs(complete({ "vma", name, "--" })) do assert.equal("--", n:sub(1, 2)) end
    end
  end)

  it("offers the values --compress takes, as vma help create lists them", function()
    local _, help = H.vma("help", "create")
    local list = help:match("%-%-compress {([^}]*)}")
    local want = {}
    for v in list:gmatch("[^,]+") do want[#want + 1] = v end
    assert.same(sorted(want), sorted(complete({ "vma", "create", "x.vma", "--compress", "" })))
    assert.same(sorted(want), sorted(complete({ "vma", "recompress", "--compress", "" })))
    assert.same({ "gz", "gzip" }, sorted(complete({ "vma", "create", "--compress=g" })))
  end)

  it("offers the formats of convert -O, each named by its help", function()
    local _, help = H.vma("help", "convert")
    local got = complete({ "vma", "convert", A2, "out", "-O", "" })
    assert.is_true(#got >= 6)
    for _, f in ipairs(got) do assert.truthy(help:find(f, 1, true), f) end
    assert.same(got, complete({ "vma", "convert", A2, "out", "--format", "" }))
    assert.same({ "vdi", "vhdx", "vmdk", "vpc" }, sorted(complete({ "vma", "convert", "-O", "v" })))
  end)

  it("offers the targets of the target folders, a user's too, then folders after dir:", function()
    local want = {}
    for _, n in ipairs(lua_files(ROOT .. "/lua/vma/targets")) do want[#want + 1] = n .. ":" end
    assert.same(want, sorted(complete({ "vma", "extract", A2, "out", "--target", "" })))
    assert.same(want, sorted(complete({ "vma", "restore-map", A2, "-t", "" })))
    os.execute("mkdir -p " .. H.q(dir .. "/targets") .. " " .. H.q(dir .. "/tree/sub1") .. " "
      .. H.q(dir .. "/tree/sub2") .. " " .. H.q(dir .. "/tree/other"))
    H.write(dir .. "/targets/krbd.lua", "return function() return {} end\n")
    H.write(dir .. "/tree/subfile", "")
    local got = complete({ "vma", "extract", "--target", "k" }, "VMA_TARGETS_PATH=" .. H.q(dir .. "/targets"))
    assert.same({ "krbd:" }, got)
    assert.same({ "dir:" .. dir .. "/tree/sub1/", "dir:" .. dir .. "/tree/sub2/" },
      sorted(complete({ "vma", "extract", "--target", "dir:" .. dir .. "/tree/s" })))
  end)

  it("offers the values an argument takes (vma cache's actions), as its help lists them", function()
    local _, help = H.vma("help", "cache")
    local list = help:match("{([%w,]+)}")
    assert.is_string(list, "vma help cache lists no actions")
    local want = {}
    for v in list:gmatch("[^,]+") do want[#want + 1] = v end
    assert.same(sorted(want), sorted(complete({ "vma", "cache", "" })))
    assert.same({ "@files" }, complete({ "vma", "cache", "add", "" }))
  end)

  it("offers the policies of the policy folders after prune --policy", function()
    local want = lua_files(ROOT .. "/lua/vma/policies")
    assert.same(want, sorted(complete({ "vma", "prune", "--policy", "" })))
  end)

  it("offers the disks of the archive on the line, before or after the option", function()
    assert.same({ "scsi0", "virtio1" }, sorted(complete({ "vma", "serve", A2, "--disk", "" })))
    assert.same({ "scsi0", "virtio1" }, sorted(complete({ "vma", "convert", "--disk", "", A2 }, nil, 3)))
    assert.same({ "scsi0", "virtio1" },
      sorted(complete({ "vma", "convert", A2, "x.qcow2", "--disk=" })))
    assert.same({ "virtio1" }, complete({ "vma", "serve", A2, "--disk", "v" }))
    -- extract -d takes a list: the next item, not one given already
    assert.same({ "scsi0,virtio1" }, complete({ "vma", "extract", A2, "out", "-d", "scsi0," }))
    -- vma cat ARCHIVE DISK: the RAM state too; --disk never offers it
    assert.same({ "scsi0", "vmstate" }, sorted(complete({ "vma", "cat", EV, "" })))
    assert.same({ "scsi0" }, complete({ "vma", "serve", EV, "--disk", "" }))
    -- the configs of vma config -c
    assert.same({ "qemu-server.conf", "qemu-server.fw" },
      sorted(complete({ "vma", "config", A2, "-c", "" })))
  end)

  it("offers no disk without a readable archive on the line, and does not fail", function()
    assert.same({}, complete({ "vma", "serve", "--disk", "" }))
    assert.same({}, complete({ "vma", "serve", dir .. "/missing.vma", "--disk", "" }))
    H.write(dir .. "/junk.vma", string.rep("\255", 5000))
    assert.same({}, complete({ "vma", "cat", dir .. "/junk.vma", "" }))
  end)

  it("asks the shell for file names where a command takes a file", function()
    assert.same({ "@files" }, complete({ "vma", "list", "" }))
    assert.same({ "@files" }, complete({ "vma", "create", "x.vma", "-c", "" }))
    assert.same({ "@dirs" }, complete({ "vma", "mount", A2, "" }))
    assert.same({}, complete({ "vma", "list", A2, "" }))
  end)

  it("completes a command of one's own, its options and their values", function()
    os.execute("mkdir -p " .. H.q(dir .. "/cmds"))
    H.write(dir .. "/cmds/frob.lua", [[
local argparse = require "argparse"
local function parser()
  local p = argparse("vma frob", "frobnicate")
  p:argument("archive", "an archive")
  p:option("--speed", "how fast"):choices({ "slow", "fast" })
  p:option("--disk", "a disk")
  p:flag("-n --dry-run", "nothing")
  return p
end
return { description = "frobnicate an archive", usage = parser():get_help(),
         run = function() return 0 end }
]])
    local e = "VMA_COMMANDS_PATH=" .. H.q(dir .. "/cmds")
    assert.same({ "frob" }, complete({ "vma", "fr" }, e))
    assert.same({ "--disk", "--dry-run", "--speed", "-n" }, sorted(complete({ "vma", "frob", "-" }, e)))
    assert.same({ "fast", "slow" }, sorted(complete({ "vma", "frob", "--speed", "" }, e)))
    assert.same({ "scsi0", "virtio1" }, sorted(complete({ "vma", "frob", A2, "--disk", "" }, e)))
  end)

  describe("completions/vma.bash", function()
    local bin

    setup(function()
      bin = dir .. "/bin"
      os.execute("mkdir -p " .. H.q(bin) .. " && ln -sf " .. H.q(H.bin) .. " " .. H.q(bin .. "/vma"))
    end)

    -- COMPREPLY for a command line (the cursor at its end), in bash, with
    -- bash-completion loaded or not
    local function bash(line, with_bc, path)
      local script = (with_bc and ". /usr/share/bash-completion/bash_completion\n" or "") .. [=[
. "$VMA_ROOT/completions/vma.bash"
COMP_LINE=$1
COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_vma
printf '%s\n' "${COMPREPLY[@]}"
]=]
      H.write(dir .. "/t.bash", script)
      local rc, out, err = H.sh(env .. "VMA_ROOT=" .. H.q(ROOT) .. " PATH=" .. H.q((path or bin) .. ":/usr/bin:/bin")
        .. " bash " .. H.q(dir .. "/t.bash") .. " " .. H.q(line))
      assert.equal(0, rc, err)
      local t = {}
      for l in out:gmatch("([^\n]+)\n") do t[#t + 1] = l end
      table.sort(t)
      return t
    end

    it("completes commands, options and values without bash-completion", function()
      assert.same({ "create" }, bash("vma cre"))
      assert.same({ "--compress" }, bash("vma create --comp"))
      assert.same({ "scsi0", "virtio1" }, bash("vma cat " .. A2 .. " "))
      assert.same({ "verify" }, bash("vma help veri"))
    end)

    local bc = H.exists("/usr/share/bash-completion/bash_completion")
    it("completes --opt=value and dir: with bash-completion", function()
      if not bc then pending("needs bash-completion (apt-get install bash-completion)") return end
      assert.same({ "scsi0", "virtio1" }, bash("vma serve " .. A2 .. " --disk=", true))
      assert.same({ "gz", "gzip" }, bash("vma create x.vma --compress=g", true))
      os.execute("mkdir -p " .. H.q(dir .. "/d/alpha"))
      -- the shell replaces what follows the colon: the folder alone
      assert.same({ dir .. "/d/alpha/" }, bash("vma extract " .. A2 .. " out --target dir:" .. dir .. "/d/a", true))
      assert.same({ "dir:", "lvm:", "rbd:", "zfs:" }, bash("vma extract " .. A2 .. " out --target ", true))
    end)

    it("offers file names for a vma that does not answer (Proxmox's)", function()
      local other = dir .. "/other"
      os.execute("mkdir -p " .. H.q(other) .. " " .. H.q(dir .. "/files"))
      H.write(other .. "/vma", "#!/bin/sh\necho 'usage: vma command [command options]'\nexit 255\n")
      os.execute("chmod +x " .. H.q(other .. "/vma"))
      H.write(dir .. "/files/backup.vma", "")
      local got = bash("vma list " .. dir .. "/files/b", false, other)
      assert.same({ dir .. "/files/backup.vma" }, got)
    end)
  end)
end)
