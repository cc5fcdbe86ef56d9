-- wrk.lua - wrk's side of the bench (a cross-check of tests/bench/loadgen.c against antennad).
--   WRK_MODE=status  GET /v1/jobs/{id}, id drawn from WRK_IDS ("LO-HI")
--   WRK_MODE=submit  POST /v1/jobs with a JSON body and a fresh Idempotency-Key per request
-- WRK_TOKEN is the bearer token. At the end prints one line "WRKJSON {...}" for tests/bench/run.sh.
local mode = os.getenv("WRK_MODE") or "status"
local token = os.getenv("WRK_TOKEN") or ""
local lo, hi = string.match(os.getenv("WRK_IDS") or "1-1", "^(%d+)-(%d+)$")
lo, hi = tonumber(lo) or 1, tonumber(hi) or 1

local threads = {}
local counter, prefix = 0, ""
local body = '{"script":"#!/bin/bash\\nsleep 1\\n","name":"bench-wrk","gpus":1,"gpu_type":"h100",'
    .. '"cpus_per_task":1,"time_minutes":10}'

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    math.randomseed(os.time() * 1000 + (tid or 0))
    prefix = string.format("wrk-%08x-%02d", math.random(0, 0x7fffffff), tid or 0)
end

function request()
    counter = counter + 1
    if mode == "submit" then
        return wrk.format("POST", "/v1/jobs", {
            ["Authorization"] = "Bearer " .. token,
            ["Content-Type"] = "application/json",
            ["Idempotency-Key"] = prefix .. "-" .. counter,
        }, body)
    end
    local id = lo + (counter * 7919 + (tid or 0)) % (hi - lo + 1)
    return wrk.format("GET", "/v1/jobs/" .. id, { ["Authorization"] = "Bearer " .. token })
end

function done(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        'WRKJSON {"tool": "wrk", "requests": %d, "seconds": %.3f, "rps": %.1f, '
            .. '"non_2xx": %d, "ok_rps": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, '
            .. '"timeout": %d}, "latency_us": {"p50": %.1f, "p99": %.1f, "max": %.1f}}\n',
        summary.requests, secs, summary.requests / secs, e.status,
        (summary.requests - e.status) / secs, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99), latency.max))
end
