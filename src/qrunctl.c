/* qrunctl: the queue's periodic chores, one run each, for cron (cron/) or
 * by hand.
 *
 *   qrunctl reap [--lease S]        put back the in-flight tasks of runners
 *                                   silent for S s (RUNNER_LEASE, 10)
 *   qrunctl promote                 move due delayed messages to their queues
 *   qrunctl purge [--max-age S] [--max-count N]
 *                                   trim the failed lists (FAILED_AGE 604800,
 *                                   FAILED_MAX 10000)
 *   qrunctl beat SCHEDULE [--now EPOCH_SECONDS]
 *                                   enqueue the periodic tasks due now, each
 *                                   slot once across every host (lib/beat.h)
 *   qrunctl alive [--max-age S]     exit 0 when a runner of this host
 *                                   (gethostname) has beaten within S s
 *                                   (RUNNER_LEASE): a container's healthcheck
 *
 * Prints one summary line on stdout; errors and each enqueued task go to the
 * log (stderr). Settings (environment): REDIS_URL (required), LOG_LEVEL,
 * RESULT_EXPIRES (s, the PENDING meta of enqueued tasks), RUNNER_LEASE,
 * FAILED_AGE, FAILED_MAX. Exit: 0 done, 1 error (Redis, a bad schedule: then
 * nothing is enqueued; alive: no live runner here), 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "beat.h"
#include "celery.h"
#include "conf.h"
#include "log.h"
#include "qrun.h"
#include "qstat.h"
#include "redis.h"

static struct {
    char *redis_url;
    int log_level;
    long result_ttl, lease, failed_age, failed_max;
} cfg;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", NULL};
static const enum log_level level_values[] = {LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARNING,
                                              LOG_LVL_ERROR};

static int usage(void)
{
    fprintf(stderr, "usage: qrunctl reap [--lease S]\n"
                    "       qrunctl promote\n"
                    "       qrunctl purge [--max-age S] [--max-count N]\n"
                    "       qrunctl beat SCHEDULE_FILE [--now EPOCH_SECONDS]\n"
                    "       qrunctl alive [--max-age S]\n");
    return 2;
}

/* Options given as "--name value" pairs after the subcommand's operands;
 * each known name at most once. Returns 0, or -1 (a usage error, reported). */
struct opt {
    const char *name;
    long min, max;
    long *val;
    int set;
};

static int parse_opts(int argc, char **argv, struct opt *opts, int nopts)
{
    for (int i = 0; i < argc; i += 2) {
        struct opt *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strcmp(argv[i], opts[k].name) == 0)
                o = &opts[k];
        if (o == NULL || o->set) {
            fprintf(stderr, "qrunctl: unexpected '%s'\n", argv[i]);
            return -1;
        }
        if (i + 1 >= argc || conf_parse_long(argv[i + 1], o->min, o->max, o->val) != 0) {
            fprintf(stderr, "qrunctl: %s: expected an integer in %ld..%ld\n", o->name, o->min,
                    o->max);
            return -1;
        }
        o->set = 1;
    }
    return 0;
}

static int reap(struct rds *r)
{
    long n = qrun_reap(r, cfg.lease);
    if (n < 0) {
        log_err("reap: Redis: %s", r->err);
        return 1;
    }
    if (n > 0)
        log_warn("reap: put back %ld task(s) of runner(s) with no heartbeat for %lds", n,
                 cfg.lease);
    printf("reap: %ld task(s) put back (lease %lds)\n", n, cfg.lease);
    return 0;
}

static int promote(struct rds *r)
{
    /* one call moves at most 1000 per queue: go on while it finds some,
     * bounded so a flood of due messages cannot keep us here for ever */
    long total = 0, n = 1;
    for (int round = 0; n > 0 && round < 1000; round++) {
        n = qrun_promote(r);
        if (n < 0) {
            log_err("promote: Redis: %s", r->err);
            return 1;
        }
        total += n;
    }
    printf("promote: %ld due message(s) moved to their queues\n", total);
    return 0;
}

static int purge(struct rds *r, long max_age, long max_count)
{
    long n = qrun_purge(r, max_age, max_count);
    if (n < 0) {
        log_err("purge: Redis: %s", r->err);
        return 1;
    }
    printf("purge: %ld failed entr%s removed (max-age %lds, max-count %ld)\n", n,
           n == 1 ? "y" : "ies", max_age, max_count);
    return 0;
}

/* Enqueue every entry due at `now` whose slot no host has taken yet. The
 * whole file is checked before anything is sent: a bad line sends nothing. */
static int beat(struct rds *r, const char *path, long long now)
{
    struct beat_schedule s;
    char err[512];
    if (beat_load(&s, path, err, sizeof(err)) != 0) {
        log_err("beat: %s; nothing enqueued", err);
        return 1;
    }
    long sent = 0, taken = 0, idle = 0, failed = 0;
    for (size_t i = 0; i < s.n; i++) {
        const struct beat_entry *e = &s.entries[i];
        long long slot;
        long ttl;
        char key[sizeof("qrun:beat::") + BEAT_NAME_MAX + 24], id[37];
        if (!beat_due(e, now, &slot, &ttl)) {
            idle++;
            continue;
        }
        if (beat_slot_key(key, sizeof(key), e->name, slot) != 0) { /* cannot: sized above */
            failed++;
            continue;
        }
        cel_uuid(id);
        struct qrun_task t = {.name = e->task,
                              .id = id,
                              .args = e->args,
                              .kwargs = e->kwargs,
                              .opts = {.queue = e->queue, .priority = e->priority},
                              .ttl = cfg.result_ttl};
        int rc = qrun_submit_once(r, key, ttl, &t);
        if (rc < 0) {
            log_err("beat: %s: Redis: %s", e->name, r->err);
            failed++;
        } else if (rc == 0) {
            taken++;
        } else {
            log_info("beat: %s: sent %s[%s] to %s (slot %lld)", e->name, e->task, id, e->queue,
                     slot);
            sent++;
        }
    }
    printf("beat: %zu entr%s: %ld sent, %ld already sent, %ld not due, %ld failed\n", s.n,
           s.n == 1 ? "y" : "ies", sent, taken, idle, failed);
    beat_free(&s);
    return failed ? 1 : 0;
}

/* Whether a runner registered from this host (its hash's host, as the
 * runner took it from gethostname) has beaten within max_age s: a
 * container's healthcheck, where each runner container has a host name of
 * its own. The live runners are qstat's (the newest QSTAT_MAX_RUNNERS
 * heartbeats; a runner beats every second). 0 yes, 1 no or Redis trouble. */
static int alive(struct rds *r, long max_age)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost"); /* as the runner does */
    host[sizeof(host) - 1] = '\0';
    long long now = qrun_now_ms();
    struct qstat s;
    if (qstat_read(r, now, max_age, 0, &s) != 0) {
        log_err("alive: Redis: %s", r->err);
        qstat_free(&s);
        return 1;
    }
    int rc = 1;
    for (size_t i = 0; i < s.nrunners && rc != 0; i++) {
        const struct qstat_runner *k = &s.runners[i];
        if (strcmp(k->host, host) != 0)
            continue;
        printf("alive: %s, heartbeat %.1fs ago\n", k->id,
               now > k->heartbeat_ms ? (double)(now - k->heartbeat_ms) / 1000.0 : 0.0);
        rc = 0;
    }
    if (rc != 0)
        printf("alive: no runner on %s with a heartbeat in the last %lds\n", host, max_age);
    qstat_free(&s);
    return rc;
}

int main(int argc, char **argv)
{
    log_init("qrunctl", LOG_LVL_INFO);
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    long max_age = -1, max_count = -1, lease = -1, now = -1;
    struct opt reap_opts[] = {{"--lease", 2, 3600, &lease, 0}};
    struct opt purge_opts[] = {{"--max-age", 60, 365L * 86400, &max_age, 0},
                               {"--max-count", 1, 10000000, &max_count, 0}};
    /* up to the year 5138: far enough, and no overflow in ms */
    struct opt beat_opts[] = {{"--now", 0, 99999999999L, &now, 0}};
    long alive_age = -1;
    struct opt alive_opts[] = {{"--max-age", 1, 3600, &alive_age, 0}};
    int bad;
    if (strcmp(cmd, "reap") == 0)
        bad = parse_opts(argc - 2, argv + 2, reap_opts, 1);
    else if (strcmp(cmd, "promote") == 0)
        bad = argc != 2;
    else if (strcmp(cmd, "purge") == 0)
        bad = parse_opts(argc - 2, argv + 2, purge_opts, 2);
    else if (strcmp(cmd, "beat") == 0)
        bad = argc < 3 || argv[2][0] == '-' || parse_opts(argc - 3, argv + 3, beat_opts, 1);
    else if (strcmp(cmd, "alive") == 0)
        bad = parse_opts(argc - 2, argv + 2, alive_opts, 1);
    else
        bad = 1;
    if (bad)
        return usage();

    const struct conf_entry conf[] = {
        {"REDIS_URL", CONF_STR, NULL, &cfg.redis_url, 0, 0, NULL, rds_url_check},
        {"LOG_LEVEL", CONF_ENUM, "INFO", &cfg.log_level, 0, 0, level_names, NULL},
        {"RESULT_EXPIRES", CONF_INT, "86400", &cfg.result_ttl, 1, 365L * 86400, NULL, NULL},
        {"RUNNER_LEASE", CONF_INT, "10", &cfg.lease, 2, 3600, NULL, NULL},
        {"FAILED_AGE", CONF_INT, "604800", &cfg.failed_age, 60, 365L * 86400, NULL, NULL},
        {"FAILED_MAX", CONF_INT, "10000", &cfg.failed_max, 1, 10000000, NULL, NULL},
    };
    char err[256];
    if (conf_load(conf, sizeof(conf) / sizeof(conf[0]), err, sizeof(err)) != 0) {
        log_err("conf: %s", err);
        return 1;
    }
    log_init("qrunctl", level_values[cfg.log_level]);
    if (lease >= 0)
        cfg.lease = lease;
    struct rds r;
    if (rds_init(&r, cfg.redis_url, 5000, err, sizeof(err)) != 0) {
        log_err("conf: REDIS_URL: %s", err);
        free(cfg.redis_url);
        return 1;
    }
    int rc;
    if (strcmp(cmd, "reap") == 0)
        rc = reap(&r);
    else if (strcmp(cmd, "promote") == 0)
        rc = promote(&r);
    else if (strcmp(cmd, "purge") == 0)
        rc = purge(&r, max_age >= 0 ? max_age : cfg.failed_age,
                   max_count >= 0 ? max_count : cfg.failed_max);
    else if (strcmp(cmd, "alive") == 0)
        rc = alive(&r, alive_age >= 0 ? alive_age : cfg.lease);
    else
        rc = beat(&r, argv[2], now >= 0 ? (long long)now : (long long)time(NULL));
    rds_free(&r);
    free(cfg.redis_url);
    return rc;
}
