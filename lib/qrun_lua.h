#ifndef QRUN_LUA_H
#define QRUN_LUA_H

/* Private to lib/qrun.c and lib/qsubmit.c: the Lua pieces their scripts are
 * built from (each script is one string; Redis runs it atomically). Keys
 * are those of qrun.h. Patterns read the envelope's and the meta's text
 * directly where a full decode would cost more: in JSON a key's quotes are
 * never escaped and a string's are, so '"id":"' can only match a key (the
 * body is base64 or a JSON string). */

/* Scripts the runners depend on declare allow-oom: a full Redis
 * (maxmemory, noeviction) must still let them claim, finish and put back
 * tasks, which frees memory; only new work (a submit, a re-run) is refused
 * then. The flag line must come first. */
#define LUA_ALLOW_OOM "#!lua flags=allow-oom\n"

/* A final state already stored wins: a redelivered message whose first run
 * did store (a Python client sending the same id twice) changes nothing. */
#define LUA_IS_FINAL                                                                           \
    "local function status_of(meta)\n"                                                         \
    "  return string.match(meta, '\"status\":%s*\"(%u+)\"')\n"                                 \
    "end\n"                                                                                    \
    "local function is_final(key)\n"                                                           \
    "  local cur = redis.pcall('GET', key)\n" /* not a string: not a result */                \
    "  if type(cur) ~= 'string' then return false end\n"                                       \
    "  local st = status_of(cur)\n"                                                            \
    "  return st == 'SUCCESS' or st == 'FAILURE' or st == 'REVOKED'\n"                         \
    "end\n"

/* Who submitted a task: "owner" in a message's headers or in a meta
 * (cel_id_valid characters), or nil. with_owner adds it to a meta that has
 * none (the supervisor builds its metas without the message at hand). */
#define LUA_OWNER                                                                              \
    "local function owner_of(text)\n"                                                          \
    "  local o = string.match(text, '\"owner\":%s*\"([%w%.%-_]+)\"')\n"                        \
    "  if o and #o <= 64 then return o end\n"                                                  \
    "  return nil\n"                                                                           \
    "end\n"                                                                                    \
    "local function with_owner(meta, owner)\n"                                                 \
    "  if not owner or owner_of(meta) then return meta end\n"                                  \
    "  return string.sub(meta, 1, -2) .. ',\"owner\":\"' .. owner .. '\"}'\n"                 \
    "end\n"

/* A meta built without the task's name ("name":null) gets it from `from`
 * (the stored meta, or the message: its "task" header). */
#define LUA_WITH_NAME                                                                          \
    "local function with_name(meta, from)\n"                                                   \
    "  local name = string.match(from, '\"name\":%s*\"([%w%.%-_:]+)\"')\n"                     \
    "    or string.match(from, '\"task\":%s*\"([%w%.%-_:]+)\"')\n"                             \
    "  if not name or #name > 200 then return meta end\n"                                      \
    "  return (string.gsub(meta, '\"name\":null', '\"name\":\"' .. name .. '\"', 1))\n"        \
    "end\n"

/* Where a message belongs: its queue (the routing key, unless unreadable or
 * not a name cel_queue_valid accepts: then 'celery', so no message can
 * become a list at the revocation list's or kombu's keys) and that queue's
 * list for its priority band. queue_ok mirrors cel_queue_valid (celery.c):
 * change both together. */
#define LUA_ROUTE                                                                              \
    "local function queue_ok(q)\n"                                                             \
    "  if #q == 0 or #q > 100 or string.find(q, '[^%w%._%-]') then return false end\n"        \
    "  if q == 'revoked' or q == 'unacked' or q == 'unacked_index'\n"                          \
    "     or q == 'unacked_mutex' then return false end\n"                                     \
    "  for _, p in ipairs({'_kombu.', 'celery-task-meta-', 'celery-taskset-meta-',\n"          \
    "                      'chord-unlock-'}) do\n"                                             \
    "    if string.sub(q, 1, #p) == p then return false end\n"                                 \
    "  end\n"                                                                                  \
    "  return string.sub(q, -7) ~= '.pidbox'\n"                                                \
    "end\n"                                                                                    \
    "local function route(m)\n"                                                                \
    "  local q, p = 'celery', 0\n"                                                             \
    "  local ok, e = pcall(cjson.decode, m)\n"                                                 \
    "  if ok and type(e) == 'table' and type(e.properties) == 'table' then\n"                  \
    "    local di = e.properties.delivery_info\n"                                              \
    "    if type(di) == 'table' and type(di.routing_key) == 'string'\n"                        \
    "       and queue_ok(di.routing_key) then q = di.routing_key end\n"                        \
    "    p = tonumber(e.properties.priority) or 0\n"                                           \
    "  end\n"                                                                                  \
    "  local list = q\n"                                                                       \
    "  if p >= 9 then list = q .. '\\6\\0229' elseif p >= 6 then list = q .. '\\6\\0226'\n"   \
    "  elseif p >= 3 then list = q .. '\\6\\0223' end\n"                                       \
    "  return q, list\n"                                                                       \
    "end\n"                                                                                    \
    "local function msg_id(m)\n"                                                               \
    "  return string.match(m, '\"id\":%s*\"([%w%.%-_]+)\"')\n"                                 \
    "end\n"                                                                                    \
    /* to the end of its list consumers take next; a key of another type:  \
     * 'celery' */                                                                             \
    "local function push_front(m)\n"                                                           \
    "  local _, list = route(m)\n"                                                             \
    "  local r = redis.pcall('RPUSH', list, m)\n"                                              \
    "  if type(r) == 'table' and r.err then redis.call('RPUSH', 'celery', m) end\n"            \
    "end\n"

/* Into its queue's scheduled set at eta (ms). qrun:eta:<id> lives until
 * then (+1 s), so a revoke made meanwhile can outlive the wait. */
#define LUA_SCHEDULE                                                                           \
    "local function schedule(m, eta)\n"                                                        \
    "  local q = route(m)\n"                                                                   \
    "  redis.call('ZADD', 'qrun:scheduled:' .. q, eta, m)\n"                                   \
    "  redis.call('SADD', 'qrun:queues', q)\n"                                                 \
    "  local id = msg_id(m)\n"                                                                 \
    "  if id then redis.call('SET', 'qrun:eta:' .. id, '1', 'PXAT', tonumber(eta) + 1000) end\n" \
    "end\n"

/* An owner's tasks in the queue (qrun:active:<owner>, id -> deadline ms):
 * added by a submit or re-run, removed once the task is settled (a final
 * state, or a result nobody wants), so the per-owner cap counts what is
 * queued, scheduled or running. A deadline past its time, or a task whose
 * meta says it is done or is gone (a Python worker ran it, or it waited
 * past RESULT_EXPIRES), no longer counts: admit drops those when the cap is
 * reached, so the count heals itself. qrun:rate:<owner>:<second> counts
 * submits per second. admit returns nil (admitted) or {refusal, retry ms}
 * (enum qrun_refusal). */
#define LUA_ACTIVE                                                                             \
    "local function release(owner, id)\n"                                                      \
    "  if owner and id then redis.call('ZREM', 'qrun:active:' .. owner, id) end\n"            \
    "end\n"                                                                                    \
    "local function hold(owner, id, now, deadline)\n"                                          \
    "  local k = 'qrun:active:' .. owner\n"                                                    \
    "  redis.call('ZADD', k, deadline, id)\n"                                                  \
    "  if redis.call('PTTL', k) < deadline - now then redis.call('PEXPIREAT', k, deadline) end\n" \
    "end\n"                                                                                    \
    "local function settled(id)\n"                                                             \
    "  local cur = redis.pcall('GET', 'celery-task-meta-' .. id)\n"                            \
    "  if type(cur) ~= 'string' then return true end\n"                                        \
    "  local st = status_of(cur)\n"                                                            \
    "  return st == 'SUCCESS' or st == 'FAILURE' or st == 'REVOKED'\n"                         \
    "end\n"                                                                                    \
    "local function admit(owner, now, per_second, max_active)\n"                               \
    "  if per_second > 0 then\n"                                                               \
    "    local sec = math.floor(now / 1000)\n"                                                 \
    "    local k = 'qrun:rate:' .. owner .. ':' .. sec\n"                                      \
    "    local n = redis.call('INCR', k)\n"                                                    \
    "    if n == 1 then redis.call('PEXPIRE', k, 2000) end\n"                                  \
    "    if n > per_second then return {1, (sec + 1) * 1000 - now} end\n"                      \
    "  end\n"                                                                                  \
    "  if max_active > 0 then\n"                                                               \
    "    local k = 'qrun:active:' .. owner\n"                                                  \
    "    if redis.call('ZCARD', k) >= max_active then\n"                                       \
    "      redis.call('ZREMRANGEBYSCORE', k, '-inf', now)\n"                                   \
    "      for _, id in ipairs(redis.call('ZRANGE', k, 0, max_active - 1)) do\n"               \
    "        if settled(id) then redis.call('ZREM', k, id) end\n"                              \
    "      end\n"                                                                              \
    "      if redis.call('ZCARD', k) >= max_active then return {2, 1000} end\n"                \
    "    end\n"                                                                                \
    "  end\n"                                                                                  \
    "  return nil\n"                                                                           \
    "end\n"

/* The failed list of a queue: ZSET id -> time (ms), each id's message kept
 * for a re-run under qrun:failedmsg:<id> with the same age as TTL. Trimmed
 * by age and count whenever one is added (and by qrun_purge). A task with
 * an owner is also listed in that owner's own list for the queue
 * (qrun:ufailed:<owner>:<queue>, the same bounds, the key itself expiring
 * FAILED_AGE after its newest entry): what GET /api/tasks?status=FAILURE
 * shows a user. Trimming an owner's list leaves the messages alone (the
 * queue's list owns them). */
#define LUA_FAILED                                                                             \
    "local function trim(z, now, max, age, owns_msgs)\n"                                       \
    "  local n = redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (now - age * 1000))\n"       \
    "  local over = redis.call('ZCARD', z) - max\n"                                            \
    "  if over > 0 then\n"                                                                     \
    "    if owns_msgs then\n"                                                                  \
    "      for _, id in ipairs(redis.call('ZRANGE', z, 0, over - 1)) do\n"                      \
    "        redis.call('DEL', 'qrun:failedmsg:' .. id)\n"                                     \
    "      end\n"                                                                              \
    "    end\n"                                                                                \
    "    n = n + redis.call('ZREMRANGEBYRANK', z, 0, over - 1)\n"                              \
    "  end\n"                                                                                  \
    "  return n\n"                                                                             \
    "end\n"                                                                                    \
    "local function record_failed(m, id, now, max, age)\n"                                     \
    "  local q = route(m)\n"                                                                   \
    "  redis.call('ZADD', 'qrun:failed:' .. q, now, id)\n"                                     \
    "  redis.call('SET', 'qrun:failedmsg:' .. id, m, 'EX', age)\n"                             \
    "  redis.call('SADD', 'qrun:queues', q)\n"                                                 \
    "  trim('qrun:failed:' .. q, now, max, age, true)\n"                                       \
    "  local o = owner_of(m)\n"                                                                \
    "  if o then\n"                                                                            \
    "    local z = 'qrun:ufailed:' .. o .. ':' .. q\n"                                         \
    "    redis.call('ZADD', z, now, id)\n"                                                     \
    "    trim(z, now, max, age, false)\n"                                                      \
    "    redis.call('EXPIRE', z, age)\n"                                                       \
    "  end\n"                                                                                  \
    "end\n"

/* Drop message m from in-flight and store its result (meta '' = none), in
 * one step; a final FAILURE (failed == '1') joins its queue's failed list.
 * Either way the task no longer counts against its owner. SET before
 * PUBLISH: a client that subscribes and then reads the key cannot miss
 * both (celery-protocol.md §5). */
#define LUA_SETTLE                                                                             \
    "local function settle(inflight, m, key, meta, ttl, failed, id, now, max, age)\n"          \
    "  if redis.call('LREM', inflight, 1, m) == 0 then return 2 end\n"                         \
    "  release(owner_of(m), id ~= '' and id or msg_id(m))\n"                                   \
    "  if meta == '' then return 1 end\n"                                                      \
    "  if is_final(key) then return 0 end\n"                                                   \
    "  redis.call('SET', key, meta, 'EX', ttl)\n"                                              \
    "  redis.call('PUBLISH', key, meta)\n"                                                     \
    "  if failed == '1' and id then\n"                                                         \
    "    record_failed(m, id, tonumber(now), tonumber(max), tonumber(age))\n"                  \
    "  end\n"                                                                                  \
    "  return 1\n"                                                                             \
    "end\n"

#define LUA_COMMON LUA_IS_FINAL LUA_OWNER LUA_ROUTE LUA_ACTIVE LUA_FAILED LUA_SETTLE

/* A claimed message's STARTED state, stored in the claim's own step.
 * The id, task name and owner are read from the envelope text and must be
 * plain tokens; ignore_result messages get no state, and neither do
 * revoked ones or ones with an eta (the runner decides about those once it
 * has read the time). Unlike the final store, it does not look at what is
 * there: a STARTED over a final state (a client sending one id twice) is
 * replaced by the final store that follows, and the look would cost a GET
 * per task. `who` is the STARTED result, JSON, from the C side ('' = no
 * STARTED). Returns the flags QRUN_CLAIM_*. */
#define LUA_CLAIM                                                                              \
    "local function claimed(m, who, ttl)\n"                                                    \
    "  local id = msg_id(m)\n"                                                                 \
    "  if id and redis.call('EXISTS', 'qrun:revoked:' .. id) == 1 then return 2 end\n"         \
    "  local task = string.match(m, '\"task\":%s*\"([%w%.%-_:]+)\"')\n"                        \
    "  if who == '' or not id or not task or #id > 64 or #task > 200\n"                        \
    "     or string.find(m, '\"eta\":%s*\"')\n"                                                \
    "     or string.find(m, '\"ignore_result\":%s*true') then return 0 end\n"                 \
    "  local key = 'celery-task-meta-' .. id\n"                                                \
    "  local meta = with_owner('{\"status\":\"STARTED\",\"result\":' .. who ..\n"              \
    "    ',\"traceback\":null,\"children\":[],\"date_done\":null,\"task_id\":\"' ..\n"         \
    "    id .. '\",\"name\":\"' .. task .. '\"}', owner_of(m))\n"                              \
    "  redis.call('SET', key, meta, 'EX', ttl)\n"                                              \
    "  redis.call('PUBLISH', key, meta)\n"                                                     \
    "  return 1\n"                                                                             \
    "end\n"

/* Back to the head of the queue it came from (RPUSH: consumers pop from the
 * right), in its priority band. Newest claim first (LPOP: claims are pushed
 * on the left), so the oldest ends up first in line again, as it was. */
#define LUA_REQUEUE                                                                            \
    "local function requeue(list)\n"                                                           \
    "  local n = redis.call('LLEN', list)\n" /* bounded: never loops on its own pushes */     \
    "  for _ = 1, n do\n"                                                                      \
    "    local m = redis.call('LPOP', list)\n"                                                 \
    "    if not m then return _ - 1 end\n"                                                     \
    "    push_front(m)\n"                                                                      \
    "  end\n"                                                                                  \
    "  return n\n"                                                                             \
    "end\n"

#endif
