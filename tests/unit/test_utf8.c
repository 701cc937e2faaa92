/* lib/utf8.c: utf8_valid(s, n) is 1 for well-formed UTF-8 (RFC 3629) and 0
 * for everything else: overlong forms, surrogates, code points above
 * U+10FFFF, cut-off sequences, stray continuation bytes, 0xC0/0xC1/0xF5-0xFF. */
#include "../../lib/utf8.c"

#include <string.h>

#include "check.h"

struct utf8_case {
    const char *bytes;
    size_t n;
    int valid;
    const char *what;
};

#define CASE(lit, valid, what)                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1, valid, what                                                          \
    }

static const struct utf8_case cases[] = {
    CASE("", 1, "empty"),
    CASE("hello, world", 1, "ASCII"),
    CASE("\x7f", 1, "DEL, the last 1-byte form"),
    CASE("\xc3\xa9", 1, "U+00E9 e-acute, 2 bytes"),
    CASE("\xc2\x80", 1, "U+0080, the first 2-byte form"),
    CASE("\xdf\xbf", 1, "U+07FF, the last 2-byte form"),
    CASE("\xe2\x82\xac", 1, "U+20AC euro, 3 bytes"),
    CASE("\xe0\xa0\x80", 1, "U+0800, the first 3-byte form"),
    CASE("\xed\x9f\xbf", 1, "U+D7FF, just below the surrogates"),
    CASE("\xee\x80\x80", 1, "U+E000, just above the surrogates"),
    CASE("\xef\xbf\xbf", 1, "U+FFFF"),
    CASE("\xf0\x9f\x98\x80", 1, "U+1F600 grinning face, 4 bytes"),
    CASE("\xf0\x90\x80\x80", 1, "U+10000, the first 4-byte form"),
    CASE("\xf4\x8f\xbf\xbf", 1, "U+10FFFF, the last code point"),
    CASE("J\xc3\xb6rg \xf0\x9f\x98\x80!", 1, "mixed"),

    CASE("\xc0\x80", 0, "overlong NUL, 2 bytes"),
    CASE("\xc1\xbf", 0, "overlong U+007F, 2 bytes"),
    CASE("\xe0\x80\x80", 0, "overlong NUL, 3 bytes"),
    CASE("\xe0\x9f\xbf", 0, "overlong U+07FF, 3 bytes"),
    CASE("\xf0\x80\x80\x80", 0, "overlong NUL, 4 bytes"),
    CASE("\xf0\x8f\xbf\xbf", 0, "overlong U+FFFF, 4 bytes"),
    CASE("\xed\xa0\x80", 0, "U+D800, first surrogate"),
    CASE("\xed\xbf\xbf", 0, "U+DFFF, last surrogate"),
    CASE("\xed\xa0\xbd\xed\xb8\x80", 0, "CESU-8 surrogate pair"),
    CASE("\xf4\x90\x80\x80", 0, "U+110000, above the last code point"),
    CASE("\xf5\x80\x80\x80", 0, "0xF5 lead byte"),
    CASE("\xf8\x88\x80\x80\x80", 0, "5-byte form"),
    CASE("\xc3", 0, "2-byte sequence cut after 1"),
    CASE("\xe2\x82", 0, "3-byte sequence cut after 2"),
    CASE("\xf0\x9f\x98", 0, "4-byte sequence cut after 3"),
    CASE("ab\xe2\x82", 0, "cut sequence at the end of a longer string"),
    CASE("\xe2\x82x", 0, "3-byte sequence with an ASCII third byte"),
    CASE("\xc3\xc3\xa9", 0, "lead byte where a continuation belongs"),
    CASE("\x80", 0, "lone continuation byte"),
    CASE("a\xbf", 0, "continuation byte after ASCII"),
    CASE("\xc3\xa9\x80", 0, "extra continuation byte"),
    CASE("\xff", 0, "0xFF"),
    CASE("\xfe", 0, "0xFE"),
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct utf8_case *c = &cases[i];
        if (!check_int(utf8_valid(c->bytes, c->n), c->valid))
            fprintf(stderr, "  case: %s\n", c->what);
    }
}

static void test_length_is_n(void)
{
    /* n, not a NUL, ends the input: NUL is a valid code point */
    check_int(utf8_valid("a\0b", 3), 1);
    /* bytes after n are not looked at, even an invalid or cut sequence */
    check_int(utf8_valid("ab\xff", 2), 1);
    check_int(utf8_valid("\xe2\x82\xac", 2), 0);
    check_int(utf8_valid("\xe2\x82\xac", 0), 1);
}

int main(void)
{
    test_cases();
    test_length_is_n();
    return check_done();
}
