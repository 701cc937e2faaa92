-- wrk script for bench/tasks: every request submits tasks.add(2, 3)
-- through the HTTP API (POST /api/tasks/add, JSON body; expect 202).
wrk.method = "POST"
wrk.body = '{"args":[2,3]}'
wrk.headers["Content-Type"] = "application/json"
-- BENCH_TOKEN (environment): the bearer token the gateway's authorizer
-- wants for /api/tasks (bench/tasks issues one with bin/tokenctl)
local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end
