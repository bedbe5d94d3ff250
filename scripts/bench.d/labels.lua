-- Label prints: each origin outlet's print station prints its parcels' labels as ZPL.
-- wrk -s labels.lua URL -- TARGETS STATIONS   (STATIONS: lines "outlet token")
package.path = package.path .. ";" .. debug.getinfo(1).source:match("@?(.*/)") .. "?.lua"
require "common"
bench.name = "labels"
local jobs, k = {}, 0
function init(args)
  local stations = {}
  for line in io.lines(args[2]) do
    local o, t = line:match("^(%S+) (%S+)")
    if o then stations[o] = t end
  end
  for _, t in ipairs(bench.targets(args[1])) do
    if stations[t.origin] then table.insert(jobs, { no = t.no, token = stations[t.origin], outlet = t.origin }) end
  end
  k = bench.start(#jobs)
end
function request()
  k = k % #jobs + 1
  local j = jobs[k]
  return wrk.format("GET", "/v1/waybills/" .. j.no .. "/label?format=zpl",
    { ["Authorization"] = "Bearer " .. j.token, ["X-Device-Id"] = "printer-" .. j.outlet })
end
done = bench.done

