/* The task registry: the seed's tasks.py, in C. Names follow Celery's
 * "<module>.<function>" so Python clients call them unchanged
 * (add.delay(4, 4) sends "tasks.add"). See task.h to add one. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "task.h"

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "dict";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "str";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    default: return "NoneType";
    }
}

/* x op y over ints (overflow checked) or floats, like Python's + and *. */
static int arith(json_t *const *arg, struct task_ctx *ctx, char op)
{
    double x, y;
    int xi, yi;
    if (task_number(arg[0], &x, &xi) != 0 || task_number(arg[1], &y, &yi) != 0)
        return task_fail(ctx, "TypeError", "builtins", "unsupported operand type(s) for %c: '%s' and '%s'",
                         op, type_name(arg[0]), type_name(arg[1]));
    if (xi && yi) {
        long long a = json_integer_value(arg[0]), b = json_integer_value(arg[1]), r;
        int ovf = op == '+' ? __builtin_add_overflow(a, b, &r) : __builtin_mul_overflow(a, b, &r);
        if (ovf)
            return task_fail(ctx, "OverflowError", "builtins", "integer result out of range");
        return task_ok(ctx, json_integer(r));
    }
    double r = op == '+' ? x + y : x * y;
    if (!isfinite(r))
        return task_fail(ctx, "OverflowError", "builtins", "result out of range");
    return task_ok(ctx, json_real(r));
}

static int add(json_t *const *arg, struct task_ctx *ctx) { return arith(arg, ctx, '+'); }
static int mul(json_t *const *arg, struct task_ctx *ctx) { return arith(arg, ctx, '*'); }

static int xsum(json_t *const *arg, struct task_ctx *ctx)
{
    if (!json_is_array(arg[0]))
        return task_fail(ctx, "TypeError", "builtins", "'%s' object is not iterable",
                         type_name(arg[0]));
    json_t *acc = json_integer(0), *v;
    size_t i;
    json_array_foreach(arg[0], i, v) {
        json_t *pair[2] = {acc, v};
        struct task_ctx step = {0};
        if (arith(pair, &step, '+') != 0) {
            json_decref(acc);
            *ctx = step;
            return -1;
        }
        json_decref(acc);
        acc = step.result;
    }
    return task_ok(ctx, acc);
}

static int sleep_task(json_t *const *arg, struct task_ctx *ctx)
{
    double s;
    int is_int;
    if (task_number(arg[0], &s, &is_int) != 0 || !(s >= 0 && s <= 3600))
        return task_fail(ctx, "ValueError", "builtins", "seconds must be a number in 0..3600");
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        if (task_interrupted()) /* the soft time limit: give up cleanly */
            return task_fail_interrupted(ctx);
    return task_ok(ctx, json_incref(arg[0]));
}

static int fail(json_t *const *arg, struct task_ctx *ctx)
{
    const char *msg = json_is_string(arg[0]) ? json_string_value(arg[0]) : "task failed";
    return task_fail(ctx, "ValueError", "builtins", "%s", msg);
}

/* Fails (asking to be retried, with the task's backoff) until it has been
 * retried `times` times, then returns how many retries it took. */
static int flaky(json_t *const *arg, struct task_ctx *ctx)
{
    double n;
    int is_int;
    if (task_number(arg[0], &n, &is_int) != 0 || !is_int || n < 0)
        return task_fail(ctx, "ValueError", "builtins", "times must be a whole number >= 0");
    if (ctx->retries < n)
        return task_retry(ctx, -1, "ValueError", "builtins", "flaky: attempt %d of %.0f failed",
                          ctx->retries + 1, n + 1);
    return task_ok(ctx, json_integer(ctx->retries));
}

/* Allocates and touches `megabytes` of memory, holds it for half a second
 * (as real work would) and frees it: MemoryError when the allocation is
 * refused (the memory limit). */
static int alloc(json_t *const *arg, struct task_ctx *ctx)
{
    double mb;
    int is_int;
    if (task_number(arg[0], &mb, &is_int) != 0 || !is_int || mb < 0 || mb > 65536)
        return task_fail(ctx, "ValueError", "builtins", "megabytes must be a whole number in 0..65536");
    size_t n = (size_t)mb << 20;
    char *p = malloc(n ? n : 1);
    if (p == NULL)
        return task_fail(ctx, "MemoryError", "builtins", "cannot allocate %.0f MB", mb);
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (char)i;
    struct timespec ts = {0, 500000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !task_interrupted())
        ;
    free(p);
    return task_ok(ctx, json_integer((json_int_t)mb));
}

/* Dies the way a buggy task does (abort: SIGABRT), to show a crash ends as
 * FAILURE WorkerLostError instead of a task lost or re-run forever. */
static int crash(json_t *const *arg, struct task_ctx *ctx)
{
    (void)arg;
    (void)ctx;
    abort();
}

/* In this order for good: metrics files count tasks by their index here.
 * The demos that hold a worker or its memory on purpose (sleep, alloc),
 * crash it (crash) or make it retry (flaky) are for admins: any user
 * could otherwise starve the workers for everyone. */
const struct task_def task_registry[] = {
    {.name = "tasks.add", .params = "x y", .fn = add},
    {.name = "tasks.mul", .params = "x y", .fn = mul},
    {.name = "tasks.xsum", .params = "numbers", .fn = xsum},
    {.name = "tasks.sleep", .params = "seconds", .fn = sleep_task, .scope = TASK_ADMIN},
    {.name = "tasks.fail", .params = "message", .fn = fail},
    {.name = "tasks.flaky", .params = "times", .fn = flaky, .scope = TASK_ADMIN},
    {.name = "tasks.alloc", .params = "megabytes", .fn = alloc, .scope = TASK_ADMIN},
    {.name = "tasks.crash", .params = "", .fn = crash, .scope = TASK_ADMIN},
    {.name = NULL},
};
