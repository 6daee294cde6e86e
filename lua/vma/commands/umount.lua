-- vma umount DIR: end a mount made by vma mount (fusermount3 -u DIR).
local vma = require "vma"
local ui = require "vma.ui"
local access = require "vma.access"
local process = require "vma.process"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma umount", ui.text [[
    Unmount a folder mounted by 'vma mount' (runs fusermount3 -u DIR); its vma-fuse process then
    ends.]])
  p:argument("dir", "the folder given to vma mount")
  return p
end

local function run(args)
  local a, st = ui.parse(parser(), args, "umount")
  if not a then return st end
  local path = vma.os.realpath(a.dir)
  if not path then return ui.fail("umount", a.dir .. " does not exist") end
  local typ = access.mounted(path)
  if not typ then return ui.fail("umount", a.dir .. " is not mounted") end
  if typ ~= "fuse.vma" and typ ~= "fuse.vma-files" then
    return ui.fail("umount", a.dir .. " is not mounted by vma mount (it is " .. typ .. ")")
  end
  local prog = process.which("fusermount3") or process.which("fusermount")
  local argv = prog and { prog, "-u", path } or { "umount", path }
  local how, code, out, err = vma.os.spawn(argv, { capture = true })
  if not how then return ui.fail("umount", code) end
  if how ~= "exit" or code ~= 0 then
    local msg = (err .. out):gsub("%s+$", ""):gsub("^[%w]+: ", "")
    return ui.fail("umount", msg ~= "" and msg or (argv[1] .. " failed: " .. process.status_text(how, code)))
  end
  return 0
end

return {
  description = "unmount a folder mounted by vma mount",
  usage = parser():get_help(),
  run = run,
}
