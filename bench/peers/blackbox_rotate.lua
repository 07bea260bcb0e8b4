-- wrk script: each request is one blackbox_exporter probe, rotating over a
-- URL list so consecutive probes hit different targets, as a Prometheus
-- server scraping many blackbox jobs does.
--
--   wrk -t2 -c100 -d5s -s blackbox_rotate.lua http://127.0.0.1:9115 -- URLS
--
-- URLS holds one target URL per line; the module is http_2xx.

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local paths = {}
local next_path = 1

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = "/probe?module=http_2xx&target=" .. urlencode(line)
    end
  end
  -- Threads start at different points of the list.
  next_path = (thread_index or 0) * 7919 % #paths + 1
end

function request()
  local path = paths[next_path]
  next_path = next_path % #paths + 1
  return wrk.format("GET", path)
end

-- blackbox_exporter answers 200 even when the probe fails; the body's
-- probe_success line says how it went.  Count failures so the run can tell.
failures = 0
function response(status, headers, body)
  if status ~= 200 or not body:find("probe_success 1", 1, true) then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("failures")
  end
  io.write(string.format("probe_failures %d\n", total))
end
