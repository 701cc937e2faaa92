/* lib/denylist.c: the local copy of the revoked-token list (the Redis side
 * is exercised through the gateway in tests/token.bats and tests/auth.bats). */
#include "../../lib/denylist.c"

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
    check_int(d.n, 1);
    deny_add(&d, "old", now - 1, now); /* already expired: nothing to deny */
    check_int(deny_check(&d, "old"), 0);
    deny_add(&d, "", now + 10, now);
    check_int(d.n, 1);
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
    check_int(d.n, 5001);
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
    size_t cap = d.cap;
    while (d.cap == cap) {
        snprintf(jti, sizeof(jti), "later-%zu", d.n);
        deny_add(&d, jti, now + 1000, now);
    }
    snprintf(jti, sizeof(jti), "%08x-jti", 0u);
    check_int(deny_check(&d, jti), 0);
    snprintf(jti, sizeof(jti), "%08x-jti", 4999u);
    check_int(deny_check(&d, jti), 1);
    deny_free(&d);
    return check_done();
}
