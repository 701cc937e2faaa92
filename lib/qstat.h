#ifndef QSTAT_H
#define QSTAT_H

#include <stddef.h>

#include "celery.h"
#include "redis.h"

/* A read of the task queue's state from Redis, for the programs that show
 * it (GET /api/queues, /metrics): the live runners, and per queue the
 * messages waiting (every priority band), the age of the oldest of them,
 * the messages in flight, scheduled (qrun:scheduled:<q>) and failed
 * (qrun:failed:<q>). Keys as in qrun.h and notes/issue4-design.md.
 *
 * Every read is bounded, whatever Redis holds: at most QSTAT_MAX_QUEUES
 * queues, QSTAT_MAX_RUNNERS runners listed, and the in-flight lists of at
 * most QSTAT_MAX_RUNNERS registered runners (QSTAT_MAX_LISTS lists,
 * QSTAT_MAX_PER_LIST messages each); `truncated` says when a cap cut. */

#define QSTAT_MAX_QUEUES 100
#define QSTAT_MAX_RUNNERS 100
#define QSTAT_MAX_LISTS 4096
#define QSTAT_MAX_PER_LIST 64

struct qstat_runner {
    char id[192];
    char host[256];     /* "" when its hash is gone */
    long long pid;      /* -1 when unknown */
    char queues[1024];  /* "a,b" as it registered */
    long long concurrency;
    long long heartbeat_ms; /* last heartbeat, ms since epoch */
    long long started_ms;   /* -1 when unknown */
};

struct qstat_queue {
    char name[CEL_QUEUE_MAX];
    long long depth;     /* waiting, all four priority bands */
    long long oldest_ms; /* age of the next message to be claimed; -1 when empty */
    long long in_flight, scheduled, failed;
};

struct qstat {
    struct qstat_runner *runners; /* alive ones (the newest heartbeats), by id */
    size_t nrunners;
    long long alive;              /* runners alive (may exceed nrunners) */
    struct qstat_queue *queues;   /* sorted by name (strcmp) */
    size_t nqueues;
    long long in_flight;          /* every in-flight message, of any queue */
    int truncated;                /* a cap above left something out */
    size_t qcap;                  /* private: room in queues */
};

/* Which queues qstat_read lists: always "celery" and every queue a live
 * runner consumes; with QSTAT_KNOWN also the members of qrun:queues. */
#define QSTAT_KNOWN 1

/* Fill s (zeroed first) as of now_ms; runners are alive when their heartbeat
 * is at most lease_s old. The oldest waiting message's age counts from the
 * first read that saw it at the head of its list (Celery's messages carry
 * no enqueue time): qrun:seen:<queue> keeps that time per head message, so
 * every reader (both programs, every process) agrees, within the interval
 * between reads. Returns 0, or -1 with the reason in r->err (Redis down or
 * failing: nothing partial to show). Free s with qstat_free either way. */
int qstat_read(struct rds *r, long long now_ms, long lease_s, int flags, struct qstat *s)
    __attribute__((warn_unused_result));
void qstat_free(struct qstat *s);

/* 1 if a runner whose heartbeat is at most lease_s old consumes queue q
 * (its -Q list), 0 if none does, -1 if Redis failed. One Lua call; at most
 * QSTAT_MAX_RUNNERS runners are looked at. */
int qstat_consumed(struct rds *r, const char *q, long long now_ms, long lease_s);

#endif
