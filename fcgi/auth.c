/* The gateway's authorizer. lighttpd runs it ("mode" => "authorizer") on
 * every request under /api/ before the route program that will answer it,
 * so the signing key lives here and nowhere else; the routes learn who is
 * calling from the environment it hands on.
 *
 *   allowed  -> 200, no body, and for lighttpd to put into the route's
 *               environment: AUTH_SUB (the user id), AUTH_SCOPE (space-
 *               separated), AUTH_JTI (the token's id: which token made a
 *               request, so a password change keeps it), REQUEST_ID (so
 *               both log the same id) and CORS_ORIGIN (an allowed Origin,
 *               echoed by the route)
 *   denied   -> its answer goes to the client as is:
 *      401 {"detail"} WWW-Authenticate: Bearer [error="invalid_token"]
 *          no token, another scheme, or a token that is forged, expired,
 *          not yet valid, revoked or too long (RFC 6750 §3.1)
 *      400 invalid_request: "Bearer" with no token or a malformed one
 *      403 insufficient_scope, with the scope the route needs
 *      503 Retry-After: the revoked list was never loaded and Redis is down
 *   OPTIONS with Access-Control-Request-Method (a CORS preflight)
 *            -> 204 with the CORS headers for an allowed Origin, else 403
 *
 * The rules are one table (below): a path prefix as lighttpd's
 * fastcgi.server matches it, optionally a method and "nothing after the
 * prefix", and what it needs. The first rule that matches decides; a path
 * no rule names needs a valid token. A token sent to a public route is
 * still checked: a client holding a bad one is told so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "denylist.h"
#include "log.h"
#include "mem.h"
#include "redis.h"
#include "serve.h"
#include "token.h"

enum need { PUBLIC, TOKEN, SCOPE };

struct rule {
    const char *prefix; /* matched like fastcgi.server: bytes, then anything */
    const char *method; /* NULL: any */
    int bare;           /* 1: only the prefix itself (or with one "/") */
    enum need need;
    const char *scope; /* for SCOPE */
};

/* The public routes, and the ones that need more than a token. */
static const struct rule rules[] = {
    {"/api/hello", NULL, 0, PUBLIC, NULL},
    {"/api/health", NULL, 0, PUBLIC, NULL},
    {"/api/ready", NULL, 0, PUBLIC, NULL},
    {"/api/token", NULL, 0, PUBLIC, NULL},
    {"/api/users", "POST", 1, PUBLIC, NULL},     /* registration */
    {"/api/users", "GET", 1, SCOPE, "admin"},    /* the list of everyone */
};

static struct {
    char *keys_spec, *redis_url, *cors;
    long revoke_sync_ms;
} cfg;

static struct token_keys keys;

/* Tokens this process has verified, by their exact bytes: a client sends
 * the same token with every request for its whole life, and the signature
 * check is the authorizer's main cost after the hop itself. A hit needs the
 * same bytes (compared in full, so a tampered token never matches), and its
 * times are checked again; revocation is checked on every request as
 * before. Direct-mapped, bounded: MEMO_SLOTS tokens at most. */
#define MEMO_SLOTS 1024
static struct memo {
    char *token; /* NULL: empty */
    size_t len;
    struct token_claims c;
} memo[MEMO_SLOTS];

static size_t memo_slot(const char *t, size_t n)
{
    size_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)t[i]) * 1099511628211ULL;
    return h & (MEMO_SLOTS - 1);
}

/* token_verify, remembering what passed. */
static int verify(const char *t, long now, struct token_claims *c, enum token_err *why)
{
    size_t n = strlen(t);
    struct memo *m = &memo[memo_slot(t, n)];
    if (m->token != NULL && m->len == n && memcmp(m->token, t, n) == 0) {
        *c = m->c;
        if (now >= c->exp)
            *why = TOKEN_EXPIRED;
        else if ((c->nbf != 0 && now < c->nbf) || c->iat > now + 60)
            *why = TOKEN_NOT_YET_VALID;
        else
            return *why = TOKEN_OK, 0;
        return -1;
    }
    if (token_verify(&keys, t, now, c, why) != 0)
        return -1;
    free(m->token);
    m->token = xmalloc(n + 1);
    memcpy(m->token, t, n + 1);
    m->len = n;
    m->c = *c;
    return 0;
}
static struct rds redis;
static struct deny denied;
static int ready;

static int setup(void)
{
    if (ready)
        return 0;
    char err[256];
    if (token_keys_parse(&keys, cfg.keys_spec, err, sizeof(err)) != 0 ||
        rds_init(&redis, cfg.redis_url, 250, err, sizeof(err)) != 0) {
        log_err("setup: %s", err);
        return -1;
    }
    deny_init(&denied, (double)cfg.revoke_sync_ms / 1000.0);
    ready = 1;
    return 0;
}

/* Bring the revoked list up to date (at most once per REVOKE_SYNC_MS). */
static void sync_denied(long now)
{
    if (deny_sync(&denied, &redis, clock_now(), now) == 0)
        return;
    if (denied.loaded)
        log_warn("revoked tokens: Redis: %s (using the list as of %.0f s ago)", redis.err,
                 clock_now() - denied.synced_at);
    else
        log_warn("revoked tokens: Redis: %s (not loaded yet: tokens get 503)", redis.err);
}

/* At start, so a process is ready before its first token arrives. */
static void warm_up(void)
{
    if (setup() == 0)
        sync_denied((long)time(NULL));
}

/* The path lighttpd routes by, without the query: its normalised target
 * (dot segments resolved, unreserved characters decoded), which it passes
 * as REDIRECT_URI when it differs from REQUEST_URI, the raw one; rq->target
 * is that (http.h). Deciding on the raw target would let
 * /api/hello/../users through as public. */
static void routed_path(const struct http_req *rq, char *path, size_t len)
{
    snprintf(path, len, "%.*s", (int)strcspn(rq->target, "?"), rq->target);
}

static const struct rule *match(const char *path, const char *method)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        const struct rule *r = &rules[i];
        size_t n = strlen(r->prefix);
        if (strncmp(path, r->prefix, n) != 0)
            continue;
        if (r->method != NULL && strcmp(method, r->method) != 0)
            continue;
        if (r->bare && !(path[n] == '\0' || (path[n] == '/' && path[n + 1] == '\0')))
            continue;
        return r;
    }
    return NULL;
}

/* The Origin if CORS_ORIGINS allows it, else NULL. */
static const char *allowed_origin(const struct http_req *rq)
{
    const char *o = http_header(rq, "Origin");
    if (o == NULL || *o == '\0' || cfg.cors[0] == '\0')
        return NULL;
    size_t n = strlen(o);
    for (const char *p = cfg.cors; *p != '\0';) {
        p += strspn(p, " ,");
        size_t m = strcspn(p, " ,");
        if ((m == 1 && *p == '*') || (m == n && memcmp(p, o, n) == 0))
            return strchr(o, '\r') || strchr(o, '\n') ? NULL : o;
        p += m;
    }
    return NULL;
}

static int challenge(struct http_resp *rs, int status, const char *error, const char *scope,
                     const char *detail)
{
    char v[256];
    if (error == NULL)
        snprintf(v, sizeof(v), "Bearer realm=\"api\"");
    else if (scope == NULL)
        snprintf(v, sizeof(v), "Bearer realm=\"api\", error=\"%s\", error_description=\"%s\"",
                 error, detail);
    else
        snprintf(v, sizeof(v), "Bearer realm=\"api\", error=\"%s\", scope=\"%s\"", error, scope);
    http_header_add(rs, "WWW-Authenticate", v);
    return http_error(rs, status, detail);
}

/* A CORS preflight: answered here, the route never sees it. */
static int preflight(const struct http_req *rq, struct http_resp *rs)
{
    const char *origin = allowed_origin(rq);
    if (origin == NULL)
        return http_error(rs, 403, "Origin not allowed");
    http_header_add(rs, "Access-Control-Allow-Origin", origin);
    http_header_add(rs, "Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE");
    http_header_add(rs, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id");
    http_header_add(rs, "Access-Control-Max-Age", "600");
    http_header_add(rs, "Vary", "Origin");
    rs->status = 204;
    return 204;
}

/* The token of an "Authorization: Bearer <token>" header: 0 with *tok
 * (inside h), 1 if h is no Bearer header at all, -1 if it is a malformed
 * one. RFC 6750 §2.1: the scheme is case-insensitive, the token is
 * token68. */
static int bearer(const char *h, const char **tok)
{
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != '\0' && h[6] != ' '))
        return 1;
    const char *t = h + 6;
    while (*t == ' ')
        t++;
    size_t n = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
    size_t pad = strspn(t + n, "=");
    if (n == 0 || t[n + pad] != '\0')
        return -1;
    *tok = t;
    return 0;
}

static int authorize(struct http_req *rq, struct http_resp *rs)
{
    if (setup() != 0)
        return http_error(rs, 500, NULL);
    const char *method = rq->method;
    if (strcmp(method, "OPTIONS") == 0 && http_header(rq, "Access-Control-Request-Method"))
        return preflight(rq, rs);

    char path[256];
    routed_path(rq, path, sizeof(path));
    const struct rule *r = match(path, method);
    enum need need = r ? r->need : TOKEN;

    /* a browser may read our refusals too */
    const char *origin = allowed_origin(rq);
    if (origin != NULL) {
        http_header_add(rs, "Access-Control-Allow-Origin", origin);
        http_header_add(rs, "Vary", "Origin");
    }

    struct token_claims c = {0};
    const char *h = http_header(rq, "Authorization"), *tok = NULL;
    int b = h != NULL ? bearer(h, &tok) : 1;
    if (b < 0)
        return challenge(rs, 400, "invalid_request", NULL, "Malformed bearer token");
    if (b > 0) {
        if (need == PUBLIC)
            goto allow;
        return challenge(rs, 401, NULL, NULL, "Not authenticated");
    }

    enum token_err why;
    long now = (long)time(NULL);
    if (verify(tok, now, &c, &why) != 0) {
        log_info("%s %s: token refused: %s", method, path, token_err_name(why));
        return challenge(rs, 401, "invalid_token", NULL,
                         why == TOKEN_EXPIRED ? "Token expired" : "Invalid token");
    }
    sync_denied(now);
    int revoked = deny_check_token(&denied, &c, now);
    if (revoked < 0 && need == PUBLIC) {
        tok = NULL; /* cannot tell: a public route is served without identity */
        goto allow;
    }
    if (revoked < 0) {
        http_header_add(rs, "Retry-After", "1");
        return http_error(rs, 503, "Authorization unavailable, try again shortly");
    }
    if (revoked) {
        log_info("%s %s: token %s of user %s is revoked", method, path, c.jti, c.sub);
        return challenge(rs, 401, "invalid_token", NULL, "Token revoked");
    }
    if (need == SCOPE && !token_scope_has(c.scope, r->scope, strlen(r->scope)))
        return challenge(rs, 403, "insufficient_scope", r->scope, "Not enough permissions");
allow:
    /* on a 200 lighttpd keeps only these, as the route's environment */
    http_resp_clear(rs);
    http_header_add(rs, "Variable-REQUEST_ID", rq->request_id);
    if (origin != NULL)
        http_header_add(rs, "Variable-CORS_ORIGIN", origin);
    if (tok != NULL) {
        http_header_add(rs, "Variable-AUTH_SUB", c.sub);
        http_header_add(rs, "Variable-AUTH_SCOPE", c.scope);
        http_header_add(rs, "Variable-AUTH_JTI", c.jti);
    }
    rs->status = 200;
    return 200;
}

int main(int argc, char **argv)
{
    static const struct conf_entry conf[] = {
        {"TOKEN_KEYS", CONF_STR, NULL, &cfg.keys_spec, 0, 0, NULL, token_keys_check},
        {"REDIS_URL", CONF_STR, "unix:///run/redis/redis.sock", &cfg.redis_url, 0, 0, NULL,
         rds_url_check},
        /* how stale the revoked list may be: a revoke takes this long at most */
        {"REVOKE_SYNC_MS", CONF_INT, "1000", &cfg.revoke_sync_ms, 0, 60000, NULL, NULL},
        /* Origins allowed to call the API from a browser ("*": any) */
        {"CORS_ORIGINS", CONF_STR, "", &cfg.cors, 0, 0, NULL, NULL},
    };
    serve_on_start = warm_up;
    serve_cgi_authorizer = 1; /* under mod_cgi it wraps the routes (serve.h) */
    return serve_main(argc, argv, "auth", conf, sizeof(conf) / sizeof(conf[0]), authorize);
}
