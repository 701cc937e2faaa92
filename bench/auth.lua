-- wrk script for bench/auth: POST /api/token, the OAuth2 password grant,
-- for one user, on every request.
--
--   wrk -tT ... -s bench/auth.lua URL/api/token -- USERNAME PASSWORD
--
-- Every response is counted: non-200 ones, and 200s whose body holds no
-- access_token. done() prints one line for bench/auth:
--   auth.lua: responses=R non200=B notoken=T

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

responses, non200, notoken = 0, 0, 0

local function enc(s) -- application/x-www-form-urlencoded
   return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function init(args)
   local user = args[1] or error("auth.lua: give USERNAME PASSWORD after --")
   local pass = args[2] or error("auth.lua: give USERNAME PASSWORD after --")
   -- wrk builds the request from these after init()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   wrk.body = "grant_type=password&username=" .. enc(user) .. "&password=" .. enc(pass)
end

function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 then
      non200 = non200 + 1
   elseif not body:find('"access_token":"', 1, true) then
      notoken = notoken + 1
   end
end

function done(summary, latency, requests)
   local t = {responses = 0, non200 = 0, notoken = 0}
   for _, thread in ipairs(threads) do
      for k in pairs(t) do
         t[k] = t[k] + (tonumber(thread:get(k)) or 0)
      end
   end
   io.write(string.format("auth.lua: responses=%d non200=%d notoken=%d\n",
                          t.responses, t.non200, t.notoken))
end
