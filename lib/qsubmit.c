/* The submitters' side of qrun.h: putting tasks in (submit, periodic
 * submit, re-run), taking them back (revoke), and reading them for their
 * owners (lookup, the failed lists). The runners' side is qrun.c; both
 * build their scripts from qrun_lua.h. */
#include "qrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "celery.h"
#include "mem.h"
#include "qrun_lua.h"

/* The replies our scripts give for a refusal: {code, retry ms}. */
static int refusal_reply(redisReply *rep, long *retry_ms)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER)
        return -1;
    if (retry_ms != NULL)
        *retry_ms = rep->elements > 1 && rep->element[1]->type == REDIS_REPLY_INTEGER
                        ? (long)rep->element[1]->integer
                        : 0;
    return (int)rep->element[0]->integer;
}

/* KEYS[1] meta, KEYS[2] the queue's list (no eta) or scheduled set; ARGV
 * meta, ttl, message, eta ms ('' = now), queue, id, owner ('' = none),
 * now ms, per_second, max_active, owner ttl (s). Nothing is written before
 * every check has passed; the first write is then one Redis refuses when
 * it is full (OOM), so a full Redis writes nothing either. */
static struct rds_script submit_script = {
    LUA_IS_FINAL LUA_OWNER LUA_ROUTE LUA_SCHEDULE LUA_ACTIVE
    "local want = ARGV[4] == '' and 'list' or 'zset'\n"
    "local t = redis.call('TYPE', KEYS[2]).ok\n"
    "if t ~= 'none' and t ~= want then return {3, 0} end\n"
    "t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t ~= 'none' and t ~= 'string' then return {3, 0} end\n"
    "local owner, now = ARGV[7], tonumber(ARGV[8])\n"
    "if owner ~= '' then\n"
    "  local no = admit(owner, now, tonumber(ARGV[9]), tonumber(ARGV[10]))\n"
    "  if no then return no end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "if ARGV[4] == '' then redis.call('LPUSH', KEYS[2], ARGV[3])\n"
    "else schedule(ARGV[3], ARGV[4]) end\n"
    "redis.call('SADD', 'qrun:queues', ARGV[5])\n"
    "if owner ~= '' then\n"
    "  local ottl = tonumber(ARGV[11])\n"
    "  redis.call('SET', 'qrun:owner:' .. ARGV[6], owner, 'EX', ottl)\n"
    "  hold(owner, ARGV[6], now, now + ottl * 1000)\n"
    "end\n"
    "return {0, 0}\n",
    ""};

/* KEYS[1] once key, KEYS[2] meta, KEYS[3] list or scheduled set; ARGV once
 * ttl, meta, ttl, message, eta ms ('' = now), queue */
static struct rds_script submit_once_script = {
    LUA_OWNER LUA_ROUTE LUA_SCHEDULE
    "if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end\n"
    "redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])\n"
    "if ARGV[5] == '' then redis.call('LPUSH', KEYS[3], ARGV[4])\n"
    "else schedule(ARGV[4], ARGV[5]) end\n"
    "redis.call('SADD', 'qrun:queues', ARGV[6])\n"
    "return 1\n",
    ""};

/* KEYS[1] meta, KEYS[2] revoked, KEYS[3] eta; ARGV ttl, REVOKED meta,
 * mark, channel, broadcast, terminate, caller ('' = an admin), id.
 * The owner is the meta's, else qrun:owner:<id> (a task run by a Python
 * worker, whose metas carry no owner); a caller who is not it gets
 * NOTFOUND and nothing is written. */
static struct rds_script revoke_script = {
    LUA_IS_FINAL LUA_OWNER LUA_WITH_NAME LUA_ACTIVE
    "local st, owner\n"
    "local cur = redis.pcall('GET', KEYS[1])\n"
    "if type(cur) ~= 'string' then cur = nil end\n"
    "if cur then st = status_of(cur); owner = owner_of(cur) end\n"
    "if not owner then\n"
    "  local o = redis.pcall('GET', 'qrun:owner:' .. ARGV[8])\n"
    "  if type(o) == 'string' then owner = o end\n"
    "end\n"
    "if ARGV[7] ~= '' and owner ~= ARGV[7] then return 'NOTFOUND' end\n"
    "if st == 'SUCCESS' or st == 'FAILURE' then return st end\n"
    /* a delayed task: the revoke must outlive the wait (qrun:eta:<id>) */
    "local ttl, left = tonumber(ARGV[1]), redis.call('PTTL', KEYS[3])\n"
    "if left > 0 then ttl = ttl + math.ceil(left / 1000) end\n"
    "redis.call('SET', KEYS[2], ARGV[3], 'EX', ttl)\n"
    "redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
    "if st == 'REVOKED' then return st end\n"
    "if st == 'STARTED' and ARGV[6] ~= '1' then return 'RUNNING' end\n"
    "local meta = with_owner(with_name(ARGV[2], cur or ''), owner)\n"
    "redis.call('SET', KEYS[1], meta, 'EX', ARGV[1])\n"
    "redis.call('PUBLISH', KEYS[1], meta)\n"
    /* it will never run: it no longer counts against its owner (a
     * terminated one is released by the runner that stops it) */
    "if st ~= 'STARTED' then release(owner, ARGV[8]) end\n"
    "return 'OK'\n",
    ""};

/* KEYS[1] meta; ARGV id, the failed message as read, new message, PENDING
 * meta, ttl, now ms, per_second, max_active. Not on the list (or the entry
 * changed since it was read): {4}. The re-run counts against the message's
 * owner like a submit: a refusal writes nothing. */
static struct rds_script rerun_script = {
    LUA_IS_FINAL LUA_OWNER LUA_ROUTE LUA_ACTIVE
    "local fm = 'qrun:failedmsg:' .. ARGV[1]\n"
    "if redis.call('GET', fm) ~= ARGV[2] then return {4, 0} end\n"
    "local q = route(ARGV[2])\n"
    /* aged out of the list (its message lingers until its TTL): gone */
    "if redis.call('ZSCORE', 'qrun:failed:' .. q, ARGV[1]) == false then return {4, 0} end\n"
    "local owner, now = owner_of(ARGV[2]), tonumber(ARGV[6])\n"
    "if owner then\n"
    "  local no = admit(owner, now, tonumber(ARGV[7]), tonumber(ARGV[8]))\n"
    "  if no then return no end\n"
    "  redis.call('ZREM', 'qrun:ufailed:' .. owner .. ':' .. q, ARGV[1])\n"
    "  hold(owner, ARGV[1], now, now + tonumber(ARGV[5]) * 1000)\n"
    "end\n"
    "redis.call('ZREM', 'qrun:failed:' .. q, ARGV[1])\n"
    "redis.call('DEL', fm, 'qrun:revoked:' .. ARGV[1])\n"
    "redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])\n"
    "local _, list = route(ARGV[3])\n"
    "redis.call('LPUSH', list, ARGV[3])\n"
    "redis.call('SADD', 'qrun:queues', q)\n"
    "return {0, 0}\n",
    ""};

/* A submission's message, meta and target (queue list, or the queue's
 * scheduled set when eta is set). */
struct submission {
    struct buf msg, meta;
    char target[CEL_QUEUE_MAX + 32];
    char mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX];
    char eta_ms[24];
    const char *queue;
};

static int submission(struct submission *s, const struct qrun_task *t)
{
    const struct qrun_opts *o = &t->opts;
    memset(s, 0, sizeof(*s));
    s->queue = o->queue ? o->queue : "celery";
    if (!cel_id_valid(t->id) || !cel_queue_valid(s->queue) ||
        (t->owner != NULL && !cel_id_valid(t->owner)))
        return -1;
    if (o->eta > 0) {
        snprintf(s->target, sizeof(s->target), QRUN_SCHEDULED "%s", s->queue);
        snprintf(s->eta_ms, sizeof(s->eta_ms), "%lld", (long long)(o->eta * 1000));
    } else if (cel_queue_key(s->target, sizeof(s->target), s->queue, o->priority) != 0) {
        return -1;
    }
    snprintf(s->mkey, sizeof(s->mkey), CEL_META_PREFIX "%s", t->id);
    struct cel_call c = {.task = t->name,
                         .id = t->id,
                         .args = t->args,
                         .kwargs = t->kwargs,
                         .queue = s->queue,
                         .priority = o->priority,
                         .eta = o->eta,
                         .expires = o->expires,
                         .time_limit = o->time_limit,
                         .soft_time_limit = o->soft_time_limit,
                         .owner = t->owner};
    cel_message(&s->msg, &c);
    struct cel_state st = {.status = CEL_PENDING, .task_id = t->id, .name = t->name,
                           .owner = t->owner};
    cel_meta(&s->meta, &st);
    return 0;
}

static void submission_free(struct submission *s)
{
    buf_free(&s->msg);
    buf_free(&s->meta);
}

int qrun_submit(struct rds *r, const struct qrun_task *t, const struct qrun_quota *q,
                long *retry_ms)
{
    struct submission s;
    if (submission(&s, t) != 0) {
        snprintf(r->err, sizeof(r->err), "qrun_submit: a bad id, queue or owner");
        return -1;
    }
    long long now = qrun_now_ms();
    /* the owner record lives as long as the meta can: RESULT_EXPIRES past
     * the eta */
    long delay = t->opts.eta > 0 ? (long)(t->opts.eta - (double)now / 1000.0) + 1 : 0;
    char ttl[24], now_s[24], per[24], max[24], ottl[24];
    snprintf(ttl, sizeof(ttl), "%ld", t->ttl);
    snprintf(now_s, sizeof(now_s), "%lld", now);
    snprintf(per, sizeof(per), "%ld", q ? q->per_second : 0);
    snprintf(max, sizeof(max), "%ld", q ? q->max_active : 0);
    snprintf(ottl, sizeof(ottl), "%ld", t->ttl + (delay > 0 ? delay : 0));
    const char *args[] = {s.mkey, s.target, s.meta.data, ttl, s.msg.data, s.eta_ms, s.queue,
                          t->id, t->owner ? t->owner : "", now_s, per, max, ottl};
    size_t lens[13];
    for (size_t i = 0; i < 13; i++)
        lens[i] = strlen(args[i]);
    lens[2] = s.meta.len;
    lens[4] = s.msg.len;
    redisReply *rep = rds_eval(r, &submit_script, 2, 13, args, lens);
    submission_free(&s);
    if (rep == NULL)
        return -1;
    int rc = refusal_reply(rep, retry_ms);
    freeReplyObject(rep);
    if (rc < 0)
        snprintf(r->err, sizeof(r->err), "qrun_submit: unexpected reply");
    return rc;
}

int qrun_submit_once(struct rds *r, const char *once_key, long once_ttl,
                     const struct qrun_task *t)
{
    struct submission s;
    if (submission(&s, t) != 0)
        return -1;
    char ot[24], ttl[24];
    snprintf(ot, sizeof(ot), "%ld", once_ttl);
    snprintf(ttl, sizeof(ttl), "%ld", t->ttl);
    const char *args_[] = {once_key, s.mkey, s.target, ot, s.meta.data, ttl,
                           s.msg.data, s.eta_ms, s.queue};
    redisReply *rep = rds_eval(r, &submit_once_script, 3, 9, args_, NULL);
    submission_free(&s);
    if (rep == NULL)
        return -1;
    int rc = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    freeReplyObject(rep);
    return rc;
}

int qrun_revoke(struct rds *r, const struct qrun_revoke *rv, char *state, size_t state_len)
{
    if (!cel_id_valid(rv->id))
        return -1;
    char mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX], rkey[sizeof(QRUN_REVOKED) + CEL_ID_MAX],
        ekey[sizeof(QRUN_ETA) + CEL_ID_MAX], t[24], chan[32];
    snprintf(mkey, sizeof(mkey), CEL_META_PREFIX "%s", rv->id);
    snprintf(rkey, sizeof(rkey), QRUN_REVOKED "%s", rv->id);
    snprintf(ekey, sizeof(ekey), QRUN_ETA "%s", rv->id);
    snprintf(t, sizeof(t), "%ld", rv->ttl);
    cel_pidbox_channel(chan, sizeof(chan), rds_db(r));
    struct buf meta = {0}, bc = {0};
    json_t *exc = cel_exc("TaskRevokedError", "celery.exceptions",
                          rv->terminate ? "terminated" : "revoked");
    struct cel_state st = {.status = CEL_REVOKED, .result = exc, .task_id = rv->id};
    cel_meta(&meta, &st);
    json_decref(exc);
    cel_revoke_broadcast(&bc, rv->id, rv->terminate);
    const char *args[] = {mkey, rkey, ekey, t, meta.data, rv->terminate ? "terminate" : "1",
                          chan, bc.data, rv->terminate ? "1" : "0",
                          rv->caller ? rv->caller : "", rv->id};
    redisReply *rep = rds_eval(r, &revoke_script, 3, 11, args, NULL);
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

int qrun_rerun(struct rds *r, const struct qrun_rerun *rr, char *task, size_t task_len,
               long *retry_ms)
{
    if (!cel_id_valid(rr->id))
        return QRUN_NOT_FOUND;
    redisReply *rep = rds_command(r, "GET " QRUN_FAILEDMSG "%s", rr->id);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return QRUN_NOT_FOUND;
    }
    struct cel_msg m;
    char err[128];
    int rc = QRUN_NOT_FOUND;
    /* a message that cannot be parsed was stored as failed for that
     * reason; it would fail the same way again. Someone else's task (or
     * nobody's, for a caller who is not an admin) is not found. */
    if (cel_parse(&m, rep->str, rep->len, err, sizeof(err)) == 0 &&
        (rr->caller == NULL || (m.owner != NULL && strcmp(m.owner, rr->caller) == 0))) {
        struct buf next = {0}, meta = {0};
        char mkey[sizeof(CEL_META_PREFIX) + CEL_ID_MAX], t[24], now[24], per[24], max[24];
        snprintf(mkey, sizeof(mkey), CEL_META_PREFIX "%s", rr->id);
        snprintf(t, sizeof(t), "%ld", rr->ttl);
        snprintf(now, sizeof(now), "%lld", qrun_now_ms());
        /* admins re-run anyone's task without touching their quota */
        snprintf(per, sizeof(per), "%ld", rr->caller ? rr->quota.per_second : 0);
        snprintf(max, sizeof(max), "%ld", rr->caller ? rr->quota.max_active : 0);
        cel_redeliver(&next, m.envelope, 0, 0);
        struct cel_state st = {.status = CEL_PENDING, .task_id = rr->id, .name = m.task,
                               .owner = m.owner};
        cel_meta(&meta, &st);
        snprintf(task, task_len, "%s", m.task);
        const char *args[] = {mkey, rr->id, rep->str, next.data, meta.data, t, now, per, max};
        size_t lens[9];
        for (size_t i = 0; i < 9; i++)
            lens[i] = strlen(args[i]);
        lens[2] = rep->len;
        lens[3] = next.len;
        lens[4] = meta.len;
        redisReply *res = rds_eval(r, &rerun_script, 1, 9, args, lens);
        rc = res == NULL ? -1 : refusal_reply(res, retry_ms);
        freeReplyObject(res);
        buf_free(&next);
        buf_free(&meta);
    }
    cel_msg_free(&m);
    freeReplyObject(rep);
    return rc;
}

int qrun_lookup(struct rds *r, const char *id, json_t **meta, char *owner, size_t owner_len)
{
    *meta = NULL;
    owner[0] = '\0';
    if (!cel_id_valid(id))
        return 0;
    redisReply *rep = rds_command(r, "MGET " CEL_META_PREFIX "%s " QRUN_OWNER "%s", id, id);
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        redisReply *m = rep->element[0], *o = rep->element[1];
        if (m->type == REDIS_REPLY_STRING)
            *meta = json_loadb(m->str, m->len, 0, NULL);
        const char *mo = json_string_value(json_object_get(*meta, "owner"));
        if (mo != NULL && cel_id_valid(mo))
            snprintf(owner, owner_len, "%s", mo);
        else if (o->type == REDIS_REPLY_STRING && cel_id_valid(o->str))
            snprintf(owner, owner_len, "%s", o->str);
    }
    freeReplyObject(rep);
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const struct qrun_failed *x = a, *y = b;
    return x->at_ms < y->at_ms ? 1 : x->at_ms > y->at_ms ? -1 : strcmp(x->id, y->id);
}

/* The failed-list key of queue q: the queue's own, or owner's part of it. */
static void failed_key(char *out, size_t n, const char *owner, const char *q)
{
    if (owner != NULL)
        snprintf(out, n, QRUN_UFAILED "%s:%s", owner, q);
    else
        snprintf(out, n, QRUN_FAILED "%s", q);
}

int qrun_failed_page(struct rds *r, const struct qrun_failed_query *fq,
                     struct qrun_failed_page *out)
{
    memset(out, 0, sizeof(*out));
    redisReply *qs = NULL;
    const char *names[QRUN_LIST_QUEUES + 1];
    size_t nq = 0;
    if (fq->queue != NULL) {
        names[nq++] = fq->queue;
    } else {
        if ((qs = rds_command(r, "SMEMBERS " QRUN_QUEUES)) == NULL)
            return -1;
        names[nq++] = "celery";
        for (size_t i = 0; i < qs->elements && nq < QRUN_LIST_QUEUES; i++)
            if (qs->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(qs->element[i]->str, "celery") != 0 &&
                cel_queue_valid(qs->element[i]->str))
                names[nq++] = qs->element[i]->str;
    }
    char cutoff[32], want[24], key[CEL_QUEUE_MAX + 128];
    snprintf(cutoff, sizeof(cutoff), "%lld", qrun_now_ms() - fq->max_age_s * 1000);
    long take = fq->offset + fq->limit < fq->max_count ? fq->offset + fq->limit : fq->max_count;
    snprintf(want, sizeof(want), "%ld", take);
    for (size_t i = 0; i < nq; i++) {
        failed_key(key, sizeof(key), fq->owner, names[i]);
        rds_append(r, "ZCOUNT %s %s +inf", key, cutoff);
        rds_append(r, "ZREVRANGEBYSCORE %s +inf %s WITHSCORES LIMIT 0 %s", key, cutoff, want);
    }
    size_t n = 0, cap = 64;
    struct qrun_failed *all = xcalloc(cap, sizeof(*all));
    int ok = 1;
    for (size_t i = 0; i < nq; i++) {
        redisReply *c = rds_reply(r), *z = rds_reply(r);
        if (c == NULL || z == NULL || c->type != REDIS_REPLY_INTEGER ||
            z->type != REDIS_REPLY_ARRAY) {
            ok = 0;
        } else {
            out->total += c->integer < fq->max_count ? c->integer : fq->max_count;
            for (size_t j = 0; j + 1 < z->elements; j += 2) {
                if (!cel_id_valid(z->element[j]->str))
                    continue;
                if (n == cap)
                    all = xrealloc(all, (cap *= 2) * sizeof(*all));
                snprintf(all[n].id, sizeof(all[n].id), "%s", z->element[j]->str);
                snprintf(all[n].queue, sizeof(all[n].queue), "%s", names[i]);
                all[n].at_ms = strtoll(z->element[j + 1]->str, NULL, 10);
                all[n].meta = NULL;
                n++;
            }
        }
        freeReplyObject(c);
        freeReplyObject(z);
    }
    freeReplyObject(qs);
    if (!ok) {
        free(all);
        if (r->err[0] == '\0')
            snprintf(r->err, sizeof(r->err), "qrun_failed_page: unexpected reply");
        return -1;
    }
    qsort(all, n, sizeof(*all), newest_first);
    size_t from = (size_t)fq->offset < n ? (size_t)fq->offset : n;
    size_t to = from + (size_t)fq->limit < n ? from + (size_t)fq->limit : n;
    for (size_t i = from; i < to; i++)
        rds_append(r, "GET " CEL_META_PREFIX "%s", all[i].id);
    for (size_t i = from; i < to; i++) {
        redisReply *m = rds_reply(r);
        if (m != NULL && m->type == REDIS_REPLY_STRING)
            all[i].meta = json_loadb(m->str, m->len, 0, NULL);
        freeReplyObject(m);
    }
    /* the page only */
    memmove(all, all + from, (to - from) * sizeof(*all));
    out->items = all;
    out->n = to - from;
    return 0;
}

void qrun_failed_page_free(struct qrun_failed_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        json_decref(p->items[i].meta);
    free(p->items);
    memset(p, 0, sizeof(*p));
}
