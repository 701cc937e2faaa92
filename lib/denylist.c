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

static void table_free(struct deny_table *t)
{
    free(t->slot);
    t->slot = NULL;
    t->cap = t->n = 0;
}

void deny_free(struct deny *d)
{
    table_free(&d->jtis);
    table_free(&d->users);
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The slot holding key, or the free one where it would go; NULL for an
 * empty table. */
static struct deny_entry *find(const struct deny_table *t, const char *key)
{
    if (t->cap == 0)
        return NULL;
    for (size_t i = hash(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct deny_entry *e = &t->slot[i];
        if (e->key[0] == '\0' || strcmp(e->key, key) == 0)
            return e;
    }
}

/* Double the table (or start it), dropping entries expired by now. */
static void grow(struct deny_table *t, long now)
{
    struct deny_entry *old = t->slot;
    size_t oldcap = t->cap;
    t->cap = oldcap ? oldcap * 2 : 64;
    t->slot = xcalloc(t->cap, sizeof(*t->slot));
    t->n = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key[0] != '\0' && old[i].exp >= now) {
            *find(t, old[i].key) = old[i];
            t->n++;
        }
    }
    free(old);
}

/* The entry for key, made (empty but for the key) if there was none; NULL
 * for a key we never hold (empty, too long) or one expired by now. */
static struct deny_entry *entry(struct deny_table *t, const char *key, long exp, long now)
{
    if (exp < now || key[0] == '\0' || strlen(key) >= sizeof(t->slot[0].key))
        return NULL;
    if ((t->n + 1) * 2 > t->cap)
        grow(t, now);
    struct deny_entry *e = find(t, key);
    if (e->key[0] == '\0') {
        snprintf(e->key, sizeof(e->key), "%s", key);
        t->n++;
    }
    return e;
}

void deny_add(struct deny *d, const char *jti, long exp, long now)
{
    struct deny_entry *e = entry(&d->jtis, jti, exp, now);
    if (e != NULL && exp > e->exp)
        e->exp = exp;
}

void deny_add_user(struct deny *d, const struct deny_user *u, long exp, long now)
{
    const char *except = u->except != NULL ? u->except : "";
    if (strlen(except) >= sizeof(d->users.slot[0].except))
        return;
    struct deny_entry *e = entry(&d->users, u->sub, exp, now);
    /* entries come in the order they were made: a later one of the same
     * generation wins (its exception is the newer change's); an older
     * generation (heard again after Redis lost its data) does not */
    if (e == NULL || (e->exp != 0 && u->gen < e->gen))
        return;
    e->gen = u->gen;
    if (u->at > e->at)
        e->at = u->at;
    snprintf(e->except, sizeof(e->except), "%s", except);
    if (exp > e->exp)
        e->exp = exp;
}

int deny_check(const struct deny *d, const char *jti)
{
    if (!d->loaded)
        return -1;
    struct deny_entry *e = find(&d->jtis, jti);
    return e != NULL && e->key[0] != '\0';
}

int deny_check_token(const struct deny *d, const struct token_claims *c, long now)
{
    int by_jti = deny_check(d, c->jti);
    if (by_jti != 0)
        return by_jti;
    struct deny_entry *u = find(&d->users, c->sub);
    if (u == NULL || u->key[0] == '\0' || u->exp < now || strcmp(c->jti, u->except) == 0)
        return 0;
    return c->gen > 0 ? c->gen < u->gen : c->iat <= u->at;
}

/* KEYS: revoked, revoked:seq. ARGV: what (a jti, or a user's "~<gen>
 * <except> <sub>"), exp. Members whose exp has passed
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

static int revoke_member(struct rds *r, const char *what, long exp)
{
    char e[24];
    snprintf(e, sizeof(e), "%ld", exp);
    const char *args[] = {DENY_KEY, DENY_SEQ, what, e};
    redisReply *rep = rds_eval(r, &revoke_script, 2, 4, args, NULL);
    int rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rep != NULL && rc != 0)
        snprintf(r->err, sizeof(r->err), "revoke: unexpected reply");
    freeReplyObject(rep);
    return rc;
}

int deny_revoke(struct rds *r, const char *jti, long exp)
{
    if (*jti == '\0' || *jti == '~') { /* never a jti of ours (celery.h's uuids) */
        snprintf(r->err, sizeof(r->err), "revoke: not a token id");
        return -1;
    }
    return revoke_member(r, jti, exp);
}

int deny_revoke_user(struct rds *r, const struct deny_user *u, long exp)
{
    const char *except = u->except != NULL && *u->except != '\0' ? u->except : "-";
    if (*u->sub == '\0' || strlen(u->sub) > 64 || strlen(except) > 64 ||
        strchr(except, ' ') != NULL) {
        snprintf(r->err, sizeof(r->err), "revoke: no such user or token");
        return -1;
    }
    char what[200];
    snprintf(what, sizeof(what), "~%ld %ld %s %s", u->gen, u->at, except, u->sub);
    return revoke_member(r, what, exp);
}

/* One member of the set: "<exp> <jti>" or "<exp> ~<gen> <at> <except>
 * <sub>". Anything else is skipped. */
static void add_member(struct deny *d, const char *s, long now)
{
    char *end;
    long exp = strtol(s, &end, 10);
    if (end == s || *end != ' ')
        return;
    const char *what = end + 1;
    if (*what != '~') {
        deny_add(d, what, exp, now);
        return;
    }
    struct deny_user u = {0};
    u.gen = strtol(what + 1, &end, 10);
    if (end == what + 1 || *end != ' ')
        return;
    const char *at = end + 1;
    u.at = strtol(at, &end, 10);
    if (end == at || *end != ' ')
        return;
    const char *except = end + 1, *sp = strchr(except, ' ');
    if (sp == NULL || sp - except > 64 || sp[1] == '\0')
        return;
    char ex[65];
    snprintf(ex, sizeof(ex), "%.*s", (int)(sp - except), except);
    u.sub = sp + 1;
    u.except = strcmp(ex, "-") == 0 ? NULL : ex;
    deny_add_user(d, &u, exp, now);
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
    for (size_t i = 0; i < m->elements; i++)
        if (m->element[i]->type == REDIS_REPLY_STRING)
            add_member(d, m->element[i]->str, now);
    d->seq = rep->element[0]->integer;
    d->loaded = 1;
    d->synced_at = mono;
    freeReplyObject(rep);
    return 0;
}
