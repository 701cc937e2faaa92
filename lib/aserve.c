#include "aserve.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/async.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "fcgiproto.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"
#include "redis.h"
#include "serve.h"

#define MAX_CONNS 8192
#define READ_CHUNK 16384
#define MAX_EVENTS 64
#define FASTCGI_LISTEN_FD 0

/* What an epoll event points at. */
enum watch_kind { W_LISTENER, W_REDIS, W_CONN };
struct watch {
    enum watch_kind kind;
};

enum conn_state { C_READING, C_PARKED, C_WRITING };

struct conn {
    struct watch w; /* first: epoll data points here */
    int fd;
    enum conn_state state;
    struct fcgp p;
    struct buf in, out;
    size_t out_off;
    int out_wait; /* EPOLLOUT registered */
    double t_start;
    double deadline;
    int deadline_set, rerun, woken;
    int counted; /* in the in-flight gauge (metrics.h) until answered */
    char *held; /* while re-run: the channel it was parked on (owned) */
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    char *channel; /* parked on, owned */
    struct conn *prev, *next; /* parked list */
};

/* A Redis channel some parked requests wait on. */
enum sub_state { S_NONE, S_SUBSCRIBING, S_ACTIVE, S_UNSUBSCRIBING };
struct sub {
    char *channel;
    int refs;
    enum sub_state state;
    struct sub *next;
};

static struct {
    http_handler_fn *handler;
    int epfd;
    volatile sig_atomic_t stop;
    struct conn *parked; /* list head */
    double next_deadline; /* earliest deadline among parked, or INFINITY */
    size_t nconns;
    struct conn *cur;   /* the request a handler is running for */
    char *park_channel; /* set by aserve_park during the handler */
    struct http_req rq;
    struct http_resp rs;
    struct buf fmt, logline;
} S;

static struct {
    struct rds url; /* parsed REDIS_URL: path or host/port, password */
    int enabled;
    redisAsyncContext *ac;
    struct watch w;
    int events, registered;
    double next_try, backoff;
    int down_logged;
    struct sub *subs;
} PS;

double aserve_now(void)
{
    return clock_now();
}

double aserve_deadline(double wait)
{
    struct conn *c = S.cur;
    if (c == NULL)
        return aserve_now() + wait;
    if (!c->deadline_set) {
        c->deadline = aserve_now() + wait;
        c->deadline_set = 1;
    }
    return c->deadline;
}

int aserve_park(const char *channel)
{
    free(S.park_channel);
    S.park_channel = xstrdup(channel);
    return 0;
}

static void on_stop(int sig)
{
    (void)sig;
    S.stop = 1;
}

/* ---- Redis pub/sub: one async connection per process ------------------ */

static struct sub *sub_find(const char *channel)
{
    for (struct sub *s = PS.subs; s != NULL; s = s->next)
        if (strcmp(s->channel, channel) == 0)
            return s;
    return NULL;
}

static void sub_remove(struct sub *dead)
{
    for (struct sub **pp = &PS.subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == dead) {
            *pp = dead->next;
            free(dead->channel);
            free(dead);
            return;
        }
    }
}

static void ps_on_reply(redisAsyncContext *ac, void *reply, void *priv);

static void sub_send(struct sub *s, const char *cmd)
{
    if (PS.ac == NULL)
        return;
    if (redisAsyncCommand(PS.ac, ps_on_reply, NULL, "%s %s", cmd, s->channel) == REDIS_OK)
        s->state = cmd[0] == 'S' ? S_SUBSCRIBING : S_UNSUBSCRIBING;
}

static void sub_ref(const char *channel)
{
    struct sub *s = sub_find(channel);
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->channel = xstrdup(channel);
        s->next = PS.subs;
        PS.subs = s;
    }
    s->refs++;
    if (s->state == S_NONE)
        sub_send(s, "SUBSCRIBE");
}

static void sub_unref(const char *channel)
{
    struct sub *s = sub_find(channel);
    if (s == NULL || --s->refs > 0)
        return;
    if (s->state == S_ACTIVE)
        sub_send(s, "UNSUBSCRIBE");
    else if (s->state == S_NONE)
        sub_remove(s);
    /* SUBSCRIBING / UNSUBSCRIBING: decided when Redis answers */
}

/* Mark every request parked on channel (NULL: all) to run again. */
static void wake(const char *channel)
{
    for (struct conn *c = S.parked; c != NULL; c = c->next)
        if (channel == NULL || strcmp(c->channel, channel) == 0)
            c->woken = 1;
}

static void ps_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    const char *channel = r->element[1]->str;
    struct sub *s = sub_find(channel);
    if (strcmp(kind, "message") == 0) {
        wake(channel);
    } else if (strcmp(kind, "subscribe") == 0 && s != NULL) {
        s->state = S_ACTIVE;
        if (s->refs == 0)
            sub_send(s, "UNSUBSCRIBE");
        else
            wake(channel); /* a result stored before we listened is seen now */
    } else if (strcmp(kind, "unsubscribe") == 0 && s != NULL && s->state == S_UNSUBSCRIBING) {
        if (s->refs > 0)
            sub_send(s, "SUBSCRIBE");
        else
            sub_remove(s);
    }
}

static void ps_update(void)
{
    if (PS.ac == NULL)
        return;
    struct epoll_event ev = {.events = (uint32_t)PS.events, .data.ptr = &PS.w};
    if (epoll_ctl(S.epfd, PS.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, PS.ac->c.fd, &ev) == 0)
        PS.registered = 1;
}
static void ps_add_read(void *d) { (void)d; PS.events |= EPOLLIN; ps_update(); }
static void ps_del_read(void *d) { (void)d; PS.events &= ~EPOLLIN; ps_update(); }
static void ps_add_write(void *d) { (void)d; PS.events |= EPOLLOUT; ps_update(); }
static void ps_del_write(void *d) { (void)d; PS.events &= ~EPOLLOUT; ps_update(); }
static void ps_cleanup(void *d)
{
    (void)d;
    if (PS.ac != NULL && PS.registered)
        epoll_ctl(S.epfd, EPOLL_CTL_DEL, PS.ac->c.fd, NULL);
    PS.registered = 0;
    PS.events = 0;
}

static void ps_lost(const char *why)
{
    PS.ac = NULL; /* hiredis frees it after this callback */
    PS.registered = 0;
    PS.events = 0;
    PS.next_try = aserve_now() + PS.backoff;
    PS.backoff = PS.backoff * 2 > 2.0 ? 2.0 : PS.backoff * 2;
    if (!PS.down_logged)
        log_warn("Redis pub/sub: %s; reconnecting", why);
    PS.down_logged = 1;
    /* Subscriptions are gone with the connection: redo them on reconnect;
     * channels nobody waits on any more are dropped. */
    struct sub *s = PS.subs;
    while (s != NULL) {
        struct sub *next = s->next;
        s->state = S_NONE;
        if (s->refs == 0)
            sub_remove(s);
        s = next;
    }
}

static void ps_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        ps_lost(ac->errstr ? ac->errstr : "connect failed");
}

static void ps_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    ps_lost(ac->errstr && ac->errstr[0] ? ac->errstr : "connection closed");
}

static void ps_connect(void)
{
    PS.ac = PS.url.path ? redisAsyncConnectUnix(PS.url.path)
                        : redisAsyncConnect(PS.url.host, PS.url.port);
    if (PS.ac == NULL || PS.ac->err) {
        char why[RDS_ERR_MAX];
        snprintf(why, sizeof(why), "%s", PS.ac ? PS.ac->errstr : "out of memory");
        if (PS.ac != NULL)
            redisAsyncFree(PS.ac);
        ps_lost(why);
        return;
    }
    PS.ac->ev.addRead = ps_add_read;
    PS.ac->ev.delRead = ps_del_read;
    PS.ac->ev.addWrite = ps_add_write;
    PS.ac->ev.delWrite = ps_del_write;
    PS.ac->ev.cleanup = ps_cleanup;
    redisAsyncSetConnectCallback(PS.ac, ps_on_connect);
    redisAsyncSetDisconnectCallback(PS.ac, ps_on_disconnect);
    ps_add_write(NULL); /* the connect completes on the first write event */
    if (PS.url.password != NULL && PS.url.user != NULL)
        redisAsyncCommand(PS.ac, NULL, NULL, "AUTH %s %s", PS.url.user, PS.url.password);
    else if (PS.url.password != NULL)
        redisAsyncCommand(PS.ac, NULL, NULL, "AUTH %s", PS.url.password);
    if (PS.down_logged)
        log_info("Redis pub/sub: reconnected");
    PS.down_logged = 0;
    PS.backoff = 0.05;
    for (struct sub *s = PS.subs; s != NULL; s = s->next)
        sub_send(s, "SUBSCRIBE"); /* their waiters are woken when it lands */
}

/* ---- connections ------------------------------------------------------ */

static void park(struct conn *c, char *channel)
{
    c->channel = channel;
    c->state = C_PARKED;
    c->woken = 0;
    c->prev = NULL;
    c->next = S.parked;
    if (S.parked != NULL)
        S.parked->prev = c;
    S.parked = c;
    if (c->deadline_set && c->deadline < S.next_deadline)
        S.next_deadline = c->deadline;
    if (PS.enabled)
        sub_ref(channel);
}

/* Take c off the parked list; returns its channel (owned), whose
 * subscription reference the caller still holds. */
static char *unpark_hold(struct conn *c)
{
    if (c->state != C_PARKED)
        return NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        S.parked = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    char *channel = c->channel;
    c->channel = NULL;
    c->state = C_READING;
    return channel;
}

static void sub_release(char *channel)
{
    if (channel == NULL)
        return;
    if (PS.enabled)
        sub_unref(channel);
    free(channel);
}

static void unpark(struct conn *c)
{
    sub_release(unpark_hold(c));
}

static void conn_close(struct conn *c)
{
    if (c->counted) /* never answered: the client went away */
        metrics_request_cancel();
    unpark(c);
    close(c->fd); /* also leaves the epoll set */
    fcgp_free(&c->p);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
    S.nconns--;
}

static void conn_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = &c->w};
    epoll_ctl(S.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_feed(struct conn *c);

/* Write what is pending; once a response is out, close (lighttpd never
 * keeps FastCGI connections) or take the next request. Returns -1 if the
 * connection was closed. */
static int conn_flush(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (!c->out_wait)
                conn_events(c, EPOLLIN | EPOLLOUT);
            c->out_wait = 1;
            return 0;
        } else {
            log_warn("lighttpd went away before the response was written: %s",
                     n < 0 ? strerror(errno) : "closed");
            conn_close(c);
            return -1;
        }
    }
    buf_clear(&c->out);
    c->out_off = 0;
    if (c->out_wait)
        conn_events(c, EPOLLIN);
    c->out_wait = 0;
    if (c->state == C_WRITING) {
        if (!c->p.keep_conn) {
            conn_close(c);
            return -1;
        }
        fcgp_reset(&c->p);
        c->state = C_READING;
        c->deadline_set = c->rerun = 0;
        conn_feed(c);
    }
    return 0;
}

/* Run (or re-run) the handler for c's request. */
static void dispatch(struct conn *c)
{
    struct http_req *rq = &S.rq;
    struct http_resp *rs = &S.rs;
    size_t len;
    if (!c->rerun) {
        c->t_start = aserve_now();
        c->counted = 1;
        metrics_request_begin();
    }
    http_resp_clear(rs);
    S.cur = c;
    int parsed = http_req_parse(rq, c->p.envp, serve_cfg.prefix, rs) == 0;
    if (c->rerun)
        memcpy(rq->request_id, c->request_id, sizeof(c->request_id));
    else
        memcpy(c->request_id, rq->request_id, sizeof(c->request_id));
    log_set_request_id(rq->request_id);
    if (parsed && http_req_body_len(rq, (size_t)serve_cfg.max_body, &len, rs) == 0) {
        if (c->p.body_seen != len || c->p.body.len != len) {
            http_error(rs, 400, "Incomplete request body");
        } else {
            char *room = http_req_body_room(rq, len);
            if (len > 0)
                memcpy(room, c->p.body.data, len);
            http_req_body_done(rq, len);
            S.handler(rq, rs);
        }
    }
    S.cur = NULL;
    char *channel = S.park_channel;
    S.park_channel = NULL;
    if (rs->status == 0 && channel != NULL) {
        c->rerun = 1;
        park(c, channel);
        log_set_request_id(NULL);
        return;
    }
    free(channel);
    serve_complete(rq, rs);
    buf_clear(&S.fmt);
    http_resp_format(rq, rs, &S.fmt);
    fcgp_respond(&c->out, c->p.id, S.fmt.data, S.fmt.len);
    double took = aserve_now() - c->t_start;
    c->counted = 0;
    metrics_request_end(rq->head ? "HEAD" : rq->method, rs->status, took);
    serve_log_begin(&S.logline, rq, rs->status);
    serve_log_end(&S.logline, took, rq->request_id);
    c->state = C_WRITING;
    conn_flush(c);
}

/* Parse what has arrived; dispatch a complete request. */
static void conn_feed(struct conn *c)
{
    while (c->state == C_READING && c->in.len > 0) {
        size_t used;
        enum fcgp_status st = fcgp_feed(&c->p, c->in.data, c->in.len, &used, &c->out);
        if (used > 0) {
            memmove(c->in.data, c->in.data + used, c->in.len - used);
            c->in.len -= used;
        }
        if (st == FCGP_ERROR) {
            log_warn("closing a FastCGI connection: %s", c->p.err);
            conn_close(c);
            return;
        }
        if (c->out.len > 0 && conn_flush(c) != 0) /* management replies */
            return;
        if (st == FCGP_MORE)
            return;
        dispatch(c); /* FCGP_READY */
        return;
    }
}

static void conn_readable(struct conn *c)
{
    for (;;) {
        buf_reserve(&c->in, READ_CHUNK);
        ssize_t n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (c->state == C_READING) {
                conn_feed(c);
                return; /* c may be gone; level-triggered epoll calls again */
            }
            if (c->state == C_PARKED) {
                /* only ABORT_REQUEST may come now */
                size_t used;
                enum fcgp_status st = fcgp_feed(&c->p, c->in.data, c->in.len, &used, &c->out);
                memmove(c->in.data, c->in.data + used, c->in.len - used);
                c->in.len -= used;
                if (st == FCGP_ERROR || c->p.aborted) {
                    conn_close(c);
                    return;
                }
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        /* closed by lighttpd (its client went away) or an error */
        conn_close(c);
        return;
    }
}

/* FCGI_WEB_SERVER_ADDRS, as libfcgi reads it for the other route programs:
 * the addresses (comma-separated) a TCP peer must have; unset or empty,
 * anyone. A program spawn-fcgi runs on another host listens on TCP, and
 * whoever reaches it skips the gateway's authorizer. Read once at start.
 * Unlike libfcgi, which checks IPv4 peers only, an IPv6 peer must be
 * listed too (an IPv4-mapped one by its IPv4 address). */
static char *web_server_addrs;

static int peer_allowed(int fd)
{
    if (web_server_addrs == NULL || *web_server_addrs == '\0')
        return 1;
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    char ip[INET6_ADDRSTRLEN];
    if (sa.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof(ip));
    } else if (sa.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], ip, sizeof(ip));
        else
            inet_ntop(AF_INET6, a, ip, sizeof(ip));
    } else {
        return 1; /* a unix socket: the directory's permissions guard it */
    }
    size_t n = strlen(ip);
    for (const char *p = web_server_addrs; *p != '\0';) {
        p += strspn(p, ", ");
        size_t m = strcspn(p, ", ");
        if (m == n && memcmp(p, ip, n) == 0)
            return 1;
        p += m;
    }
    log_warn("refused a connection from %s: not in FCGI_WEB_SERVER_ADDRS", ip);
    return 0;
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        if (S.nconns >= MAX_CONNS) {
            log_warn("%d connections open: refusing one", MAX_CONNS);
            close(fd);
            continue;
        }
        if (!peer_allowed(fd)) {
            close(fd);
            continue;
        }
        struct conn *c = xcalloc(1, sizeof(*c));
        c->w.kind = W_CONN;
        c->fd = fd;
        fcgp_init(&c->p, (size_t)serve_cfg.max_body);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};
        if (epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            log_err("epoll_ctl: %s", strerror(errno));
            fcgp_free(&c->p);
            free(c);
            close(fd);
            continue;
        }
        S.nconns++;
    }
}

/* Re-run the woken requests and those past their deadline. */
static void run_woken(void)
{
    double now = aserve_now();
    int due = now >= S.next_deadline;
    if (due)
        S.next_deadline = INFINITY;
    struct conn *list = NULL;
    for (struct conn *c = S.parked, *next; c != NULL; c = next) {
        next = c->next;
        if (due && c->deadline_set && c->deadline <= now)
            c->woken = 1;
        if (c->woken) {
            c->held = unpark_hold(c);
            c->next = list; /* reuse the link for the run list */
            list = c;
        } else if (due && c->deadline_set && c->deadline < S.next_deadline) {
            S.next_deadline = c->deadline;
        }
    }
    while (list != NULL) {
        struct conn *c = list;
        list = c->next;
        c->next = NULL;
        c->woken = 0;
        /* The subscription is released only after the re-run: a request
         * that parks again on the same channel keeps it, rather than
         * unsubscribing and subscribing again, whose confirmation would
         * wake it again, round and round. (dispatch may free c.) */
        char *held = c->held;
        c->held = NULL;
        dispatch(c);
        sub_release(held);
    }
}

static int event_loop(void)
{
    /* lighttpd hands over a blocking listening socket: accept_all() takes
     * connections until EAGAIN, so it must not block. */
    int fl = fcntl(FASTCGI_LISTEN_FD, F_GETFL);
    if (fl < 0 || fcntl(FASTCGI_LISTEN_FD, F_SETFL, fl | O_NONBLOCK) != 0) {
        log_err("fcntl: %s", strerror(errno));
        return 1;
    }
    S.epfd = epoll_create1(EPOLL_CLOEXEC);
    static struct watch listener = {W_LISTENER};
    PS.w.kind = W_REDIS;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listener};
    if (S.epfd < 0 || epoll_ctl(S.epfd, EPOLL_CTL_ADD, FASTCGI_LISTEN_FD, &ev) != 0) {
        log_err("epoll: %s", strerror(errno));
        return 1;
    }
    S.next_deadline = INFINITY;
    PS.backoff = 0.05;
    if (PS.enabled)
        ps_connect();
    log_debug("serving %s (pid %ld, event loop)", serve_cfg.prefix, (long)getpid());
    struct epoll_event evs[MAX_EVENTS];
    while (!S.stop) {
        double now = aserve_now();
        if (PS.enabled && PS.ac == NULL && now >= PS.next_try)
            ps_connect();
        run_woken();
        double next = now + 1.0;
        if (S.next_deadline < next)
            next = S.next_deadline;
        if (PS.enabled && PS.ac == NULL && PS.next_try < next)
            next = PS.next_try;
        double wait_ms = ceil((next - aserve_now()) * 1e3);
        int n = epoll_wait(S.epfd, evs, MAX_EVENTS, wait_ms < 0 ? 0 : (int)wait_ms);
        if (n < 0 && errno != EINTR) {
            log_err("epoll_wait: %s", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct watch *w = evs[i].data.ptr;
            if (w->kind == W_LISTENER) {
                accept_all(FASTCGI_LISTEN_FD);
            } else if (w->kind == W_REDIS) {
                if (PS.ac != NULL && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                    redisAsyncHandleRead(PS.ac);
                if (PS.ac != NULL && (evs[i].events & EPOLLOUT))
                    redisAsyncHandleWrite(PS.ac);
            } else {
                struct conn *c = (struct conn *)w;
                if (evs[i].events & EPOLLOUT) {
                    if (conn_flush(c) != 0)
                        continue;
                }
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    conn_readable(c);
            }
        }
    }
    return 0;
}

/* ---- CGI fallback ----------------------------------------------------- */

static http_handler_fn *cgi_handler_real;

static int cgi_handler(struct http_req *rq, struct http_resp *rs)
{
    static struct conn one; /* holds the deadline across re-runs */
    memset(&one, 0, sizeof(one));
    for (;;) {
        S.cur = &one;
        http_resp_clear(rs);
        cgi_handler_real(rq, rs);
        S.cur = NULL;
        int parked = S.park_channel != NULL;
        free(S.park_channel);
        S.park_channel = NULL;
        if (rs->status != 0 || !parked)
            return rs->status;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int is_fastcgi(void)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    return getpeername(FASTCGI_LISTEN_FD, (struct sockaddr *)&sa, &len) != 0 &&
           errno == ENOTCONN;
}

int aserve_main(int argc, char **argv, const char *name, const struct conf_entry *conf,
                size_t nconf, http_handler_fn *handler, char *const *pubsub_url)
{
    if (argc > 1 || !is_fastcgi()) {
        cgi_handler_real = handler;
        return serve_main(argc, argv, name, conf, nconf, cgi_handler);
    }
    int rc;
    if (serve_setup(argc, argv, name, conf, nconf, &rc) != 0)
        return rc;
    S.handler = handler;
    const char *addrs = getenv("FCGI_WEB_SERVER_ADDRS");
    web_server_addrs = addrs != NULL ? xstrdup(addrs) : NULL;
    metrics_open(name, serve_cfg.prefix, MX_HTTP);
    if (pubsub_url != NULL && *pubsub_url != NULL) {
        char err[128];
        if (rds_init(&PS.url, *pubsub_url, 2000, err, sizeof(err)) != 0) {
            log_err("conf: REDIS_URL: %s", err);
            return 1;
        }
        PS.enabled = 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop; /* no SA_RESTART: epoll_wait returns */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    http_req_init(&S.rq);
    http_resp_init(&S.rs);

    rc = event_loop();

    while (S.parked != NULL)
        conn_close(S.parked);
    if (PS.ac != NULL) {
        redisAsyncContext *ac = PS.ac;
        PS.ac = NULL;
        ac->onDisconnect = NULL;
        redisAsyncFree(ac);
    }
    while (PS.subs != NULL)
        sub_remove(PS.subs);
    rds_free(&PS.url);
    http_req_free(&S.rq);
    http_resp_free(&S.rs);
    buf_free(&S.fmt);
    buf_free(&S.logline);
    free(serve_cfg.prefix);
    free(web_server_addrs);
    close(S.epfd);
    return rc;
}
