/* /api/token: OAuth2 resource owner password grant (RFC 6749 §4.3).
 *
 *   POST /api/token   application/x-www-form-urlencoded
 *        grant_type=password&username=...&password=...[&scope=a b]
 *     -> 200 {"access_token","token_type":"bearer","expires_in"[,"scope"]}
 *        Cache-Control: no-store
 *      | 400 {"error":"invalid_request"|"unsupported_grant_type"|
 *              "invalid_grant"|"invalid_scope","error_description":...}
 *      | 429 {"detail":...}, Retry-After: this user name from this address
 *        must wait (throttle.h), or this address tried too many names
 *      | 503 PostgreSQL or Redis down
 *
 *   POST /api/token/revoke   token=<access token>   (RFC 7009)
 *     -> 200 {} : a token we signed is denied (denylist.h) until it would
 *        have expired anyway, at the gateway within REVOKE_SYNC_MS;
 *        anything else is ignored, as §2.2 says | 400 invalid_request (no
 *        token) | 503 Redis down
 *
 * The token is a JWT (lib/token.h) with sub = the user's id, scope = the
 * requested scopes (all the user's when none are asked for), which must be
 * the user's, and gen = the user's token generation. The user is looked up
 * by the name's key (namekey.h: "ALICE" and a fullwidth "ａｌｉｃｅ" are
 * alice). Attempts are throttled in Redis (throttle.h) per (name key,
 * client address) with a delay that grows with each failure past
 * LOGIN_FREE_FAILURES (a right password starts the pair over), and per
 * client address over all names in fixed windows (LOGIN_PER_ADDR per
 * LOGIN_WINDOW seconds). A user that does not exist costs the same hash
 * as one that does. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "celery.h"
#include "db.h"
#include "denylist.h"
#include "log.h"
#include "namekey.h"
#include "passwd.h"
#include "redis.h"
#include "serve.h"
#include "throttle.h"
#include "token.h"
#include "url.h"
#include "utf8.h"

static struct {
    char *database_url, *redis_url, *keys_spec;
    long ttl, window, per_addr, db_timeout_ms;
    struct throttle_delay delay;
} cfg;

static const struct db_stmt stmts[] = {
    /* one row, also for a name nobody has (id NULL): the same hash is paid */
    {"login",
     "SELECT u.id, u.password_hash, array_to_string(u.scopes, ' '), u.token_gen"
     " FROM (SELECT 1) one LEFT JOIN users u ON u.username_key = $1",
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
    if (getenv("LOGIN_PER_USER") != NULL)
        log_warn("LOGIN_PER_USER is no longer read: a user name is limited per client address "
                 "(LOGIN_FREE_FAILURES, LOGIN_DELAY_MAX), so nobody can lock a user out");
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

/* The throttles' word on an attempt for name key from addr: 0 to go on,
 * or -1 with the 429 or 503 in rs. */
static int throttled(struct http_resp *rs, const char *key, const char *addr)
{
    long wait = 1;
    enum throttle_verdict v =
        throttle_addr_hit(&redis, THROTTLE_LOGIN, addr, cfg.window, cfg.per_addr, &wait);
    if (v == THROTTLE_GO)
        v = throttle_pass_try(&redis, &cfg.delay, key, addr, &wait);
    if (v == THROTTLE_GO)
        return 0;
    if (v == THROTTLE_WAIT)
        return too_many(rs, wait), -1;
    log_warn("login: Redis: %s", redis.err);
    http_header_add(rs, "Retry-After", "1");
    http_error(rs, 503, "Login unavailable, try again shortly");
    return -1;
}

/* The grant, once the user's row (r: id, hash, scopes, token generation;
 * id NULL for nobody) is known and the attempt counted: check the
 * password, sign. */
static int login(struct http_resp *rs, const struct form *f, const char *key, const char *addr,
                 const PGresult *r)
{
    int found = !PQgetisnull(r, 0, 0);
    int ok = passwd_verify(f->password, found ? PQgetvalue(r, 0, 1) : dummy_hash());
    const char *have = found ? PQgetvalue(r, 0, 2) : "";
    const char *want = f->scope ? f->scope : have;
    if (!found || !ok)
        return oauth_error(rs, "invalid_grant", "Incorrect username or password");
    if (throttle_pass_ok(&redis, key, addr) != 0)
        log_warn("login: Redis: %s (the failures before this success stay counted)", redis.err);
    if (!token_scopes_within(want, have) || strlen(want) > 256)
        return oauth_error(rs, "invalid_scope", "a requested scope is not granted");
    struct token_claims c = {0};
    long now = (long)time(NULL);
    snprintf(c.sub, sizeof(c.sub), "%s", PQgetvalue(r, 0, 0));
    snprintf(c.scope, sizeof(c.scope), "%s", want);
    cel_uuid(c.jti);
    c.iat = now;
    c.exp = now + cfg.ttl;
    c.gen = strtol(PQgetvalue(r, 0, 3), NULL, 10);
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

/* grant_type=password with a username and a password: throttle, look
 * the user up by the name's key, log in. */
static int grant(const struct http_req *rq, struct http_resp *rs, const struct form *f)
{
    struct buf key = {0};
    char addr[INET6_ADDRSTRLEN + 4];
    throttle_addr(http_env(rq, "REMOTE_ADDR"), addr, sizeof(addr));
    if (namekey_fold(f->username, &key) != 0) { /* form_parse let only UTF-8 through */
        buf_free(&key);
        return oauth_error(rs, "invalid_request", "the username is not valid");
    }
    const char *k = key.data != NULL ? key.data : ""; /* all ignorables: nobody's */
    int status;
    if (throttled(rs, k, addr) != 0) {
        status = rs->status;
    } else {
        const char *params[] = {k};
        PGresult *r = db_exec(&db, "login", 1, params);
        if (r == NULL || PQntuples(r) != 1) {
            http_header_add(rs, "Retry-After", "1");
            status = http_error(rs, 503, "Database unavailable, try again shortly");
        } else {
            status = login(rs, f, k, addr, r);
        }
        PQclear(r);
    }
    buf_free(&key);
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
        status = grant(rq, rs, &f);
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
        /* any names from one address: LOGIN_PER_ADDR per LOGIN_WINDOW s */
        {"LOGIN_WINDOW", CONF_INT, "60", &cfg.window, 1, 86400, NULL, NULL},
        {"LOGIN_PER_ADDR", CONF_INT, "100", &cfg.per_addr, 1, 1000000, NULL, NULL},
        /* one name from one address: free failures, then waits doubling
         * from 1 s to LOGIN_DELAY_MAX s, forgotten LOGIN_FAILURE_TTL s
         * after the last wait */
        {"LOGIN_FREE_FAILURES", CONF_INT, "5", &cfg.delay.free, 0, 1000, NULL, NULL},
        {"LOGIN_DELAY_MAX", CONF_INT, "900", &cfg.delay.max, 1, 86400, NULL, NULL},
        {"LOGIN_FAILURE_TTL", CONF_INT, "86400", &cfg.delay.ttl, 1, 2592000, NULL, NULL},
    };
    return serve_main(argc, argv, "token", conf, sizeof(conf) / sizeof(conf[0]), token);
}
