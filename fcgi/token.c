/* /api/token: OAuth2 resource owner password grant (RFC 6749 §4.3).
 *
 *   POST /api/token   application/x-www-form-urlencoded
 *        grant_type=password&username=...&password=...[&scope=a b]
 *     -> 200 {"access_token","token_type":"bearer","expires_in"[,"scope"]}
 *        Cache-Control: no-store
 *      | 400 {"error":"invalid_request"|"unsupported_grant_type"|
 *              "invalid_grant"|"invalid_scope","error_description":...}
 *      | 429 {"detail":...}, Retry-After: too many attempts for that user
 *        name or from that address | 503 PostgreSQL or Redis down
 *
 *   POST /api/token/revoke   token=<access token>   (RFC 7009)
 *     -> 200 {} : a token we signed is denied (denylist.h) until it would
 *        have expired anyway, at the gateway within REVOKE_SYNC_MS;
 *        anything else is ignored, as §2.2 says | 400 invalid_request (no
 *        token) | 503 Redis down
 *
 * The token is a JWT (lib/token.h) with sub = the user's id and scope =
 * the requested scopes (all the user's when none are asked for), which
 * must be the user's. Attempts count per user name and per client address
 * in Redis, in fixed windows of LOGIN_WINDOW seconds; a user that does not
 * exist costs the same hash as one that does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "celery.h"
#include "db.h"
#include "denylist.h"
#include "log.h"
#include "passwd.h"
#include "redis.h"
#include "serve.h"
#include "token.h"
#include "url.h"
#include "utf8.h"

static struct {
    char *database_url, *redis_url, *keys_spec;
    long ttl, window, per_user, per_addr, db_timeout_ms;
} cfg;

static const struct db_stmt stmts[] = {
    /* one row, also for a name nobody has: the name as the lookup folds
     * it (lower() under the database's collation), the attempt counter's
     * key, so "ALICE" and "alice" share alice's limit */
    {"login",
     "SELECT lower($1::text), u.id, u.password_hash, array_to_string(u.scopes, ' ')"
     " FROM (SELECT 1) one LEFT JOIN users u ON lower(u.username) = lower($1::text)",
     1},
};

static struct db db;
static struct rds redis;
static struct token_keys keys;
static int ready;

static int setup(void)
{
    if (ready)
        return 0;
    char err[256];
    if (db_init(&db, cfg.database_url, (int)cfg.db_timeout_ms, stmts, 1, err, sizeof(err)) != 0 ||
        rds_init(&redis, cfg.redis_url, 500, err, sizeof(err)) != 0 ||
        token_keys_parse(&keys, cfg.keys_spec, err, sizeof(err)) != 0) {
        log_err("setup: %s", err);
        return -1;
    }
    ready = 1;
    return 0;
}

/* RFC 6749 §5.2's error answer. */
static int oauth_error(struct http_resp *rs, const char *error, const char *description)
{
    http_json_new(rs, 400, json_pack("{s:s,s:s}", "error", error, "error_description",
                                     description));
    http_header_add(rs, "Cache-Control", "no-store");
    return 400;
}

struct form {
    char *grant_type, *username, *password, *scope;
};

static void form_free(struct form *f)
{
    if (f->password != NULL)
        explicit_bzero(f->password, strlen(f->password));
    free(f->grant_type);
    free(f->username);
    free(f->password);
    free(f->scope);
}

/* Parse the form body: 0, or -1 with the reason in why. Each parameter at
 * most once (§3.1); unknown ones ignored. */
static int form_parse(const char *body, size_t len, struct form *f, const char **why)
{
    static const char *const names[] = {"grant_type", "username", "password", "scope"};
    char **slots[] = {&f->grant_type, &f->username, &f->password, &f->scope};
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL) {
            struct buf name = {0}, value = {0};
            int ok = url_decode(p, (size_t)(eq - p), 1, &name) == URL_OK &&
                     url_decode(eq + 1, (size_t)(stop - eq - 1), 1, &value) == URL_OK &&
                     utf8_valid(value.data ? value.data : "", value.len);
            for (size_t i = 0; ok && i < 4; i++) {
                if (name.data != NULL && strcmp(name.data, names[i]) == 0) {
                    if (*slots[i] != NULL) {
                        *why = "a parameter is repeated";
                        ok = 0;
                        break;
                    }
                    *slots[i] = value.data ? value.data : calloc(1, 1);
                    value.data = NULL;
                }
            }
            if (!ok && *why == NULL)
                *why = "the form is not validly encoded";
            buf_free(&name);
            if (value.data != NULL)
                explicit_bzero(value.data, value.len);
            buf_free(&value);
            if (!ok)
                return -1;
        }
        p = stop + (stop < end);
    }
    return 0;
}

/* One attempt in the window of key: the count, or -1 if Redis failed;
 * *retry_after the seconds left in the window. */
static struct rds_script count_script = {
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return {n, redis.call('TTL', KEYS[1])}\n",
    ""};

static long attempt(const char *key, long *retry_after)
{
    char window[24];
    snprintf(window, sizeof(window), "%ld", cfg.window);
    const char *args[] = {key, window};
    redisReply *rep = rds_eval(&redis, &count_script, 1, 2, args, NULL);
    long n = -1;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        n = (long)rep->element[0]->integer;
        *retry_after = rep->element[1]->integer > 0 ? (long)rep->element[1]->integer : 1;
    }
    freeReplyObject(rep);
    return n;
}

static int too_many(struct http_resp *rs, long retry_after)
{
    char v[24];
    snprintf(v, sizeof(v), "%ld", retry_after);
    http_header_add(rs, "Retry-After", v);
    return http_error(rs, 429, "Too many login attempts, try again later");
}

/* The same cost for a user that does not exist (no timing oracle). */
static const char *dummy_hash(void)
{
    static char h[PASSWD_HASH_MAX];
    if (h[0] == '\0' && passwd_hash("not a password", h, sizeof(h)) != 0)
        h[0] = '\0';
    return h;
}

/* POST /api/token/revoke */
static int revoke(struct http_req *rq, struct http_resp *rs)
{
    char *t = NULL;
    const char *p = rq->body, *end = rq->body + rq->body_len;
    while (p < end && t == NULL) {
        const char *stop = memchr(p, '&', (size_t)(end - p));
        if (stop == NULL)
            stop = end;
        if ((size_t)(stop - p) > 6 && memcmp(p, "token=", 6) == 0) {
            struct buf v = {0};
            if (url_decode(p + 6, (size_t)(stop - p - 6), 1, &v) == URL_OK)
                t = v.data;
            else
                buf_free(&v);
        }
        p = stop + (stop < end);
    }
    if (t == NULL)
        return oauth_error(rs, "invalid_request", "token is required");
    struct token_claims c;
    enum token_err why;
    long now = (long)time(NULL);
    /* an expired token needs no denying; a forged one is not ours */
    if (token_verify(&keys, t, now, &c, &why) == 0) {
        if (deny_revoke(&redis, c.jti, c.exp) != 0) {
            log_warn("revoke: Redis: %s", redis.err);
            free(t);
            http_header_add(rs, "Retry-After", "1");
            return http_error(rs, 503, "Revocation unavailable, try again shortly");
        }
        log_info("token %s of user %s revoked", c.jti, c.sub);
    }
    free(t);
    http_header_add(rs, "Cache-Control", "no-store");
    return http_json_new(rs, 200, json_object());
}

/* The grant, once the user's row (r: folded name, id, hash, scopes; id
 * NULL for nobody) is known: count the attempt, check the password, sign. */
static int login(const struct http_req *rq, struct http_resp *rs, const struct form *f,
                 const PGresult *r)
{
    char ukey[160], akey[96];
    const char *addr = http_env(rq, "REMOTE_ADDR");
    snprintf(ukey, sizeof(ukey), "login:user:%.128s", PQgetvalue(r, 0, 0));
    snprintf(akey, sizeof(akey), "login:addr:%.64s", addr ? addr : "-");
    long ra_u = 1, ra_a = 1;
    long nu = attempt(ukey, &ra_u), na = attempt(akey, &ra_a);
    if (nu < 0 || na < 0) {
        http_header_add(rs, "Retry-After", "1");
        return http_error(rs, 503, "Login unavailable, try again shortly");
    }
    if (nu > cfg.per_user || na > cfg.per_addr)
        return too_many(rs, nu > cfg.per_user ? ra_u : ra_a);
    int found = !PQgetisnull(r, 0, 1);
    int ok = passwd_verify(f->password, found ? PQgetvalue(r, 0, 2) : dummy_hash());
    const char *have = found ? PQgetvalue(r, 0, 3) : "";
    const char *want = f->scope ? f->scope : have;
    if (!found || !ok)
        return oauth_error(rs, "invalid_grant", "Incorrect username or password");
    if (!token_scopes_within(want, have) || strlen(want) > 256)
        return oauth_error(rs, "invalid_scope", "a requested scope is not granted");
    struct token_claims c = {0};
    long now = (long)time(NULL);
    snprintf(c.sub, sizeof(c.sub), "%s", PQgetvalue(r, 0, 1));
    snprintf(c.scope, sizeof(c.scope), "%s", want);
    cel_uuid(c.jti);
    c.iat = now;
    c.exp = now + cfg.ttl;
    struct buf t = {0};
    int status;
    if (token_sign(&keys, &c, &t) != 0) {
        status = http_error(rs, 500, NULL);
    } else {
        status = http_json_new(rs, 200,
                               json_pack("{s:s,s:s,s:I,s:s}", "access_token", t.data, "token_type",
                                         "bearer", "expires_in", (json_int_t)cfg.ttl, "scope",
                                         c.scope));
        http_header_add(rs, "Cache-Control", "no-store");
        http_header_add(rs, "Pragma", "no-cache");
        explicit_bzero(t.data, t.len);
    }
    buf_free(&t);
    return status;
}

/* POST /api/token */
static int token(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg == 1 && strcmp(rq->seg[0], "revoke") == 0) {
        if (http_allow_or_405(rq, rs, "POST") != 0)
            return rs->status;
        return setup() != 0 ? http_error(rs, 500, NULL) : revoke(rq, rs);
    }
    if (rq->nseg != 0)
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "POST") != 0)
        return rs->status;
    if (setup() != 0)
        return http_error(rs, 500, NULL);
    const char *ct = http_env(rq, "CONTENT_TYPE");
    if (ct == NULL || strncmp(ct, "application/x-www-form-urlencoded", 33) != 0)
        return oauth_error(rs, "invalid_request",
                           "Content-Type must be application/x-www-form-urlencoded");
    struct form f = {0};
    const char *why = NULL;
    int status;
    if (form_parse(rq->body, rq->body_len, &f, &why) != 0) {
        status = oauth_error(rs, "invalid_request", why);
    } else if (f.grant_type == NULL) {
        status = oauth_error(rs, "invalid_request", "grant_type is required");
    } else if (strcmp(f.grant_type, "password") != 0) {
        status = oauth_error(rs, "unsupported_grant_type", "only grant_type=password");
    } else if (f.username == NULL || f.password == NULL || f.username[0] == '\0') {
        status = oauth_error(rs, "invalid_request", "username and password are required");
    } else {
        const char *params[] = {f.username};
        PGresult *r = db_exec(&db, "login", 1, params);
        if (r == NULL || PQntuples(r) != 1) {
            http_header_add(rs, "Retry-After", "1");
            status = http_error(rs, 503, "Database unavailable, try again shortly");
        } else {
            status = login(rq, rs, &f, r);
        }
        PQclear(r);
    }
    form_free(&f);
    return status;
}

int main(int argc, char **argv)
{
    static const struct conf_entry conf[] = {
        {"DATABASE_URL", CONF_STR, NULL, &cfg.database_url, 0, 0, NULL, db_url_check},
        {"DB_TIMEOUT_MS", CONF_INT, "3000", &cfg.db_timeout_ms, 100, 60000, NULL, NULL},
        {"REDIS_URL", CONF_STR, "unix:///run/redis/redis.sock", &cfg.redis_url, 0, 0, NULL,
         rds_url_check},
        {"TOKEN_KEYS", CONF_STR, NULL, &cfg.keys_spec, 0, 0, NULL, token_keys_check},
        {"TOKEN_TTL", CONF_INT, "900", &cfg.ttl, 60, TOKEN_LIFETIME_MAX, NULL, NULL},
        {"LOGIN_WINDOW", CONF_INT, "60", &cfg.window, 1, 86400, NULL, NULL},
        {"LOGIN_PER_USER", CONF_INT, "10", &cfg.per_user, 1, 1000000, NULL, NULL},
        {"LOGIN_PER_ADDR", CONF_INT, "100", &cfg.per_addr, 1, 1000000, NULL, NULL},
    };
    return serve_main(argc, argv, "token", conf, sizeof(conf) / sizeof(conf[0]), token);
}
