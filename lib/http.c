#include "http.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "jsonfmt.h"
#include "mem.h"
#include "token.h"
#include "url.h"
#include "utf8.h"

void http_req_init(struct http_req *rq)
{
    memset(rq, 0, sizeof(*rq));
    rq->body = "";
}

void http_req_free(struct http_req *rq)
{
    free(rq->seg);
    free(rq->query);
    buf_free(&rq->store);
    buf_free(&rq->body_store);
    http_req_init(rq);
}

void http_resp_init(struct http_resp *rs)
{
    memset(rs, 0, sizeof(*rs));
}

void http_resp_clear(struct http_resp *rs)
{
    rs->status = 0;
    rs->content_type = NULL;
    buf_clear(&rs->headers);
    buf_clear(&rs->body);
}

void http_resp_free(struct http_resp *rs)
{
    buf_free(&rs->headers);
    buf_free(&rs->body);
    http_resp_init(rs);
}

const char *http_reason(int status)
{
    switch (status) {
#define X(code, text)                                                                          \
    case code:                                                                                 \
        return text;
        HTTP_STATUS_MAP(X)
#undef X
    }
    return "Unknown";
}

const char *http_env(const struct http_req *rq, const char *name)
{
    if (rq->envp == NULL)
        return NULL;
    size_t n = strlen(name);
    for (char *const *e = rq->envp; *e != NULL; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    }
    return NULL;
}

const char *http_header(const struct http_req *rq, const char *name)
{
    /* CGI names headers HTTP_<NAME> with '-' as '_', upper case; lighttpd
     * gives Content-Type and Content-Length without the prefix. */
    char key[128] = "HTTP_";
    size_t j = 5;
    if (strcasecmp(name, "Content-Type") == 0 || strcasecmp(name, "Content-Length") == 0)
        j = 0;
    for (const char *p = name; *p != '\0'; p++) {
        if (j + 1 >= sizeof(key))
            return NULL;
        char c = *p;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            c = '_';
        key[j++] = c;
    }
    key[j] = '\0';
    return http_env(rq, key);
}

const char *http_query(const struct http_req *rq, const char *name)
{
    for (size_t i = 0; i < rq->nquery; i++) {
        if (strcmp(rq->query[i].name, name) == 0)
            return rq->query[i].value;
    }
    return NULL;
}

int http_request_id_sane(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= HTTP_REQUEST_ID_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return n > 0;
}

/* splitmix64, seeded once per process from getrandom(): request ids need to
 * be unique, not secret, and this costs no syscall per request. */
static uint64_t next_random(void)
{
    static uint64_t state;
    static int seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof(state), 0) != sizeof(state)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        }
        seeded = 1;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void set_request_id(struct http_req *rq)
{
    /* the gateway's authorizer (fcgi/auth.c) passes on the id it used */
    const char *given = http_env(rq, "REQUEST_ID");
    if (given == NULL || !http_request_id_sane(given))
        given = http_header(rq, "X-Request-Id");
    if (given != NULL && http_request_id_sane(given)) {
        snprintf(rq->request_id, sizeof(rq->request_id), "%s", given);
        return;
    }
    uint64_t a = next_random(), b = next_random();
    snprintf(rq->request_id, sizeof(rq->request_id), "%016llx%016llx", (unsigned long long)a,
             (unsigned long long)b);
}

/* Decode one URL part into rq->store; returns a pointer to it or NULL with a
 * 400 in rs. store has been reserved large enough that it never moves. */
static char *decode_part(struct http_req *rq, const char *s, size_t n, int plus_space,
                         const char *where, struct http_resp *rs)
{
    size_t start = rq->store.len;
    int rc = url_decode(s, n, plus_space, &rq->store);
    if (rc == URL_OK && !utf8_valid(rq->store.data + start, rq->store.len - start))
        rc = 1;
    if (rc != URL_OK) {
        char detail[96];
        snprintf(detail, sizeof(detail), "Invalid %s in %s",
                 rc == URL_EESCAPE ? "percent-encoding" : rc == URL_ENUL ? "NUL byte" : "UTF-8",
                 where);
        http_error(rs, 400, detail);
        return NULL;
    }
    rq->store.len++; /* keep the NUL: the next part starts after it */
    return rq->store.data + start;
}

static int parse_path(struct http_req *rq, const char *path, size_t plen, const char *prefix,
                      struct http_resp *rs)
{
    size_t xlen = strlen(prefix);
    while (xlen > 0 && prefix[xlen - 1] == '/')
        xlen--;
    if (plen < xlen || memcmp(path, prefix, xlen) != 0 || (plen > xlen && path[xlen] != '/')) {
        http_error(rs, 404, NULL);
        return -1;
    }
    if (plen == xlen)
        return 0;
    const char *p = path + xlen + 1, *end = path + plen;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *segend = slash ? slash : end;
        char *seg = decode_part(rq, p, (size_t)(segend - p), 0, "path", rs);
        if (seg == NULL)
            return -1;
        rq->seg = xgrow(rq->seg, &rq->segcap, rq->nseg + 1, sizeof(*rq->seg));
        rq->seg[rq->nseg++] = seg;
        if (slash == NULL)
            return 0;
        p = slash + 1;
    }
}

static int parse_query(struct http_req *rq, const char *q, size_t qlen, struct http_resp *rs)
{
    const char *p = q, *end = q + qlen;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        if (pend > p) {
            const char *eq = memchr(p, '=', (size_t)(pend - p));
            const char *nend = eq ? eq : pend;
            char *name = decode_part(rq, p, (size_t)(nend - p), 1, "query string", rs);
            if (name == NULL)
                return -1;
            char *value = eq ? decode_part(rq, eq + 1, (size_t)(pend - eq - 1), 1,
                                           "query string", rs)
                             : decode_part(rq, "", 0, 1, "query string", rs);
            if (value == NULL)
                return -1;
            rq->query = xgrow(rq->query, &rq->querycap, rq->nquery + 1, sizeof(*rq->query));
            rq->query[rq->nquery].name = name;
            rq->query[rq->nquery].value = value;
            rq->nquery++;
        }
        p = pend + 1;
    }
    return 0;
}

int http_req_parse(struct http_req *rq, char *const *envp, const char *prefix,
                   struct http_resp *rs)
{
    rq->envp = envp;
    rq->nseg = 0;
    rq->nquery = 0;
    rq->body = "";
    rq->body_len = 0;
    buf_clear(&rq->store);
    set_request_id(rq);

    const char *method = http_env(rq, "REQUEST_METHOD");
    rq->method = method != NULL && *method != '\0' ? method : "GET";
    rq->head = strcmp(rq->method, "HEAD") == 0;
    if (rq->head)
        rq->method = "GET";

    const char *target = http_env(rq, "REDIRECT_URI");
    if (target == NULL)
        target = http_env(rq, "REQUEST_URI");
    if (target == NULL)
        target = "";
    rq->target = target;

    size_t tlen = strlen(target);
    const char *qmark = memchr(target, '?', tlen);
    size_t plen = qmark ? (size_t)(qmark - target) : tlen;
    /* QUERY_STRING is what lighttpd parsed; fall back to the target's own. */
    const char *query = http_env(rq, "QUERY_STRING");
    if (query == NULL)
        query = qmark ? qmark + 1 : "";
    size_t qlen = strlen(query);

    /* Decoded parts are never longer than their source and each adds one NUL;
     * reserving this bound up front keeps the pointers into store stable. */
    buf_reserve(&rq->store, 2 * plen + 3 * qlen + 8);

    if (parse_path(rq, target, plen, prefix, rs) != 0)
        return -1;
    return parse_query(rq, query, qlen, rs);
}

int http_req_body_len(const struct http_req *rq, size_t limit, size_t *len, struct http_resp *rs)
{
    const char *cl = http_env(rq, "CONTENT_LENGTH");
    long n = 0;
    if (cl != NULL && *cl != '\0' && conf_parse_long(cl, 0, LONG_MAX, &n) != 0) {
        http_error(rs, 400, "Invalid Content-Length");
        return -1;
    }
    if ((unsigned long)n > limit) {
        http_error(rs, 413, NULL);
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

char *http_req_body_room(struct http_req *rq, size_t len)
{
    buf_clear(&rq->body_store);
    buf_reserve(&rq->body_store, len);
    return rq->body_store.data;
}

void http_req_body_done(struct http_req *rq, size_t len)
{
    rq->body_store.len = len;
    rq->body_store.data[len] = '\0';
    rq->body = rq->body_store.data;
    rq->body_len = len;
}

int http_json_new(struct http_resp *rs, int status, json_t *body)
{
    if (body == NULL) /* a failed json_pack(): a bug, reported, not crashed on */
        return http_error(rs, 500, NULL);
    buf_clear(&rs->body);
    rs->status = status;
    rs->content_type = "application/json";
    /* FastAPI's JSONResponse: separators (",", ":"), ensure_ascii=False */
    if (jsonfmt_dump(body, &rs->body, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        json_decref(body);
        buf_clear(&rs->body);
        return http_error(rs, 500, NULL);
    }
    json_decref(body);
    return status;
}

int http_error(struct http_resp *rs, int status, const char *detail)
{
    json_t *d = json_string(detail != NULL ? detail : http_reason(status));
    if (d == NULL) /* detail was not UTF-8 */
        d = json_string(http_reason(status));
    return http_json_new(rs, status, json_pack("{s:o}", "detail", d));
}

int http_error_422(struct http_resp *rs, json_t *loc, const char *msg, const char *type)
{
    json_t *err = json_pack("{s:o,s:s,s:s}", "loc", loc, "msg", msg, "type", type);
    return http_json_new(rs, 422, json_pack("{s:[o]}", "detail", err));
}

int http_body_object_or_422(const struct http_req *rq, const char *const *fields, int required,
                            json_t **out, struct http_resp *rs)
{
    *out = NULL;
    if (rq->body_len == 0) {
        if (required)
            return http_error_422(rs, json_pack("[s]", "body"), "Field required", "missing"), -1;
        return 0;
    }
    json_error_t je;
    json_t *body = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                              &je);
    if (body == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "JSON decode error: %s", je.text);
        return http_error_422(rs, json_pack("[si]", "body", (json_int_t)je.position), msg,
                              "json_invalid"), -1;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        return http_error_422(rs, json_pack("[s]", "body"), "Input should be a valid dictionary",
                              "dict_type"), -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        size_t i = 0;
        while (fields[i] != NULL && strcmp(key, fields[i]) != 0)
            i++;
        if (fields[i] == NULL) {
            http_error_422(rs, json_pack("[ss]", "body", key), "Extra inputs are not permitted",
                           "extra_forbidden");
            json_decref(body);
            return -1;
        }
    }
    *out = body;
    return 0;
}

int http_header_add(struct http_resp *rs, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
        return -1;
    buf_printf(&rs->headers, "%s: %s\r\n", name, value);
    return 0;
}

int http_allow_or_405(const struct http_req *rq, struct http_resp *rs, const char *allow)
{
    size_t mlen = strlen(rq->method);
    for (const char *p = allow; *p != '\0';) {
        size_t n = strcspn(p, ", ");
        if (n == mlen && memcmp(p, rq->method, n) == 0)
            return 0;
        p += n;
        p += strspn(p, ", ");
    }
    char value[128];
    if (strstr(allow, "GET") != NULL && strstr(allow, "HEAD") == NULL)
        snprintf(value, sizeof(value), "%s, HEAD", allow);
    else
        snprintf(value, sizeof(value), "%s", allow);
    http_error(rs, 405, NULL);
    if (http_header_add(rs, "Allow", value) != 0)
        http_error(rs, 500, NULL);
    return -1;
}

void http_resp_format(const struct http_req *rq, const struct http_resp *rs, struct buf *out)
{
    int no_body = rs->status == 204 || rs->status == 304;
    buf_printf(out, "Status: %d %s\r\n", rs->status, http_reason(rs->status));
    if (!no_body)
        buf_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                   rs->content_type ? rs->content_type : "application/json", rs->body.len);
    buf_printf(out, "X-Request-Id: %s\r\n", rq->request_id);
    /* an Origin the authorizer allowed (CORS_ORIGINS) */
    const char *origin = http_env(rq, "CORS_ORIGIN");
    if (origin != NULL && strpbrk(origin, "\r\n") == NULL)
        buf_printf(out, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
                        "Access-Control-Expose-Headers: X-Request-Id, Location, Link, "
                        "Retry-After, X-Cache\r\n", origin);
    buf_append(out, rs->headers.data, rs->headers.len);
    buf_append(out, "\r\n", 2);
    if (!no_body && !rq->head)
        buf_append(out, rs->body.data, rs->body.len);
}

struct http_caller http_caller(const struct http_req *rq)
{
    struct http_caller c = {.sub = http_env(rq, "AUTH_SUB"),
                            .scope = http_env(rq, "AUTH_SCOPE"),
                            .jti = http_env(rq, "AUTH_JTI")};
    if (c.sub != NULL && c.sub[0] == '\0')
        c.sub = NULL;
    if (c.scope == NULL || c.sub == NULL)
        c.scope = "";
    c.admin = token_scope_has(c.scope, "admin", 5);
    return c;
}
