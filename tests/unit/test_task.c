/* lib/task.c and the registry in lib/tasks.c (linked as an object): finding
 * a task by its full or short name, binding a call's args and kwargs to its
 * parameters the way Python does (with Python's TypeError messages), and
 * running the seed's tasks with their results and exceptions. */
#include "../../lib/task.c"

#include <signal.h>
#include <sys/time.h>

#include <limits.h>
#include <stdlib.h>

#include "check.h"


static void test_find(void)
{
    static const char *const names[] = {"add", "mul", "xsum", "sleep", "fail"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char full[32];
        snprintf(full, sizeof(full), "tasks.%s", names[i]);
        const struct task_def *t = task_find(full), *s = task_find(names[i]);
        if (check(t != NULL, "a registered task is found by its full name")) {
            check_str(t->name, full);
            check(t->fn != NULL && t->params != NULL, "with parameters and a function");
        } else {
            fprintf(stderr, "  name: %s\n", full);
        }
        check(s == t, "the short name finds the same task");
    }
    check_str(task_find("add")->params, "x y");
    check_str(task_find("tasks.xsum")->params, "numbers");

    static const char *const unknown[] = {"tasks.nope", "nope", "", "tasks.", "tasks",
                                          "Add", "tasks.Add", "celery.add", "other.add",
                                          "tasks.add ", " add", "tasks.add.x", ".add", "dd"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        if (!check(task_find(unknown[i]) == NULL, "an unknown name finds nothing"))
            fprintf(stderr, "  name: \"%s\"\n", unknown[i]);
    }

    /* the registry ends with {NULL} */
    size_t n = 0;
    while (task_registry[n].name != NULL)
        n++;
    check_int(n, 8);
    check(task_registry[n].fn == NULL && task_registry[n].params == NULL, "a {NULL} end entry");
}

/* bind(t, args_json, kwargs_json or NULL): task_bind on freshly loaded JSON.
 * The JSON stays alive in the globals until the next bind (arg[] and where
 * point into it). */
static json_t *b_args, *b_kwargs;
static json_t *arg[TASK_MAX_PARAMS];
static char err[256];
static const char *where;

static int bind(const char *task, const char *args, const char *kwargs)
{
    json_decref(b_args);
    json_decref(b_kwargs);
    b_args = json_loads(args, 0, NULL);
    b_kwargs = kwargs ? json_loads(kwargs, 0, NULL) : NULL;
    err[0] = '\0';
    where = NULL;
    const struct task_def *t = task_find(task);
    if (t == NULL) {
        fprintf(stderr, "no task %s\n", task);
        exit(1);
    }
    return task_bind(t, b_args, b_kwargs, arg, err, sizeof(err), &where);
}

static void test_bind_ok(void)
{
    /* positional */
    if (check_int(bind("add", "[1, 2]", NULL), 0)) {
        check_json(arg[0], "1");
        check_json(arg[1], "2");
        check(arg[0] == json_array_get(b_args, 0), "arg[] is borrowed from args");
    }
    for (int i = 2; i < TASK_MAX_PARAMS; i++)
        check(arg[i] == NULL, "arguments beyond the parameters are NULL");
    check_int(bind("add", "[1, 2]", "{}"), 0);

    /* keyword, in any order */
    if (check_int(bind("add", "[]", "{\"y\": 2, \"x\": 1}"), 0)) {
        check_json(arg[0], "1");
        check_json(arg[1], "2");
        check(arg[1] == json_object_get(b_kwargs, "y"), "arg[] is borrowed from kwargs");
    }
    /* mixed */
    if (check_int(bind("mul", "[6]", "{\"y\": 7}"), 0)) {
        check_json(arg[0], "6");
        check_json(arg[1], "7");
    }
    if (check_int(bind("tasks.xsum", "[]", "{\"numbers\": [1, 2]}"), 0))
        check_json(arg[0], "[1, 2]");
    /* any JSON value binds; types are the task's business */
    if (check_int(bind("fail", "[null]", NULL), 0))
        check(json_is_null(arg[0]), "null binds as a value");
}

/* Expects bind to fail with message msg and *where == want_where. */
static void check_bind_err_at(int line, const char *task, const char *args, const char *kwargs,
                              const char *msg, const char *want_where)
{
    int rc = bind(task, args, kwargs);
    if (!check_at(__FILE__, line, rc == -1, "task_bind refuses", args)) {
        fprintf(stderr, "  %s(*%s, **%s)\n", task, args, kwargs ? kwargs : "{}");
        return;
    }
    if (!check_str(err, msg))
        fprintf(stderr, "  (checked at line %d)\n", line);
    if (!check_str(where, want_where))
        fprintf(stderr, "  (*where, checked at line %d)\n", line);
}
#define check_bind_err(task, args, kwargs, msg, w)                                                \
    check_bind_err_at(__LINE__, (task), (args), (kwargs), (msg), (w))

static void test_bind_errors(void)
{
    /* too many positional arguments, with Python's singular/plural */
    check_bind_err("add", "[1, 2, 3]", NULL, "add() takes 2 positional arguments but 3 were given",
                   "args");
    check_bind_err("xsum", "[1, 2]", NULL, "xsum() takes 1 positional argument but 2 were given",
                   "args");
    check_bind_err("tasks.mul", "[1, 2, 3, 4]", "{\"x\": 1}",
                   "mul() takes 2 positional arguments but 4 were given", "args");

    /* an unexpected keyword: *where is its name */
    check_bind_err("add", "[1, 2]", "{\"z\": 3}", "add() got an unexpected keyword argument 'z'",
                   "z");
    check_bind_err("xsum", "[]", "{\"number\": [1]}",
                   "xsum() got an unexpected keyword argument 'number'", "number");
    check_bind_err("xsum", "[]", "{\"numbersx\": [1]}",
                   "xsum() got an unexpected keyword argument 'numbersx'", "numbersx");
    check_bind_err("add", "[]", "{\"x y\": 3}", "add() got an unexpected keyword argument 'x y'",
                   "x y");
    check_bind_err("add", "[]", "{\"\": 3}", "add() got an unexpected keyword argument ''", "");

    /* the same argument by position and by name */
    check_bind_err("add", "[1, 2]", "{\"x\": 3}", "add() got multiple values for argument 'x'",
                   "x");
    check_bind_err("add", "[1]", "{\"x\": 3}", "add() got multiple values for argument 'x'", "x");

    /* a missing argument: *where points at its name in t->params */
    int rc = bind("add", "[1]", NULL);
    check_int(rc, -1);
    check_str(err, "add() missing 1 required positional argument: 'y'");
    const char *params = task_find("add")->params;
    check(where == params + 2, "*where is the missing parameter's name in t->params");
    rc = bind("add", "[]", "{\"y\": 1}");
    check_int(rc, -1);
    check_str(err, "add() missing 1 required positional argument: 'x'");
    check(where == params, "*where is the missing parameter's name in t->params");
    check(where != NULL && strncmp(where, "x", 1) == 0, "*where starts with the name");
    rc = bind("add", "[]", NULL);
    check_int(rc, -1);
    check_str(err, "add() missing 2 required positional arguments: 'x' and 'y'");
    check(where == params, "*where is the first missing parameter");
    rc = bind("sleep", "[]", "{}");
    check_str(err, "sleep() missing 1 required positional argument: 'seconds'");
    check_str(where, "seconds");

    /* a short err buffer: truncated, still a C string */
    json_t *a = json_loads("[1, 2, 3]", 0, NULL);
    char small[10];
    const char *w;
    check_int(task_bind(task_find("add"), a, NULL, arg, small, sizeof(small), &w), -1);
    check_str(small, "add() tak");
    json_decref(a);
}

/* A task of our own, to reach task_run's and param_names' corners. */
static int quiet_fail(json_t *const *a, struct task_ctx *ctx)
{
    (void)a;
    (void)ctx;
    return -1; /* no exception set */
}
static int no_result(json_t *const *a, struct task_ctx *ctx)
{
    (void)a;
    (void)ctx;
    return 0; /* no result set */
}
static int count_args(json_t *const *a, struct task_ctx *ctx)
{
    int n = 0;
    while (n < TASK_MAX_PARAMS && a[n] != NULL)
        n++;
    return task_ok(ctx, json_integer(n));
}

static void test_custom(void)
{
    const struct task_def q = {.name = "mine.quiet", .params = "", .fn = quiet_fail};
    const struct task_def nr = {.name = "mine.none", .params = "", .fn = no_result};
    const struct task_def many = {.name = "mine.many", .params = "  a  b c d e f g h i j",
                                  .fn = count_args};
    json_t *noargs = json_array();
    const char *w;
    struct task_ctx ctx;

    /* no parameters */
    check_int(task_bind(&q, noargs, NULL, arg, err, sizeof(err), &w), 0);
    json_t *one = json_pack("[i]", 1);
    check_int(task_bind(&q, one, NULL, arg, err, sizeof(err), &w), -1);
    check_str(err, "quiet() takes 0 positional arguments but 1 was given");
    json_decref(one);

    /* a task that fails without saying why: RuntimeError */
    check_int(task_run(&q, arg, &ctx), -1);
    check_str(ctx.exc_type, "RuntimeError");
    check_str(ctx.exc_module, "builtins");
    check_str(ctx.message, "task failed");
    check(ctx.result == NULL, "no result on failure");

    /* one that returns nothing: null */
    check_int(task_run(&nr, arg, &ctx), 0);
    check(json_is_null(ctx.result), "no result is None");
    check_str(ctx.exc_type, "");
    json_decref(ctx.result);

    /* names split on runs of spaces, at most TASK_MAX_PARAMS of them */
    json_t *kw = json_pack("{s:i,s:i}", "h", 8, "g", 7);
    json_t *six = json_pack("[iiiiii]", 1, 2, 3, 4, 5, 6);
    check_int(task_bind(&many, six, kw, arg, err, sizeof(err), &w), 0);
    check_int(task_run(&many, arg, &ctx), 0);
    check_json(ctx.result, "8");
    json_decref(ctx.result);
    json_decref(six);
    json_decref(kw);
    kw = json_pack("{s:i}", "i", 1);
    check_int(task_bind(&many, noargs, kw, arg, err, sizeof(err), &w), -1);
    check_str(err, "many() got an unexpected keyword argument 'i'");
    json_decref(kw);

    /* task_fail truncates a long message; task_ok(NULL) is null */
    char longmsg[1000];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    memset(&ctx, 0, sizeof(ctx));
    ctx.result = json_integer(1); /* dropped by task_fail */
    check_int(task_fail(&ctx, "ValueError", "builtins", "%s", longmsg), -1);
    check_int(strlen(ctx.message), sizeof(ctx.message) - 1);
    check(ctx.result == NULL, "task_fail drops a result");
    check_int(task_ok(&ctx, NULL), 0);
    check(json_is_null(ctx.result), "task_ok(NULL) is null");

    /* task_number: ints, reals; bools and others are not numbers */
    double d;
    int is_int;
    json_t *v = json_integer(-3);
    check_int(task_number(v, &d, &is_int), 0);
    check(d == -3.0 && is_int == 1, "an int");
    json_decref(v);
    v = json_real(2.5);
    check_int(task_number(v, &d, &is_int), 0);
    check(d == 2.5 && is_int == 0, "a float");
    json_decref(v);
    check_int(task_number(json_true(), &d, &is_int), -1);
    check_int(task_number(json_null(), &d, &is_int), -1);
    v = json_string("1");
    check_int(task_number(v, &d, &is_int), -1);
    json_decref(v);

    json_decref(noargs);
}

/* run(task, args): bind and run; the result or exception is in rctx. */
static struct task_ctx rctx;
static int run(const char *task, const char *args)
{
    json_decref(rctx.result);
    rctx.result = NULL;
    if (bind(task, args, NULL) != 0) {
        fprintf(stderr, "cannot bind %s%s: %s\n", task, args, err);
        exit(1);
    }
    return task_run(task_find(task), arg, &rctx);
}

/* Expects run to raise type(msg) from builtins with no result. */
static void check_raises_at(int line, const char *task, const char *args, const char *type,
                            const char *msg)
{
    int rc = run(task, args);
    if (!check_at(__FILE__, line, rc == -1, "the task raises", args))
        return;
    if (!check_str(rctx.exc_type, type) | !check_str(rctx.message, msg))
        fprintf(stderr, "  %s%s, checked at line %d\n", task, args, line);
    check_str(rctx.exc_module, "builtins");
    check(rctx.result == NULL, "no result with an exception");
}
#define check_raises(task, args, type, msg)                                                       \
    check_raises_at(__LINE__, (task), (args), (type), (msg))

static void test_run_arith(void)
{
    char buf[128];
    if (check_int(run("add", "[4, 4]"), 0))
        check_json(rctx.result, "8");
    check_int(run("tasks.add", "[-7, 2]"), 0);
    check_json(rctx.result, "-5");
    check_int(run("add", "[1.5, 2]"), 0);
    check_json(rctx.result, "3.5");
    check_int(run("add", "[0.5, 0.25]"), 0);
    check_json(rctx.result, "0.75");
    check_int(run("add", "[1.0, 2.0]"), 0);
    check_json(rctx.result, "3.0"); /* floats stay floats */
    snprintf(buf, sizeof(buf), "[%lld, 0]", LLONG_MAX);
    check_int(run("add", buf), 0);
    check(json_integer_value(rctx.result) == LLONG_MAX, "LLONG_MAX + 0");
    snprintf(buf, sizeof(buf), "[%lld, -1]", LLONG_MIN);
    check_raises("add", buf, "OverflowError", "integer result out of range");
    snprintf(buf, sizeof(buf), "[%lld, 1]", LLONG_MAX);
    check_raises("add", buf, "OverflowError", "integer result out of range");
    check_raises("add", "[1e308, 1e308]", "OverflowError", "result out of range");

    check_raises("add", "[\"a\", 1]", "TypeError",
                 "unsupported operand type(s) for +: 'str' and 'int'");
    check_raises("add", "[1, \"b\"]", "TypeError",
                 "unsupported operand type(s) for +: 'int' and 'str'");
    check_raises("add", "[[1], {}]", "TypeError",
                 "unsupported operand type(s) for +: 'list' and 'dict'");
    check_raises("add", "[null, 1.5]", "TypeError",
                 "unsupported operand type(s) for +: 'NoneType' and 'float'");
    check_raises("add", "[true, 1]", "TypeError",
                 "unsupported operand type(s) for +: 'bool' and 'int'");

    if (check_int(run("mul", "[6, 7]"), 0))
        check_json(rctx.result, "42");
    check_int(run("mul", "[2.5, 2]"), 0);
    check_json(rctx.result, "5.0");
    check_int(run("mul", "[-3, 0]"), 0);
    check_json(rctx.result, "0");
    snprintf(buf, sizeof(buf), "[%lld, 2]", LLONG_MAX);
    check_raises("mul", buf, "OverflowError", "integer result out of range");
    snprintf(buf, sizeof(buf), "[%lld, -1]", LLONG_MIN);
    check_raises("mul", buf, "OverflowError", "integer result out of range");
    check_raises("mul", "[1e200, 1e200]", "OverflowError", "result out of range");
    check_raises("mul", "[\"ab\", 3]", "TypeError",
                 "unsupported operand type(s) for *: 'str' and 'int'");
}

static void test_run_xsum(void)
{
    char buf[128];
    if (check_int(run("xsum", "[[1, 2, 3, 4]]"), 0))
        check_json(rctx.result, "10");
    check_int(run("xsum", "[[]]"), 0);
    check_json(rctx.result, "0");
    check_int(run("xsum", "[[1, 2.5, -1]]"), 0);
    check_json(rctx.result, "2.5");
    check_raises("xsum", "[5]", "TypeError", "'int' object is not iterable");
    check_raises("xsum", "[{\"a\": 1}]", "TypeError", "'dict' object is not iterable");
    check_raises("xsum", "[null]", "TypeError", "'NoneType' object is not iterable");
    check_raises("xsum", "[\"123\"]", "TypeError", "'str' object is not iterable");
    check_raises("xsum", "[[1, \"a\", 3]]", "TypeError",
                 "unsupported operand type(s) for +: 'int' and 'str'");
    check_raises("xsum", "[[1.5, [2]]]", "TypeError",
                 "unsupported operand type(s) for +: 'float' and 'list'");
    check_raises("xsum", "[[\"a\"]]", "TypeError",
                 "unsupported operand type(s) for +: 'int' and 'str'");
    snprintf(buf, sizeof(buf), "[[%lld, 1]]", LLONG_MAX);
    check_raises("xsum", buf, "OverflowError", "integer result out of range");
}

static void test_run_fail_sleep(void)
{
    check_raises("fail", "[\"boom\"]", "ValueError", "boom");
    check_raises("tasks.fail", "[\"it's 100% broken\"]", "ValueError", "it's 100% broken");
    check_raises("fail", "[3]", "ValueError", "task failed");
    check_raises("fail", "[\"\"]", "ValueError", "");

    if (check_int(run("sleep", "[0]"), 0))
        check_json(rctx.result, "0");
    check_int(run("sleep", "[0.001]"), 0);
    check_json(rctx.result, "0.001");
    check_raises("sleep", "[-1]", "ValueError", "seconds must be a number in 0..3600");
    check_raises("sleep", "[-0.5]", "ValueError", "seconds must be a number in 0..3600");
    check_raises("sleep", "[3601]", "ValueError", "seconds must be a number in 0..3600");
    check_raises("sleep", "[\"1\"]", "ValueError", "seconds must be a number in 0..3600");
    check_raises("sleep", "[null]", "ValueError", "seconds must be a number in 0..3600");
}

static void on_alarm(int sig)
{
    (void)sig;
    task_interrupt();
}

/* flaky asks for retries until it has had `times`; alloc refuses what it
 * cannot get; the soft limit interrupts sleep (SoftTimeLimitExceeded). */
static void test_retry_alloc_interrupt(void)
{
    rctx.retries = 0;
    check_int(run("flaky", "[2]"), -1);
    check(rctx.retry == 1 && rctx.retry_after_ms == -1, "flaky asks for a retry, with the policy");
    check_str(rctx.exc_type, "ValueError");
    check_str(rctx.message, "flaky: attempt 1 of 3 failed");
    rctx.retries = 2;
    if (check_int(run("flaky", "[2]"), 0))
        check_json(rctx.result, "2");
    check(rctx.retries == 2 && rctx.retry == 0, "task_run keeps retries, clears retry");
    rctx.retries = 0;
    check_raises("flaky", "[-1]", "ValueError", "times must be a whole number >= 0");
    check_raises("flaky", "[1.5]", "ValueError", "times must be a whole number >= 0");
    if (check_int(run("alloc", "[1]"), 0))
        check_json(rctx.result, "1");
    check_raises("alloc", "[65537]", "ValueError", "megabytes must be a whole number in 0..65536");
    struct task_ctx c = {0};
    check(task_retry(&c, 250, "KeyError", "builtins", "k%d", 7) == -1 && c.retry == 1 &&
              c.retry_after_ms == 250,
          "task_retry with a countdown");
    check_str(c.message, "k7");
    /* an interrupt during a sleep: SIGALRM stands in for the runner's SIGUSR1 */
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    task_interrupt_reset();
    check(!task_interrupted(), "reset");
    struct itimerval it = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
    check_int(run("sleep", "[5]"), -1);
    check_str(rctx.exc_type, "SoftTimeLimitExceeded");
    check_str(rctx.exc_module, "billiard.exceptions");
    task_interrupt_reset();
}

/* Who may submit what over HTTP: the demos that hold or crash a worker
 * need the admin scope; a task with a scope of its own needs it (or admin);
 * the rest anyone. The longest time limit a submit may ask: the policy's,
 * else the default; none when the policy says TASK_NONE. */
static void test_allowed_and_limits(void)
{
    static const char *const admin_only[] = {"tasks.sleep", "tasks.alloc", "tasks.crash",
                                             "tasks.flaky"};
    for (size_t i = 0; i < 4; i++) {
        const struct task_def *t = task_find(admin_only[i]);
        if (!check(t != NULL, "a demo task is registered"))
            continue;
        check_int(task_allowed(t, ""), 0);
        check_int(task_allowed(t, "read write"), 0);
        check_int(task_allowed(t, "administrator"), 0);
        check_int(task_allowed(t, "read admin"), 1);
    }
    static const char *const anyone[] = {"tasks.add", "tasks.mul", "tasks.xsum", "tasks.fail"};
    for (size_t i = 0; i < 4; i++)
        check_int(task_allowed(task_find(anyone[i]), ""), 1);
    const struct task_def reports = {.name = "mine.report", .params = "", .fn = no_result,
                                     .scope = "reports"};
    check_int(task_allowed(&reports, "read"), 0);
    check_int(task_allowed(&reports, "read reports"), 1);
    check_int(task_allowed(&reports, "admin"), 1);

    check(task_time_limit_max(task_find("tasks.add"), 300) == 300, "the default");
    check(task_time_limit_max(task_find("tasks.add"), 0) == 0, "no default: none");
    const struct task_def own = {.name = "x.y", .fn = no_result, .policy = {.time_limit = 5}};
    check(task_time_limit_max(&own, 300) == 5, "the policy's own");
    const struct task_def unbounded = {.name = "x.z", .fn = no_result,
                                       .policy = {.time_limit = TASK_NONE}};
    check(task_time_limit_max(&unbounded, 300) == 0, "TASK_NONE: no bound");
}

int main(void)
{
    test_find();
    test_allowed_and_limits();
    test_bind_ok();
    test_bind_errors();
    test_custom();
    test_run_arith();
    test_run_xsum();
    test_run_fail_sleep();
    test_retry_alloc_interrupt();
    json_decref(rctx.result);
    json_decref(b_args);
    json_decref(b_kwargs);
    return check_done();
}
