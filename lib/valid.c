#include "valid.h"

#include <stdio.h>
#include <string.h>

/* Decode the code point at *p (valid UTF-8) and advance *p. */
static unsigned next_cp(const char **p)
{
    const unsigned char *s = (const unsigned char *)*p;
    unsigned c = s[0];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n > 1)
        c &= 0x3F >> (n - 1);
    for (int i = 1; i < n && s[i] != '\0'; i++)
        c = (c << 6) | (s[i] & 0x3F);
    *p += n;
    return c;
}

static int fail(struct valid_err *e, const char *type, const char *msg)
{
    e->type = type;
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    return -1;
}

size_t valid_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int is_control(unsigned c)
{
    return c < 0x20 || (c >= 0x7F && c <= 0x9F);
}

/* Whitespace and characters that print as nothing. */
static int is_blank(unsigned c)
{
    return c == ' ' || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200F) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x2060 ||
           c == 0x3000 || c == 0xFEFF;
}

int valid_text(const char *s, size_t min, size_t max, struct valid_err *e)
{
    size_t n = valid_chars(s);
    if (n < min) {
        e->type = "string_too_short";
        snprintf(e->msg, sizeof(e->msg), "String should have at least %zu character%s", min,
                 min == 1 ? "" : "s");
        return -1;
    }
    if (n > max) {
        e->type = "string_too_long";
        snprintf(e->msg, sizeof(e->msg), "String should have at most %zu character%s", max,
                 max == 1 ? "" : "s");
        return -1;
    }
    for (const char *p = s; *p != '\0';)
        if (is_control(next_cp(&p)))
            return fail(e, "string_pattern_mismatch",
                        "String should not contain control characters");
    return 0;
}

int valid_username(const char *s, struct valid_err *e)
{
    if (valid_text(s, 3, 64, e) != 0)
        return -1;
    for (const char *p = s; *p != '\0';) {
        unsigned c = next_cp(&p);
        if (is_blank(c) || c == '@' || c == '/' || c == ':')
            return fail(e, "string_pattern_mismatch",
                        "String should not contain spaces, '@', '/' or ':'");
    }
    return 0;
}

static int bad_email(struct valid_err *e, const char *why)
{
    e->type = "value_error";
    snprintf(e->msg, sizeof(e->msg), "value is not a valid email address: %s", why);
    return -1;
}

int valid_email(const char *s, struct valid_err *e)
{
    const char *at = strchr(s, '@');
    if (at == NULL || strchr(at + 1, '@') != NULL)
        return bad_email(e, "It must have exactly one @-sign.");
    size_t local = (size_t)(at - s);
    if (local == 0)
        return bad_email(e, "There must be something before the @-sign.");
    if (local > 64)
        return bad_email(e, "The email address is too long before the @-sign.");
    if (strlen(s) > 254)
        return bad_email(e, "The email address is too long.");
    for (const char *p = s; p < at;) {
        unsigned c = next_cp(&p);
        if (is_control(c) || is_blank(c) || (c < 0x80 && strchr("\"(),:;<>[\\]", (int)c)))
            return bad_email(e, "The email address contains invalid characters before the "
                                "@-sign.");
    }
    if (s[0] == '.' || at[-1] == '.' || strstr(s, "..") != NULL)
        return bad_email(e, "The local part may not start or end with a period or have two "
                            "periods in a row.");
    const char *d = at + 1;
    if (*d == '\0')
        return bad_email(e, "There must be something after the @-sign.");
    int labels = 0, all_digits = 0;
    for (const char *p = d;;) {
        size_t n = strcspn(p, ".");
        if (n == 0 || n > 63)
            return bad_email(e, "The part after the @-sign is not valid.");
        if (p[0] == '-' || p[n - 1] == '-')
            return bad_email(e, "A domain label may not start or end with a hyphen.");
        all_digits = 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c >= 0x80) { /* an internationalised label */
                all_digits = 0;
                continue;
            }
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-'))
                return bad_email(e, "The part after the @-sign contains invalid characters.");
            if (c < '0' || c > '9')
                all_digits = 0;
        }
        labels++;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    if (labels < 2)
        return bad_email(e, "The part after the @-sign is not valid. It should have a period.");
    if (all_digits)
        return bad_email(e, "The part after the @-sign is not valid. It is not within a "
                            "valid top-level domain.");
    return 0;
}

int valid_phone(const char *s, struct valid_err *e)
{
    size_t n = strlen(s);
    int ok = n >= 8 && n <= 16 && s[0] == '+' && s[1] >= '1' && s[1] <= '9' &&
             strspn(s + 1, "0123456789") == n - 1;
    return ok ? 0
              : fail(e, "string_pattern_mismatch",
                     "String should match pattern '^\\+[1-9][0-9]{6,14}$'");
}
