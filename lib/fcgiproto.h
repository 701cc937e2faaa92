#ifndef FCGIPROTO_H
#define FCGIPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The FastCGI protocol (responder role) as plain byte processing, for
 * servers that run their own event loop instead of libfcgi's blocking
 * accept (aserve.h). No I/O here: bytes in, a request out, response bytes
 * appended to a buffer, so it can be unit-tested and fuzzed.
 *
 * One request at a time per connection (lighttpd opens a connection per
 * request and never multiplexes): a second BEGIN_REQUEST while one is open
 * is a protocol error. */

enum fcgp_status {
    FCGP_MORE = 0,  /* need more bytes */
    FCGP_READY = 1, /* a whole request (params and stdin) has arrived */
    FCGP_ERROR = -1 /* protocol error: close the connection */
};

struct fcgp {
    uint16_t id;       /* request id of the open request, 0 if none */
    int keep_conn;     /* FCGI_KEEP_CONN: the server keeps the connection */
    int params_done, stdin_done, aborted;
    size_t body_max;   /* stdin beyond this is counted, not kept */
    size_t body_seen;  /* stdin bytes received, kept or not */
    struct buf params; /* raw name-value pairs */
    struct buf body;   /* stdin, up to body_max bytes */
    char **envp;       /* "NAME=value" strings, NULL-terminated, after READY */
    size_t nenv, envcap;
    struct buf envstore;
    const char *err;   /* reason for FCGP_ERROR */
};

void fcgp_init(struct fcgp *p, size_t body_max);
void fcgp_free(struct fcgp *p);
/* Forget the finished request (keep_conn connections take the next one). */
void fcgp_reset(struct fcgp *p);

/* Process the complete records at the start of in[0..len): sets *used to the
 * bytes consumed (the caller drops them), appends any management replies
 * (GET_VALUES_RESULT, UNKNOWN_TYPE) to out. Stops after a request becomes
 * READY. */
enum fcgp_status fcgp_feed(struct fcgp *p, const char *in, size_t len, size_t *used,
                           struct buf *out);

/* Append the response of request id: data as STDOUT records, the empty
 * STDOUT record, and END_REQUEST (app status 0, REQUEST_COMPLETE). */
void fcgp_respond(struct buf *out, uint16_t id, const char *data, size_t len);

#endif
