#ifndef QRUN_H
#define QRUN_H

#include <jansson.h>
#include <stddef.h>

#include "celery.h"
#include "redis.h"

/* The queue's reliability layer on Redis, shared by bin/queue-runner and the
 * programs that inspect it. Celery's own structures (queue lists, result
 * keys) are untouched; these keys are ours:
 *
 *   qrun:runners              ZSET  runner id -> last heartbeat (ms since epoch)
 *   qrun:runner:<id>          HASH  host, pid, queues, concurrency, started (TTL)
 *   qrun:inflight:<id>:<slot> LIST  the message worker <slot> of runner <id>
 *                                   has claimed and not yet finished
 *   qrun:queues               SET   every queue name seen (submit, defer, failure)
 *   qrun:scheduled:<queue>    ZSET  delayed messages (eta, countdown, retry
 *                                   backoff) -> eta in ms; moved to the queue
 *                                   when due by qrun_promote
 *   qrun:eta:<id>             STRING a delayed task's eta, as its expiry, so
 *                                   a revoke can outlive the wait
 *   qrun:revoked:<id>         STRING a revoke ("1" or "terminate"), TTL
 *                                   RESULT_EXPIRES past the task's eta
 *   qrun:failed:<queue>       ZSET  ids that ended FAILURE -> time (ms), bounded
 *   qrun:failedmsg:<id>       STRING their message, for a re-run, TTL
 *
 * and, for tasks submitted over HTTP (their message's headers.owner, the
 * submitter's token sub; see qsubmit.c):
 *
 *   qrun:owner:<id>           STRING the owner, for metas a Python worker
 *                                   writes without one; TTL RESULT_EXPIRES
 *                                   past the eta
 *   qrun:active:<owner>       ZSET  the owner's tasks queued, scheduled or
 *                                   running -> deadline (ms); TTL
 *   qrun:rate:<owner>:<s>     STRING submits in second s; TTL 2 s
 *   qrun:ufailed:<owner>:<q>  ZSET  the owner's part of qrun:failed:<q>,
 *                                   same bounds; TTL FAILED_AGE
 *
 * A worker claims a message by moving it atomically from its queue list into
 * its in-flight list (LMOVE in a script, or BLMOVE), and removes it in the
 * same script that stores the result: a message is always in exactly one
 * list, so no crash can lose it, and no result is stored twice. In-flight
 * lists have no TTL on purpose (an expiry would lose tasks); they hold at
 * most one message each and are emptied when their worker or runner dies:
 * by its own supervisor at once, or by any live runner once the dead
 * runner's heartbeat is older than the lease. */

#define QRUN_RUNNERS "qrun:runners"
#define QRUN_QUEUES "qrun:queues"
#define QRUN_SCHEDULED "qrun:scheduled:"
#define QRUN_REVOKED "qrun:revoked:"
#define QRUN_FAILED "qrun:failed:"
#define QRUN_FAILEDMSG "qrun:failedmsg:"
#define QRUN_ETA "qrun:eta:"
#define QRUN_OWNER "qrun:owner:"
#define QRUN_UFAILED "qrun:ufailed:"
#define QRUN_MAX_SLOTS 256
#define QRUN_FAILED_MAX 10000   /* failed ids kept per queue */
#define QRUN_FAILED_AGE 604800 /* and for this long (s) */

/* Where and when a submitted task runs, and its limits. */
struct qrun_opts {
    const char *queue; /* NULL: "celery" (cel_queue_valid) */
    int priority;      /* 0..9, lower first */
    double eta;        /* epoch seconds; 0: now */
    double expires;    /* epoch seconds; 0: never */
    double time_limit, soft_time_limit; /* seconds; 0: the runner's defaults */
};

/* The failed lists' bounds for this process (defaults above). */
void qrun_failed_limits(long max_count, long max_age_s);

/* Key names into out; -1 if they do not fit. */
int qrun_inflight_key(char *out, size_t n, const char *runner, int slot);
int qrun_runner_key(char *out, size_t n, const char *runner);

/* Claim up to max messages from keys[0..nkeys) (priority order: all of
 * the first list before the second) into inflight, and store their STARTED
 * state (result: `who`, a JSON object such as {"pid":1,"hostname":"..."};
 * NULL: none) in the same step. Returns the count n, with the messages in
 * msgs[0..n) (free each with free()), their lengths in lens and their
 * QRUN_CLAIM_* flags in flags, or -1 on a Redis error. */
#define QRUN_CLAIM_STARTED 1 /* STARTED stored */
#define QRUN_CLAIM_REVOKED 2 /* its id is revoked: do not run it */
int qrun_claim(struct rds *r, const char *inflight, const char *const *keys, int nkeys,
               const char *who, long ttl, int max, char **msgs, size_t *lens, int *flags);

/* Block up to `timeout` seconds for a message on `key` and claim it
 * (BLMOVE; no STARTED: the caller sends it). Same returns as qrun_claim. */
int qrun_claim_wait(struct rds *r, const char *inflight, const char *key, double timeout,
                    char **msg, size_t *len);

/* Store a non-final state (STARTED) unless the task is already ready,
 * sent without waiting for the reply (rds_send_eval): 0 sent, -1 not sent. */
int qrun_send_state(struct rds *r, const char *meta_key, const char *meta, long ttl);

/* Finish a claimed message: remove it from inflight and, unless meta is
 * NULL (ignore_result), store and publish the result, in one atomic step;
 * failed: the result is a final FAILURE, listed in its queue's failed list.
 * Returns 1 stored, 0 not stored because a final result was already there,
 * 2 the claim was lost (the message was no longer in flight: the runner's
 * lease expired and the task was handed to another runner), -1 Redis error. */
int qrun_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                const char *meta_key, const char *meta, long ttl, int failed);

/* The same, sent without waiting (rds_send_eval): the status arrives later
 * through r->on_sent_reply. Returns 0 sent, or -1 not sent. */
int qrun_send_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                     const char *meta_key, const char *meta, long ttl, int failed);

/* A worker died running task `id` (a crash, a limit, a terminate): finish
 * that message of its in-flight list with meta (failed as above) and put
 * the worker's other claims back. Returns like qrun_finish, 3 if the
 * message was not there; *requeued = the others put back. */
int qrun_fail_slot(struct rds *r, const char *inflight, const char *id, const char *meta,
                   long ttl, int failed, long *requeued);

/* Move a claimed message whose eta is ahead into its queue's scheduled set,
 * sent without waiting (rds_send_eval; the reply, 1 or 2 = claim lost,
 * arrives through r->on_sent_reply). Returns 0 sent, -1 not sent: the
 * message stays in flight either way until the script runs. */
int qrun_send_defer(struct rds *r, const char *inflight, const char *msg, size_t len,
                    long long eta_ms);

/* A retry: drop msg from inflight, store the RETRY meta (NULL: none) and
 * schedule `next` (cel_redeliver) at eta_ms, in one step, sent without
 * waiting. Its reply: 1, 0 not scheduled (a final state, a revoke, got there
 * first), 2 claim lost. Returns 0 sent, -1 not sent. */
int qrun_send_retry(struct rds *r, const char *inflight, const char *msg, size_t len,
                    const char *next, size_t next_len, long long eta_ms, const char *meta_key,
                    const char *meta, long ttl);

/* Move every due scheduled message to the front of its queue (priority
 * band kept, the earliest first). Safe from any number of processes.
 * Returns the count moved, or -1. */
long qrun_promote(struct rds *r);

/* Trim every queue's failed list to max_count entries and max_age_s.
 * Returns the entries removed, or -1. */
long qrun_purge(struct rds *r, long max_age_s, long max_count);

/* Record a revoke heard on the pidbox channel (a runner's job: Python's
 * app.control.revoke stores nothing), for ttl s past the task's eta, never
 * shortening one already there. Returns 0 or -1. */
int qrun_note_revoke(struct rds *r, const char *id, int terminate, long ttl);

/* Put every message of an in-flight list back at the head of its queue
 * (the end consumers take next, priority band kept). Returns the count or -1. */
long qrun_requeue(struct rds *r, const char *inflight);

/* Heartbeat of runner id: refresh its score and hash, re-registering it if
 * it had been reaped. Returns 0, 1 if it had been reaped, -1 on error. */
int qrun_heartbeat(struct rds *r, const char *id, const char *host, long pid,
                   const char *queues, int concurrency, long long started_ms, long lease_s);

/* Requeue the in-flight tasks of every runner whose heartbeat is older than
 * lease_s, and forget those runners. Returns the number of tasks put back,
 * or -1. */
long qrun_reap(struct rds *r, long lease_s);

/* Forget runner id (clean exit: its lists are already empty). */
int qrun_unregister(struct rds *r, const char *id);

/* ---- submitting and reading tasks (qsubmit.c) ---------------------- */

/* A task to submit. Pointers borrowed. */
struct qrun_task {
    const char *name, *id;
    json_t *args, *kwargs; /* NULL: [] and {} */
    struct qrun_opts opts;
    const char *owner; /* who submits it (a token's sub, cel_id_valid), carried
                        * in its message and metas; NULL: nobody (an
                        * operator's tool, a periodic task) */
    long ttl;          /* RESULT_EXPIRES */
};

/* What one owner may have in the queue at once; 0: no bound. */
struct qrun_quota {
    long per_second; /* submits and re-runs per second */
    long max_active; /* tasks queued, scheduled or running */
};

/* How qrun_submit and qrun_rerun end when they do not fail (-1). */
enum qrun_refusal {
    QRUN_ADMITTED = 0,
    QRUN_RATE_LIMITED = 1, /* over quota.per_second */
    QRUN_TOO_MANY = 2,     /* over quota.max_active */
    QRUN_KEY_CLASH = 3,    /* a key it writes holds another type */
    QRUN_NOT_FOUND = 4,    /* re-run: not on a failed list, or not the caller's */
};

/* Enqueue t: its PENDING meta (TTL t->ttl), its message (on its queue's
 * list for its priority, or in the queue's scheduled set when it has an
 * eta), the queue in qrun:queues and, with an owner, qrun:owner:<id> and
 * its place in qrun:active:<owner>: all in one atomic step that first
 * checks q against the owner (NULL: no quota) and the keys' types, so a
 * refusal writes nothing. Returns QRUN_ADMITTED or a refusal (*retry_ms:
 * when a retry may pass, may be NULL), or -1: a bad id, queue or owner, or
 * Redis failed (r->err; rds_full(r) when Redis is out of memory, which
 * also writes nothing). */
int qrun_submit(struct rds *r, const struct qrun_task *t, const struct qrun_quota *q,
                long *retry_ms) __attribute__((warn_unused_result));

/* The same, only if once_key is not taken yet (SET NX EX once_ttl in the
 * same step), with no quota: periodic tasks enqueued once per slot by many
 * hosts. Returns 1 enqueued, 0 already taken, -1 error. */
int qrun_submit_once(struct rds *r, const char *once_key, long once_ttl,
                     const struct qrun_task *t);

/* The stored meta of task id (new reference, NULL when there is none) and
 * its owner into owner ("" for none): the meta's own, else qrun:owner:<id>
 * (a Python worker's metas carry none). One round trip. Returns 0, -1. */
int qrun_lookup(struct rds *r, const char *id, json_t **meta, char *owner, size_t owner_len);

/* A revoke (DELETE /api/tasks/{id}). */
struct qrun_revoke {
    const char *id;
    const char *caller; /* the owner asking; NULL: an admin (any task, also
                         * one not submitted yet) */
    int terminate;      /* stop it if it is running */
    long ttl;           /* RESULT_EXPIRES */
};

/* Revoke rv->id: record the revoke (TTL ttl past any eta), so a runner
 * that claims it later drops it, broadcast it as Celery does (Python
 * workers honour it; with terminate our runners stop the task if running),
 * and store REVOKED unless it is running and not terminated. state gets the
 * outcome: REVOKED; RUNNING (left to finish); SUCCESS or FAILURE (already
 * finished: nothing done); NOTFOUND (the caller does not own it: nothing
 * done). Returns 0 or -1. */
int qrun_revoke(struct rds *r, const struct qrun_revoke *rv, char *state, size_t state_len);

/* A re-run from a failed list (POST /api/tasks/{id}/retry). */
struct qrun_rerun {
    const char *id;
    const char *caller;      /* the owner asking; NULL: an admin */
    struct qrun_quota quota; /* the caller's (an admin's re-run has none) */
    long ttl;
};

/* Re-run rr->id from its queue's failed list: same id, retries 0, PENDING,
 * queued again, off the list. Returns QRUN_ADMITTED (the task's name in
 * task), a refusal (QRUN_NOT_FOUND: not listed, or not the caller's;
 * quotas as qrun_submit), or -1. */
int qrun_rerun(struct rds *r, const struct qrun_rerun *rr, char *task, size_t task_len,
               long *retry_ms);

/* One entry of a failed list. */
struct qrun_failed {
    char id[CEL_ID_MAX + 1];
    char queue[CEL_QUEUE_MAX];
    long long at_ms; /* when it failed */
    json_t *meta;    /* its stored meta (owned), NULL if gone */
};

struct qrun_failed_query {
    const char *owner;      /* only this owner's (their own lists); NULL: all */
    const char *queue;      /* one queue; NULL: celery and every known one */
    long offset, limit;
    long max_count, max_age_s; /* FAILED_MAX, FAILED_AGE */
};

struct qrun_failed_page {
    struct qrun_failed *items; /* newest first */
    size_t n;
    long long total; /* entries in the lists read */
};

/* A page of the failed lists (at most QRUN_LIST_QUEUES queues), merged
 * newest first. Returns 0 (free with qrun_failed_page_free), or -1. */
#define QRUN_LIST_QUEUES 100
int qrun_failed_page(struct rds *r, const struct qrun_failed_query *fq,
                     struct qrun_failed_page *out);
void qrun_failed_page_free(struct qrun_failed_page *p);

long long qrun_now_ms(void);

#endif
