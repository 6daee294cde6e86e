-- vma umount DIR: end a mount made by vma mount (fusermount3 -u DIR).
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma umount", "Unmount a folder mounted by 'vma mount' "
    .. "(runs fusermount3 -u DIR); its vma-fuse process then ends.")
  p:argument("dir", "the folder given to vma mount")
  return p
end

local function run(args)
  local a, st = ui.parse(parser(), args, "umount")
  if not a then return st end
  local path = vma.realpath(a.dir)
  if not path then return ui.fail("umount", a.dir .. " does not exist") end
  local typ = access.mounted(path)
  if not typ then return ui.fail("umount", a.dir .. " is not mounted") end
  if typ ~= "fuse.vma" and typ ~= "fuse.vma-files" then
    return ui.fail("umount", a.dir .. " is not mounted by vma mount (it is " .. typ .. ")")
  end
  local prog = access.which("fusermount3") or access.which("fusermount")
  local argv = prog and { prog, "-u", path } or { "umount", path }
  local tmp = os.tmpname()
  local pid, err = vma.spawn(argv, { stdin = "/dev/null", stdout = tmp, stderr = tmp })
  if not pid then
    os.remove(tmp)
    return ui.fail("umount", err)
  end
  local how, code = access.wait(pid)
  local f = io.open(tmp, "r")
  local out = f and f:read("a") or ""
  if f then f:close() end
  os.remove(tmp)
  if how ~= "exit" or code ~= 0 then
    out = out:gsub("%s+$", ""):gsub("^[%w]+: ", "")
    return ui.fail("umount", out ~= "" and out or (argv[1] .. " failed: " .. access.status_text(how, code)))
  end
  return 0
end

return {
  description = "unmount a folder mounted by vma mount",
  usage = parser():get_help(),
  run = run,
}
