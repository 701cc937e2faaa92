-- wrk script for bench/users: GET /api/users/{id}.
--
--   wrk -tT ... -s bench/users.lua URL -- N [random|seq] [START] [T]
--
-- random (default): each request asks for a random id in 1..N.
-- seq: ids START, START+1, ... in turn (wrapping after N), split between
--      wrk's T threads (give T as wrk's -t); bench/users uses it to warm
--      the cache.
-- Every response is counted: non-200 ones, and X-Cache hit / miss / absent
-- (absent: the cache is off). done() prints one line for bench/users:
--   users.lua: responses=R non200=B hit=H miss=M nocache=X
-- (URL is the gateway's base, e.g. http://127.0.0.1:8080; the path is ours.)
-- BENCH_TOKEN (environment), when set: every request carries
-- "Authorization: Bearer BENCH_TOKEN" (the gateway's authorizer wants a
-- token for GET /api/users/{id}; bench/auth also runs it without one).

local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

local threads = {}
local nthreads = 0

function setup(thread)
   nthreads = nthreads + 1
   thread:set("tid", nthreads)
   table.insert(threads, thread)
end

local n, mode, nextid, step
responses, non200, hit, miss, nocache = 0, 0, 0, 0, 0

function init(args)
   n = tonumber(args[1]) or error("users.lua: give N (the number of users) after --")
   mode = args[2] or "random"
   local start = tonumber(args[3]) or 1
   step = tonumber(args[4]) or 1
   -- tid (1..T) was set in this thread's state by setup(), which runs in
   -- wrk's main state before init()
   nextid = (start - 1 + (tid or 1) - 1) % n
   math.randomseed(os.time() * 1000 + (tid or 1) * 7919)
   math.random(); math.random() -- the first values of a fresh seed are poor
end

function request()
   local id
   if mode == "seq" then
      id = nextid + 1
      nextid = (nextid + step) % n
   else
      id = math.random(1, n)
   end
   return wrk.format("GET", "/api/users/" .. id)
end

function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 then
      non200 = non200 + 1
   end
   local c = headers["X-Cache"]
   if c == "hit" then
      hit = hit + 1
   elseif c == "miss" then
      miss = miss + 1
   else
      nocache = nocache + 1
   end
end

function done(summary, latency, requests)
   local t = {responses = 0, non200 = 0, hit = 0, miss = 0, nocache = 0}
   for _, thread in ipairs(threads) do
      for k in pairs(t) do
         t[k] = t[k] + (tonumber(thread:get(k)) or 0)
      end
   end
   io.write(string.format("users.lua: responses=%d non200=%d hit=%d miss=%d nocache=%d\n",
                          t.responses, t.non200, t.hit, t.miss, t.nocache))
end
