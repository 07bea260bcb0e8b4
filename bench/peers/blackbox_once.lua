-- wrk script: every URL of a list probed exactly once through
-- blackbox_exporter (W6-W8), each result classified from the probe's metrics.
--
--   wrk -t2 -c1000 -d300s -s blackbox_once.lua http://127.0.0.1:9115 \
--       -- URLS MODULE THREADS TIMEOUT_S DONE_PREFIX
--
-- Thread i takes the URLs whose line number is i modulo THREADS (so both
-- threads hold the same mix) and sends each once, one /probe per request;
-- wrk keeps -c connections busy, so -c is the concurrency.  A connection
-- that finds its thread's share all sent waits (delay()) instead of probing
-- again.  When a thread has every answer it writes DONE_PREFIX.<i>, one
-- "<kind> <count>" per line, and stops; wrk's main thread only stops at -d,
-- so run_bench sends it SIGINT once every thread's file is there.
--
-- blackbox_exporter answers 200 whatever the probe found; the kind comes
-- from the body: probe_success 1 is "ok"; a duration within 50 ms of the
-- module's timeout is "timeout"; probe_ip_protocol 0 (the name did not
-- resolve) is "dns_error"; no connect phase is "connect_error" (refused);
-- a connection but no HTTP status is "tls_or_io_error"; else "bad_status".

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
local reserved, sent, answered = 0, 0, 0
local timeout_s = 10
local done_prefix = nil
local counts = {}

function init(args)
  local module, nthreads = args[2], tonumber(args[3])
  timeout_s = tonumber(args[4])
  done_prefix = args[5]
  local line_no = 0
  for line in io.lines(args[1]) do
    if line ~= "" then
      if line_no % nthreads == thread_index then
        paths[#paths + 1] = "/probe?module=" .. module .. "&target=" ..
                            urlencode(line)
      end
      line_no = line_no + 1
    end
  end
end

-- Called before each request a connection is about to send: the first
-- #paths calls reserve a URL each, later ones park the connection.
function delay()
  if reserved < #paths then
    reserved = reserved + 1
    return 0
  end
  return 3600000
end

function request()
  if reserved == 0 then
    -- wrk's start-up check of the script (before any connection): build
    -- a request but send nothing, so no URL is used up.
    return wrk.format("GET", paths[1])
  end
  sent = sent + 1
  return wrk.format("GET", paths[sent])
end

local function metric(body, name)
  local value = body:match("\n" .. name .. " ([^\n]+)")
  return value and tonumber(value)
end

local function classify(status, body)
  if status ~= 200 then
    return "exporter_http_" .. status
  end
  if metric(body, "probe_success") == 1 then
    return "ok"
  end
  local duration = metric(body, "probe_duration_seconds") or 0
  if duration >= timeout_s - 0.05 then
    return "timeout"
  end
  if (metric(body, "probe_ip_protocol") or 0) == 0 then
    return "dns_error"
  end
  if (metric(body, "probe_http_status_code") or 0) == 0 then
    local connect = metric(body, 'probe_http_duration_seconds{phase="connect"}')
    if (connect or 0) == 0 then
      return "connect_error"
    end
    return "tls_or_io_error"
  end
  return "bad_status"
end

function response(status, headers, body)
  local kind = classify(status, body)
  counts[kind] = (counts[kind] or 0) + 1
  answered = answered + 1
  if answered == #paths then
    local out = io.open(done_prefix .. "." .. thread_index, "w")
    for name, count in pairs(counts) do
      out:write(name, " ", count, "\n")
    end
    out:close()
    wrk.thread:stop()
  end
end
