#ifndef VCACHE_H
#define VCACHE_H

#include <stddef.h>

#include "buf.h"
#include "redis.h"

/* A read-through cache in Redis for documents that carry a version number
 * (a row's version column, bumped by every update), kept coherent with the
 * database without locks:
 *
 *   - a writer first marks the entry "pending" (vcache_begin), then writes
 *     the database, then stores its new version (vcache_put, writer);
 *   - while an entry is pending, readers read the database and store
 *     nothing; if the writer never comes back (it failed, or Redis went
 *     away meanwhile) the mark expires with the TTL;
 *   - a reader that missed stores what it read (vcache_put, reader), which
 *     never replaces a newer version: a slow reader cannot put back a row
 *     that a writer has since changed;
 *   - a deleter leaves a tombstone (ids are never reused), which nobody
 *     overwrites.
 *
 * So once a write has been answered, no read returns the old document. The
 * price: an update cannot start while Redis is unreachable (vcache_begin
 * fails and the caller answers 503); creating needs no mark (a new id has
 * no entry) and reads fall back to the database, never to an error. Every
 * entry has the TTL. Keys: <prefix><id>; values "<version> <document>",
 * "pending" or "deleted". */

struct vcache {
    struct rds *redis; /* borrowed; NULL: cache off */
    const char *prefix; /* static, e.g. "user:" */
    long ttl; /* seconds */
    int down; /* a Redis outage was logged */
};

enum vcache_hit { VCACHE_MISS = 0, VCACHE_HIT, VCACHE_GONE };

/* Look up id: VCACHE_HIT with the document in out (appended), VCACHE_GONE
 * for a tombstone, VCACHE_MISS otherwise (also when Redis fails). */
enum vcache_hit vcache_get(struct vcache *c, const char *id, struct buf *out);

/* Before a write of id: mark it pending. 0, or -1 when Redis is
 * unreachable (the write must not go ahead). Always 0 with the cache off. */
int vcache_begin(struct vcache *c, const char *id) __attribute__((warn_unused_result));

enum vcache_who { VCACHE_READER, VCACHE_WRITER };

/* Store version of id's document unless a newer version or a tombstone is
 * there, or (for a reader) a write is pending. */
void vcache_put(struct vcache *c, enum vcache_who who, const char *id, const char *version,
                const char *doc, size_t len);

/* id was deleted: a tombstone, whatever was there. */
void vcache_gone(struct vcache *c, const char *id);

#endif
