-- An example policy: keep every backup that has notes (a non-empty
-- <archive>.notes or <base>.notes file), then apply the Proxmox rules given
-- on the command line to the other backups, as if the noted ones were not
-- there.
--
--   vma prune --policy examples/policy-keep-notes.lua --keep-daily 7 DIR
--
-- Copy it to ~/.config/vma/policies/keep-notes.lua to use it as
-- `--policy keep-notes`.

local function first_line(s)
  local line = s:match("[^\n]*"):gsub("^%s+", ""):gsub("%s+$", "")
  if #line > 40 then line = line:sub(1, 37) .. "..." end
  return line
end

return {
  description = "keep the backups that have notes; Proxmox rules for the others",
  mark = function(backups, opts, rules)
    local others = {}
    for _, b in ipairs(backups) do          -- newest first
      if b.notes and b.notes:find("%S") and not b.protected then
        rules.keep(b, "has notes: " .. first_line(b.notes), "keep-notes")
        b.code = "N"                        -- the letter in --calendar
      else
        others[#others + 1] = b
      end
    end
    -- With no rule given this keeps everything, as Proxmox does.
    rules.proxmox(others, opts)
  end,
}
