-- Guarded reads: every courier of the set-up reads its own deliveries in full (purpose=delivery).
-- wrk -s reads.lua URL -- TARGETS
package.path = package.path .. ";" .. debug.getinfo(1).source:match("@?(.*/)") .. "?.lua"
require "common"
bench.name = "reads"
local targets, k
function init(args)
  targets = bench.targets(args[1])
  k = bench.start(#targets)
end
function request()
  k = k % #targets + 1
  local t = targets[k]
  return wrk.format("GET", "/v1/waybills/" .. t.no .. "?purpose=delivery",
    { ["Authorization"] = "Bearer " .. t.token, ["X-Device-Id"] = "dev-" .. t.courier })
end
done = bench.done

