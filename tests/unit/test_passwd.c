/* lib/passwd.c: yescrypt hashes that verify their own password only, with
 * a fresh salt each time. */
#include "../../lib/passwd.c"

#include "check.h"

int main(void)
{
    char h1[PASSWD_HASH_MAX], h2[PASSWD_HASH_MAX];
    check(passwd_hash("correct horse", h1, sizeof(h1)) == 0, "hashes");
    check(strncmp(h1, "$y$", 3) == 0, "yescrypt");
    check(passwd_hash("correct horse", h2, sizeof(h2)) == 0, "hashes again");
    check(strcmp(h1, h2) != 0, "a fresh salt each time");
    check(passwd_verify("correct horse", h1) == 1, "its password verifies");
    check(passwd_verify("correct horse", h2) == 1, "the other hash too");
    check(passwd_verify("correct horsE", h1) == 0, "another password does not");
    check(passwd_verify("", h1) == 0, "an empty password does not");
    check(passwd_verify("correct horse", "") == 0, "an empty hash matches nothing");
    check(passwd_verify("correct horse", "*0") == 0, "a failure token matches nothing");
    check(passwd_verify("correct horse", "$y$garbage") == 0, "a malformed hash matches nothing");
    check(passwd_verify("correct horse", NULL) == 0, "no hash matches nothing");
    char tiny[8];
    check(passwd_hash("x", tiny, sizeof(tiny)) == -1, "no room: refused, not truncated");
    char longest[PASSWD_MAX_BYTES + 2];
    memset(longest, 'a', PASSWD_MAX_BYTES);
    longest[PASSWD_MAX_BYTES] = '\0';
    check(passwd_hash(longest, h1, sizeof(h1)) == 0, "511 bytes: hashed");
    check(passwd_verify(longest, h1) == 1, "511 bytes: verifies");
    longest[PASSWD_MAX_BYTES] = 'a';
    longest[PASSWD_MAX_BYTES + 1] = '\0';
    check(passwd_hash(longest, h2, sizeof(h2)) == -1, "512 bytes: refused");
    /* unicode passwords */
    check(passwd_hash("p\xc3\xa4ss\xf0\x9f\x98\x80w\xc3\xb6rd", h1, sizeof(h1)) == 0, "UTF-8");
    check(passwd_verify("p\xc3\xa4ss\xf0\x9f\x98\x80w\xc3\xb6rd", h1) == 1, "UTF-8 verifies");
    return check_done();
}
