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
 * Settings (environment): REDIS_URL, LOG_LEVEL, RESULT_EXPIRES (s),
 * RUNNER_LEASE (s), RUNNER_DRAIN (s). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
    int finish; /* 0: a STARTED update */
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
    int nbatch, ibatch, batch_started, k;
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
                              cfg.result_ttl)) < 0)
        redis_trouble(w, "storing a result");
    redis_ok(w);
    claim_lost(e->key, fin);
    sent_free(e);
}

/* Store the result of the task just run (w->meta under w->key) without
 * waiting: Redis applies it before anything we send later. */
static void finish_async(struct worker *w, char *msg, size_t len)
{
    struct sent e = {1, msg, len, xstrdup(w->key), w->meta.len ? xstrdup(w->meta.data) : NULL};
    sent_room(w);
    if (qrun_send_finish(&w->r, w->inflight, e.msg, e.len, e.key, e.meta, cfg.result_ttl) != 0)
        w->redo[w->nredo++] = e;
    else
        sent_push(w, &e);
}

/* Run one claimed message: sends STARTED on the way (without waiting), and
 * leaves the final meta in w->meta (empty: no result to store) under the
 * key w->key, for the finish that follows. */
static double run_message(struct worker *w, const char *msg, size_t len, int started_stored)
{
    struct cel_msg m;
    char err[256];
    json_t *result = NULL;
    const char *status = CEL_SUCCESS;
    double t0 = clock_now();
    metrics_task_begin();

    int parsed = cel_parse(&m, msg, len, err, sizeof(err)) == 0;
    log_set_request_id(m.id); /* the task's lines carry its id */
    snprintf(w->key, sizeof(w->key), CEL_META_PREFIX "%s", m.id ? m.id : "-");
    if (!parsed) {
        log_err("rejected message %s: %s", m.id ? m.id : "(no id)", err);
        status = CEL_FAILURE; /* stored when it has an id; counted either way */
        if (m.id != NULL)
            result = cel_exc("ContentDisallowed", "kombu.exceptions", err);
    } else {
        const struct task_def *t = task_find(m.task);
        json_t *arg[TASK_MAX_PARAMS];
        const char *where;
        struct task_ctx ctx = {0};
        if (t == NULL || strcmp(t->name, m.task) != 0) {
            log_err("Received unregistered task of type '%s' (id %s)", m.task, m.id);
            result = cel_exc("NotRegistered", "celery.exceptions", m.task);
            status = CEL_FAILURE;
        } else if (task_bind(t, m.args, m.kwargs, arg, err, sizeof(err), &where) != 0) {
            result = cel_exc("TypeError", "builtins", err);
            status = CEL_FAILURE;
        } else {
            /* STARTED (Celery's task_track_started), with who runs it: stored
             * by the claim script, or (a message that came by BLMOVE) sent
             * now, its reply read with the next command. */
            if (!started_stored && !m.ignore_result) {
                buf_clear(&w->meta);
                cel_meta(&w->meta, CEL_STARTED, w->who, NULL, m.id, m.task);
                sent_room(w);
                if (qrun_send_state(&w->r, w->key, w->meta.data, cfg.result_ttl) != 0) {
                    log_warn("Task %s[%s]: STARTED not stored: %s", m.task, m.id, w->r.err);
                } else {
                    struct sent e = {0};
                    sent_push(w, &e);
                }
            }
            if (task_run(t, arg, &ctx) == 0) {
                result = ctx.result;
            } else {
                result = cel_exc(ctx.exc_type, ctx.exc_module, ctx.message);
                status = CEL_FAILURE;
            }
        }
    }
    buf_clear(&w->meta);
    if (m.id != NULL && !m.ignore_result)
        cel_meta(&w->meta, status, result, NULL, m.id, m.task);

    if (m.id != NULL && log_enabled(LOG_LVL_INFO)) {
        if (strcmp(status, CEL_SUCCESS) == 0) {
            struct buf r = {0};
            jsonfmt_dump(result, &r, JSON_COMPACT | JSON_ENCODE_ANY);
            log_info("Task %s[%s] succeeded in %.6fs: %.200s", m.task, m.id, clock_now() - t0,
                     r.data ? r.data : "?");
            buf_free(&r);
        } else {
            const char *ty = json_string_value(json_object_get(result, "exc_type"));
            const char *ms =
                json_string_value(json_array_get(json_object_get(result, "exc_message"), 0));
            log_info("Task %s[%s] failed: %s('%s')", m.task ? m.task : "?", m.id, ty ? ty : "?",
                     ms ? ms : "");
        }
    }
    double took = clock_now() - t0;
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
            size_t len = w.blen[w.ibatch++];
            double took = run_message(&w, msg, len, w.batch_started);
            if (took > slowest)
                slowest = took;
            finish_async(&w, msg, len);
            if (w.r.c == NULL)
                dirty = 1;
            continue;
        }
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
            dirty = 0;
        }
        /* adapt the batch to how long the last one's tasks took */
        if (w.nbatch == w.k && w.batch_started && slowest < 0.001)
            w.k = w.k * 2 > MAX_BATCH ? MAX_BATCH : w.k * 2;
        else if (slowest >= 0.001)
            w.k = 1;
        slowest = 0;
        w.nbatch = w.ibatch = 0;
        int n = qrun_claim(&w.r, w.inflight, w.keys, w.nkeys, w.who_json, cfg.result_ttl, w.k,
                           w.batch, w.blen);
        if (n < 0) {
            dirty = 1;
            if (!stopping)
                redis_trouble(&w, "claiming");
            continue;
        }
        w.batch_started = 1;
        if (n == 0 && !stopping) {
            n = qrun_claim_wait(&w.r, w.inflight, w.keys[0], IDLE_BLOCK, &w.batch[0],
                                &w.blen[0]);
            w.batch_started = 0;
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
    free(child);
    child = NULL;
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
        if (n == 0 || n > 100 || cfg.nqueue == MAX_QUEUES)
            return -1;
        cfg.queue[cfg.nqueue++] = xstrndup(p, n);
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
        log_err("-Q: expected 1..%d comma-separated queue names, got '%s'", MAX_QUEUES,
                cfg.queues);
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

    child = xcalloc((size_t)cfg.concurrency, sizeof(pid_t));
    for (int i = 0; i < cfg.concurrency && !stopping; i++)
        child[i] = spawn(i);
    log_info("ready: runner=%s queues=%s concurrency=%ld lease=%lds", cfg.id, cfg.queues,
             cfg.concurrency, cfg.lease);

    double next_beat = 0, drain_deadline = 0;
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
                /* a clean exit left the list empty; anything else: put it back */
                pending[i] = !(stopping && WIFEXITED(st) && WEXITSTATUS(st) == 0);
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
            if (pending[i] && requeue_slot(&r, i) == 0) {
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
        nap(0.05);
    }
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
