#ifndef DB_H
#define DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* One persistent PostgreSQL connection per process, with the process's SQL
 * prepared once per connection. Statements are declared in a table and run
 * by name with text parameters ($1, $2 ...): SQL is never built from input.
 *
 * When PostgreSQL goes away the failing call returns NULL with kind
 * DB_UNAVAILABLE, and later calls reconnect, with a backoff between
 * attempts (50 ms doubling to 1 s) during which they fail at once: a
 * request during an outage gets a quick 503, never a hang. Every query is
 * bounded by a client-side timeout (PostgreSQL's statement_timeout cannot
 * help when the server itself is stuck), after which the connection is
 * dropped.
 *
 * DATABASE_URL: anything libpq's PQconnectdb takes, a URI
 * (postgresql://user@host:port/db, postgresql:///app?host=/run/dir) or
 * key=value pairs. */

#define DB_ERR_MAX 256

enum db_errkind {
    DB_OK = 0,
    DB_UNAVAILABLE, /* no connection, connection lost, timeout, shutting down */
    DB_CONFLICT,    /* unique violation: constraint names which */
    DB_INVALID,     /* check/not-null violation, bad value: constraint as known */
    DB_FAILED,      /* anything else (a bug: our SQL against the schema) */
};

struct db_stmt {
    const char *name; /* prepared statement name, unique in the table */
    const char *sql;
    int readonly;     /* 1: safe to run again after a lost connection */
};

struct db {
    PGconn *conn; /* NULL while disconnected */
    enum db_errkind kind;
    char err[DB_ERR_MAX];
    char constraint[64]; /* DB_CONFLICT / DB_INVALID: the constraint, or "" */

    /* private */
    char *url;
    int timeout_ms;
    const struct db_stmt *stmts;
    size_t nstmts;
    double backoff, next_try;
    int down; /* an outage was logged; log the recovery */
};

/* Keep url (copied) and the statement table (borrowed: static); no
 * connection yet. timeout_ms bounds a connect and each query. Returns 0, or
 * -1 with the reason in err (a URL libpq cannot parse). */
int db_init(struct db *d, const char *url, int timeout_ms, const struct db_stmt *stmts,
            size_t nstmts, char *err, size_t errlen) __attribute__((warn_unused_result));
void db_free(struct db *d);

/* Whether url is a DATABASE_URL libpq can parse (a conf_entry check). */
int db_url_check(const char *url, char *err, size_t errlen);

/* Connect and prepare the statements unless connected. Returns 0, or -1 with
 * kind DB_UNAVAILABLE and err set; during the backoff after a failed attempt
 * it fails at once. */
int db_connect(struct db *d);

/* Run the prepared statement `name` with nparams text parameters (NULL for
 * SQL NULL). Returns the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK), which
 * the caller frees with PQclear(), or NULL with kind, err and constraint
 * set. A readonly statement whose connection turns out lost is run once
 * more on a new connection. */
PGresult *db_exec(struct db *d, const char *name, int nparams, const char *const *params);

#endif
