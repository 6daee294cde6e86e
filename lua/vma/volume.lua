-- vma.volume: what the built-in restore targets share: the refusal of an
-- existing file or volume (unless --force), and the volumes a target makes
-- before a restore (lvcreate, zfs create) and removes again after a failure.
local vma = require "vma"
local process = require "vma.process"

local M = {}

--- True when PATH exists (a symbolic link to nothing too), and opts.force
-- allows writing over it; raises the message of a refusal when it exists and
-- force is not given.
function M.existing(path, opts)
  if vma.os.lstat(path) == nil then return false end
  if not (opts and opts.force) then
    error(path .. " already exists (not writing over it; --force writes over it, zeros "
      .. "included)", 0)
  end
  return true
end

--- What a real run would fail on before it makes volume V: its program
-- missing, or (V.check, a command that reads only) its volume group or pool
-- missing. Returns true or nil, message.
local function can_make(v, checked)
  local prog = v.create[1]
  if not process.which(prog) then
    return nil, string.format("%s is not installed: cannot make %s", prog, v.path)
  end
  if v.check and not checked[v.check.what] then
    local ok, err = process.run(v.check.argv)
    if not ok then return nil, v.check.what .. " not found (" .. err .. ")" end
    checked[v.check.what] = true
  end
  return true
end

--- Make the volumes of VOLS ({path=, create=argv, remove=argv, check=
-- {what=, argv=}}) that the map ENTRIES use and that do not exist yet. In a
-- dry run nothing is made: only what the real run would fail on is checked
-- (the program, and with check.argv that check.what exists). Returns path ->
-- the command line that makes it, and a function that removes what was
-- made; or nil and a message (what was made is removed).
function M.prepare(entries, vols, dry_run)
  local by_path, made, undo, checked = {}, {}, {}, {}
  for _, v in ipairs(vols) do by_path[v.path] = v end
  local function rollback()
    for i = #undo, 1, -1 do process.run(undo[i]) end
    undo = {}
  end
  for _, e in ipairs(entries) do
    local v = e.path and by_path[e.path]
    if v and not vma.os.stat(v.path) then
      made[v.path] = process.command_line(v.create)
      if dry_run then
        local ok, err = can_make(v, checked)
        if not ok then return nil, err end
      else
        local ok, err = process.run(v.create)
        if ok then undo[#undo + 1] = v.remove end
        if not ok or not process.wait_for(v.path, 10) then
          rollback()
          return nil, ok and (v.path .. " did not appear after " .. v.create[1]) or err
        end
      end
    end
  end
  return made, rollback
end

--- A built-in target whose disks go to volumes: VOLUMES(archive, arg)
-- describes them ({dev=, path=, thin=, create=, remove=, check=}); the map
-- sends each disk to its volume (zero blocks written where the volume may
-- hold old data: it exists, or it is thick), prepare makes those missing.
function M.target(description, volumes)
  return {
    description = description,
    map = function(archive, arg, opts)
      local map = {}
      for _, v in ipairs(volumes(archive, arg)) do
        local exists = M.existing(v.path, opts)
        map[v.dev.name] = { path = v.path, write_zero = exists or not v.thin, format = "raw" }
      end
      return map
    end,
    prepare = function(entries, archive, arg, opts)
      return M.prepare(entries, volumes(archive, arg), opts.dry_run)
    end,
  }
end

return M
