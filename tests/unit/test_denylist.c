/* lib/denylist.c: the local copy of the revoked-token list (the Redis side
 * is exercised through the gateway in tests/token.bats and tests/auth.bats). */
#include "../../lib/denylist.c"

#include <limits.h>

#include "check.h"

/* deny_check_token for a token of these claims */
static int is_revoked(const struct deny *d, const char *jti, const char *sub, long gen, long iat,
                      long now)
{
    struct token_claims c = {.gen = gen, .iat = iat};
    snprintf(c.jti, sizeof(c.jti), "%s", jti);
    snprintf(c.sub, sizeof(c.sub), "%s", sub);
    return deny_check_token(d, &c, now);
}

int main(void)
{
    struct deny d;
    deny_init(&d, 1.0);
    check_int(deny_check(&d, "a"), -1); /* never loaded: unknown, not "allowed" */
    d.loaded = 1;
    check_int(deny_check(&d, "a"), 0);

    long now = 1000;
    deny_add(&d, "a", now + 10, now);
    check_int(deny_check(&d, "a"), 1);
    check_int(deny_check(&d, "b"), 0);
    deny_add(&d, "a", now + 5, now); /* again: one entry, the later expiry kept */
    check_int(d.jtis.n, 1);
    deny_add(&d, "old", now - 1, now); /* already expired: nothing to deny */
    check_int(deny_check(&d, "old"), 0);
    deny_add(&d, "", now + 10, now);
    check_int(d.jtis.n, 1);
    char big[80];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    deny_add(&d, big, now + 10, now); /* longer than any jti we make */
    check_int(deny_check(&d, big), 0);

    /* thousands of entries: all found, none invented; growing drops what expired */
    char jti[40];
    for (int i = 0; i < 5000; i++) {
        snprintf(jti, sizeof(jti), "%08x-jti", (unsigned)i);
        deny_add(&d, jti, i < 2500 ? now + 1 : now + 1000, now);
    }
    check_int(d.jtis.n, 5001);
    int found = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(jti, sizeof(jti), "%08x-jti", (unsigned)i);
        found += deny_check(&d, jti) == 1;
        snprintf(jti, sizeof(jti), "%08x-not", (unsigned)i);
        check(deny_check(&d, jti) == 0, "an id never added is not revoked");
    }
    check_int(found, 5000);
    /* later, the first half has expired: the next growth leaves it behind */
    now += 100;
    size_t cap = d.jtis.cap;
    while (d.jtis.cap == cap) {
        snprintf(jti, sizeof(jti), "later-%zu", d.jtis.n);
        deny_add(&d, jti, now + 1000, now);
    }
    snprintf(jti, sizeof(jti), "%08x-jti", 0u);
    check_int(deny_check(&d, jti), 0);
    snprintf(jti, sizeof(jti), "%08x-jti", 4999u);
    check_int(deny_check(&d, jti), 1);
    deny_free(&d);

    /* a user's tokens: those of older generations, but the one excepted */
    deny_init(&d, 1.0);
    check_int(is_revoked(&d, "t1", "7", 1, now, now), -1);
    d.loaded = 1;
    check_int(is_revoked(&d, "t1", "7", 1, now, now), 0);
    deny_add_user(&d, &(struct deny_user){"7", 3, now, "keep"}, now + 100, now);
    check_int(is_revoked(&d, "t1", "7", 1, now, now), 1);    /* older generation */
    check_int(is_revoked(&d, "t2", "7", 2, now, now), 1);
    check_int(is_revoked(&d, "keep", "7", 2, now, now), 0);  /* the one that made the change */
    check_int(is_revoked(&d, "t3", "7", 3, now, now), 0);    /* issued after it, same second */
    check_int(is_revoked(&d, "t1", "8", 1, now, now), 0);    /* another user */
    check_int(is_revoked(&d, "t1", "77", 1, now, now), 0);
    check_int(is_revoked(&d, "t1", "7", 1, now, now + 101), 0); /* the entry is over */
    /* without a generation (tokenctl's): by the second it was issued */
    check_int(is_revoked(&d, "o1", "7", 0, now - 5, now), 1);
    check_int(is_revoked(&d, "o2", "7", 0, now, now), 1); /* the same second: revoked too */
    check_int(is_revoked(&d, "o3", "7", 0, now + 1, now + 1), 0);
    /* the next change, from another token: the earlier exception is gone */
    deny_add_user(&d, &(struct deny_user){"7", 4, now + 2, "other"}, now + 200, now);
    check_int(is_revoked(&d, "keep", "7", 2, now, now), 1);
    check_int(is_revoked(&d, "other", "7", 3, now, now), 0);
    check_int(is_revoked(&d, "t3", "7", 3, now, now), 1);
    check_int(is_revoked(&d, "o3", "7", 0, now + 1, now + 2), 1);
    /* an older generation heard later (Redis lost its data) changes nothing */
    deny_add_user(&d, &(struct deny_user){"7", 3, now, "keep"}, now + 100, now);
    check_int(is_revoked(&d, "keep", "7", 2, now, now), 1);
    /* the same generation heard later: the later exception (two changes
     * that read one generation, one of them refused) */
    deny_add_user(&d, &(struct deny_user){"7", 4, now + 2, NULL}, now + 200, now);
    check_int(is_revoked(&d, "other", "7", 3, now, now), 1);
    /* a deleted user: every generation */
    deny_add_user(&d, &(struct deny_user){"9", LONG_MAX, now, NULL}, now + 100, now);
    check_int(is_revoked(&d, "x", "9", 123456, now, now), 1);
    /* a jti revoked alone is revoked whatever its user */
    deny_add(&d, "solo", now + 10, now);
    check_int(is_revoked(&d, "solo", "8", 99, now, now), 1);
    check_int(d.users.n, 2);
    check_int(d.jtis.n, 1);

    /* members as Redis holds them */
    add_member(&d, "2000 ~5 1000 jj 12", now);
    check_int(is_revoked(&d, "a", "12", 4, now, now), 1);
    check_int(is_revoked(&d, "jj", "12", 4, now, now), 0);
    check_int(is_revoked(&d, "a", "12", 5, now, now), 0);
    check_int(is_revoked(&d, "a", "12", 0, 1000, now), 1);
    check_int(is_revoked(&d, "a", "12", 0, 1001, now), 0);
    add_member(&d, "2000 ~6 1000 - 13", now);
    check_int(is_revoked(&d, "-", "13", 5, now, now), 1); /* "-": no exception */
    add_member(&d, "2000 plain-jti", now);
    check_int(deny_check(&d, "plain-jti"), 1);
    size_t before = d.users.n + d.jtis.n;
    add_member(&d, "2000 ~x 1000 - 14", now); /* no generation */
    add_member(&d, "2000 ~5 - 15", now);      /* no time */
    add_member(&d, "2000 ~5 1000 nosub", now);
    add_member(&d, "2000 ~5 1000 - ", now);
    add_member(&d, "x ~5 1000 - 16", now);
    add_member(&d, "2000", now);
    check_int(d.users.n + d.jtis.n, before);
    deny_free(&d);
    return check_done();
}
