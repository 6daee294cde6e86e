-- The documents say what the commands do: every option of every command,
-- read from the argparse parser the command builds, is in the command's
-- section of docs/commands.md (its usage block) and of the man page docs/vma.1
-- (an item of its own), and every option those sections, the man page's
-- synopsis and the command's own help name exists. The commands are the files
-- of the command folder: a new command fails here until its sections are
-- written. `vma help` lists each with one line; every environment variable the
-- code reads is documented.
local H = require "helper"
local options = require "vma.options"
local plugins = require "vma.plugins"
local lfs = require "lfs"

local ROOT = H.root

-- the bundled commands: the files of lua/vma/commands/
local function command_files()
  local dir = ROOT .. "/lua/vma/commands"
  local t = {}
  for f in lfs.dir(dir) do
    local name = f:match("^(.+)%.lua$")
    if name and plugins.valid_name(name) then t[#t + 1] = { name = name, path = dir .. "/" .. f } end
  end
  table.sort(t, function(a, b) return a.name < b.name end)
  return t
end

-- the command's parser: the one it builds when it loads, else the one it
-- builds when it runs (prune adds its policy's options then), made to stop at
-- once with an unknown option (a usage error does nothing); a command with
-- neither (help) is read from its usage
local function parser_of(c)
  local made, ok, cmd = options.watch(plugins.load_file, "command", c.path)
  assert(ok and cmd, "cannot load " .. c.path)
  local p = options.pick(made, c.name)
  if p then return options.from_parser(p), cmd end
  local stderr = io.stderr
  io.stderr = { write = function() end } -- luacheck: ignore
  local made2, rok, status = options.watch(cmd.run, { "--no-such-option-of-any-command" })
  io.stderr = stderr -- luacheck: ignore
  assert(rok and status == 2, c.name .. ": an unknown option is not a usage error")
  p = options.pick(made2, c.name)
  if p then return options.from_parser(p), cmd end
  local usage = cmd.usage
  if type(usage) == "function" then usage = usage() end
  return options.from_usage(usage), cmd
end

-- the option names in a text: dashed words after a space, a bracket, a
-- parenthesis, a bar, a comma or the start of a line
local function option_words(text)
  local set = {}
  for w in (" " .. text):gmatch("[%s%[%(|,/\"]%f[%-](%-%-?[%a][%w%-]*)") do
    set[(w:gsub("%-+$", ""))] = true
  end
  set["-h"], set["--help"] = nil, nil
  return set
end

local function keys(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

local function read(path) return assert(H.read(ROOT .. "/" .. path)) end

-- docs/commands.md: the section "## vma NAME" and its first code block
local function md_section(md, name)
  local pat = "\n## vma " .. name:gsub("%-", "%%-") .. "\n"
  local s = md:find(pat)
  if not s then return nil end
  local body = md:sub(s + #pat)
  body = body:match("^(.-)\n## ") or body
  local block = body:match("^%s*```[^\n]*\n(.-)\n```")
  return body, block
end

-- the man page with its escapes undone: \- is -, fonts and \& go
local function roff_text(s)
  return (s:gsub("\\%-", "-"):gsub("\\f[BIRP]", ""):gsub("\\f%(..", ""):gsub("\\&", "")
    :gsub("\\e", "\\"))
end

-- the man page's subsection ".SS vma NAME ...", up to the next .SS or .SH
local function man_section(man, name)
  local out, cur = nil, nil
  for line in (man .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^%.S[SH] ") then
      if cur then break end
      local head = roff_text(line:sub(5))
      if head == "vma " .. name or head:sub(1, #name + 5) == "vma " .. name .. " " then
        cur = { line }
      end
    elseif cur then
      cur[#cur + 1] = line
    end
  end
  if cur then out = roff_text(table.concat(cur, "\n")) end
  return out
end

-- the tags of the .TP items of a man page section
local function man_tags(section)
  local t = {}
  for tag in (section .. "\n"):gmatch("%.TP\n([^\n]*)\n") do t[#t + 1] = tag end
  return table.concat(t, "\n")
end

-- the synopsis line(s) of a command in the man page
local function man_synopsis(man, name)
  local syn = roff_text(man:match("\n%.SH SYNOPSIS\n(.-)\n%.SH ") or "")
  for entry in (syn .. "\n.br\n"):gmatch("(.-)\n%.br\n") do
    local words = entry:gsub("\n", " "):gsub("%.[BIR][BIR]? ", "")
    if words:match("^%s*vma " .. name:gsub("%-", "%%-") .. "%f[%s]") or
        words:match("^%s*vma " .. name:gsub("%-", "%%-") .. "$") then
      return words
    end
  end
end

describe("the documents and the commands", function()
  local md = read("docs/commands.md")
  local man = read("docs/vma.1")
  local cmds = command_files()

  it("finds the commands in their folder", function()
    assert.is_true(#cmds >= 14)
  end)

  for _, c in ipairs(cmds) do
    describe("vma " .. c.name, function()
      local desc, cmd = parser_of(c)
      local names = {}
      for _, n in ipairs(options.names(desc)) do names[n] = true end
      names["-h"], names["--help"] = nil, nil

      it("has its help, and it names exactly the parser's options", function()
        local usage = cmd.usage
        if type(usage) == "function" then usage = usage() end
        assert.is_string(usage)
        local said = {}
        for _, n in ipairs(options.names(options.from_usage(usage))) do said[n] = true end
        said["-h"], said["--help"] = nil, nil
        assert.same(keys(names), keys(said))
      end)

      it("has a section in docs/commands.md whose usage block names every option", function()
        local body, block = md_section(md, c.name)
        assert.is_string(body, "no section '## vma " .. c.name .. "' in docs/commands.md")
        assert.is_string(block, "no usage block in the section of vma " .. c.name)
        assert.same(keys(names), keys(option_words(block)))
        -- and the values the parser accepts
        for _, o in ipairs(desc.options) do
          for _, v in ipairs(o.choices or {}) do
            assert.truthy(block:find(v, 1, true), o.names[1] .. " " .. v .. " is not in the block")
          end
        end
        -- the section's text names no option the command lacks: `-v`,
        -- `--mode MODE` (code that starts with a dash: not `zstd -dc`)
        local unknown = {}
        for span in body:gmatch("`(%-[^`]*)`") do
          for w in pairs(option_words(span)) do
            if not names[w] then unknown[#unknown + 1] = w end
          end
        end
        table.sort(unknown)
        assert.same({}, unknown)
      end)

      it("is in docs/commands.md's table of commands", function()
        assert.truthy(md:find("| [`" .. c.name .. "`](#vma-" .. c.name .. ") |", 1, true))
      end)

      it("has a section in docs/vma.1 with an item for every option", function()
        local sec = man_section(man, c.name)
        assert.is_string(sec, "no '.SS vma " .. c.name .. "' in docs/vma.1")
        local tags = option_words(man_tags(sec))
        assert.same(keys(names), keys(tags))
        -- and its heading names no option the command lacks
        local unknown = {}
        for w in pairs(option_words(sec:match("^[^\n]*"))) do
          if not names[w] then unknown[#unknown + 1] = w end
        end
        table.sort(unknown)
        assert.same({}, unknown)
      end)

      it("is in the man page's synopsis, with no option it lacks", function()
        local syn = man_synopsis(man, c.name)
        assert.is_string(syn, "vma " .. c.name .. " is not in the SYNOPSIS of docs/vma.1")
        local unknown = {}
        for w in pairs(option_words(syn)) do
          if not names[w] then unknown[#unknown + 1] = w end
        end
        table.sort(unknown)
        assert.same({}, unknown)
      end)
    end)
  end

  it("vma help lists every command, one line each", function()
    local rc, out = H.vma("help")
    assert.equal(0, rc)
    local listed = {}
    local inlist = false
    for line in out:gmatch("([^\n]*)\n") do
      if line == "commands:" then
        inlist = true
      elseif inlist and line == "" then
        break
      elseif inlist then
        local n, what = line:match("^  (%S+)%s+(%S.*)$")
        assert.is_string(n, "not a command line: '" .. line .. "'")
        listed[#listed + 1] = n
        assert.is_nil(what:find("cannot be loaded", 1, true), line)
      end
    end
    local want = {}
    for _, c in ipairs(cmds) do want[#want + 1] = c.name end
    assert.same(want, listed)
  end)

  it("vma help gives a command of one's own one line too, the first of its description", function()
    local dir = H.tmpdir()
    H.write(dir .. "/frob.lua", 'return { description = "frobnicate an archive\\nsecond line\\nthird",'
      .. ' run = function() return 0 end }\n')
    local rc, out = H.sh("VMA_COMMANDS_PATH=" .. H.q(dir) .. " " .. H.q(H.bin) .. " help")
    H.rm(dir)
    assert.equal(0, rc)
    assert.matches("\n  frob +frobnicate an archive\n", out)
    assert.is_nil(out:find("second line", 1, true))
  end)

  it("documents every environment variable the code reads", function()
    local vars = {}
    local rc, out = H.sh("cd " .. H.q(ROOT) .. " && grep -rhoE "
      .. "'(os\\.getenv|g_getenv|getenv|secure_getenv)\\(\"[A-Z_][A-Z0-9_]*\"' lua src")
    assert.equal(0, rc)
    for v in out:gmatch('"([A-Z_][A-Z0-9_]*)"') do vars[v] = true end
    local env_md = md:match("\n## Environment\n(.-)\n## ")
    local env_man = roff_text(man:match("\n%.SH ENVIRONMENT\n(.-)\n%.SH ") or "")
    local missing = {}
    for _, v in ipairs(keys(vars)) do
      if not env_md:find("`" .. v .. "`", 1, true) then missing[#missing + 1] = "commands.md: " .. v end
      if not env_man:find("\n.B " .. v .. "\n", 1, true) and not env_man:find("^%.B " .. v .. "\n") then
        missing[#missing + 1] = "vma.1: " .. v
      end
    end
    assert.same({}, missing)
  end)

  it("the nbdkit plugin's man page names every parameter the plugin takes", function()
    local plugin = ROOT .. "/build/nbdkit-vma-plugin.so"
    local rc, out = H.sh("nbdkit " .. H.q(plugin) .. " --help")
    if rc ~= 0 then pending("nbdkit cannot load " .. plugin) return end
    local page = roff_text(read("docs/nbdkit-vma-plugin.1"))
    local params = page:match("\n%.SH PARAMETERS\n(.-)\n%.SH ")
    assert.is_string(params)
    -- the plugin's own lines come after "plugin: vma ..."
    local own = out:match("\nplugin: vma .*$")
    assert.is_string(own)
    local n = 0
    for key in own:gmatch("\n%[?(%l+)=") do
      n = n + 1
      assert.truthy(params:find(key .. "=", 1, true), key .. "= is not in PARAMETERS")
    end
    assert.is_true(n >= 3)
  end)
end)
