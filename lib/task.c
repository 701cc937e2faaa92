#include "task.h"

#include "buf.h"
#include "token.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct task_def *task_find(const char *name)
{
    for (const struct task_def *t = task_registry; t->name != NULL; t++) {
        if (strcmp(t->name, name) == 0)
            return t;
        const char *dot = strrchr(t->name, '.');
        if (dot != NULL && strncmp(t->name, "tasks.", 6) == 0 && strcmp(dot + 1, name) == 0)
            return t;
    }
    return NULL;
}

int task_allowed(const struct task_def *t, const char *scope)
{
    if (token_scope_has(scope, TASK_ADMIN, strlen(TASK_ADMIN)))
        return 1;
    return t->scope == NULL || token_scope_has(scope, t->scope, strlen(t->scope));
}

double task_time_limit_max(const struct task_def *t, double dflt)
{
    if (t->policy.time_limit < 0)
        return 0;
    return t->policy.time_limit > 0 ? t->policy.time_limit : dflt;
}

/* Split "x y" into names; returns the count. */
static size_t param_names(const char *params, const char *name[TASK_MAX_PARAMS],
                          size_t len[TASK_MAX_PARAMS])
{
    size_t n = 0;
    const char *p = params;
    while (*p != '\0' && n < TASK_MAX_PARAMS) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        name[n] = p;
        len[n++] = l;
        p += l;
    }
    return n;
}

static const char *short_name(const struct task_def *t)
{
    const char *dot = strrchr(t->name, '.');
    return dot ? dot + 1 : t->name;
}

int task_bind(const struct task_def *t, json_t *args, json_t *kwargs,
              json_t *arg[TASK_MAX_PARAMS], char *err, size_t errlen, const char **where)
{
    const char *name[TASK_MAX_PARAMS];
    size_t len[TASK_MAX_PARAMS];
    size_t n = param_names(t->params, name, len);
    size_t nargs = json_array_size(args);
    memset(arg, 0, sizeof(json_t *) * TASK_MAX_PARAMS);
    *where = "args";
    if (nargs > n) {
        snprintf(err, errlen, "%s() takes %zu positional argument%s but %zu %s given",
                 short_name(t), n, n == 1 ? "" : "s", nargs, nargs == 1 ? "was" : "were");
        return -1;
    }
    for (size_t i = 0; i < nargs; i++)
        arg[i] = json_array_get(args, i);
    const char *key;
    json_t *val;
    json_object_foreach(kwargs, key, val) {
        size_t i = 0;
        while (i < n && !(strlen(key) == len[i] && memcmp(key, name[i], len[i]) == 0))
            i++;
        *where = key;
        if (i == n) {
            snprintf(err, errlen, "%s() got an unexpected keyword argument '%s'", short_name(t),
                     key);
            return -1;
        }
        if (arg[i] != NULL) {
            snprintf(err, errlen, "%s() got multiple values for argument '%s'", short_name(t),
                     key);
            return -1;
        }
        arg[i] = val;
    }
    /* Python's words: "add() missing 1 required positional argument: 'y'",
     * "... 2 ... arguments: 'x' and 'y'", "... 3 ...: 'a', 'b', and 'c'" */
    size_t missing[TASK_MAX_PARAMS], nmissing = 0;
    for (size_t i = 0; i < n; i++)
        if (arg[i] == NULL)
            missing[nmissing++] = i;
    if (nmissing == 0)
        return 0;
    *where = name[missing[0]];
    struct buf names = {0};
    for (size_t j = 0; j < nmissing; j++) {
        size_t i = missing[j];
        if (j > 0)
            buf_puts(&names, nmissing == 2 ? " and " : j + 1 == nmissing ? ", and " : ", ");
        buf_printf(&names, "'%.*s'", (int)len[i], name[i]);
    }
    snprintf(err, errlen, "%s() missing %zu required positional argument%s: %s", short_name(t),
             nmissing, nmissing == 1 ? "" : "s", names.data);
    buf_free(&names);
    return -1;
}

int task_run(const struct task_def *t, json_t *const *arg, struct task_ctx *ctx)
{
    int retries = ctx->retries;
    memset(ctx, 0, sizeof(*ctx));
    ctx->retries = retries;
    int rc = t->fn(arg, ctx);
    if (rc != 0 && ctx->exc_type[0] == '\0')
        task_fail(ctx, "RuntimeError", "builtins", "task failed");
    if (rc == 0 && ctx->result == NULL)
        ctx->result = json_null();
    return rc == 0 ? 0 : -1;
}

int task_ok(struct task_ctx *ctx, json_t *result)
{
    ctx->result = result ? result : json_null();
    return 0;
}

/* The exception a failing (or retrying) task raises. */
static int raise_exc(struct task_ctx *ctx, const char *type, const char *module,
                     const char *fmt, va_list ap)
{
    snprintf(ctx->exc_type, sizeof(ctx->exc_type), "%s", type);
    snprintf(ctx->exc_module, sizeof(ctx->exc_module), "%s", module);
    vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
    json_decref(ctx->result);
    ctx->result = NULL;
    return -1;
}

int task_fail(struct task_ctx *ctx, const char *type, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise_exc(ctx, type, module, fmt, ap);
    va_end(ap);
    return -1;
}

int task_retry(struct task_ctx *ctx, long after_ms, const char *type, const char *module,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raise_exc(ctx, type, module, fmt, ap);
    va_end(ap);
    ctx->retry = 1;
    ctx->retry_after_ms = after_ms;
    return -1;
}

static volatile sig_atomic_t interrupted;

void task_interrupt(void) { interrupted = 1; }
int task_interrupted(void) { return interrupted != 0; }
void task_interrupt_reset(void) { interrupted = 0; }

int task_fail_interrupted(struct task_ctx *ctx)
{
    return task_fail(ctx, "SoftTimeLimitExceeded", "billiard.exceptions",
                     "soft time limit exceeded");
}

int task_number(json_t *v, double *d, int *is_int)
{
    if (json_is_integer(v)) {
        *d = (double)json_integer_value(v);
        *is_int = 1;
        return 0;
    }
    if (json_is_real(v)) {
        *d = json_real_value(v);
        *is_int = 0;
        return 0;
    }
    return -1;
}
