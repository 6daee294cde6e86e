-- Our writer produces Proxmox's bytes: given the same uuid, ctime, configs,
-- devices and cluster order, each fixture written by Proxmox's own vma is
-- re-created byte for byte.
local vma = require "vma"
local H = require "helper"
local G = require "vmagen"

-- the (dev_id, cluster) order of an archive's extents
local function slots_of(data)
  local out = {}
  for _, e in ipairs(G.parse(data).extents) do
    for _, sl in ipairs(e.slots) do out[#out + 1] = sl end
  end
  return out
end

local INPUTS = {
  ["a-two-drives"] = { "disk0.raw", "disk1.raw" },
  ["c-empty-config"] = { "tiny.raw" },
  ["d-config-only"] = {},
  ["e-vmstate"] = { "disk.raw", "state.bin" },
}

describe("byte-identical to Proxmox's writer", function()
  for case, inputs in pairs(INPUTS) do
    it(case, function()
      local dir = H.fixtures .. "/proxmox/" .. case
      local want = H.read(dir .. "/" .. case .. ".vma")
      local r = assert(vma.open(dir .. "/" .. case .. ".vma"))
      local tmp = H.tmpdir()
      local w = assert(vma.create(tmp .. "/ours.vma", { uuid = r.uuid, ctime = r.ctime }))
      for _, c in ipairs(r:configs()) do assert(w:add_config(c.name, c.data)) end
      local imgs = {}
      for i, d in ipairs(r:devices()) do
        imgs[i] = H.read(dir .. "/" .. inputs[i])
        -- the input's own size: the writer rounds it up to 512 as Proxmox does
        assert.are.equal(i, w:add_device(d.name, #imgs[i]))
      end
      r:close()
      for _, s in ipairs(slots_of(want)) do
        local off = s.cluster * 65536
        assert(w:write_cluster(s.dev, s.cluster, imgs[s.dev]:sub(off + 1, off + 65536)))
      end
      assert(w:close())
      local ours = H.read(tmp .. "/ours.vma")
      H.rm(tmp)
      assert.are.equal(#want, #ours)
      assert.is_true(want == ours, "archives differ")
    end)
  end
end)
