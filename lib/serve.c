#include "serve.h"

#include <errno.h>
#include <fcgiapp.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"

extern char **environ;

struct serve_settings serve_cfg;
#define cfg serve_cfg /* short name inside this file */

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", NULL};
static const enum log_level level_values[] = {LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARNING,
                                              LOG_LVL_ERROR};

/* Where a request's bytes come from and go to: a FastCGI request's streams,
 * or stdin/stdout under plain CGI. */
struct io {
    FCGX_Request *fcgi; /* NULL under CGI */
};

static size_t io_read(struct io *io, char *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (io->fcgi != NULL) {
            int r = FCGX_GetStr(dst + got, (int)(n - got), io->fcgi->in);
            if (r <= 0)
                break;
            got += (size_t)r;
        } else {
            ssize_t r = read(STDIN_FILENO, dst + got, n - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
    }
    return got;
}

/* Read and drop what is left of the request body, so the connection is
 * closed with nothing unread (see the accept loop). */
static void io_drain(struct io *io)
{
    char scratch[4096];
    if (io->fcgi != NULL) {
        while (FCGX_GetStr(scratch, (int)sizeof(scratch), io->fcgi->in) > 0)
            ;
    }
}

static int io_write(struct io *io, const char *src, size_t n)
{
    if (io->fcgi != NULL)
        return FCGX_PutStr(src, (int)n, io->fcgi->out) == (int)n ? 0 : -1;
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, src, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        src += w;
        n -= (size_t)w;
    }
    return 0;
}


/* Request state lives across requests so that a warm process serves without
 * allocating: every buffer keeps its capacity and is cleared, not freed. */
void (*serve_on_start)(void);
int serve_cgi_authorizer;

/* Under CGI, as the interpreter of a route program: its path (argv[1]). */
static const char *wrapped_route;

static struct http_req rq;
static struct http_resp rs;
static struct buf out;
/* The request's log line, kept until the connection is closed: the strings
 * it quotes live in the request environment, which finishing frees. */
static struct buf logline;
static double t_start;

/* The CGI authorizer's acceptance: its Variable-NAME headers become the
 * environment of the route program, which then runs in this process with
 * the request's body still unread on stdin. Nothing of the caller's own
 * making may reach the route as an identity, so the names the authorizer
 * hands on are cleared first. Returns only on failure, with rs a 500. */
static void exec_route(struct http_resp *resp)
{
    static const char *const handed[] = {"AUTH_SUB", "AUTH_SCOPE", "AUTH_JTI", "CORS_ORIGIN"};
    for (size_t i = 0; i < sizeof(handed) / sizeof(handed[0]); i++)
        unsetenv(handed[i]);
    const char *p = resp->headers.data, *end = p + resp->headers.len;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            break;
        if (strncmp(p, "Variable-", 9) == 0) {
            const char *colon = memchr(p, ':', (size_t)(eol - p));
            if (colon != NULL) {
                char name[64], value[1024];
                snprintf(name, sizeof(name), "%.*s", (int)(colon - p - 9), p + 9);
                const char *v = colon + 1 + (colon[1] == ' ');
                snprintf(value, sizeof(value), "%.*s", (int)(eol - v), v);
                setenv(name, value, 1);
            }
        }
        p = eol + 2;
    }
    execl(wrapped_route, wrapped_route, (char *)NULL);
    log_err("cannot run route program %s: %s", wrapped_route, strerror(errno));
    http_resp_clear(resp);
    http_error(resp, 500, NULL);
}

/* The route a CGI authorizer was given must be a program beside it (what
 * lighttpd's cgi.assign hands over), and not itself. */
static int route_beside_us(const char *route, char *err, size_t errlen)
{
    char self[PATH_MAX], real[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0 || realpath(route, real) == NULL) {
        snprintf(err, errlen, "%.100s: %s", route, strerror(errno));
        return -1;
    }
    self[n] = '\0';
    if (strcmp(self, real) == 0) {
        snprintf(err, errlen, "%.100s: the authorizer cannot wrap itself", route);
        return -1;
    }
    char self_dir[PATH_MAX], real_dir[PATH_MAX];
    snprintf(self_dir, sizeof(self_dir), "%s", dirname(self));
    snprintf(real_dir, sizeof(real_dir), "%s", dirname(real));
    if (strcmp(self_dir, real_dir) != 0 || access(route, X_OK) != 0) {
        snprintf(err, errlen, "%.100s: not a route program in %.100s", route, self_dir);
        return -1;
    }
    return 0;
}

static void handle(char *const *envp, struct io *io, http_handler_fn *handler)
{
    t_start = clock_now();
    metrics_request_begin();
    http_resp_clear(&rs);
    buf_clear(&out);

    size_t len = 0;
    /* lighttpd sends an authorizer no body (it reads the body only once
     * the request is allowed) and, for a request that has one, no end of
     * input either: waiting for either would hang until its timeout. */
    const char *role = NULL;
    for (char *const *e = envp; *e != NULL && role == NULL; e++)
        if (strncmp(*e, "FCGI_ROLE=", 10) == 0)
            role = *e + 10;
    int authorizer = wrapped_route != NULL || (role != NULL && strcmp(role, "AUTHORIZER") == 0);
    if (http_req_parse(&rq, envp, cfg.prefix, &rs) == 0 &&
        (authorizer || http_req_body_len(&rq, (size_t)cfg.max_body, &len, &rs) == 0)) {
        log_set_request_id(rq.request_id);
        size_t got = io_read(io, http_req_body_room(&rq, len), len);
        http_req_body_done(&rq, got);
        if (got != len)
            http_error(&rs, 400, "Incomplete request body");
        else
            handler(&rq, &rs);
    }
    serve_complete(&rq, &rs);
    if (wrapped_route != NULL && rs.status == 200)
        exec_route(&rs); /* returns only when it could not: 500 */

    if (!authorizer)
        io_drain(io);
    http_resp_format(&rq, &rs, &out);
    if (io_write(io, out.data, out.len) != 0)
        log_warn("client went away before the response was written");
    metrics_request_end(rq.head ? "HEAD" : rq.method ? rq.method : "other", rs.status,
                        clock_now() - t_start);
    serve_log_begin(&logline, &rq, rs.status);
}

void serve_log_begin(struct buf *line, const struct http_req *req, int status)
{
    buf_clear(line);
    if (log_enabled(LOG_LVL_INFO))
        buf_printf(line, "%s %.2048s %d", req->head ? "HEAD" : req->method, req->target, status);
}

void serve_log_end(const struct buf *line, double seconds, const char *request_id)
{
    log_set_request_id(request_id); /* log adds " request_id=..." */
    if (line->len > 0)
        log_info("%s %.3fms", line->data, seconds * 1e3);
    log_set_request_id(NULL);
}

static void log_request(void)
{
    serve_log_end(&logline, clock_now() - t_start, rq.request_id);
}

int serve_setup(int argc, char **argv, const char *name, const struct conf_entry *conf,
                size_t nconf, int *exit_code)
{
    char default_prefix[128];
    snprintf(default_prefix, sizeof(default_prefix), "/api/%s", name);
    const struct conf_entry common[] = {
        {"LOG_LEVEL", CONF_ENUM, "INFO", &cfg.log_level, 0, 0, level_names, NULL},
        {"MAX_BODY_BYTES", CONF_INT, "1048576", &cfg.max_body, 0, 1L << 30, NULL, NULL},
        {"ROUTE_PREFIX", CONF_STR, default_prefix, &cfg.prefix, 0, 0, NULL, NULL},
    };
    log_init(name, LOG_LVL_INFO);
    char err[256];
    if (conf_load(common, sizeof(common) / sizeof(common[0]), err, sizeof(err)) != 0 ||
        (conf != NULL && conf_load(conf, nconf, err, sizeof(err)) != 0)) {
        log_err("conf: %s", err);
        *exit_code = 1;
        return -1;
    }
    log_init(name, level_values[cfg.log_level]);
    if (argc == 2 && serve_cgi_authorizer && argv[1][0] == '/') {
        if (route_beside_us(argv[1], err, sizeof(err)) != 0) {
            log_err("%s", err);
            *exit_code = 1;
            return -1;
        }
        wrapped_route = argv[1];
        /* the rules are written for lighttpd's authorizer prefix */
        free(cfg.prefix);
        cfg.prefix = xstrdup("/api");
        return 0;
    }
    if (argc > 1) { /* --check: the settings are read, and good */
        int check = strcmp(argv[1], "--check") == 0;
        if (!check)
            log_err(serve_cgi_authorizer
                        ? "usage: %s [--check | /path/to/cgi-bin/<route> (as CGI)] (run by lighttpd as FastCGI, or as CGI)"
                        : "usage: %s [--check] (run by lighttpd as FastCGI, or as CGI)",
                    argv[0]);
        free(cfg.prefix);
        cfg.prefix = NULL;
        *exit_code = check ? 0 : 2;
        return -1;
    }
    return 0;
}

void serve_complete(const struct http_req *req, struct http_resp *resp)
{
    if (resp->status == 0) {
        log_err("handler set no status for %s %s", req->method, req->target);
        http_error(resp, 500, NULL);
    } else if (resp->status >= 400 && resp->body.len == 0) {
        http_error(resp, resp->status, NULL);
    }
}

int serve_main(int argc, char **argv, const char *name, const struct conf_entry *conf,
               size_t nconf, http_handler_fn *handler)
{
    int rc;
    if (serve_setup(argc, argv, name, conf, nconf, &rc) != 0)
        return rc;

    http_req_init(&rq);
    http_resp_init(&rs);
    buf_init(&out);

    if (FCGX_Init() != 0) {
        log_err("FCGX_Init failed");
        return 1;
    }
    if (wrapped_route != NULL && !FCGX_IsCGI()) {
        log_err("a route program to run is an argument only under CGI");
        free(cfg.prefix);
        return 2;
    }
    if (FCGX_IsCGI()) {
        struct io io = {NULL};
        handle(environ, &io, handler);
        log_request();
    } else {
        FCGX_Request fr;
        FCGX_InitRequest(&fr, 0, 0);
        /* not as CGI: a process per request would leave a file per request */
        metrics_open(name, cfg.prefix, MX_HTTP);
        log_debug("serving %s (pid %ld)", cfg.prefix, (long)getpid());
        if (serve_on_start != NULL)
            serve_on_start();
        while (FCGX_Accept_r(&fr) >= 0) {
            struct io io = {&fr};
            handle(fr.envp, &io, handler);
            /* lighttpd opens a connection per request and never keeps it
             * (no FCGI_KEEP_CONN). libfcgi's close is shutdown(), then a
             * wait of up to 2 s for lighttpd to close first, so that input
             * left unread cannot reset the connection before lighttpd has
             * read the response. handle() reads all input (io_drain), so a
             * plain close (detached) is safe, over unix sockets and TCP
             * alike, and frees the process for the next request sooner. */
            FCGX_Detach(&fr);
            FCGX_Finish_r(&fr);
            log_request();
        }
        FCGX_Free(&fr, 1);
        log_debug("stopping (pid %ld)", (long)getpid());
    }
    http_req_free(&rq);
    http_resp_free(&rs);
    buf_free(&out);
    buf_free(&logline);
    free(cfg.prefix);
    return 0;
}
