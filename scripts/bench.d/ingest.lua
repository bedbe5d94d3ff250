-- Ingest over HTTP: batches of generated waybills, numbers PREFIX + thread + serial. At the end each thread's
-- count of waybills surely stored is written to $BENCH_STATE ("tid count" lines), for events.lua.
-- wrk -s ingest.lua URL -- TOKEN PREFIX BATCH
package.path = package.path .. ";" .. debug.getinfo(1).source:match("@?(.*/)") .. "?.lua"
require "common"
bench.name = "ingest"
local token, prefix, batch, sent
local parts = {}
local function party(i, name)
  return string.format(
    '{"name":"%s","phone":"139%08d","address":{"province":"浙江省","city":"杭州市","district":"萧山区","detail":"建设一路%d号"}}',
    name, i % 100000000, i % 997)
end
function init(args)
  token, prefix, batch = args[1], args[2], tonumber(args[3])
  per_request = batch
  sent = 0
end
function request()
  if not bench.primed() then return bench.probe() end
  local first = sent * batch
  sent = sent + 1
  for i = 1, batch do
    local n = first + i
    parts[i] = string.format(
      '{"waybill_no":"%s%02d%09d","merchant":"M001","origin_outlet":"O001","destination_outlet":"O002","sender":%s,"recipient":%s,"items":"书"}',
      prefix, tid, n, party(n, "王芳"), party(n + 7, "李雷"))
  end
  return wrk.format("POST", "/v1/waybills", { ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json", ["X-Device-Id"] = "bench-ingest" },
    '{"waybills":[' .. table.concat(parts, ",", 1, batch) .. ']}')
end
function done(summary, latency, requests)
  bench.done(summary, latency, requests)
  -- Batches still in flight at the stop may or may not have landed, and answers come in any order: the
  -- waybills surely there are those of the batches answered, less one a connection (and the probe's answer).
  -- Known gap (the likely cause of events_batch 409s seen on a slow machine; the pass-0 refusal itself was not
  -- caught): this assumes the batches unanswered at the stop are the latest. On a slow machine (ingest p99
  -- of several seconds) an early batch can still be unanswered, leaving a hole below the count; events.lua's
  -- batch that meets it is refused whole (a 404 row, all or nothing), its waybills stay "created", and every
  -- later pass over them is a 409 ("created -> in_transit"), counted as errors of events_batch.
  local f = assert(io.open(os.getenv("BENCH_STATE"), "w"))
  for _, t in ipairs(bench.threads) do
    local sure = math.max(0, (t:get("ok") or 0) - 1 - tonumber(os.getenv("BENCH_CONN_PER_THREAD") or "16"))
    f:write(string.format("%d %d\n", t:get("tid"), sure * (t:get("per_request") or 1)))
  end
  f:close()
end
