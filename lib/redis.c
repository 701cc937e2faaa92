#include "redis.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "conf.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"
#include "url.h"

#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 2.0

static int parse_db(const char *s, int *db)
{
    long v;
    if (conf_parse_long(s, 0, 1000000, &v) != 0)
        return -1;
    *db = (int)v;
    return 0;
}

/* user:password (percent-decoded) from the userinfo u[0..n) of a URL, as
 * redis-py reads it; an empty user is none. Returns 0 or -1 (no ':', a bad
 * escape, a NUL). */
static int parse_userinfo(struct rds *r, const char *u, size_t n)
{
    const char *colon = memchr(u, ':', n);
    if (colon == NULL)
        return -1;
    struct buf user = {0}, pass = {0};
    int rc = 0;
    if (url_decode(u, (size_t)(colon - u), 0, &user) != URL_OK ||
        url_decode(colon + 1, n - (size_t)(colon - u) - 1, 0, &pass) != URL_OK)
        rc = -1;
    if (rc == 0 && user.len > 0)
        r->user = xstrdup(user.data);
    if (rc == 0)
        r->password = xstrdup(pass.data != NULL ? pass.data : "");
    if (user.data != NULL)
        explicit_bzero(user.data, user.len);
    if (pass.data != NULL)
        explicit_bzero(pass.data, pass.len);
    buf_free(&user);
    buf_free(&pass);
    return rc;
}

int rds_init(struct rds *r, const char *url, int timeout_ms, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->timeout_ms = timeout_ms;
    r->backoff = BACKOFF_MIN;
    if (strncmp(url, "unix://", 7) == 0) {
        /* redis-py's form: the userinfo, if any, is everything before the
         * path's first '/' and ends in '@' (a '/' in a password is %2F) */
        const char *p = url + 7;
        const char *path = strchr(p, '/');
        if (path == NULL)
            goto bad;
        if (path != p) {
            if (path[-1] != '@' || parse_userinfo(r, p, (size_t)(path - 1 - p)) != 0)
                goto bad;
        }
        const char *q = strchr(path, '?');
        r->path = q ? xstrndup(path, (size_t)(q - path)) : xstrdup(path);
        if (q != NULL) {
            if (strncmp(q + 1, "db=", 3) != 0 || parse_db(q + 4, &r->db) != 0)
                goto bad;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        const char *p = url + 8;
        const char *at = strrchr(p, '@');
        const char *slash = strchr(at ? at : p, '/');
        if (at != NULL) {
            if (parse_userinfo(r, p, (size_t)(at - p)) != 0)
                goto bad;
            p = at + 1;
        }
        const char *end = slash ? slash : p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(end - p));
        r->host = xstrndup(p, (size_t)((colon ? colon : end) - p));
        r->port = 6379;
        if (colon != NULL) {
            char port[16];
            long v;
            size_t n = (size_t)(end - colon - 1);
            if (n == 0 || n >= sizeof(port))
                goto bad;
            memcpy(port, colon + 1, n);
            port[n] = '\0';
            if (conf_parse_long(port, 1, 65535, &v) != 0)
                goto bad;
            r->port = (int)v;
        }
        if (r->host[0] == '\0')
            goto bad;
        if (slash != NULL && slash[1] != '\0' && parse_db(slash + 1, &r->db) != 0)
            goto bad;
        return 0;
    }
bad:
    snprintf(err, errlen,
             "expected unix://[[user]:password@]/path[?db=N] or redis://[[user]:password@]host[:port][/db]");
    rds_free(r);
    return -1;
}

int rds_url_check(const char *url, char *err, size_t errlen)
{
    struct rds r;
    if (rds_init(&r, url, 0, err, errlen) != 0)
        return -1;
    rds_free(&r);
    return 0;
}

void rds_free(struct rds *r)
{
    rds_disconnect(r);
    free(r->path);
    free(r->host);
    if (r->password != NULL)
        explicit_bzero(r->password, strlen(r->password));
    free(r->password);
    free(r->user);
    r->path = r->host = r->password = r->user = NULL;
}

void rds_disconnect(struct rds *r)
{
    if (r->c != NULL) {
        redisFree(r->c);
        r->c = NULL;
    }
    /* replies we will never read: tell whoever sent the commands */
    for (; r->pending > 0; r->pending--)
        if (r->on_sent_reply != NULL)
            r->on_sent_reply(r->on_sent_arg, NULL);
}

static void set_err(struct rds *r, int reply_err, const char *what)
{
    metrics_error(MX_ERR_REDIS);
    r->reply_err = reply_err;
    snprintf(r->err, sizeof(r->err), "%s", what);
}

/* Drop the connection after an I/O error; the next call reconnects. */
static void io_failed(struct rds *r)
{
    set_err(r, 0, r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
    rds_disconnect(r);
}

static int setup(struct rds *r)
{
    redisReply *rep;
    if (r->password != NULL) {
        rep = r->user != NULL ? redisCommand(r->c, "AUTH %s %s", r->user, r->password)
                              : redisCommand(r->c, "AUTH %s", r->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            set_err(r, 0, rep ? "AUTH refused" : "connection lost during AUTH");
            freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    if (r->db != 0) {
        rep = redisCommand(r->c, "SELECT %d", r->db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            set_err(r, 0, rep ? "SELECT refused" : "connection lost during SELECT");
            freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    return 0;
}

int rds_connect(struct rds *r)
{
    if (r->c != NULL)
        return 0;
    double now = clock_now();
    if (now < r->next_try) {
        if (r->err[0] == '\0')
            set_err(r, 0, "Redis unavailable");
        return -1;
    }
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->c = r->path ? redisConnectUnixWithTimeout(r->path, tv)
                   : redisConnectWithTimeout(r->host, r->port, tv);
    if (r->c == NULL || r->c->err != 0 || redisSetTimeout(r->c, tv) != REDIS_OK ||
        setup(r) != 0) {
        if (r->c != NULL && r->c->err != 0)
            set_err(r, 0, r->c->errstr);
        rds_disconnect(r);
        r->next_try = now + r->backoff;
        r->backoff = r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
        return -1;
    }
    r->backoff = BACKOFF_MIN;
    r->next_try = 0;
    r->err[0] = '\0';
    return 0;
}

void rds_backoff_wait(struct rds *r)
{
    double wait = r->next_try - clock_now();
    if (wait <= 0)
        wait = BACKOFF_MIN;
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        break; /* a signal (shutdown) cuts the wait short */
}

/* Turn a raw hiredis result into our convention. */
static redisReply *checked(struct rds *r, void *raw)
{
    redisReply *rep = raw;
    if (rep == NULL) {
        io_failed(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        set_err(r, 1, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* Read the replies of rds_send_eval() calls. Returns 0, or -1 if the
 * connection failed meanwhile. */
static int drain(struct rds *r)
{
    while (r->pending > 0 && r->c != NULL) {
        void *raw = NULL;
        if (redisGetReply(r->c, &raw) != REDIS_OK) {
            io_failed(r);
            return -1;
        }
        redisReply *rep = raw;
        r->pending--;
        if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0)
            r->noscript = 1;
        if (r->on_sent_reply != NULL)
            r->on_sent_reply(r->on_sent_arg, rep);
        else if (rep->type == REDIS_REPLY_ERROR)
            log_warn("Redis: %s", rep->str);
        freeReplyObject(rep);
    }
    return 0;
}

int rds_sync(struct rds *r)
{
    if (r->c == NULL)
        return r->pending > 0 ? -1 : 0;
    return drain(r);
}

static int ready(struct rds *r)
{
    return rds_connect(r) == 0 && drain(r) == 0 ? 0 : -1;
}

redisReply *rds_command(struct rds *r, const char *fmt, ...)
{
    if (ready(r) != 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    void *raw = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    return checked(r, raw);
}

redisReply *rds_argv(struct rds *r, int argc, const char **argv, const size_t *argvlen)
{
    if (ready(r) != 0)
        return NULL;
    return checked(r, redisCommandArgv(r->c, argc, argv, argvlen));
}

int rds_append(struct rds *r, const char *fmt, ...)
{
    if (ready(r) != 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(r->c, fmt, ap);
    va_end(ap);
    return rc == REDIS_OK ? 0 : -1;
}

int rds_append_argv(struct rds *r, int argc, const char **argv, const size_t *argvlen)
{
    if (ready(r) != 0)
        return -1;
    return redisAppendCommandArgv(r->c, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

redisReply *rds_reply(struct rds *r)
{
    if (r->c == NULL) {
        set_err(r, 0, "connection lost");
        return NULL;
    }
    void *raw = NULL;
    if (redisGetReply(r->c, &raw) != REDIS_OK)
        raw = NULL;
    return checked(r, raw);
}

/* SHA1 of the script as Redis computes it, learnt from SCRIPT LOAD. */
static int load_script(struct rds *r, struct rds_script *s)
{
    redisReply *rep = rds_command(r, "SCRIPT LOAD %s", s->src);
    if (rep == NULL)
        return -1;
    int ok = rep->type == REDIS_REPLY_STRING && rep->len == 40;
    if (ok)
        memcpy(s->sha, rep->str, 41);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

enum { EVAL_MAXARGS = 64 };

/* EVALSHA sha nkeys args... into argv; -1 if there are too many. */
static int evalsha_argv(struct rds *r, struct rds_script *s, int nkeys, int nargs,
                        const char **args, const size_t *lens, const char **argv,
                        size_t *argvlen, char nk[16])
{
    if (nargs > EVAL_MAXARGS) {
        set_err(r, 1, "too many script arguments");
        return -1;
    }
    int n = snprintf(nk, 16, "%d", nkeys);
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = s->sha;
    argvlen[1] = 40;
    argv[2] = nk;
    argvlen[2] = (size_t)n;
    for (int i = 0; i < nargs; i++) {
        argv[i + 3] = args[i];
        argvlen[i + 3] = lens ? lens[i] : strlen(args[i]);
    }
    return 0;
}

int rds_send_eval(struct rds *r, struct rds_script *s, int nkeys, int nargs, const char **args,
                  const size_t *lens)
{
    const char *argv[EVAL_MAXARGS + 3];
    size_t argvlen[EVAL_MAXARGS + 3];
    char nk[16];
    if (ready(r) != 0)
        return -1;
    if ((s->sha[0] == '\0' || r->noscript) && load_script(r, s) != 0)
        return -1;
    r->noscript = 0;
    if (evalsha_argv(r, s, nkeys, nargs, args, lens, argv, argvlen, nk) != 0 ||
        redisAppendCommandArgv(r->c, nargs + 3, argv, argvlen) != REDIS_OK)
        return -1;
    /* Write it out now: the caller wants it applied while it works. */
    int done = 0;
    while (!done) {
        if (redisBufferWrite(r->c, &done) != REDIS_OK) {
            io_failed(r);
            return -1;
        }
    }
    r->pending++;
    return 0;
}

redisReply *rds_eval(struct rds *r, struct rds_script *s, int nkeys, int nargs,
                     const char **args, const size_t *lens)
{
    const char *argv[EVAL_MAXARGS + 3];
    size_t argvlen[EVAL_MAXARGS + 3];
    char nk[16];
    if (s->sha[0] == '\0' && load_script(r, s) != 0)
        return NULL;
    if (evalsha_argv(r, s, nkeys, nargs, args, lens, argv, argvlen, nk) != 0)
        return NULL;
    redisReply *rep = rds_argv(r, nargs + 3, argv, argvlen);
    if (rep == NULL && r->reply_err && strncmp(r->err, "NOSCRIPT", 8) == 0) {
        if (load_script(r, s) != 0)
            return NULL;
        rep = rds_argv(r, nargs + 3, argv, argvlen);
    }
    return rep;
}

int rds_full(const struct rds *r)
{
    return r->reply_err && strncmp(r->err, "OOM ", 4) == 0;
}

int rds_db(const struct rds *r)
{
    return r->db;
}

int rds_subscribe(struct rds *r, const char *channel)
{
    redisReply *rep = rds_command(r, "SUBSCRIBE %s", channel);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int rds_message(struct rds *r, int timeout_ms, redisReply **msg)
{
    *msg = NULL;
    if (r->c == NULL)
        return -1;
    double deadline = clock_now() + timeout_ms / 1000.0;
    for (;;) {
        void *raw = NULL;
        if (redisGetReplyFromReader(r->c, &raw) != REDIS_OK) {
            io_failed(r);
            return -1;
        }
        if (raw != NULL) {
            redisReply *rep = raw;
            if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                rep->element[0]->type == REDIS_REPLY_STRING &&
                strcmp(rep->element[0]->str, "message") == 0 &&
                rep->element[2]->type == REDIS_REPLY_STRING) {
                *msg = rep;
                return 1;
            }
            freeReplyObject(rep); /* (un)subscribe confirmations */
            continue;
        }
        int left = (int)((deadline - clock_now()) * 1000);
        if (left < 0)
            return 0;
        struct pollfd pfd = {r->c->fd, POLLIN, 0};
        int n = poll(&pfd, 1, left);
        if (n < 0 && errno == EINTR)
            return 0; /* a signal: let the caller look at it */
        if (n <= 0)
            return 0;
        if (redisBufferRead(r->c) != REDIS_OK) {
            io_failed(r);
            return -1;
        }
    }
}
