-- Ingest over HTTP: batches of generated waybills, numbers PREFIX + thread + serial, batch k of a thread holding
-- serials k*BATCH+1 .. (k+1)*BATCH.
-- wrk -s ingest.lua URL -- TOKEN PREFIX BATCH
--
-- The count events.lua walks must be exact: an events batch that meets a waybill that is not there is refused
-- whole (a 404 row, all or nothing), its waybills stay "created", and every later pass over them is a 409. When
-- wrk stops, up to one batch a connection is unanswered, and answers come in any order (on a slow machine an
-- early batch can still be running), so the load alone cannot know which landed. Hence two runs:
--   1. the load (no BENCH_FILL): at the end each thread's line in $BENCH_STATE is "tid waybills from sent",
--      `from` being the answered batches less one a connection. An unanswered batch below `from` was sent
--      whole while later ones were answered, and the node finishes a request whose client has left;
--   2. the fill (BENCH_FILL=1, one connection a thread, run by scripts/bench once the node has had time to
--      finish those): each thread sends its batches `from`..`sent-1` again, one at a time, until each is
--      answered 201 (stored now) or 409 (already stored: a batch is stored all or none), then stops; its
--      lines are "tid waybills", every batch sent counted. This also covers a batch wrk was still writing.
package.path = package.path .. ";" .. debug.getinfo(1).source:match("@?(.*/)") .. "?.lua"
require "common"
bench.name = "ingest"
local fill = os.getenv("BENCH_FILL") == "1"
local token, prefix, batch, todo, attempts
-- A global, so that done() can read each thread's (thread:get reads globals).
sent = 0
local parts = {}
local function party(i, name)
  return string.format(
    '{"name":"%s","phone":"139%08d","address":{"province":"浙江省","city":"杭州市","district":"萧山区","detail":"建设一路%d号"}}',
    name, i % 100000000, i % 997)
end
local function batch_request(k)
  local first = k * batch
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
function init(args)
  token, prefix, batch = args[1], args[2], tonumber(args[3])
  per_request = batch
  sent = 0
  if fill then
    for line in io.lines(os.getenv("BENCH_STATE")) do
      local t, from, all = line:match("^(%d+) %d+ (%d+) (%d+)")
      if tonumber(t) == tid then todo, sent = tonumber(from), tonumber(all) end
    end
    todo, sent, attempts = todo or 0, sent or 0, 0
    bench_name = "ingest_fill"
  end
end
function request()
  if not bench.primed() then return bench.probe() end
  if fill then
    if todo >= sent then
      -- wrk runs for its whole duration whatever a thread does: say this one is done (scripts/bench stops wrk
      -- with SIGINT once every thread has, and wrk then calls done()).
      if not finished then
        finished = true
        local f = assert(io.open(os.getenv("BENCH_FILL_DONE"), "a"))
        f:write(tid, "\n")
        f:close()
      end
      return bench.probe()
    end
    attempts = attempts + 1
    return batch_request(todo)
  end
  sent = sent + 1
  return batch_request(sent - 1)
end
if fill then
  -- One connection a thread: each answer is to the batch just sent.
  function response(status)
    if todo >= sent then return end
    if status == 201 or status == 409 then
      todo, attempts = todo + 1, 0
    elseif attempts >= 5 then
      -- Never stored: the count stops below it.
      io.stderr:write(string.format("ingest fill: batch %d of thread %d answered %d five times\n", todo, tid, status))
      sent = todo
    end
  end
end
function done(summary, latency, requests)
  bench.done(summary, latency, requests)
  local f = assert(io.open(os.getenv("BENCH_STATE"), "w"))
  for _, t in ipairs(bench.threads) do
    local all, per = t:get("sent") or 0, t:get("per_request") or 1
    if fill then
      f:write(string.format("%d %d\n", t:get("tid"), all * per))
    else
      local from = math.max(0, (t:get("ok") or 0) - 1 - tonumber(os.getenv("BENCH_CONN_PER_THREAD") or "16"))
      f:write(string.format("%d %d %d %d\n", t:get("tid"), from * per, from, all))
    end
  end
  f:close()
end
