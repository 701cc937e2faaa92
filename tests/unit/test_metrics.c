/* lib/metrics.c: folding dead processes' files into their program's totals
 * (the scraping itself is exercised through the gateway in
 * tests/metrics.bats). */
#include "../../lib/metrics.c"

#include <sys/wait.h>

#include "check.h"

static char dir[] = "/tmp/test_metrics.XXXXXX";

/* A process's file as it leaves it: recorded by a child that then exits,
 * so its pid is dead when we fold. Returns the file's name. */
static void dead_file(const char *program, const char *route, int requests, char *name,
                      size_t n)
{
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        metrics_open(program, route, MX_HTTP);
        for (int i = 0; i < requests; i++) {
            metrics_request_begin();
            metrics_request_end("GET", 200, 0.001);
        }
        metrics_request_begin(); /* in flight when it died: a gauge, not folded */
        char path[256];
        snprintf(path, sizeof(path), "%s.%ld.%llu", program, (long)getpid(),
                 (unsigned long long)proc_start((long)getpid()));
        ssize_t w = write(fds[1], path, strlen(path) + 1);
        _exit(w > 0 ? 0 : 1);
    }
    close(fds[1]);
    ssize_t r = read(fds[0], name, n);
    close(fds[0]);
    if (r <= 0)
        name[0] = '\0';
    waitpid(pid, NULL, 0);
}

/* The mapped totals file of program hello at /api/hello. */
static struct mx_file *totals(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/" MX_FOLDED_PREFIX "hello._api_hello", dir);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return NULL;
    void *m = mmap(NULL, sizeof(struct mx_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

static int exists(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

int main(void)
{
    if (!check(mkdtemp(dir) != NULL, "a temp dir"))
        return check_done();
    setenv("METRICS_DIR", dir, 1);
    unsetenv("METRICS");
    char a[256], b[256];
    dead_file("hello", "/api/hello", 3, a, sizeof(a));
    dead_file("hello", "/api/hello", 4, b, sizeof(b));
    /* a live file (ours) is left alone */
    metrics_open("hello", "/api/hello", MX_HTTP);
    metrics_request_begin();
    metrics_request_end("GET", 200, 0.001);

    check_int(metrics_fold(NULL), 2);
    check(!exists(a) && !exists(b), "the dead files are gone");
    struct mx_file *t = totals();
    if (check(t != NULL, "the totals file is there")) {
        check_int((int)t->req_count, 7);
        check_int((int)t->requests[0][0 /* 200 is the first status */], 7);
        check_int((int)t->inflight, 0);
        check_int(t->pid, 0);
        check(!metrics_alive(t), "a totals file never counts as alive");
    }
    check_int(metrics_fold(NULL), 0); /* nothing dead left: nothing added */
    check_int((int)t->req_count, 7);

    /* a folder killed after adding a file and before removing it: the next
     * fold removes it without adding it again */
    char c[256];
    dead_file("hello", "/api/hello", 5, c, sizeof(c));
    snprintf(t->folded_from, sizeof(t->folded_from), "%.127s", c);
    check_int(metrics_fold(NULL), 1);
    check(!exists(c), "the half-folded file is gone");
    check_int((int)t->req_count, 7);

    /* a metrics-off process folds nothing */
    setenv("METRICS", "0", 1);
    check_int(metrics_fold(NULL), 0);
    unsetenv("METRICS");

    munmap(t, sizeof(*t));
    metrics_close();
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    check_int(system(cmd), 0);
    return check_done();
}
