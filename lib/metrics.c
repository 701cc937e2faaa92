#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "task.h"

const double mx_bucket_le[MX_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const char *const mx_method_names[MX_METHODS] = {"GET",    "HEAD",    "POST",  "PUT",
                                                 "PATCH",  "DELETE",  "OPTIONS", "other"};
const char *const mx_state_names[MX_STATES] = {"SUCCESS", "FAILURE", "RETRY", "REVOKED"};

static const int status_codes[] = {
#define X(code, reason) code,
    HTTP_STATUS_MAP(X)
#undef X
};
#define NCODES (sizeof(status_codes) / sizeof(status_codes[0]))
_Static_assert(NCODES < MX_STATUSES, "MX_STATUSES must hold every status and 'other'");

static struct mx_file *mx; /* NULL: off */

int mx_status_code(int i)
{
    return i >= 0 && (size_t)i < NCODES ? status_codes[i] : 0;
}

#define ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)

/* Field 22 of /proc/<pid>/stat: the start time in clock ticks. 0 if gone. */
static uint64_t proc_start(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    if (p == NULL)
        return 0;
    for (int field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

int metrics_alive(const struct mx_file *f)
{
    return f->pid > 0 && proc_start(f->pid) == f->proc_start;
}

void metrics_close(void)
{
    if (mx != NULL)
        munmap(mx, sizeof(*mx));
    mx = NULL;
}

int metrics_open(const char *program, const char *route, enum mx_kind kind)
{
    metrics_close();
    const char *dir = getenv("METRICS_DIR");
    const char *on = getenv("METRICS");
    if (dir == NULL || dir[0] == '\0' || (on != NULL && strcmp(on, "0") == 0))
        return 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_warn("metrics off: cannot make %s: %s", dir, strerror(errno));
        return -1;
    }
    long pid = (long)getpid();
    uint64_t start = proc_start(pid);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.%ld.%llu", dir, program, pid, (unsigned long long)start);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, sizeof(struct mx_file)) != 0) {
        log_warn("metrics off: %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    void *m = mmap(NULL, sizeof(struct mx_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        log_warn("metrics off: mmap %s: %s", path, strerror(errno));
        return -1;
    }
    struct mx_file *f = m;
    f->size = sizeof(*f);
    f->pid = (int32_t)pid;
    f->kind = kind;
    f->proc_start = start;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    f->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    snprintf(f->program, sizeof(f->program), "%s", program);
    snprintf(f->route, sizeof(f->route), "%s", route);
    /* last: a scraper skips a file whose magic is not there yet */
    __atomic_store_n(&f->magic, MX_MAGIC, __ATOMIC_RELEASE);
    mx = f;
    return 0;
}

static int bucket_of(double seconds)
{
    int b = 0;
    while (b < MX_BUCKETS && seconds > mx_bucket_le[b])
        b++;
    return b; /* MX_BUCKETS: only +Inf */
}

void metrics_request_begin(void)
{
    if (mx != NULL)
        ADD(mx->inflight, 1);
}

void metrics_request_end(const char *method, int status, double seconds)
{
    if (mx == NULL)
        return;
    int m = 0;
    while (m < MX_METHODS - 1 && strcmp(mx_method_names[m], method) != 0)
        m++;
    int s = 0;
    while ((size_t)s < NCODES && status_codes[s] != status)
        s++;
    ADD(mx->requests[m][s], 1);
    int b = bucket_of(seconds);
    if (b < MX_BUCKETS)
        ADD(mx->req_bucket[b], 1);
    ADD(mx->req_count, 1);
    ADD(mx->req_sum_us, (uint64_t)(seconds * 1e6));
    ADD(mx->inflight, -1);
}

void metrics_request_cancel(void)
{
    if (mx != NULL)
        ADD(mx->inflight, -1);
}

void metrics_error(enum mx_error which)
{
    if (mx != NULL)
        ADD(mx->errors[which], 1);
}

void metrics_task_begin(void)
{
    if (mx != NULL)
        ADD(mx->running, 1);
}

void metrics_task_end(const char *task, const char *state, double seconds)
{
    if (mx == NULL)
        return;
    int t = 0;
    while (t < MX_TASKS - 1 && task_registry[t].name != NULL &&
           (task == NULL || strcmp(task_registry[t].name, task) != 0))
        t++;
    if (t < MX_TASKS - 1 && task_registry[t].name == NULL)
        t = MX_TASKS - 1;
    int s = 0;
    while (s < MX_STATES && strcmp(mx_state_names[s], state) != 0)
        s++;
    if (s < MX_STATES)
        ADD(mx->tasks[t][s], 1);
    int b = bucket_of(seconds);
    if (b < MX_BUCKETS)
        ADD(mx->task_bucket[t][b], 1);
    ADD(mx->task_count[t], 1);
    ADD(mx->task_sum_us[t], (uint64_t)(seconds * 1e6));
    ADD(mx->running, -1);
}

/* ---- folding dead processes' files ---------------------------------- */

/* Add the counters of f into t (gauges are live processes' only: not
 * added). Relaxed loads: f's process is dead, t is ours under the lock. */
static void fold_into(struct mx_file *t, const struct mx_file *f)
{
#define SUM(field) t->field += __atomic_load_n(&f->field, __ATOMIC_RELAXED)
    for (int m = 0; m < MX_METHODS; m++)
        for (int st = 0; st < MX_STATUSES; st++)
            SUM(requests[m][st]);
    for (int b = 0; b < MX_BUCKETS; b++)
        SUM(req_bucket[b]);
    SUM(req_count);
    SUM(req_sum_us);
    for (int e = 0; e < 2; e++)
        SUM(errors[e]);
    for (int k = 0; k < MX_TASKS; k++) {
        for (int st = 0; st < MX_STATES; st++)
            SUM(tasks[k][st]);
        for (int b = 0; b < MX_BUCKETS; b++)
            SUM(task_bucket[k][b]);
        SUM(task_count[k]);
        SUM(task_sum_us[k]);
    }
#undef SUM
}

/* The totals file of f's program and route: folded.<program>.<route>, the
 * route's characters other than [A-Za-z0-9] as '_'. */
static void totals_name(const struct mx_file *f, char *out, size_t n)
{
    char prog[sizeof(f->program)], route[sizeof(f->route)];
    snprintf(prog, sizeof(prog), "%.*s", (int)sizeof(f->program) - 1, f->program);
    snprintf(route, sizeof(route), "%.*s", (int)sizeof(f->route) - 1, f->route);
    for (char *p = prog; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            *p = '_';
    for (char *p = route; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    snprintf(out, n, MX_FOLDED_PREFIX "%s.%s", prog, route);
}

/* Fold the dead file `name` (mapped at f) into its totals, then remove it.
 * The caller holds the directory's exclusive lock. 0, or -1. */
static int fold_one(int dirfd_, const char *name, const struct mx_file *f)
{
    char tname[256];
    totals_name(f, tname, sizeof(tname));
    int fd = openat(dirfd_, tname, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 ||
        ((size_t)st.st_size != sizeof(struct mx_file) && ftruncate(fd, sizeof(struct mx_file)) != 0)) {
        close(fd);
        return -1;
    }
    struct mx_file *t =
        mmap(NULL, sizeof(struct mx_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (t == MAP_FAILED)
        return -1;
    if (t->magic != MX_MAGIC || t->size != sizeof(*t)) {
        memset(t, 0, sizeof(*t));
        t->size = sizeof(*t);
        t->kind = f->kind;
        t->start_time = f->start_time; /* pid 0: never counted as alive */
        memcpy(t->program, f->program, sizeof(t->program));
        memcpy(t->route, f->route, sizeof(t->route));
        t->magic = MX_MAGIC;
    }
    /* a folder killed after adding and before removing left its name */
    if (strncmp(t->folded_from, name, sizeof(t->folded_from)) != 0) {
        struct mx_file sum = *t;
        fold_into(&sum, f);
        snprintf(sum.folded_from, sizeof(sum.folded_from), "%s", name);
        *t = sum;
    }
    munmap(t, sizeof(struct mx_file));
    return unlinkat(dirfd_, name, 0) == 0 ? 0 : -1;
}

static const char *metrics_dir(const char *dir)
{
    if (dir != NULL)
        return dir;
    const char *on = getenv("METRICS");
    dir = getenv("METRICS_DIR");
    if (dir == NULL || dir[0] == '\0' || (on != NULL && strcmp(on, "0") == 0))
        return NULL;
    return dir;
}

int metrics_fold(const char *dir)
{
    dir = metrics_dir(dir);
    if (dir == NULL)
        return 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno != ENOENT)
            log_warn("metrics: %s: %s", dir, strerror(errno));
        return errno == ENOENT ? 0 : -1;
    }
    int dfd = dirfd(d), n = 0;
    if (flock(dfd, LOCK_EX) != 0) {
        closedir(d);
        return -1;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, MX_FOLDED_PREFIX, sizeof(MX_FOLDED_PREFIX) - 1) == 0)
            continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        void *m = MAP_FAILED;
        if (fstat(fd, &st) == 0 && (size_t)st.st_size == sizeof(struct mx_file))
            m = mmap(NULL, sizeof(struct mx_file), PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
            continue;
        const struct mx_file *f = m;
        /* a file still being made has no magic yet: its process is alive */
        if (__atomic_load_n(&f->magic, __ATOMIC_ACQUIRE) == MX_MAGIC && f->size == sizeof(*f) &&
            !metrics_alive(f) && fold_one(dfd, e->d_name, f) == 0)
            n++;
        munmap(m, sizeof(struct mx_file));
    }
    flock(dfd, LOCK_UN);
    closedir(d);
    return n;
}

int metrics_lock_shared(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_SH) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void metrics_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the lock */
}
