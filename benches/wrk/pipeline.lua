-- wrk script for the pipelined profile: every write carries DEPTH requests back to back
-- (default 16; pass another depth after `--`). wrk counts each response, so req/s is per request.
-- Latency is not meaningful here (wrk times the batch, not each request) and is not reported.
-- done() prints the same JSON line as report.lua.
local depth = 16
local batch

init = function(args)
  depth = tonumber(args[1]) or depth
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format("GET", "/")
  end
  batch = table.concat(r)
end

request = function()
  return batch
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"depth":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, depth))
end
