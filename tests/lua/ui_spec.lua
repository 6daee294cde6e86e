-- vma.ui's help paragraphs (ui.text): the commands' help is written as long
-- strings over indented lines, and must come out as the one line it was
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
