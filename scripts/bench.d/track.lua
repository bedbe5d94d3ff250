-- Public tracking lookups: customers, each from an address of its own (X-Forwarded-For through the trusted
-- proxy the bench plays), asking for the set-up's waybills. No account; the node meters every address.
-- wrk -s track.lua URL -- TARGETS
package.path = package.path .. ";" .. debug.getinfo(1).source:match("@?(.*/)") .. "?.lua"
require "common"
bench.name = "track"
local targets, k
function init(args)
  targets = bench.targets(args[1])
  k = bench.start(#targets)
  math.randomseed(tid * 7919)
end
function request()
  k = k % #targets + 1
  local ip = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format("GET", "/track/" .. targets[k].no, { ["X-Forwarded-For"] = ip })
end
done = bench.done
