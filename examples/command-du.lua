-- vma du ARCHIVE... [--verify]: the devices of each archive with their sizes;
-- with --verify, also how much of them the archive stores and how much is
-- zero (read from the whole archive, so this takes as long as `vma verify`).
--
-- Install: copy this file to ~/.config/vma/commands/du.lua (the file name is
-- the command name), or put it, named du.lua, in a folder listed in
-- $VMA_COMMANDS_PATH. Then:
--
--   vma du backup.vma.zst
--   vma du --verify /mnt/backups/dump/vzdump-qemu-*.vma.zst
--
-- Exit status: 0 when every archive could be read (and verified), 1 when
-- one could not (the others are still shown), 2 for a usage error.
--
-- "zero" is stats.zero_bytes of reader:verify(): the bytes of the devices
-- that lie in 4 KiB blocks the archive marks as all zero (not stored).
-- "stored" is the total size of the devices minus that. For an archive with
-- RAM state (a "vmstate" device), zero_bytes also counts the zero blocks
-- after the end of the RAM state in its last 64 KiB cluster (as Proxmox's
-- vma counts them), so "stored" may then be up to 60 KiB too low.

local vma = require "vma"
local ui = require "vma.ui"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma du", "Show the devices of archives with their sizes; "
    .. "with --verify, the stored and zero bytes.")
  p:argument("archives", "the archives (- for standard input)"):args("+")
  p:flag("--verify", "read each whole archive and show stored and zero bytes")
  return p
end

local function percent(part, whole)
  if whole == 0 then return 0 end
  return part * 100 // whole
end

-- one archive; returns true, or nil and a message
local function du(path, verify)
  local r <close>, err = vma.open(path)
  if not r then return nil, err end
  print(path)
  local total = 0
  if #r:devices() == 0 then print("  (no devices: configs only)") end
  for _, d in ipairs(r:devices()) do
    print(string.format("  %-24s %14d  %10s%s", d.name, d.size, ui.human(d.size),
      d.vmstate and "  (RAM state)" or ""))
    total = total + d.size
  end
  print(string.format("  %-24s %14d  %10s", "total", total, ui.human(total)))
  if verify then
    local st, verr = r:verify()
    if not st then return nil, verr end
    local zero = math.min(st.zero_bytes, total)
    local stored = total - zero
    print(string.format("  %-24s %14d  %10s  %3d%%", "stored", stored, ui.human(stored),
      percent(stored, total)))
    print(string.format("  %-24s %14d  %10s  %3d%%", "zero", zero, ui.human(zero),
      percent(zero, total)))
  end
  return true
end

local function run(args)
  local a, status = ui.parse(parser(), args, "du")
  if not a then return status end
  vma.os.catch_signals()
  local failed = false
  for _, path in ipairs(a.archives) do
    local ok, err = du(path, a.verify)
    if not ok then
      ui.fail("du", path .. ": " .. err)
      failed = true
    end
    if vma.os.interrupted() then return 1 end
  end
  return failed and 1 or 0
end

return {
  description = "show the devices of archives with their sizes (--verify: stored/zero bytes)",
  usage = parser():get_help(),
  run = run,
}
