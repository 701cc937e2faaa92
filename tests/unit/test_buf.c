/* lib/buf.c: a growable byte buffer that is always NUL-terminated after len
 * bytes, may hold NULs, and keeps its memory across buf_clear(). */
#include "../../lib/buf.c"

#include <wchar.h>

#include "check.h"

static void test_zero_init(void)
{
    struct buf b = {0};
    check(b.data == NULL && b.len == 0 && b.cap == 0, "{0} is an empty buffer");
    buf_free(&b); /* freeing an untouched buffer is fine */
    check(b.data == NULL && b.len == 0 && b.cap == 0, "buf_free leaves an empty buffer");

    b.len = 5; /* buf_init does not free: it sets every field */
    buf_init(&b);
    check(b.data == NULL && b.len == 0 && b.cap == 0, "buf_init empties every field");
}

static void test_append_puts_putc(void)
{
    struct buf b = {0};
    buf_append(&b, "abc", 3);
    check_str(b.data, "abc");
    check_int(b.len, 3);
    check(b.cap >= 4, "cap leaves room for the NUL");

    buf_puts(&b, "de");
    buf_putc(&b, 'f');
    buf_append(&b, "ghXXX", 2); /* only len bytes */
    check_str(b.data, "abcdefgh");
    check_int(b.len, 8);
    check_int(b.data[b.len], '\0');

    buf_append(&b, NULL, 0); /* nothing to copy: no read of data */
    buf_puts(&b, "");
    check_str(b.data, "abcdefgh");
    check_int(b.len, 8);

    /* many small appends cross several regrowths */
    struct buf big = {0};
    for (int i = 0; i < 1000; i++)
        buf_putc(&big, (char)('a' + i % 26));
    check_int(big.len, 1000);
    check(big.cap > 1000, "cap > len");
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same = same && big.data[i] == (char)('a' + i % 26);
    check(same, "every byte survives the regrowths");
    check_int(big.data[1000], '\0');
    buf_free(&big);
    buf_free(&b);
}

static void test_empty_append_still_terminates(void)
{
    struct buf b = {0};
    buf_append(&b, "", 0);
    check(b.data != NULL, "an empty append allocates, so data is a C string");
    check_str(b.data, "");
    check_int(b.len, 0);
    buf_free(&b);
}

static void test_binary(void)
{
    struct buf b = {0};
    buf_append(&b, "a\0b\0", 4);
    buf_putc(&b, '\0');
    buf_puts(&b, "c");
    check_int(b.len, 6);
    check_mem(b.data, b.len, "a\0b\0\0c", 6);
    check_int(b.data[6], '\0');
    check_int(strlen(b.data), 1); /* as a C string it stops at the first NUL */
    buf_free(&b);
}

static void test_printf(void)
{
    struct buf b = {0};
    buf_printf(&b, "%d-%s-%c", 42, "x", 'y');
    check_str(b.data, "42-x-y");
    check_int(b.len, 6);

    buf_printf(&b, "|%05.1f|%zu|%%", 3.14159, (size_t)7);
    check_str(b.data, "42-x-y|003.1|7|%");
    check_int(b.len, 16);

    buf_printf(&b, "%s", "");
    check_int(b.len, 16);
    check_str(b.data, "42-x-y|003.1|7|%");
    buf_free(&b);
}

static void test_printf_regrow(void)
{
    /* longer than the 64 bytes buf_printf reserves first: the second pass */
    char want[301];
    memset(want, 'z', 300);
    want[300] = '\0';

    struct buf b = {0};
    buf_puts(&b, "head:");
    buf_printf(&b, "%s:%d", want, 300);
    check_int(b.len, 5 + 300 + 4);
    check(b.len > 64 && b.cap > b.len, "grew past the first reservation");
    check(strncmp(b.data, "head:", 5) == 0, "earlier content kept");
    check(memcmp(b.data + 5, want, 300) == 0, "the long argument written whole");
    check_str(b.data + 305, ":300");

    /* exactly at the edge of the room the first pass had */
    struct buf e = {0};
    buf_printf(&e, "%s", "");
    size_t room = e.cap - e.len - 1; /* the longest text that fits with its NUL */
    char edge[1024];
    check(room + 2 < sizeof(edge), "edge test fits its array");
    for (size_t extra = 0; extra <= 1; extra++) {
        buf_clear(&e);
        size_t n = room + extra;
        memset(edge, 'e', n);
        edge[n] = '\0';
        buf_printf(&e, "%s", edge);
        check_int(e.len, n);
        check_str(e.data, edge);
    }
    buf_free(&e);

    /* a printf after a printf that regrew */
    buf_printf(&b, "%s", "+tail");
    check_int(b.len, 5 + 300 + 4 + 5);
    check_str(b.data + 309, "+tail");
    buf_free(&b);
}

static void vprintf_helper(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vprintf_helper(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

static void test_vprintf(void)
{
    char big[200];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct buf b = {0};
    /* the va_list is used twice when the first pass does not fit */
    vprintf_helper(&b, "%s/%d/%s", big, -5, "end");
    check_int(b.len, 199 + 7);
    check_str(b.data + 199, "/-5/end");
    buf_free(&b);
}

static void test_printf_error(void)
{
    /* When vsnprintf fails (here: a wide character the C locale cannot
     * encode, EILSEQ), the buffer must stay as it was: same len, and still
     * NUL-terminated there, though vsnprintf may have written part of its
     * output past len before giving up. */
    static const wchar_t unencodable[] = {0xe9, 0};
    char probe[16];
    if (snprintf(probe, sizeof(probe), "%ls", unencodable) >= 0) {
        fprintf(stderr, "%s: skipping test_printf_error: the locale encodes U+00E9\n", __FILE__);
        return;
    }
    struct buf b = {0};
    buf_puts(&b, "x");
    buf_printf(&b, "abc%ls", unencodable);
    check_int(b.len, 1);
    check_str(b.data, "x");
    buf_free(&b);
}

static void test_clear_keeps_capacity(void)
{
    struct buf b = {0};
    buf_puts(&b, "some text that is long enough to need a real allocation");
    char *data = b.data;
    size_t cap = b.cap;
    buf_clear(&b);
    check_int(b.len, 0);
    check_str(b.data, "");
    check(b.data == data && b.cap == cap, "clear keeps the memory");

    buf_puts(&b, "again");
    check(b.data == data, "a short append after clear reuses the memory");
    check_str(b.data, "again");
    buf_free(&b);

    struct buf empty = {0};
    buf_clear(&empty); /* clearing a never-used buffer is fine */
    check(empty.data == NULL && empty.len == 0, "clearing {0} leaves {0}");
}

static void test_reserve(void)
{
    struct buf b = {0};
    buf_puts(&b, "ab");
    buf_reserve(&b, 100);
    check(b.cap >= b.len + 100 + 1, "reserve makes room for extra bytes and the NUL");
    check_str(b.data, "ab");
    check_int(b.len, 2);

    /* appends within the reservation do not move the data */
    char *data = b.data;
    for (int i = 0; i < 100; i++)
        buf_putc(&b, 'x');
    check(b.data == data, "appends within the reservation keep pointers valid");
    check_int(b.len, 102);

    /* reserving less than what is free changes nothing */
    size_t cap = b.cap;
    buf_reserve(&b, 0);
    check(b.cap == cap && b.data == data, "reserve(0) with room left is a no-op");
    buf_free(&b);

    struct buf r = {0};
    buf_reserve(&r, 0);
    check(r.data != NULL && r.cap >= 1, "reserve(0) on {0} allocates room for the NUL");
    buf_free(&r);
}

int main(void)
{
    test_zero_init();
    test_append_puts_putc();
    test_empty_append_still_terminates();
    test_binary();
    test_printf();
    test_printf_regrow();
    test_vprintf();
    test_printf_error();
    test_clear_keeps_capacity();
    test_reserve();
    return check_done();
}
