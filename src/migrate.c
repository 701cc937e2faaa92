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
 * A migration whose SQL needs values only C can compute has a step here,
 * run in its transaction before its SQL (steps[], by migration name):
 * "username_keys" (sql/003_username_keys.sql) computes every user name's
 * key and skeleton with lib/namekey.h, the code the users service uses,
 * into a temporary table the SQL then reads; names that would collide
 * under the new rules stop it with their ids and names.
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
#include "namekey.h"

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

/* COPY text format: the few characters it gives a meaning escaped. */
static void copy_field(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '\t' || *s == '\n' || *s == '\r')
            buf_putc(b, '\\');
        buf_putc(b, *s == '\t' ? 't' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : *s);
    }
}

/* Print the groups of users whose `col` (key or skeleton) is one; 1 if
 * there were any, 0 if none, -1 on error. */
static int collisions(PGconn *c, const char *col, const char *what)
{
    char sql[400];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(u.id || ' (' || u.username || ')', ', ' ORDER BY u.id)"
             " FROM users u JOIN username_keys k ON k.id = u.id"
             " GROUP BY k.%s HAVING count(*) > 1 ORDER BY min(u.id)",
             col);
    PGresult *r = PQexec(c, sql);
    if (!ok(r, PGRES_TUPLES_OK)) {
        fprintf(stderr, "migrate: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "migrate: users %s %s\n", PQgetvalue(r, i, 0), what);
    PQclear(r);
    return n > 0;
}

/* The "username_keys" step: username_keys (id, key, skeleton) for every
 * user, streamed in with COPY; refused when two users would collide. */
static int username_keys(PGconn *c)
{
    if (exec_simple(c, "CREATE TEMP TABLE username_keys (id bigint PRIMARY KEY, key text NOT NULL,"
                       " skeleton text NOT NULL) ON COMMIT DROP") != 0 ||
        exec_simple(c, "DECLARE names NO SCROLL CURSOR FOR SELECT id, username FROM users") != 0)
        return -1;
    struct buf rows = {0}, key = {0}, skel = {0};
    long total = 0;
    int rc = 0;
    for (;;) {
        PGresult *r = PQexec(c, "FETCH 1000 FROM names");
        if (!ok(r, PGRES_TUPLES_OK)) {
            fprintf(stderr, "migrate: %s", PQresultErrorMessage(r));
            PQclear(r);
            rc = -1;
            break;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n && rc == 0; i++) {
            buf_clear(&key);
            buf_clear(&skel);
            if (namekey_make(PQgetvalue(r, i, 1), &key, &skel) != 0) {
                fprintf(stderr, "migrate: user %s: no key for the name\n", PQgetvalue(r, i, 0));
                rc = -1;
                break;
            }
            buf_printf(&rows, "%s\t", PQgetvalue(r, i, 0));
            copy_field(&rows, key.data ? key.data : "");
            buf_putc(&rows, '\t');
            copy_field(&rows, skel.data ? skel.data : "");
            buf_putc(&rows, '\n');
        }
        PQclear(r);
        total += n;
        if (n == 0 || rc != 0)
            break;
    }
    if (rc == 0 && exec_simple(c, "CLOSE names") != 0)
        rc = -1;
    if (rc == 0) {
        PGresult *r = PQexec(c, "COPY username_keys FROM STDIN");
        int copying = ok(r, PGRES_COPY_IN);
        PQclear(r);
        if (!copying || PQputCopyData(c, rows.data ? rows.data : "", (int)rows.len) != 1 ||
            PQputCopyEnd(c, NULL) != 1) {
            fprintf(stderr, "migrate: copying the names' keys: %s", PQerrorMessage(c));
            rc = -1;
        }
        r = PQgetResult(c);
        if (rc == 0 && !ok(r, PGRES_COMMAND_OK)) {
            fprintf(stderr, "migrate: %s", PQresultErrorMessage(r));
            rc = -1;
        }
        PQclear(r);
        while ((r = PQgetResult(c)) != NULL)
            PQclear(r);
    }
    buf_free(&rows);
    buf_free(&key);
    buf_free(&skel);
    if (rc != 0)
        return -1;
    int a = collisions(c, "key", "are one name (NFKC_Casefold)");
    int b = a < 0 ? -1 : collisions(c, "skeleton", "look alike (Unicode TR39 skeleton)");
    if (a != 0 || b != 0) {
        if (a > 0 || b > 0)
            fprintf(stderr, "migrate: rename all but one of each (UPDATE users SET username ="
                            " ...), then run migrate again\n");
        return -1;
    }
    printf("migrate: %ld user name%s keyed\n", total, total == 1 ? "" : "s");
    return 0;
}

/* What a migration's SQL needs done first, in its transaction. */
static const struct step {
    const char *name; /* the migration's, NNN_<name>.sql */
    int (*run)(PGconn *c);
} steps[] = {
    {"username_keys", username_keys},
};

static int run_steps(PGconn *c, const struct mig *m)
{
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
        if (strcmp(steps[i].name, m->name) == 0 && steps[i].run(c) != 0)
            return -1;
    return 0;
}

static int apply(PGconn *c, const struct mig *m, const struct buf *sql, const char *sum)
{
    double t0 = clock_now();
    if (exec_simple(c, "BEGIN") != 0)
        return -1;
    if (run_steps(c, m) != 0) {
        fprintf(stderr, "migrate: %s rolled back; stopping\n", m->file);
        PQclear(PQexec(c, "ROLLBACK"));
        return -1;
    }
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
