/* migrate: apply the schema migrations in sql/ to DATABASE_URL.
 *
 *   migrate [--dir DIR] [--status]
 *
 * Migrations are files NNN_name.sql (NNN: the version, 001 up), applied in
 * order of version, each once, each in a transaction of its own together
 * with its row in schema_migrations (version, name, checksum, applied_at).
 * A failing migration is rolled back and stops the run with the file, line
 * and PostgreSQL's message; the ones before it stay applied. A migration
 * whose file changed after it was applied is an error (edit history with a
 * new migration instead). Two migrates at once are serialised by an
 * advisory lock. --status lists each file as applied or pending.
 *
 * DIR defaults to $MIGRATIONS_DIR, else sql/ beside the bin/ holding this program.
 * Exit: 0 done (or nothing to do), 1 error, 2 usage. Files must not hold
 * BEGIN/COMMIT of their own. */
#include <dirent.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "conf.h"
#include "mem.h"
#include "migname.h"

#define LOCK_ID "727473" /* pg_advisory_lock key: our migrations */

struct mig {
    long version;
    char *file; /* "001_users.sql" */
    char *name; /* "users" */
};

static int by_version(const void *a, const void *b)
{
    const struct mig *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* NNN_name.sql (migname.h): 0 with version and name (new) set. */
static int parse_name(const char *f, long *version, char **name)
{
    size_t off, len;
    if (migname_parse(f, version, &off, &len) != 0)
        return -1;
    *name = xstrndup(f + off, len);
    return 0;
}

static int read_file(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(out, chunk, n);
    int rc = ferror(f) ? -1 : 0;
    fclose(f);
    return rc;
}

/* FNV-1a 64: notices a file edited after it was applied. */
static void checksum(const struct buf *b, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < b->len; i++)
        h = (h ^ (unsigned char)b->data[i]) * 1099511628211ULL;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static int ok(PGresult *r, ExecStatusType want)
{
    int good = r != NULL && PQresultStatus(r) == want;
    return good;
}

/* Run sql; 0, or -1 with PostgreSQL's message printed. */
static int exec_simple(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int good = ok(r, PGRES_COMMAND_OK) || ok(r, PGRES_TUPLES_OK);
    if (!good)
        fprintf(stderr, "migrate: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    PQclear(r);
    return good ? 0 : -1;
}

/* The line (1-based) of the character at 1-based position pos. */
static long line_of(const char *sql, long pos)
{
    long line = 1, chars = 0;
    for (const char *p = sql; *p != '\0'; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue; /* positions count characters */
        if (++chars >= pos)
            break;
        line += *p == '\n';
    }
    return line;
}

static int apply(PGconn *c, const struct mig *m, const struct buf *sql, const char *sum)
{
    double t0 = clock_now();
    if (exec_simple(c, "BEGIN") != 0)
        return -1;
    PGresult *r = PQexec(c, sql->data);
    if (!ok(r, PGRES_COMMAND_OK) && !ok(r, PGRES_TUPLES_OK)) {
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
        long p = pos ? strtol(pos, NULL, 10) : 0;
        if (p > 0)
            fprintf(stderr, "migrate: %s:%ld: %s\n", m->file, line_of(sql->data, p),
                    msg ? msg : PQerrorMessage(c));
        else
            fprintf(stderr, "migrate: %s: %s\n", m->file, msg ? msg : PQerrorMessage(c));
        fprintf(stderr, "migrate: %s rolled back; stopping\n", m->file);
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    char version[24];
    snprintf(version, sizeof(version), "%ld", m->version);
    const char *params[] = {version, m->name, sum};
    r = PQexecParams(c,
                     "INSERT INTO schema_migrations (version, name, checksum) "
                     "VALUES ($1, $2, $3)",
                     3, NULL, params, NULL, NULL, 0);
    if (!ok(r, PGRES_COMMAND_OK)) {
        fprintf(stderr, "migrate: recording %s: %s", m->file, PQresultErrorMessage(r));
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK"));
        return -1;
    }
    PQclear(r);
    if (exec_simple(c, "COMMIT") != 0)
        return -1;
    printf("migrate: applied %s (%.0f ms)\n", m->file, (clock_now() - t0) * 1000);
    return 0;
}

static char *default_dir(void)
{
    const char *env = getenv("MIGRATIONS_DIR");
    return env != NULL && env[0] != '\0' ? xstrdup(env) : migname_default_dir();
}

int main(int argc, char **argv)
{
    char *dir = NULL;
    int status_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            free(dir);
            dir = xstrdup(argv[++i]);
        } else if (strcmp(argv[i], "--status") == 0) {
            status_only = 1;
        } else {
            fprintf(stderr, "usage: migrate [--dir DIR] [--status]\n");
            free(dir);
            return 2;
        }
    }
    if (dir == NULL)
        dir = default_dir();
    char *url = NULL;
    char why[256];
    int got = conf_value("DATABASE_URL", &url, why, sizeof(why));
    if (got <= 0) {
        if (got < 0)
            fprintf(stderr, "migrate: %s\n", why);
        else
            fprintf(stderr, "migrate: DATABASE_URL is not set\n");
        free(dir);
        return 1;
    }

    struct mig *migs = NULL;
    size_t n = 0, cap = 0;
    int rc = 1;
    PGconn *c = NULL;
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "migrate: cannot read %s\n", dir);
        goto out;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        long v;
        char *name;
        if (parse_name(e->d_name, &v, &name) != 0) {
            if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".sql") == 0)
                fprintf(stderr, "migrate: ignoring %s (not NNN_name.sql)\n", e->d_name);
            continue;
        }
        migs = xgrow(migs, &cap, n + 1, sizeof(*migs));
        migs[n++] = (struct mig){v, xstrdup(e->d_name), name};
    }
    closedir(d);
    qsort(migs, n, sizeof(*migs), by_version);
    for (size_t i = 1; i < n; i++) {
        if (migs[i].version == migs[i - 1].version) {
            fprintf(stderr, "migrate: %s and %s have the same version\n", migs[i - 1].file,
                    migs[i].file);
            goto out;
        }
    }

    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "migrate: cannot connect: %s", PQerrorMessage(c));
        goto out;
    }
    if (exec_simple(c, "SET client_min_messages = warning; SET lock_timeout = '60s'") != 0 ||
        exec_simple(c, "SELECT pg_advisory_lock(" LOCK_ID ")") != 0 ||
        exec_simple(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " version bigint PRIMARY KEY,"
                       " name text NOT NULL,"
                       " checksum text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now())") != 0)
        goto out;

    int applied = 0, failed = 0;
    for (size_t i = 0; i < n && !failed; i++) {
        struct mig *m = &migs[i];
        struct buf sql = {0};
        char path[PATH_MAX], sum[17], version[24];
        snprintf(path, sizeof(path), "%s/%s", dir, m->file);
        if (read_file(path, &sql) != 0) {
            fprintf(stderr, "migrate: cannot read %s\n", path);
            buf_free(&sql);
            failed = 1;
            break;
        }
        buf_putc(&sql, '\0');
        sql.len--;
        checksum(&sql, sum);
        snprintf(version, sizeof(version), "%ld", m->version);
        const char *params[] = {version};
        PGresult *r = PQexecParams(c, "SELECT checksum FROM schema_migrations WHERE version = $1",
                                   1, NULL, params, NULL, NULL, 0);
        if (!ok(r, PGRES_TUPLES_OK)) {
            fprintf(stderr, "migrate: %s", PQresultErrorMessage(r));
            failed = 1;
        } else if (PQntuples(r) == 1) {
            if (strcmp(PQgetvalue(r, 0, 0), sum) != 0) {
                fprintf(stderr,
                        "migrate: %s changed after it was applied; add a new migration "
                        "instead\n",
                        m->file);
                failed = 1;
            } else if (status_only) {
                printf("applied  %s\n", m->file);
            }
        } else if (status_only) {
            printf("pending  %s\n", m->file);
        } else if (apply(c, m, &sql, sum) != 0) {
            failed = 1;
        } else {
            applied++;
        }
        PQclear(r);
        buf_free(&sql);
    }
    if (!failed && !status_only)
        printf("migrate: %s (%zu migration%s, %d applied now)\n",
               applied ? "done" : "up to date", n, n == 1 ? "" : "s", applied);
    rc = failed;
out:
    if (c != NULL)
        PQfinish(c);
    for (size_t i = 0; i < n; i++) {
        free(migs[i].file);
        free(migs[i].name);
    }
    free(migs);
    free(dir);
    free(url);
    return rc;
}
