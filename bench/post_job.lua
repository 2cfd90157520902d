-- wrk script: durable job submission, POST /v1/jobs with a prompt-only JSON body.
-- The token comes from BENCH_TOKEN (default bench-token-123456). Used by bench/run.sh:
--   wrk -t2 -c64 -d10s --latency -s bench/post_job.lua http://127.0.0.1:PORT/v1/jobs
-- Besides wrk's usual text it prints one line "WRK_JSON {...}" that run.sh reads.
local token = os.getenv("BENCH_TOKEN") or "bench-token-123456"
wrk.method = "POST"
wrk.body = '{"prompt": "A lighthouse on a cliff at dawn, waves rolling in."}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local expected = 202

-- every thread counts the responses whose status is not the expected one
local threads = {}
function setup(thread) table.insert(threads, thread) end
local unexpected = 0
function response(status, headers, body)
  if status ~= expected then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("unexpected") or 0) end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"mean_ms":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f,"unexpected_status":%d,"non_2xx_3xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), latency.mean / 1000,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, bad, e.status, e.connect, e.read, e.write, e.timeout))
end
