/* Password attempts and registrations, counted in Redis (throttle.h). */
#include "throttle.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

/* A user name goes into a key whole up to this many bytes (real ones are
 * far shorter: 64 characters before folding); longer ones share a count
 * with any name that begins the same. */
#define NAME_IN_KEY_MAX 512

void throttle_addr(const char *remote, char *out, size_t outlen)
{
    unsigned char a[16];
    if (remote == NULL || *remote == '\0')
        remote = "-";
    if (inet_pton(AF_INET6, remote, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        char s[INET6_ADDRSTRLEN];
        if (memcmp(a, mapped, sizeof(mapped)) == 0) {
            inet_ntop(AF_INET, a + 12, s, sizeof(s));
            snprintf(out, outlen, "%s", s);
            return;
        }
        memset(a + 8, 0, 8);
        inet_ntop(AF_INET6, a, s, sizeof(s));
        snprintf(out, outlen, "%s/64", s);
        return;
    }
    snprintf(out, outlen, "%s", remote);
}

static void pair_key(struct buf *k, const char *name, const char *addr)
{
    buf_printf(k, "login:fail:%s|%.*s", addr, NAME_IN_KEY_MAX, name);
}

/* KEYS: the pair's hash {n: attempts counted, until: ms}. ARGV: free, max
 * (s), ttl (s). The wait left in ms, or 0 after counting this attempt. */
static struct rds_script pass_script = {
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local till = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')\n"
    "if till > now then return till - now end\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'n', 1)\n"
    "local over = n - tonumber(ARGV[1])\n"
    "local wait = 0\n"
    "if over > 0 then\n"
    "  wait = math.min(1000 * 2 ^ math.min(over - 1, 40), tonumber(ARGV[2]) * 1000)\n"
    "  redis.call('HSET', KEYS[1], 'until', math.floor(now + wait))\n"
    "end\n"
    "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) + math.ceil(wait / 1000))\n"
    "return 0\n",
    ""};

enum throttle_verdict throttle_pass_try(struct rds *r, const struct throttle_delay *cfg,
                                        const char *name, const char *addr, long *retry_after)
{
    struct buf key = {0};
    char free_s[24], max_s[24], ttl_s[24];
    pair_key(&key, name, addr);
    snprintf(free_s, sizeof(free_s), "%ld", cfg->free);
    snprintf(max_s, sizeof(max_s), "%ld", cfg->max);
    snprintf(ttl_s, sizeof(ttl_s), "%ld", cfg->ttl);
    const char *args[] = {key.data, free_s, max_s, ttl_s};
    redisReply *rep = rds_eval(r, &pass_script, 1, 4, args, NULL);
    buf_free(&key);
    enum throttle_verdict v = THROTTLE_DOWN;
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
        v = rep->integer > 0 ? THROTTLE_WAIT : THROTTLE_GO;
        *retry_after = (long)((rep->integer + 999) / 1000);
    } else if (rep != NULL) {
        snprintf(r->err, sizeof(r->err), "throttle: unexpected reply");
    }
    freeReplyObject(rep);
    return v;
}

int throttle_pass_ok(struct rds *r, const char *name, const char *addr)
{
    struct buf key = {0};
    pair_key(&key, name, addr);
    const char *argv[] = {"DEL", key.data};
    redisReply *rep = rds_argv(r, 2, argv, NULL);
    buf_free(&key);
    int rc = rep != NULL ? 0 : -1;
    freeReplyObject(rep);
    return rc;
}

/* KEYS: the window's counter. ARGV: window (s). {count, seconds left}. */
static struct rds_script window_script = {
    "local n = redis.call('INCR', KEYS[1])\n"
    "local ttl = redis.call('TTL', KEYS[1])\n"
    "if ttl < 0 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
    "  ttl = tonumber(ARGV[1])\n"
    "end\n"
    "return {n, ttl}\n",
    ""};

enum throttle_verdict throttle_addr_hit(struct rds *r, enum throttle_kind kind, const char *addr,
                                        long window, long limit, long *retry_after)
{
    char key[128], w[24];
    snprintf(key, sizeof(key), "%s:addr:%s", kind == THROTTLE_LOGIN ? "login" : "register", addr);
    snprintf(w, sizeof(w), "%ld", window);
    const char *args[] = {key, w};
    redisReply *rep = rds_eval(r, &window_script, 1, 2, args, NULL);
    enum throttle_verdict v = THROTTLE_DOWN;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER &&
        rep->element[1]->type == REDIS_REPLY_INTEGER) {
        v = rep->element[0]->integer > limit ? THROTTLE_WAIT : THROTTLE_GO;
        *retry_after = rep->element[1]->integer > 0 ? (long)rep->element[1]->integer : 1;
    } else if (rep != NULL) {
        snprintf(r->err, sizeof(r->err), "throttle: unexpected reply");
    }
    freeReplyObject(rep);
    return v;
}
