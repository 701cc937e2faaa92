#include "qstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "qrun.h"
#include "utf8.h"

#define QSTAT_KNOWN_SET "qrun:queues"

/* KEYS[1..4] a queue's priority band lists, KEYS[5] qrun:seen:<q>,
 * KEYS[6] qrun:scheduled:<q>, KEYS[7] qrun:failed:<q>; ARGV[1] now (ms).
 * Returns {depth, oldest age ms or -1, scheduled, failed}.
 * One script, so that readers in many processes never undo each other's
 * bookkeeping between a look at the heads and the pruning. A head message
 * is known by the SHA1 of its bytes, which a requeue (reap) keeps, so a
 * message put back keeps its age. Queue names come from clients: a key of
 * another type under such a name reads as empty (pcall), never as an error. */
static struct rds_script queue_script = {
    "local function count(cmd, key)\n"
    "  local n = redis.pcall(cmd, key)\n"
    "  if type(n) == 'number' then return n end\n"
    "  return 0\n"
    "end\n"
    "local now = tonumber(ARGV[1])\n"
    "local depth, oldest, heads = 0, -1, {}\n"
    "for i = 1, 4 do\n"
    "  local n = count('LLEN', KEYS[i])\n"
    "  depth = depth + n\n"
    "  if n > 0 then\n"
    "    local id = redis.sha1hex(redis.call('LINDEX', KEYS[i], -1))\n"
    "    heads[id] = true\n"
    "    redis.pcall('HSETNX', KEYS[5], id, now)\n"
    "    local t = tonumber(redis.pcall('HGET', KEYS[5], id)) or now\n"
    "    oldest = math.max(oldest, now - t, 0)\n"
    "  end\n"
    "end\n"
    "local seen = redis.pcall('HKEYS', KEYS[5])\n"
    "if type(seen) == 'table' and seen.err == nil then\n"
    "  for _, f in ipairs(seen) do\n"
    "    if not heads[f] then redis.call('HDEL', KEYS[5], f) end\n"
    "  end\n"
    "end\n"
    "return {depth, oldest, count('ZCARD', KEYS[6]), count('ZCARD', KEYS[7])}\n",
    ""};

/* KEYS[1] qrun:runners; ARGV max runners, max lists, max messages read per
 * list, slots of a runner whose hash is gone (QRUN_MAX_SLOTS, as the reaper
 * assumes). Returns {cut (0/1), total, queue, count, queue, count, ...}.
 * Every registered runner counts, alive or not: a dead runner's messages
 * stay in flight until a reaper puts them back. Reading the lists by name
 * (like the reaper) instead of SCANning for qrun:inflight:* keeps the cost
 * independent of the size of the keyspace (results, users cache). A message
 * without a routing key, or one that is not JSON, is a "celery" one, as the
 * runner's parser (cel_parse) takes it. */
static struct rds_script inflight_script = {
    "local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)\n"
    "local cut = 0\n"
    "if redis.call('ZCARD', KEYS[1]) > #ids then cut = 1 end\n"
    "local maxl, per, slots = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local lists, total, counts, order = 0, 0, {}, {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local c = tonumber(redis.pcall('HGET', 'qrun:runner:' .. id, 'concurrency')) or slots\n"
    "  c = math.min(c, slots)\n"
    "  for slot = 0, c - 1 do\n"
    "    if lists == maxl then cut = 1 break end\n"
    "    lists = lists + 1\n"
    "    local key = 'qrun:inflight:' .. id .. ':' .. slot\n"
    "    local msgs = redis.pcall('LRANGE', key, 0, per - 1)\n"
    "    if type(msgs) == 'table' and msgs.err == nil and #msgs > 0 then\n"
    "      local n = redis.call('LLEN', key)\n"
    "      total = total + n\n"
    "      if n > #msgs then cut = 1 end\n"
    "      for _, m in ipairs(msgs) do\n"
    "        local rk = 'celery'\n"
    "        local ok, env = pcall(cjson.decode, m)\n"
    "        if ok and type(env) == 'table' and type(env.properties) == 'table' then\n"
    "          local di = env.properties.delivery_info\n"
    "          if type(di) == 'table' and type(di.routing_key) == 'string' and\n"
    "             di.routing_key ~= '' then rk = di.routing_key end\n"
    "        end\n"
    "        if counts[rk] == nil then counts[rk] = 0; order[#order + 1] = rk end\n"
    "        counts[rk] = counts[rk] + 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out = {cut, total}\n"
    "for _, rk in ipairs(order) do out[#out + 1] = rk; out[#out + 1] = counts[rk] end\n"
    "return out\n",
    ""};

/* A number from a reply element (integer or decimal text), or def. */
static long long num(const redisReply *e, long long def)
{
    if (e == NULL)
        return def;
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type != REDIS_REPLY_STRING || e->len == 0)
        return def;
    char *end;
    double v = strtod(e->str, &end); /* ZSET scores come as "1.7e12" or "1732..." */
    if (*end != '\0' || !(v > -9.2e18 && v < 9.2e18))
        return def;
    return (long long)v;
}

/* Copy a reply string into out when it fits whole; -1 if it does not. */
static int copy_str(char *out, size_t n, const redisReply *e)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len >= n ||
        memchr(e->str, '\0', e->len) != NULL || !utf8_valid(e->str, e->len))
        return -1;
    memcpy(out, e->str, e->len);
    out[e->len] = '\0';
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct qstat_runner *)a)->id, ((const struct qstat_runner *)b)->id);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct qstat_queue *)a)->name, ((const struct qstat_queue *)b)->name);
}

/* The alive runners (the QSTAT_MAX_RUNNERS newest heartbeats) with their
 * hashes, sorted by id. */
static int read_runners(struct rds *r, long long alive_from, struct qstat *s)
{
    redisReply *count = rds_command(r, "ZCOUNT %s %lld +inf", QRUN_RUNNERS, alive_from);
    if (count == NULL)
        return -1;
    s->alive = num(count, 0);
    freeReplyObject(count);
    redisReply *ids = rds_command(r, "ZREVRANGEBYSCORE %s +inf %lld WITHSCORES LIMIT 0 %d",
                                  QRUN_RUNNERS, alive_from, QSTAT_MAX_RUNNERS);
    if (ids == NULL)
        return -1;
    if (ids->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(ids);
        return -1;
    }
    if (ids->elements / 2 == QSTAT_MAX_RUNNERS && s->alive > QSTAT_MAX_RUNNERS)
        s->truncated = 1;
    s->runners = xcalloc(ids->elements / 2 + 1, sizeof(*s->runners));
    for (size_t i = 0; i + 1 < ids->elements; i += 2) {
        struct qstat_runner *w = &s->runners[s->nrunners];
        if (copy_str(w->id, sizeof(w->id), ids->element[i]) != 0)
            continue; /* not one of ours: ids are short and printable */
        w->heartbeat_ms = num(ids->element[i + 1], 0);
        s->nrunners++;
    }
    freeReplyObject(ids);

    /* the hashes, pipelined: one round trip for every runner */
    size_t sent = 0;
    for (; sent < s->nrunners; sent++)
        if (rds_append(r, "HMGET qrun:runner:%s host pid queues concurrency started",
                       s->runners[sent].id) != 0)
            break;
    int rc = sent == s->nrunners ? 0 : -1;
    for (size_t i = 0; i < sent; i++) {
        redisReply *h = rds_reply(r);
        struct qstat_runner *w = &s->runners[i];
        w->pid = w->started_ms = w->concurrency = -1;
        if (h == NULL && !r->reply_err)
            rc = -1;
        if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 5) {
            (void)copy_str(w->host, sizeof(w->host), h->element[0]);
            w->pid = num(h->element[1], -1);
            (void)copy_str(w->queues, sizeof(w->queues), h->element[2]);
            w->concurrency = num(h->element[3], -1);
            w->started_ms = num(h->element[4], -1);
        }
        freeReplyObject(h);
    }
    qsort(s->runners, s->nrunners, sizeof(*s->runners), by_id);
    return rc;
}

/* Add a queue name (n bytes at p) unless it is not a name we can show. */
static void add_name(struct qstat *s, const char *p, size_t n)
{
    if (n == 0 || n >= CEL_QUEUE_MAX || memchr(p, '\0', n) != NULL || !utf8_valid(p, n))
        return;
    s->queues = xgrow(s->queues, &s->qcap, s->nqueues + 1, sizeof(*s->queues));
    struct qstat_queue *q = &s->queues[s->nqueues++];
    memset(q, 0, sizeof(*q));
    memcpy(q->name, p, n);
    q->name[n] = '\0';
}

/* celery, the live runners' queues, the known ones (flag): sorted, without
 * duplicates, the first QSTAT_MAX_QUEUES by name. */
static int read_names(struct rds *r, int flags, struct qstat *s)
{
    add_name(s, "celery", 6);
    for (size_t i = 0; i < s->nrunners; i++) {
        for (const char *p = s->runners[i].queues; *p != '\0';) {
            size_t n = strcspn(p, ",");
            add_name(s, p, n);
            p += n + (p[n] == ',');
        }
    }
    if (flags & QSTAT_KNOWN) {
        /* SORT ... LIMIT: Redis picks the first names, so a set grown huge
         * (clients may name any queue) costs one bounded reply */
        redisReply *card = rds_command(r, "SCARD %s", QSTAT_KNOWN_SET);
        if (card == NULL)
            return -1;
        long long total = num(card, 0);
        freeReplyObject(card);
        redisReply *known = rds_command(r, "SORT %s ALPHA LIMIT 0 %d", QSTAT_KNOWN_SET,
                                        QSTAT_MAX_QUEUES);
        if (known == NULL)
            return -1;
        if (known->type == REDIS_REPLY_ARRAY) {
            if (total > (long long)known->elements)
                s->truncated = 1;
            for (size_t i = 0; i < known->elements; i++)
                if (known->element[i]->type == REDIS_REPLY_STRING)
                    add_name(s, known->element[i]->str, known->element[i]->len);
        }
        freeReplyObject(known);
    }
    qsort(s->queues, s->nqueues, sizeof(*s->queues), by_name);
    size_t n = 0;
    for (size_t i = 0; i < s->nqueues; i++)
        if (n == 0 || strcmp(s->queues[n - 1].name, s->queues[i].name) != 0)
            s->queues[n++] = s->queues[i];
    if (n > QSTAT_MAX_QUEUES) {
        n = QSTAT_MAX_QUEUES;
        s->truncated = 1;
    }
    s->nqueues = n;
    return 0;
}

static int read_inflight(struct rds *r, struct qstat *s)
{
    char maxr[16], maxl[16], per[16], slots[16];
    snprintf(maxr, sizeof(maxr), "%d", QSTAT_MAX_RUNNERS);
    snprintf(maxl, sizeof(maxl), "%d", QSTAT_MAX_LISTS);
    snprintf(per, sizeof(per), "%d", QSTAT_MAX_PER_LIST);
    snprintf(slots, sizeof(slots), "%d", QRUN_MAX_SLOTS);
    const char *args[] = {QRUN_RUNNERS, maxr, maxl, per, slots};
    redisReply *rep = rds_eval(r, &inflight_script, 1, 5, args, NULL);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        freeReplyObject(rep);
        return -1;
    }
    if (num(rep->element[0], 0) != 0)
        s->truncated = 1;
    s->in_flight = num(rep->element[1], 0);
    for (size_t i = 2; i + 1 < rep->elements; i += 2) {
        struct qstat_queue key = {0};
        if (copy_str(key.name, sizeof(key.name), rep->element[i]) != 0)
            continue;
        struct qstat_queue *q =
            bsearch(&key, s->queues, s->nqueues, sizeof(*s->queues), by_name);
        if (q != NULL)
            q->in_flight = num(rep->element[i + 1], 0);
    }
    freeReplyObject(rep);
    return 0;
}

static int read_queue(struct rds *r, long long now_ms, struct qstat_queue *q)
{
    static const int bands[4] = {0, 3, 6, 9};
    char keys[7][CEL_QUEUE_MAX + 32], now[24];
    for (int i = 0; i < 4; i++)
        if (cel_queue_key(keys[i], sizeof(keys[i]), q->name, bands[i]) != 0)
            return -1;
    snprintf(keys[4], sizeof(keys[4]), "qrun:seen:%s", q->name);
    snprintf(keys[5], sizeof(keys[5]), "qrun:scheduled:%s", q->name);
    snprintf(keys[6], sizeof(keys[6]), "qrun:failed:%s", q->name);
    snprintf(now, sizeof(now), "%lld", now_ms);
    const char *args[8] = {keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6], now};
    redisReply *rep = rds_eval(r, &queue_script, 7, 8, args, NULL);
    if (rep == NULL)
        return -1;
    int ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 4;
    if (ok) {
        q->depth = num(rep->element[0], 0);
        q->oldest_ms = q->depth > 0 ? num(rep->element[1], 0) : -1;
        q->scheduled = num(rep->element[2], 0);
        q->failed = num(rep->element[3], 0);
    }
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

int qstat_read(struct rds *r, long long now_ms, long lease_s, int flags, struct qstat *s)
{
    memset(s, 0, sizeof(*s));
    if (read_runners(r, now_ms - lease_s * 1000, s) != 0 || read_names(r, flags, s) != 0 ||
        read_inflight(r, s) != 0)
        return -1;
    for (size_t i = 0; i < s->nqueues; i++)
        if (read_queue(r, now_ms, &s->queues[i]) != 0)
            return -1;
    return 0;
}

void qstat_free(struct qstat *s)
{
    free(s->runners);
    free(s->queues);
    memset(s, 0, sizeof(*s));
}

/* KEYS[1] qrun:runners; ARGV alive-from (ms), queue, max runners */
static struct rds_script consumed_script = {
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0,\n"
    "                               ARGV[3])) do\n"
    "  local qs = redis.pcall('HGET', 'qrun:runner:' .. id, 'queues')\n"
    "  if type(qs) == 'string' then\n"
    "    for q in string.gmatch(qs, '[^,]+') do\n"
    "      if q == ARGV[2] then return 1 end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return 0\n",
    ""};

int qstat_consumed(struct rds *r, const char *q, long long now_ms, long lease_s)
{
    char from[32], max[16];
    snprintf(from, sizeof(from), "%lld", now_ms - lease_s * 1000);
    snprintf(max, sizeof(max), "%d", QSTAT_MAX_RUNNERS);
    const char *args[] = {QRUN_RUNNERS, from, q, max};
    redisReply *rep = rds_eval(r, &consumed_script, 1, 4, args, NULL);
    if (rep == NULL)
        return -1;
    int yes = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    freeReplyObject(rep);
    return yes;
}
