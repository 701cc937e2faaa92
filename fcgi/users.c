/* /api/users: the users service on PostgreSQL, with a Redis read cache.
 *
 *   GET    /api/users/{id}|me        -> 200 user (the public fields only for
 *                                       others) | 404 | 422 bad id
 *   GET    /api/users?limit=&after=  -> 200 {"items":[...],"next":url|null}
 *   POST   /api/users                -> 201 user, Location | 409 taken or
 *          {"username","email",         too like a registered name | 422 |
 *           "password","full_name"?,    429 too many from this address
 *           "phone"?}
 *   PATCH  /api/users/{id}|me        -> 200 user | 403 | 404 | 409 | 422 | 429
 *          any of those fields (full_name and phone may be null), and
 *          current_password: required from the account's owner to change
 *          password or email (403 when wrong, throttled as logins are)
 *   DELETE /api/users/{id}|me        -> 204 | 403 | 404
 *   PostgreSQL down or stuck: 503 with Retry-After, at once or after
 *   DB_TIMEOUT_MS; never a hang.
 *
 * Who calls comes from the gateway's authorizer (fcgi/auth.c), which lets
 * only registration through without a token and the list only with the
 * admin scope: AUTH_SUB (a user id), AUTH_SCOPE and AUTH_JTI (the token's
 * id). A user changes or deletes only their own account unless they are an
 * admin (403); "me" is the caller's id (401 without one).
 *
 * Registration is public, so every user is a stranger:
 *   - registrations are limited per client address (REGISTER_PER_ADDR per
 *     REGISTER_WINDOW s, throttle.h); while Redis is down they are not;
 *   - names are unique by their key and by their look (namekey.h: one
 *     unique index on each), so "ＡＤＭＩＮ" and "admіn" (Cyrillic і) are
 *     refused beside "admin";
 *   - another user's record shows only id, username, full_name and
 *     created_at;
 *   - changing password or email needs the current password from the owner
 *     (an admin changing another's account needs none) and revokes every
 *     other token of the user: the change bumps the user's token_gen and,
 *     in the same transaction, puts "tokens of this user below the new
 *     generation, but the one making the change" on the revoked list
 *     (denylist.h), which the gateway reads within REVOKE_SYNC_MS. Deleting
 *     a user revokes all of its tokens the same way. If Redis cannot take
 *     the revocation, nothing changes (503).
 *
 * A user is the JSON of user_json() in sql/ (never the password hash).
 * `phone` is stored as a Fernet token (FERNET_KEYS, lib/fernet.h), in the
 * database and in the cache alike; it is decrypted for the user and for
 * admins, and left out of the answer for everyone else.
 * Reads of one user go through the cache (vcache.h: coherent with writes);
 * X-Cache says hit or miss. PATCH and DELETE need Redis up (503 otherwise:
 * the cache must hear of the write before it happens); GET and POST do
 * not. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "denylist.h"
#include "fernet.h"
#include "jsonfmt.h"
#include "log.h"
#include "namekey.h"
#include "passwd.h"
#include "redis.h"
#include "serve.h"
#include "throttle.h"
#include "token.h"
#include "valid.h"
#include "vcache.h"

#define PAGE_DEFAULT 20
#define PAGE_MAX 100
#define ID_MAX 9223372036854775807LL

static struct {
    char *database_url, *redis_url, *fernet_keys;
    long db_timeout_ms, cache_ttl, register_window, register_per_addr;
    struct throttle_delay delay;
} cfg;

static const struct db_stmt stmts[] = {
    {"user_get", "SELECT version, user_json(u) FROM users u WHERE id = $1", 1},
    {"user_list", "SELECT id, user_json(u) FROM users u WHERE id > $1 ORDER BY id LIMIT $2", 1},
    {"user_create",
     "INSERT INTO users (username, username_key, username_skeleton, email, full_name,"
     " password_hash, phone) VALUES ($1, $2, $3, $4, $5, $6, $7)"
     " RETURNING id, version, user_json(users)",
     0},
    /* what proves the owner: the name's key (the throttle's) and the hash */
    {"user_secret", "SELECT username_key, password_hash FROM users WHERE id = $1", 1},
    /* $11: 1 to start a new token generation (a password or email change) */
    {"user_update",
     "UPDATE users SET username = coalesce($2, username), email = coalesce($3, email),"
     " full_name = CASE WHEN $4::boolean THEN $5 ELSE full_name END,"
     " phone = CASE WHEN $6::boolean THEN $7 ELSE phone END,"
     " password_hash = coalesce($8, password_hash),"
     " username_key = coalesce($9, username_key),"
     " username_skeleton = coalesce($10, username_skeleton),"
     " token_gen = token_gen + $11::integer,"
     " version = version + 1, updated_at = now()"
     " WHERE id = $1 RETURNING version, user_json(users), token_gen",
     0},
    {"user_delete", "DELETE FROM users WHERE id = $1", 0},
    /* a write and its revocation commit together (never retried: not
     * readonly, so a lost connection cannot split a transaction) */
    {"tx_begin", "BEGIN", 0},
    {"tx_commit", "COMMIT", 0},
    {"tx_rollback", "ROLLBACK", 0},
};

static struct db db;
static struct fernet_keyring ring;
static struct rds redis;
static struct vcache cache = {NULL, "user:", 0, 0};

static void setup(void)
{
    if (db.url != NULL)
        return;
    char err[256];
    /* checked at start (keys_check): cannot fail */
    if (fernet_keyring_parse(&ring, cfg.fernet_keys, err, sizeof(err)) != 0)
        log_err("FERNET_KEYS: %s", err);
    /* both URLs were checked by conf at start: these cannot fail */
    if (db_init(&db, cfg.database_url, (int)cfg.db_timeout_ms, stmts,
                sizeof(stmts) / sizeof(stmts[0]), err, sizeof(err)) != 0)
        log_err("DATABASE_URL: %s", err);
    if (rds_init(&redis, cfg.redis_url, 250, err, sizeof(err)) != 0)
        log_err("REDIS_URL: %s", err);
    else if (cfg.cache_ttl > 0) {
        cache.redis = &redis;
        cache.ttl = cfg.cache_ttl;
    }
}

static int keys_check(const char *spec, char *err, size_t errlen)
{
    struct fernet_keyring kr = {0};
    int rc = fernet_keyring_parse(&kr, spec, err, errlen);
    fernet_keyring_free(&kr);
    return rc;
}

/* The caller, as the authorizer names it. */
struct caller {
    const char *sub; /* NULL: nobody (registration) */
    const char *jti; /* the token's id; NULL: unknown */
    const char *addr; /* REMOTE_ADDR */
    int admin;
};

static struct caller caller_of(const struct http_req *rq)
{
    struct http_caller h = http_caller(rq);
    struct caller c = {h.sub, h.jti, http_env(rq, "REMOTE_ADDR"), h.admin};
    return c;
}

/* Whether c is user id. */
static int is_self(const struct caller *c, const char *id)
{
    return c->sub != NULL && strcmp(c->sub, id) == 0;
}

/* Whether c may see all of user id (and change or delete it). */
static int owns(const struct caller *c, const char *id)
{
    return c->admin || is_self(c, id);
}

/* A user's JSON (from the database or the cache, phone encrypted) as this
 * caller gets it, appended to out: all of it, phone decrypted, for its
 * owner; only the public fields (id, username, full_name, created_at) for
 * anyone else. 0, or -1 (not a user object: a bug, logged). */
static int render(const char *json, size_t len, int owner, struct buf *out)
{
    static const char *const public_fields[] = {"id", "username", "full_name", "created_at"};
    json_t *u = json_loadb(json, len, 0, NULL);
    json_t *ph = u ? json_object_get(u, "phone") : NULL;
    if (u == NULL || ph == NULL) {
        log_err("not a user object: %.80s", json);
        json_decref(u);
        return -1;
    }
    if (!owner) {
        json_t *pub = json_object();
        for (size_t i = 0; i < sizeof(public_fields) / sizeof(public_fields[0]); i++)
            json_object_set(pub, public_fields[i], json_object_get(u, public_fields[i]));
        json_decref(u);
        u = pub;
    } else if (json_is_string(ph)) {
        struct buf clear = {0};
        enum fernet_why why;
        const char *t = json_string_value(ph);
        if (fernet_decrypt(&ring, t, strlen(t), 0, &clear, &why) == 0) {
            json_object_set_new(u, "phone", json_stringn(clear.data, clear.len));
        } else {
            /* a key retired too early: the number is lost to us, say so */
            log_err("user %s: phone unreadable (%s): is its key still in FERNET_KEYS?",
                    json_string_value(json_object_get(u, "username")), fernet_why_str(why));
            json_object_set_new(u, "phone", json_null());
        }
        buf_free(&clear);
    }
    int rc = jsonfmt_dump(u, out, JSON_COMPACT);
    json_decref(u);
    return rc;
}

/* A user as the response body. */
static int send_user_json(struct http_resp *rs, int status, const char *json, size_t len,
                          int owner)
{
    buf_clear(&rs->body);
    if (render(json, len, owner, &rs->body) != 0)
        return http_error(rs, 500, NULL);
    return rs->status = status;
}

/* A failed statement as the client sees it. */
static int db_failure(struct http_resp *rs)
{
    switch (db.kind) {
    case DB_UNAVAILABLE:
        http_header_add(rs, "Retry-After", "1");
        return http_error(rs, 503, "Database unavailable, try again shortly");
    case DB_CONFLICT:
        if (strcmp(db.constraint, "users_email_key") == 0)
            return http_error(rs, 409, "Email already registered");
        if (strcmp(db.constraint, "users_username_skeleton_key") == 0)
            return http_error(rs, 409, "Username too similar to a registered one");
        return http_error(rs, 409, "Username already registered");
    case DB_INVALID: /* our checks run first: the schema is stricter than them */
        return http_error_422(rs, json_pack("[s]", "body"), db.err, "value_error");
    default:
        return http_error(rs, 500, NULL);
    }
}

/* Answer with the (version, user) row of r (taken and cleared), storing it
 * in the cache as who; 404 for no row, the database's failure for NULL. */
static int send_user(struct http_resp *rs, PGresult *r, enum vcache_who who, const char *id,
                     int owner)
{
    if (r == NULL)
        return db_failure(rs);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return http_error(rs, 404, "User not found");
    }
    vcache_put(&cache, who, id, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetlength(r, 0, 1));
    send_user_json(rs, 200, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), owner);
    PQclear(r);
    return rs->status;
}

/* An integer parameter in min..max, as FastAPI checks `int = Path(ge=..)`:
 * 0, or -1 with the 422 in rs. loc is stolen. */
static int int_param(const char *s, long long min, long long max, json_t *loc, long long *out,
                     struct http_resp *rs)
{
    const char *d = s + (*s == '-' || *s == '+');
    size_t n = strspn(d, "0123456789");
    if (n == 0 || d[n] != '\0')
        return http_error_422(rs, loc, "Input should be a valid integer, unable to parse "
                                       "string as an integer", "int_parsing"), -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    char msg[96];
    if (*s != '-' && (errno == ERANGE || v > max)) {
        snprintf(msg, sizeof(msg), "Input should be less than or equal to %lld", max);
        return http_error_422(rs, loc, msg, "less_than_equal"), -1;
    }
    if (*s == '-' || v < min) {
        snprintf(msg, sizeof(msg), "Input should be greater than or equal to %lld", min);
        return http_error_422(rs, loc, msg, "greater_than_equal"), -1;
    }
    json_decref(loc);
    *out = v;
    return 0;
}

/* The fields of a POST or PATCH body, borrowed from the parsed JSON, and
 * the user name's keys (namekey.h; empty without a username). */
struct user_in {
    json_t *body;
    const char *username, *email, *password, *full_name, *phone, *current_password;
    int set_full_name, set_phone; /* present, maybe null */
    struct buf key, skeleton;
};

static void user_in_free(struct user_in *in)
{
    json_decref(in->body);
    buf_free(&in->key);
    buf_free(&in->skeleton);
}

static int field_error(struct http_resp *rs, const char *field, const struct valid_err *e)
{
    return http_error_422(rs, json_pack("[ss]", "body", field), e->msg, e->type);
}

/* Parse and check the body: 0, or -1 with the 422 in rs (free in with
 * user_in_free either way). `create`: the required fields must be there,
 * and current_password is no field. */
static int user_in_parse(struct http_req *rq, int create, struct user_in *in,
                         struct http_resp *rs)
{
    /* the create fields are the first five: current_password ends them */
    static const char *const fields[] = {"username",  "email", "password",
                                         "full_name", "phone", "current_password",
                                         NULL};
    static const char *const create_fields[] = {"username",  "email", "password",
                                                "full_name", "phone", NULL};
    memset(in, 0, sizeof(*in));
    if (http_body_object_or_422(rq, create ? create_fields : fields, 1, &in->body, rs) != 0)
        return -1;
    json_t *v;
    const char **out[] = {&in->username,  &in->email, &in->password,
                          &in->full_name, &in->phone, &in->current_password};
    for (size_t i = 0; i < (create ? 5 : 6); i++) {
        v = json_object_get(in->body, fields[i]);
        int nullable = i == 3 || i == 4;
        if (v == NULL) {
            if (create && !nullable)
                return http_error_422(rs, json_pack("[ss]", "body", fields[i]), "Field required",
                                      "missing"), -1;
            continue;
        }
        if (i == 3)
            in->set_full_name = 1;
        if (i == 4)
            in->set_phone = 1;
        if (json_is_null(v) && nullable)
            continue;
        if (!json_is_string(v))
            return http_error_422(rs, json_pack("[ss]", "body", fields[i]),
                                  "Input should be a valid string", "string_type"), -1;
        *out[i] = json_string_value(v);
    }
    struct valid_err e;
    if (in->username && valid_username(in->username, &e) != 0)
        return field_error(rs, "username", &e), -1;
    if (in->username && namekey_has_ignorable(in->username))
        return http_error_422(rs, json_pack("[ss]", "body", "username"),
                              "String should not contain invisible characters",
                              "string_pattern_mismatch"), -1;
    if (in->username && namekey_make(in->username, &in->key, &in->skeleton) != 0) {
        log_err("no key for a user name");
        return http_error(rs, 500, NULL), -1;
    }
    if (in->email && valid_email(in->email, &e) != 0)
        return field_error(rs, "email", &e), -1;
    if (in->password && valid_text(in->password, 8, 128, &e) != 0 &&
        strcmp(e.type, "string_pattern_mismatch") != 0) /* any character will do */
        return field_error(rs, "password", &e), -1;
    if (in->password && strlen(in->password) > PASSWD_MAX_BYTES) {
        e.type = "string_too_long";
        snprintf(e.msg, sizeof(e.msg), "String should have at most %d bytes in UTF-8",
                 PASSWD_MAX_BYTES);
        return field_error(rs, "password", &e), -1;
    }
    if (in->full_name && valid_text(in->full_name, 0, 128, &e) != 0)
        return field_error(rs, "full_name", &e), -1;
    if (in->phone && valid_phone(in->phone, &e) != 0)
        return field_error(rs, "phone", &e), -1;
    return 0;
}

/* GET /api/users/{id} */
static int get_user(struct http_resp *rs, const char *id, int owner)
{
    static struct buf cached;
    buf_clear(&cached);
    enum vcache_hit hit = vcache_get(&cache, id, &cached);
    if (cache.redis != NULL)
        http_header_add(rs, "X-Cache", hit == VCACHE_MISS ? "miss" : "hit");
    if (hit == VCACHE_HIT)
        return send_user_json(rs, 200, cached.data, cached.len, owner);
    if (hit == VCACHE_GONE)
        return http_error(rs, 404, "User not found");
    const char *params[] = {id};
    return send_user(rs, db_exec(&db, "user_get", 1, params), VCACHE_READER, id, owner);
}

/* Before a write of id: the cache must know (vcache.h), or no write. */
static int cache_begin_or_503(struct http_resp *rs, const char *id)
{
    if (vcache_begin(&cache, id) == 0)
        return 0;
    http_header_add(rs, "Retry-After", "1");
    http_error(rs, 503, "Cache unavailable, try again shortly");
    return -1;
}

/* GET /api/users?limit=&after=: keyset pages in id order. */
static int list_users(struct http_req *rq, struct http_resp *rs, const struct caller *c)
{
    long long limit = PAGE_DEFAULT, after = 0;
    const char *l = http_query(rq, "limit"), *a = http_query(rq, "after");
    if (l && int_param(l, 1, PAGE_MAX, json_pack("[ss]", "query", "limit"), &limit, rs) != 0)
        return rs->status;
    if (a && int_param(a, 0, ID_MAX, json_pack("[ss]", "query", "after"), &after, rs) != 0)
        return rs->status;
    char after_s[24], fetch_s[24];
    snprintf(after_s, sizeof(after_s), "%lld", after);
    snprintf(fetch_s, sizeof(fetch_s), "%lld", limit + 1); /* one more: is there a next page? */
    const char *params[] = {after_s, fetch_s};
    PGresult *r = db_exec(&db, "user_list", 2, params);
    if (r == NULL)
        return db_failure(rs);
    int n = PQntuples(r);
    int shown = n > limit ? (int)limit : n;
    buf_puts(&rs->body, "{\"items\":[");
    for (int i = 0; i < shown; i++) {
        if (i > 0)
            buf_putc(&rs->body, ',');
        if (render(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), owns(c, PQgetvalue(r, i, 0)),
                   &rs->body) != 0) {
            PQclear(r);
            return http_error(rs, 500, NULL);
        }
    }
    buf_puts(&rs->body, "],\"next\":");
    if (n > limit) {
        char next[512];
        snprintf(next, sizeof(next), "%.400s?limit=%lld&after=%s", serve_cfg.prefix, limit,
                 PQgetvalue(r, shown - 1, 0));
        buf_printf(&rs->body, "\"%s\"}", next);
        char link[540];
        snprintf(link, sizeof(link), "<%s>; rel=\"next\"", next);
        http_header_add(rs, "Link", link);
    } else {
        buf_puts(&rs->body, "null}");
    }
    PQclear(r);
    return rs->status = 200;
}

/* The phone of in, encrypted into ph: 0 (ph empty if there is none), or
 * -1 with a 500 in rs. */
static int seal_phone(const struct user_in *in, struct buf *ph, struct http_resp *rs)
{
    if (in->phone == NULL)
        return 0;
    if (fernet_encrypt(&ring, in->phone, strlen(in->phone), ph) == 0)
        return 0;
    log_err("phone encryption failed");
    http_error(rs, 500, NULL);
    return -1;
}

/* 429 with Retry-After. */
static int too_many(struct http_resp *rs, long retry_after, const char *detail)
{
    char v[24];
    snprintf(v, sizeof(v), "%ld", retry_after);
    http_header_add(rs, "Retry-After", v);
    return http_error(rs, 429, detail);
}

/* One more registration from the caller's address: 0 to go on, or -1
 * with the 429 in rs. With Redis down, registrations go on unlimited (the
 * limit is a brake on sign-ups in bulk, not an access control, and
 * registration never needed Redis). */
static int register_limited(const struct caller *c, struct http_resp *rs)
{
    char addr[INET6_ADDRSTRLEN + 4];
    long wait = 1;
    throttle_addr(c->addr, addr, sizeof(addr));
    enum throttle_verdict v = throttle_addr_hit(&redis, THROTTLE_REGISTER, addr,
                                                cfg.register_window, cfg.register_per_addr, &wait);
    if (v == THROTTLE_DOWN)
        log_warn("registrations: Redis: %s (not limited meanwhile)", redis.err);
    if (v != THROTTLE_WAIT)
        return 0;
    too_many(rs, wait, "Too many registrations from this address, try again later");
    return -1;
}

/* The account's current password: checked whenever it is given, and
 * required from the owner to change password or email. Guesses count as
 * login attempts for the account's name from the caller's address
 * (throttle.h). 0 to go on, or -1 with 422 (missing), 404, 429, 403
 * (wrong) or 503 in rs. */
static int current_password_ok(const struct caller *c, const char *id, const struct user_in *in,
                               struct http_resp *rs)
{
    if (in->current_password == NULL) {
        if (!is_self(c, id) || (in->password == NULL && in->email == NULL))
            return 0;
        return http_error_422(rs, json_pack("[ss]", "body", "current_password"), "Field required",
                              "missing"), -1;
    }
    const char *params[] = {id};
    PGresult *r = db_exec(&db, "user_secret", 1, params);
    if (r == NULL)
        return db_failure(rs), -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return http_error(rs, 404, "User not found"), -1;
    }
    char addr[INET6_ADDRSTRLEN + 4];
    long wait = 1;
    throttle_addr(c->addr, addr, sizeof(addr));
    const char *key = PQgetvalue(r, 0, 0);
    enum throttle_verdict v = throttle_pass_try(&redis, &cfg.delay, key, addr, &wait);
    int ok = v == THROTTLE_GO && passwd_verify(in->current_password, PQgetvalue(r, 0, 1));
    if (ok && throttle_pass_ok(&redis, key, addr) != 0)
        log_warn("password check: Redis: %s (earlier failures stay counted)", redis.err);
    PQclear(r);
    if (v == THROTTLE_WAIT)
        return too_many(rs, wait, "Too many password attempts, try again later"), -1;
    if (v == THROTTLE_DOWN) {
        log_warn("password check: Redis: %s", redis.err);
        http_header_add(rs, "Retry-After", "1");
        return http_error(rs, 503, "Password check unavailable, try again shortly"), -1;
    }
    if (!ok)
        return http_error(rs, 403, "Current password is incorrect"), -1;
    return 0;
}

/* Revoke user id's tokens below generation gen but the one with jti
 * `except` (NULL: none), for as long as any of them could live: 0, or -1
 * with the 503 in rs. */
static int revoke_tokens(struct http_resp *rs, const char *id, long gen, const char *except)
{
    long now = (long)time(NULL);
    struct deny_user u = {.sub = id, .gen = gen, .at = now, .except = except};
    if (deny_revoke_user(&redis, &u, now + TOKEN_LIFETIME_MAX) == 0) {
        log_info("tokens of user %s revoked (generations below %ld%s%s)", id, gen,
                 except ? ", but " : "", except ? except : "");
        return 0;
    }
    log_warn("revoking the tokens of user %s: Redis: %s", id, redis.err);
    http_header_add(rs, "Retry-After", "1");
    http_error(rs, 503, "Revocation unavailable, try again shortly");
    return -1;
}

/* A statement of the transaction's own: 0, or -1 (db has the reason). */
static int tx(const char *name)
{
    PGresult *r = db_exec(&db, name, 0, NULL);
    int ok = r != NULL;
    PQclear(r);
    return ok ? 0 : -1;
}

/* Give a transaction up (a lost connection has ended it already). */
static void rollback(void)
{
    if (db.conn != NULL && tx("tx_rollback") != 0)
        log_warn("PostgreSQL: rollback: %s", db.err);
}

/* The INSERT of a registration. */
static int insert_user(struct http_resp *rs, const struct user_in *in, const char *hash,
                       const char *phone)
{
    const char *params[] = {in->username, in->key.data ? in->key.data : "",
                            in->skeleton.data ? in->skeleton.data : "",
                            in->email, in->full_name, hash, phone};
    PGresult *r = db_exec(&db, "user_create", 7, params);
    if (r == NULL)
        return db_failure(rs);
    char loc[512];
    snprintf(loc, sizeof(loc), "%.400s/%s", serve_cfg.prefix, PQgetvalue(r, 0, 0));
    http_header_add(rs, "Location", loc);
    /* the one registering is its owner */
    send_user_json(rs, 201, PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), 1);
    PQclear(r);
    return rs->status;
}

/* POST /api/users */
static int create_user(struct http_req *rq, struct http_resp *rs, const struct caller *c)
{
    if (register_limited(c, rs) != 0)
        return rs->status;
    struct user_in in;
    char hash[PASSWD_HASH_MAX];
    struct buf ph = {0};
    int status;
    if (user_in_parse(rq, 1, &in, rs) != 0 || seal_phone(&in, &ph, rs) != 0) {
        status = rs->status;
    } else if (passwd_hash(in.password, hash, sizeof(hash)) != 0) {
        log_err("password hashing failed");
        status = http_error(rs, 500, NULL);
    } else {
        status = insert_user(rs, &in, hash, ph.data);
        explicit_bzero(hash, sizeof(hash));
    }
    user_in_free(&in);
    buf_free(&ph);
    return status;
}

/* The UPDATE of a PATCH. A password or email change starts a new token
 * generation and revokes the older ones in the same transaction: either
 * both happen or neither. */
static int write_user(struct http_resp *rs, const struct caller *c, const char *id,
                      const struct user_in *in, const char *phone, const char *hash)
{
    int renew = in->password != NULL || in->email != NULL;
    const char *params[] = {id,
                            in->username,
                            in->email,
                            in->set_full_name ? "t" : "f",
                            in->full_name,
                            in->set_phone ? "t" : "f",
                            phone,
                            hash,
                            in->username ? in->key.data : NULL,
                            in->username ? in->skeleton.data : NULL,
                            renew ? "1" : "0"};
    if (renew && tx("tx_begin") != 0)
        return db_failure(rs);
    PGresult *r = db_exec(&db, "user_update", 11, params);
    if (!renew || r == NULL || PQntuples(r) == 0) {
        int status = send_user(rs, r, VCACHE_WRITER, id, 1); /* the failure, or the user */
        if (renew)
            rollback();
        return status;
    }
    long gen = strtol(PQgetvalue(r, 0, 2), NULL, 10);
    if (revoke_tokens(rs, id, gen, is_self(c, id) ? c->jti : NULL) != 0) {
        PQclear(r);
        rollback();
        return rs->status;
    }
    if (tx("tx_commit") != 0) {
        PQclear(r);
        return db_failure(rs);
    }
    return send_user(rs, r, VCACHE_WRITER, id, 1);
}

/* PATCH /api/users/{id}: the fields given; {} changes nothing. */
static int update_user(struct http_req *rq, struct http_resp *rs, const struct caller *c,
                       const char *id)
{
    struct user_in in;
    char hash[PASSWD_HASH_MAX];
    struct buf ph = {0};
    int status;
    if (user_in_parse(rq, 0, &in, rs) != 0 || current_password_ok(c, id, &in, rs) != 0 ||
        seal_phone(&in, &ph, rs) != 0) {
        status = rs->status;
    } else if (json_object_size(in.body) == (in.current_password ? 1 : 0)) {
        status = get_user(rs, id, 1);
    } else if (in.password && passwd_hash(in.password, hash, sizeof(hash)) != 0) {
        log_err("password hashing failed");
        status = http_error(rs, 500, NULL);
    } else if (cache_begin_or_503(rs, id) != 0) {
        status = rs->status;
    } else {
        status = write_user(rs, c, id, &in, ph.data, in.password ? hash : NULL);
    }
    explicit_bzero(hash, sizeof(hash));
    user_in_free(&in);
    buf_free(&ph);
    return status;
}

/* DELETE /api/users/{id}: the row and every token of the account go
 * together. */
static int delete_user(struct http_resp *rs, const char *id)
{
    if (cache_begin_or_503(rs, id) != 0)
        return rs->status;
    if (tx("tx_begin") != 0)
        return db_failure(rs);
    const char *params[] = {id};
    PGresult *r = db_exec(&db, "user_delete", 1, params);
    if (r == NULL) {
        int status = db_failure(rs);
        rollback();
        return status;
    }
    int gone = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!gone) {
        rollback();
        return http_error(rs, 404, "User not found");
    }
    /* ids are never reused: every generation, every token */
    if (revoke_tokens(rs, id, LONG_MAX, NULL) != 0) {
        rollback();
        return rs->status;
    }
    if (tx("tx_commit") != 0)
        return db_failure(rs);
    vcache_gone(&cache, id);
    return rs->status = 204;
}

static int not_authenticated(struct http_resp *rs)
{
    http_header_add(rs, "WWW-Authenticate", "Bearer realm=\"api\"");
    return http_error(rs, 401, "Not authenticated");
}

static int users(struct http_req *rq, struct http_resp *rs)
{
    setup();
    struct caller c = caller_of(rq);
    if (rq->nseg == 0 || (rq->nseg == 1 && rq->seg[0][0] == '\0')) {
        if (http_allow_or_405(rq, rs, "GET, POST") != 0)
            return rs->status;
        if (strcmp(rq->method, "POST") == 0)
            return create_user(rq, rs, &c);
        /* the authorizer asks for the admin scope; so do we */
        if (!c.admin)
            return c.sub ? http_error(rs, 403, "Not enough permissions") : not_authenticated(rs);
        return list_users(rq, rs, &c);
    }
    if (rq->nseg != 1)
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET, PATCH, DELETE") != 0)
        return rs->status;
    const char *seg = rq->seg[0];
    if (strcmp(seg, "me") == 0) {
        if (c.sub == NULL)
            return not_authenticated(rs);
        seg = c.sub;
    }
    long long n;
    if (int_param(seg, 1, ID_MAX, json_pack("[ss]", "path", "user_id"), &n, rs) != 0)
        return rs->status;
    char id[24]; /* canonical: "007" is user 7, one cache key */
    snprintf(id, sizeof(id), "%lld", n);
    if (strcmp(rq->method, "GET") == 0)
        return get_user(rs, id, owns(&c, id));
    if (c.sub == NULL)
        return not_authenticated(rs);
    if (!owns(&c, id))
        return http_error(rs, 403, "Not enough permissions");
    if (strcmp(rq->method, "PATCH") == 0)
        return update_user(rq, rs, &c, id);
    return delete_user(rs, id);
}

int main(int argc, char **argv)
{
    static const struct conf_entry conf[] = {
        {"DATABASE_URL", CONF_STR, NULL, &cfg.database_url, 0, 0, NULL, db_url_check},
        {"DB_TIMEOUT_MS", CONF_INT, "3000", &cfg.db_timeout_ms, 100, 60000, NULL, NULL},
        {"REDIS_URL", CONF_STR, "unix:///run/redis/redis.sock", &cfg.redis_url, 0, 0, NULL,
         rds_url_check},
        {"USER_CACHE_TTL", CONF_INT, "30", &cfg.cache_ttl, 0, 86400, NULL, NULL},
        /* registrations from one address: REGISTER_PER_ADDR per REGISTER_WINDOW s */
        {"REGISTER_WINDOW", CONF_INT, "3600", &cfg.register_window, 1, 86400, NULL, NULL},
        {"REGISTER_PER_ADDR", CONF_INT, "20", &cfg.register_per_addr, 1, 1000000, NULL, NULL},
        /* current_password guesses: the login throttle's settings (fcgi/token.c) */
        {"LOGIN_FREE_FAILURES", CONF_INT, "5", &cfg.delay.free, 0, 1000, NULL, NULL},
        {"LOGIN_DELAY_MAX", CONF_INT, "900", &cfg.delay.max, 1, 86400, NULL, NULL},
        {"LOGIN_FAILURE_TTL", CONF_INT, "86400", &cfg.delay.ttl, 1, 2592000, NULL, NULL},
        /* phone numbers at rest: "key1,key2", the first encrypts */
        {"FERNET_KEYS", CONF_STR, NULL, &cfg.fernet_keys, 0, 0, NULL, keys_check},
    };
    return serve_main(argc, argv, "users", conf, sizeof(conf) / sizeof(conf[0]), users);
}
