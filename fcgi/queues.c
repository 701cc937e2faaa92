/* /api/queues: the task queue at a glance (lib/qstat.h reads it).
 *
 *   GET /api/queues
 *     -> 200 {"queues":[{"name","depth","oldest_age_seconds","in_flight","scheduled",
 *                        "failed"}, ...],
 *             "runners":[{"id","host","pid","queues":[...],"concurrency",
 *                         "heartbeat_age_seconds","started"}, ...]}
 *        (+ "truncated":true when a cap of lib/qstat.h left something out)
 *      | 404 anything below /api/queues | 405 not GET/HEAD | 503 Redis down
 *
 * Queues: celery, every name in qrun:queues and every queue a live runner
 * consumes, by name. oldest_age_seconds is null for an empty queue.
 * Runners: those whose heartbeat is within RUNNER_LEASE, by id; started is
 * an ISO-8601 UTC time ("2026-11-27T12:00:00.123+00:00"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "qrun.h"
#include "qstat.h"
#include "redis.h"
#include "serve.h"

static struct {
    char *redis_url;
    long lease;
} cfg;

static struct rds redis;
static int redis_ready;

/* ms since epoch as ISO-8601 UTC with milliseconds, or JSON null. */
static json_t *iso_ms(long long ms)
{
    if (ms < 0)
        return json_null();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char out[48];
    if (gmtime_r(&t, &tm) == NULL)
        return json_null();
    size_t n = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, sizeof(out) - n, ".%03d+00:00", (int)(ms % 1000));
    return json_string(out);
}

/* A count we know, or null (a runner hash that lacks the field). */
static json_t *known(long long v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *queue_json(const struct qstat_queue *q)
{
    json_t *age = q->oldest_ms < 0 ? json_null() : json_real((double)q->oldest_ms / 1000.0);
    return json_pack("{s:s,s:I,s:o,s:I,s:I,s:I}", "name", q->name, "depth",
                     (json_int_t)q->depth, "oldest_age_seconds", age, "in_flight",
                     (json_int_t)q->in_flight, "scheduled", (json_int_t)q->scheduled,
                     "failed", (json_int_t)q->failed);
}

static json_t *runner_json(const struct qstat_runner *w, long long now_ms)
{
    json_t *queues = json_array();
    for (const char *p = w->queues; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n > 0)
            json_array_append_new(queues, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    long long age = now_ms > w->heartbeat_ms ? now_ms - w->heartbeat_ms : 0; /* clock skew */
    return json_pack("{s:s,s:o,s:o,s:o,s:o,s:f,s:o}", "id", w->id, "host",
                     w->host[0] ? json_string(w->host) : json_null(), "pid", known(w->pid),
                     "queues", queues, "concurrency", known(w->concurrency),
                     "heartbeat_age_seconds", (double)age / 1000.0, "started",
                     iso_ms(w->started_ms));
}

/* GET /api/queues */
static int queues(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg != 0)
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET") != 0)
        return rs->status;
    if (!redis_ready) {
        char err[128];
        if (rds_init(&redis, cfg.redis_url, 1000, err, sizeof(err)) != 0)
            return http_error(rs, 500, NULL); /* checked at start by --check */
        redis_ready = 1;
    }
    long long now_ms = qrun_now_ms();
    struct qstat s;
    if (qstat_read(&redis, now_ms, cfg.lease, QSTAT_KNOWN, &s) != 0) {
        qstat_free(&s);
        log_warn("Redis: %s", redis.err);
        return http_error(rs, 503, "Task queue unavailable, try again shortly");
    }
    json_t *qs = json_array(), *ws = json_array();
    for (size_t i = 0; i < s.nqueues; i++)
        json_array_append_new(qs, queue_json(&s.queues[i]));
    for (size_t i = 0; i < s.nrunners; i++)
        json_array_append_new(ws, runner_json(&s.runners[i], now_ms));
    json_t *out = json_pack("{s:o,s:o}", "queues", qs, "runners", ws);
    if (s.truncated && out != NULL)
        json_object_set_new(out, "truncated", json_true());
    qstat_free(&s);
    return http_json_new(rs, 200, out);
}

int main(int argc, char **argv)
{
    const struct conf_entry conf[] = {
        {"REDIS_URL", CONF_STR, NULL, &cfg.redis_url, 0, 0, NULL, rds_url_check},
        {"RUNNER_LEASE", CONF_INT, "10", &cfg.lease, 1, 86400, NULL, NULL},
    };
    int rc = serve_main(argc, argv, "queues", conf, sizeof(conf) / sizeof(conf[0]), queues);
    if (redis_ready)
        rds_free(&redis);
    free(cfg.redis_url);
    return rc;
}
