/* queue-runner: runs Celery tasks written in C, from Redis.
 *
 *   queue-runner [-c N] [-Q queue[,queue...]] [-n NAME]
 *
 * A supervisor process forks N worker processes. Each worker claims one
 * message at a time into its own in-flight list (see qrun.h), stores STARTED,
 * runs the task from the registry (task.h), and stores the result and drops
 * the claim in one atomic step: at-least-once, and never a second result.
 * The supervisor keeps the runner's heartbeat, puts back the task of a worker
 * that died and forks a new one, and puts back the tasks of other runners
 * that stopped beating (killed hosts). SIGTERM/SIGINT: stop claiming, let
 * running tasks finish (up to RUNNER_DRAIN s), put the rest back, exit 0.
 *
 * Beyond a plain run (see qrun.h for the keys):
 *   - eta/countdown: a claimed message due later moves to its queue's
 *     scheduled set; the supervisor promotes due ones every 250 ms;
 *   - expires passed, or a revoke recorded: REVOKED, not run;
 *   - retries: a task that asks (task_retry) is scheduled again, Celery's
 *     way, until its max_retries; then FAILURE;
 *   - limits: the supervisor watches each busy worker's clock and memory: a
 *     soft time limit signals the task (SIGUSR1), a hard one or the memory
 *     limit kills the worker, and the task ends FAILURE with the reason; so
 *     does a task whose worker crashes; the worker is replaced;
 *   - revokes broadcast on /<db>.celery.pidbox (our DELETE route, or
 *     Python's app.control.revoke) are recorded, and terminate kills the
 *     worker running the task (REVOKED "terminated");
 *   - every final FAILURE joins its queue's failed list.
 *
 * Settings (environment): REDIS_URL, LOG_LEVEL, RESULT_EXPIRES (s),
 * RUNNER_LEASE (s), RUNNER_DRAIN (s), TASK_MAX_RETRIES,
 * TASK_RETRY_BACKOFF_MS, TASK_RETRY_BACKOFF_MAX_MS, TASK_TIME_LIMIT (s),
 * TASK_SOFT_TIME_LIMIT (s), TASK_MAX_MEMORY_MB, FAILED_MAX, FAILED_AGE (s). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "celery.h"
#include "clock.h"
#include "conf.h"
#include "jsonfmt.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"
#include "qrun.h"
#include "redis.h"
#include "task.h"

#define MAX_QUEUES 8
/* An idle worker blocks on its first list (BLMOVE) this long between scans
 * of all its lists (priority bands, other queues): those wait at most this. */
#define IDLE_BLOCK 0.05

static struct {
    char *redis_url;
    int log_level;
    long result_ttl, lease, drain;
    long max_retries, backoff_ms, backoff_max_ms;
    long time_limit, soft_time_limit, max_memory_mb;
    long failed_max, failed_age;
    long concurrency;
    char *queues; /* "a,b" as given */
    char *queue[MAX_QUEUES];
    int nqueue;
    char id[160];
    char host[64];
} cfg;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", NULL};
static const enum log_level level_values[] = {LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARNING,
                                              LOG_LVL_ERROR};

static volatile sig_atomic_t stopping;
static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* What each worker is running, shared with the supervisor (mmap'd before
 * the fork), so the supervisor can enforce limits and terminate revoked
 * tasks without the busy worker's help. A seqlock: the worker bumps gen
 * (odd: writing) around each change; the supervisor trusts a copy read
 * between two equal even gens. */
struct slot_state {
    unsigned gen;
    int busy;
    char id[CEL_ID_MAX + 1];
    char task[128];          /* its name, for the supervisor's metrics */
    double started;          /* clock_now() at start */
    double hard, soft;       /* time limits, s; 0 none */
    long mem_kb, base_rss_kb; /* memory limit over the RSS at start; 0 none */
};
static struct slot_state *slots;

static void slot_write(struct slot_state *st, const struct slot_state *v)
{
    struct slot_state tmp = *v;
    tmp.gen = __atomic_add_fetch(&st->gen, 1, __ATOMIC_SEQ_CST); /* odd: writing */
    *st = tmp;
    __atomic_add_fetch(&st->gen, 1, __ATOMIC_SEQ_CST);
}

static int slot_read(const struct slot_state *st, struct slot_state *out)
{
    unsigned g1 = __atomic_load_n(&st->gen, __ATOMIC_SEQ_CST);
    if (g1 & 1)
        return -1;
    *out = *st;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(&st->gen, __ATOMIC_SEQ_CST) == g1 ? 0 : -1;
}

/* Resident set size of a process in kB (statm's second field), or -1. */
static long rss_kb(pid_t pid)
{
    char path[64], text[128];
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *p = text, *end;
    strtol(p, &end, 10);
    long pages = strtol(end, &end, 10);
    return end == p ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL); /* a signal cuts it short: that is wanted */
}

/* ---- worker ---------------------------------------------------------- */

#define MAX_BATCH 16 /* messages a worker claims at once while tasks are short */
#define SENT_MAX (2 * MAX_BATCH + 2)

/* A command sent without waiting for its reply (rds_send_eval): a finish
 * keeps its message and result until Redis has answered, so it can be sent
 * again if the connection drops first. */
struct sent {
    int finish; /* 1: a finish; 0: a STARTED update; 2: a defer or retry */
    int failed; /* a final FAILURE: joins the failed list */
    char *msg;
    size_t len;
    char *key, *meta; /* meta NULL: no result to store */
};

struct worker {
    int slot;
    struct rds r;
    char inflight[256];
    const char *keys[MAX_QUEUES * 4]; /* queue lists, priority-major: */
    char key_names[MAX_QUEUES * 4][CEL_QUEUE_MAX + 8]; /* ...pointing here */
    int nkeys;
    struct buf meta;
    char key[sizeof(CEL_META_PREFIX) + CEL_ID_MAX]; /* result key of the task at hand */
    pid_t pid;
    json_t *who;     /* STARTED result: {"pid":..,"hostname":..} */
    char *who_json; /* the same as text, for the claim script */
    int down;  /* Redis unreachable: warn once per outage */

    /* claimed, not yet run (all in the in-flight list) */
    char *batch[MAX_BATCH];
    size_t blen[MAX_BATCH];
    int bflags[MAX_BATCH]; /* QRUN_CLAIM_*; -1: not looked at (BLMOVE) */
    int nbatch, ibatch, k;
    int failed;  /* the result in meta is a final FAILURE */
    int settled; /* run_message dealt with the message itself (defer, retry) */
    int broken;  /* a defer or retry did not land: its claim stays in flight,
                  * to be put back once Redis answers (sticky until then) */
    long mem_limit_set; /* RLIMIT_AS applied (MB), 0 none */
    /* sent, reply not read yet: a ring, oldest at head */
    struct sent sent[SENT_MAX];
    int shead, nsent;
    /* finishes to do again, synchronously */
    struct sent redo[SENT_MAX];
    int nredo;
};

/* Wait for Redis when it is down, warning once per outage. */
static void redis_trouble(struct worker *w, const char *what)
{
    if (!w->down)
        log_warn("worker %d: %s: %s; retrying", w->slot, what, w->r.err);
    w->down = 1;
    rds_backoff_wait(&w->r);
}

static void redis_ok(struct worker *w)
{
    if (w->down)
        log_info("worker %d: Redis is back", w->slot);
    w->down = 0;
}

static void sent_free(struct sent *e)
{
    free(e->msg);
    free(e->key);
    free(e->meta);
    memset(e, 0, sizeof(*e));
}

static void claim_lost(const char *key, int fin)
{
    if (fin == 2)
        log_warn("%s: claim lost (this runner's lease expired and another runner took the "
                 "task): result dropped",
                 key);
}

/* The reply of the oldest sent command (rep NULL: it never came, the
 * connection broke): a finish that did not land is done again. */
static void on_sent_reply(void *arg, redisReply *rep)
{
    struct worker *w = arg;
    if (w->nsent == 0)
        return;
    struct sent *e = &w->sent[w->shead];
    w->shead = (w->shead + 1) % SENT_MAX;
    w->nsent--;
    if (e->finish == 2) {
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            if (rep != NULL)
                log_warn("%s: %s; putting it back", e->key, rep->str);
            w->broken = 1;
        } else if (rep->type == REDIS_REPLY_INTEGER) {
            claim_lost(e->key, (int)rep->integer);
        }
        sent_free(e);
        return;
    }
    if (e->finish && (rep == NULL || rep->type == REDIS_REPLY_ERROR)) {
        if (rep != NULL)
            log_warn("storing %s: %s; retrying", e->key, rep->str);
        w->redo[w->nredo++] = *e; /* ownership moves */
        memset(e, 0, sizeof(*e));
        return;
    }
    if (e->finish && rep->type == REDIS_REPLY_INTEGER)
        claim_lost(e->key, (int)rep->integer);
    sent_free(e);
}

/* Make room in the ring: read the replies so far. */
static void sent_room(struct worker *w)
{
    if (w->nsent + 1 >= SENT_MAX)
        rds_sync(&w->r);
}

static void sent_push(struct worker *w, struct sent *e)
{
    w->sent[(w->shead + w->nsent) % SENT_MAX] = *e;
    w->nsent++;
}

/* Store a result and drop its claim, waiting for Redis: retried until it
 * lands (the result is only in this process's memory until then; the
 * supervisor's SIGKILL at the drain deadline is the only way out). */
static void finish_sync(struct worker *w, struct sent *e)
{
    int fin;
    while ((fin = qrun_finish(&w->r, w->inflight, e->msg, e->len, e->key, e->meta,
                              cfg.result_ttl, e->failed)) < 0)
        redis_trouble(w, "storing a result");
    redis_ok(w);
    claim_lost(e->key, fin);
    sent_free(e);
}

/* Store the result of the task just run (w->meta under w->key) without
 * waiting: Redis applies it before anything we send later. */
static void finish_async(struct worker *w, char *msg, size_t len)
{
    struct sent e = {1, w->failed, msg, len, xstrdup(w->key),
                     w->meta.len ? xstrdup(w->meta.data) : NULL};
    sent_room(w);
    if (qrun_send_finish(&w->r, w->inflight, e.msg, e.len, e.key, e.meta, cfg.result_ttl,
                         e.failed) != 0)
        w->redo[w->nredo++] = e;
    else
        sent_push(w, &e);
}

/* The limits of one run: the message's timelimit, else the task's
 * policy, else the runner's default (TASK_NONE in a policy: none). */
static double pick(double msg, double task, long dflt)
{
    if (msg > 0)
        return msg;
    if (task < 0)
        return 0;
    return task > 0 ? task : (double)dflt;
}

static long pick_long(long task, long dflt)
{
    return task < 0 ? 0 : task > 0 ? task : dflt;
}

/* The memory limit as an address-space limit (the normal build: the task's
 * allocation then fails with MemoryError instead of the worker being
 * killed). ASan reserves terabytes of address space for its shadow, so
 * there only the supervisor's RSS watch applies. */
static void set_memory_limit(struct worker *w, long mb)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)w;
    (void)mb;
#else
    if (mb == w->mem_limit_set)
        return;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0)
        return;
    rl.rlim_cur = RLIM_INFINITY;
    if (mb > 0) {
        long vm_pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f == NULL || fscanf(f, "%ld", &vm_pages) != 1)
            vm_pages = 0;
        if (f != NULL)
            fclose(f);
        rl.rlim_cur = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)mb << 20);
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
        rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_AS, &rl) == 0)
        w->mem_limit_set = mb;
#endif
}

/* Backoff before retry n (0-based): full jitter, random in [0, min(cap,
 * base * 2^n)], as Celery's retry_backoff with retry_jitter. */
static long backoff_ms(const struct task_def *t, int n)
{
    long base = pick_long(t->policy.backoff_ms, cfg.backoff_ms);
    long cap = pick_long(t->policy.backoff_max_ms, cfg.backoff_max_ms);
    double d = (double)base;
    for (int i = 0; i < n && d < (double)cap; i++)
        d *= 2;
    if (d > (double)cap)
        d = (double)cap;
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)getpid() * 2654435761u;
    return (long)(d * ((double)rnd / 4294967295.0));
}

static int is_revoked(struct worker *w, const char *id)
{
    redisReply *rep = rds_command(&w->r, "EXISTS " QRUN_REVOKED "%s", id);
    int yes = rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return yes;
}

/* Run one claimed message. Leaves the final meta in w->meta (empty: no
 * result to store) under the key w->key, and w->failed, for the finish that
 * follows; or sets w->settled when the message has left the in-flight list
 * already (deferred to its eta, or scheduled for a retry), with w->broken
 * if that could not reach Redis. STARTED is sent on the way unless the
 * claim stored it (flags). */
static double run_message(struct worker *w, const char *msg, size_t len, int flags)
{
    struct cel_msg m;
    char err[256];
    json_t *result = NULL;
    const char *status = CEL_SUCCESS;
    double t0 = clock_now(), work = -1;
    double now = (double)qrun_now_ms() / 1000.0;
    const struct task_def *t = NULL;
    w->failed = w->settled = 0;

    int parsed = cel_parse(&m, msg, len, err, sizeof(err)) == 0;
    log_set_request_id(m.id); /* the task's lines carry its id */
    snprintf(w->key, sizeof(w->key), CEL_META_PREFIX "%s", m.id ? m.id : "-");
    if (parsed && m.eta > now + 0.001) {
        /* due later: out of our hands until then */
        sent_room(w);
        if (qrun_send_defer(&w->r, w->inflight, msg, len, (long long)(m.eta * 1000)) != 0) {
            w->broken = 1;
        } else {
            struct sent e = {.finish = 2, .key = xstrdup(w->key)};
            sent_push(w, &e);
        }
        w->settled = 1;
        log_debug("Task %s[%s] deferred to its eta", m.task, m.id);
        log_set_request_id(NULL);
        cel_msg_free(&m);
        return 0;
    }
    if (parsed)
        metrics_task_begin();
    if (!parsed) {
        metrics_task_begin();
        log_err("rejected message %s: %s", m.id ? m.id : "(no id)", err);
        status = CEL_FAILURE; /* stored when it has an id; counted either way */
        if (m.id != NULL)
            result = cel_exc("ContentDisallowed", "kombu.exceptions", err);
    } else if (flags < 0 ? is_revoked(w, m.id) : (flags & QRUN_CLAIM_REVOKED) != 0) {
        log_info("Discarding revoked task: %s[%s]", m.task, m.id);
        result = cel_exc("TaskRevokedError", "celery.exceptions", "revoked");
        status = CEL_REVOKED;
    } else if (m.expires > 0 && now > m.expires) {
        log_info("Discarding expired task: %s[%s]", m.task, m.id);
        result = cel_exc("TaskRevokedError", "celery.exceptions", "expired");
        status = CEL_REVOKED;
    } else {
        t = task_find(m.task);
        json_t *arg[TASK_MAX_PARAMS];
        const char *where;
        struct task_ctx ctx = {.retries = m.retries};
        if (t == NULL || strcmp(t->name, m.task) != 0) {
            log_err("Received unregistered task of type '%s' (id %s)", m.task, m.id);
            result = cel_exc("NotRegistered", "celery.exceptions", m.task);
            status = CEL_FAILURE;
        } else if (task_bind(t, m.args, m.kwargs, arg, err, sizeof(err), &where) != 0) {
            result = cel_exc("TypeError", "builtins", err);
            status = CEL_FAILURE;
        } else {
            /* STARTED (Celery's task_track_started), with who runs it: stored
             * by the claim script, or (a message that came by BLMOVE, or had
             * an eta) sent now, its reply read with the next command. */
            if (!(flags > 0 && (flags & QRUN_CLAIM_STARTED)) && !m.ignore_result) {
                buf_clear(&w->meta);
                struct cel_state started = {.status = CEL_STARTED, .result = w->who,
                                            .task_id = m.id, .name = m.task,
                                            .owner = m.owner};
                cel_meta(&w->meta, &started);
                sent_room(w);
                if (qrun_send_state(&w->r, w->key, w->meta.data, cfg.result_ttl) != 0) {
                    log_warn("Task %s[%s]: STARTED not stored: %s", m.task, m.id, w->r.err);
                } else {
                    struct sent e = {0};
                    sent_push(w, &e);
                }
            }
            /* tell the supervisor what runs, with its limits */
            struct slot_state st = {.busy = 1, .started = clock_now()};
            snprintf(st.id, sizeof(st.id), "%s", m.id);
            snprintf(st.task, sizeof(st.task), "%s", t->name);
            st.hard = pick(m.time_limit, t->policy.time_limit, cfg.time_limit);
            st.soft = pick(m.soft_time_limit, t->policy.soft_time_limit, cfg.soft_time_limit);
            long mem_mb = pick_long(t->policy.max_memory_mb, cfg.max_memory_mb);
            st.mem_kb = mem_mb * 1024;
            st.base_rss_kb = mem_mb > 0 ? rss_kb(w->pid) : 0;
            set_memory_limit(w, mem_mb);
            task_interrupt_reset();
            slot_write(&slots[w->slot], &st);
            int rc = task_run(t, arg, &ctx);
            work = clock_now() - t0;
            struct slot_state idle = {0};
            slot_write(&slots[w->slot], &idle);
            if (rc == 0) {
                result = ctx.result;
            } else {
                if (strcmp(ctx.exc_type, "MemoryError") == 0 && mem_mb > 0) {
                    size_t n = strlen(ctx.message);
                    snprintf(ctx.message + n, sizeof(ctx.message) - n, " (memory limit %ld MB)",
                             mem_mb);
                }
                result = cel_exc(ctx.exc_type, ctx.exc_module, ctx.message);
                status = CEL_FAILURE;
                int max = t->policy.max_retries < 0    ? 0
                          : t->policy.max_retries > 0 ? t->policy.max_retries
                                                      : (int)cfg.max_retries;
                if (ctx.retry && m.retries < max) {
                    long after = ctx.retry_after_ms >= 0 ? ctx.retry_after_ms
                                                         : backoff_ms(t, m.retries);
                    long long eta = qrun_now_ms() + after;
                    struct buf next = {0};
                    cel_redeliver(&next, m.envelope, m.retries + 1, (double)eta / 1000.0);
                    buf_clear(&w->meta);
                    if (!m.ignore_result) {
                        struct cel_state rst = {.status = CEL_RETRY, .result = result,
                                                .task_id = m.id, .name = m.task,
                                                .owner = m.owner};
                        cel_meta(&w->meta, &rst);
                    }
                    sent_room(w);
                    if (qrun_send_retry(&w->r, w->inflight, msg, len, next.data, next.len, eta,
                                        w->key, w->meta.len ? w->meta.data : NULL,
                                        cfg.result_ttl) != 0) {
                        w->broken = 1;
                    } else {
                        struct sent e = {.finish = 2, .key = xstrdup(w->key)};
                        sent_push(w, &e);
                    }
                    buf_free(&next);
                    w->settled = 1;
                    status = CEL_RETRY;
                    log_info("Task %s[%s] retry: Retry in %.3fs: %s('%s')", m.task, m.id,
                             (double)after / 1000.0, ctx.exc_type, ctx.message);
                }
            }
        }
    }
    buf_clear(&w->meta);
    if (w->settled) {
        /* handled above */
    } else {
        if (m.id != NULL && !m.ignore_result) {
            struct cel_state st = {.status = status, .result = result, .task_id = m.id,
                                   .name = m.task, .owner = m.owner};
            cel_meta(&w->meta, &st);
        }
        w->failed = strcmp(status, CEL_FAILURE) == 0;
    }

    if (m.id != NULL && !w->settled && log_enabled(LOG_LVL_INFO)) {
        if (strcmp(status, CEL_SUCCESS) == 0) {
            struct buf r = {0};
            jsonfmt_dump(result, &r, JSON_COMPACT | JSON_ENCODE_ANY);
            log_info("Task %s[%s] succeeded in %.6fs: %.200s", m.task, m.id, clock_now() - t0,
                     r.data ? r.data : "?");
            buf_free(&r);
        } else if (strcmp(status, CEL_FAILURE) == 0) {
            const char *ty = json_string_value(json_object_get(result, "exc_type"));
            const char *ms =
                json_string_value(json_array_get(json_object_get(result, "exc_message"), 0));
            log_info("Task %s[%s] failed: %s('%s')", m.task ? m.task : "?", m.id, ty ? ty : "?",
                     ms ? ms : "");
        }
    }
    /* the task's own time: a retry's synchronous store is not the task's,
     * and counting it would shrink the claim batch for nothing */
    double took = work >= 0 ? work : clock_now() - t0;
    metrics_task_end(parsed ? m.task : NULL, status, took);
    log_set_request_id(NULL);
    json_decref(result);
    cel_msg_free(&m);
    return took;
}

static int worker_main(int slot)
{
    struct worker w = {.slot = slot, .pid = getpid()};
    char err[128];
    /* the STARTED result: who runs the task (Celery stores pid and hostname) */
    w.who = json_pack("{s:i,s:s}", "pid", (int)w.pid, "hostname", cfg.id);
    w.who_json = json_dumps(w.who, JSON_COMPACT);
    if (rds_init(&w.r, cfg.redis_url, 5000, err, sizeof(err)) != 0)
        return 1;
    metrics_open("queue-runner", "", MX_RUNNER); /* this worker's own counts */
    qrun_inflight_key(w.inflight, sizeof(w.inflight), cfg.id, slot);
    /* Priority-major, like kombu: every queue's band 0 before any band 3. */
    static const int bands[] = {0, 3, 6, 9};
    for (int b = 0; b < 4; b++) {
        for (int q = 0; q < cfg.nqueue; q++) {
            cel_queue_key(w.key_names[w.nkeys], sizeof(w.key_names[0]), cfg.queue[q], bands[b]);
            w.keys[w.nkeys] = w.key_names[w.nkeys];
            w.nkeys++;
        }
    }

    w.r.on_sent_reply = on_sent_reply;
    w.r.on_sent_arg = &w;
    w.k = 1;

    /* In a busy queue a worker claims up to k messages in one call (their
     * STARTED stored in the same step) and sends each result without
     * waiting for the reply; k doubles while tasks take under 1 ms and drops
     * to 1 after a slower one, so a long task never holds more than a
     * moment's worth of short ones behind it. */
    int dirty = 0; /* the connection broke: our in-flight list may hold
                    * messages whose claim reply was lost */
    double slowest = 0;
    while (!stopping || w.nredo > 0) {
        if (w.nredo > 0) {
            struct sent e = w.redo[--w.nredo];
            finish_sync(&w, &e);
            continue;
        }
        if (w.ibatch < w.nbatch) {
            char *msg = w.batch[w.ibatch];
            size_t len = w.blen[w.ibatch];
            int flags = w.bflags[w.ibatch++];
            double took = run_message(&w, msg, len, flags);
            if (took > slowest)
                slowest = took;
            if (w.settled) {
                free(msg);
            } else {
                finish_async(&w, msg, len);
            }
            if (w.r.c == NULL)
                dirty = 1;
            continue;
        }
        if (w.broken)
            dirty = 1; /* a defer or retry still in flight: put back below */
        if (dirty || w.r.c == NULL) {
            /* everything we sent is settled (redo) before we put back what
             * is still in flight: claims whose reply was lost */
            if (rds_sync(&w.r) != 0 || w.nredo > 0) {
                dirty = 1;
                if (w.nredo == 0)
                    redis_trouble(&w, "reconnecting");
                continue;
            }
            if (qrun_requeue(&w.r, w.inflight) < 0) {
                redis_trouble(&w, "putting back a claim");
                continue;
            }
            dirty = w.broken = 0;
        }
        /* adapt the batch to how long the last one's tasks took */
        if (w.nbatch == w.k && w.nbatch > 0 && w.bflags[0] >= 0 && slowest < 0.001)
            w.k = w.k * 2 > MAX_BATCH ? MAX_BATCH : w.k * 2;
        else if (slowest >= 0.001)
            w.k = 1;
        slowest = 0;
        w.nbatch = w.ibatch = 0;
        int n = qrun_claim(&w.r, w.inflight, w.keys, w.nkeys, w.who_json, cfg.result_ttl, w.k,
                           w.batch, w.blen, w.bflags);
        if (n < 0) {
            dirty = 1;
            if (!stopping)
                redis_trouble(&w, "claiming");
            continue;
        }
        if (n == 0 && !stopping) {
            n = qrun_claim_wait(&w.r, w.inflight, w.keys[0], IDLE_BLOCK, &w.batch[0],
                                &w.blen[0]);
            w.bflags[0] = -1;
            if (n < 0) {
                dirty = 1;
                if (!stopping)
                    redis_trouble(&w, "claiming");
                continue;
            }
        }
        redis_ok(&w);
        w.nbatch = n;
    }
    /* Settle what was sent; what was claimed and not run goes back below. */
    while (rds_sync(&w.r) == 0 && w.nredo > 0) {
        struct sent e = w.redo[--w.nredo];
        finish_sync(&w, &e);
    }
    for (int i = w.ibatch; i < w.nbatch; i++)
        free(w.batch[i]);
    /* A message claimed after the stop goes back now (the supervisor does
     * it instead if we die or cannot reach Redis: exit status 3). */
    int rc = w.nredo == 0 && qrun_requeue(&w.r, w.inflight) >= 0 ? 0 : 3;
    w.r.on_sent_reply = NULL;
    for (int i = 0; i < w.nredo; i++)
        sent_free(&w.redo[i]);
    for (int i = 0; i < w.nsent; i++)
        sent_free(&w.sent[(w.shead + i) % SENT_MAX]);
    json_decref(w.who);
    free(w.who_json);
    buf_free(&w.meta);
    rds_free(&w.r);
    return rc;
}

/* ---- supervisor ------------------------------------------------------ */

static pid_t *child;

static void on_soft_limit(int sig)
{
    (void)sig;
    task_interrupt();
}

/* Why the supervisor stopped a worker, or why it died: its task is then
 * settled with that result instead of being put back. */
enum end_reason { END_NONE, END_TIME, END_MEMORY, END_TERMINATE, END_CRASH };

struct watch {
    enum end_reason reason;
    char id[CEL_ID_MAX + 1];
    char task[128];
    double ran; /* seconds the task had run when it was stopped */
    char why[160];  /* the exception message */
    unsigned soft_gen; /* the task (slot gen) already sent its soft signal */
};
static struct watch *watch;

/* Enforce the running tasks' limits: soft time (SIGUSR1, once per task),
 * hard time and memory (SIGKILL; the task is settled as FAILURE when the
 * worker is reaped). */
static void watch_limits(void)
{
    double now = clock_now();
    for (int i = 0; i < cfg.concurrency; i++) {
        struct slot_state st;
        if (child[i] <= 0 || watch[i].reason != END_NONE || slot_read(&slots[i], &st) != 0 ||
            !st.busy)
            continue;
        double ran = now - st.started;
        long rss = st.mem_kb > 0 ? rss_kb(child[i]) : -1;
        if (st.hard > 0 && ran > st.hard) {
            watch[i].reason = END_TIME;
            snprintf(watch[i].why, sizeof(watch[i].why), "hard time limit (%gs) exceeded",
                     st.hard);
        } else if (rss >= 0 && rss - st.base_rss_kb > st.mem_kb) {
            watch[i].reason = END_MEMORY;
            snprintf(watch[i].why, sizeof(watch[i].why),
                     "memory limit (%ld MB) exceeded: %ld MB in use", st.mem_kb / 1024,
                     (rss - st.base_rss_kb) / 1024);
        } else {
            if (st.soft > 0 && ran > st.soft && watch[i].soft_gen != st.gen) {
                watch[i].soft_gen = st.gen;
                log_warn("Soft time limit (%gs) exceeded for task %s", st.soft, st.id);
                kill(child[i], SIGUSR1);
            }
            continue;
        }
        snprintf(watch[i].id, sizeof(watch[i].id), "%s", st.id);
        snprintf(watch[i].task, sizeof(watch[i].task), "%s", st.task);
        watch[i].ran = ran;
        log_err("Task %s: %s: stopping worker %d (pid %ld)", st.id, watch[i].why, i,
                (long)child[i]);
        kill(child[i], SIGKILL);
    }
}

/* Stop the worker running task id, if any (a revoke with terminate). */
static void terminate_task(const char *id)
{
    for (int i = 0; i < cfg.concurrency; i++) {
        struct slot_state st;
        if (child[i] <= 0 || watch[i].reason != END_NONE || slot_read(&slots[i], &st) != 0 ||
            !st.busy || strcmp(st.id, id) != 0)
            continue;
        watch[i].reason = END_TERMINATE;
        snprintf(watch[i].id, sizeof(watch[i].id), "%s", id);
        snprintf(watch[i].task, sizeof(watch[i].task), "%s", st.task);
        watch[i].ran = clock_now() - st.started;
        snprintf(watch[i].why, sizeof(watch[i].why), "terminated");
        log_warn("Terminating task %s (revoked): stopping worker %d (pid %ld)", id, i,
                 (long)child[i]);
        kill(child[i], SIGKILL);
    }
}

/* A worker died on its own while running a task (a crash: a signal other
 * than an outside SIGKILL, or a non-zero exit): that task would crash
 * again, so it ends FAILURE instead of going back (Celery's WorkerLostError).
 * An outside SIGKILL still puts it back: the task did nothing wrong. */
static void note_crash(int i, int st)
{
    struct slot_state ss;
    if (watch[i].reason != END_NONE || slot_read(&slots[i], &ss) != 0 || !ss.busy)
        return;
    if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) {
        snprintf(watch[i].why, sizeof(watch[i].why),
                 "Worker exited prematurely: signal %d (SIG%s)", WTERMSIG(st),
                 sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        snprintf(watch[i].why, sizeof(watch[i].why), "Worker exited prematurely: exitcode %d",
                 WEXITSTATUS(st));
    } else {
        return;
    }
    watch[i].reason = END_CRASH;
    snprintf(watch[i].id, sizeof(watch[i].id), "%s", ss.id);
    snprintf(watch[i].task, sizeof(watch[i].task), "%s", ss.task);
    watch[i].ran = clock_now() - ss.started;
}

/* Settle the task of a worker stopped for a reason (watch[i]), and put
 * its other claims back. Returns 0, -1 while Redis is unreachable. */
static int settle_slot(struct rds *r, int i)
{
    char inflight[256];
    qrun_inflight_key(inflight, sizeof(inflight), cfg.id, i);
    struct watch *wt = &watch[i];
    json_t *exc;
    const char *status = CEL_FAILURE;
    switch (wt->reason) {
    case END_TIME: exc = cel_exc("TimeLimitExceeded", "billiard.exceptions", wt->why); break;
    case END_MEMORY: exc = cel_exc("MemoryError", "builtins", wt->why); break;
    case END_TERMINATE:
        exc = cel_exc("TaskRevokedError", "celery.exceptions", wt->why);
        status = CEL_REVOKED;
        break;
    default: exc = cel_exc("WorkerLostError", "billiard.exceptions", wt->why); break;
    }
    struct buf meta = {0};
    /* the script adds the task's name and owner from its message */
    struct cel_state st = {.status = status, .result = exc, .task_id = wt->id};
    cel_meta(&meta, &st);
    json_decref(exc);
    long back = 0;
    int rc = qrun_fail_slot(r, inflight, wt->id, meta.data, cfg.result_ttl,
                            strcmp(status, CEL_FAILURE) == 0, &back);
    buf_free(&meta);
    if (rc < 0)
        return -1;
    if (rc != 3) {
        log_warn("Task %s ended %s: %s", wt->id, status, wt->why);
        /* counted here: the worker that would have counted it is gone */
        metrics_task_begin();
        metrics_task_end(wt->task, status, wt->ran);
    }
    if (back > 0)
        log_warn("worker %d: put %ld unfinished task(s) back in the queue", i, back);
    struct slot_state idle = {0};
    slot_write(&slots[i], &idle);
    wt->reason = END_NONE;
    return 0;
}

/* A control message on the pidbox channel: revokes are recorded (so they
 * hold for tasks claimed later, also when they came from Python) and, with
 * terminate, stop the task if one of our workers runs it. */
static void on_control(struct rds *r, const char *raw, size_t len)
{
    json_t *ids;
    int terminate;
    if (cel_control_parse(raw, len, &ids, &terminate) != 1)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        const char *id = json_string_value(v);
        if (qrun_note_revoke(r, id, terminate, cfg.result_ttl) != 0)
            log_warn("revoke of %s not stored: %s", id, r->err);
        log_info("Tasks flagged as revoked: %s", id);
        if (terminate)
            terminate_task(id);
    }
    json_decref(ids);
}

static pid_t spawn(int slot)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_err("fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        return pid;
    /* Die with the supervisor: a kill -9 of the runner must not leave
     * workers claiming tasks nobody watches. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole group; the supervisor decides */
    struct sigaction sa = {0};
    sa.sa_handler = on_soft_limit; /* no SA_RESTART: a sleeping task wakes (EINTR) */
    sigaction(SIGUSR1, &sa, NULL);
    free(child);
    child = NULL;
    free(watch);
    watch = NULL;
    int rc = worker_main(slot);
    free(cfg.redis_url);
    free(cfg.queues);
    for (int i = 0; i < cfg.nqueue; i++)
        free(cfg.queue[i]);
    _exit(rc);
}

/* Put back what a gone worker held. Returns 0, or -1 while Redis is
 * unreachable: the message stays safe in the in-flight list, the caller
 * tries again, and no new worker takes the slot (and its list) meanwhile. */
static int requeue_slot(struct rds *r, int slot)
{
    char key[256];
    qrun_inflight_key(key, sizeof(key), cfg.id, slot);
    long n = qrun_requeue(r, key);
    if (n < 0)
        return -1;
    if (n > 0)
        log_warn("worker %d: put %ld unfinished task(s) back in the queue", slot, n);
    return 0;
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [-c CONCURRENCY] [-Q QUEUE[,QUEUE...]] [-n NAME]\n", prog);
    return 2;
}

static int parse_queues(void)
{
    const char *p = cfg.queues;
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > CEL_QUEUE_NAME_MAX || cfg.nqueue == MAX_QUEUES)
            return -1;
        cfg.queue[cfg.nqueue++] = xstrndup(p, n);
        /* a name Redis holds for something else (cel_queue_valid) */
        if (!cel_queue_valid(cfg.queue[cfg.nqueue - 1]))
            return -1;
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

int main(int argc, char **argv)
{
    log_init("queue-runner", LOG_LVL_INFO);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const struct conf_entry conf[] = {
        {"REDIS_URL", CONF_STR, NULL, &cfg.redis_url, 0, 0, NULL, rds_url_check},
        {"LOG_LEVEL", CONF_ENUM, "INFO", &cfg.log_level, 0, 0, level_names, NULL},
        {"RESULT_EXPIRES", CONF_INT, "86400", &cfg.result_ttl, 1, 365L * 86400, NULL, NULL},
        {"RUNNER_LEASE", CONF_INT, "10", &cfg.lease, 2, 3600, NULL, NULL},
        {"RUNNER_DRAIN", CONF_INT, "30", &cfg.drain, 0, 86400, NULL, NULL},
        {"TASK_MAX_RETRIES", CONF_INT, "3", &cfg.max_retries, 0, 1000000, NULL, NULL},
        {"TASK_RETRY_BACKOFF_MS", CONF_INT, "1000", &cfg.backoff_ms, 0, 86400000L, NULL, NULL},
        {"TASK_RETRY_BACKOFF_MAX_MS", CONF_INT, "600000", &cfg.backoff_max_ms, 0, 86400000L,
         NULL, NULL},
        /* every task is bounded unless set to 0 (none) or its policy says */
        {"TASK_TIME_LIMIT", CONF_INT, "300", &cfg.time_limit, 0, 86400 * 7, NULL, NULL},
        {"TASK_SOFT_TIME_LIMIT", CONF_INT, "0", &cfg.soft_time_limit, 0, 86400 * 7, NULL, NULL},
        {"TASK_MAX_MEMORY_MB", CONF_INT, "512", &cfg.max_memory_mb, 0, 1L << 20, NULL, NULL},
        {"FAILED_MAX", CONF_INT, "10000", &cfg.failed_max, 1, 10000000, NULL, NULL},
        {"FAILED_AGE", CONF_INT, "604800", &cfg.failed_age, 60, 365L * 86400, NULL, NULL},
    };
    char err[256];
    if (conf_load(conf, sizeof(conf) / sizeof(conf[0]), err, sizeof(err)) != 0) {
        log_err("conf: %s", err);
        return 1;
    }
    log_init("queue-runner", level_values[cfg.log_level]);
    cfg.concurrency = ncpu > 0 ? ncpu : 1;
    const char *name = NULL;
    char *queues = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:Q:n:")) != -1) {
        switch (opt) {
        case 'c':
            if (conf_parse_long(optarg, 1, QRUN_MAX_SLOTS, &cfg.concurrency) != 0) {
                log_err("-c: expected a number of worker processes in 1..%d, got '%s'",
                        QRUN_MAX_SLOTS, optarg);
                return 2;
            }
            break;
        case 'Q': queues = optarg; break;
        case 'n': name = optarg; break;
        default: return usage(argv[0]);
        }
    }
    if (optind != argc)
        return usage(argv[0]);
    cfg.queues = xstrdup(queues ? queues : "celery");
    if (parse_queues() != 0) {
        log_err("-Q: expected 1..%d comma-separated queue names (1..%d of A-Z a-z 0-9 . _ -, "
                "not a name Redis or kombu keep for themselves, such as revoked or unacked), "
                "got '%s'",
                MAX_QUEUES, CEL_QUEUE_NAME_MAX, cfg.queues);
        return 2;
    }
    struct rds r;
    if (rds_init(&r, cfg.redis_url, 2000, err, sizeof(err)) != 0) {
        log_err("conf: REDIS_URL: %s", err);
        return 1;
    }
    if (gethostname(cfg.host, sizeof(cfg.host)) != 0)
        snprintf(cfg.host, sizeof(cfg.host), "localhost");
    cfg.host[sizeof(cfg.host) - 1] = '\0';
    char rnd[37];
    cel_uuid(rnd);
    snprintf(cfg.id, sizeof(cfg.id), "%.64s@%.64s:%ld:%.8s", name ? name : "runner", cfg.host,
             (long)getpid(), rnd);

    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Register before the first claim, so a runner killed right after
     * starting is still reaped. Redis may be down at start: wait for it. */
    long long started = qrun_now_ms();
    while (!stopping && qrun_heartbeat(&r, cfg.id, cfg.host, (long)getpid(), cfg.queues,
                                       (int)cfg.concurrency, started, cfg.lease) < 0) {
        log_warn("Redis: %s; retrying", r.err); /* never the URL: it may hold a password */
        rds_backoff_wait(&r);
    }

    qrun_failed_limits(cfg.failed_max, cfg.failed_age);
    /* the supervisor's own counts: tasks it ended (limits, crashes,
     * terminate); each worker opens its own file after the fork */
    metrics_open("queue-runner", "", MX_RUNNER);
    slots = mmap(NULL, (size_t)cfg.concurrency * sizeof(*slots), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) {
        log_err("mmap: %s", strerror(errno));
        return 1;
    }
    watch = xcalloc((size_t)cfg.concurrency, sizeof(*watch));
    /* revokes broadcast by our DELETE route and by Python's control API */
    struct rds sub;
    char pidbox[32];
    if (rds_init(&sub, cfg.redis_url, 2000, err, sizeof(err)) != 0) {
        log_err("conf: REDIS_URL: %s", err);
        return 1;
    }
    cel_pidbox_channel(pidbox, sizeof(pidbox), rds_db(&r));
    int subscribed = rds_subscribe(&sub, pidbox) == 0;
    child = xcalloc((size_t)cfg.concurrency, sizeof(pid_t));
    for (int i = 0; i < cfg.concurrency && !stopping; i++)
        child[i] = spawn(i);
    log_info("ready: runner=%s queues=%s concurrency=%ld lease=%lds time_limit=%lds "
             "memory_limit=%ldMB",
             cfg.id, cfg.queues, cfg.concurrency, cfg.lease, cfg.time_limit, cfg.max_memory_mb);

    double next_beat = 0, drain_deadline = 0, next_promote = 0, next_subscribe = 0;
    int killed = 0, down = 0;
    char *pending = xcalloc((size_t)cfg.concurrency, 1); /* slot's list to put back */
    for (;;) {
        if (stopping && drain_deadline == 0) {
            log_info("stopping: finishing running tasks (up to %lds)", cfg.drain);
            drain_deadline = clock_now() + (double)cfg.drain;
            for (int i = 0; i < cfg.concurrency; i++)
                if (child[i] > 0)
                    kill(child[i], SIGTERM);
        }
        if (stopping && !killed && clock_now() >= drain_deadline) {
            log_warn("drain deadline passed: stopping the workers still running; their tasks "
                     "go back to the queue");
            for (int i = 0; i < cfg.concurrency; i++)
                if (child[i] > 0)
                    kill(child[i], SIGKILL);
            killed = 1;
        }
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
            for (int i = 0; i < cfg.concurrency; i++) {
                if (child[i] != pid)
                    continue;
                child[i] = 0;
                note_crash(i, st);
                /* a clean exit left the list empty; anything else: put it back */
                pending[i] = !(stopping && WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
                             watch[i].reason != END_NONE;
                /* its counts join the totals; its file goes (bounded
                 * however often workers crash) */
                if (metrics_fold(NULL) < 0)
                    log_warn("metrics: folding worker %d's counts failed", i);
                if (stopping)
                    break;
                if (WIFSIGNALED(st))
                    log_warn("worker %d (pid %ld) killed by signal %d", i, (long)pid,
                             WTERMSIG(st));
                else
                    log_warn("worker %d (pid %ld) exited with %d", i, (long)pid,
                             WEXITSTATUS(st));
            }
        }
        /* A slot is reused only once its list is back in the queue. */
        int live = 0, unsettled = 0;
        for (int i = 0; i < cfg.concurrency; i++) {
            if (pending[i] && (watch[i].reason != END_NONE ? settle_slot(&r, i)
                                                            : requeue_slot(&r, i)) == 0) {
                pending[i] = 0;
                if (!stopping && (child[i] = spawn(i)) < 0) {
                    child[i] = 0;
                    pending[i] = 1; /* fork failed: try again next round */
                }
            }
            live += child[i] > 0;
            unsettled += pending[i];
        }
        if (stopping && live == 0) {
            if (unsettled == 0)
                break;
            if (clock_now() >= drain_deadline) {
                log_warn("Redis unreachable (%s): %d worker list(s) not put back; a live "
                         "runner will, %lds after this one's last heartbeat",
                         r.err, unsettled, cfg.lease);
                break;
            }
        }
        if (!stopping && clock_now() >= next_beat) {
            next_beat = clock_now() + 1.0;
            int hb = qrun_heartbeat(&r, cfg.id, cfg.host, (long)getpid(), cfg.queues,
                                    (int)cfg.concurrency, started, cfg.lease);
            if (hb < 0) {
                if (!down)
                    log_warn("heartbeat: Redis: %s; retrying", r.err);
                down = 1;
            } else {
                if (down)
                    log_info("heartbeat: Redis is back");
                down = 0;
                if (hb == 1)
                    log_warn("this runner had been given up as dead (no heartbeat for %lds); "
                             "results of tasks it was running are dropped, the tasks run again",
                             cfg.lease);
                long n = qrun_reap(&r, cfg.lease);
                if (n > 0)
                    log_warn("put back %ld task(s) of runner(s) with no heartbeat for %lds", n,
                             cfg.lease);
            }
        }
        watch_limits();
        if (!stopping && clock_now() >= next_promote) {
            next_promote = clock_now() + 0.25;
            long n = qrun_promote(&r);
            if (n > 0)
                log_debug("promoted %ld due task(s)", n);
        }
        if (!subscribed && clock_now() >= next_subscribe) {
            next_subscribe = clock_now() + 1.0;
            if ((subscribed = rds_subscribe(&sub, pidbox) == 0))
                log_info("listening for revokes on %s again", pidbox);
        }
        if (subscribed) {
            redisReply *msg;
            int got = rds_message(&sub, 50, &msg);
            if (got == 1) {
                on_control(&r, msg->element[2]->str, msg->element[2]->len);
                freeReplyObject(msg);
            } else if (got < 0) {
                log_warn("revoke channel: %s; resubscribing", sub.err);
                subscribed = 0;
            }
        } else {
            nap(0.05);
        }
    }
    rds_free(&sub);
    munmap(slots, (size_t)cfg.concurrency * sizeof(*slots));
    free(watch);
    free(pending);
    if (qrun_unregister(&r, cfg.id) != 0)
        log_warn("unregister: %s", r.err);
    log_info("stopped");
    free(child);
    rds_free(&r);
    free(cfg.redis_url);
    free(cfg.queues);
    for (int i = 0; i < cfg.nqueue; i++)
        free(cfg.queue[i]);
    return 0;
}
