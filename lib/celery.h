#ifndef CELERY_H
#define CELERY_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"

/* Celery's wire format on Redis (message protocol v2, JSON serializer, on
 * kombu's Redis layout), as verified against Celery 5.2 in
 * shared/research/celery-protocol.md. Pure functions: no I/O.
 *
 *   queue list    <queue> for priorities 0-2, <queue>\x06\x16{3,6,9} after
 *   result key    celery-task-meta-<id>: the meta JSON, SET with EX
 *   result chan   celery-task-meta-<id>: the same bytes PUBLISHed */

#define CEL_ID_MAX 64            /* task ids we accept: 1..64 of [A-Za-z0-9._-] */
#define CEL_META_PREFIX "celery-task-meta-"
#define CEL_QUEUE_MAX 128
#define CEL_QUEUE_NAME_MAX 100   /* queue names we route: cel_queue_valid */

/* A uuid4 string (36 characters + NUL) from the kernel's random source. */
void cel_uuid(char out[37]);

/* 1 if s is a task id we handle (Celery's are uuids; any sane token works).
 * Owners (headers.owner) follow the same rule. */
int cel_id_valid(const char *s);

/* 1 if q may name a queue: 1..CEL_QUEUE_NAME_MAX of [A-Za-z0-9._-], and not
 * a key Redis already holds for something else when it is used as a list
 * name (kombu's layout keys a queue by its bare name): the token revocation
 * list (`revoked`), kombu's own keys (`unacked`, `unacked_index`,
 * `unacked_mutex`, `_kombu.*`), Celery's result and chord keys
 * (`celery-task-meta-*`, `celery-taskset-meta-*`, `chord-unlock-*`) and
 * pidbox queues (`*.pidbox`). Our own keys all hold a ':', which no valid
 * name has. */
int cel_queue_valid(const char *q);

/* The Redis list a message of this priority goes to (Celery's Redis bands:
 * 0-2 -> queue, 3-5 -> queue\x06\x163, 6-8 -> ...6, 9 -> ...9; lower is served
 * first). Writes a NUL-terminated name into out; -1 if it does not fit. */
int cel_queue_key(char *out, size_t outlen, const char *queue, int priority);

/* A task call, as cel_message writes it (pointers borrowed). */
struct cel_call {
    const char *task, *id;
    json_t *args, *kwargs; /* NULL: [] and {} */
    const char *queue;     /* NULL: "celery" */
    int priority;          /* 0..9 */
    double eta, expires;   /* epoch seconds; 0: none (written as null) */
    double time_limit, soft_time_limit; /* seconds, headers.timelimit; 0: none */
    const char *owner;     /* headers.owner: who submitted it over HTTP (a token's
                            * sub, cel_id_valid); NULL: no such header */
};

/* Append the whole envelope JSON of a task message to out: body
 * base64([args, kwargs, embed]), headers (task, id, root_id, eta, expires,
 * timelimit, ... and owner when set), properties (delivery_tag,
 * delivery_info, priority, ...), as Celery's apply_async sends them. */
void cel_message(struct buf *out, const struct cel_call *c);

/* A copy of a parsed message for its next delivery (appended to out): the
 * same id and body, headers.retries = retries, headers.eta = eta (0: null),
 * a fresh properties.delivery_tag, the redelivered flags dropped. A retry
 * (retries > 0) also gets parent_id = its own id, as Celery's Task.retry
 * sends it; a re-run from the failed list (retries 0) loses its expires. */
void cel_redeliver(struct buf *out, const json_t *envelope, int retries, double eta);

/* ISO-8601 times as Celery writes eta and expires: "2026-11-27T11:16:56.295718+00:00".
 * cel_time_parse reads that form, with 'T' or ' ', optional fraction, and
 * Z, +HH:MM, +HHMM or no offset (naive = UTC, like Celery). Returns 0, -1. */
int cel_time_parse(const char *s, double *epoch);
void cel_time_format(double epoch, char out[40]);

/* A task message as a runner sees it. Owns its json. */
struct cel_msg {
    json_t *envelope;
    json_t *body;            /* [args, kwargs, embed] */
    const char *task;        /* headers.task */
    const char *id;          /* headers.id */
    json_t *args, *kwargs;   /* borrowed from body */
    int ignore_result;
    const char *owner;       /* headers.owner when cel_id_valid, else NULL */
    const char *routing_key; /* properties.delivery_info.routing_key, or "celery" */
    int priority;            /* properties.priority, 0..9 */
    int retries;             /* headers.retries */
    double eta, expires;     /* headers.eta / expires, epoch seconds; 0: none */
    double time_limit, soft_time_limit; /* headers.timelimit [hard, soft]; 0: none */
};

/* Parse an envelope. Returns 0, or -1 with the reason in err (not JSON, not
 * application/json, compressed, bad base64, body not [list, dict, ...], no
 * task or id). On -1, m->id may still be set when the id was readable, so
 * the failure can be stored under it. */
int cel_parse(struct cel_msg *m, const char *raw, size_t len, char *err, size_t errlen);
void cel_msg_free(struct cel_msg *m);

/* Celery's revoke broadcast (app.control.revoke), published on
 * cel_pidbox_channel(): appends the envelope to out. */
void cel_revoke_broadcast(struct buf *out, const char *id, int terminate);
/* "/<db>.celery.pidbox": the fanout channel kombu uses for control. */
void cel_pidbox_channel(char *out, size_t n, int db);

/* Read a pidbox message. Returns 1 for a revoke (*ids: an array of the
 * valid ids named, new reference; *terminate set), 0 for any other control
 * message, -1 if unreadable. */
int cel_control_parse(const char *raw, size_t len, json_t **ids, int *terminate);

/* States. */
#define CEL_PENDING "PENDING"
#define CEL_STARTED "STARTED"
#define CEL_SUCCESS "SUCCESS"
#define CEL_FAILURE "FAILURE"
#define CEL_RETRY "RETRY"
#define CEL_REVOKED "REVOKED"
int cel_state_ready(const char *status); /* SUCCESS, FAILURE, REVOKED */

/* A result's state, as cel_meta writes it (pointers borrowed). */
struct cel_state {
    const char *status;
    json_t *result; /* NULL: null */
    const char *traceback;
    const char *task_id, *name;
    const char *owner; /* NULL: no "owner" key (see cel_call) */
};

/* Append the result meta JSON to out:
 * {"status","result","traceback","children":[],"date_done","task_id","name"}
 * in Celery's key order, then "owner" when set (Python clients ignore it).
 * date_done (naive UTC ISO, like Celery) is set for ready states, null
 * otherwise. */
void cel_meta(struct buf *out, const struct cel_state *s);

/* Celery's exception result: {"exc_type","exc_message":[message],"exc_module"}.
 * New reference. */
json_t *cel_exc(const char *type, const char *module, const char *message);

#endif
