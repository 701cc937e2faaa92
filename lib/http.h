#ifndef HTTP_H
#define HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"

/* The request a route handler sees and the response it fills, in the shapes
 * FastAPI clients expect: compact UTF-8 JSON bodies, errors as
 * {"detail": "..."} and 422 validation errors as
 * {"detail": [{"loc": [...], "msg": "...", "type": "..."}]}.
 *
 * Everything here is pure (no sockets, no getenv): serve.c does the I/O, so
 * the parsing can be unit-tested and fuzzed on plain bytes. */

#define HTTP_REQUEST_ID_MAX 64

/* Statuses we send, with their reason phrases (Python's http.HTTPStatus). */
#define HTTP_STATUS_MAP(X)                                                                     \
    X(200, "OK")                                                                               \
    X(201, "Created")                                                                          \
    X(202, "Accepted")                                                                         \
    X(204, "No Content")                                                                       \
    X(301, "Moved Permanently")                                                                \
    X(304, "Not Modified")                                                                     \
    X(307, "Temporary Redirect")                                                               \
    X(400, "Bad Request")                                                                      \
    X(401, "Unauthorized")                                                                     \
    X(403, "Forbidden")                                                                        \
    X(404, "Not Found")                                                                        \
    X(405, "Method Not Allowed")                                                               \
    X(408, "Request Timeout")                                                                  \
    X(409, "Conflict")                                                                         \
    X(411, "Length Required")                                                                  \
    X(413, "Request Entity Too Large")                                                         \
    X(414, "Request-URI Too Long")                                                             \
    X(415, "Unsupported Media Type")                                                           \
    X(422, "Unprocessable Entity")                                                             \
    X(429, "Too Many Requests")                                                                \
    X(431, "Request Header Fields Too Large")                                                  \
    X(500, "Internal Server Error")                                                            \
    X(501, "Not Implemented")                                                                  \
    X(502, "Bad Gateway")                                                                      \
    X(503, "Service Unavailable")                                                              \
    X(504, "Gateway Timeout")

struct http_param {
    const char *name;  /* percent-decoded, '+' as space, UTF-8 checked */
    const char *value; /* "" for a bare "name" */
};

/* Every pointer is valid until the next http_req_parse() on the same struct. */
struct http_req {
    const char *method;   /* REQUEST_METHOD, except that HEAD reads as "GET" */
    int head;             /* 1 for HEAD: handled as GET, the body is not sent */
    const char *target;   /* the raw request target (path?query), for logs */
    char **seg;           /* path segments after the route prefix, decoded */
    size_t nseg;          /* "/api/hello/a%2Fb/" under /api/hello: {"a/b", ""} */
    struct http_param *query;
    size_t nquery;
    const char *body;     /* NUL-terminated; "" when there is none */
    size_t body_len;
    /* REQUEST_ID from the gateway's authorizer, else a sane X-Request-Id,
     * else a new random one */
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    char *const *envp;    /* borrowed: the request's CGI/FastCGI environment */

    /* private: storage reused from one request to the next */
    struct buf store;
    struct buf body_store;
    size_t segcap, querycap;
};

struct http_resp {
    int status;               /* 0 until a handler sets it */
    const char *content_type; /* static string; application/json by default */
    struct buf headers;       /* extra header lines, "Name: value\r\n" each */
    struct buf body;
};

typedef int http_handler_fn(struct http_req *rq, struct http_resp *rs);

void http_req_init(struct http_req *rq);
void http_req_free(struct http_req *rq);
void http_resp_init(struct http_resp *rs);
void http_resp_clear(struct http_resp *rs);
void http_resp_free(struct http_resp *rs);

/* Fill rq from a CGI environment (envp: "NAME=value" strings, borrowed and
 * used until the next call). `prefix` is the route's mount point, e.g.
 * "/api/hello": the path must be exactly it or continue with '/', and the
 * rest is split into segments. The target is REDIRECT_URI when lighttpd set
 * one (its normalised or rewritten target), else REQUEST_URI.
 * Returns 0, or -1 with the error already in rs (404 outside the prefix, 400
 * for bad percent-encoding, a NUL byte or invalid UTF-8). The request id is
 * set in both cases. */
int http_req_parse(struct http_req *rq, char *const *envp, const char *prefix,
                   struct http_resp *rs) __attribute__((warn_unused_result));

/* CONTENT_LENGTH checked against `limit` bytes: 0 with *len set, or -1 with
 * 400 (not a number) or 413 (over the limit) already in rs. */
int http_req_body_len(const struct http_req *rq, size_t limit, size_t *len, struct http_resp *rs)
    __attribute__((warn_unused_result));
/* Room for a body of len bytes; the caller reads into it, then sets its
 * actual length with http_req_body_done. */
char *http_req_body_room(struct http_req *rq, size_t len);
void http_req_body_done(struct http_req *rq, size_t len);

/* Lookups: borrowed pointers, NULL when absent. */
const char *http_env(const struct http_req *rq, const char *name);
const char *http_header(const struct http_req *rq, const char *name); /* "X-Request-Id" */
const char *http_query(const struct http_req *rq, const char *name);  /* first value */

/* Who calls, as the gateway's authorizer (fcgi/auth.c) named them in the
 * request's environment: AUTH_SUB, AUTH_SCOPE and AUTH_JTI, which only
 * the authorizer sets (lighttpd drops a client's own). Borrowed from rq. */
struct http_caller {
    const char *sub;   /* the token's subject; NULL: no token (a public route) */
    const char *scope; /* its scopes, space-separated; "" when none */
    const char *jti;   /* the token's id (AUTH_JTI); NULL: unknown */
    int admin;         /* scope holds "admin" */
};
struct http_caller http_caller(const struct http_req *rq);

/* 1 if s is a request id we pass on: 1..64 of [A-Za-z0-9._-]. */
int http_request_id_sane(const char *s);

const char *http_reason(int status); /* "Not Found"; "Unknown" if not in the map */

/* Responses. Each returns the status it set, so a handler can
 * `return http_error(rs, 404, "User not found");`. */
int http_json_new(struct http_resp *rs, int status, json_t *body); /* steals body */
int http_error(struct http_resp *rs, int status, const char *detail); /* NULL: reason phrase */
/* 422 with one validation error; steals loc (e.g. json_pack("[ss]", "path", "id")). */
int http_error_422(struct http_resp *rs, json_t *loc, const char *msg, const char *type);
/* The request body as a JSON object whose keys are all in `fields`
 * (NULL-terminated), as a FastAPI body model with extra="forbid" reads it:
 * 0 with *out (new reference; NULL for an empty body unless `required`),
 * or -1 with the 422 in rs: ["body"] missing (empty and required),
 * ["body",<offset>] json_invalid, ["body"] dict_type (valid JSON, not an
 * object), ["body",<key>] extra_forbidden. */
int http_body_object_or_422(const struct http_req *rq, const char *const *fields, int required,
                            json_t **out, struct http_resp *rs) __attribute__((warn_unused_result));
/* Adds "name: value"; returns -1 (and adds nothing) if either holds CR or LF. */
int http_header_add(struct http_resp *rs, const char *name, const char *value);

/* 0 if rq->method is in `allow` ("GET" or "GET, POST"; HEAD rides on GET),
 * else -1 with 405 Method Not Allowed and an Allow header in rs. */
int http_allow_or_405(const struct http_req *rq, struct http_resp *rs, const char *allow)
    __attribute__((warn_unused_result));

/* The complete CGI response: Status line, Content-Type, Content-Length,
 * X-Request-Id, the CORS headers when the gateway's authorizer allowed the
 * request's Origin (CORS_ORIGIN in the environment), the extra headers, a blank line, and the body unless HEAD or
 * a status that has none. Appends to out. */
void http_resp_format(const struct http_req *rq, const struct http_resp *rs, struct buf *out);

#endif
