-- wrk script for load.sh: GET /v1/products/p-<i> with i drawn from a Zipf
-- distribution over PRODUCTS products (exponent ZIPF_S), so a few hot
-- products take most reads, as on a real shop. The cumulative
-- distribution is built once per wrk thread; each request is a binary
-- search in it.
local n = tonumber(os.getenv("PRODUCTS") or "100000")
local s = tonumber(os.getenv("ZIPF_S") or "1.1")
local cdf = {}
local threads = 0

-- setup runs in the main state once per thread: give each its own seed.
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local sum = 0
  for k = 1, n do
    sum = sum + 1 / (k ^ s)
    cdf[k] = sum
  end
  for k = 1, n do
    cdf[k] = cdf[k] / sum
  end
  math.randomseed(os.time() * 100 + (tid or 0))
end

local function pick()
  local u = math.random()
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo - 1
end

function request()
  return wrk.format("GET", "/v1/products/p-" .. pick())
end

-- Print the 50th and 99th latency percentiles and the rate in one line
-- that load.sh greps; wrk reports latency in microseconds.
function done(summary, latency, requests)
  io.write(string.format("wrk-result: requests %d duration_s %.2f reads_per_s %.0f p50_ms %.3f p99_ms %.3f max_ms %.3f non2xx %d errors %d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
