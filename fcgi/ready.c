/* /api/ready: readiness. Can this deployment serve? (A load balancer or an
 * orchestrator stops sending traffic on 503 and waits; /api/health is the
 * question of whether to restart.)
 *
 *   GET /api/ready -> 200 {"status":"ready","checks":{<name>:{"status":"ok",...},...}}
 *                   | 503 {"status":"not ready","detail":"redis, runner","checks":{...}}
 *                   | 404 any sub-path | 405 not GET/HEAD
 *
 * Each check is {"status":"ok"} (with figures) or {"status":"fail",
 * "detail":"<short reason>"}; the 503's detail names the failing checks.
 *   redis       PING on REDIS_URL
 *   postgres    a trivial prepared statement on DATABASE_URL
 *   migrations  every NNN_name.sql in MIGRATIONS_DIR has its row in
 *               schema_migrations (no table: none applied); {"applied":n}
 *               or {"pending":[files]}
 *   runner      the freshest heartbeat in qrun:runners is at most
 *               RUNNER_LEASE s old; {"alive":n,"heartbeat_age_ms":ms}
 * A check whose service is down fails as "not checked: ...".
 *
 * Never a hang: Redis calls are bounded by 500 ms, PostgreSQL's by
 * DB_TIMEOUT_MS (default 1000 here), so a stuck server (SIGSTOP) costs one
 * timeout per request, and a dead one none (lib/ backs off). A connection
 * that died while idle (a restart) is retried once at once, so a server
 * that is back is seen back by the next request. Details are
 * short and generic (no paths, no server messages: those are in the log).
 * When the set of failing checks changes, one WARNING line says why; one
 * INFO line when all pass again. */
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "log.h"
#include "mem.h"
#include "migname.h"
#include "qrun.h"
#include "redis.h"
#include "serve.h"

#define REDIS_TIMEOUT_MS 500
#define DETAIL_FILES 5 /* pending files named in a detail; all are in "pending" */

static struct {
    char *redis_url, *database_url, *migrations_dir, *gw_root;
    long db_timeout_ms, lease;
} cfg;

/* Two connections: "applied" cannot even be prepared before migrate has
 * created schema_migrations, and a failed prepare fails the connection. */
static const struct db_stmt ping_stmts[] = {
    {"ping", "SELECT to_regclass('schema_migrations') IS NOT NULL", 1},
};
static const struct db_stmt mig_stmts[] = {
    {"applied", "SELECT version FROM schema_migrations WHERE version = ANY($1::bigint[])", 1},
};

static struct rds redis;
static struct db db, mig_db;
static char *mig_dir;

/* What the earlier checks of a request learnt, for the later ones. */
struct probe {
    int redis_up, pg_up, has_table;
};

/* MIGRATIONS_DIR, else $GW_ROOT/sql, else sql/ beside the directory holding
 * this program (src/migrate.c's default). */
static char *find_mig_dir(void)
{
    if (cfg.migrations_dir[0] != '\0')
        return xstrdup(cfg.migrations_dir);
    if (cfg.gw_root[0] != '\0') {
        struct buf b = {0};
        buf_printf(&b, "%s/sql", cfg.gw_root);
        return b.data;
    }
    return migname_default_dir();
}

static void setup(void)
{
    if (mig_dir != NULL)
        return;
    char err[256];
    /* the URLs were checked by conf at start: these cannot fail */
    if (rds_init(&redis, cfg.redis_url, REDIS_TIMEOUT_MS, err, sizeof(err)) != 0)
        log_err("REDIS_URL: %s", err);
    int ms = (int)cfg.db_timeout_ms;
    if (db_init(&db, cfg.database_url, ms, ping_stmts, 1, err, sizeof(err)) != 0 ||
        db_init(&mig_db, cfg.database_url, ms, mig_stmts, 1, err, sizeof(err)) != 0)
        log_err("DATABASE_URL: %s", err);
    mig_dir = find_mig_dir();
}

static json_t *pass(void)
{
    return json_pack("{s:s}", "status", "ok");
}

static json_t *fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *fail(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *detail = json_string(msg);
    if (detail == NULL) /* not UTF-8 (a server's message) */
        detail = json_string("failed");
    return json_pack("{s:s,s:o}", "status", "fail", "detail", detail);
}

/* A connection failure from libpq or hiredis, said briefly: their messages
 * hold socket paths and host names, which clients need not see. */
static const char *brief(const char *msg)
{
    static const struct {
        const char *has, *say;
    } known[] = {
        {"timed out", "timed out"},
        {"Resource temporarily unavailable", "timed out"}, /* hiredis: read past its timeout */
        {"Connection refused", "connection refused"},
        {"No such file or directory", "connection refused"}, /* a unix socket nobody serves */
        {"authentication", "authentication failed"},
        {"starting up", "starting up"},
        {"shutting down", "shutting down"},
        {"terminating connection", "shutting down"},
        {"closed the connection", "connection lost"},
        {"connection lost", "connection lost"},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strstr(msg, known[i].has) != NULL)
            return known[i].say;
    return "unavailable";
}

/* Redis's own error replies (LOADING, NOAUTH ...) say what is wrong and
 * nothing private: those are shown as they are. */
static const char *redis_brief(void)
{
    return redis.reply_err ? redis.err : brief(redis.err);
}

static json_t *check_redis(struct probe *p)
{
    int was_connected = redis.c != NULL;
    redisReply *rep = rds_command(&redis, "PING");
    /* an idle connection may have died unseen (a Redis restart): one more
     * try, on a new connection; but a stuck Redis costs one timeout only */
    if (rep == NULL && was_connected && !redis.reply_err &&
        strcmp(brief(redis.err), "timed out") != 0)
        rep = rds_command(&redis, "PING");
    if (rep == NULL)
        return fail("%s", redis_brief());
    freeReplyObject(rep);
    p->redis_up = 1;
    return pass();
}

static json_t *check_postgres(struct probe *p)
{
    PGresult *r = db_exec(&db, "ping", 0, NULL);
    if (r == NULL)
        return fail("%s", brief(db.err));
    p->pg_up = 1;
    p->has_table = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return pass();
}

struct mig {
    long version;
    int pending;
    char file[NAME_MAX + 1];
};

static int by_version(const void *a, const void *b)
{
    const struct mig *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* The migrations in mig_dir by version, all marked pending: 0 with the array
 * in *out (caller frees with free(); NULL when there are none) and its length
 * in *n, or -1 with the reason in why. */
static int list_migrations(struct mig **out, size_t *n, char *why, size_t whylen)
{
    struct mig *m = NULL;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    DIR *d = opendir(mig_dir);
    if (d == NULL) {
        log_warn("cannot read the migrations directory %s", mig_dir);
        snprintf(why, whylen, "cannot read the migrations directory");
        return -1;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        long v;
        size_t off, len;
        if (migname_parse(e->d_name, &v, &off, &len) != 0)
            continue;
        m = xgrow(m, &cap, *n + 1, sizeof(*m));
        m[*n].version = v;
        m[*n].pending = 1;
        snprintf(m[*n].file, sizeof(m[*n].file), "%s", e->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n > 0)
        qsort(m, *n, sizeof(*m), by_version);
    for (size_t i = 1; i < *n; i++) {
        if (m[i].version == m[i - 1].version) {
            snprintf(why, whylen, "%.60s and %.60s have the same version", m[i - 1].file,
                     m[i].file);
            free(m);
            return -1;
        }
    }
    *out = m;
    return 0;
}

/* Clear the pending mark of the migrations schema_migrations records: 0, or
 * -1 with the reason in why. */
static int mark_applied(struct mig *m, size_t n, char *why, size_t whylen)
{
    struct buf versions = {0};
    buf_putc(&versions, '{');
    for (size_t i = 0; i < n; i++)
        buf_printf(&versions, "%s%ld", i > 0 ? "," : "", m[i].version);
    buf_putc(&versions, '}');
    const char *params[] = {versions.data};
    PGresult *r = db_exec(&mig_db, "applied", 1, params);
    buf_free(&versions);
    if (r == NULL) {
        snprintf(why, whylen, "not checked: %s",
                 mig_db.kind == DB_UNAVAILABLE ? brief(mig_db.err)
                                               : "schema_migrations unreadable");
        return -1;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        long v;
        if (conf_parse_long(PQgetvalue(r, row, 0), 0, LONG_MAX, &v) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (m[i].version == v)
                m[i].pending = 0;
    }
    PQclear(r);
    return 0;
}

/* "2 pending: 002_x.sql, 003_y.sql", and every pending file in "pending". */
static json_t *pending_result(const struct mig *m, size_t n)
{
    json_t *files = json_array();
    struct buf detail = {0};
    for (size_t i = 0; i < n; i++) {
        if (!m[i].pending)
            continue;
        size_t shown = json_array_size(files);
        if (shown < DETAIL_FILES)
            buf_printf(&detail, "%s%s", shown > 0 ? ", " : "", m[i].file);
        else if (shown == DETAIL_FILES)
            buf_puts(&detail, ", ...");
        json_array_append_new(files, json_string(m[i].file));
    }
    json_t *res = fail("%zu pending: %s", json_array_size(files), detail.data);
    json_object_set_new(res, "pending", files);
    buf_free(&detail);
    return res;
}

static json_t *check_migrations(struct probe *p)
{
    struct mig *m;
    size_t n;
    char why[160];
    if (list_migrations(&m, &n, why, sizeof(why)) != 0)
        return fail("%s", why);
    json_t *res;
    if (!p->pg_up) {
        res = fail("not checked: PostgreSQL unavailable");
    } else if (p->has_table && n > 0 && mark_applied(m, n, why, sizeof(why)) != 0) {
        res = fail("%s", why);
    } else {
        size_t pending = 0;
        for (size_t i = 0; i < n; i++)
            pending += (size_t)m[i].pending;
        res = pending > 0 ? pending_result(m, n) : pass();
        if (pending == 0)
            json_object_set_new(res, "applied", json_integer((json_int_t)n));
    }
    free(m);
    return res;
}

static json_t *check_runner(struct probe *p)
{
    if (!p->redis_up)
        return fail("not checked: Redis unavailable");
    long long now = qrun_now_ms(), lease_ms = cfg.lease * 1000LL;
    redisReply *top = rds_command(&redis, "ZREVRANGE %s 0 0 WITHSCORES", QRUN_RUNNERS);
    if (top == NULL)
        return fail("%s", redis_brief());
    int have = top->type == REDIS_REPLY_ARRAY && top->elements == 2 &&
               top->element[1]->type == REDIS_REPLY_STRING;
    long long age = have ? now - (long long)strtod(top->element[1]->str, NULL) : 0;
    freeReplyObject(top);
    if (age < 0) /* clocks of two hosts */
        age = 0;
    json_t *res;
    if (!have)
        res = fail("no runner heartbeat in the last %ld s", cfg.lease);
    else if (age > lease_ms)
        res = fail("latest heartbeat %lld s ago", (age + 999) / 1000);
    else
        res = NULL;
    if (res != NULL) {
        json_object_set_new(res, "alive", json_integer(0));
        return res;
    }
    redisReply *alive = rds_command(&redis, "ZCOUNT %s %lld +inf", QRUN_RUNNERS, now - lease_ms);
    if (alive == NULL)
        return fail("%s", redis_brief());
    long long count = alive->type == REDIS_REPLY_INTEGER ? alive->integer : 0;
    freeReplyObject(alive);
    return json_pack("{s:s,s:I,s:I}", "status", "ok", "alive", (json_int_t)count,
                     "heartbeat_age_ms", (json_int_t)age);
}

/* In order: the later checks rely on what the earlier ones found. */
static const struct check {
    const char *name;
    json_t *(*run)(struct probe *p);
} checks[] = {
    {"redis", check_redis},
    {"postgres", check_postgres},
    {"migrations", check_migrations},
    {"runner", check_runner},
};

/* One log line when the set of failing checks changes. */
static void log_change(const char *failing, const struct buf *why)
{
    static char before[64];
    if (strcmp(failing, before) == 0)
        return;
    if (failing[0] != '\0')
        log_warn("not ready: %s", why->data);
    else
        log_info("ready again (all checks pass)");
    snprintf(before, sizeof(before), "%s", failing);
}

static int ready(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg != 0)
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET") != 0)
        return rs->status;
    setup();
    struct probe p = {0, 0, 0};
    json_t *results = json_object();
    char failing[64] = "";
    struct buf why = {0};
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        json_t *res = checks[i].run(&p);
        const char *st = json_string_value(json_object_get(res, "status"));
        if (st == NULL || strcmp(st, "ok") != 0) {
            const char *d = json_string_value(json_object_get(res, "detail"));
            size_t len = strlen(failing);
            snprintf(failing + len, sizeof(failing) - len, "%s%s", len > 0 ? ", " : "",
                     checks[i].name);
            buf_printf(&why, "%s%s: %s", why.len > 0 ? "; " : "", checks[i].name, d ? d : "?");
        }
        json_object_set_new(results, checks[i].name, res);
    }
    log_change(failing, &why);
    buf_free(&why);
    http_header_add(rs, "Cache-Control", "no-store");
    if (failing[0] == '\0')
        return http_json_new(rs, 200, json_pack("{s:s,s:o}", "status", "ready", "checks", results));
    return http_json_new(
        rs, 503,
        json_pack("{s:s,s:s,s:o}", "status", "not ready", "detail", failing, "checks", results));
}

int main(int argc, char **argv)
{
    static const struct conf_entry conf[] = {
        {"REDIS_URL", CONF_STR, NULL, &cfg.redis_url, 0, 0, NULL, rds_url_check},
        {"DATABASE_URL", CONF_STR, NULL, &cfg.database_url, 0, 0, NULL, db_url_check},
        {"DB_TIMEOUT_MS", CONF_INT, "1000", &cfg.db_timeout_ms, 100, 60000, NULL, NULL},
        {"MIGRATIONS_DIR", CONF_STR, "", &cfg.migrations_dir, 0, 0, NULL, NULL},
        {"GW_ROOT", CONF_STR, "", &cfg.gw_root, 0, 0, NULL, NULL},
        {"RUNNER_LEASE", CONF_INT, "10", &cfg.lease, 1, 3600, NULL, NULL},
    };
    return serve_main(argc, argv, "ready", conf, sizeof(conf) / sizeof(conf[0]), ready);
}
