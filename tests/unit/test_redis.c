/* lib/redis.c: REDIS_URL's two forms, as redis-py reads them (and kombu the
 * second): where the socket or host is, the database, and the user and
 * password sent with AUTH, percent-decoded. No server is needed: rds_init
 * only parses. */
#include "../../lib/redis.c"

#include "check.h"

static void test_unix(void)
{
    struct rds r;
    char err[256];
    check_int(rds_init(&r, "unix:///run/redis.sock", 0, err, sizeof(err)), 0);
    check_str(r.path, "/run/redis.sock");
    check(r.password == NULL && r.user == NULL, "no password, no user");
    check_int(r.db, 0);
    rds_free(&r);

    check_int(rds_init(&r, "unix:///tmp/x/redis.sock?db=3", 0, err, sizeof(err)), 0);
    check_str(r.path, "/tmp/x/redis.sock");
    check_int(r.db, 3);
    rds_free(&r);

    /* a password: "unix://:password@/path" */
    check_int(rds_init(&r, "unix://:s3cr-et_X@/var/redis/redis.sock?db=1", 0, err, sizeof(err)), 0);
    check_str(r.path, "/var/redis/redis.sock");
    check_str(r.password, "s3cr-et_X");
    check(r.user == NULL, "an empty user is none");
    check_int(r.db, 1);
    rds_free(&r);

    /* a user and a password, percent-decoded ('/' and '@' escaped) */
    check_int(rds_init(&r, "unix://app%40x:p%2Fw%40rd%3A@/r.sock", 0, err, sizeof(err)), 0);
    check_str(r.user, "app@x");
    check_str(r.password, "p/w@rd:");
    check_str(r.path, "/r.sock");
    rds_free(&r);

    static const char *const bad[] = {
        "unix://",
        "unix://relative/redis.sock",
        "unix://:pw/redis.sock",       /* no '@' before the path */
        "unix://pw@/redis.sock",       /* userinfo without ':' */
        "unix://:p%zz@/redis.sock",    /* bad escape */
        "unix://:p%00@/redis.sock",    /* a NUL */
        "unix:///r.sock?db=x",
        "unix:///r.sock?password=x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!check_int(rds_init(&r, bad[i], 0, err, sizeof(err)), -1))
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        check(strstr(err, "unix://[[user]:password@]/path[?db=N]") != NULL, "the reason gives the forms");
        check(strstr(err, "pw") == NULL && strstr(err, "%zz") == NULL, "the URL is not in the reason");
    }
}

static void test_tcp(void)
{
    struct rds r;
    char err[256];
    check_int(rds_init(&r, "redis://127.0.0.1:6380/2", 0, err, sizeof(err)), 0);
    check_str(r.host, "127.0.0.1");
    check_int(r.port, 6380);
    check_int(r.db, 2);
    check(r.password == NULL, "no password");
    rds_free(&r);

    check_int(rds_init(&r, "redis://:pw@h", 0, err, sizeof(err)), 0);
    check_str(r.host, "h");
    check_int(r.port, 6379);
    check_str(r.password, "pw");
    check(r.user == NULL, "no user");
    rds_free(&r);

    /* an ACL user; the password up to the last '@', percent-decoded */
    check_int(rds_init(&r, "redis://worker:a@b%25c@10.0.0.9:6379/0", 0, err, sizeof(err)), 0);
    check_str(r.user, "worker");
    check_str(r.password, "a@b%c");
    check_str(r.host, "10.0.0.9");
    rds_free(&r);

    static const char *const bad[] = {
        "redis://",         "redis://pw@h",   "redis://:p%4@h", "redis://h:0",
        "redis://h:70000",  "redis://h:/0",   "redis://h/x",    "http://h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!check_int(rds_init(&r, bad[i], 0, err, sizeof(err)), -1))
            fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
    /* rds_url_check says the same */
    check_int(rds_url_check("unix://:x@/a.sock", err, sizeof(err)), 0);
    check_int(rds_url_check("unix://x@/a.sock", err, sizeof(err)), -1);
}

int main(void)
{
    test_unix();
    test_tcp();
    return check_done();
}
