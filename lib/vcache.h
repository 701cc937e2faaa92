#ifndef VCACHE_H
#define VCACHE_H

#include <stddef.h>

#include "buf.h"
#include "redis.h"

/* A read-through cache in Redis for documents that carry a version number
 * (a row's version column, bumped by every update), kept coherent with the
 * database without locks:
 *
 *   - a reader that missed stores what it read with vcache_put(), which
 *     never replaces a newer version (a slow reader cannot put back a row
 *     that a writer has since changed);
 *   - a writer, after its commit, stores its new version the same way;
 *   - a deleter leaves a tombstone (ids are never reused), which no reader
 *     can overwrite either.
 *
 * So once a write has been answered, no read returns the old document; the
 * one exception is a write made while Redis was unreachable, whose stale
 * entry lives until its TTL. Every entry has the TTL; Redis failures make
 * the cache a miss (the caller reads the database), never an error.
 * Keys: <prefix><id>; values "<version> <document>" or "deleted". */

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

/* Store version of id's document unless a newer one or a tombstone is there. */
void vcache_put(struct vcache *c, const char *id, const char *version, const char *doc,
                size_t len);

/* id was deleted: a tombstone, whatever was there. */
void vcache_gone(struct vcache *c, const char *id);

#endif
