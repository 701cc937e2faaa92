-- wrk script for bench/tasks: every request submits tasks.add(2, 3)
-- through the HTTP API (POST /api/tasks/add, JSON body; expect 202).
wrk.method = "POST"
wrk.body = '{"args":[2,3]}'
wrk.headers["Content-Type"] = "application/json"
