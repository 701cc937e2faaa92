/* /api/tasks: submit Celery tasks, read, revoke and re-run them.
 *
 *   POST /api/tasks/{task}   {"args": [...], "kwargs": {...}, "countdown": s,
 *                             "eta": ISO-8601, "expires": s or ISO-8601,
 *                             "queue": name, "priority": 0-9}
 *        -> 202 {"id","task","status":"PENDING"[,"eta"]}, Location: /api/tasks/{id}
 *        | 404 unknown task | 422 bad body or arguments | 503 Redis down
 *   GET  /api/tasks/{id}[?wait=N]
 *        -> 200 {"id","task","status","result","date_done"[,"error"]}
 *        | 404 unknown id | 422 bad wait | 503 Redis down
 *   DELETE /api/tasks/{id}[?terminate=true]
 *        -> 202 {"id","status","terminate"} | 409 already finished | 422
 *   GET  /api/tasks?status=FAILURE[&queue=q][&limit=N][&offset=M]
 *        -> 200 {"items":[...],"total","limit","offset"}, newest first
 *   POST /api/tasks/{id}/retry
 *        -> 202 {"id","task","status":"PENDING"} | 404 not in a failed list
 *
 * ?wait=N (0..MAX_WAIT s) parks the request until the result is published
 * (aserve.h), so waiting clients hold no process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aserve.h"
#include "celery.h"
#include "conf.h"
#include "log.h"
#include "mem.h"
#include "qrun.h"
#include "redis.h"
#include "serve.h"
#include "task.h"

static struct {
    char *redis_url;
    long result_ttl;
    long max_wait;
    long failed_max, failed_age;
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

/* A queue name we route: 1..100 of [A-Za-z0-9._-] (our own keys excluded). */
static int queue_name_ok(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > 100 || strncmp(q, "qrun:", 5) == 0)
        return 0;
    return strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
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

/* The submission's options (countdown, eta, expires, queue, priority) from
 * the body. Returns 0, or -1 with the 422 in rs. */
static int submit_opts(struct http_resp *rs, json_t *body, struct qrun_opts *o)
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
        if (!queue_name_ok(json_string_value(q)))
            return bad_field(rs, "queue",
                             "Input should be 1 to 100 characters of A-Z a-z 0-9 . _ -",
                             "string_pattern_mismatch"),
                   -1;
        o->queue = json_string_value(q);
    }
    json_t *p = json_object_get(body, "priority");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_integer(p) || json_integer_value(p) < 0 || json_integer_value(p) > 9)
            return bad_field(rs, "priority", "Input should be an integer from 0 to 9",
                             "int_range"),
                   -1;
        o->priority = (int)json_integer_value(p);
    }
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
    static const char *const fields[] = {"args",  "kwargs", "countdown", "eta",
                                         "expires", "queue", "priority", NULL};
    json_t *body, *args = NULL, *kwargs = NULL;
    if (http_body_object_or_422(rq, fields, 0, &body, rs) != 0)
        return rs->status;
    struct qrun_opts opts;
    if (body != NULL) {
        args = json_object_get(body, "args");
        kwargs = json_object_get(body, "kwargs");
        if (args != NULL && !json_is_array(args)) {
            json_decref(body);
            return http_error_422(rs, json_pack("[ss]", "body", "args"),
                                  "Input should be a valid list", "list_type");
        }
        if (kwargs != NULL && !json_is_object(kwargs)) {
            json_decref(body);
            return http_error_422(rs, json_pack("[ss]", "body", "kwargs"),
                                  "Input should be a valid dictionary", "dict_type");
        }
    }
    if (submit_opts(rs, body, &opts) != 0) {
        json_decref(body);
        return rs->status;
    }
    json_t *no_args = json_array(), *no_kwargs = json_object();
    if (args == NULL)
        args = no_args;
    if (kwargs == NULL)
        kwargs = no_kwargs;
    json_t *arg[TASK_MAX_PARAMS];
    char err[256];
    const char *where;
    if (task_bind(t, args, kwargs, arg, err, sizeof(err), &where) != 0) {
        /* where: "args", or the keyword that is unexpected or missing */
        int kw = strcmp(where, "args") != 0;
        int missing = strstr(err, "missing") != NULL;
        json_t *loc = kw && !missing ? json_pack("[sss]", "body", "kwargs", where)
                                     : json_pack("[ss]", "body", "args");
        http_error_422(rs, loc, err,
                       missing ? "missing_argument"
                       : kw    ? "unexpected_keyword_argument"
                               : "too_many_arguments");
    } else {
        char id[37];
        cel_uuid(id);
        if (qrun_submit(db(), t->name, id, args, kwargs, &opts, cfg.result_ttl) != 0) {
            unavailable(rs);
        } else {
            char loc[512];
            snprintf(loc, sizeof(loc), "%.400s/%s", serve_cfg.prefix, id);
            json_t *out =
                json_pack("{s:s,s:s,s:s}", "id", id, "task", t->name, "status", CEL_PENDING);
            if (opts.eta > 0) {
                char when[40];
                cel_time_format(opts.eta, when);
                json_object_set_new(out, "eta", json_string(when));
            }
            http_json_new(rs, 202, out);
            http_header_add(rs, "Location", loc);
        }
    }
    json_decref(no_args);
    json_decref(no_kwargs);
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

static int status_of(struct http_req *rq, struct http_resp *rs, const char *id)
{
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
    char key[sizeof(CEL_META_PREFIX) + CEL_ID_MAX];
    snprintf(key, sizeof(key), CEL_META_PREFIX "%s", id);
    redisReply *rep = rds_command(db(), "GET %s", key);
    if (rep == NULL && redis.reply_err) /* WRONGTYPE: that key holds no task result */
        return http_error(rs, 404, "Task not found");
    if (rep == NULL)
        return unavailable(rs);
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return http_error(rs, 404, "Task not found");
    }
    json_t *meta = json_loadb(rep->str, rep->len, 0, NULL);
    freeReplyObject(rep);
    const char *status = json_string_value(json_object_get(meta, "status"));
    if (status == NULL) {
        json_decref(meta);
        log_err("unreadable result for task %s", id);
        return http_error(rs, 500, "Unreadable task result");
    }
    if (!cel_state_ready(status) && wait > 0 && aserve_now() < deadline) {
        json_decref(meta);
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
    if (qrun_revoke(db(), id, terminate, cfg.result_ttl, state, sizeof(state)) != 0)
        return unavailable(rs);
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

static int rerun(struct http_resp *rs, const char *id)
{
    char task[256];
    int rc = cel_id_valid(id) ? qrun_rerun(db(), id, cfg.result_ttl, task, sizeof(task)) : 0;
    if (rc < 0)
        return unavailable(rs);
    if (rc == 0)
        return http_error(rs, 404, "No failed task with this id");
    char loc[512];
    snprintf(loc, sizeof(loc), "%.400s/%s", serve_cfg.prefix, id);
    http_json_new(rs, 202,
                  json_pack("{s:s,s:s,s:s}", "id", id, "task", task, "status", CEL_PENDING));
    http_header_add(rs, "Location", loc);
    return rs->status;
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

struct failed_entry {
    char id[CEL_ID_MAX + 1];
    const char *queue;
    long long at;
};

static int newest_first(const void *a, const void *b)
{
    const struct failed_entry *x = a, *y = b;
    return x->at < y->at ? 1 : x->at > y->at ? -1 : strcmp(x->id, y->id);
}

/* GET /api/tasks?status=FAILURE: the failed lists (one per queue, bounded
 * by FAILED_MAX and FAILED_AGE), merged newest first, paged. */
static int list_failed(struct http_req *rq, struct http_resp *rs)
{
    const char *status = http_query(rq, "status");
    if (status == NULL || strcmp(status, CEL_FAILURE) != 0)
        return http_error_422(rs, json_pack("[ss]", "query", "status"),
                              "Input should be 'FAILURE' (the failed-task list)",
                              "literal_error");
    long limit, offset;
    if (query_long(rq, rs, "limit", 50, 1, MAX_LIST, &limit) != 0 ||
        query_long(rq, rs, "offset", 0, 0, MAX_OFFSET, &offset) != 0)
        return rs->status;
    const char *only = http_query(rq, "queue");
    if (only != NULL && !queue_name_ok(only))
        return http_error_422(rs, json_pack("[ss]", "query", "queue"),
                              "Input should be 1 to 100 characters of A-Z a-z 0-9 . _ -",
                              "string_pattern_mismatch");
    struct rds *r = db();
    redisReply *qs = NULL;
    if (only == NULL && (qs = rds_command(r, "SMEMBERS " QRUN_QUEUES)) == NULL)
        return unavailable(rs);
    const char *names[MAX_QUEUES + 1];
    size_t nq = 0;
    if (only != NULL) {
        names[nq++] = only;
    } else {
        names[nq++] = "celery";
        for (size_t i = 0; i < qs->elements && nq < MAX_QUEUES; i++)
            if (qs->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(qs->element[i]->str, "celery") != 0)
                names[nq++] = qs->element[i]->str;
    }
    char cutoff[32], want[24];
    snprintf(cutoff, sizeof(cutoff), "%lld", qrun_now_ms() - cfg.failed_age * 1000);
    long take = offset + limit < cfg.failed_max ? offset + limit : cfg.failed_max;
    snprintf(want, sizeof(want), "%ld", take);
    for (size_t i = 0; i < nq; i++) {
        rds_append(r, "ZCOUNT " QRUN_FAILED "%s %s +inf", names[i], cutoff);
        rds_append(r, "ZREVRANGEBYSCORE " QRUN_FAILED "%s +inf %s WITHSCORES LIMIT 0 %s",
                   names[i], cutoff, want);
    }
    long long total = 0;
    size_t n = 0, cap = 64;
    struct failed_entry *all = xcalloc(cap, sizeof(*all));
    int ok = 1;
    for (size_t i = 0; i < nq; i++) {
        redisReply *c = rds_reply(r), *z = rds_reply(r);
        if (c == NULL || z == NULL) {
            ok = 0;
        } else {
            long long cnt = c->integer;
            total += cnt < cfg.failed_max ? cnt : cfg.failed_max;
            for (size_t j = 0; j + 1 < z->elements; j += 2) {
                if (!cel_id_valid(z->element[j]->str))
                    continue;
                if (n == cap)
                    all = xrealloc(all, (cap *= 2) * sizeof(*all));
                snprintf(all[n].id, sizeof(all[n].id), "%s", z->element[j]->str);
                all[n].queue = names[i];
                all[n].at = strtoll(z->element[j + 1]->str, NULL, 10);
                n++;
            }
        }
        freeReplyObject(c);
        freeReplyObject(z);
    }
    if (!ok) {
        free(all);
        freeReplyObject(qs);
        return unavailable(rs);
    }
    qsort(all, n, sizeof(*all), newest_first);
    size_t from = (size_t)offset < n ? (size_t)offset : n;
    size_t to = from + (size_t)limit < n ? from + (size_t)limit : n;
    json_t *items = json_array();
    for (size_t i = from; i < to; i++)
        rds_append(r, "GET " CEL_META_PREFIX "%s", all[i].id);
    for (size_t i = from; i < to; i++) {
        redisReply *m = rds_reply(r);
        json_t *meta = m && m->type == REDIS_REPLY_STRING ? json_loadb(m->str, m->len, 0, NULL)
                                                          : NULL;
        freeReplyObject(m);
        char at[40];
        cel_time_format((double)all[i].at / 1000.0, at);
        json_t *result = json_object_get(meta, "result");
        json_array_append_new(
            items, json_pack("{s:s,s:O?,s:s,s:s,s:o,s:O?,s:s}", "id", all[i].id, "task",
                             json_object_get(meta, "name"), "queue", all[i].queue, "status",
                             CEL_FAILURE, "error", error_line(result, CEL_FAILURE), "date_done",
                             json_object_get(meta, "date_done"), "failed_at", at));
        json_decref(meta);
    }
    free(all);
    freeReplyObject(qs);
    return http_json_new(rs, 200,
                         json_pack("{s:o,s:I,s:i,s:i}", "items", items, "total",
                                   (json_int_t)total, "limit", (int)limit, "offset",
                                   (int)offset));
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
        return rerun(rs, rq->seg[0]);
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
    };
    int rc = aserve_main(argc, argv, "tasks", conf, sizeof(conf) / sizeof(conf[0]), tasks,
                         &cfg.redis_url);
    if (redis_ready)
        rds_free(&redis);
    free(cfg.redis_url);
    return rc;
}
