#ifndef MEM_H
#define MEM_H

#include <stddef.h>

/* Allocation that never returns NULL: on exhaustion or size overflow it logs
 * and exits(1), so callers need no NULL checks (kore's mem.c, hiredis's
 * SIZE_MAX guard). Everything returned is freed with free(). */

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Grow an array to hold at least `want` items of `size` bytes, doubling;
 * updates *cap. Returns the (maybe moved) array. */
void *xgrow(void *ptr, size_t *cap, size_t want, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
