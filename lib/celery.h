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

/* A uuid4 string (36 characters + NUL) from the kernel's random source. */
void cel_uuid(char out[37]);

/* 1 if s is a task id we handle (Celery's are uuids; any sane token works). */
int cel_id_valid(const char *s);

/* The Redis list a message of this priority goes to (Celery's Redis bands:
 * 0-2 -> queue, 3-5 -> queue\x06\x163, 6-8 -> ...6, 9 -> ...9; lower is served
 * first). Writes a NUL-terminated name into out; -1 if it does not fit. */
int cel_queue_key(char *out, size_t outlen, const char *queue, int priority);

/* Append the whole envelope JSON of a task message to out: body
 * base64([args, kwargs, embed]), headers (task, id, root_id, ...), properties
 * (delivery_tag, delivery_info, priority, ...). args/kwargs are borrowed. */
void cel_message(struct buf *out, const char *task, const char *id, json_t *args,
                 json_t *kwargs, const char *queue, int priority);

/* A task message as a runner sees it. Owns its json. */
struct cel_msg {
    json_t *envelope;
    json_t *body;            /* [args, kwargs, embed] */
    const char *task;        /* headers.task */
    const char *id;          /* headers.id */
    json_t *args, *kwargs;   /* borrowed from body */
    int ignore_result;
    const char *routing_key; /* properties.delivery_info.routing_key, or "celery" */
};

/* Parse an envelope. Returns 0, or -1 with the reason in err (not JSON, not
 * application/json, compressed, bad base64, body not [list, dict, ...], no
 * task or id). On -1, m->id may still be set when the id was readable, so
 * the failure can be stored under it. */
int cel_parse(struct cel_msg *m, const char *raw, size_t len, char *err, size_t errlen);
void cel_msg_free(struct cel_msg *m);

/* States. */
#define CEL_PENDING "PENDING"
#define CEL_STARTED "STARTED"
#define CEL_SUCCESS "SUCCESS"
#define CEL_FAILURE "FAILURE"
#define CEL_RETRY "RETRY"
#define CEL_REVOKED "REVOKED"
int cel_state_ready(const char *status); /* SUCCESS, FAILURE, REVOKED */

/* Append the result meta JSON to out:
 * {"status","result","traceback","children":[],"date_done","task_id","name"}.
 * date_done (naive UTC ISO, like Celery) is set for ready states, null
 * otherwise. result is borrowed (NULL = null). */
void cel_meta(struct buf *out, const char *status, json_t *result, const char *traceback,
              const char *task_id, const char *name);

/* Celery's exception result: {"exc_type","exc_message":[message],"exc_module"}.
 * New reference. */
json_t *cel_exc(const char *type, const char *module, const char *message);

#endif
