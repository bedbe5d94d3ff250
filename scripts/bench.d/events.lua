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
local token, prefix, half, batch, courier, lo, count, pos, pass
local outlet = "O001"
local parts = {}
function init(args)
  token, prefix, half, batch = args[1], args[2], tonumber(args[3]), tonumber(args[4])
  -- A courier delivers from the parcels' destination outlet (ingest.lua's O002), where every event then is.
  if args[5] and args[5] ~= "" then courier, outlet = args[5], "O002" end
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
-- With a courier (BENCH_NUMBERS), a delivery day: the thread's waybills in segments, each segment's parcels picked
-- up, then at the outlet, then out for delivery (each binding a privacy number), a third of the events each. A
-- segment holds twice the events the thread's connections keep in flight, so a parcel's next event never
-- overtakes its last; the half's last segment takes the rest (a short last segment of its own would let them).
-- Once every waybill went out, the walk goes on as failed deliveries: back to the outlet and out again (the number
-- kept).
local first_day = { "picked_up", "at_outlet", "out_for_delivery" }
local again = { "at_outlet", "out_for_delivery" }
local seg, segstart, stage, idx = 0, 0, 1, 0
local function next_delivery()
  if seg == 0 then
    local conns = tonumber(os.getenv("BENCH_CONN_PER_THREAD") or "16")
    seg = math.max(1000, 2 * conns * math.max(batch, 1))
  end
  local stages = pass == 0 and first_day or again
  local len = count - segstart
  if len >= 2 * seg then len = seg end
  if idx >= len then
    idx, stage = 0, stage + 1
    if stage > #stages then
      stage, segstart = 1, segstart + len
      if segstart >= count then segstart, pass = 0, pass + 1 end
      stages = pass == 0 and first_day or again
    end
  end
  idx = idx + 1
  return string.format("%s%02d%09d", prefix, tid, lo + segstart + idx), stages[stage]
end
local function next_event()
  if courier then return next_delivery() end
  if pos >= count then pos, pass = 0, pass + 1 end
  pos = pos + 1
  local kind = pass == 0 and "picked_up" or kinds[2 - pass % 2]
  return string.format("%s%02d%09d", prefix, tid, lo + pos), kind
end
local function with_courier(kind)
  if kind == "out_for_delivery" then return string.format(',"courier":"%s"', courier) end
  return ""
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
      string.format('{"type":"%s","outlet":"%s"%s}', kind, outlet, with_courier(kind)))
  end
  for i = 1, batch do
    local no, kind = next_event()
    parts[i] = string.format('{"waybill_no":"%s","type":"%s","outlet":"%s"%s}', no, kind, outlet, with_courier(kind))
  end
  return wrk.format("POST", "/v1/events", headers(), '{"events":[' .. table.concat(parts, ",", 1, batch) .. ']}')
end
-- Only answers to real events count (a probe's answer does not).
function response(status)
  if ok < (sent_real or 0) then bench.answered(status) end
end
done = bench.done
