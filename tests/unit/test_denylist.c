/* lib/denylist.c: the local copy of the revoked-token list (the Redis side
 * is exercised through the gateway in tests/token.bats and tests/auth.bats). */
#include "../../lib/denylist.c"

#include <limits.h>

#include "check.h"

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
    check_int(deny_check_token(&d, "t1", "7", 1, now), -1);
    d.loaded = 1;
    check_int(deny_check_token(&d, "t1", "7", 1, now), 0);
    deny_add_user(&d, "7", 3, "keep", now + 100, now);
    check_int(deny_check_token(&d, "t1", "7", 1, now), 1);   /* older generation */
    check_int(deny_check_token(&d, "t2", "7", 2, now), 1);
    check_int(deny_check_token(&d, "t0", "7", 0, now), 1);   /* none: tokenctl's */
    check_int(deny_check_token(&d, "keep", "7", 2, now), 0); /* the one that made the change */
    check_int(deny_check_token(&d, "t3", "7", 3, now), 0);   /* issued after it */
    check_int(deny_check_token(&d, "t1", "8", 1, now), 0);   /* another user */
    check_int(deny_check_token(&d, "t1", "77", 1, now), 0);
    check_int(deny_check_token(&d, "t1", "7", 1, now + 101), 0); /* the entry is over */
    /* the next change, from another token: the earlier exception is gone */
    deny_add_user(&d, "7", 4, "other", now + 200, now);
    check_int(deny_check_token(&d, "keep", "7", 2, now), 1);
    check_int(deny_check_token(&d, "other", "7", 3, now), 0);
    check_int(deny_check_token(&d, "t3", "7", 3, now), 1);
    /* an older generation heard later (Redis lost its data) changes nothing */
    deny_add_user(&d, "7", 3, "keep", now + 100, now);
    check_int(deny_check_token(&d, "keep", "7", 2, now), 1);
    /* the same generation heard later: the later exception (two changes
     * that read one generation, one of them refused) */
    deny_add_user(&d, "7", 4, "", now + 200, now);
    check_int(deny_check_token(&d, "other", "7", 3, now), 1);
    /* a deleted user: every generation */
    deny_add_user(&d, "9", LONG_MAX, NULL, now + 100, now);
    check_int(deny_check_token(&d, "x", "9", 123456, now), 1);
    /* a jti revoked alone is revoked whatever its user */
    deny_add(&d, "solo", now + 10, now);
    check_int(deny_check_token(&d, "solo", "8", 99, now), 1);
    check_int(d.users.n, 2);
    check_int(d.jtis.n, 1);

    /* members as Redis holds them */
    add_member(&d, "2000 ~5 jj 12", now);
    check_int(deny_check_token(&d, "a", "12", 4, now), 1);
    check_int(deny_check_token(&d, "jj", "12", 4, now), 0);
    check_int(deny_check_token(&d, "a", "12", 5, now), 0);
    add_member(&d, "2000 ~6 - 13", now);
    check_int(deny_check_token(&d, "-", "13", 5, now), 1); /* "-": no exception */
    add_member(&d, "2000 plain-jti", now);
    check_int(deny_check(&d, "plain-jti"), 1);
    size_t before = d.users.n + d.jtis.n;
    add_member(&d, "2000 ~x - 14", now); /* no generation */
    add_member(&d, "2000 ~5 nosub", now);
    add_member(&d, "x ~5 - 15", now);
    add_member(&d, "2000", now);
    check_int(d.users.n + d.jtis.n, before);
    deny_free(&d);
    return check_done();
}
