-- keep-oldest: keep the N oldest backups of each group (--keep-oldest N),
-- remove the others: the first backups ever made stay as a baseline.
-- Protected backups are kept anyway and do not count toward N.
--
-- This policy applies that one rule alone.  To keep the oldest ones in
-- addition to the Proxmox rules (--keep-oldest 1 --keep-daily 7) use the
-- default policy (proxmox), which runs keep-oldest before them.
local retention = require "vma.retention"

return {
  description = "keep only the --keep-oldest N oldest backups of each group",
  check = function(opts)
    if (opts.keep_oldest or 0) <= 0 then
      return nil, "policy keep-oldest needs --keep-oldest N (N > 0)"
    end
    for _, r in ipairs(retention.RULES) do
      if (opts[r.option] or 0) > 0 then
        return nil, "policy keep-oldest applies --keep-oldest alone; leave out --policy "
          .. "to combine it with --" .. r.name
      end
    end
    if opts.keep_within then
      return nil, "policy keep-oldest applies --keep-oldest alone; leave out --policy "
        .. "to combine it with --keep-within"
    end
    return true
  end,
  mark = function(backups, opts, rules)
    rules.keep_oldest(backups, opts.keep_oldest)
  end,
}
