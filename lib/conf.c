#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "mem.h"

int conf_parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    /* strtol accepts leading spaces, "+" and "-0"; we take digits, with a
     * "-" only before a non-zero digit */
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9' || (p != s && *p == '0'))
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

#define CONF_FILE_MAX 65536

/* The contents of path into *out (a new string), trailing CR/LF off. */
static int read_value_file(const char *var, const char *path, char **out, char *err,
                           size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", var, path, strerror(errno));
        return -1;
    }
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > CONF_FILE_MAX) {
            snprintf(err, errlen, "%s: '%s' is over %d bytes", var, path, CONF_FILE_MAX);
            rc = -1;
            break;
        }
        buf_append(&b, chunk, n);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", var, path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    while (rc == 0 && b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.len--;
    if (rc == 0 && b.len == 0) {
        snprintf(err, errlen, "%s: '%s' is empty", var, path);
        rc = -1;
    }
    if (rc == 0 && (memchr(b.data, '\0', b.len) != NULL || memchr(b.data, '\n', b.len) != NULL ||
                    memchr(b.data, '\r', b.len) != NULL)) {
        snprintf(err, errlen, "%s: '%s' holds more than one line", var, path);
        rc = -1;
    }
    if (rc == 0)
        *out = xstrndup(b.data, b.len);
    buf_free(&b);
    return rc;
}

int conf_value(const char *name, char **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *val = getenv(name);
    if (val != NULL && *val != '\0') {
        *out = xstrdup(val);
        return 1;
    }
    char var[128];
    if ((size_t)snprintf(var, sizeof(var), "%s_FILE", name) >= sizeof(var)) {
        snprintf(err, errlen, "%.64s: name too long", name);
        return -1;
    }
    const char *path = getenv(var);
    if (path == NULL || *path == '\0')
        return 0;
    return read_value_file(var, path, out, err, errlen) == 0 ? 1 : -1;
}

static int load_one(const struct conf_entry *e, char *err, size_t errlen)
{
    char *owned = NULL;
    if (conf_value(e->name, &owned, err, errlen) < 0)
        return -1;
    int rc = -1;
    const char *val = owned != NULL ? owned : e->def;
    if (val == NULL) {
        snprintf(err, errlen, "%s is required", e->name);
        goto out;
    }
    switch (e->type) {
    case CONF_STR:
        if (e->check != NULL) {
            char why[192];
            if (e->check(val, why, sizeof(why)) != 0) {
                snprintf(err, errlen, "%s: %s", e->name, why);
                goto out;
            }
        }
        *(char **)e->ptr = xstrdup(val);
        rc = 0;
        goto out;
    case CONF_INT:
        if (conf_parse_long(val, e->min, e->max, (long *)e->ptr) != 0) {
            snprintf(err, errlen, "%s: expected an integer in %ld..%ld, got '%.64s'", e->name,
                     e->min, e->max, val);
            goto out;
        }
        rc = 0;
        goto out;
    case CONF_ENUM:
        for (int i = 0; e->choices[i] != NULL; i++) {
            if (strcasecmp(val, e->choices[i]) == 0) {
                *(int *)e->ptr = i;
                rc = 0;
                goto out;
            }
        }
        struct buf list = {0};
        for (int i = 0; e->choices[i] != NULL; i++)
            buf_printf(&list, "%s%s", i ? ", " : "", e->choices[i]);
        snprintf(err, errlen, "%s: expected one of %s, got '%.64s'", e->name,
                 list.data ? list.data : "", val);
        buf_free(&list);
        goto out;
    }
    snprintf(err, errlen, "%s: bad table entry", e->name);
out:
    free(owned);
    return rc;
}

int conf_load(const struct conf_entry *tab, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (load_one(&tab[i], err, errlen) != 0)
            return -1;
    }
    return 0;
}
