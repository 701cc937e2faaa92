/* The task registry: the seed's tasks.py, in C. Names follow Celery's
 * "<module>.<function>" so Python clients call them unchanged
 * (add.delay(4, 4) sends "tasks.add"). See task.h to add one. */
#include <errno.h>
#include <math.h>
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
        ;
    return task_ok(ctx, json_incref(arg[0]));
}

static int fail(json_t *const *arg, struct task_ctx *ctx)
{
    const char *msg = json_is_string(arg[0]) ? json_string_value(arg[0]) : "task failed";
    return task_fail(ctx, "ValueError", "builtins", "%s", msg);
}

const struct task_def task_registry[] = {
    {"tasks.add", "x y", add},
    {"tasks.mul", "x y", mul},
    {"tasks.xsum", "numbers", xsum},
    {"tasks.sleep", "seconds", sleep_task},
    {"tasks.fail", "message", fail},
    {NULL, NULL, NULL},
};
