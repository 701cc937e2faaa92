#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"

#define BACKOFF_MIN 0.05
#define BACKOFF_MAX 1.0

static void set_err(struct db *d, enum db_errkind kind, const char *msg)
{
    metrics_error(MX_ERR_PG);
    d->kind = kind;
    d->constraint[0] = '\0';
    /* libpq's messages end with a newline and may span lines: keep line one */
    snprintf(d->err, sizeof(d->err), "%.*s", (int)strcspn(msg, "\n"), msg);
}

int db_url_check(const char *url, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (opts == NULL) {
        /* never echo the URL: it may hold a password */
        snprintf(err, errlen, "not a libpq connection string or URI (%.*s)",
                 msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
        PQfreemem(msg);
        return -1;
    }
    PQconninfoFree(opts);
    return 0;
}

int db_init(struct db *d, const char *url, int timeout_ms, const struct db_stmt *stmts,
            size_t nstmts, char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    if (db_url_check(url, err, errlen) != 0)
        return -1;
    d->url = xstrdup(url);
    d->timeout_ms = timeout_ms;
    d->stmts = stmts;
    d->nstmts = nstmts;
    d->backoff = BACKOFF_MIN;
    return 0;
}

static void disconnect(struct db *d)
{
    if (d->conn != NULL)
        PQfinish(d->conn);
    d->conn = NULL;
}

void db_free(struct db *d)
{
    disconnect(d);
    free(d->url);
    d->url = NULL;
}

/* Lost the server: drop the connection and say so once per outage. */
static void lost(struct db *d, const char *why)
{
    set_err(d, DB_UNAVAILABLE, why);
    if (!d->down)
        log_warn("PostgreSQL unavailable: %s", d->err);
    d->down = 1;
    disconnect(d);
}

/* Wait until a result can be read without blocking. 0, or -1 (connection
 * lost or past the deadline: dropped). */
static int wait_ready(struct db *d, double deadline)
{
    while (PQisBusy(d->conn)) {
        double left = deadline - clock_now();
        if (left <= 0) {
            /* Drop the connection rather than PQcancel(): a cancel is a
             * blocking connect to the server, which may be the part that is
             * stuck. The server's statement_timeout ends the query there. */
            lost(d, "query timed out");
            return -1;
        }
        struct pollfd pfd = {.fd = PQsocket(d->conn), .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) {
            lost(d, strerror(errno));
            return -1;
        }
        if (n > 0 && !PQconsumeInput(d->conn)) {
            lost(d, PQerrorMessage(d->conn));
            return -1;
        }
    }
    return 0;
}

/* The first result of what was sent, reading the rest (NULL: lost). */
static PGresult *collect(struct db *d, double deadline)
{
    PGresult *first = NULL;
    for (;;) {
        if (wait_ready(d, deadline) != 0) {
            PQclear(first);
            return NULL;
        }
        PGresult *r = PQgetResult(d->conn);
        if (r == NULL)
            break;
        if (first == NULL)
            first = r;
        else
            PQclear(r);
    }
    if (first == NULL)
        lost(d, PQerrorMessage(d->conn));
    return first;
}

/* Classify a failed result by its SQLSTATE (and the connection's state). */
static void failed(struct db *d, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL)
        msg = PQresultErrorMessage(r);
    if (PQstatus(d->conn) == CONNECTION_BAD || state == NULL) {
        lost(d, msg);
        return;
    }
    const char *c = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
    enum db_errkind kind = DB_FAILED;
    if (strcmp(state, "23505") == 0)
        kind = DB_CONFLICT;
    else if (strncmp(state, "22", 2) == 0 || strcmp(state, "23502") == 0 ||
             strcmp(state, "23514") == 0)
        kind = DB_INVALID;
    else if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
             strncmp(state, "57", 2) == 0) /* connection, resources, shutdown, timeout */
        kind = DB_UNAVAILABLE;
    if (kind == DB_UNAVAILABLE && strcmp(state, "57014") != 0) { /* not just a timeout */
        lost(d, msg);
        return;
    }
    set_err(d, kind, msg);
    snprintf(d->constraint, sizeof(d->constraint), "%s", c ? c : "");
    if (kind == DB_FAILED)
        log_err("PostgreSQL: %s (SQLSTATE %s)", d->err, state);
}

/* One statement on the connection: setup SQL (PQexec) or a prepare. */
static int setup_ok(struct db *d, PGresult *r)
{
    if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        return 0;
    }
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(d->conn);
    set_err(d, DB_UNAVAILABLE, msg);
    PQclear(r);
    return -1;
}

static int setup(struct db *d)
{
    double deadline = clock_now() + d->timeout_ms / 1000.0;
    /* UTC: timestamps in answers do not depend on the server's zone. The
     * server-side timeout stops a runaway statement; ours is the backstop. */
    char sql[160];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d; SET TimeZone = 'UTC'",
             d->timeout_ms > 200 ? d->timeout_ms - 100 : d->timeout_ms);
    if (!PQsendQuery(d->conn, sql) || setup_ok(d, collect(d, deadline)) != 0)
        return -1;
    for (size_t i = 0; i < d->nstmts; i++) {
        const struct db_stmt *s = &d->stmts[i];
        if (!PQsendPrepare(d->conn, s->name, s->sql, 0, NULL) ||
            setup_ok(d, collect(d, deadline)) != 0) {
            log_err("PostgreSQL: preparing %s: %s", s->name, d->err);
            return -1;
        }
    }
    return 0;
}

/* Drive a non-blocking connect to the end or the deadline (libpq's own
 * connect_timeout counts in whole seconds, at least 2). 0, or -1 with err. */
static int connect_poll(struct db *d, double deadline)
{
    if (PQstatus(d->conn) == CONNECTION_BAD) {
        set_err(d, DB_UNAVAILABLE, PQerrorMessage(d->conn));
        return -1;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            set_err(d, DB_UNAVAILABLE, PQerrorMessage(d->conn));
            return -1;
        }
        double left = deadline - clock_now();
        if (left <= 0) {
            set_err(d, DB_UNAVAILABLE, "connection timed out");
            return -1;
        }
        struct pollfd pfd = {.fd = PQsocket(d->conn),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) {
            set_err(d, DB_UNAVAILABLE, strerror(errno));
            return -1;
        }
        if (n > 0)
            st = PQconnectPoll(d->conn);
    }
    return 0;
}

int db_connect(struct db *d)
{
    if (d->conn != NULL)
        return 0;
    double now = clock_now();
    if (now < d->next_try) { /* keep the reason of the failed attempt */
        if (d->err[0] == '\0')
            set_err(d, DB_UNAVAILABLE, "database unavailable");
        else
            metrics_error(MX_ERR_PG);
        d->kind = DB_UNAVAILABLE;
        return -1;
    }
    /* later keywords win: the URL's own settings override these defaults */
    const char *const keys[] = {"fallback_application_name", "dbname", NULL};
    const char *const vals[] = {log_name(), d->url, NULL};
    d->conn = PQconnectStartParams(keys, vals, 1);
    if (d->conn == NULL || connect_poll(d, now + d->timeout_ms / 1000.0) != 0 || setup(d) != 0) {
        if (!d->down)
            log_warn("PostgreSQL unavailable: %s", d->err);
        d->down = 1;
        disconnect(d);
        d->kind = DB_UNAVAILABLE;
        d->next_try = now + d->backoff;
        d->backoff = d->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : d->backoff * 2;
        return -1;
    }
    if (d->down)
        log_info("PostgreSQL reachable again");
    d->down = 0;
    d->backoff = BACKOFF_MIN;
    d->next_try = 0;
    d->err[0] = '\0';
    d->kind = DB_OK;
    return 0;
}

static const struct db_stmt *find(const struct db *d, const char *name)
{
    for (size_t i = 0; i < d->nstmts; i++)
        if (strcmp(d->stmts[i].name, name) == 0)
            return &d->stmts[i];
    return NULL;
}

PGresult *db_exec(struct db *d, const char *name, int nparams, const char *const *params)
{
    const struct db_stmt *s = find(d, name);
    if (s == NULL) {
        set_err(d, DB_FAILED, "no such statement");
        log_err("PostgreSQL: no statement named %s", name);
        return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = d->conn == NULL;
        if (db_connect(d) != 0)
            return NULL;
        double deadline = clock_now() + d->timeout_ms / 1000.0;
        PGresult *r = NULL;
        if (!PQsendQueryPrepared(d->conn, s->name, nparams, params, NULL, NULL, 0))
            lost(d, PQerrorMessage(d->conn));
        else
            r = collect(d, deadline);
        if (r != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
                d->kind = DB_OK;
                return r;
            }
            failed(d, r);
            PQclear(r);
        }
        /* A connection that had been idle may have died unseen (a server
         * restart): a read is worth one more try on a new one. */
        if (d->kind != DB_UNAVAILABLE || d->conn != NULL || fresh || !s->readonly ||
            strcmp(d->err, "query timed out") == 0)
            return NULL;
    }
    return NULL;
}
