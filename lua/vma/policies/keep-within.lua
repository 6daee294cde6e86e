-- keep-within: keep every backup that is less than DUR older than the
-- newest backup of its group (--keep-within DUR: 12h, 10d, 2w, 6m, 1y,
-- 1y6m; months and years by the calendar), remove the others.
--
-- This policy applies that one rule alone.  To combine it with the
-- Proxmox rules (--keep-within 10d --keep-daily 7) use the default policy
-- (proxmox), which runs keep-within first.
local retention = require "vma.retention"

return {
  description = "keep only the backups within --keep-within DUR of the newest one",
  check = function(opts)
    if not opts.keep_within then
      return nil, "policy keep-within needs --keep-within DUR"
    end
    for _, r in ipairs(retention.RULES) do
      if (opts[r.option] or 0) > 0 then
        return nil, "policy keep-within applies --keep-within alone; leave out --policy "
          .. "to combine it with --" .. r.name
      end
    end
    if (opts.keep_oldest or 0) > 0 then
      return nil, "policy keep-within applies --keep-within alone; leave out --policy "
        .. "to combine it with --keep-oldest"
    end
    return true
  end,
  mark = function(backups, opts, rules)
    rules.keep_within(backups, opts.keep_within)
  end,
}
