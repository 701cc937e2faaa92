#ifndef DENYLIST_H
#define DENYLIST_H

#include <stddef.h>

#include "redis.h"

/* Revoked access tokens (RFC 7009), by their jti, until they would have
 * expired anyway.
 *
 * In Redis: the ZSET `revoked` holds "<exp> <jti>" members scored by a
 * sequence number from `revoked:seq`, so a reader fetches only what is new
 * since its last look. Each revoke also drops a few members whose exp has
 * passed (by Redis's clock), so the set stays the size of the revocations
 * of one token lifetime.
 *
 * In each checking process (the gateway's authorizer): a local copy,
 * brought up to date at most every `period` seconds, so a request costs no
 * Redis round trip. A revoke therefore takes effect within `period`
 * everywhere (RFC 7009 §2.2 allows such a propagation delay). While Redis
 * is unreachable the copy goes on being used: nothing can be revoked then
 * (the revoke endpoint needs Redis), so the copy misses at most what was
 * revoked in the last period before the outage. A process that has never
 * loaded the list cannot know, and says so (deny_check returns -1). If
 * Redis lost its data (the sequence went back), the reader loads everything
 * again and keeps what it already knew. */

struct deny_entry {
    char jti[65]; /* "" for a free slot */
    long exp;
};

struct deny {
    struct deny_entry *slot; /* open addressing, power-of-two size */
    size_t cap, n;
    long long seq;    /* the last sequence number seen */
    int loaded;       /* the list was read from Redis at least once */
    double synced_at; /* monotonic seconds of the last successful read */
    double tried_at;  /* ... of the last attempt, successful or not */
    double period;
};

void deny_init(struct deny *d, double period);
void deny_free(struct deny *d);

/* Revoke jti until exp (seconds since the epoch). 0, or -1 (Redis error,
 * the reason in r->err). */
int deny_revoke(struct rds *r, const char *jti, long exp) __attribute__((warn_unused_result));

/* Read what is new from Redis if the last attempt is older than the period
 * (mono: monotonic seconds; now: epoch seconds, to drop expired entries).
 * A failed attempt waits a period too, so a stuck Redis costs one timeout
 * per period, not one per request. 0 (read, or not due), or -1 if this
 * call tried and Redis failed (the copy stays as it was). */
int deny_sync(struct deny *d, struct rds *r, double mono, long now);

/* Local only: 1 if jti is revoked, 0 if not, -1 if the list was never
 * loaded (the caller must not guess). */
int deny_check(const struct deny *d, const char *jti);

/* Local only, for tests and the initial load: add one entry. */
void deny_add(struct deny *d, const char *jti, long exp, long now);

#endif
