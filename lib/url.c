#include "url.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int url_decode(const char *src, size_t n, int plus_space, struct buf *out)
{
    buf_reserve(out, n);
    char *dst = out->data + out->len;
    size_t j = 0;
    int rc = URL_OK;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (n - i < 3 || hexval((unsigned char)src[i + 1]) < 0 ||
                hexval((unsigned char)src[i + 2]) < 0) {
                rc = URL_EESCAPE;
                break;
            }
            c = (unsigned char)(hexval((unsigned char)src[i + 1]) << 4 |
                                hexval((unsigned char)src[i + 2]));
            i += 2;
            if (c == '\0') {
                rc = URL_ENUL;
                break;
            }
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            rc = URL_ENUL;
            break;
        }
        dst[j++] = (char)c;
    }
    out->len += j;
    out->data[out->len] = '\0';
    return rc;
}
