/* /api/tasks: submit Celery tasks and read their results.
 *
 *   POST /api/tasks/{task}   {"args": [...], "kwargs": {...}}
 *        -> 202 {"id","task","status":"PENDING"}, Location: /api/tasks/{id}
 *        | 404 unknown task | 422 bad body or arguments | 503 Redis down
 *   GET  /api/tasks/{id}[?wait=N]
 *        -> 200 {"id","task","status","result","date_done"[,"error"]}
 *        | 404 unknown id | 422 bad wait | 503 Redis down
 *
 * ?wait=N (0..MAX_WAIT s) parks the request until the result is published
 * (aserve.h), so waiting clients hold no process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aserve.h"
#include "celery.h"
#include "log.h"
#include "qrun.h"
#include "redis.h"
#include "serve.h"
#include "task.h"

static struct {
    char *redis_url;
    long result_ttl;
    long max_wait;
} cfg;

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

static int submit(struct http_req *rq, struct http_resp *rs, const char *name)
{
    const struct task_def *t = task_find(name);
    if (t == NULL) {
        char detail[192];
        snprintf(detail, sizeof(detail), "Task not registered: %.128s", name);
        return http_error(rs, 404, detail);
    }
    static const char *const fields[] = {"args", "kwargs", NULL};
    json_t *body, *args = NULL, *kwargs = NULL;
    if (http_body_object_or_422(rq, fields, 0, &body, rs) != 0)
        return rs->status;
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
        if (qrun_submit(db(), t->name, id, args, kwargs, "celery", 0, cfg.result_ttl) != 0) {
            unavailable(rs);
        } else {
            char loc[512];
            snprintf(loc, sizeof(loc), "%.400s/%s", serve_cfg.prefix, id);
            http_json_new(
                rs, 202,
                json_pack("{s:s,s:s,s:s}", "id", id, "task", t->name, "status", CEL_PENDING));
            http_header_add(rs, "Location", loc);
        }
    }
    json_decref(no_args);
    json_decref(no_kwargs);
    json_decref(body);
    return rs->status;
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
    if (strcmp(status, CEL_FAILURE) == 0 || strcmp(status, CEL_REVOKED) == 0) {
        const char *type = json_string_value(json_object_get(result, "exc_type"));
        json_t *m = json_array_get(json_object_get(result, "exc_message"), 0);
        char *mtext = json_is_string(m) ? NULL : json_dumps(m, JSON_ENCODE_ANY);
        char error[600];
        snprintf(error, sizeof(error), "%s: %s", type ? type : status,
                 json_is_string(m) ? json_string_value(m)
                 : mtext           ? mtext
                                   : "");
        free(mtext);
        json_object_set_new(out, "error", json_string(error));
    }
    json_decref(meta);
    return http_json_new(rs, 200, out);
}

static int tasks(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg != 1 || rq->seg[0][0] == '\0')
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET, POST") != 0)
        return rs->status;
    if (strcmp(rq->method, "POST") == 0)
        return submit(rq, rs, rq->seg[0]);
    return status_of(rq, rs, rq->seg[0]);
}

int main(int argc, char **argv)
{
    const struct conf_entry conf[] = {
        {"REDIS_URL", CONF_STR, NULL, &cfg.redis_url, 0, 0, NULL, rds_url_check},
        {"RESULT_EXPIRES", CONF_INT, "86400", &cfg.result_ttl, 1, 365L * 86400, NULL, NULL},
        {"TASK_MAX_WAIT", CONF_INT, "30", &cfg.max_wait, 0, 3600, NULL, NULL},
    };
    int rc = aserve_main(argc, argv, "tasks", conf, sizeof(conf) / sizeof(conf[0]), tasks,
                         &cfg.redis_url);
    if (redis_ready)
        rds_free(&redis);
    free(cfg.redis_url);
    return rc;
}
