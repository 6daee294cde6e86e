-- An example policy with an option of its own: keep the last (newest)
-- backup of each of the newest N quarters (--keep-quarterly N, default 4),
-- plus whatever the Proxmox rules given on the command line keep.
--
--   vma prune --policy examples/policy-quarterly.lua --keep-daily 7 \
--             --keep-quarterly 8 DIR
--
-- The Proxmox rules run first; the quarterly rule runs after them like a
-- further Proxmox rule: a quarter that already holds a kept backup is
-- covered and does not count, so --keep-quarterly 8 reaches 8 quarters
-- beyond those the other rules keep.

local function quarter(b)
  return string.format("%04d-Q%d", b.year, (b.month - 1) // 3 + 1)
end

return {
  description = "keep the last backup of each of the last N quarters, plus the Proxmox rules",
  options = {
    { "--keep-quarterly", "keep the last backup of each of the last N quarters (default 4)",
      argname = "N", type = "integer", default = 4 },
  },
  mark = function(backups, opts, rules)
    -- rules.proxmox keeps everything when no rule is given: only call it
    -- when a Proxmox rule (or keep-within/keep-oldest) is given.
    if rules.has_rules(opts) then rules.proxmox(backups, opts) end
    rules.mark_rule(backups, opts.keep_quarterly, quarter, "keep-quarterly", "quarter")
    for _, b in ipairs(backups) do
      if b.rule == "keep-quarterly" and b.mark == "keep" then b.code = "Q" end
    end
  end,
}
