#ifndef BUF_H
#define BUF_H

#include <stdarg.h>
#include <stddef.h>

/* A growable byte buffer, always NUL-terminated after `len` bytes so `data`
 * can be used as a C string (it may also hold NULs). Zero-initialise it
 * (struct buf b = {0}) or call buf_init(); buf_free() releases it.
 * Allocation failure exits (see mem.h), so appends cannot fail. */
struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Empty the buffer but keep its memory for reuse (per-request buffers). */
void buf_clear(struct buf *b);
/* Make room for `extra` more bytes; pointers into data stay valid until the
 * buffer grows beyond that. */
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
