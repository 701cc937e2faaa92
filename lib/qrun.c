#include "qrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "celery.h"
#include "mem.h"

long long qrun_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qrun_inflight_key(char *out, size_t n, const char *runner, int slot)
{
    int w = snprintf(out, n, "qrun:inflight:%s:%d", runner, slot);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

int qrun_runner_key(char *out, size_t n, const char *runner)
{
    int w = snprintf(out, n, "qrun:runner:%s", runner);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* A final state already stored wins: a redelivered message whose first run
 * did store (a Python client sending the same id twice) changes nothing. */
#define LUA_IS_FINAL                                                                           \
    "local function is_final(key)\n"                                                           \
    "  local cur = redis.pcall('GET', key)\n" /* not a string: not a result */                \
    "  if type(cur) ~= 'string' then return false end\n"                                       \
    "  local st = string.match(cur, '\"status\":%s*\"(%u+)\"')\n"                              \
    "  return st == 'SUCCESS' or st == 'FAILURE' or st == 'REVOKED'\n"                         \
    "end\n"

/* KEYS[1] meta; ARGV meta, ttl */
static struct rds_script state_script = {
    LUA_IS_FINAL
    "if is_final(KEYS[1]) then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "redis.call('PUBLISH', KEYS[1], ARGV[1])\n"
    "return 1\n",
    ""};

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
 * one of our own keys: then 'celery') and that queue's list for its
 * priority band. */
#define LUA_ROUTE                                                                              \
    "local function route(m)\n"                                                                \
    "  local q, p = 'celery', 0\n"                                                             \
    "  local ok, e = pcall(cjson.decode, m)\n"                                                 \
    "  if ok and type(e) == 'table' and type(e.properties) == 'table' then\n"                  \
    "    local di = e.properties.delivery_info\n"                                              \
    "    if type(di) == 'table' and type(di.routing_key) == 'string'\n"                        \
    "       and di.routing_key ~= '' and #di.routing_key <= 100\n"                             \
    "       and string.sub(di.routing_key, 1, 5) ~= 'qrun:' then q = di.routing_key end\n"     \
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

/* The failed list of a queue: ZSET id -> time (ms), each id's message kept
 * for a re-run under qrun:failedmsg:<id> with the same age as TTL. Trimmed
 * by age and count whenever one is added (and by qrun_purge). */
#define LUA_FAILED                                                                             \
    "local function trim(z, now, max, age)\n"                                                  \
    "  local n = redis.call('ZREMRANGEBYSCORE', z, '-inf', '(' .. (now - age * 1000))\n"       \
    "  local over = redis.call('ZCARD', z) - max\n"                                            \
    "  if over > 0 then\n"                                                                     \
    "    for _, id in ipairs(redis.call('ZRANGE', z, 0, over - 1)) do\n"                        \
    "      redis.call('DEL', 'qrun:failedmsg:' .. id)\n"                                       \
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
    "  trim('qrun:failed:' .. q, now, max, age)\n"                                             \
    "end\n"

/* Drop message m from in-flight and store its result (meta '' = none), in
 * one step; a final FAILURE (failed == '1') joins its queue's failed list.
 * SET before PUBLISH: a client that subscribes and then reads the key
 * cannot miss both (celery-protocol.md §5). */
#define LUA_SETTLE                                                                             \
    "local function settle(inflight, m, key, meta, ttl, failed, id, now, max, age)\n"          \
    "  if redis.call('LREM', inflight, 1, m) == 0 then return 2 end\n"                         \
    "  if meta == '' then return 1 end\n"                                                      \
    "  if is_final(key) then return 0 end\n"                                                   \
    "  redis.call('SET', key, meta, 'EX', ttl)\n"                                              \
    "  redis.call('PUBLISH', key, meta)\n"                                                     \
    "  if failed == '1' and id then\n"                                                         \
    "    record_failed(m, id, tonumber(now), tonumber(max), tonumber(age))\n"                  \
    "  end\n"                                                                                  \
    "  return 1\n"                                                                             \
    "end\n"

#define LUA_COMMON LUA_IS_FINAL LUA_ROUTE LUA_FAILED LUA_SETTLE

/* KEYS[1] inflight, KEYS[2] meta; ARGV message, meta, ttl, failed, id, now,
 * max, age */
static struct rds_script finish_script = {
    LUA_COMMON "return settle(KEYS[1], ARGV[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5],\n"
               "  ARGV[6], ARGV[7], ARGV[8])\n",
    ""};

/* A claimed message's STARTED state, stored in the claim's own step.
 * The id and task name are read from the envelope text (headers.id is the
 * only "id" key of a Celery envelope; the body is base64 or a JSON string,
 * so its quotes are escaped) and must be plain tokens; ignore_result
 * messages get no state, and neither do revoked ones or ones with an eta
 * (the runner decides about those once it has read the time). Unlike the
 * final store, it does not look at what is there: a STARTED over a final
 * state (a client sending one id twice) is replaced by the final store that
 * follows, and the look would cost a GET per task. `who` is the STARTED
 * result, JSON, from the C side ('' = no STARTED). Returns the flags
 * QRUN_CLAIM_*. */
#define LUA_CLAIM                                                                              \
    "local function claimed(m, who, ttl)\n"                                                    \
    "  local id = msg_id(m)\n"                                                                 \
    "  if id and redis.call('EXISTS', 'qrun:revoked:' .. id) == 1 then return 2 end\n"         \
    "  local task = string.match(m, '\"task\":%s*\"([%w%.%-_:]+)\"')\n"                        \
    "  if who == '' or not id or not task or #id > 64 or #task > 200\n"                        \
    "     or string.find(m, '\"eta\":%s*\"')\n"                                                \
    "     or string.find(m, '\"ignore_result\":%s*true') then return 0 end\n"                 \
    "  local key = 'celery-task-meta-' .. id\n"                                                \
    "  local meta = '{\"status\":\"STARTED\",\"result\":' .. who ..\n"                         \
    "    ',\"traceback\":null,\"children\":[],\"date_done\":null,\"task_id\":\"' ..\n"         \
    "    id .. '\",\"name\":\"' .. task .. '\"}'\n"                                            \
    "  redis.call('SET', key, meta, 'EX', ttl)\n"                                              \
    "  redis.call('PUBLISH', key, meta)\n"                                                     \
    "  return 1\n"                                                                             \
    "end\n"

/* KEYS[1] inflight, KEYS[2..] queue lists in priority order; ARGV who, ttl,
 * max: up to max messages, highest priority first, each followed by its
 * flags. */
static struct rds_script claim_script = {
    LUA_ROUTE LUA_CLAIM
    "local out = {}\n"
    "local i = 2\n"
    "while #out < 2 * tonumber(ARGV[3]) and i <= #KEYS do\n"
    "  local m = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')\n"
    "  if m then\n"
    "    out[#out + 1] = m\n"
    "    out[#out + 1] = claimed(m, ARGV[1], ARGV[2])\n"
    "  else\n"
    "    i = i + 1\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""};

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

/* KEYS[1] inflight */
static struct rds_script requeue_script = {LUA_ROUTE LUA_REQUEUE "return requeue(KEYS[1])\n",
                                           ""};

/* KEYS[1] qrun:runners; ARGV deadline_ms, max slots. Reaps every runner
 * whose heartbeat is older than the deadline. */
static struct rds_script reap_script = {
    LUA_ROUTE LUA_REQUEUE
    "local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])\n"
    "local n = 0\n"
    "for _, id in ipairs(dead) do\n"
    "  local h = 'qrun:runner:' .. id\n"
    "  local c = tonumber(redis.call('HGET', h, 'concurrency')) or tonumber(ARGV[2])\n"
    "  for slot = 0, c - 1 do\n"
    "    n = n + requeue('qrun:inflight:' .. id .. ':' .. slot)\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  redis.call('DEL', h)\n"
    "end\n"
    "return n\n",
    ""};

/* KEYS[1] inflight; ARGV message, eta (ms). Out of in-flight, into its
 * queue's scheduled set, in one step: a delayed task is never held by a
 * runner (no lease can expire on it) and never lost between the two. */
static struct rds_script defer_script = {
    LUA_ROUTE LUA_SCHEDULE
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 2 end\n"
    "schedule(ARGV[1], ARGV[2])\n"
    "return 1\n",
    ""};

/* KEYS[1] inflight, KEYS[2] meta; ARGV old message, new message, eta (ms),
 * RETRY meta ('' = none), ttl. The old message leaves in-flight, RETRY is
 * stored and the new one waits in the scheduled set, in one step, so a kill
 * at any moment of a backoff loses nothing. A revoke that landed meanwhile
 * (a final state) wins: nothing is scheduled. */
static struct rds_script retry_script = {
    LUA_IS_FINAL LUA_ROUTE LUA_SCHEDULE
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 2 end\n"
    "if is_final(KEYS[2]) then return 0 end\n"
    "if ARGV[4] ~= '' then\n"
    "  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])\n"
    "  redis.call('PUBLISH', KEYS[2], ARGV[4])\n"
    "end\n"
    "schedule(ARGV[2], ARGV[3])\n"
    "return 1\n",
    ""};

/* KEYS[1] inflight, KEYS[2] meta; ARGV id, meta, ttl, failed, now, max, age.
 * A worker died while running task `id`: settle that message with the
 * given result, and put the rest of the worker's claims back. */
static struct rds_script fail_slot_script = {
    LUA_COMMON LUA_REQUEUE LUA_WITH_NAME
    "local st = 3\n"
    "for _, m in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
    "  if msg_id(m) == ARGV[1] then\n"
    "    st = settle(KEYS[1], m, KEYS[2], with_name(ARGV[2], m), ARGV[3], ARGV[4], ARGV[1],\n"
    "                ARGV[5], ARGV[6], ARGV[7])\n"
    "    break\n"
    "  end\n"
    "end\n"
    "return {st, requeue(KEYS[1])}\n",
    ""};

/* ARGV now (ms), limit per queue. Due messages, earliest first in line. */
static struct rds_script promote_script = {
    LUA_ROUTE
    "local n = 0\n"
    "for _, q in ipairs(redis.call('SMEMBERS', 'qrun:queues')) do\n"
    "  local z = 'qrun:scheduled:' .. q\n"
    "  local due = redis.call('ZRANGEBYSCORE', z, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "  for i = #due, 1, -1 do\n"
    "    redis.call('ZREM', z, due[i])\n"
    "    push_front(due[i])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n",
    ""};

/* ARGV now (ms), max, age (s) */
static struct rds_script purge_script = {
    LUA_ROUTE LUA_FAILED
    "local n = 0\n"
    "for _, q in ipairs(redis.call('SMEMBERS', 'qrun:queues')) do\n"
    "  n = n + trim('qrun:failed:' .. q, tonumber(ARGV[1]), tonumber(ARGV[2]),\n"
    "               tonumber(ARGV[3]))\n"
    "end\n"
    "return n\n",
    ""};

/* KEYS[1] once key, KEYS[2] meta, KEYS[3] list or scheduled set; ARGV once
 * ttl, meta, ttl, message, eta ms ('' = now), queue */
static struct rds_script submit_once_script = {
    LUA_ROUTE LUA_SCHEDULE
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end\n"
    "redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])\n"
    "if ARGV[5] == '' then redis.call('LPUSH', KEYS[3], ARGV[4])\n"
    "else schedule(ARGV[4], ARGV[5]) end\n"
    "redis.call('SADD', 'qrun:queues', ARGV[6])\n"
    "return 1\n",
    ""};

/* KEYS[1] meta, KEYS[2] revoked, KEYS[3] eta; ARGV ttl, REVOKED meta,
 * mark, channel, broadcast, terminate. */
static struct rds_script revoke_script = {
    LUA_WITH_NAME
    "local st\n"
    "local cur = redis.pcall('GET', KEYS[1])\n"
    "if type(cur) == 'string' then st = string.match(cur, '\"status\":%s*\"(%u+)\"') end\n"
    "if st == 'SUCCESS' or st == 'FAILURE' then return st end\n"
    /* a delayed task: the revoke must outlive the wait (qrun:eta:<id>) */
    "local ttl, left = tonumber(ARGV[1]), redis.call('PTTL', KEYS[3])\n"
    "if left > 0 then ttl = ttl + math.ceil(left / 1000) end\n"
    "redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)\n"
    "redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
    "if st == 'REVOKED' then return st end\n"
    "if st == 'STARTED' and ARGV[6] ~= '1' then return 'RUNNING' end\n"
    "local meta = with_name(ARGV[2], type(cur) == 'string' and cur or '')\n"
    "redis.call('SET', KEYS[1], meta, 'EX', ARGV[1])\n"
    "redis.call('PUBLISH', KEYS[1], meta)\n"
    "return 'OK'\n",
    ""};

/* KEYS[1] revoked, KEYS[2] eta; ARGV ttl, mark: a revoke heard on the
 * pidbox channel (ours or Python's), kept at least as long as it was and
 * past the task's eta. */
static struct rds_script note_revoke_script = {
    "local ttl, left = tonumber(ARGV[1]), redis.call('PTTL', KEYS[2])\n"
    "if left > 0 then ttl = ttl + math.ceil(left / 1000) end\n"
    "local cur = redis.call('TTL', KEYS[1])\n"
    "if cur > ttl then ttl = cur end\n"
    "local mark = ARGV[2]\n"
    "if redis.call('GET', KEYS[1]) == 'terminate' then mark = 'terminate' end\n"
    "redis.call('SET', KEYS[1], mark, 'EX', ttl)\n"
    "return 1\n",
    ""};

/* KEYS[1] meta; ARGV id, the failed message as read, new message, PENDING
 * meta, ttl. Fails (0) if the failed entry changed since it was read. */
static struct rds_script rerun_script = {
    LUA_ROUTE
    "local fm = 'qrun:failedmsg:' .. ARGV[1]\n"
    "if redis.call('GET', fm) ~= ARGV[2] then return 0 end\n"
    "local q = route(ARGV[2])\n"
    /* aged out of the list (its message lingers until its TTL): gone */
    "if redis.call('ZREM', 'qrun:failed:' .. q, ARGV[1]) == 0 then return 0 end\n"
    "redis.call('DEL', fm, 'qrun:revoked:' .. ARGV[1])\n"
    "redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])\n"
    "local _, list = route(ARGV[3])\n"
    "redis.call('LPUSH', list, ARGV[3])\n"
    "redis.call('SADD', 'qrun:queues', q)\n"
    "return 1\n",
    ""};

int qrun_claim(struct rds *r, const char *inflight, const char *const *keys, int nkeys,
               const char *who, long ttl, int max, char **msgs, size_t *lens, int *flags)
{
    const char *args[24];
    char t[24], m[16];
    if (nkeys > 20)
        nkeys = 20;
    snprintf(t, sizeof(t), "%ld", ttl);
    snprintf(m, sizeof(m), "%d", max);
    args[0] = inflight;
    for (int i = 0; i < nkeys; i++)
        args[i + 1] = keys[i];
    args[nkeys + 1] = who ? who : "";
    args[nkeys + 2] = t;
    args[nkeys + 3] = m;
    redisReply *rep = rds_eval(r, &claim_script, nkeys + 1, nkeys + 4, args, NULL);
    if (rep == NULL)
        return -1;
    int n = 0;
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < rep->elements && n < max; i += 2) {
            redisReply *e = rep->element[i], *f = rep->element[i + 1];
            if (e->type != REDIS_REPLY_STRING)
                continue;
            lens[n] = e->len;
            msgs[n] = xstrndup(e->str, e->len);
            flags[n] = f->type == REDIS_REPLY_INTEGER ? (int)f->integer : 0;
            n++;
        }
    }
    freeReplyObject(rep);
    return n;
}

int qrun_claim_wait(struct rds *r, const char *inflight, const char *key, double timeout,
                    char **msg, size_t *len)
{
    redisReply *rep = rds_command(r, "BLMOVE %s %s RIGHT LEFT %.3f", key, inflight, timeout);
    if (rep == NULL)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_STRING) {
        *len = rep->len;
        *msg = xstrndup(rep->str, rep->len);
        rc = 1;
    }
    freeReplyObject(rep);
    return rc;
}

static long int_reply(redisReply *rep)
{
    if (rep == NULL)
        return -1;
    long v = rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : -1;
    freeReplyObject(rep);
    return v;
}

int qrun_send_state(struct rds *r, const char *meta_key, const char *meta, long ttl)
{
    char t[24];
    snprintf(t, sizeof(t), "%ld", ttl);
    const char *args[] = {meta_key, meta, t};
    return rds_send_eval(r, &state_script, 1, 3, args, NULL);
}

static struct {
    long max, age;
} failed_limits = {QRUN_FAILED_MAX, QRUN_FAILED_AGE};

void qrun_failed_limits(long max_count, long max_age_s)
{
    failed_limits.max = max_count;
    failed_limits.age = max_age_s;
}

/* finish_script's keys and arguments (msg may hold any bytes). */
struct finish_args {
    char ttl[24], now[24], max[24], age[24];
    char id[CEL_ID_MAX + 1];
    const char *arg[10];
    size_t len[10];
};

/* The id after "celery-task-meta-", for the failed list. */
static void finish_args(struct finish_args *f, const char *inflight, const char *msg,
                        size_t len, const char *meta_key, const char *meta, long ttl,
                        int failed)
{
    snprintf(f->ttl, sizeof(f->ttl), "%ld", ttl);
    snprintf(f->now, sizeof(f->now), "%lld", qrun_now_ms());
    snprintf(f->max, sizeof(f->max), "%ld", failed_limits.max);
    snprintf(f->age, sizeof(f->age), "%ld", failed_limits.age);
    size_t pre = strlen(CEL_META_PREFIX);
    snprintf(f->id, sizeof(f->id), "%s",
             strncmp(meta_key, CEL_META_PREFIX, pre) == 0 ? meta_key + pre : "");
    const char *a[10] = {inflight, meta_key, msg, meta ? meta : "", f->ttl, failed ? "1" : "0",
                         f->id, f->now, f->max, f->age};
    for (int i = 0; i < 10; i++) {
        f->arg[i] = a[i];
        f->len[i] = i == 2 ? len : strlen(a[i]);
    }
}

int qrun_send_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                     const char *meta_key, const char *meta, long ttl, int failed)
{
    struct finish_args f = {0};
    finish_args(&f, inflight, msg, len, meta_key, meta, ttl, failed);
    return rds_send_eval(r, &finish_script, 2, 10, f.arg, f.len);
}

int qrun_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                const char *meta_key, const char *meta, long ttl, int failed)
{
    struct finish_args f = {0};
    finish_args(&f, inflight, msg, len, meta_key, meta, ttl, failed);
    return (int)int_reply(rds_eval(r, &finish_script, 2, 10, f.arg, f.len));
}

int qrun_fail_slot(struct rds *r, const char *inflight, const char *id, const char *meta,
                   long ttl, int failed, long *requeued)
{
    char key[sizeof(CEL_META_PREFIX) + CEL_ID_MAX], t[24], now[24], max[24], age[24];
    snprintf(key, sizeof(key), CEL_META_PREFIX "%s", id);
    snprintf(t, sizeof(t), "%ld", ttl);
    snprintf(now, sizeof(now), "%lld", qrun_now_ms());
    snprintf(max, sizeof(max), "%ld", failed_limits.max);
    snprintf(age, sizeof(age), "%ld", failed_limits.age);
    const char *args[] = {inflight, key, id, meta, t, failed ? "1" : "0", now, max, age};
    redisReply *rep = rds_eval(r, &fail_slot_script, 2, 9, args, NULL);
    if (rep == NULL)
        return -1;
    int st = -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        st = (int)rep->element[0]->integer;
        *requeued = (long)rep->element[1]->integer;
    }
    freeReplyObject(rep);
    return st;
}

int qrun_send_defer(struct rds *r, const char *inflight, const char *msg, size_t len,
                    long long eta_ms)
{
    char eta[24];
    snprintf(eta, sizeof(eta), "%lld", eta_ms);
    const char *args[] = {inflight, msg, eta};
    size_t lens[] = {strlen(inflight), len, strlen(eta)};
    return rds_send_eval(r, &defer_script, 1, 3, args, lens);
}

int qrun_send_retry(struct rds *r, const char *inflight, const char *msg, size_t len,
                    const char *next, size_t next_len, long long eta_ms, const char *meta_key,
                    const char *meta, long ttl)
{
    char eta[24], t[24];
    snprintf(eta, sizeof(eta), "%lld", eta_ms);
    snprintf(t, sizeof(t), "%ld", ttl);
    const char *args[] = {inflight, meta_key, msg, next, eta, meta ? meta : "", t};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(args[i]);
    lens[2] = len;
    lens[3] = next_len;
    return rds_send_eval(r, &retry_script, 2, 7, args, lens);
}

long qrun_promote(struct rds *r)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", qrun_now_ms());
    const char *args[] = {now, "1000"};
    return int_reply(rds_eval(r, &promote_script, 0, 2, args, NULL));
}

long qrun_purge(struct rds *r, long max_age_s, long max_count)
{
    char now[24], max[24], age[24];
    snprintf(now, sizeof(now), "%lld", qrun_now_ms());
    snprintf(max, sizeof(max), "%ld", max_count);
    snprintf(age, sizeof(age), "%ld", max_age_s);
    const char *args[] = {now, max, age};
    return int_reply(rds_eval(r, &purge_script, 0, 3, args, NULL));
}

long qrun_requeue(struct rds *r, const char *inflight)
{
    const char *args[] = {inflight};
    return int_reply(rds_eval(r, &requeue_script, 1, 1, args, NULL));
}

int qrun_heartbeat(struct rds *r, const char *id, const char *host, long pid,
                   const char *queues, int concurrency, long long started_ms, long lease_s)
{
    char hkey[256];
    if (qrun_runner_key(hkey, sizeof(hkey), id) != 0)
        return -1;
    long long now = qrun_now_ms();
    /* ZADD answers 1 when the member is new: we had been reaped (or this is
     * the first beat), 0 when it only moved our score. */
    if (rds_append(r, "ZADD %s %lld %s", QRUN_RUNNERS, now, id) != 0 ||
        rds_append(r, "HSET %s host %s pid %ld queues %s concurrency %d started %lld", hkey, host,
                   pid, queues, concurrency, started_ms) != 0 ||
        rds_append(r, "EXPIRE %s %ld", hkey, lease_s * 10 + 60) != 0)
        return -1;
    long added = int_reply(rds_reply(r));
    long rest = 0;
    for (int i = 0; i < 2; i++) {
        redisReply *rep = rds_reply(r);
        if (rep == NULL)
            rest = -1;
        freeReplyObject(rep);
    }
    if (added < 0 || rest < 0)
        return -1;
    return added == 1 ? 1 : 0;
}

long qrun_reap(struct rds *r, long lease_s)
{
    char deadline[32], slots[16];
    snprintf(deadline, sizeof(deadline), "%lld", qrun_now_ms() - lease_s * 1000);
    snprintf(slots, sizeof(slots), "%d", QRUN_MAX_SLOTS);
    const char *args[] = {QRUN_RUNNERS, deadline, slots};
    return int_reply(rds_eval(r, &reap_script, 1, 3, args, NULL));
}

int qrun_unregister(struct rds *r, const char *id)
{
    char hkey[256];
    if (qrun_runner_key(hkey, sizeof(hkey), id) != 0)
        return -1;
    long a = int_reply(rds_command(r, "ZREM %s %s", QRUN_RUNNERS, id));
    long b = int_reply(rds_command(r, "DEL %s", hkey));
    return a < 0 || b < 0 ? -1 : 0;
}

/* A submission's message, meta and target (queue list, or the queue's
 * scheduled set when eta is set). */
struct submission {
    struct buf msg, meta;
    char target[CEL_QUEUE_MAX + 32];
    char mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX];
    char eta_ms[24];
};

static int submission(struct submission *s, const char *name, const char *id, json_t *args,
                      json_t *kwargs, const struct qrun_opts *o)
{
    const char *queue = o && o->queue ? o->queue : "celery";
    int priority = o ? o->priority : 0;
    double eta = o ? o->eta : 0, expires = o ? o->expires : 0;
    memset(s, 0, sizeof(*s));
    if (!cel_id_valid(id) || strlen(queue) > 100)
        return -1;
    if (eta > 0) {
        snprintf(s->target, sizeof(s->target), "qrun:scheduled:%s", queue);
        snprintf(s->eta_ms, sizeof(s->eta_ms), "%lld", (long long)(eta * 1000));
    } else if (cel_queue_key(s->target, sizeof(s->target), queue, priority) != 0) {
        return -1;
    }
    snprintf(s->mkey, sizeof(s->mkey), CEL_META_PREFIX "%s", id);
    cel_message_at(&s->msg, name, id, args, kwargs, queue, priority, eta, expires);
    cel_meta(&s->meta, CEL_PENDING, NULL, NULL, id, name);
    return 0;
}

static void submission_free(struct submission *s)
{
    buf_free(&s->msg);
    buf_free(&s->meta);
}

int qrun_submit(struct rds *r, const char *name, const char *id, json_t *args, json_t *kwargs,
                const struct qrun_opts *o, long ttl)
{
    struct submission s;
    if (submission(&s, name, id, args, kwargs, o) != 0)
        return -1;
    const char *queue = o && o->queue ? o->queue : "celery";
    int delayed = s.eta_ms[0] != '\0';
    int rc = -1, n = delayed ? 6 : 5; /* replies: MULTI, the commands, EXEC */
    if (rds_append(r, "MULTI") == 0 &&
        rds_append(r, "SET %s %b EX %ld", s.mkey, s.meta.data, s.meta.len, ttl) == 0 &&
        (delayed ? rds_append(r, "ZADD %s %s %b", s.target, s.eta_ms, s.msg.data, s.msg.len)
                 : rds_append(r, "LPUSH %s %b", s.target, s.msg.data, s.msg.len)) == 0 &&
        rds_append(r, "SADD " QRUN_QUEUES " %s", queue) == 0 &&
        (!delayed || rds_append(r, "SET " QRUN_ETA "%s 1 PXAT %lld", id,
                                strtoll(s.eta_ms, NULL, 10) + 1000) == 0) &&
        rds_append(r, "EXEC") == 0) {
        rc = 0;
        for (int i = 0; i < n; i++) {
            redisReply *rep = rds_reply(r);
            if (rep == NULL)
                rc = -1;
            else if (i == n - 1 && rep->type != REDIS_REPLY_ARRAY)
                rc = -1; /* EXEC aborted */
            freeReplyObject(rep);
        }
    }
    submission_free(&s);
    return rc;
}

int qrun_submit_once(struct rds *r, const char *once_key, long once_ttl, const char *name,
                     const char *id, json_t *args, json_t *kwargs, const struct qrun_opts *o,
                     long ttl)
{
    struct submission s;
    if (submission(&s, name, id, args, kwargs, o) != 0)
        return -1;
    char ot[24], t[24];
    snprintf(ot, sizeof(ot), "%ld", once_ttl);
    snprintf(t, sizeof(t), "%ld", ttl);
    const char *args_[] = {once_key, s.mkey, s.target, ot, s.meta.data, t,
                           s.msg.data, s.eta_ms, o && o->queue ? o->queue : "celery"};
    long rc = int_reply(rds_eval(r, &submit_once_script, 3, 9, args_, NULL));
    submission_free(&s);
    return rc < 0 ? -1 : (int)rc;
}

int qrun_revoke(struct rds *r, const char *id, int terminate, long ttl, char *state,
                size_t state_len)
{
    if (!cel_id_valid(id))
        return -1;
    char mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX], rkey[sizeof(QRUN_REVOKED) + CEL_ID_MAX],
        t[24], chan[32];
    snprintf(mkey, sizeof(mkey), CEL_META_PREFIX "%s", id);
    snprintf(rkey, sizeof(rkey), QRUN_REVOKED "%s", id);
    snprintf(t, sizeof(t), "%ld", ttl);
    cel_pidbox_channel(chan, sizeof(chan), rds_db(r));
    struct buf meta = {0}, bc = {0};
    json_t *exc = cel_exc("TaskRevokedError", "celery.exceptions",
                          terminate ? "terminated" : "revoked");
    cel_meta(&meta, CEL_REVOKED, exc, NULL, id, NULL);
    json_decref(exc);
    cel_revoke_broadcast(&bc, id, terminate);
    char ekey[sizeof(QRUN_ETA) + CEL_ID_MAX];
    snprintf(ekey, sizeof(ekey), QRUN_ETA "%s", id);
    const char *args[] = {mkey, rkey, ekey, t, meta.data, terminate ? "terminate" : "1",
                          chan, bc.data, terminate ? "1" : "0"};
    redisReply *rep = rds_eval(r, &revoke_script, 3, 9, args, NULL);
    buf_free(&meta);
    buf_free(&bc);
    if (rep == NULL)
        return -1;
    int rc = -1;
    if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS) {
        snprintf(state, state_len, "%s", strcmp(rep->str, "OK") == 0 ? CEL_REVOKED : rep->str);
        rc = 0;
    }
    freeReplyObject(rep);
    return rc;
}

int qrun_note_revoke(struct rds *r, const char *id, int terminate, long ttl)
{
    if (!cel_id_valid(id))
        return -1;
    char rkey[sizeof(QRUN_REVOKED) + CEL_ID_MAX], ekey[sizeof(QRUN_ETA) + CEL_ID_MAX], t[24];
    snprintf(rkey, sizeof(rkey), QRUN_REVOKED "%s", id);
    snprintf(ekey, sizeof(ekey), QRUN_ETA "%s", id);
    snprintf(t, sizeof(t), "%ld", ttl);
    const char *args[] = {rkey, ekey, t, terminate ? "terminate" : "1"};
    return int_reply(rds_eval(r, &note_revoke_script, 2, 4, args, NULL)) == 1 ? 0 : -1;
}

int qrun_rerun(struct rds *r, const char *id, long ttl, char *task, size_t task_len)
{
    if (!cel_id_valid(id))
        return 0;
    redisReply *rep = rds_command(r, "GET " QRUN_FAILEDMSG "%s", id);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return 0;
    }
    struct cel_msg m;
    char err[128];
    int rc = 0;
    /* a message that cannot be parsed was stored as failed for that
     * reason; it would fail the same way again */
    if (cel_parse(&m, rep->str, rep->len, err, sizeof(err)) == 0) {
        struct buf next = {0}, meta = {0};
        char mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX], t[24];
        snprintf(mkey, sizeof(mkey), CEL_META_PREFIX "%s", id);
        snprintf(t, sizeof(t), "%ld", ttl);
        cel_redeliver(&next, m.envelope, 0, 0);
        cel_meta(&meta, CEL_PENDING, NULL, NULL, id, m.task);
        snprintf(task, task_len, "%s", m.task);
        const char *args[] = {mkey, id, rep->str, next.data, meta.data, t};
        size_t lens[] = {strlen(mkey), strlen(id), rep->len, next.len, meta.len, strlen(t)};
        rc = (int)int_reply(rds_eval(r, &rerun_script, 1, 6, args, lens));
        buf_free(&next);
        buf_free(&meta);
    }
    cel_msg_free(&m);
    freeReplyObject(rep);
    return rc;
}
