#ifndef SERVE_H
#define SERVE_H

#include <stddef.h>

#include "conf.h"
#include "http.h"

/* The main loop of a route program: reads its settings, then serves requests
 * with `handler` until lighttpd asks it to stop (SIGTERM/SIGUSR1: exit 0).
 * The same binary runs as FastCGI (lighttpd's bin-path: fd 0 is a listening
 * socket) or as plain CGI (one request from the environment and stdin).
 *
 * `name` is the program's name in logs; `conf` its own settings (may be
 * NULL), read after the common ones:
 *   LOG_LEVEL       DEBUG | INFO | WARNING | ERROR          (INFO)
 *   MAX_BODY_BYTES  request bodies above this get 413        (1048576)
 *   ROUTE_PREFIX    the URL path the route is mounted at     (/api/<name>)
 * A bad setting is logged and the program exits 1 before serving.
 * `prog --check` only reads the settings: exit 0, or 1 with the reason
 * (scripts/gateway runs it for every route before starting lighttpd, whose
 * own spawn check misses a program that takes over 1 ms to fail).
 *
 * Per request it parses the request (400/404/413 without calling the
 * handler), calls the handler, fills a JSON error body for an error status
 * the handler left empty (500 if it set no status at all), writes the
 * response with X-Request-Id, and logs one INFO line. Returns the process
 * exit status. */
int serve_main(int argc, char **argv, const char *name, const struct conf_entry *conf,
               size_t nconf, http_handler_fn *handler);

/* Called once by serve_main after the settings are read and before the
 * first request, in FastCGI mode (a program's warm-up: the authorizer
 * loads the revoked-token list). NULL: none. */
extern void (*serve_on_start)(void);

/* Set (to 1) before serve_main by an authorizer (fcgi/auth.c). mod_cgi has
 * no authorizer role, so under CGI (hosts that allow only CGI) it runs as
 * the interpreter of every route program under /api/: lighttpd's
 * `cgi.assign = ( "" => ".../cgi-bin/auth" )` makes each request
 * `auth /path/to/cgi-bin/<route>`. It then checks the request as under
 * FastCGI (prefix /api, the body left unread on stdin); on 200 its
 * Variable-NAME headers become the environment and the route program is
 * executed in its place (AUTH_SUB, AUTH_SCOPE, AUTH_JTI and CORS_ORIGIN cleared
 * first: only the authorizer names them); any other answer is written as
 * the CGI response. The route must be another program in the authorizer's
 * own directory, else it does not start (exit 1). */
extern int serve_cgi_authorizer;

/* The pieces serve_main is made of, for other servers (aserve.h). */
struct serve_settings {
    int log_level; /* index into LOG_LEVEL's choices */
    long max_body;
    char *prefix;
};
extern struct serve_settings serve_cfg;

/* Read the common settings and conf, handle --check. Returns 0 to go on
 * serving, or -1 with the process's exit status in *exit_code. */
int serve_setup(int argc, char **argv, const char *name, const struct conf_entry *conf,
                size_t nconf, int *exit_code) __attribute__((warn_unused_result));

/* After the handler: 500 if it set no status, a JSON body for an error
 * status it left empty. */
void serve_complete(const struct http_req *rq, struct http_resp *rs);

/* The per-request INFO line, "GET /api/hello/x 200 0.053ms request_id=...",
 * in two steps: begin takes the request's part into line while the request
 * is alive (nothing when INFO is off), end writes it with the duration once
 * the response is on its way. */
void serve_log_begin(struct buf *line, const struct http_req *rq, int status);
void serve_log_end(const struct buf *line, double seconds, const char *request_id);

#endif
