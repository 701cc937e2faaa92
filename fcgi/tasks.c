/* /api/tasks: submit Celery tasks, read, revoke and re-run them.
 *
 *   POST /api/tasks/{task}   {"args": [...], "kwargs": {...}, "countdown": s,
 *                             "eta": ISO-8601, "expires": s or ISO-8601,
 *                             "queue": name, "priority": 0-9,
 *                             "time_limit": s, "soft_time_limit": s}
 *        -> 202 {"id","task","status":"PENDING"[,"eta"]}, Location: /api/tasks/{id}
 *        | 403 a task the caller may not run | 404 unknown task
 *        | 413 arguments over TASK_MAX_ARGS_BYTES | 422 bad body or arguments
 *        | 429 over the caller's quota, Retry-After | 503 Redis down or full
 *   GET  /api/tasks/{id}[?wait=N]
 *        -> 200 {"id","task","status","result","date_done"[,"error"]}
 *        | 404 unknown id, or not the caller's | 422 bad wait | 503 Redis down
 *   DELETE /api/tasks/{id}[?terminate=true]
 *        -> 202 {"id","status","terminate"} | 404 | 409 already finished | 422
 *   GET  /api/tasks?status=FAILURE[&queue=q][&owner=sub][&limit=N][&offset=M]
 *        -> 200 {"items":[...],"total","limit","offset"}, newest first
 *   POST /api/tasks/{id}/retry
 *        -> 202 {"id","task","status":"PENDING"} | 404 not in the caller's
 *           failed list | 429
 *
 * Every task has an owner: the token's sub that submitted it (carried in
 * its message and metas, qrun.h). Only its owner and admins read, wait on,
 * revoke or re-run it; anyone else gets the 404 an unknown id gets, and
 * the failed list shows a user their own tasks (admins: all, or one
 * owner's with ?owner=). Tasks that Python clients put in Redis have no
 * owner: admins only. Submits over HTTP are bounded per user (admins are
 * not): TASK_USER_RATE per second and TASK_USER_ACTIVE queued or running
 * at once, checked in the submit's own atomic step (429); arguments up to
 * TASK_MAX_ARGS_BYTES (413); queues a runner consumes or TASK_QUEUES names;
 * tasks the registry lets the caller run (403).
 *
 * ?wait=N (0..MAX_WAIT s) parks the request until the result is published
 * (aserve.h), so waiting clients hold no process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aserve.h"
#include "buf.h"
#include "celery.h"
#include "conf.h"
#include "jsonfmt.h"
#include "log.h"
#include "mem.h"
#include "qrun.h"
#include "qstat.h"
#include "redis.h"
#include "serve.h"
#include "task.h"

static struct {
    char *redis_url;
    char *queues; /* TASK_QUEUES: served without a live runner consuming them */
    long result_ttl;
    long max_wait;
    long failed_max, failed_age;
    long time_limit, soft_time_limit; /* the runners' defaults: the most a submit may ask */
    long user_rate, user_active;      /* per-user quota; 0: none */
    long max_args;                    /* bytes of [args, kwargs] as JSON */
    long lease;                       /* RUNNER_LEASE: which runners are live */
} cfg;

#define MAX_DELAY 31536000.0 /* countdown, eta and expires: a year at most */
#define MAX_LIST 200         /* items per page */
#define MAX_OFFSET 100000
#define MAX_QUEUES 100

static struct rds redis;
static int redis_ready;

static struct rds *db(void)
{
    if (!redis_ready) {
        char err[128];
        if (rds_init(&redis, cfg.redis_url, 1000, err, sizeof(err)) != 0)
            return NULL; /* checked at start by --check; cannot happen */
        redis_ready = 1;
    }
    return &redis;
}

static int unavailable(struct http_resp *rs)
{
    log_warn("Redis: %s", redis.err);
    return http_error(rs, 503, "Task queue unavailable, try again shortly");
}

static int bad_field(struct http_resp *rs, const char *field, const char *msg, const char *type)
{
    return http_error_422(rs, json_pack("[ss]", "body", field), msg, type);
}

/* 1 if q is one of the comma-separated names of list. */
static int listed(const char *list, const char *q)
{
    size_t n = strlen(q);
    for (const char *p = list; *p != '\0';) {
        size_t m = strcspn(p, ",");
        if (m == n && memcmp(p, q, n) == 0)
            return 1;
        p += m + (p[m] == ',');
    }
    return 0;
}

/* TASK_QUEUES: comma-separated names cel_queue_valid accepts. */
static int queues_check(const char *v, char *err, size_t errlen)
{
    for (const char *p = v; *p != '\0';) {
        size_t m = strcspn(p, ",");
        char q[CEL_QUEUE_NAME_MAX + 1];
        if (m == 0 || m > CEL_QUEUE_NAME_MAX) {
            snprintf(err, errlen, "expected comma-separated queue names of 1..%d characters",
                     CEL_QUEUE_NAME_MAX);
            return -1;
        }
        memcpy(q, p, m);
        q[m] = '\0';
        if (!cel_queue_valid(q)) {
            snprintf(err, errlen, "'%s' cannot name a queue (A-Z a-z 0-9 . _ - only, and not a "
                     "key Redis or kombu keep for themselves)", q);
            return -1;
        }
        p += m + (p[m] == ',');
    }
    return 0;
}

/* Whether a submit may name queue q: TASK_QUEUES lists it, or a live
 * runner consumes it (asked of Redis at most once a second per name we do
 * not list, so an unknown name costs a lookup, not a key). 1, 0, or -1
 * (Redis failed). */
static int queue_served(const char *q)
{
    if (listed(cfg.queues, q))
        return 1;
    static char last[CEL_QUEUE_NAME_MAX + 1];
    static double last_at;
    static int last_yes;
    double now = aserve_now();
    if (strcmp(last, q) == 0 && now - last_at < 1.0)
        return last_yes;
    int yes = qstat_consumed(db(), q, qrun_now_ms(), cfg.lease);
    if (yes < 0)
        return -1;
    snprintf(last, sizeof(last), "%s", q);
    last_at = now;
    last_yes = yes;
    return yes;
}

/* A time field: seconds from now (a number), or, where iso_ok, an ISO-8601
 * time. Sets *at (epoch seconds). Returns 0, or -1 with the 422 in rs. */
static int time_field(struct http_resp *rs, json_t *body, const char *field, int num_ok,
                      int iso_ok, double now, double *at)
{
    json_t *v = json_object_get(body, field);
    *at = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (num_ok && json_is_number(v)) {
        double d = json_number_value(v);
        int positive = strcmp(field, "expires") == 0;
        if (!isfinite(d) || d < 0 || (positive && d == 0) || d > MAX_DELAY) {
            bad_field(rs, field,
                      positive ? "Input should be a number of seconds from 0 (exclusive) to 31536000"
                               : "Input should be a number of seconds from 0 to 31536000",
                      "number_range");
            return -1;
        }
        *at = now + d;
        return 0;
    }
    if (iso_ok && json_is_string(v)) {
        if (cel_time_parse(json_string_value(v), at) != 0) {
            bad_field(rs, field, "Input should be a valid ISO-8601 datetime", "datetime_parsing");
            return -1;
        }
        if (*at > now + MAX_DELAY) {
            bad_field(rs, field, "Input should be at most a year from now", "datetime_range");
            return -1;
        }
        return 0;
    }
    bad_field(rs, field,
              iso_ok && num_ok ? "Input should be a number of seconds or an ISO-8601 datetime"
              : iso_ok         ? "Input should be an ISO-8601 datetime string"
                               : "Input should be a valid number",
              iso_ok ? "datetime_type" : "float_type");
    return -1;
}

/* A limit field: seconds in (0, max] (max 0: no bound but a year). */
static int limit_field(struct http_resp *rs, json_t *body, const char *field, double max,
                       double *out)
{
    json_t *v = json_object_get(body, field);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    double top = max > 0 ? max : MAX_DELAY;
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0 ||
        json_number_value(v) > top) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "Input should be a number of seconds from 0 (exclusive) to %g, this task's "
                 "longest",
                 top);
        bad_field(rs, field, msg, json_is_number(v) ? "less_than_equal" : "float_type");
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

/* The submission's options (countdown, eta, expires, queue, priority,
 * time limits up to the task's) from the body. Returns 0, or -1 with the
 * 422 (or a 503: Redis down while looking up a queue) in rs. */
static int submit_opts(struct http_resp *rs, json_t *body, const struct task_def *t,
                       struct qrun_opts *o)
{
    double now = (double)qrun_now_ms() / 1000.0, countdown_at, eta_at;
    memset(o, 0, sizeof(*o));
    if (body == NULL)
        return 0;
    if (json_object_get(body, "countdown") && json_object_get(body, "eta") &&
        !json_is_null(json_object_get(body, "countdown")) &&
        !json_is_null(json_object_get(body, "eta")))
        return bad_field(rs, "eta", "Give countdown or eta, not both", "value_error"), -1;
    if (time_field(rs, body, "countdown", 1, 0, now, &countdown_at) != 0 ||
        time_field(rs, body, "eta", 0, 1, now, &eta_at) != 0 ||
        time_field(rs, body, "expires", 1, 1, now, &o->expires) != 0)
        return -1;
    o->eta = countdown_at > 0 ? countdown_at : eta_at;
    if (o->eta > 0 && o->eta <= now)
        o->eta = 0; /* due already: straight to the queue */
    json_t *q = json_object_get(body, "queue");
    if (q != NULL && !json_is_null(q)) {
        if (!json_is_string(q))
            return bad_field(rs, "queue", "Input should be a valid string", "string_type"), -1;
        const char *name = json_string_value(q);
        size_t n = strlen(name);
        if (n == 0 || n > CEL_QUEUE_NAME_MAX ||
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
            return bad_field(rs, "queue",
                             "Input should be 1 to 100 characters of A-Z a-z 0-9 . _ -",
                             "string_pattern_mismatch"),
                   -1;
        int served = cel_queue_valid(name) ? queue_served(name) : 0;
        if (served < 0)
            return unavailable(rs), -1;
        if (!served)
            return bad_field(rs, "queue",
                             "Input should be a queue this stack serves: one a runner consumes "
                             "or TASK_QUEUES lists",
                             "enum"),
                   -1;
        o->queue = name;
    }
    json_t *p = json_object_get(body, "priority");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 9)
            return bad_field(rs, "priority", "Input should be an integer from 0 to 9",
                             "int_range"),
                   -1;
        o->priority = (int)json_integer_value(p);
    }
    /* a soft limit past the hard one would never fire */
    double hard = task_time_limit_max(t, (double)cfg.time_limit);
    if (limit_field(rs, body, "time_limit", hard, &o->time_limit) != 0 ||
        limit_field(rs, body, "soft_time_limit", o->time_limit > 0 ? o->time_limit : hard,
                    &o->soft_time_limit) != 0)
        return -1;
    return 0;
}

/* A refusal of the caller's quota: 429 with Retry-After (s, at least 1). */
static int over_quota(struct http_resp *rs, int why, long retry_ms)
{
    char after[24], detail[128];
    snprintf(after, sizeof(after), "%ld", retry_ms > 1000 ? (retry_ms + 999) / 1000 : 1);
    http_header_add(rs, "Retry-After", after);
    if (why == QRUN_RATE_LIMITED)
        snprintf(detail, sizeof(detail), "Too many task submissions: at most %ld per second",
                 cfg.user_rate);
    else
        snprintf(detail, sizeof(detail), "Too many tasks queued or running: at most %ld at once",
                 cfg.user_active);
    return http_error(rs, 429, detail);
}

/* A submit or re-run that Redis did not take: 503, "full" when it is out
 * of memory (nothing was written either way). */
static int not_taken(struct http_resp *rs, int rc)
{
    if (rc == QRUN_KEY_CLASH) {
        log_err("a key the submit writes holds another type (a Redis client wrote it): "
                "nothing written");
        return http_error(rs, 503, "Task queue unavailable, try again shortly");
    }
    if (rds_full(&redis)) {
        log_warn("Redis is full (maxmemory): %s", redis.err);
        http_header_add(rs, "Retry-After", "5");
        return http_error(rs, 503, "Task queue full, try again later");
    }
    return unavailable(rs);
}

/* The caller's quota, or none for an admin. */
static const struct qrun_quota *quota_of(const struct http_caller *c)
{
    static struct qrun_quota q;
    q.per_second = cfg.user_rate;
    q.max_active = cfg.user_active;
    return c->admin ? NULL : &q;
}

/* The caller, who must have a subject usable as an owner: 0, or -1 with
 * 401/403 in rs (a program run without the gateway's authorizer in front,
 * or a token whose sub holds characters our keys do not take). */
static int caller_or_401(struct http_req *rq, struct http_resp *rs, struct http_caller *c)
{
    *c = http_caller(rq);
    if (c->sub == NULL) {
        http_header_add(rs, "WWW-Authenticate", "Bearer realm=\"api\"");
        return http_error(rs, 401, "Not authenticated"), -1;
    }
    if (!cel_id_valid(c->sub))
        return http_error(rs, 403, "This token's subject cannot own tasks"), -1;
    return 0;
}

/* Bind args and kwargs to t's parameters: 0, or -1 with the 422 in rs. */
static int bind_or_422(const struct task_def *t, json_t *args, json_t *kwargs,
                       struct http_resp *rs)
{
    json_t *arg[TASK_MAX_PARAMS];
    char err[256];
    const char *where;
    if (task_bind(t, args, kwargs, arg, err, sizeof(err), &where) == 0)
        return 0;
    /* where: "args", or the keyword that is unexpected or missing */
    int kw = strcmp(where, "args") != 0;
    int missing = strstr(err, "missing") != NULL;
    json_t *loc = kw && !missing ? json_pack("[sss]", "body", "kwargs", where)
                                 : json_pack("[ss]", "body", "args");
    http_error_422(rs, loc, err,
                   missing ? "missing_argument"
                   : kw    ? "unexpected_keyword_argument"
                           : "too_many_arguments");
    return -1;
}

/* [args, kwargs] within TASK_MAX_ARGS_BYTES as compact JSON: 0, or -1 with
 * 413 in rs. */
static int args_size_or_413(json_t *args, json_t *kwargs, struct http_resp *rs)
{
    json_t *both = json_pack("[OO]", args, kwargs);
    struct buf b = {0};
    jsonfmt_dump(both, &b, JSON_COMPACT);
    json_decref(both);
    size_t n = b.len;
    buf_free(&b);
    if ((long)n <= cfg.max_args)
        return 0;
    char detail[128];
    snprintf(detail, sizeof(detail), "Task arguments too large: %zu bytes (limit %ld)", n,
             cfg.max_args);
    http_error(rs, 413, detail);
    return -1;
}

/* 202 for a task queued under id. */
static int accepted(struct http_resp *rs, const char *id, const char *task, double eta)
{
    char loc[512];
    snprintf(loc, sizeof(loc), "%.400s/%s", serve_cfg.prefix, id);
    json_t *out = json_pack("{s:s,s:s,s:s}", "id", id, "task", task, "status", CEL_PENDING);
    if (eta > 0) {
        char when[40];
        cel_time_format(eta, when);
        json_object_set_new(out, "eta", json_string(when));
    }
    http_json_new(rs, 202, out);
    http_header_add(rs, "Location", loc);
    return rs->status;
}

/* The body's args and kwargs (borrowed; [] and {} when absent): 0, or -1
 * with the 422 in rs. */
static int call_of(json_t *body, json_t **args, json_t **kwargs, struct http_resp *rs)
{
    *args = json_object_get(body, "args");
    *kwargs = json_object_get(body, "kwargs");
    if (*args != NULL && !json_is_array(*args))
        return http_error_422(rs, json_pack("[ss]", "body", "args"),
                              "Input should be a valid list", "list_type"),
               -1;
    if (*kwargs != NULL && !json_is_object(*kwargs))
        return http_error_422(rs, json_pack("[ss]", "body", "kwargs"),
                              "Input should be a valid dictionary", "dict_type"),
               -1;
    return 0;
}

static int submit(struct http_req *rq, struct http_resp *rs, const char *name)
{
    const struct task_def *t = task_find(name);
    if (t == NULL) {
        char detail[192];
        snprintf(detail, sizeof(detail), "Task not registered: %.128s", name);
        return http_error(rs, 404, detail);
    }
    struct http_caller c;
    if (caller_or_401(rq, rs, &c) != 0)
        return rs->status;
    if (!task_allowed(t, c.scope)) {
        char detail[192];
        snprintf(detail, sizeof(detail), "Not enough permissions: %s needs the %s scope",
                 t->name, t->scope);
        return http_error(rs, 403, detail);
    }
    static const char *const fields[] = {"args",     "kwargs",     "countdown",
                                         "eta",      "expires",    "queue",
                                         "priority", "time_limit", "soft_time_limit",
                                         NULL};
    json_t *body, *args = NULL, *kwargs = NULL;
    if (http_body_object_or_422(rq, fields, 0, &body, rs) != 0)
        return rs->status;
    json_t *empty_args = json_array(), *empty_kwargs = json_object();
    struct qrun_task task = {.name = t->name, .owner = c.sub, .ttl = cfg.result_ttl};
    char id[37];
    cel_uuid(id);
    task.id = id;
    if (call_of(body, &args, &kwargs, rs) == 0 &&
        bind_or_422(t, args ? args : empty_args, kwargs ? kwargs : empty_kwargs, rs) == 0 &&
        args_size_or_413(args ? args : empty_args, kwargs ? kwargs : empty_kwargs, rs) == 0 &&
        submit_opts(rs, body, t, &task.opts) == 0) {
        task.args = args;
        task.kwargs = kwargs;
        long retry_ms = 0;
        int rc = qrun_submit(db(), &task, quota_of(&c), &retry_ms);
        if (rc == QRUN_ADMITTED)
            accepted(rs, id, t->name, task.opts.eta);
        else if (rc == QRUN_RATE_LIMITED || rc == QRUN_TOO_MANY)
            over_quota(rs, rc, retry_ms);
        else
            not_taken(rs, rc);
    }
    json_decref(empty_args);
    json_decref(empty_kwargs);
    json_decref(body);
    return rs->status;
}

/* "ValueError: boom" from a stored exception result. */
static json_t *error_line(json_t *result, const char *status)
{
    const char *type = json_string_value(json_object_get(result, "exc_type"));
    json_t *m = json_array_get(json_object_get(result, "exc_message"), 0);
    char *mtext = json_is_string(m) ? NULL : json_dumps(m, JSON_ENCODE_ANY);
    char error[600];
    snprintf(error, sizeof(error), "%s: %s", type ? type : status,
             json_is_string(m) ? json_string_value(m)
             : mtext           ? mtext
                               : "");
    free(mtext);
    return json_string(error);
}

/* The wait parameter: a number of seconds in 0..max_wait. */
static int parse_wait(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v) || v < 0 || v > (double)cfg.max_wait)
        return -1;
    *out = v;
    return 0;
}

/* Whether caller c may see a task owned by owner ("" for nobody). */
static int may_see(const struct http_caller *c, const char *owner)
{
    return c->admin || (owner[0] != '\0' && strcmp(owner, c->sub) == 0);
}

static int status_of(struct http_req *rq, struct http_resp *rs, const char *id)
{
    struct http_caller c;
    if (caller_or_401(rq, rs, &c) != 0)
        return rs->status;
    if (!cel_id_valid(id))
        return http_error(rs, 404, "Task not found");
    double wait = 0;
    const char *w = http_query(rq, "wait");
    if (w != NULL && parse_wait(w, &wait) != 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Input should be a number of seconds from 0 to %ld",
                 cfg.max_wait);
        return http_error_422(rs, json_pack("[ss]", "query", "wait"), msg, "number_range");
    }
    double deadline = aserve_deadline(wait);
    json_t *meta;
    char owner[CEL_ID_MAX + 1];
    if (qrun_lookup(db(), id, &meta, owner, sizeof(owner)) != 0)
        return unavailable(rs);
    /* someone else's task is as unknown as one nobody submitted */
    if (meta == NULL || !may_see(&c, owner)) {
        json_decref(meta);
        return http_error(rs, 404, "Task not found");
    }
    const char *status = json_string_value(json_object_get(meta, "status"));
    if (status == NULL) {
        json_decref(meta);
        log_err("unreadable result for task %s", id);
        return http_error(rs, 500, "Unreadable task result");
    }
    if (!cel_state_ready(status) && wait > 0 && aserve_now() < deadline) {
        json_decref(meta);
        char key[sizeof(CEL_META_PREFIX) + CEL_ID_MAX];
        snprintf(key, sizeof(key), CEL_META_PREFIX "%s", id);
        return aserve_park(key);
    }
    json_t *result = json_object_get(meta, "result");
    json_t *out = json_pack("{s:s,s:O?,s:s,s:O?,s:O?}", "id", id, "task",
                            json_object_get(meta, "name"), "status", status, "result", result,
                            "date_done", json_object_get(meta, "date_done"));
    if (strcmp(status, CEL_FAILURE) == 0 || strcmp(status, CEL_REVOKED) == 0 ||
        strcmp(status, CEL_RETRY) == 0)
        json_object_set_new(out, "error", error_line(result, status));
    json_decref(meta);
    return http_json_new(rs, 200, out);
}

static int revoke(struct http_req *rq, struct http_resp *rs, const char *id)
{
    struct http_caller c;
    if (caller_or_401(rq, rs, &c) != 0)
        return rs->status;
    if (!cel_id_valid(id))
        return http_error(rs, 404, "Task not found");
    const char *t = http_query(rq, "terminate");
    int terminate = 0;
    if (t != NULL) {
        if (strcmp(t, "true") == 0 || strcmp(t, "1") == 0)
            terminate = 1;
        else if (strcmp(t, "false") != 0 && strcmp(t, "0") != 0)
            return http_error_422(rs, json_pack("[ss]", "query", "terminate"),
                                  "Input should be a valid boolean", "bool_parsing");
    }
    char state[32];
    struct qrun_revoke rv = {.id = id,
                             .caller = c.admin ? NULL : c.sub,
                             .terminate = terminate,
                             .ttl = cfg.result_ttl};
    if (qrun_revoke(db(), &rv, state, sizeof(state)) != 0)
        return unavailable(rs);
    if (strcmp(state, "NOTFOUND") == 0)
        return http_error(rs, 404, "Task not found");
    if (strcmp(state, CEL_SUCCESS) == 0 || strcmp(state, CEL_FAILURE) == 0) {
        char detail[64];
        snprintf(detail, sizeof(detail), "Task already finished: %s", state);
        return http_error(rs, 409, detail);
    }
    /* RUNNING: recorded, the run goes on (no terminate); it shows STARTED */
    return http_json_new(rs, 202,
                         json_pack("{s:s,s:s,s:b}", "id", id, "status",
                                   strcmp(state, "RUNNING") == 0 ? CEL_STARTED : CEL_REVOKED,
                                   "terminate", terminate));
}

static int rerun(struct http_req *rq, struct http_resp *rs, const char *id)
{
    struct http_caller c;
    if (caller_or_401(rq, rs, &c) != 0)
        return rs->status;
    char task[256];
    long retry_ms = 0;
    const struct qrun_quota *q = quota_of(&c);
    struct qrun_rerun rr = {.id = id, .caller = c.admin ? NULL : c.sub, .ttl = cfg.result_ttl};
    if (q != NULL)
        rr.quota = *q;
    int rc = qrun_rerun(db(), &rr, task, sizeof(task), &retry_ms);
    if (rc == QRUN_NOT_FOUND)
        return http_error(rs, 404, "No failed task with this id");
    if (rc == QRUN_RATE_LIMITED || rc == QRUN_TOO_MANY)
        return over_quota(rs, rc, retry_ms);
    if (rc != QRUN_ADMITTED)
        return not_taken(rs, rc);
    return accepted(rs, id, task, 0);
}

/* A query integer in [min, max] (default dflt), or -1 with the 422. */
static int query_long(struct http_req *rq, struct http_resp *rs, const char *name, long dflt,
                      long min, long max, long *out)
{
    const char *v = http_query(rq, name);
    *out = dflt;
    if (v == NULL)
        return 0;
    if (conf_parse_long(v, min, max, out) != 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Input should be an integer from %ld to %ld", min, max);
        http_error_422(rs, json_pack("[ss]", "query", name), msg, "int_range");
        return -1;
    }
    return 0;
}

/* GET /api/tasks?status=FAILURE: the failed lists (one per queue, bounded
 * by FAILED_MAX and FAILED_AGE), merged newest first, paged: the caller's
 * own tasks, or for an admin everyone's (or ?owner='s). */
static int list_failed(struct http_req *rq, struct http_resp *rs)
{
    struct http_caller c;
    if (caller_or_401(rq, rs, &c) != 0)
        return rs->status;
    const char *status = http_query(rq, "status");
    if (status == NULL || strcmp(status, CEL_FAILURE) != 0)
        return http_error_422(rs, json_pack("[ss]", "query", "status"),
                              "Input should be 'FAILURE' (the failed-task list)",
                              "literal_error");
    struct qrun_failed_query fq = {.max_count = cfg.failed_max, .max_age_s = cfg.failed_age};
    if (query_long(rq, rs, "limit", 50, 1, MAX_LIST, &fq.limit) != 0 ||
        query_long(rq, rs, "offset", 0, 0, MAX_OFFSET, &fq.offset) != 0)
        return rs->status;
    fq.queue = http_query(rq, "queue");
    if (fq.queue != NULL && !cel_queue_valid(fq.queue))
        return http_error_422(rs, json_pack("[ss]", "query", "queue"),
                              "Input should be 1 to 100 characters of A-Z a-z 0-9 . _ -",
                              "string_pattern_mismatch");
    const char *owner = http_query(rq, "owner");
    if (owner != NULL && !cel_id_valid(owner))
        return http_error_422(rs, json_pack("[ss]", "query", "owner"),
                              "Input should be a user id", "string_pattern_mismatch");
    /* ?owner= is an admin's filter; anyone else sees their own */
    fq.owner = c.admin ? owner : c.sub;
    struct qrun_failed_page page;
    if (qrun_failed_page(db(), &fq, &page) != 0)
        return unavailable(rs);
    json_t *items = json_array();
    for (size_t i = 0; i < page.n; i++) {
        const struct qrun_failed *f = &page.items[i];
        char at[40];
        cel_time_format((double)f->at_ms / 1000.0, at);
        json_t *result = json_object_get(f->meta, "result");
        json_t *who = json_object_get(f->meta, "owner");
        json_array_append_new(
            items, json_pack("{s:s,s:O?,s:s,s:s,s:o,s:O?,s:s,s:o}", "id", f->id, "task",
                             json_object_get(f->meta, "name"), "queue", f->queue, "status",
                             CEL_FAILURE, "error", error_line(result, CEL_FAILURE), "date_done",
                             json_object_get(f->meta, "date_done"), "failed_at", at, "owner",
                             json_is_string(who)  ? json_incref(who)
                             : fq.owner != NULL ? json_string(fq.owner)
                                                : json_null()));
    }
    json_int_t total = (json_int_t)page.total;
    qrun_failed_page_free(&page);
    return http_json_new(rs, 200,
                         json_pack("{s:o,s:I,s:i,s:i}", "items", items, "total", total, "limit",
                                   (int)fq.limit, "offset", (int)fq.offset));
}

static int tasks(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg == 0) {
        if (http_allow_or_405(rq, rs, "GET") != 0)
            return rs->status;
        return list_failed(rq, rs);
    }
    if (rq->seg[0][0] == '\0' || rq->nseg > 2)
        return http_error(rs, 404, NULL);
    if (rq->nseg == 2) {
        if (strcmp(rq->seg[1], "retry") != 0)
            return http_error(rs, 404, NULL);
        if (http_allow_or_405(rq, rs, "POST") != 0)
            return rs->status;
        return rerun(rq, rs, rq->seg[0]);
    }
    if (http_allow_or_405(rq, rs, "GET, POST, DELETE") != 0)
        return rs->status;
    if (strcmp(rq->method, "POST") == 0)
        return submit(rq, rs, rq->seg[0]);
    if (strcmp(rq->method, "DELETE") == 0)
        return revoke(rq, rs, rq->seg[0]);
    return status_of(rq, rs, rq->seg[0]);
}

int main(int argc, char **argv)
{
    const struct conf_entry conf[] = {
        {"REDIS_URL", CONF_STR, NULL, &cfg.redis_url, 0, 0, NULL, rds_url_check},
        {"RESULT_EXPIRES", CONF_INT, "86400", &cfg.result_ttl, 1, 365L * 86400, NULL, NULL},
        {"TASK_MAX_WAIT", CONF_INT, "30", &cfg.max_wait, 0, 3600, NULL, NULL},
        {"FAILED_MAX", CONF_INT, "10000", &cfg.failed_max, 1, 10000000, NULL, NULL},
        {"FAILED_AGE", CONF_INT, "604800", &cfg.failed_age, 60, 365L * 86400, NULL, NULL},
        /* queues submits may name besides those a live runner consumes */
        {"TASK_QUEUES", CONF_STR, "celery", &cfg.queues, 0, 0, NULL, queues_check},
        /* the runners' default limits: a submit may ask for less */
        {"TASK_TIME_LIMIT", CONF_INT, "300", &cfg.time_limit, 0, 86400 * 7, NULL, NULL},
        {"TASK_SOFT_TIME_LIMIT", CONF_INT, "0", &cfg.soft_time_limit, 0, 86400 * 7, NULL, NULL},
        /* per user (not admins): submits per second, tasks queued or
         * running at once; 0: none */
        {"TASK_USER_RATE", CONF_INT, "20", &cfg.user_rate, 0, 1000000, NULL, NULL},
        {"TASK_USER_ACTIVE", CONF_INT, "100", &cfg.user_active, 0, 10000000, NULL, NULL},
        {"TASK_MAX_ARGS_BYTES", CONF_INT, "65536", &cfg.max_args, 2, 1L << 30, NULL, NULL},
        {"RUNNER_LEASE", CONF_INT, "10", &cfg.lease, 2, 3600, NULL, NULL},
    };
    int rc = aserve_main(argc, argv, "tasks", conf, sizeof(conf) / sizeof(conf[0]), tasks,
                         &cfg.redis_url);
    if (redis_ready)
        rds_free(&redis);
    free(cfg.redis_url);
    free(cfg.queues);
    return rc;
}
