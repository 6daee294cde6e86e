-- vma.ui's help paragraphs (ui.text): the commands' help is written as long
-- strings over indented lines, and must come out as the one line it was;
-- the waiter's note on a decoded copy a command leaves unfinished
local ui = require "vma.ui"

describe("ui.text", function()
  it("folds each line break and the indentation around it into one space", function()
    assert.are.equal("Write a disk of an archive, zeros included (| ssh host dd).",
      ui.text [[
        Write a disk of an archive,
        zeros included (| ssh host dd).]])
  end)

  it("keeps backslashes and quotes as written, and spaces inside a line", function()
    assert.are.equal([[C:\Users, (\n, \xNN) 'vma inspect' "x"  y]],
      ui.text "\n  C:\\Users, (\\n, \\xNN)\n   'vma inspect' \"x\"  y  \n")
  end)

  it("makes every command's description one line", function()
    for _, name in ipairs { "cat", "ls", "get", "serve", "verify", "umount" } do
      local help = require("vma.commands." .. name).usage
      local para = help:match("\n\n([^\n]+)")
      assert.is_string(para, name)
      assert.is_nil(para:find("  ", 1, true), name)
    end
  end)
end)

describe("the waiter's end (ui.waiter)", function()
  -- an archive object as far as the note reads it
  local function archive(path, st, stream)
    return { path = path, stream = stream or false, status = function() return st end }
  end
  local running = { decoding = true, complete = false, input_done = 25, input_total = 100 }

  -- what done(r) writes to stderr (not a terminal here: no line to clear)
  local function note(r, quiet, cached)
    local _, done = ui.waiter("ls", quiet, cached)
    local saved, got = io.stderr, {}
    io.stderr = { write = function(_, ...) for _, x in ipairs { ... } do got[#got + 1] = x end end }
    local ok, err = pcall(done, r)
    io.stderr = saved
    assert(ok, err)
    return table.concat(got)
  end

  it("says when the command leaves its decoded copy unfinished, and how to keep one", function()
    assert.are.equal("vma ls: /b/x.vma.zst was decoded to 25% for this command; that copy is not "
      .. "kept (vma cache add /b/x.vma.zst decodes it once for every later command)\n",
      note(archive("/b/x.vma.zst", running), false, true))
  end)

  it("quotes a path for the shell", function()
    assert.is_truthy(note(archive("/b/it's here.vma.gz", running), false, true)
      :find("(vma cache add '/b/it'\\''s here.vma.gz' decodes", 1, true))
  end)

  it("says nothing when quiet, without the cache, for a pipe, or with no copy left to make", function()
    assert.are.equal("", note(archive("/b/x.vma.zst", running), true, true))
    assert.are.equal("", note(archive("/b/x.vma.zst", running), false, false))
    assert.are.equal("", note(archive("-", running, true), false, true))
    assert.are.equal("", note(archive("/b/x.vma.zst",
      { decoding = false, complete = true, input_done = 100, input_total = 100 }), false, true))
    assert.are.equal("", note(archive("/b/x.vma.zst",
      { decoding = false, complete = false, input_done = 60, input_total = 100 }), false, true))
    assert.are.equal("", note(nil, false, true)) -- a command that failed
  end)
end)
