#include "vcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define TOMBSTONE "deleted"
#define PENDING "pending"

/* KEYS[1]; ARGV version, value, ttl, 'w' for a writer. Leaves a newer
 * version or a tombstone in place, and a pending write for a reader. */
static struct rds_script put_script = {
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then\n"
    "  if cur == '" TOMBSTONE "' then return 0 end\n"
    "  if cur == '" PENDING "' and ARGV[4] ~= 'w' then return 0 end\n"
    "  local v = tonumber(string.match(cur, '^(%d+) '))\n"
    "  if v and v >= tonumber(ARGV[1]) then return 0 end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
    "return 1\n",
    ""};

static void key_of(const struct vcache *c, const char *id, char *key, size_t n)
{
    snprintf(key, n, "%s%s", c->prefix, id);
}

/* A Redis failure: log the first of an outage. */
static void failed(struct vcache *c)
{
    if (!c->down)
        log_warn("cache unavailable (reading the database): %s", c->redis->err);
    c->down = 1;
}

static void ok(struct vcache *c)
{
    if (c->down)
        log_info("cache reachable again");
    c->down = 0;
}

enum vcache_hit vcache_get(struct vcache *c, const char *id, struct buf *out)
{
    if (c->redis == NULL)
        return VCACHE_MISS;
    char key[128];
    key_of(c, id, key, sizeof(key));
    redisReply *rep = rds_command(c->redis, "GET %s", key);
    if (rep == NULL) {
        failed(c);
        return VCACHE_MISS;
    }
    ok(c);
    enum vcache_hit hit = VCACHE_MISS;
    if (rep->type == REDIS_REPLY_STRING) {
        const char *sp = memchr(rep->str, ' ', rep->len);
        if (rep->len == strlen(TOMBSTONE) && memcmp(rep->str, TOMBSTONE, rep->len) == 0) {
            hit = VCACHE_GONE;
        } else if (sp != NULL) {
            buf_append(out, sp + 1, rep->len - (size_t)(sp + 1 - rep->str));
            hit = VCACHE_HIT;
        }
    }
    freeReplyObject(rep);
    return hit;
}

/* KEYS[1]; ARGV ttl. A tombstone stays (the write will find nothing). */
static struct rds_script begin_script = {
    "if redis.call('GET', KEYS[1]) == '" TOMBSTONE "' then return 0 end\n"
    "redis.call('SET', KEYS[1], '" PENDING "', 'EX', ARGV[1])\n"
    "return 1\n",
    ""};

int vcache_begin(struct vcache *c, const char *id)
{
    if (c->redis == NULL)
        return 0;
    char key[128], ttl[24];
    key_of(c, id, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%ld", c->ttl);
    const char *args[] = {key, ttl};
    redisReply *rep = rds_eval(c->redis, &begin_script, 1, 2, args, NULL);
    if (rep == NULL) {
        failed(c);
        return -1;
    }
    ok(c);
    freeReplyObject(rep);
    return 0;
}

void vcache_put(struct vcache *c, enum vcache_who who, const char *id, const char *version,
                const char *doc, size_t len)
{
    if (c->redis == NULL)
        return;
    char key[128], ttl[24];
    key_of(c, id, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%ld", c->ttl);
    struct buf val = {0};
    buf_printf(&val, "%s ", version);
    buf_append(&val, doc, len);
    const char *w = who == VCACHE_WRITER ? "w" : "r";
    const char *args[] = {key, version, val.data, ttl, w};
    const size_t lens[] = {strlen(key), strlen(version), val.len, strlen(ttl), 1};
    redisReply *rep = rds_eval(c->redis, &put_script, 1, 5, args, lens);
    buf_free(&val);
    if (rep == NULL) {
        failed(c);
        return;
    }
    ok(c);
    freeReplyObject(rep);
}

void vcache_gone(struct vcache *c, const char *id)
{
    if (c->redis == NULL)
        return;
    char key[128];
    key_of(c, id, key, sizeof(key));
    redisReply *rep = rds_command(c->redis, "SET %s %s EX %ld", key, TOMBSTONE, c->ttl);
    if (rep == NULL) {
        failed(c);
        return;
    }
    ok(c);
    freeReplyObject(rep);
}
