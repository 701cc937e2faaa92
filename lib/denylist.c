/* The revoked-token list: Redis holds it, each checking process keeps a
 * copy (denylist.h). */
#include "denylist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

#define DENY_KEY "revoked"
#define DENY_SEQ "revoked:seq"

void deny_init(struct deny *d, double period)
{
    memset(d, 0, sizeof(*d));
    d->period = period;
}

void deny_free(struct deny *d)
{
    free(d->slot);
    d->slot = NULL;
    d->cap = d->n = 0;
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct deny_entry *find(const struct deny *d, const char *jti)
{
    if (d->cap == 0)
        return NULL;
    for (size_t i = hash(jti) & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
        struct deny_entry *e = &d->slot[i];
        if (e->jti[0] == '\0' || strcmp(e->jti, jti) == 0)
            return e;
    }
}

/* Double the table (or start it), dropping entries expired by now. */
static void grow(struct deny *d, long now)
{
    struct deny_entry *old = d->slot;
    size_t oldcap = d->cap;
    d->cap = oldcap ? oldcap * 2 : 64;
    d->slot = xcalloc(d->cap, sizeof(*d->slot));
    d->n = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].jti[0] != '\0' && old[i].exp >= now) {
            *find(d, old[i].jti) = old[i];
            d->n++;
        }
    }
    free(old);
}

void deny_add(struct deny *d, const char *jti, long exp, long now)
{
    if (exp < now || jti[0] == '\0' || strlen(jti) >= sizeof(d->slot[0].jti))
        return;
    if ((d->n + 1) * 2 > d->cap)
        grow(d, now);
    struct deny_entry *e = find(d, jti);
    if (e->jti[0] == '\0') {
        snprintf(e->jti, sizeof(e->jti), "%s", jti);
        d->n++;
    }
    if (exp > e->exp)
        e->exp = exp;
}

int deny_check(const struct deny *d, const char *jti)
{
    if (!d->loaded)
        return -1;
    struct deny_entry *e = find(d, jti);
    return e != NULL && e->jti[0] != '\0';
}

/* KEYS: revoked, revoked:seq. ARGV: jti, exp. Members whose exp has passed
 * are dropped from the oldest end, a few per call: every token lives at
 * most one TTL, so the oldest members expire first, near enough. */
static struct rds_script revoke_script = {
    "local seq = redis.call('INCR', KEYS[2])\n"
    "redis.call('ZADD', KEYS[1], seq, ARGV[2] .. ' ' .. ARGV[1])\n"
    "local now = tonumber(redis.call('TIME')[1])\n"
    "for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, 7)) do\n"
    "  local exp = tonumber(string.match(m, '^(%d+) '))\n"
    "  if exp == nil or exp < now then redis.call('ZREM', KEYS[1], m) end\n"
    "end\n"
    "return seq\n",
    ""};

int deny_revoke(struct rds *r, const char *jti, long exp)
{
    char e[24];
    snprintf(e, sizeof(e), "%ld", exp);
    const char *args[] = {DENY_KEY, DENY_SEQ, jti, e};
    redisReply *rep = rds_eval(r, &revoke_script, 2, 4, args, NULL);
    int rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rep != NULL && rc != 0)
        snprintf(r->err, sizeof(r->err), "revoke: unexpected reply");
    freeReplyObject(rep);
    return rc;
}

/* KEYS: revoked, revoked:seq. ARGV: the last sequence seen. Returns
 * {seq, members newer than ARGV[1]}; everything when the sequence went
 * back (Redis lost its data). */
static struct rds_script sync_script = {
    "local seq = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local from = tonumber(ARGV[1])\n"
    "if seq < from then from = 0 end\n"
    "return {seq, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. from, '+inf')}\n",
    ""};

int deny_sync(struct deny *d, struct rds *r, double mono, long now)
{
    if (d->tried_at > 0 && mono - d->tried_at < d->period)
        return 0;
    d->tried_at = mono;
    char from[24];
    snprintf(from, sizeof(from), "%lld", d->seq);
    const char *args[] = {DENY_KEY, DENY_SEQ, from};
    redisReply *rep = rds_eval(r, &sync_script, 2, 3, args, NULL);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        if (rep != NULL)
            snprintf(r->err, sizeof(r->err), "revoked list: unexpected reply");
        freeReplyObject(rep);
        return -1;
    }
    redisReply *m = rep->element[1];
    for (size_t i = 0; i < m->elements; i++) {
        if (m->element[i]->type != REDIS_REPLY_STRING)
            continue;
        const char *s = m->element[i]->str, *sp = strchr(s, ' ');
        char *end;
        long exp = strtol(s, &end, 10);
        if (sp == NULL || end != sp)
            continue;
        deny_add(d, sp + 1, exp, now);
    }
    d->seq = rep->element[0]->integer;
    d->loaded = 1;
    d->synced_at = mono;
    freeReplyObject(rep);
    return 0;
}
