-- Shared by the bench scripts: one machine-readable line at the end of a wrk run.
--   BENCH <name> requests=<n> seconds=<s> per_second=<r> p50_ms=<m> p99_ms=<m> non2xx=<n> socket_errors=<n> items=<n>
-- `items` counts the work units answered 2xx (waybills or events: `per_request` each), `items_per_second` their rate.
bench = { name = "bench", per_request = 1 }
ok = 0

-- Counts a 2xx answer; scripts that stop by themselves call this from their own `response`.
function bench.answered(status)
  if status < 300 then ok = ok + 1 end
end
response = bench.answered

-- BENCH_DELAY_MS: each connection waits this long before each request (a steady rate for the soak, not a
-- flood): rate ≈ connections × 1000 / (delay + latency).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
  function delay() return pause end
end

bench.threads = {}
local threads = bench.threads
function bench.done(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  local socket = e.connect + e.read + e.write + e.timeout
  local items, name = 0, bench.name
  for _, t in ipairs(threads) do
    items = items + (t:get("ok") or 0) * (t:get("per_request") or 1)
    name = t:get("bench_name") or name
  end
  io.write(string.format(
    "BENCH %s requests=%d seconds=%.2f per_second=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d items=%d items_per_second=%.0f\n",
    name, summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.status, socket, items, items / s))
end

-- Reads `drive --targets` lines: token, waybill, courier, destination outlet, origin outlet.
function bench.targets(path)
  local t, integration = {}, nil
  for line in io.lines(path) do
    local a, b, c, d, o = line:match("^(%S+) (%S+) ?(%S*) ?(%S*) ?(%S*)")
    if a == "integration" then integration = b
    elseif a then table.insert(t, { token = a, no = b, courier = c, outlet = d, origin = o }) end
  end
  return t, integration
end

-- wrk calls the first thread's `request` once to check it, and sends nothing: scripts that number their work
-- answer that first call with this harmless request instead of spending a number on it.
function bench.primed()
  if bench.was_primed then return true end
  bench.was_primed = true
  return false
end
bench.probe = function() return wrk.format("GET", "/healthz") end

-- Where thread `tid` starts its walk through `n` targets: its place among every wrk thread of the run, spread
-- evenly. A set-up with two nodes runs one wrk process per node, each told its first thread's place
-- (BENCH_SLOT) and the run's thread count (BENCH_SLOTS), so that its threads start as far apart as one
-- process's two threads do, not in step on the same parcels (two nodes' label prints of one parcel at the same
-- moment wait on each other's count of it). Alone, a process's threads take slots 0 and 1 of 2.
function bench.start(n)
  local first = tonumber(os.getenv("BENCH_SLOT") or "0")
  local all = tonumber(os.getenv("BENCH_SLOTS") or "2")
  return math.floor(n * (first + tid - 1) / all)
end

-- Each wrk thread gets a number, so threads can take disjoint ranges of generated waybills.
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end
