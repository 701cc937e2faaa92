#ifndef REDIS_H
#define REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

/* A Redis connection that heals itself. Every program keeps one `struct rds`
 * per connection it needs and calls rds_command() and friends; when Redis
 * restarts or the link drops, the failing call returns NULL, the context is
 * dropped, and a later call reconnects (with exponential backoff between
 * attempts, so a dead Redis costs one quick failure, not a connect storm).
 * Nothing here ever stops retrying for good: a consumer that keeps calling
 * keeps consuming once Redis is back.
 *
 * REDIS_URL forms (redis-py's; kombu and Celery take the second too):
 *     unix://[[user]:password@]/path/redis.sock[?db=N]
 *     redis://[[user]:password@]host[:port][/db]
 * The user and password are percent-decoded (a '/' in a unix URL's password
 * is %2F). The password, if any, is sent on every (re)connect: AUTH password
 * (requirepass, Redis's default user), or AUTH user password (an ACL user)
 * when a user is named. */

#define RDS_ERR_MAX 256

struct rds {
    redisContext *c; /* NULL while disconnected */
    char err[RDS_ERR_MAX];
    int reply_err; /* 1 if the last failure was an error reply, 0 if I/O */

    /* private */
    char *path, *host, *user, *password;
    int port, db;
    int timeout_ms;
    double backoff;  /* seconds before the next attempt after a failure */
    double next_try; /* monotonic seconds */
    int pending;     /* replies of rds_send_eval() not yet read */
    int noscript;    /* a sent script met NOSCRIPT: load before the next send */
    /* Called with each reply of rds_send_eval() when it is read (rep NULL:
     * the connection was lost first); NULL: errors are logged. */
    void (*on_sent_reply)(void *arg, redisReply *rep);
    void *on_sent_arg;
};

/* Parse url; no connection yet. timeout_ms bounds connect and each command
 * (blocking commands need a timeout above their own). Returns 0, or -1 with
 * the reason in err. */
int rds_init(struct rds *r, const char *url, int timeout_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void rds_free(struct rds *r);

/* Whether url is a REDIS_URL rds_init accepts (a conf_entry check). */
int rds_url_check(const char *url, char *err, size_t errlen);

/* Connect now unless connected. Returns 0, or -1 with r->err set; during
 * the backoff after a failed attempt it fails at once without trying. */
int rds_connect(struct rds *r);
void rds_disconnect(struct rds *r);

/* Read the replies of every rds_send_eval() so far. Returns 0, or -1 if the
 * connection was lost (on_sent_reply then saw NULL for the unread ones). */
int rds_sync(struct rds *r);

/* Sleep until the next connection attempt is due (for loops that must wait
 * for Redis rather than fail: the queue runner). */
void rds_backoff_wait(struct rds *r);

/* Run one command (hiredis format, or argv/argvlen). Returns the reply, to
 * free with freeReplyObject(), or NULL: on an I/O error (connection dropped)
 * or an error reply (r->reply_err = 1; the connection is kept), with the
 * message in r->err. */
redisReply *rds_command(struct rds *r, const char *fmt, ...);
redisReply *rds_argv(struct rds *r, int argc, const char **argv, const size_t *argvlen);

/* Pipelining: queue commands with rds_append*(), then take one reply per
 * command with rds_reply() (same NULL rules as rds_command; after an I/O
 * error the pending replies are lost with the connection). */
int rds_append(struct rds *r, const char *fmt, ...);
int rds_append_argv(struct rds *r, int argc, const char **argv, const size_t *argvlen);
redisReply *rds_reply(struct rds *r);

/* A Lua script run by EVALSHA, loaded again with EVAL when Redis answers
 * NOSCRIPT (after a restart the script cache is empty). `src` is static. */
struct rds_script {
    const char *src;
    char sha[41]; /* filled on first use */
};

/* Run script with nkeys keys followed by the other arguments in args. */
redisReply *rds_eval(struct rds *r, struct rds_script *s, int nkeys, int nargs,
                     const char **args, const size_t *lens);

/* Send a script call now without waiting for its reply (a write whose
 * outcome the caller does not need before its next command): the reply is
 * read before the next command's, and handed to on_sent_reply. Returns 0,
 * or -1 (not sent: connection trouble). */
int rds_send_eval(struct rds *r, struct rds_script *s, int nkeys, int nargs, const char **args,
                  const size_t *lens);

/* 1 if the last failure was Redis refusing a write for want of memory
 * (maxmemory reached under noeviction: "OOM command not allowed ..."). */
int rds_full(const struct rds *r);

/* The database number of the URL (pub/sub fanout channels carry it). */
int rds_db(const struct rds *r);

/* Subscriber connections (one struct rds used for nothing else):
 * rds_subscribe connects if needed and subscribes; rds_message waits up to
 * timeout_ms for a published message and returns 1 with it in *msg (an
 * array: "message", channel, payload; free with freeReplyObject), 0 when
 * none came (or a signal cut the wait short), or -1 when the connection was
 * lost: subscribe again (after rds_backoff_wait). */
int rds_subscribe(struct rds *r, const char *channel);
int rds_message(struct rds *r, int timeout_ms, redisReply **msg);

#endif
