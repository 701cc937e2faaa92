#include "jsonfmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jsonfmt_real(double d, char *out, size_t outlen)
{
    char sci[40];
    int p = 1;
    /* the fewest significant digits that read back to d */
    for (; p < 17; p++) {
        snprintf(sci, sizeof(sci), "%.*e", p - 1, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    snprintf(sci, sizeof(sci), "%.*e", p - 1, d);
    const char *e = strchr(sci, 'e');
    long exp = e ? strtol(e + 1, NULL, 10) : 0;
    if (exp < -4 || exp >= 16) {
        /* Python: 1e-05, 1.5e+16 (our %e already writes at least 2 exponent digits) */
        snprintf(out, outlen, "%s", sci);
        return;
    }
    int decimals = p - 1 - (int)exp;
    if (decimals < 1)
        decimals = 1; /* 1e15 -> 1000000000000000.0 */
    snprintf(out, outlen, "%.*f", decimals, d);
}

static int dump_cb(const char *data, size_t size, void *arg)
{
    buf_append(arg, data, size);
    return 0;
}

/* Rewrite the number tokens of out[from..] that carry a fraction or an
 * exponent (the reals; integers are already as Python writes them). */
static void fix_reals(struct buf *out, size_t from)
{
    struct buf fixed = {0};
    const char *s = out->data + from;
    const char *end = out->data + out->len;
    int in_string = 0, changed = 0;
    const char *copied = s;
    for (const char *p = s; p < end; p++) {
        if (in_string) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_string = 0;
            continue;
        }
        if (*p == '"') {
            in_string = 1;
            continue;
        }
        if (*p != '-' && (*p < '0' || *p > '9'))
            continue;
        const char *q = p;
        int real = 0;
        while (q < end && strchr("0123456789+-.eE", *q) != NULL) {
            if (*q == '.' || *q == 'e' || *q == 'E')
                real = 1;
            q++;
        }
        if (real) {
            char tok[64], py[48];
            size_t n = (size_t)(q - p);
            if (n < sizeof(tok)) {
                memcpy(tok, p, n);
                tok[n] = '\0';
                jsonfmt_real(strtod(tok, NULL), py, sizeof(py));
                if (strcmp(py, tok) != 0) {
                    buf_append(&fixed, copied, (size_t)(p - copied));
                    buf_puts(&fixed, py);
                    copied = q;
                    changed = 1;
                }
            }
        }
        p = q - 1;
    }
    if (changed) {
        buf_append(&fixed, copied, (size_t)(end - copied));
        out->len = from;
        buf_append(out, fixed.data, fixed.len);
    }
    buf_free(&fixed);
}

int jsonfmt_dump(json_t *v, struct buf *out, size_t flags)
{
    size_t from = out->len;
    if (json_dump_callback(v, dump_cb, out, flags) != 0) {
        out->len = from;
        if (out->data != NULL)
            out->data[from] = '\0';
        return -1;
    }
    fix_reals(out, from);
    return 0;
}
