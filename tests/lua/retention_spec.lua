-- busted --lpath='lua/?.lua;lua/?/init.lua' tests/lua/retention_spec.lua
local vzdump = require "vma.vzdump"
local H = require "helper"
local retention = require "vma.retention"
local lfs = require "lfs"

local ROOT = os.getenv("VMA_ROOT") or "."

-- a backup table from "YYYY-MM-DD HH:MM:SS"
local function B(stamp, extra)
  local y, mo, d, h, mi, s = stamp:match("^(%d+)%-(%d+)%-(%d+) (%d+):(%d+):?(%d*)$")
  local name = string.format("vzdump-qemu-100-%04d_%02d_%02d-%02d_%02d_%02d.vma.zst",
    tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s) or 0)
  local b = assert(vzdump.parse(name), name)
  b.protected = false
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

local function group(stamps)
  local list = {}
  for i, s in ipairs(stamps) do
    if type(s) == "table" then list[i] = B(s[1], s[2]) else list[i] = B(s) end
  end
  return vzdump.sort_newest_first(list)
end

-- marks of a list in the order of the stamps given (or of the list)
local function marks(list)
  local m = {}
  for i, b in ipairs(list) do m[i] = b.mark end
  return m
end

local function run_proxmox(list, keep)
  return retention.apply(list, function(bs, opts, rules) rules.proxmox(bs, opts) end, keep)
end

local function by_stamp(list)
  local r = {}
  for _, b in ipairs(list) do r[vzdump.time_string(b)] = b end
  return r
end

describe("calendar periods", function()
  it("computes ISO weeks across months and years", function()
    local cases = {
      { 2024, 12, 31, 2025, 1 }, { 2021, 1, 3, 2020, 53 }, { 2021, 1, 4, 2021, 1 },
      { 2020, 12, 31, 2020, 53 }, { 2026, 1, 1, 2026, 1 }, { 2027, 1, 1, 2026, 53 },
      { 2019, 12, 30, 2020, 1 }, { 2018, 12, 31, 2019, 1 }, { 2016, 1, 3, 2015, 53 },
      { 2010, 1, 3, 2009, 53 }, { 2008, 12, 29, 2009, 1 }, { 2026, 3, 1, 2026, 9 },
      { 2026, 3, 2, 2026, 10 },
    }
    for _, c in ipairs(cases) do
      local gy, gw = retention.iso_week(c[1], c[2], c[3])
      assert.same({ c[4], c[5] }, { gy, gw }, table.concat(c, "-", 1, 3))
    end
  end)

  it("formats the buckets like strftime", function()
    local b = B("2024-12-31 23:30:00")
    assert.equal("2024/12/31/23", retention.period(b, "hour"))
    assert.equal("2024/12/31", retention.period(b, "day"))
    assert.equal("2025/01", retention.period(b, "week"))
    assert.equal("2024/12", retention.period(b, "month"))
    assert.equal("2024", retention.period(b, "year"))
    assert.equal(b.file, retention.period(b, "last"))
    assert.equal("x", retention.period(b, function() return "x" end))
    assert.equal("2021/01/03", retention.period({ time = vzdump.to_time(2021, 1, 3, 0, 0, 0) }, "day"))
    assert.has_error(function() retention.period(b, "fortnight") end)
  end)

  it("agrees with os.date('!...') on many times", function()
    local fmt = { hour = "!%Y/%m/%d/%H", day = "!%Y/%m/%d", week = "!%G/%V",
                  month = "!%Y/%m", year = "!%Y" }
    for t = 0, 4102444800, 3000017 do
      local f = vzdump.from_time(t)
      for kind, pattern in pairs(fmt) do
        assert.equal(os.date(pattern, t), retention.period(f, kind), kind .. " " .. t)
      end
    end
  end)
end)

-- The cases of Proxmox's own prune test (pve-storage test/prune_backups_test.pm):
-- one qemu group and one lxc group with one backup.
describe("the Proxmox algorithm on Proxmox's test cases", function()
  local qemu_stamps = { "2018-05-26 11:18:21", "2019-12-31 11:18:21", "2019-12-31 11:19:21",
                        "2020-01-01 11:18:21", "2020-01-01 12:18:21" }
  local function check(keep, expected_qemu, expected_lxc)
    local list = group(qemu_stamps)
    run_proxmox(list, keep)
    local idx = by_stamp(list)
    local got = {}
    for i, s in ipairs(qemu_stamps) do got[i] = idx[s].mark end
    assert.same(expected_qemu, got)
    local lxc = { B("2020-01-01 12:18:21") }
    run_proxmox(lxc, keep)
    assert.equal(expected_lxc, lxc[1].mark)
  end
  local K, R = "keep", "remove"
  it("last=3", function() check({ keep_last = 3 }, { R, R, K, K, K }, K) end)
  it("weekly=2", function() check({ keep_weekly = 2 }, { K, R, R, R, K }, K) end)
  it("daily=weekly=monthly=1", function()
    check({ keep_hourly = 0, keep_daily = 1, keep_weekly = 1, keep_monthly = 1 }, { K, R, K, R, K }, K)
  end)
  it("hourly=4", function() check({ keep_hourly = 4, keep_daily = 0 }, { K, R, K, K, K }, K) end)
  it("yearly=2", function() check({ keep_yearly = 2 }, { R, R, K, R, K }, K) end)
  it("last=2, hourly=2", function() check({ keep_last = 2, keep_hourly = 2 }, { K, R, K, K, K }, K) end)
  it("last=1, monthly=2", function() check({ keep_last = 1, keep_monthly = 2 }, { K, R, K, R, K }, K) end)
  it("monthly=3", function() check({ keep_monthly = 3 }, { K, R, K, R, K }, K) end)
  it("last=daily=weekly=1", function()
    check({ keep_last = 1, keep_daily = 1, keep_weekly = 1 }, { K, R, K, R, K }, K)
  end)
  it("daily=2", function() check({ keep_daily = 2 }, { R, R, K, R, K }, K) end)
  it("weekly=monthly=1", function() check({ keep_weekly = 1, keep_monthly = 1 }, { K, R, R, R, K }, K) end)
  it("weekly=yearly=1", function() check({ keep_weekly = 1, keep_yearly = 1 }, { K, R, R, R, K }, K) end)
  it("no rules", function() check({}, { K, K, K, K, K }, K) end)
  it("all zero", function()
    check({ keep_last = 0, keep_hourly = 0, keep_daily = 0, keep_weekly = 0, keep_monthly = 0,
            keep_yearly = 0 }, { K, K, K, K, K }, K)
  end)
  it("keys with dashes work too", function() check({ ["keep-last"] = 3 }, { R, R, K, K, K }, K) end)
  it("yearly=1 before 2000 and after 2038", function()
    local list = group({ "1970-01-01 00:01:23", "2070-01-01 00:01:00" })
    run_proxmox(list, { keep_yearly = 1 })
    assert.same({ K, R }, marks(list))
  end)
  it("daily=weekly=monthly=1, a week that straddles the year", function()
    local list = group({ "2019-12-25 12:18:21", "2019-12-31 12:18:21", "2020-01-01 12:18:21" })
    run_proxmox(list, { keep_daily = 1, keep_weekly = 1, keep_monthly = 1 })
    -- newest first: 2020-01-01 daily; 12-31 lies in 2020-W01 (covered) and
    -- in 2019/12, which the weekly keep of 12-25 covers: not kept
    assert.same({ K, R, K }, marks(list))
    assert.equal("keep-daily #1", list[1].reason)
    assert.equal("not kept by any rule", list[2].reason)
    assert.equal("keep-weekly #1", list[3].reason)
  end)
end)

describe("the Proxmox algorithm", function()
  it("keeps the newest of two backups on one day and names the keeper", function()
    local list = group({ "2026-01-31 02:00:00", "2026-01-31 14:00:00", "2026-01-30 02:00:00" })
    run_proxmox(list, { keep_daily = 2 })
    assert.equal("2026-01-31 14:00:00", vzdump.time_string(list[1]))
    assert.same({ "keep", "remove", "keep" }, marks(list))
    assert.equal("keep-daily #1", list[1].reason)
    assert.equal("keep-daily: day 2026/01/31 already kept by " .. list[1].file, list[2].reason)
    assert.equal("keep-daily #2", list[3].reason)
    assert.equal("keep-daily", list[2].rule)
  end)

  it("uses the wall clock: 23:30 belongs to its own day", function()
    local list = group({ "2026-01-31 00:30:00", "2026-01-30 23:30:00", "2026-01-30 00:10:00" })
    run_proxmox(list, { keep_daily = 2 })
    assert.same({ "keep", "keep", "remove" }, marks(list))
  end)

  it("keeps one per ISO week across the new year (2024-12-31 is 2025-W01)", function()
    local list = group({ "2025-01-02 01:00:00", "2024-12-31 23:30:00", "2024-12-29 23:30:00",
                         "2024-12-28 01:00:00" })
    run_proxmox(list, { keep_weekly = 3 })
    assert.same({ "keep", "remove", "keep", "remove" }, marks(list))
    assert.matches("week 2025/01 already kept", list[2].reason)
    assert.matches("week 2024/52 already kept", list[4].reason)
  end)

  it("2021-01-03 is in 2020-W53 with 2020-12-28", function()
    local list = group({ "2021-01-04 01:00:00", "2021-01-03 01:00:00", "2020-12-28 01:00:00",
                         "2020-12-27 01:00:00" })
    run_proxmox(list, { keep_weekly = 5 })
    assert.same({ "keep", "keep", "remove", "keep" }, marks(list))
    assert.matches("week 2020/53 already kept", list[3].reason)
  end)

  it("keeps monthly and yearly by calendar month/year", function()
    local list = group({ "2026-02-01 00:00:00", "2026-01-31 23:59:59", "2026-01-01 00:00:00",
                         "2025-12-31 23:59:59", "2025-01-01 00:00:00", "2024-06-01 00:00:00" })
    run_proxmox(list, { keep_monthly = 3, keep_yearly = 2 })
    -- monthly: 2026/02, 2026/01 (01-31), 2025/12; yearly: 2026 and 2025 are
    -- covered, so 2024 is the first year it keeps
    assert.same({ "keep", "keep", "remove", "keep", "remove", "keep" }, marks(list))
    assert.equal("keep-monthly #3", list[4].reason)
    assert.matches("^keep%-monthly: month 2026/01 already kept", list[3].reason)
    assert.equal("keep-yearly #1", list[6].reason)
    assert.equal("not kept by any rule", list[5].reason)
  end)

  it("skips backups in covered periods and leaves them unmarked for later rules", function()
    local list = group({ "2026-01-31 12:00:00", "2026-01-31 06:00:00", "2026-01-30 12:00:00" })
    retention.proxmox(list, { keep_last = 1, keep_daily = 1 })
    -- daily: day 01-31 is covered by keep-last, so 06:00 is skipped
    assert.same({ "keep", nil, "keep" }, { list[1].mark, list[2].mark, list[3].mark })
    assert.is_nil(list[2].mark)
    assert.equal("keep-daily #1", list[3].reason)
    retention.finish(list)
    assert.equal("remove", list[2].mark)
    assert.equal("not kept by any rule", list[2].reason)
  end)

  it("makes a remove mark final", function()
    -- weekly keeps 01-31 and removes 01-27; monthly may not keep 01-27 back
    local list = group({ "2026-01-31 00:00:00", "2026-01-27 00:00:00", "2025-12-31 00:00:00" })
    run_proxmox(list, { keep_weekly = 1, keep_monthly = 5 })
    assert.same({ "keep", "remove", "keep" }, marks(list))
    assert.matches("^keep%-weekly:", list[2].reason)
    assert.equal("keep-monthly #1", list[3].reason)
  end)

  it("ends a rule at the first new period after N, leaving the rest unmarked", function()
    local list = group({ "2026-01-03 00:00:00", "2026-01-02 00:00:00", "2026-01-01 00:00:00" })
    retention.proxmox(list, { keep_daily = 1 })
    assert.equal("keep", list[1].mark)
    assert.is_nil(list[2].mark)
    assert.is_nil(list[3].mark)
  end)

  it("never counts protected backups and they never cover", function()
    local list = group({ { "2026-01-31 12:00:00", { protected = true } }, "2026-01-31 02:00:00",
                        "2026-01-30 02:00:00", { "2026-01-29 02:00:00", { protected = true } },
                        "2026-01-28 02:00:00" })
    run_proxmox(list, { keep_daily = 2 })
    assert.same({ "protected", "keep", "keep", "protected", "remove" }, marks(list))
    assert.equal("protected", list[1].reason)
    assert.equal("keep-daily #1", list[2].reason)
  end)

  it("keeps everything with keep-all, protected staying protected", function()
    local list = group({ "2026-01-31 12:00:00", { "2026-01-31 02:00:00", { protected = true } },
                        "2026-01-30 02:00:00" })
    run_proxmox(list, { keep_all = true, keep_last = 1 })
    assert.same({ "keep", "protected", "keep" }, marks(list))
    assert.equal("keep-all", list[1].reason)
  end)

  it("keeps everything when all rules are zero or missing", function()
    for _, keep in ipairs({ {}, { keep_last = 0, keep_daily = 0 } }) do
      local list = group({ "2026-01-31 12:00:00", "2026-01-31 02:00:00" })
      run_proxmox(list, keep)
      assert.same({ "keep", "keep" }, marks(list))
      assert.equal("keep-all", list[1].rule)
    end
  end)

  it("does not need a sorted list", function()
    local list = { B("2026-01-01 00:00:00"), B("2026-01-03 00:00:00"), B("2026-01-02 00:00:00") }
    retention.proxmox(list, { keep_last = 2 })
    assert.same({ nil, "keep", "keep" }, { list[1].mark, list[2].mark, list[3].mark })
  end)

  it("counts keep-last over backups, each its own period", function()
    local list = group({ "2026-01-31 12:00:00", "2026-01-31 12:00:00" })
    list[2].file = list[2].file:gsub("vma.zst$", "vma")
    run_proxmox(list, { keep_last = 2 })
    assert.same({ "keep", "keep" }, marks(list))
  end)

  -- A literal transcription of PVE::Storage::prune_mark/prune_mark_backup_group
  -- with os.date (UTC) as the period function, against random groups.
  local function oracle(entries, keep)
    local function prune_mark(list, count, id)
      if not count or count == 0 then return end
      local already, newly, n = {}, {}, 0
      for _, e in ipairs(list) do
        if e.omark == "keep" then already[id(e)] = true end
      end
      for _, e in ipairs(list) do
        local i = id(e)
        if not (e.omark ~= nil or already[i]) then
          if not newly[i] then
            if n >= count then break end
            newly[i] = true
            n = n + 1
            e.omark = "keep"
          else
            e.omark = "remove"
          end
        end
      end
    end
    for _, e in ipairs(entries) do e.omark = e.protected and "protected" or nil end
    local positive = false
    for _, k in ipairs({ "keep_last", "keep_hourly", "keep_daily", "keep_weekly",
                         "keep_monthly", "keep_yearly" }) do
      if (keep[k] or 0) > 0 then positive = true end
    end
    if keep.keep_all or not positive then
      for _, e in ipairs(entries) do
        if e.omark == nil or e.omark == "remove" then e.omark = "keep" end
      end
      return
    end
    local list = {}
    for i, e in ipairs(entries) do list[i] = e end
    table.sort(list, function(a, b)
      if a.ctime ~= b.ctime then return a.ctime > b.ctime end
      return a.file > b.file
    end)
    prune_mark(list, keep.keep_last, function(e) return e.file end)
    prune_mark(list, keep.keep_hourly, function(e) return os.date("!%H/%d/%m/%Y", e.ctime) end)
    prune_mark(list, keep.keep_daily, function(e) return os.date("!%d/%m/%Y", e.ctime) end)
    prune_mark(list, keep.keep_weekly, function(e) return os.date("!%V/%G", e.ctime) end)
    prune_mark(list, keep.keep_monthly, function(e) return os.date("!%m/%Y", e.ctime) end)
    prune_mark(list, keep.keep_yearly, function(e) return os.date("!%Y", e.ctime) end)
    for _, e in ipairs(list) do e.omark = e.omark or "remove" end
  end

  it("agrees with a transcription of Proxmox's code on random groups", function()
    math.randomseed(20260131)
    local rules = { "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                    "keep_yearly" }
    for _ = 1, 400 do
      local n = math.random(0, 40)
      local seen, list = {}, {}
      local base = vzdump.to_time(math.random(2015, 2030), 1, 1, 0, 0, 0)
      local span = ({ 3 * 86400, 40 * 86400, 800 * 86400, 3000 * 86400 })[math.random(4)]
      for _ = 1, n do
        local t = base + math.random(0, span)
        if math.random(3) == 1 then t = t - t % 1800 end
        if not seen[t] then
          seen[t] = true
          local f = vzdump.from_time(t)
          local name = vzdump.format({ vmid = 100, time = t, ext = "vma.zst" })
          local b = vzdump.parse(name)
          b.protected = math.random(10) == 1
          assert.equal(f.year, b.year)
          list[#list + 1] = b
        end
      end
      local keep = {}
      for _, r in ipairs(rules) do
        if math.random(2) == 1 then keep[r] = math.random(0, 6) end
      end
      if math.random(25) == 1 then keep.keep_all = true end
      oracle(list, keep)
      run_proxmox(list, keep)
      for _, b in ipairs(list) do
        assert.equal(b.omark, b.mark, b.file)
      end
    end
  end)
end)

describe("keep-within and keep-oldest", function()
  it("parses durations", function()
    local d = retention.parse_duration("1y6m")
    assert.same({ 1, 6, 0, 0, 0 }, { d.years, d.months, d.weeks, d.days, d.hours })
    assert.equal(10, retention.parse_duration("10d").days)
    assert.equal(2, retention.parse_duration("2w").weeks)
    assert.equal(12, retention.parse_duration("12h").hours)
    for _, bad in ipairs({ "", "10", "d", "10x", "-1d", "1.5d", "0d", "10 d", "1D" }) do
      local r, err = retention.parse_duration(bad)
      assert.is_nil(r, bad)
      assert.is_string(err)
    end
  end)

  it("subtracts months by the calendar, clamping the day", function()
    local t = vzdump.to_time(2026, 3, 31, 2, 0, 0)
    local c = vzdump.from_time(retention.subtract(t, retention.parse_duration("1m")))
    assert.same({ 2026, 2, 28, 2 }, { c.year, c.month, c.day, c.hour })
    c = vzdump.from_time(retention.subtract(t, retention.parse_duration("1y1m")))
    assert.same({ 2025, 2, 28 }, { c.year, c.month, c.day })
    c = vzdump.from_time(retention.subtract(vzdump.to_time(2024, 2, 29, 0, 0, 0),
      retention.parse_duration("1y")))
    assert.same({ 2023, 2, 28 }, { c.year, c.month, c.day })
    c = vzdump.from_time(retention.subtract(vzdump.to_time(2026, 1, 15, 0, 0, 0),
      retention.parse_duration("2m1d12h")))
    assert.same({ 2025, 11, 13, 12 }, { c.year, c.month, c.day, c.hour })
  end)

  it("keeps what is strictly newer than DUR before the newest backup", function()
    local list = group({ "2026-01-31 02:00:00", "2026-01-25 02:00:00", "2026-01-21 02:00:00",
                         "2026-01-21 02:00:01", "2026-01-01 02:00:00" })
    assert.equal(3, retention.keep_within(list, "10d"))
    assert.same({ "keep", "keep", "keep", nil, nil },
      { list[1].mark, list[2].mark, list[3].mark, list[4].mark, list[5].mark })
    assert.equal("2026-01-21 02:00:01", vzdump.time_string(list[3]))
    assert.equal("keep-within 10d", list[1].reason)
    assert.equal("keep-within", list[1].rule)
    assert.has_error(function() retention.keep_within(list, "soon") end)
  end)

  it("measures from the newest backup, protected or not", function()
    local list = group({ { "2026-01-31 02:00:00", { protected = true } }, "2026-01-30 02:00:00",
                         "2026-01-20 02:00:00" })
    retention.keep_within(list, "2d")
    assert.same({ "protected", "keep" }, { list[1].mark, list[2].mark })
    assert.is_nil(list[3].mark)
  end)

  it("keeps the N oldest, skipping protected ones", function()
    local list = group({ "2026-01-31 02:00:00", "2026-01-30 02:00:00",
                         "2026-01-29 02:00:00", { "2026-01-28 02:00:00", { protected = true } } })
    assert.equal(2, retention.keep_oldest(list, 2))
    assert.same({ nil, "keep", "keep", "protected" },
      { list[1].mark, list[2].mark, list[3].mark, list[4].mark })
    assert.equal("keep-oldest #1", list[3].reason)
    assert.equal("keep-oldest #2", list[2].reason)
    assert.equal(0, retention.keep_oldest(list, 0))
  end)

  it("combine with the Proxmox rules: earlier rules cover periods", function()
    local stamps = {}
    for d = 31, 1, -1 do stamps[#stamps + 1] = string.format("2026-01-%02d 02:00:00", d) end
    for d = 31, 1, -1 do stamps[#stamps + 1] = string.format("2025-12-%02d 02:00:00", d) end
    local list = group(stamps)
    run_proxmox(list, { keep_within = "10d", keep_daily = 7, keep_oldest = 1 })
    local kept = {}
    for _, b in ipairs(list) do
      if b.mark == "keep" then kept[#kept + 1] = b.day .. ":" .. b.rule end
    end
    -- within 10d: 01-22..01-31; daily 7 more days: 01-15..01-21; oldest: 12-01
    assert.same({ "31:keep-within", "30:keep-within", "29:keep-within", "28:keep-within",
                  "27:keep-within", "26:keep-within", "25:keep-within", "24:keep-within",
                  "23:keep-within", "22:keep-within", "21:keep-daily", "20:keep-daily",
                  "19:keep-daily", "18:keep-daily", "17:keep-daily", "16:keep-daily",
                  "15:keep-daily", "1:keep-oldest" }, kept)
    assert.is_true(retention.has_rules({ keep_within = "1d" }))
    assert.is_true(retention.has_rules({ keep_oldest = 1 }))
    assert.is_false(retention.has_rules({ keep_oldest = 0, keep_all = true }))
  end)
end)

describe("the engine", function()
  it("forces protected, fills unmarked and gives default reasons", function()
    local list = group({ "2026-01-31 02:00:00", { "2026-01-30 02:00:00", { protected = true } },
                         "2026-01-29 02:00:00", "2026-01-28 02:00:00" })
    local policy = {
      name = "mine",
      mark = function(bs, opts, rules)
        assert.equal(7, opts.x)
        assert.is_function(rules.proxmox)
        for _, b in ipairs(bs) do b.mark = "remove" end   -- even the protected one
        bs[1].mark = "keep"
        bs[3].mark = nil
        bs[4].reason = "old"
      end,
    }
    local out = retention.apply(list, policy, { x = 7 })
    assert.same({ "keep", "protected", "remove", "remove" }, marks(out))
    assert.equal("kept by policy mine", out[1].reason)
    assert.equal("protected", out[2].reason)
    assert.equal("not kept by any rule", out[3].reason)
    assert.equal("old", out[4].reason)
  end)

  it("clears old marks before a new run", function()
    local list = group({ "2026-01-31 02:00:00", "2026-01-30 02:00:00" })
    run_proxmox(list, { keep_last = 1 })
    run_proxmox(list, { keep_last = 2 })
    assert.same({ "keep", "keep" }, marks(list))
  end)

  it("rejects invalid marks", function()
    local list = group({ "2026-01-31 02:00:00" })
    assert.has_error(function()
      retention.apply(list, function(bs) bs[1].mark = "maybe" end, {})
    end)
  end)

  it("derives the rule from the reason and gives calendar codes", function()
    local list = group({ "2026-01-31 02:00:00", "2026-01-30 02:00:00", "2026-01-29 02:00:00",
                         { "2026-01-28 02:00:00", { protected = true } } })
    retention.apply(list, function(bs, _, rules)
      rules.keep(bs[1], "keep-quarterly #1")
      rules.keep(bs[2], "keep-daily #1")
      assert.is_false(rules.keep(bs[4], "nope"))
    end, {})
    assert.equal("keep-quarterly", list[1].rule)
    assert.equal("K", retention.code(list[1]))
    assert.equal("D", retention.code(list[2]))
    assert.equal("x", retention.code(list[3]))
    assert.equal("P", retention.code(list[4]))
  end)

  it("runs over groups and counts", function()
    local g = { { key = "qemu/100", backups = group({ "2026-01-31 02:00:00", "2026-01-30 02:00:00" }) } }
    local totals = retention.run(g, assert(retention.load_policy("proxmox")), { keep_last = 1 })
    assert.same({ keep = 1, remove = 1, protected = 0, backups = 2, groups = 1 }, totals)
  end)
end)

describe("policies", function()
  local dir, real_getenv
  local tmpdir, write = H.tmpdir, H.write
  before_each(function()
    dir = tmpdir()
    real_getenv = os.getenv
  end)
  after_each(function()
    os.getenv = real_getenv
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("loads the bundled policies", function()
    local names = require("vma.plugins").names("policy")
    assert.same({ "keep-oldest", "keep-within", "proxmox" }, names)
    for _, name in ipairs(names) do
      local p = assert(retention.load_policy(name))
      assert.is_function(p.mark)
      assert.equal(name, p.name)
      assert.is_string(p.description)
    end
    local p = assert(retention.load_policy())
    assert.equal("proxmox", p.name)
  end)

  it("reports unknown names as usage errors", function()
    local p, err, kind = retention.load_policy("no-such-policy")
    assert.is_nil(p)
    assert.matches("unknown policy 'no%-such%-policy'", err)
    assert.equal("usage", kind)
    p, err, kind = retention.load_policy("../etc")
    assert.is_nil(p)
    assert.equal("usage", kind)
    p, err, kind = retention.load_policy(dir .. "/missing.lua")
    assert.is_nil(p)
    assert.equal("usage", kind)
  end)

  it("loads files, functions and reports broken ones", function()
    write(dir .. "/fn.lua", "return function(bs) for _, b in ipairs(bs) do b.mark = 'keep' end end")
    write(dir .. "/bad.lua", "return {")
    write(dir .. "/nomark.lua", "return { description = 'x' }")
    write(dir .. "/boom.lua", "error('boom')")
    local p = assert(retention.load_policy(dir .. "/fn.lua"))
    assert.equal("fn", p.name)
    local list = group({ "2026-01-31 02:00:00" })
    retention.apply(list, p, {})
    assert.equal("keep", list[1].mark)
    assert.equal("kept by policy fn", list[1].reason)
    for _, name in ipairs({ "bad", "nomark", "boom" }) do
      local q, err, kind = retention.load_policy(dir .. "/" .. name .. ".lua")
      assert.is_nil(q, name)
      assert.is_string(err)
      assert.equal("load", kind)
    end
  end)

  it("finds NAME.lua in $XDG_CONFIG_HOME/vma/policies, else ~/.config", function()
    os.execute("mkdir -p '" .. dir .. "/xdg/vma/policies' '" .. dir .. "/home/.config/vma/policies'")
    write(dir .. "/xdg/vma/policies/mine.lua", "return { description = 'xdg', mark = function() end }")
    write(dir .. "/home/.config/vma/policies/mine.lua",
      "return { description = 'home', mark = function() end }")
    write(dir .. "/xdg/vma/policies/proxmox.lua",
      "return { description = 'override', mark = function() end }")
    os.getenv = function(k)
      if k == "XDG_CONFIG_HOME" then return dir .. "/xdg" end
      if k == "HOME" then return dir .. "/home" end
      return real_getenv(k)
    end
    assert.equal(dir .. "/xdg/vma/policies", require("vma.plugins").dirs("policy")[1])
    assert.equal("xdg", assert(retention.load_policy("mine")).description)
    assert.equal("override", assert(retention.load_policy("proxmox")).description)
    os.getenv = function(k)
      if k == "XDG_CONFIG_HOME" then return nil end
      if k == "HOME" then return dir .. "/home" end
      return real_getenv(k)
    end
    assert.equal("home", assert(retention.load_policy("mine")).description)
  end)

  it("keep-within and keep-oldest check their options", function()
    local w = assert(retention.load_policy("keep-within"))
    assert.is_nil((w.check({})))
    assert.is_nil((w.check({ keep_within = "1d", keep_daily = 3 })))
    assert.is_true(w.check({ keep_within = "1d", keep_daily = 0 }))
    local o = assert(retention.load_policy("keep-oldest"))
    assert.is_nil((o.check({})))
    assert.is_nil((o.check({ keep_oldest = 1, keep_within = "1d" })))
    assert.is_true(o.check({ keep_oldest = 1 }))
    local list = group({ "2026-01-31 02:00:00", "2026-01-30 02:00:00", "2026-01-01 02:00:00" })
    retention.apply(list, w, { keep_within = "2d" })
    assert.same({ "keep", "keep", "remove" }, marks(list))
    retention.apply(list, o, { keep_oldest = 1 })
    assert.same({ "remove", "remove", "keep" }, marks(list))
  end)

  it("example keep-notes keeps noted backups and prunes the others", function()
    local p = assert(retention.load_policy(ROOT .. "/examples/policy-keep-notes.lua"))
    local list = group({ "2026-01-31 02:00:00", { "2026-01-30 02:00:00", { notes = "before upgrade\nmore" } },
                         "2026-01-29 02:00:00", { "2026-01-28 02:00:00", { notes = "  \n" } },
                         "2026-01-27 02:00:00" })
    retention.apply(list, p, { keep_daily = 2 })
    assert.same({ "keep", "keep", "keep", "remove", "remove" }, marks(list))
    assert.equal("has notes: before upgrade", list[2].reason)
    assert.equal("N", retention.code(list[2]))
    assert.equal("keep-daily #2", list[3].reason)
  end)

  it("example quarterly keeps the last backup of each quarter", function()
    local p = assert(retention.load_policy(ROOT .. "/examples/policy-quarterly.lua"))
    assert.equal("--keep-quarterly", p.options[1][1])
    local stamps = {}
    for m = 12, 1, -1 do
      stamps[#stamps + 1] = string.format("2025-%02d-15 02:00:00", m)
      stamps[#stamps + 1] = string.format("2025-%02d-01 02:00:00", m)
    end
    local list = group(stamps)
    retention.apply(list, p, { keep_quarterly = 3 })
    local kept = {}
    for _, b in ipairs(list) do if b.mark == "keep" then kept[#kept + 1] = vzdump.time_string(b) end end
    assert.same({ "2025-12-15 02:00:00", "2025-09-15 02:00:00", "2025-06-15 02:00:00" }, kept)
    assert.equal("Q", retention.code(list[1]))
    -- with a Proxmox rule: it runs first and covers Q4
    retention.apply(list, p, { keep_quarterly = 2, keep_last = 1 })
    kept = {}
    for _, b in ipairs(list) do if b.mark == "keep" then kept[#kept + 1] = b.reason end end
    assert.same({ "keep-last #1", "keep-quarterly #1", "keep-quarterly #2" }, kept)
  end)
end)
