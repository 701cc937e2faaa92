#ifndef THROTTLE_H
#define THROTTLE_H

#include <stddef.h>

#include "redis.h"

/* How fast a client may guess passwords and make accounts, counted in
 * Redis (so every process and host of the gateway shares the counts, on
 * Redis's clock). Two kinds of limit:
 *
 *   a progressive delay per (user name, client address): a password
 *   attempt for that name from that address (a login, or a current
 *   password given to change one's account) is free for the first
 *   `free` failures; each further one makes the next attempt wait, 1 s,
 *   2 s, 4 s ... up to `max` seconds. During the wait attempts are refused
 *   (THROTTLE_WAIT) without looking at the password. A right password
 *   starts the pair over. Every attempt counts as failed when it starts
 *   (and is cleared if it turns out right), so parallel guesses cannot
 *   slip in before the first of them is counted. Failures elsewhere (the
 *   same name from other addresses) never hold this pair up: nobody can
 *   lock a user out.
 *
 *   a fixed window per client address: at most `limit` events (login
 *   attempts for any name, registrations) in each `window` seconds.
 *
 * A client address is lighttpd's REMOTE_ADDR as throttle_addr() folds it:
 * IPv4 as is, IPv6 by its /64 (a single host is commonly given a whole
 * /64, so counting its addresses one by one would count nothing).
 *
 * Keys (this module's alone): login:fail:<addr>|<name>, login:addr:<addr>,
 * register:addr:<addr>. */

enum throttle_verdict {
    THROTTLE_DOWN = -1, /* Redis did not answer: the caller decides (fail closed for passwords) */
    THROTTLE_GO = 0,    /* go ahead */
    THROTTLE_WAIT = 1,  /* refused for now: *retry_after seconds */
};

struct throttle_delay {
    long free; /* failures of a pair before any wait */
    long max;  /* the longest wait, seconds */
    long ttl;  /* a pair's failures are forgotten this long after its last wait ends */
};

enum throttle_kind { THROTTLE_LOGIN, THROTTLE_REGISTER };

/* The address the limits count for REMOTE_ADDR remote (NULL: "-"), into
 * out (at most outlen bytes, NUL-terminated): an IPv4 address as is, an
 * IPv6 address as its /64 ("2001:db8:1:2::/64"), an IPv4-mapped IPv6 one
 * as the IPv4 address, anything else as given, cut to fit. */
void throttle_addr(const char *remote, char *out, size_t outlen);

/* A password attempt for user name `name` (its key: namekey.h) from
 * address `addr` (throttle_addr's), counted as failed until
 * throttle_pass_ok. THROTTLE_GO, THROTTLE_WAIT with *retry_after set (>= 1
 * s), or THROTTLE_DOWN (the reason in r->err). */
enum throttle_verdict throttle_pass_try(struct rds *r, const struct throttle_delay *cfg,
                                        const char *name, const char *addr, long *retry_after);

/* The attempt was right: the pair (name, addr) starts over. 0, or -1
 * (Redis; the pair then keeps its count). */
int throttle_pass_ok(struct rds *r, const char *name, const char *addr);

/* One more event of kind from addr in the current window of `window`
 * seconds: THROTTLE_GO while the window holds at most `limit`, then
 * THROTTLE_WAIT with *retry_after the seconds left in it, or
 * THROTTLE_DOWN. */
enum throttle_verdict throttle_addr_hit(struct rds *r, enum throttle_kind kind, const char *addr,
                                        long window, long limit, long *retry_after);

#endif
