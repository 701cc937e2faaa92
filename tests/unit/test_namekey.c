/* lib/namekey.c: NFKC_Casefold keys and TR39 skeletons of user names, the
 * look-alikes issue 17 names among them. */
#include "../../lib/namekey.c"

#include "check.h"

/* key_of NAME: its key, or "<refused>" */
static const char *key_of(const char *name)
{
    static struct buf b;
    buf_clear(&b);
    if (namekey_fold(name, &b) != 0)
        return "<refused>";
    return b.data ? b.data : "";
}

static const char *skel_of(const char *name)
{
    static struct buf k, s;
    buf_clear(&k);
    buf_clear(&s);
    if (namekey_make(name, &k, &s) != 0)
        return "<refused>";
    return s.data ? s.data : "";
}

/* 1 if names a and b have different skeletons */
static int differ(const char *a, const char *b)
{
    char first[512];
    snprintf(first, sizeof(first), "%s", skel_of(a));
    return strcmp(first, skel_of(b)) != 0;
}

/* 1 if names a and b have the same skeleton */
static int alike(const char *a, const char *b)
{
    return !differ(a, b);
}

int main(void)
{
    /* the key: case, compatibility forms and ignorables folded */
    check_str(key_of("admin"), "admin");
    check_str(key_of("ADMIN"), "admin");
    check_str(key_of("\xef\xbd\x81" "dmin"), "admin");          /* fullwidth a */
    check_str(key_of("\xef\xbc\xa1\xef\xbc\xa4MIN"), "admin");  /* fullwidth AD */
    check_str(key_of("Stra\xc3\x9f" "e"), "strasse");          /* German sharp s */
    check_str(key_of("\xc3\x89mile"), key_of("e\xcc\x81MILE")); /* precomposed or not */
    check_str(key_of("ali\xe2\x80\x8b" "ce"), "alice");         /* a zero-width space vanishes */
    check_str(key_of("\xef\xac\x81" "ne"), "fine");             /* the fi ligature */
    /* a Cyrillic i is another letter: another key ... */
    check_str(key_of("adm\xd1\x96n"), "adm\xd1\x96n");
    /* ... with the same skeleton as admin, as has "adrnin" */
    check(alike("adm\xd1\x96n", "admin"), "look-alikes");
    check(alike("adrnin", "admin"), "look-alikes");
    check(alike("ADMIN", "admin"), "look-alikes");
    check(alike("\xef\xbd\x81" "dmin", "admin"), "look-alikes");
    check(alike("\xd0\xb0lice", "alice"), "look-alikes"); /* Cyrillic a */
    check(alike("paypa1", "paypal"), "look-alikes");
    /* ordinary distinct names stay distinct */
    check(differ("alice", "bob"), "alice and bob differ");
    check(differ("admin", "admins"), "admin and admins differ");
    check(differ("carol", "carl"), "carol and carl differ");
    check(differ("user_1", "user_2"), "user_1 and user_2 differ");
    check(differ("\xe4\xb8\xad\xe6\x96\x87", "alice"), "CJK is its own");

    /* names holding ignorables are refused as new names (the route asks) */
    check_int(namekey_has_ignorable("ad\xc2\xad" "min"), 1); /* soft hyphen */
    check_int(namekey_has_ignorable("\xe2\x80\x8d"), 1);       /* zero-width joiner */
    check_int(namekey_has_ignorable("\xef\xb8\x8f"), 1);       /* variation selector 16 */
    check_int(namekey_has_ignorable("admin \xc3\xa9 \xe4\xb8\xad"), 0);
    check(alike("ad\xc2\xad" "min", "admin"), "an old name with a soft hyphen still has its keys");
    check_int(namekey_has_ignorable("ab\xff"), 1); /* not UTF-8 */
    /* invalid UTF-8 is refused, never folded */
    check_str(key_of("ab\xff"), "<refused>");
    check_str(key_of("\xed\xa0\x80"), "<refused>"); /* a surrogate */
    check_str(skel_of("\xc3"), "<refused>");
    check_str(key_of(""), "");

    /* expansion beyond the first guess: U+FDFA is 18 characters in NFKC */
    struct buf k = {0};
    char many[3 * 64 + 1] = "";
    for (int i = 0; i < 64; i++)
        memcpy(many + 3 * i, "\xef\xb7\xba", 4);
    check_int(namekey_fold(many, &k), 0);
    check(k.len > 64 * 18, "every ligature expanded");
    /* and appended, not replaced */
    size_t before = k.len;
    check_int(namekey_fold("X", &k), 0);
    check_int(k.len, before + 1);
    check_int(k.data[k.len - 1], 'x');
    buf_free(&k);
    return check_done();
}
