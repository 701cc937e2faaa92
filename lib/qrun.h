#ifndef QRUN_H
#define QRUN_H

#include <jansson.h>
#include <stddef.h>

#include "redis.h"

/* The queue's reliability layer on Redis, shared by bin/queue-runner and the
 * programs that inspect it. Celery's own structures (queue lists, result
 * keys) are untouched; these keys are ours:
 *
 *   qrun:runners              ZSET  runner id -> last heartbeat (ms since epoch)
 *   qrun:runner:<id>          HASH  host, pid, queues, concurrency, started (TTL)
 *   qrun:inflight:<id>:<slot> LIST  the message worker <slot> of runner <id>
 *                                   has claimed and not yet finished
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
#define QRUN_MAX_SLOTS 256

/* Key names into out; -1 if they do not fit. */
int qrun_inflight_key(char *out, size_t n, const char *runner, int slot);
int qrun_runner_key(char *out, size_t n, const char *runner);

/* Claim up to max messages from keys[0..nkeys) (priority order: all of
 * the first list before the second) into inflight, and store their STARTED
 * state (result: `who`, a JSON object such as {"pid":1,"hostname":"..."};
 * NULL: none) in the same step. Returns the count n, with the messages in
 * msgs[0..n) (free each with free()) and their lengths in lens, or -1 on a
 * Redis error. */
int qrun_claim(struct rds *r, const char *inflight, const char *const *keys, int nkeys,
               const char *who, long ttl, int max, char **msgs, size_t *lens);

/* Block up to `timeout` seconds for a message on `key` and claim it
 * (BLMOVE; no STARTED: the caller sends it). Same returns as qrun_claim. */
int qrun_claim_wait(struct rds *r, const char *inflight, const char *key, double timeout,
                    char **msg, size_t *len);

/* Store a non-final state (STARTED) unless the task is already ready,
 * sent without waiting for the reply (rds_send_eval): 0 sent, -1 not sent. */
int qrun_send_state(struct rds *r, const char *meta_key, const char *meta, long ttl);

/* Finish a claimed message: remove it from inflight and, unless meta is
 * NULL (ignore_result), store and publish the result, in one atomic step.
 * Returns 1 stored, 0 not stored because a final result was already there,
 * 2 the claim was lost (the message was no longer in flight: the runner's
 * lease expired and the task was handed to another runner), -1 Redis error. */
int qrun_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                const char *meta_key, const char *meta, long ttl);

/* The same, sent without waiting (rds_send_eval): the status arrives later
 * through r->on_sent_reply. Returns 0 sent, or -1 not sent. */
int qrun_send_finish(struct rds *r, const char *inflight, const char *msg, size_t len,
                     const char *meta_key, const char *meta, long ttl);

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

/* Enqueue a Celery task message (cel_message) for task `name` under `id`,
 * and store its PENDING meta (TTL ttl) in the same MULTI, so the id is known
 * from the moment it is queued. args/kwargs borrowed. Returns 0 or -1. */
int qrun_submit(struct rds *r, const char *name, const char *id, json_t *args, json_t *kwargs,
                const char *queue, int priority, long ttl);

long long qrun_now_ms(void);

#endif
