-- The default policy: Proxmox VE's prune rules, exactly as
-- PVE::Storage::prune_mark_backup_group applies them (see docs/policies.md).
--
--   --keep-last/-hourly/-daily/-weekly/-monthly/-yearly N
--
-- plus vma's two additions, which run first when given and cover their
-- periods like an earlier Proxmox rule does:
--
--   --keep-within DUR   every backup less than DUR older than the newest
--   --keep-oldest N     the N oldest backups
--
-- No rule at all (or --keep-all) keeps everything, as in Proxmox.
return {
  description = "Proxmox VE prune rules (keep-last/hourly/daily/weekly/monthly/yearly), "
    .. "after keep-within and keep-oldest when given",
  mark = function(backups, opts, rules)
    rules.proxmox(backups, opts)
  end,
}
