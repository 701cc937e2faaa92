#ifndef JSONFMT_H
#define JSONFMT_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"

/* JSON text as Python writes it (json.dumps, hence FastAPI and Celery):
 * jansson prints a double with 17 significant digits (0.1 comes out as
 * 0.10000000000000001); Python prints the shortest text that reads back to
 * the same double (0.1), in fixed notation for exponents -4..15 and with
 * "e+NN" otherwise. Same numbers either way; this keeps the text the same
 * too. */

/* json_dump_callback(v, ..., flags) appended to out, then every real number
 * in it rewritten in Python's form. Returns 0 or -1 (jansson's failure). */
int jsonfmt_dump(json_t *v, struct buf *out, size_t flags);

/* Python's repr() of a finite double into out (at least 32 bytes). */
void jsonfmt_real(double d, char *out, size_t outlen);

#endif
