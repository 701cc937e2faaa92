#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
