-- vma ls ARCHIVE [PATH...]: the guest's files, as the guest sees them (the
-- root file system chosen, its /etc/fstab applied), read from the archive
-- in the process: nothing is restored, mounted or activated.
local ui = require "vma.ui"
local files = require "vma.files"
local argparse = require "argparse"

local function parser()
  local p = argparse("vma ls", ui.text [[
    List files of the guest in an archive. PATH is a guest path (/etc, with the guest's mount
    table applied: /var/log is read from the volume mounted on /var), C:/Users or C:\Users on a
    Windows guest, or a path in one volume as 'vma inspect' names it (scsi0:2:/etc,
    pve/root:/etc). Names are printed with control characters and bytes that are not UTF-8 escaped
    (\n, \xNN).]])
  ui.archive_argument(p, "random")
  p:argument("path", "what to list (default /)"):args("*")
  p:flag("-l --long", "mode, links, owner, group, size, modification time (UTC), name")
  p:flag("-R --recursive", "everything under each folder, one path a line")
  p:flag("-d --directory", "a folder itself, not its entries")
  p:flag("-n --numeric", "numeric owners and groups")
  ui.json_flag(p)
  files.options(p)
  return p
end

local function entry(name, st, target)
  local j, raw = files.json_name(name)
  local e = { name = j, type = st.type, mode = st.mode, uid = st.uid, gid = st.gid,
    size = st.size, mtime = st.mtime, nlink = st.nlink, ino = st.ino }
  if raw then e.name_escaped = raw end
  if target then
    local t, traw = files.json_name(target)
    e.target = t
    if traw then e.target_escaped = traw end
  end
  return e
end

local function run(args)
  local a, r, g, unwait = files.parse_open(parser(), args, "ls")
  if not a then return r end
  local paths = #a.path > 0 and a.path or { "/" }
  local users, groups = {}, {}
  if a.long and not a.numeric and not a.json then users, groups = files.owner_names(g) end
  local json, failed = {}, false
  local emit, flush = ui.lines()
  local function line(path, est, target)
    if not a.long then
      emit(files.escape(path) .. "\n")
      return
    end
    local owner = users[est.uid] or tostring(est.uid)
    local group = groups[est.gid] or tostring(est.gid)
    emit(string.format("%s %3d %-8s %-8s %12d %s %s%s\n", files.mode_string(est), est.nlink,
      files.escape(owner), files.escape(group), est.size, files.time_string(est.mtime),
      files.escape(path), target and (" -> " .. files.escape(target)) or ""))
  end
  for _, spec in ipairs(paths) do
    local obj, path = g:locate(spec)
    local pst, err
    if obj then pst, err = obj:stat(path, true) else err = path end
    if not pst then
      failed = true
      files.warn("ls", spec, err)
      if a.json then json[#json + 1] = { path = spec, error = err } end
    else
      local base = spec:gsub("/+$", "")
      if base == "" then base = "/" end
      local prefix = base == "/" and "/" or base .. "/"
      local item = { path = spec, entries = ui.array() }
      json[#json + 1] = item
      local function add(shown, est, fs, fspath)
        local target
        if est.type == "link" and (a.long or a.json) then
          target = (fs or obj):readlink(fspath or shown)
        end
        if a.json then
          local e = entry(shown, est, target)
          e.path = e.name
          e.name = nil
          if e.name_escaped then e.path_escaped, e.name_escaped = e.name_escaped, nil end
          item.entries[#item.entries + 1] = e
        else
          line(shown, est, target)
        end
      end
      if pst.type ~= "directory" or a.directory then
        -- the path itself (a link: what it is, not where it leads)
        local lst = obj:stat(path) or pst
        add(spec, lst, obj, path)
      elseif a.recursive then
        local it, werr = obj:walk(path)
        if not it then
          failed = true
          files.warn("ls", spec, werr)
        else
          local inner = path == "/" and "/" or path .. "/"
          for rel, est, fs, fspath, eerr in it do
            if est then
              add(prefix .. rel, est, fs or obj, fspath or (inner .. rel))
            else
              failed = true
              files.warn("ls", prefix .. rel, fs or eerr)
            end
          end
        end
      else
        local it, info = obj:dir(path)
        if not it then
          failed = true
          files.warn("ls", spec, info)
        else
          if #paths > 1 and not a.json then emit(files.escape(spec) .. ":\n") end
          for name, est, eerr in it do
            if est then
              local fspath = (path == "/" and "/" or path .. "/") .. name
              if a.json then
                local target = est.type == "link" and obj:readlink(fspath) or nil
                item.entries[#item.entries + 1] = entry(name, est, target)
              else
                local target = est.type == "link" and a.long and obj:readlink(fspath) or nil
                line(name, est, target)
              end
            else
              failed = true
              files.warn("ls", prefix .. name, eerr)
            end
          end
          if info.skipped and info.skipped > 0 then
            files.warn("ls", spec, string.format("%d entries with names that cannot be a path (a '/' in them) left out", info.skipped))
            item.skipped = info.skipped
          end
        end
      end
    end
  end
  if a.json then
    emit(ui.json { ok = not failed, paths = json } .. "\n")
  end
  flush()
  files.close(r, g, unwait)
  return failed and 1 or 0
end

return {
  description = "list the guest's files in an archive (no restore, no mount)",
  usage = parser():get_help(),
  run = run,
}
