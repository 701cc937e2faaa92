#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Prometheus metrics for a system of many processes, exact across them.
 *
 * Each process that records (route programs, queue-runner workers) owns one
 * file in METRICS_DIR, <program>.<pid>.<start>, mapped shared; recording is
 * a few relaxed atomic adds on it (no syscall, no lock). cgi-bin/metrics
 * sums every file at scrape time. A process that dies leaves its file and
 * so its counts: nothing is lost when lighttpd respawns a route or the
 * runner replaces a worker, and nothing is counted twice (the new process
 * has a file of its own). Gauges (in flight, running) are summed over live
 * processes only. scripts/run starts with an empty METRICS_DIR, as
 * Prometheus expects of a restarted target.
 *
 * Dead processes' files are folded (metrics_fold) into one file per
 * program and route, folded.<program>.<route>, and removed, so the
 * directory holds the live processes plus those totals however often
 * processes die: /metrics folds at each scrape, and the runner's
 * supervisor each time it replaces a worker. A fold is exactly once: the
 * totals remember the last file added (a folder killed between adding and
 * removing does not add it twice), and folds and scrapes exclude each other
 * (flock on the directory), so a scrape never sees a file both in the
 * totals and on its own.
 *
 * Off (every call a no-op) when METRICS_DIR is unset or empty, or when
 * METRICS=0. */

#define MX_MAGIC 0x4d587632u /* "MXv2" */
#define MX_METHODS 8         /* GET HEAD POST PUT PATCH DELETE OPTIONS other */
#define MX_STATUSES 32       /* http.h's statuses, then "other" */
#define MX_BUCKETS 14
#define MX_TASKS 16          /* the registry's tasks, the last one "unregistered" */
#define MX_STATES 4          /* SUCCESS FAILURE RETRY REVOKED */

enum mx_kind { MX_HTTP = 1, MX_RUNNER = 2 };
enum mx_error { MX_ERR_REDIS, MX_ERR_PG };

/* Upper bounds (seconds) of the duration histograms' buckets; +Inf is the
 * count. Shared by HTTP request durations and task run times. */
extern const double mx_bucket_le[MX_BUCKETS];
extern const char *const mx_method_names[MX_METHODS];
extern const char *const mx_state_names[MX_STATES];
/* The status code of index i (0 for "other"). */
int mx_status_code(int i);

/* The file's layout: fixed, so the scraper reads any process's file. */
struct mx_file {
    uint32_t magic, size;
    int32_t pid, kind;
    uint64_t proc_start; /* /proc/<pid>/stat starttime: is that process still it? */
    double start_time;   /* Unix seconds */
    char program[32];
    char route[96];
    int64_t inflight;
    int64_t running; /* tasks running now (runner) */
    uint64_t requests[MX_METHODS][MX_STATUSES];
    uint64_t req_bucket[MX_BUCKETS];
    uint64_t req_count, req_sum_us;
    uint64_t errors[2]; /* enum mx_error */
    uint64_t tasks[MX_TASKS][MX_STATES];
    uint64_t task_bucket[MX_TASKS][MX_BUCKETS];
    uint64_t task_count[MX_TASKS], task_sum_us[MX_TASKS];
    char folded_from[128]; /* totals files: the name of the last file added */
};

/* The totals of dead processes are in files named with this prefix. */
#define MX_FOLDED_PREFIX "folded."

/* Start recording for this process (call again after fork: the child gets
 * a file of its own). route: the URL prefix served ("" for the runner).
 * Returns 0 (also when metrics are off), or -1 (logged) when the file
 * cannot be made: the process goes on without metrics. */
int metrics_open(const char *program, const char *route, enum mx_kind kind);
/* Stop recording (the file stays: it holds this process's counts). */
void metrics_close(void);

void metrics_request_begin(void);
void metrics_request_end(const char *method, int status, double seconds);
/* A request that began and will never be answered (its client left). */
void metrics_request_cancel(void);
void metrics_error(enum mx_error which);
void metrics_task_begin(void);
/* task: the registry name (anything else counts as "unregistered");
 * state: a Celery state; seconds: its run time. */
void metrics_task_end(const char *task, const char *state, double seconds);

/* For the scraper: 1 if the file's process is alive (same pid, same start). */
int metrics_alive(const struct mx_file *f);

/* Fold every dead process's file in dir (NULL: METRICS_DIR) into its
 * program's totals file and remove it. Returns the number folded (0 when
 * metrics are off), or -1 (logged) when dir cannot be read. */
int metrics_fold(const char *dir);

/* Hold the directory for reading every file as one consistent sum (no fold
 * meanwhile): an fd to pass to metrics_unlock, or -1 (read anyway). */
int metrics_lock_shared(const char *dir);
void metrics_unlock(int fd);

#endif
