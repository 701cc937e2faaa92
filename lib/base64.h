#ifndef BASE64_H
#define BASE64_H

#include <stddef.h>

#include "buf.h"

/* Base64 (RFC 4648): the standard alphabet with '=' padding, which Celery
 * message bodies use ("body_encoding": "base64"), and the URL-safe one that
 * Fernet tokens use. */
enum b64_alphabet { B64_STD, B64_URL };

/* Append the encoding of src[0..n) to out, padded, no newlines. */
void b64_encode(struct buf *out, const void *src, size_t n, enum b64_alphabet a);

/* Append the decoding of src[0..n) to out. Padding is required for B64_STD
 * and optional for B64_URL; whitespace and any other byte are errors.
 * Returns 0, or -1 (out is then left as it was). */
int b64_decode(struct buf *out, const char *src, size_t n, enum b64_alphabet a)
    __attribute__((warn_unused_result));

#endif
