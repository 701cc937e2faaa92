#ifndef TASK_H
#define TASK_H

#include <jansson.h>
#include <stddef.h>

/* Tasks written in C, and the binding of a Celery call's args and kwargs to
 * a task's parameters, the way Python binds them (so a bad call fails the
 * same way for our runner, a Python worker, and the HTTP route's 422).
 *
 * Adding a task is one function and one line in the registry (tasks.c):
 *
 *   static int add(json_t *const *arg, struct task_ctx *ctx)
 *   {
 *       ...
 *       return task_ok(ctx, json_integer(x + y));
 *   }
 *   {.name = "tasks.add", .params = "x y", .fn = add},
 *
 * with, where it differs from the defaults, a policy (.policy =
 * {.max_retries = 5}) and who may submit it over HTTP (.scope).
 *
 * A task returns task_ok(ctx, result) or task_fail(ctx, "ValueError",
 * "builtins", "..."): the exception Python clients will see raised. */

#define TASK_MAX_PARAMS 8

struct task_ctx {
    int retries;    /* in: how many times this call was retried so far */
    json_t *result; /* set by task_ok (owned) */
    char exc_type[64];
    char exc_module[64];
    char message[512];
    int retry;           /* set by task_retry: run it again later */
    long retry_after_ms; /* its countdown; -1: the task's backoff policy */
};

typedef int task_fn(json_t *const *arg, struct task_ctx *ctx);

/* Per-task limits and retry policy; 0 in a field means the runner's
 * default (TASK_MAX_RETRIES, TASK_TIME_LIMIT, ...), so a registry line
 * only names what differs. TASK_NONE: explicitly none (no retries, no
 * limit). A message's own headers.timelimit wins over both. */
#define TASK_NONE (-1)
struct task_policy {
    int max_retries;
    long backoff_ms, backoff_max_ms; /* delay = random(0, min(max, backoff * 2^retries)) */
    double time_limit, soft_time_limit; /* seconds */
    long max_memory_mb;
};

struct task_def {
    const char *name;   /* full Celery name, "tasks.add" */
    const char *params; /* parameter names, space-separated: "x y" */
    task_fn *fn;
    struct task_policy policy;
    /* Who may submit it over HTTP: NULL, any user with a token; else a
     * token holding this scope (TASK_ADMIN: admins only). Admins may
     * submit every task. Python clients and operators' tools, which reach
     * Redis directly, are not asked. */
    const char *scope;
};
#define TASK_ADMIN "admin"

/* Whether a caller holding `scope` (space-separated) may submit t over
 * HTTP. */
int task_allowed(const struct task_def *t, const char *scope);

/* The longest time limit (s) an HTTP submit of t may ask for: its policy's,
 * else dflt (TASK_TIME_LIMIT); 0: no bound. */
double task_time_limit_max(const struct task_def *t, double dflt);

/* The registry (tasks.c), ended by a {NULL} entry. */
extern const struct task_def task_registry[];

/* Look up "tasks.add", or the short "add" for a task of module "tasks". */
const struct task_def *task_find(const char *name);

/* Bind args (array) and kwargs (object, may be NULL) to t's parameters:
 * arg[i] borrowed from them. Returns 0, or -1 with a Python-style TypeError
 * message in err and, in *where, what was wrong: "args" or the kwarg's name
 * (a pointer into t->params or kwargs, valid while they are). */
int task_bind(const struct task_def *t, json_t *args, json_t *kwargs,
              json_t *arg[TASK_MAX_PARAMS], char *err, size_t errlen, const char **where);

/* Run t with a bound call; returns 0 (ctx->result set) or -1 (exception set). */
int task_run(const struct task_def *t, json_t *const *arg, struct task_ctx *ctx);

int task_ok(struct task_ctx *ctx, json_t *result); /* steals result */
int task_fail(struct task_ctx *ctx, const char *type, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Ask to be run again (Celery's self.retry(exc=..., countdown=...)): the
 * exception is what the client sees while it waits (RETRY) and, once the
 * task's max_retries are used up, as the FAILURE. after_ms -1: the task's
 * backoff. Returns -1, for `return task_retry(...)`. */
int task_retry(struct task_ctx *ctx, long after_ms, const char *type, const char *module,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The soft time limit: the runner calls task_interrupt() from its signal
 * handler; a long task polls task_interrupted() (a blocking call returns
 * EINTR) and gives up with task_fail_interrupted(), Celery's
 * SoftTimeLimitExceeded. Reset before each task. */
void task_interrupt(void);
int task_interrupted(void);
void task_interrupt_reset(void);
int task_fail_interrupted(struct task_ctx *ctx);

/* A number argument as a double and whether it is an integer; -1 if it is
 * not a number (bools are not numbers here, unlike Python). */
int task_number(json_t *v, double *d, int *is_int);

#endif
