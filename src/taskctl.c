/* taskctl: the seed's main.py in C.
 *
 *   taskctl call NAME [ARG...] [--timeout S]   enqueue, wait, print the result
 *   taskctl send NAME [ARG...]                 enqueue, print the id
 *   taskctl status ID                          print the stored meta
 *
 * Each ARG is read as JSON when it parses (4, 2.5, "[1,2]", '{"a":1}'),
 * otherwise as a string. Waiting is Celery's: SUBSCRIBE to the result
 * channel before the task is queued, read the key once, then wait for the
 * published result. Exit: 0 SUCCESS, 1 FAILURE or error, 2 timeout/usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celery.h"
#include "clock.h"
#include "buf.h"
#include "conf.h"
#include "jsonfmt.h"
#include "log.h"
#include "qrun.h"
#include "redis.h"

static int usage(void)
{
    fprintf(stderr, "usage: taskctl call NAME [ARG...] [--timeout S]\n"
                    "       taskctl send NAME [ARG...]\n"
                    "       taskctl status ID\n");
    return 2;
}

static json_t *parse_arg(const char *s)
{
    json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(s);
}

/* Print a ready meta: the result as JSON on stdout (SUCCESS), or
 * "ExcType: message" on stderr. Returns the exit status. */
static int report(const char *meta_json)
{
    json_t *meta = json_loads(meta_json, 0, NULL);
    const char *status = json_string_value(json_object_get(meta, "status"));
    json_t *result = json_object_get(meta, "result");
    int rc = 1;
    if (status != NULL && strcmp(status, CEL_SUCCESS) == 0) {
        struct buf out = {0};
        if (jsonfmt_dump(result, &out, JSON_COMPACT | JSON_ENCODE_ANY) == 0)
            printf("%s\n", out.data);
        buf_free(&out);
        rc = 0;
    } else {
        const char *type = json_string_value(json_object_get(result, "exc_type"));
        json_t *msg = json_array_get(json_object_get(result, "exc_message"), 0);
        char *m = msg ? json_dumps(msg, JSON_ENCODE_ANY) : NULL;
        if (json_is_string(msg))
            fprintf(stderr, "%s: %s\n", type ? type : status ? status : "?",
                    json_string_value(msg));
        else
            fprintf(stderr, "%s: %s\n", type ? type : status ? status : "?", m ? m : "");
        free(m);
    }
    json_decref(meta);
    return rc;
}

static int is_ready(const char *meta_json)
{
    json_t *meta = json_loads(meta_json, 0, NULL);
    const char *status = json_string_value(json_object_get(meta, "status"));
    int ready = status != NULL && cel_state_ready(status);
    json_decref(meta);
    return ready;
}

int main(int argc, char **argv)
{
    log_init("taskctl", LOG_LVL_WARNING);
    if (argc < 3)
        return usage();
    char err[256];
    char *url = NULL;
    int got = conf_value("REDIS_URL", &url, err, sizeof(err));
    if (got < 0) {
        fprintf(stderr, "taskctl: %s\n", err);
        return 2;
    }
    if (got == 0) {
        fprintf(stderr, "taskctl: set REDIS_URL (unix:///path/redis.sock or redis://host:port/db) "
                        "or REDIS_URL_FILE (a file holding it)\n");
        return 2;
    }
    long timeout = 10;
    int nargs = argc;
    if (argc >= 5 && strcmp(argv[argc - 2], "--timeout") == 0) {
        if (conf_parse_long(argv[argc - 1], 1, 86400, &timeout) != 0) {
            free(url);
            return usage();
        }
        nargs = argc - 2;
    }
    struct rds r, sub;
    int bad = rds_init(&r, url, 5000, err, sizeof(err)) != 0;
    if (!bad && rds_init(&sub, url, 5000, err, sizeof(err)) != 0) {
        rds_free(&r);
        bad = 1;
    }
    free(url);
    if (bad) {
        fprintf(stderr, "taskctl: REDIS_URL: %s\n", err);
        return 2;
    }
    int rc = 1;
    const char *cmd = argv[1];
    if (strcmp(cmd, "status") == 0 && argc == 3) {
        redisReply *rep = rds_command(&r, "GET " CEL_META_PREFIX "%s", argv[2]);
        if (rep == NULL)
            fprintf(stderr, "taskctl: Redis: %s\n", r.err);
        else if (rep->type != REDIS_REPLY_STRING)
            fprintf(stderr, "taskctl: no task %s\n", argv[2]);
        else {
            printf("%s\n", rep->str);
            rc = 0;
        }
        freeReplyObject(rep);
    } else if (strcmp(cmd, "call") == 0 || strcmp(cmd, "send") == 0) {
        int wait = strcmp(cmd, "call") == 0;
        const char *name = argv[2];
        char full[128];
        if (strchr(name, '.') == NULL) { /* short names are module "tasks" */
            snprintf(full, sizeof(full), "tasks.%s", name);
            name = full;
        }
        json_t *args = json_array();
        for (int i = 3; i < nargs; i++)
            json_array_append_new(args, parse_arg(argv[i]));
        json_t *kwargs = json_object();
        char id[37], chan[sizeof(CEL_META_PREFIX) + 40];
        cel_uuid(id);
        snprintf(chan, sizeof(chan), CEL_META_PREFIX "%s", id);
        redisReply *rep = NULL;
        if (wait && (rep = rds_command(&sub, "SUBSCRIBE %s", chan)) == NULL) {
            fprintf(stderr, "taskctl: Redis: %s\n", sub.err);
        } else if (qrun_submit(&r,
                               &(struct qrun_task){.name = name, .id = id, .args = args,
                                                   .kwargs = kwargs, .ttl = 86400},
                               NULL, NULL) != QRUN_ADMITTED) {
            fprintf(stderr, "taskctl: Redis: %s\n", r.err);
        } else if (!wait) {
            printf("%s\n", id);
            rc = 0;
        } else {
            freeReplyObject(rep);
            rep = rds_command(&r, "GET %s", chan);
            if (rep != NULL && rep->type == REDIS_REPLY_STRING && is_ready(rep->str)) {
                rc = report(rep->str);
            } else {
                double deadline = clock_now() + (double)timeout;
                rc = -1;
                while (rc < 0) {
                    long left = (long)((deadline - clock_now()) * 1000);
                    if (left <= 0) {
                        fprintf(stderr, "taskctl: no result for %s after %lds\n", id, timeout);
                        rc = 2;
                        break;
                    }
                    struct timeval tv = {left / 1000, (left % 1000) * 1000};
                    redisSetTimeout(sub.c, tv);
                    freeReplyObject(rep);
                    rep = rds_reply(&sub);
                    if (rep == NULL) {
                        if (sub.c == NULL && strstr(sub.err, "temporarily") == NULL &&
                            strstr(sub.err, "timed out") == NULL)
                            fprintf(stderr, "taskctl: Redis: %s\n", sub.err);
                        else
                            fprintf(stderr, "taskctl: no result for %s after %lds\n", id,
                                    timeout);
                        rc = 2;
                    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                               rep->element[2]->type == REDIS_REPLY_STRING &&
                               is_ready(rep->element[2]->str)) {
                        rc = report(rep->element[2]->str);
                    }
                }
            }
        }
        freeReplyObject(rep);
        json_decref(args);
        json_decref(kwargs);
    } else {
        rc = usage();
    }
    rds_free(&r);
    rds_free(&sub);
    return rc;
}
