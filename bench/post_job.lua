-- wrk script: durable job submission, POST /v1/jobs with a prompt-only JSON body.
-- The token comes from the BENCH_TOKEN environment variable (default: bench-token-123456).
local token = os.getenv("BENCH_TOKEN") or "bench-token-123456"
wrk.method = "POST"
wrk.body = '{"prompt": "A lighthouse on a cliff at dawn, waves rolling in."}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

-- Count non-202 responses by status so the summary can report them.
local bad = 0
function response(status, headers, body)
  if status ~= 202 then bad = bad + 1 end
end
