#ifndef URL_H
#define URL_H

#include <stddef.h>

#include "buf.h"

/* Percent-decoding of URL parts (RFC 3986 §2.1). Pure: no I/O, no globals. */

enum url_err {
    URL_OK = 0,
    URL_EESCAPE = -1, /* '%' not followed by two hex digits */
    URL_ENUL = -2,    /* decodes to a NUL byte, which no C string can carry */
};

/* Decode src[0..n) and append it to out, NUL-terminated (out->len excludes
 * the NUL). With plus_space, '+' decodes to ' ' (query strings, HTML forms).
 * The output is never longer than the input. Returns URL_OK or a negative
 * url_err; on error out holds a partial result. Does not check UTF-8. */
int url_decode(const char *src, size_t n, int plus_space, struct buf *out)
    __attribute__((warn_unused_result));

#endif
