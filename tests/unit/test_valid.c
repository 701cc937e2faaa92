/* lib/valid.c: the field checks behind /api/users' 422 answers, with
 * pydantic's error types, and lengths in characters, not bytes. */
#include "../../lib/valid.c"

#include "check.h"

struct vcase {
    const char *s;
    const char *type; /* NULL: valid */
};

static void run(const char *what, int (*fn)(const char *, struct valid_err *),
                const struct vcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct valid_err e = {0};
        int rc = fn(c[i].s, &e);
        if (c[i].type == NULL) {
            if (!check(rc == 0, what))
                fprintf(stderr, "  rejected \"%s\": %s\n", c[i].s, e.msg);
        } else if (check(rc == -1, what)) {
            check_str(e.type, c[i].type);
            check(e.msg[0] != '\0', "a message comes with the error");
        } else {
            fprintf(stderr, "  accepted \"%s\"\n", c[i].s);
        }
    }
}

static int username(const char *s, struct valid_err *e) { return valid_username(s, e); }
static int email(const char *s, struct valid_err *e) { return valid_email(s, e); }
static int phone(const char *s, struct valid_err *e) { return valid_phone(s, e); }

int main(void)
{
    check_int(valid_chars(""), 0);
    check_int(valid_chars("abc"), 3);
    check_int(valid_chars("J\xc3\xb6rg"), 4);
    check_int(valid_chars("\xf0\x9f\x98\x80"), 1);

    static const struct vcase users[] = {
        {"bob", NULL},
        {"alice.smith-99_x", NULL},
        {"J\xc3\xb6rg", NULL},                         /* Jörg */
        {"\xe4\xb8\xad\xe6\x96\x87\xe5\x90\x8d", NULL}, /* 3 CJK characters */
        {"'; DROP TABLE users; --", "string_pattern_mismatch"}, /* spaces */
        {"O'Brien\\\"$1", NULL},
        {"ab", "string_too_short"},
        {"\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "string_too_short"}, /* 2 characters, 8 bytes */
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "string_too_long"},
        {"has space", "string_pattern_mismatch"},
        {"tab\there", "string_pattern_mismatch"},
        {"nbsp\xc2\xa0x", "string_pattern_mismatch"},
        {"zero\xe2\x80\x8bwidth", "string_pattern_mismatch"},
        {"ideo\xe3\x80\x80space", "string_pattern_mismatch"},
        {"bom\xef\xbb\xbfx", "string_pattern_mismatch"},
        {"c1\xc2\x85x", "string_pattern_mismatch"},
        {"a@b", "string_pattern_mismatch"},
        {"a/b", "string_pattern_mismatch"},
        {"a:b", "string_pattern_mismatch"},
        {"del\x7f", "string_pattern_mismatch"},
    };
    run("username", username, users, sizeof(users) / sizeof(users[0]));
    /* 64 emoji: 64 characters, 256 bytes */
    char emoji[4 * 65 + 1] = {0};
    for (int i = 0; i < 64; i++)
        memcpy(emoji + 4 * i, "\xf0\x9f\x98\x80", 4);
    struct valid_err e;
    check(valid_username(emoji, &e) == 0, "64 emoji are 64 characters");
    memcpy(emoji + 4 * 64, "\xf0\x9f\x98\x80", 4);
    check(valid_username(emoji, &e) == -1 && strcmp(e.type, "string_too_long") == 0,
          "65 emoji are too long");

    static const struct vcase emails[] = {
        {"a@b.co", NULL},
        {"first.last+tag@sub.example.com", NULL},
        {"O'Brien@example.org", NULL},
        {"j\xc3\xb6rg@m\xc3\xbcnchen.de", NULL},
        {"x@xn--mnchen-3ya.de", NULL},
        {"", "value_error"},
        {"plain", "value_error"},
        {"@example.com", "value_error"},
        {"a@", "value_error"},
        {"a@@b.com", "value_error"},
        {"a@b@c.com", "value_error"},
        {"a b@c.com", "value_error"},
        {"a@localhost", "value_error"},
        {"a@-x.com", "value_error"},
        {"a@x-.com", "value_error"},
        {"a@x..com", "value_error"},
        {"a@x.com.", "value_error"},
        {"a@1.2.3.4", "value_error"},
        {".a@x.com", "value_error"},
        {"a.@x.com", "value_error"},
        {"a..b@x.com", "value_error"},
        {"a<b>@x.com", "value_error"},
        {"'; DROP TABLE users;--@x.com", "value_error"},
        {"a@x_y.com", "value_error"},
        {"ctl\x01@x.com", "value_error"},
    };
    run("email", email, emails, sizeof(emails) / sizeof(emails[0]));
    char long_local[80];
    memset(long_local, 'a', 65);
    memcpy(long_local + 65, "@x.com", 7);
    check(valid_email(long_local, &e) == -1, "a local part over 64 bytes");

    static const struct vcase phones[] = {
        {"+4412345678", NULL},
        {"+123456789012345", NULL},
        {"+1234567", NULL},
        {"+123456", "string_pattern_mismatch"},
        {"+1234567890123456", "string_pattern_mismatch"},
        {"4412345678", "string_pattern_mismatch"},
        {"+0412345678", "string_pattern_mismatch"},
        {"+44 1234 5678", "string_pattern_mismatch"},
        {"+44-1234-5678", "string_pattern_mismatch"},
        {"", "string_pattern_mismatch"},
    };
    run("phone", phone, phones, sizeof(phones) / sizeof(phones[0]));

    check(valid_text("", 0, 128, &e) == 0, "an empty text within 0..128");
    check(valid_text("x", 2, 5, &e) == -1 && strcmp(e.type, "string_too_short") == 0, "short");
    check_str(e.msg, "String should have at least 2 characters");
    check(valid_text("line\nbreak", 0, 128, &e) == -1, "a newline is a control character");
    return check_done();
}
