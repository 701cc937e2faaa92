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

static int load_one(const struct conf_entry *e, char *err, size_t errlen)
{
    const char *val = getenv(e->name);
    if (val == NULL || *val == '\0')
        val = e->def;
    if (val == NULL) {
        snprintf(err, errlen, "%s is required", e->name);
        return -1;
    }
    switch (e->type) {
    case CONF_STR:
        if (e->check != NULL) {
            char why[192];
            if (e->check(val, why, sizeof(why)) != 0) {
                snprintf(err, errlen, "%s: %s", e->name, why);
                return -1;
            }
        }
        *(char **)e->ptr = xstrdup(val);
        return 0;
    case CONF_INT:
        if (conf_parse_long(val, e->min, e->max, (long *)e->ptr) != 0) {
            snprintf(err, errlen, "%s: expected an integer in %ld..%ld, got '%.64s'", e->name,
                     e->min, e->max, val);
            return -1;
        }
        return 0;
    case CONF_ENUM:
        for (int i = 0; e->choices[i] != NULL; i++) {
            if (strcasecmp(val, e->choices[i]) == 0) {
                *(int *)e->ptr = i;
                return 0;
            }
        }
        struct buf list = {0};
        for (int i = 0; e->choices[i] != NULL; i++)
            buf_printf(&list, "%s%s", i ? ", " : "", e->choices[i]);
        snprintf(err, errlen, "%s: expected one of %s, got '%.64s'", e->name,
                 list.data ? list.data : "", val);
        buf_free(&list);
        return -1;
    }
    snprintf(err, errlen, "%s: bad table entry", e->name);
    return -1;
}

int conf_load(const struct conf_entry *tab, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (load_one(&tab[i], err, errlen) != 0)
            return -1;
    }
    return 0;
}
