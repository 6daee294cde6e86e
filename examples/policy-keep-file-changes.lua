-- An example policy that reads the store's catalog: keep every backup in
-- which a given guest file changed (its content, size, mtime, mode or type
-- differs from the backup before, or it appeared, or it went away), then
-- apply the Proxmox rules given on the command line to the other backups.
-- A configuration file's every version stays restorable, however short the
-- rest of the retention.
--
--   vma catalog --files DIR
--   vma prune --policy examples/policy-keep-file-changes.lua \
--             --file /etc/app.conf --keep-daily 7 --dry-run DIR
--
-- Backups the catalog holds no file list of are left to the Proxmox rules.
-- Copy it to ~/.config/vma/policies/keep-file-changes.lua to use it as
-- `--policy keep-file-changes`.

local catalog = require "vma.catalog"

return {
  description = "keep every backup in which a guest file changed; Proxmox rules for the others",
  options = {
    { "--file", "the guest path to watch (as vma find prints it)", argname = "PATH" },
    { "--catalog", "the catalog (default DIR/.vma-catalog.sqlite)", argname = "FILE" },
  },
  check = function(opts)
    if not opts.file or opts.file == "" then
      return nil, "policy keep-file-changes needs --file PATH"
    end
    return true
  end,
  mark = function(backups, opts, rules)
    if #backups == 0 then return end
    local cat, err = catalog.open(opts.catalog or opts.dir, { readonly = true })
    if not cat then error(err, 0) end
    local ok, h = pcall(cat.versions, cat, backups[1].vmid, opts.file)
    cat:close()
    if not ok then error(h, 0) end
    local changed = {}
    for _, x in ipairs(h.backups) do
      if x.changed then changed[x.file] = x end
    end
    local others = {}
    for _, b in ipairs(backups) do            -- newest first
      local x = changed[b.file]
      if x and rules.keep(b, (x.version and "changed: " or "gone: ") .. opts.file,
                          "keep-file-changes") then
        b.code = "F"                          -- the letter in --calendar
      elseif not b.mark then
        others[#others + 1] = b
      end
    end
    -- With no rule given this keeps everything, as Proxmox does.
    rules.proxmox(others, opts)
  end,
}
