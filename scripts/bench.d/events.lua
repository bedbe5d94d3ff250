-- Status events over the waybills ingest.lua stored: one request per event (BATCH = 0) or BATCH events per
-- POST /v1/events. Each thread walks its waybills of half HALF (1 = first half, 2 = second, so two runs never
-- meet) over and over: picked_up on the first pass, then in_transit and at_outlet in turn (a parcel may go
-- back and forth between hubs), so a run never runs out of valid events.
-- A thread's half must hold more events than its connections keep in flight (else a waybill's next event can
-- overtake its last and conflict): scripts/bench ingests for twice a run's time to have that.
-- BENCH_STATE=file-from-ingest wrk -s events.lua URL -- TOKEN PREFIX HALF BATCH
package.path = package.path .. ";" .. debug.getinfo(1).source:match("@?(.*/)") .. "?.lua"
require "common"
bench.name = "events"
local token, prefix, half, batch, lo, count, pos, pass
local parts = {}
function init(args)
  token, prefix, half, batch = args[1], args[2], tonumber(args[3]), tonumber(args[4])
  local total = 0
  for line in io.lines(os.getenv("BENCH_STATE")) do
    local t, n = line:match("^(%d+) (%d+)")
    if tonumber(t) == tid then total = tonumber(n) end
  end
  count = math.floor(total / 2)
  lo = (half - 1) * count
  pos, pass = 0, 0
  if batch == 0 then bench_name = "events_single" else bench_name = "events_batch"; per_request = batch end
end
local kinds = { [0] = "picked_up", "in_transit", "at_outlet" }
local function next_event()
  if pos >= count then pos, pass = 0, pass + 1 end
  pos = pos + 1
  local kind = pass == 0 and "picked_up" or kinds[2 - pass % 2]
  return string.format("%s%02d%09d", prefix, tid, lo + pos), kind
end
local headers = function()
  return { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json", ["X-Device-Id"] = "bench-scanner" }
end
function request()
  if count == 0 or not bench.primed() then return bench.probe() end
  sent_real = (sent_real or 0) + 1
  if batch == 0 then
    local no, kind = next_event()
    return wrk.format("POST", "/v1/waybills/" .. no .. "/events", headers(),
      string.format('{"type":"%s","outlet":"O001"}', kind))
  end
  for i = 1, batch do
    local no, kind = next_event()
    parts[i] = string.format('{"waybill_no":"%s","type":"%s","outlet":"O001"}', no, kind)
  end
  return wrk.format("POST", "/v1/events", headers(), '{"events":[' .. table.concat(parts, ",", 1, batch) .. ']}')
end
-- Only answers to real events count (a probe's answer does not).
function response(status)
  if ok < (sent_real or 0) then bench.answered(status) end
end
done = bench.done
