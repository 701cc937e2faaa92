#ifndef CHECK_H
#define CHECK_H

/* The unit-test harness: one header, no framework (jansson's test/suites/api
 * util.h, hiredis's test.c). A failed check prints where and what, and the
 * test carries on, so one run shows every broken contract:
 *
 *   tests/unit/test_url.c:42: "%4" is an escape error (url_decode("%4", 2, 0, &b) == URL_EESCAPE)
 *   tests/unit/test_url.c:43: check_str(b.data, "x"): got "" want "x"
 *
 * and main() ends with `return check_done();`, which prints
 *
 *   test_url: 12 passed, 0 failed
 *
 * and returns non-zero if anything failed. */

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

static inline int check_at(const char *file, int line, int ok, const char *msg, const char *expr)
{
    if (ok) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: %s (%s)\n", file, line, msg, expr);
    return 0;
}

/* check(cond, "what should hold"): cond is evaluated once. Returns cond, so a
 * check can guard the ones that depend on it: if (check(p != NULL, "...")) */
#define check(cond, msg) check_at(__FILE__, __LINE__, (cond) ? 1 : 0, (msg), #cond)

/* Prints s[0..n) as a C literal, so failures show control bytes and NULs. */
static inline void check_print_mem(const char *s, size_t n)
{
    if (s == NULL) {
        fputs("NULL", stderr);
        return;
    }
    fputc('"', stderr);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\r')
            fputs("\\r", stderr);
        else if (c < 0x20 || c == 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputc('"', stderr);
}

static inline int check_mem_at(const char *file, int line, const char *expr, const char *got,
                               size_t gotlen, const char *want, size_t wantlen)
{
    int ok = (got == NULL && want == NULL) ||
             (got != NULL && want != NULL && gotlen == wantlen && memcmp(got, want, gotlen) == 0);
    if (ok) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: %s: got ", file, line, expr);
    check_print_mem(got, gotlen);
    fputs(" want ", stderr);
    check_print_mem(want, wantlen);
    fputc('\n', stderr);
    return 0;
}

static inline int check_str_at(const char *file, int line, const char *expr, const char *got,
                               const char *want)
{
    return check_mem_at(file, line, expr, got, got ? strlen(got) : 0, want,
                        want ? strlen(want) : 0);
}

static inline int check_long_at(const char *file, int line, const char *expr, long got, long want)
{
    if (got == want) {
        check_passed++;
        return 1;
    }
    check_failed++;
    fprintf(stderr, "%s:%d: %s: got %ld want %ld\n", file, line, expr, got, want);
    return 0;
}

/* Equal C strings (either may be NULL: equal only if both are). */
#define check_str(got, want)                                                                       \
    check_str_at(__FILE__, __LINE__, "check_str(" #got ", " #want ")", (got), (want))
/* Equal byte ranges, for data that may hold NULs. */
#define check_mem(got, gotlen, want, wantlen)                                                      \
    check_mem_at(__FILE__, __LINE__, "check_mem(" #got ", " #want ")", (got), (gotlen), (want),    \
                 (wantlen))
/* Equal integers, printing both on failure. */
#define check_int(got, want)                                                                       \
    check_long_at(__FILE__, __LINE__, "check_int(" #got ", " #want ")", (long)(got), (long)(want))

/* Prints "<test name>: N passed, N failed" (the name is the source file's,
 * without directory and ".c") and returns the exit status for main(). */
static inline int check_done_at(const char *file)
{
    const char *name = strrchr(file, '/');
    name = name ? name + 1 : file;
    size_t n = strlen(name);
    if (n > 2 && strcmp(name + n - 2, ".c") == 0)
        n -= 2;
    printf("%.*s: %d passed, %d failed\n", (int)n, name, check_passed, check_failed);
    fflush(stdout);
    return check_failed != 0;
}
#define check_done() check_done_at(__FILE__)

/* check_json(got, want_text): got (a json_t *) equals the JSON text, in
 * type too (5 is not 5.0). For tests that include jansson. */
#ifdef JANSSON_H
#include <stdlib.h>

static inline int check_json_at(const char *file, int line, json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    int ok = got != NULL && want != NULL && json_equal(got, want) &&
             json_typeof(got) == json_typeof(want);
    check_at(file, line, ok, "JSON values differ", want_text);
    if (!ok) {
        char *g = got ? json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fprintf(stderr, "  got %s\n", g ? g : "NULL");
        free(g);
    }
    json_decref(want);
    return ok;
}
#define check_json(got, want) check_json_at(__FILE__, __LINE__, (got), (want))
#endif

#endif
