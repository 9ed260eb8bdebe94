-- wrk script: one method, round-robin over a list of paths, one fixed header and an
-- optional fixed body. Used by bench/vs_openbao.py for OpenBao reads (GET with
-- X-Vault-Token) and for the writes of both servers.
--
--   wrk -t T -c C -d D -s bench/roundrobin.lua http://127.0.0.1:PORT -- \
--       PATHS_FILE METHOD HEADER_NAME HEADER_VALUE [BODY_FILE]
--
-- PATHS_FILE has one path a line; thread i starts at a different offset. Prints the
-- same summary lines as bench/presigned.lua ("PRESIGNED thread=i loaded=N issued=N
-- exhausted=0 s200=N ..." and "PRESIGNED_LATENCY_US ..."), so that
-- signed_reads.run_wrk parses both. Nothing is ever exhausted: paths are reused.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local paths = {}
  for line in f:lines() do
    if #line > 0 then paths[#paths + 1] = line end
  end
  f:close()
  local method, hname, hvalue = args[2], args[3], args[4]
  local body = nil
  if args[5] then
    local b = assert(io.open(args[5], "rb"))
    body = b:read("*a")
    b:close()
  end
  local headers = {}
  headers[hname] = hvalue
  if body then headers["Content-Type"] = "application/json" end
  reqs = {}
  for i, p in ipairs(paths) do
    reqs[i] = wrk.format(method, p, headers, body)
  end
  loaded = #reqs
  pos = ((id - 1) * 7919) % loaded -- spread the threads over the list
  issued = 0
  exhausted = 0
  counts = {}
end

function request()
  issued = issued + 1
  pos = pos % loaded + 1
  return reqs[pos]
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
