#ifndef DENYLIST_H
#define DENYLIST_H

#include <stddef.h>

#include "redis.h"
#include "token.h"

/* Revoked access tokens: one token by its jti (RFC 7009), or a user's
 * tokens at once (a password or email change, a deleted account), until
 * they would have expired anyway.
 *
 * A user's revocation names the user (the tokens' sub), a token generation
 * (token.h's gen claim, the users table's token_gen) and the second it was
 * made: every token of that user of a lower generation is revoked, and
 * every token without a generation (bin/tokenctl's) issued at or before
 * that second, but the one whose jti it excepts (the token that made the
 * change keeps working). Generations make it exact for the tokens users
 * log in for; an operator's token issued in the same second just after the
 * change is revoked too (iat counts whole seconds). A later revocation of
 * the same user replaces the earlier one (generations only grow).
 *
 * In Redis: the ZSET `revoked` holds "<exp> <jti>" and "<exp> ~<gen> <at>
 * <except-jti or -> <sub>" members scored by a sequence number from
 * `revoked:seq`, so a reader fetches only what is new since its last look.
 * Each revoke also drops a few members whose exp has passed (by Redis's
 * clock), so the set stays the size of the revocations of one token
 * lifetime (a user's revocation lasts TOKEN_LIFETIME_MAX, the longest any
 * token lives).
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
    char key[65]; /* the jti, or the user's sub; "" for a free slot */
    long exp;
    long gen;        /* a user's: tokens of a lower generation ... */
    long at;         /* ... or without one, issued at or before this second, ... */
    char except[65]; /* ... are revoked, but the one with this jti ("" for none) */
};

/* A revocation of a user's tokens, as deny_revoke_user makes it. */
struct deny_user {
    const char *sub;    /* at most 64 bytes */
    long gen;           /* tokens of a lower generation are revoked ... */
    long at;            /* ... and those without one issued up to this second ... */
    const char *except; /* ... but this jti's (NULL or "": none; no spaces) */
};

/* Open addressing, power-of-two size. */
struct deny_table {
    struct deny_entry *slot;
    size_t cap, n;
};

struct deny {
    struct deny_table jtis, users;
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

/* Revoke user u->sub's tokens as u says (borrowed), until exp. 0, or -1
 * (Redis error, or u out of shape, the reason in r->err). */
int deny_revoke_user(struct rds *r, const struct deny_user *u, long exp)
    __attribute__((warn_unused_result));

/* Read what is new from Redis if the last attempt is older than the period
 * (mono: monotonic seconds; now: epoch seconds, to drop expired entries).
 * A failed attempt waits a period too, so a stuck Redis costs one timeout
 * per period, not one per request. 0 (read, or not due), or -1 if this
 * call tried and Redis failed (the copy stays as it was). */
int deny_sync(struct deny *d, struct rds *r, double mono, long now);

/* Local only: 1 if jti is revoked, 0 if not, -1 if the list was never
 * loaded (the caller must not guess). */
int deny_check(const struct deny *d, const char *jti);

/* Local only: whether the token of claims c (borrowed) is revoked at time
 * now, by its jti or by a revocation of its user's tokens: 1, 0, or -1 as
 * deny_check. */
int deny_check_token(const struct deny *d, const struct token_claims *c, long now);

/* Local only, for tests and the initial load: add one entry. */
void deny_add(struct deny *d, const char *jti, long exp, long now);
void deny_add_user(struct deny *d, const struct deny_user *u, long exp, long now);

#endif
