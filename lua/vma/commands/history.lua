-- vma history DIR --vmid N PATH: every version of a guest file in the
-- catalogued backups of a VM (vma.storecmd).
local storecmd = require "vma.storecmd"

return {
  description = "every version of a guest file in the catalogued backups of a VM",
  usage = storecmd.history_parser():get_help(),
  run = storecmd.history,
}
