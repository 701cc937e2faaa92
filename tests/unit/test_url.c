/* lib/url.c: url_decode(src, n, plus_space, out) percent-decodes src[0..n)
 * and appends to out, NUL-terminated; URL_EESCAPE for a '%' without two hex
 * digits, URL_ENUL for anything that would decode to a NUL byte. */
#include "../../lib/url.c"

#include "check.h"

/* Decodes the C string s into a fresh buffer; returns url_decode's result. */
static int decode(const char *s, int plus_space, struct buf *out)
{
    buf_init(out);
    return url_decode(s, strlen(s), plus_space, out);
}

static void test_plain(void)
{
    struct buf b;
    check_int(decode("hello-world_1.2~", 0, &b), URL_OK);
    check_str(b.data, "hello-world_1.2~");
    check_int(b.len, 16);
    buf_free(&b);

    check_int(decode("", 0, &b), URL_OK);
    check(b.data != NULL, "an empty input still leaves a C string");
    check_str(b.data, "");
    check_int(b.len, 0);
    buf_free(&b);
}

static void test_hex_escapes(void)
{
    struct buf b;
    check_int(decode("a%20b%2fc%2Fd", 0, &b), URL_OK);
    check_str(b.data, "a b/c/d");
    buf_free(&b);

    /* both cases of hex digits, all of 0-9a-fA-F */
    check_int(decode("%4a%4A%7e%7E%09%ff%FF", 0, &b), URL_OK);
    check_mem(b.data, b.len, "JJ~~\t\xff\xff", 7);
    buf_free(&b);

    /* UTF-8 passes through byte by byte, unchecked */
    check_int(decode("J%C3%B6rg", 0, &b), URL_OK);
    check_str(b.data, "J\xc3\xb6rg");
    buf_free(&b);

    /* a decoded '%' is data, not the start of another escape */
    check_int(decode("%2541", 0, &b), URL_OK);
    check_str(b.data, "%41");
    buf_free(&b);
}

static void test_plus(void)
{
    struct buf b;
    check_int(decode("a+b+%2B", 1, &b), URL_OK);
    check_str(b.data, "a b +");
    buf_free(&b);

    check_int(decode("a+b+%2B", 0, &b), URL_OK);
    check_str(b.data, "a+b++");
    buf_free(&b);
}

static void test_bad_escapes(void)
{
    static const char *const bad[] = {"%", "%4", "%G1", "%1G", "a%", "ab%2", "%%41", "% 41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf b;
        int rc = decode(bad[i], 0, &b);
        if (!check_int(rc, URL_EESCAPE))
            fprintf(stderr, "  input: \"%s\"\n", bad[i]);
        check(b.data != NULL && b.data[b.len] == '\0', "partial output is NUL-terminated");
        buf_free(&b);
    }

    /* the partial result is what came before the bad escape */
    struct buf b;
    check_int(decode("ab%2", 0, &b), URL_EESCAPE);
    check_str(b.data, "ab");
    buf_free(&b);

    /* an escape cut off by n, though the bytes after n are hex digits */
    buf_init(&b);
    check_int(url_decode("x%41", 3, 0, &b), URL_EESCAPE);
    buf_free(&b);
}

static void test_nul(void)
{
    struct buf b;
    check_int(decode("%00", 0, &b), URL_ENUL);
    buf_free(&b);
    check_int(decode("ab%00cd", 1, &b), URL_ENUL);
    check_str(b.data, "ab");
    buf_free(&b);

    /* a raw NUL inside src[0..n) */
    buf_init(&b);
    check_int(url_decode("ab\0cd", 5, 0, &b), URL_ENUL);
    check_str(b.data, "ab");
    buf_free(&b);

    /* n, not the NUL, ends the input: the same bytes cut before the NUL are fine */
    buf_init(&b);
    check_int(url_decode("ab\0cd", 2, 0, &b), URL_OK);
    check_str(b.data, "ab");
    buf_free(&b);
}

static void test_appends(void)
{
    struct buf b = {0};
    buf_puts(&b, "before|");
    check_int(url_decode("a%20b", 5, 0, &b), URL_OK);
    check_str(b.data, "before|a b");
    check_int(b.len, 10);

    /* the input length bounds the output: no read past n */
    check_int(url_decode("xyz", 1, 0, &b), URL_OK);
    check_str(b.data, "before|a bx");
    check_int(b.len, 11);

    /* an error keeps the earlier content and the partial part */
    check_int(url_decode("c%zz", 4, 0, &b), URL_EESCAPE);
    check_str(b.data, "before|a bxc");
    check_int(b.len, 12);
    buf_free(&b);
}

static void test_long_input(void)
{
    /* longer than any first allocation: the reserve covers the whole input */
    struct buf src = {0}, want = {0}, b = {0};
    for (int i = 0; i < 500; i++) {
        buf_puts(&src, "%41b+");
        buf_puts(&want, "Ab ");
    }
    check_int(url_decode(src.data, src.len, 1, &b), URL_OK);
    check_mem(b.data, b.len, want.data, want.len);
    check(b.data[b.len] == '\0', "long output is NUL-terminated");
    buf_free(&src);
    buf_free(&want);
    buf_free(&b);
}

int main(void)
{
    test_plain();
    test_hex_escapes();
    test_plus();
    test_bad_escapes();
    test_nul();
    test_appends();
    test_long_input();
    return check_done();
}
