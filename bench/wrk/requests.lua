-- wrk script: replays prepared requests, one per line of a file, each thread its own share.
-- args: method path file|- nthreads header...   (file "-" sends no body)
-- A line is a request body; a thread cycles through its lines, so a file with as
-- many unique lines as requests gives every request a fresh body (a fresh jti).
-- A file with fewer lines than threads is sent whole by every thread.
local created = 0

function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

function init(args)
  local method, path, file, nthreads = args[1], args[2], args[3], tonumber(args[4])
  local headers = {}
  for i = 5, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  prepared = {}
  if file == "-" then
    prepared[1] = wrk.format(method, path, headers, nil)
  else
    local lines = {}
    for line in io.lines(file) do
      lines[#lines + 1] = line
    end
    -- Fewer lines than threads (one body for every request): every thread sends them all.
    -- Sharing them out would leave a thread with nothing to send, and its connections open
    -- and silent for the whole run (which a threaded server pays for, an evented one not).
    for n, line in ipairs(lines) do
      if #lines < nthreads or (n - 1) % nthreads == tid then
        prepared[#prepared + 1] = wrk.format(method, path, headers, line)
      end
    end
  end
  index = 0
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors_status":%d,"errors_socket":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
