-- wrk script of bench/bench_processes.py: GET the slot search, each request with the next
-- agent's bearer token (tokens and the path come from the arguments after "--"), and at
-- the end one JSON line with the counts and the latency percentiles (microseconds).
local tokens = {}
local path = "/"
local next_token = 0

function init(args)
  path = args[1]
  for i = 2, #args do
    tokens[#tokens + 1] = args[i]
  end
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. tokens[next_token]})
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
