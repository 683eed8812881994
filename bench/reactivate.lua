-- wrk script of bench/run: REST DeactivateUser/ReactivateUser over HTTP/1.1, alternating on a
-- pool of users so that every call succeeds.
--
--   wrk -t1 -c16 -s bench/reactivate.lua URL -- IDS_FILE TOKEN_FILE BASE COUNT
--
-- Request k goes to user ids[BASE + k % COUNT]: the first pass over the pool deactivates, the
-- next reactivates, and so on. A user's next call is COUNT requests later, long after its
-- previous one answered with 16 connections and COUNT = 4096. `done` prints one JSON line.

local ids, headers = {}, {}
local base, count, counter = 0, 1, 0

function init(args)
    for line in io.lines(args[1]) do
        ids[#ids + 1] = line
    end
    local f = assert(io.open(args[2]))
    local token = f:read("*l")
    f:close()
    base, count = tonumber(args[3]), tonumber(args[4])
    headers["Authorization"] = "Bearer " .. token
    headers["Content-Type"] = "application/json"
end

-- wrk builds one request per thread that it never sends (so a pool user would miss one
-- step); that first one is a harmless GET /healthz.
local first = true

function request()
    if first then
        first = false
        return wrk.format("GET", "/healthz")
    end
    local i = counter % count
    local verb = (math.floor(counter / count) % 2 == 0) and "_deactivate" or "_reactivate"
    counter = counter + 1
    return wrk.format("POST", "/management/v1/users/" .. ids[base + i + 1] .. "/" .. verb, headers, "{}")
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"rps":%.1f,"requests":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\n',
        summary.requests / (summary.duration / 1e6), summary.requests,
        e.connect + e.read + e.write + e.status + e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
