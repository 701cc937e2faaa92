/* /metrics: Prometheus text format (0.0.4) for the whole stack.
 *
 *   GET /metrics -> 200 text/plain; version=0.0.4
 *
 * Sums every process's counters (lib/metrics.h: one shared file per route
 * process and runner worker, and the folded totals of dead ones, so counts
 * survive respawns and the directory stays bounded), and reads the queues' state from Redis at scrape time: depth
 * and age of the oldest waiting task per queue, tasks in flight, runners
 * alive (lib/qstat.h, as GET /api/queues). lighttpd.conf lets only
 * loopback and GW_METRICS_ALLOW reach it. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "qrun.h"
#include "qstat.h"
#include "redis.h"
#include "serve.h"
#include "task.h"

#define MAX_ROUTES 32
#define MAX_PROGRAMS 32

static struct {
    char *dir, *redis_url;
    long lease;
} cfg;

struct route_sum {
    char route[96];
    uint64_t requests[MX_METHODS][MX_STATUSES];
    uint64_t bucket[MX_BUCKETS];
    uint64_t count, sum_us;
    int64_t inflight;
};

struct program_sum {
    char program[32];
    uint64_t errors[2];
    double start_time; /* the newest live process's */
};

static struct {
    struct route_sum routes[MAX_ROUTES];
    size_t nroutes;
    struct program_sum programs[MAX_PROGRAMS];
    size_t nprograms;
    uint64_t tasks[MX_TASKS][MX_STATES];
    uint64_t task_bucket[MX_TASKS][MX_BUCKETS];
    uint64_t task_count[MX_TASKS], task_sum_us[MX_TASKS];
    int64_t running;
} S;

static struct rds redis;
static int redis_ready;

static struct route_sum *route_of(const char *route)
{
    for (size_t i = 0; i < S.nroutes; i++)
        if (strcmp(S.routes[i].route, route) == 0)
            return &S.routes[i];
    if (S.nroutes == MAX_ROUTES)
        return NULL;
    struct route_sum *r = &S.routes[S.nroutes++];
    snprintf(r->route, sizeof(r->route), "%s", route);
    return r;
}

static struct program_sum *program_of(const char *program)
{
    for (size_t i = 0; i < S.nprograms; i++)
        if (strcmp(S.programs[i].program, program) == 0)
            return &S.programs[i];
    if (S.nprograms == MAX_PROGRAMS)
        return NULL;
    struct program_sum *p = &S.programs[S.nprograms++];
    snprintf(p->program, sizeof(p->program), "%s", program);
    return p;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Add one process's file into S. */
static void add_file(const struct mx_file *f)
{
    if (LOAD(f->magic) != MX_MAGIC || f->size != sizeof(*f))
        return;
    char program[32], route[96];
    snprintf(program, sizeof(program), "%.*s", (int)sizeof(f->program) - 1, f->program);
    snprintf(route, sizeof(route), "%.*s", (int)sizeof(f->route) - 1, f->route);
    int alive = metrics_alive(f);
    struct program_sum *p = program_of(program);
    if (p != NULL) {
        for (int e = 0; e < 2; e++)
            p->errors[e] += LOAD(f->errors[e]);
        if (alive && f->start_time > p->start_time)
            p->start_time = f->start_time;
    }
    if (f->kind == MX_HTTP) {
        struct route_sum *r = route_of(route);
        if (r == NULL)
            return;
        for (int m = 0; m < MX_METHODS; m++)
            for (int s = 0; s < MX_STATUSES; s++)
                r->requests[m][s] += LOAD(f->requests[m][s]);
        for (int b = 0; b < MX_BUCKETS; b++)
            r->bucket[b] += LOAD(f->req_bucket[b]);
        r->count += LOAD(f->req_count);
        r->sum_us += LOAD(f->req_sum_us);
        if (alive)
            r->inflight += LOAD(f->inflight);
    } else if (f->kind == MX_RUNNER) {
        for (int t = 0; t < MX_TASKS; t++) {
            for (int s = 0; s < MX_STATES; s++)
                S.tasks[t][s] += LOAD(f->tasks[t][s]);
            for (int b = 0; b < MX_BUCKETS; b++)
                S.task_bucket[t][b] += LOAD(f->task_bucket[t][b]);
            S.task_count[t] += LOAD(f->task_count[t]);
            S.task_sum_us[t] += LOAD(f->task_sum_us[t]);
        }
        if (alive)
            S.running += LOAD(f->running);
    }
}

/* Sum every file: the live processes' and the folded totals of the dead
 * (folded first, here: the directory stays as large as what is alive). */
static void read_files(void)
{
    memset(&S, 0, sizeof(S));
    if (metrics_fold(cfg.dir) < 0)
        log_warn("metrics: folding dead processes' files failed");
    int lock = metrics_lock_shared(cfg.dir);
    DIR *d = opendir(cfg.dir);
    if (d == NULL) {
        metrics_unlock(lock);
        return;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && (size_t)st.st_size == sizeof(struct mx_file)) {
            void *m = mmap(NULL, sizeof(struct mx_file), PROT_READ, MAP_SHARED, fd, 0);
            if (m != MAP_FAILED) {
                add_file(m);
                munmap(m, sizeof(struct mx_file));
            }
        }
        close(fd);
    }
    closedir(d);
    metrics_unlock(lock);
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void label(struct buf *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            buf_putc(b, '\\');
        if (*v == '\n') {
            buf_puts(b, "\\n");
            continue;
        }
        buf_putc(b, *v);
    }
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Histogram series for one label set: cumulative buckets, sum, count. */
static void histogram(struct buf *b, const char *name, const char *lname, const char *lvalue,
                      const uint64_t *bucket, uint64_t count, uint64_t sum_us)
{
    uint64_t cum = 0;
    for (int i = 0; i < MX_BUCKETS; i++) {
        cum += bucket[i];
        buf_printf(b, "%s_bucket{%s=\"", name, lname);
        label(b, lvalue);
        buf_printf(b, "\",le=\"%g\"} %llu\n", mx_bucket_le[i], (unsigned long long)cum);
    }
    buf_printf(b, "%s_bucket{%s=\"", name, lname);
    label(b, lvalue);
    buf_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)count);
    buf_printf(b, "%s_sum{%s=\"", name, lname);
    label(b, lvalue);
    buf_printf(b, "\"} %.6f\n", sum_us / 1e6);
    buf_printf(b, "%s_count{%s=\"", name, lname);
    label(b, lvalue);
    buf_printf(b, "\"} %llu\n", (unsigned long long)count);
}

static const char *task_label(int t)
{
    return t == MX_TASKS - 1 ? "unregistered" : task_registry[t].name;
}

static int ntasks(void)
{
    int n = 0;
    while (n < MX_TASKS - 1 && task_registry[n].name != NULL)
        n++;
    return n;
}

static void write_http(struct buf *b)
{
    head(b, "http_requests_total", "counter", "HTTP requests answered, by route, method, status.");
    for (size_t i = 0; i < S.nroutes; i++) {
        const struct route_sum *r = &S.routes[i];
        for (int m = 0; m < MX_METHODS; m++) {
            for (int s = 0; s < MX_STATUSES; s++) {
                if (r->requests[m][s] == 0)
                    continue;
                int code = mx_status_code(s);
                buf_puts(b, "http_requests_total{route=\"");
                label(b, r->route);
                buf_printf(b, "\",method=\"%s\",status=\"", mx_method_names[m]);
                if (code)
                    buf_printf(b, "%d", code);
                else
                    buf_puts(b, "other");
                buf_printf(b, "\"} %llu\n", (unsigned long long)r->requests[m][s]);
            }
        }
    }
    head(b, "http_request_duration_seconds", "histogram",
         "Time from a complete request to its response, in the route program.");
    for (size_t i = 0; i < S.nroutes; i++)
        histogram(b, "http_request_duration_seconds", "route", S.routes[i].route,
                  S.routes[i].bucket, S.routes[i].count, S.routes[i].sum_us);
    head(b, "http_requests_in_flight", "gauge", "Requests being handled now, by route.");
    for (size_t i = 0; i < S.nroutes; i++) {
        buf_puts(b, "http_requests_in_flight{route=\"");
        label(b, S.routes[i].route);
        buf_printf(b, "\"} %lld\n", (long long)S.routes[i].inflight);
    }
}

static void write_tasks(struct buf *b)
{
    int n = ntasks();
    int idx[MX_TASKS];
    int k = 0;
    for (int t = 0; t < n; t++)
        idx[k++] = t;
    idx[k++] = MX_TASKS - 1;
    head(b, "tasks_total", "counter", "Tasks finished by the queue runners, by task and state.");
    for (int i = 0; i < k; i++)
        for (int s = 0; s < MX_STATES; s++)
            buf_printf(b, "tasks_total{task=\"%s\",state=\"%s\"} %llu\n", task_label(idx[i]),
                       mx_state_names[s], (unsigned long long)S.tasks[idx[i]][s]);
    uint64_t failed = 0, retried = 0;
    for (int t = 0; t < MX_TASKS; t++) {
        failed += S.tasks[t][1];
        retried += S.tasks[t][2];
    }
    head(b, "tasks_failed_total", "counter", "Tasks that ended in FAILURE.");
    buf_printf(b, "tasks_failed_total %llu\n", (unsigned long long)failed);
    head(b, "tasks_retried_total", "counter", "Task runs that ended in RETRY.");
    buf_printf(b, "tasks_retried_total %llu\n", (unsigned long long)retried);
    head(b, "task_runtime_seconds", "histogram", "Run time of finished tasks, by task.");
    for (int i = 0; i < k; i++)
        histogram(b, "task_runtime_seconds", "task", task_label(idx[i]), S.task_bucket[idx[i]],
                  S.task_count[idx[i]], S.task_sum_us[idx[i]]);
    head(b, "tasks_running", "gauge", "Tasks executing in a runner worker now.");
    buf_printf(b, "tasks_running %lld\n", (long long)S.running);
}

static void write_programs(struct buf *b)
{
    static const char *const names[2] = {"redis_errors_total", "postgres_errors_total"};
    static const char *const help[2] = {"Failed Redis calls (connection or error reply).",
                                        "Failed PostgreSQL calls (connection, timeout, error)."};
    for (int e = 0; e < 2; e++) {
        head(b, names[e], "counter", help[e]);
        for (size_t i = 0; i < S.nprograms; i++)
            buf_printf(b, "%s{program=\"%s\"} %llu\n", names[e], S.programs[i].program,
                       (unsigned long long)S.programs[i].errors[e]);
    }
    head(b, "process_start_time_seconds", "gauge",
         "Start of the newest live process of each program, Unix seconds.");
    for (size_t i = 0; i < S.nprograms; i++)
        if (S.programs[i].start_time > 0)
            buf_printf(b, "process_start_time_seconds{program=\"%s\"} %.3f\n",
                       S.programs[i].program, S.programs[i].start_time);
}

static void write_queues(struct buf *b)
{
    if (!redis_ready) {
        char err[128];
        if (rds_init(&redis, cfg.redis_url, 500, err, sizeof(err)) != 0)
            return;
        redis_ready = 1;
    }
    /* the same read as GET /api/queues (lib/qstat.h), for the queues this
     * page has always listed: celery and those of live runners */
    struct qstat s;
    int up = qstat_read(&redis, qrun_now_ms(), cfg.lease, 0, &s) == 0;
    head(b, "redis_up", "gauge", "Whether this scrape could read the queues from Redis.");
    buf_printf(b, "redis_up %d\n", up);
    if (!up) {
        qstat_free(&s);
        return;
    }
    head(b, "runners_alive", "gauge", "Queue runners with a heartbeat within the lease.");
    buf_printf(b, "runners_alive %lld\n", s.alive);
    head(b, "tasks_in_flight", "gauge", "Tasks claimed by runners and not finished.");
    buf_printf(b, "tasks_in_flight %lld\n", s.in_flight);
    head(b, "queue_depth", "gauge", "Tasks waiting in the queue (every priority band).");
    for (size_t i = 0; i < s.nqueues; i++) {
        buf_puts(b, "queue_depth{queue=\"");
        label(b, s.queues[i].name);
        buf_printf(b, "\"} %lld\n", s.queues[i].depth);
    }
    head(b, "queue_oldest_age_seconds", "gauge",
         "Age of the next task to be claimed, counted from the first scrape that saw it.");
    for (size_t i = 0; i < s.nqueues; i++) {
        long long ms = s.queues[i].oldest_ms;
        buf_puts(b, "queue_oldest_age_seconds{queue=\"");
        label(b, s.queues[i].name);
        buf_printf(b, "\"} %.3f\n", ms < 0 ? 0.0 : (double)ms / 1000.0);
    }
    qstat_free(&s);
}

/* GET /metrics */
static int metrics(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg != 0)
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET") != 0)
        return rs->status;
    read_files();
    write_http(&rs->body);
    write_tasks(&rs->body);
    write_programs(&rs->body);
    write_queues(&rs->body);
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return rs->status = 200;
}

int main(int argc, char **argv)
{
    static const struct conf_entry conf[] = {
        {"METRICS_DIR", CONF_STR, "", &cfg.dir, 0, 0, NULL, NULL},
        {"REDIS_URL", CONF_STR, "unix:///run/redis/redis.sock", &cfg.redis_url, 0, 0, NULL,
         rds_url_check},
        {"RUNNER_LEASE", CONF_INT, "10", &cfg.lease, 1, 86400, NULL, NULL},
    };
    return serve_main(argc, argv, "metrics", conf, sizeof(conf) / sizeof(conf[0]), metrics);
}
