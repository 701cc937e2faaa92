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

/* KEYS[1] inflight, KEYS[2] meta; ARGV message, meta ('' = no result), ttl.
 * SET before PUBLISH, in one step: a client that subscribes and then reads
 * the key cannot miss both (celery-protocol.md §5). */
#define LUA_FINISH                                                                             \
    "local function finish()\n"                                                                \
    "  if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 2 end\n"                    \
    "  if ARGV[2] == '' then return 1 end\n"                                                   \
    "  if is_final(KEYS[2]) then return 0 end\n"                                               \
    "  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])\n"                                   \
    "  redis.call('PUBLISH', KEYS[2], ARGV[2])\n"                                              \
    "  return 1\n"                                                                             \
    "end\n"

static struct rds_script finish_script = {LUA_IS_FINAL LUA_FINISH "return finish()\n", ""};

/* A claimed message's STARTED state, stored in the claim's own step.
 * The id and task name are read from the envelope text (headers.id is the
 * only "id" key of a Celery envelope; the body is base64 or a JSON string,
 * so its quotes are escaped) and must be plain tokens; ignore_result
 * messages get no state. Unlike the final store, it does not look at what
 * is there: a STARTED over a final state (a client sending one id twice) is
 * replaced by the final store that follows, and the look would cost a GET
 * per task. `who` is the STARTED result, JSON, from the C side ('' = no
 * STARTED). */
#define LUA_CLAIM                                                                              \
    "local function started(m, who, ttl)\n"                                                    \
    "  local id = string.match(m, '\"id\":%s*\"([%w%.%-_]+)\"')\n"                             \
    "  local task = string.match(m, '\"task\":%s*\"([%w%.%-_:]+)\"')\n"                        \
    "  if who == '' or not id or not task or #id > 64 or #task > 200\n"                        \
    "     or string.find(m, '\"ignore_result\":%s*true') then return end\n"                   \
    "  local key = 'celery-task-meta-' .. id\n"                                                \
    "  local meta = '{\"status\":\"STARTED\",\"result\":' .. who ..\n"                         \
    "    ',\"traceback\":null,\"children\":[],\"date_done\":null,\"task_id\":\"' ..\n"         \
    "    id .. '\",\"name\":\"' .. task .. '\"}'\n"                                            \
    "  redis.call('SET', key, meta, 'EX', ttl)\n"                                              \
    "  redis.call('PUBLISH', key, meta)\n"                                                     \
    "end\n"

/* KEYS[1] inflight, KEYS[2..] queue lists in priority order; ARGV who, ttl,
 * max: up to max messages, highest priority first. */
static struct rds_script claim_script = {
    LUA_CLAIM
    "local out = {}\n"
    "local i = 2\n"
    "while #out < tonumber(ARGV[3]) and i <= #KEYS do\n"
    "  local m = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')\n"
    "  if m then\n"
    "    started(m, ARGV[1], ARGV[2])\n"
    "    out[#out + 1] = m\n"
    "  else\n"
    "    i = i + 1\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""};

/* Back to the head of the queue it came from (RPUSH: consumers pop from the
 * right), in its priority band; unreadable messages, and any whose routing
 * key would be one of our own keys, go to 'celery'. Newest
 * claim first (LPOP: claims are pushed on the left), so the oldest ends up
 * first in line again, as it was. */
#define LUA_REQUEUE                                                                            \
    "local function requeue(list)\n"                                                           \
    "  local n = redis.call('LLEN', list)\n" /* bounded: never loops on its own pushes */     \
    "  for _ = 1, n do\n"                                                                      \
    "    local m = redis.call('LPOP', list)\n"                                                 \
    "    if not m then return _ - 1 end\n"                                                     \
    "    local q = 'celery'\n"                                                                 \
    "    local ok, e = pcall(cjson.decode, m)\n"                                               \
    "    if ok and type(e) == 'table' and type(e.properties) == 'table' then\n"                \
    "      local di = e.properties.delivery_info\n"                                            \
    "      if type(di) == 'table' and type(di.routing_key) == 'string'\n"                      \
    "         and di.routing_key ~= '' and #di.routing_key <= 100\n"                           \
    "         and string.sub(di.routing_key, 1, 5) ~= 'qrun:' then q = di.routing_key end\n"   \
    "      local p = tonumber(e.properties.priority) or 0\n"                                   \
    "      if p >= 9 then q = q .. '\\6\\0229' elseif p >= 6 then q = q .. '\\6\\0226'\n"     \
    "      elseif p >= 3 then q = q .. '\\6\\0223' end\n"                                      \
    "    end\n"                                                                                \
    "    local r = redis.pcall('RPUSH', q, m)\n" /* q may name a key of another type */       \
    "    if type(r) == 'table' and r.err then redis.call('RPUSH', 'celery', m) end\n"          \
    "  end\n"                                                                                  \
    "  return n\n"                                                                             \
    "end\n"

/* KEYS[1] inflight */
static struct rds_script requeue_script = {LUA_REQUEUE "return requeue(KEYS[1])\n", ""};

/* KEYS[1] qrun:runners; ARGV deadline_ms, max slots. Reaps every runner
 * whose heartbeat is older than the deadline. */
static struct rds_script reap_script = {
    LUA_REQUEUE
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

int qrun_claim(struct rds *r, const char *inflight, const char *const *keys, int nkeys,
               const char *who, long ttl, int max, char **msgs, size_t *lens)
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
        for (size_t i = 0; i < rep->elements && n < max; i++) {
            if (rep->element[i]->type != REDIS_REPLY_STRING)
                continue;
            lens[n] = rep->element[i]->len;
            msgs[n] = xstrndup(rep->element[i]->str, rep->element[i]->len);
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

/* finish_script's keys and arguments (msg may hold any bytes). */
struct finish_args {
    char ttl[24];
    const char *arg[5];
    size_t len[5];
};

static void finish_args(struct finish_args *f, const char *inflight, const char *msg,
                        size_t len, const char *meta_key, const char *meta, long ttl)
{
    snprintf(f->ttl, sizeof(f->ttl), "%ld", ttl);
    const char *a[5] = {inflight, meta_key, msg, meta ? meta : "", f->ttl};
    for (int i = 0; i < 5; i++) {
        f->arg[i] = a[i];
        f->len[i] = i == 2 ? len : strlen(a[i]);
    }
}

int qrun_send_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                     const char *meta_key, const char *meta, long ttl)
{
    struct finish_args f = {0};
    finish_args(&f, inflight, msg, len, meta_key, meta, ttl);
    return rds_send_eval(r, &finish_script, 2, 5, f.arg, f.len);
}

int qrun_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                const char *meta_key, const char *meta, long ttl)
{
    struct finish_args f = {0};
    finish_args(&f, inflight, msg, len, meta_key, meta, ttl);
    return (int)int_reply(rds_eval(r, &finish_script, 2, 5, f.arg, f.len));
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

int qrun_submit(struct rds *r, const char *name, const char *id, json_t *args, json_t *kwargs,
                const char *queue, int priority, long ttl)
{
    char qkey[CEL_QUEUE_MAX + 8], mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX];
    if (cel_queue_key(qkey, sizeof(qkey), queue, priority) != 0 || !cel_id_valid(id))
        return -1;
    snprintf(mkey, sizeof(mkey), CEL_META_PREFIX "%s", id);
    struct buf msg = {0}, meta = {0};
    cel_message(&msg, name, id, args, kwargs, queue, priority);
    cel_meta(&meta, CEL_PENDING, NULL, NULL, id, name);
    int rc = -1;
    if (rds_append(r, "MULTI") == 0 &&
        rds_append(r, "SET %s %b EX %ld", mkey, meta.data, meta.len, ttl) == 0 &&
        rds_append(r, "LPUSH %s %b", qkey, msg.data, msg.len) == 0 && rds_append(r, "EXEC") == 0) {
        rc = 0;
        for (int i = 0; i < 4; i++) {
            redisReply *rep = rds_reply(r);
            if (rep == NULL)
                rc = -1;
            else if (i == 3 && rep->type != REDIS_REPLY_ARRAY)
                rc = -1; /* EXEC aborted */
            freeReplyObject(rep);
        }
    }
    buf_free(&msg);
    buf_free(&meta);
    return rc;
}
