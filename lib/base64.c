#include "base64.h"

static const char std_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void b64_encode(struct buf *out, const void *src, size_t n, enum b64_alphabet a)
{
    const char *tab = a == B64_URL ? url_chars : std_chars;
    const unsigned char *s = src;
    buf_reserve(out, (n + 2) / 3 * 4);
    char *d = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *d++ = tab[v >> 18 & 63];
        *d++ = tab[v >> 12 & 63];
        *d++ = tab[v >> 6 & 63];
        *d++ = tab[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        *d++ = tab[v >> 18 & 63];
        *d++ = tab[v >> 12 & 63];
        *d++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *d++ = '=';
    }
    out->len = (size_t)(d - out->data);
    out->data[out->len] = '\0';
}

static int value_of(unsigned char c, enum b64_alphabet a)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (a == B64_URL ? '-' : '+'))
        return 62;
    if (c == (a == B64_URL ? '_' : '/'))
        return 63;
    return -1;
}

int b64_decode(struct buf *out, const char *src, size_t n, enum b64_alphabet a)
{
    size_t pad = 0;
    while (pad < 2 && n > pad && src[n - 1 - pad] == '=')
        pad++;
    if (pad > 0 && n % 4 != 0)
        return -1;
    if (a == B64_STD && n % 4 != 0)
        return -1;
    size_t len = n - pad; /* significant characters */
    if (len % 4 == 1)
        return -1;
    size_t start = out->len;
    buf_reserve(out, len / 4 * 3 + 3);
    unsigned char *d = (unsigned char *)out->data + out->len;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = value_of((unsigned char)src[i], a);
        if (v < 0) {
            out->len = start;
            out->data[start] = '\0';
            return -1;
        }
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *d++ = (unsigned char)(acc >> bits);
        }
    }
    /* leftover bits must be zero (canonical encoding) */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        out->len = start;
        out->data[start] = '\0';
        return -1;
    }
    out->len = (size_t)((char *)d - out->data);
    out->data[out->len] = '\0';
    return 0;
}
