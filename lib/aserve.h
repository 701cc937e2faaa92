#ifndef ASERVE_H
#define ASERVE_H

#include <stddef.h>

#include "conf.h"
#include "http.h"

/* An event-driven route program: one process serves many FastCGI
 * connections at once from an epoll loop, so a request may wait (a long
 * poll) without holding a process. Everything else is serve_main's: the
 * same settings, --check, request parsing, error bodies, logging, and the
 * same handlers. Under plain CGI it falls back to serve_main, a parked
 * request there being polled every 50 ms until it is answered.
 *
 * A handler that cannot answer yet parks the request:
 *
 *     double deadline = aserve_deadline(wait);     fixed at the first call
 *     ... look the state up ...
 *     if (!ready && aserve_now() < deadline)
 *         return aserve_park(channel);             no status set
 *
 * and is called again with the same request when a message is published on
 * the Redis channel `channel` (or once the subscription is in place, to
 * close the gap between its lookup and the subscription), when Redis comes
 * back after an outage, and at the deadline; then it answers or parks again.
 * Handlers must not block for long: lookups on a local Redis are fine.
 *
 * `pubsub_url` points at the REDIS_URL setting (filled by conf before use):
 * the loop keeps one pub/sub connection per process, reconnecting with
 * backoff. */
int aserve_main(int argc, char **argv, const char *name, const struct conf_entry *conf,
                size_t nconf, http_handler_fn *handler, char *const *pubsub_url);

/* Inside a handler. */
double aserve_now(void);            /* monotonic seconds */
double aserve_deadline(double wait); /* now + wait at the request's first call */
int aserve_park(const char *channel); /* returns 0 */

#endif
