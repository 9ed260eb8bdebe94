-- wrk script: send pre-signed raw HTTP requests, each exactly once.
--
--   wrk -t T -c C -d D -s bench/presigned.lua http://127.0.0.1:PORT -- PREFIX
--
-- Thread i (1-based) loads PREFIX.i: raw HTTP/1.1 requests, each ending with an
-- empty line ("\r\n\r\n", GET without a body), made by bench/signed_reads.py.
-- Every request carries its own nonce, so a request must never be sent twice (the
-- server would answer 401 and lock the address out). When a thread runs out, it
-- sends GET /api/sys/health instead and counts those as "exhausted": a run with
-- exhausted > 0 did not generate enough requests and is reported as invalid.
-- At the end, one line per thread "PRESIGNED thread=i issued=N exhausted=N s200=N ...".

local threads = {}
local prefix = nil

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  local f = assert(io.open(prefix .. "." .. id, "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  local pos = 1
  while true do
    local stop = string.find(data, "\r\n\r\n", pos, true)
    if not stop then break end
    reqs[#reqs + 1] = string.sub(data, pos, stop + 3)
    pos = stop + 4
  end
  loaded = #reqs
  issued = 0
  exhausted = 0
  counts = {}
  filler = wrk.format("GET", "/api/sys/health")
end

function request()
  issued = issued + 1
  if issued <= loaded then
    local r = reqs[issued]
    reqs[issued] = nil -- free memory as we go
    return r
  end
  exhausted = exhausted + 1
  return filler
end

function response(status, headers, body)
  local key = "s" .. status
  counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
  for i, thread in ipairs(threads) do
    local line = string.format("PRESIGNED thread=%d loaded=%d issued=%d exhausted=%d",
      i, thread:get("loaded"), thread:get("issued"), thread:get("exhausted"))
    local c = thread:get("counts")
    for k, v in pairs(c) do
      line = line .. string.format(" %s=%d", k, v)
    end
    io.write(line .. "\n")
  end
  io.write(string.format("PRESIGNED_LATENCY_US p50=%d p99=%d p999=%d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
