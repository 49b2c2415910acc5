-- post_task.lua - wrk script for `make bench`: one small task per request,
-- POST /v1/queues/QUEUE/tasks with a bearer token (WQ_BENCH_TOKEN).
wrk.method = "POST"
wrk.body = '{"type":"noop","payload":{"user":42,"action":"welcome-mail"}}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("WQ_BENCH_TOKEN")
if token ~= nil and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
end

-- Machine-readable figures after wrk's own report.  errors.status counts
-- answers >= 400 (a 503 is not a success): a benchmark of errors is no
-- benchmark, run.sh refuses it.
function done(summary, latency, requests)
    io.write(string.format(
        "wq requests=%d seconds=%.3f rate=%.0f p50_ms=%.2f p99_ms=%.2f " ..
        "errors=%d\n",
        summary.requests, summary.duration / 1e6,
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.errors.status + summary.errors.connect +
        summary.errors.read + summary.errors.write + summary.errors.timeout))
end
