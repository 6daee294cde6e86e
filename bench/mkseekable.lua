-- bench/mkseekable.lua: a copy of a plain archive in zstd's seekable format
-- (independent frames, the seek table in a skippable frame at the end), for
-- measuring random access to a .vma.zst while `vma create` writes one stream.
--
--   lua5.4 bench/mkseekable.lua IN.vma OUT.vma.zst [FRAME_BYTES]
local src, out, chunk = arg[1], arg[2], tonumber(arg[3] or 4 * 1024 * 1024)
if not (src and out and chunk) then
  io.stderr:write("usage: mkseekable.lua IN.vma OUT.vma.zst [FRAME_BYTES]\n")
  os.exit(2)
end
local fin = assert(io.open(src, "rb"))
local fout = assert(io.open(out, "wb"))
local tmp = out .. ".frame"
local entries = {}
while true do
  local data = fin:read(chunk)
  if not data then break end
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local p = assert(io.popen("zstd -q -c -3 < '" .. tmp:gsub("'", "'\\''") .. "'"))
  local c = p:read("a")
  assert(p:close(), "zstd failed")
  fout:write(c)
  entries[#entries + 1] = string.pack("<I4I4", #c, #data)
end
fin:close()
os.remove(tmp)
local tbl = table.concat(entries) .. string.pack("<I4BI4", #entries, 0, 0x8F92EAB1)
fout:write(string.pack("<I4I4", 0x184D2A5E, #tbl), tbl)
assert(fout:close())
