#include "qrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "celery.h"
#include "mem.h"
#include "qrun_lua.h"

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

/* KEYS[1] meta; ARGV meta, ttl */
static struct rds_script state_script = {
    LUA_ALLOW_OOM LUA_IS_FINAL
    "if is_final(KEYS[1]) then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "redis.call('PUBLISH', KEYS[1], ARGV[1])\n"
    "return 1\n",
    ""};

/* KEYS[1] inflight, KEYS[2] meta; ARGV message, meta, ttl, failed, id, now,
 * max, age */
static struct rds_script finish_script = {
    LUA_ALLOW_OOM LUA_COMMON "return settle(KEYS[1], ARGV[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5],\n"
               "  ARGV[6], ARGV[7], ARGV[8])\n",
    ""};

/* KEYS[1] inflight, KEYS[2..] queue lists in priority order; ARGV who, ttl,
 * max: up to max messages, highest priority first, each followed by its
 * flags. */
static struct rds_script claim_script = {
    LUA_ALLOW_OOM LUA_IS_FINAL LUA_OWNER LUA_ROUTE LUA_CLAIM
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

/* KEYS[1] inflight */
static struct rds_script requeue_script = {
    LUA_ALLOW_OOM LUA_ROUTE LUA_REQUEUE "return requeue(KEYS[1])\n", ""};

/* KEYS[1] qrun:runners; ARGV deadline_ms, max slots. Reaps every runner
 * whose heartbeat is older than the deadline. */
static struct rds_script reap_script = {
    LUA_ALLOW_OOM LUA_ROUTE LUA_REQUEUE
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
    LUA_ALLOW_OOM LUA_ROUTE LUA_SCHEDULE
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
    LUA_ALLOW_OOM LUA_IS_FINAL LUA_ROUTE LUA_SCHEDULE
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
    LUA_ALLOW_OOM LUA_COMMON LUA_REQUEUE LUA_WITH_NAME
    "local st = 3\n"
    "for _, m in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
    "  if msg_id(m) == ARGV[1] then\n"
    "    st = settle(KEYS[1], m, KEYS[2], with_owner(with_name(ARGV[2], m), owner_of(m)),\n"
    "                ARGV[3], ARGV[4], ARGV[1], ARGV[5], ARGV[6], ARGV[7])\n"
    "    break\n"
    "  end\n"
    "end\n"
    "return {st, requeue(KEYS[1])}\n",
    ""};

/* ARGV now (ms), limit per queue. Due messages, earliest first in line. */
static struct rds_script promote_script = {
    LUA_ALLOW_OOM LUA_ROUTE
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
    LUA_ALLOW_OOM LUA_OWNER LUA_ROUTE LUA_FAILED
    "local n = 0\n"
    "for _, q in ipairs(redis.call('SMEMBERS', 'qrun:queues')) do\n"
    "  n = n + trim('qrun:failed:' .. q, tonumber(ARGV[1]), tonumber(ARGV[2]),\n"
    "               tonumber(ARGV[3]), true)\n"
    "end\n"
    "return n\n",
    ""};

/* KEYS[1] revoked, KEYS[2] eta; ARGV ttl, mark: a revoke heard on the
 * pidbox channel (ours or Python's), kept at least as long as it was and
 * past the task's eta. */
static struct rds_script note_revoke_script = {
    LUA_ALLOW_OOM
    "local ttl, left = tonumber(ARGV[1]), redis.call('PTTL', KEYS[2])\n"
    "if left > 0 then ttl = ttl + math.ceil(left / 1000) end\n"
    "local cur = redis.call('TTL', KEYS[1])\n"
    "if cur > ttl then ttl = cur end\n"
    "local mark = ARGV[2]\n"
    "if redis.call('GET', KEYS[1]) == 'terminate' then mark = 'terminate' end\n"
    "redis.call('SET', KEYS[1], mark, 'EX', ttl)\n"
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

/* KEYS[1] qrun:runners, KEYS[2] the runner's hash; ARGV id, now (ms), host,
 * pid, queues, concurrency, started, hash ttl. ZADD answers 1 when the
 * member is new: the runner had been reaped (or this is its first beat). */
static struct rds_script heartbeat_script = {
    LUA_ALLOW_OOM
    "local new = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n"
    "redis.call('HSET', KEYS[2], 'host', ARGV[3], 'pid', ARGV[4], 'queues', ARGV[5],\n"
    "           'concurrency', ARGV[6], 'started', ARGV[7])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[8])\n"
    "return new\n",
    ""};

int qrun_heartbeat(struct rds *r, const char *id, const char *host, long pid,
                   const char *queues, int concurrency, long long started_ms, long lease_s)
{
    char hkey[256], now[24], p[24], c[16], st[24], ttl[24];
    if (qrun_runner_key(hkey, sizeof(hkey), id) != 0)
        return -1;
    snprintf(now, sizeof(now), "%lld", qrun_now_ms());
    snprintf(p, sizeof(p), "%ld", pid);
    snprintf(c, sizeof(c), "%d", concurrency);
    snprintf(st, sizeof(st), "%lld", started_ms);
    snprintf(ttl, sizeof(ttl), "%ld", lease_s * 10 + 60);
    const char *args[] = {QRUN_RUNNERS, hkey, id, now, host, p, queues, c, st, ttl};
    long added = int_reply(rds_eval(r, &heartbeat_script, 2, 10, args, NULL));
    if (added < 0)
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

