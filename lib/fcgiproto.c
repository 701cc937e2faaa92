#include "fcgiproto.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

enum {
    BEGIN_REQUEST = 1,
    ABORT_REQUEST = 2,
    END_REQUEST = 3,
    PARAMS = 4,
    STDIN = 5,
    STDOUT = 6,
    GET_VALUES = 9,
    GET_VALUES_RESULT = 10,
    UNKNOWN_TYPE = 11,
    ROLE_RESPONDER = 1,
    FLAG_KEEP_CONN = 1,
    HEADER_LEN = 8,
    MAX_PARAMS_BYTES = 256 * 1024, /* lighttpd's own limit is far below */
};

void fcgp_init(struct fcgp *p, size_t body_max)
{
    memset(p, 0, sizeof(*p));
    p->body_max = body_max;
}

void fcgp_free(struct fcgp *p)
{
    buf_free(&p->params);
    buf_free(&p->body);
    buf_free(&p->envstore);
    free(p->envp);
    memset(p, 0, sizeof(*p));
}

void fcgp_reset(struct fcgp *p)
{
    p->id = 0;
    p->keep_conn = p->params_done = p->stdin_done = p->aborted = 0;
    p->body_seen = 0;
    p->nenv = 0;
    buf_clear(&p->params);
    buf_clear(&p->body);
    buf_clear(&p->envstore);
}

static void header(struct buf *out, int type, uint16_t id, size_t len)
{
    unsigned char h[HEADER_LEN] = {1, (unsigned char)type, (unsigned char)(id >> 8),
                                   (unsigned char)id, (unsigned char)(len >> 8),
                                   (unsigned char)len, 0, 0};
    buf_append(out, h, HEADER_LEN);
}

void fcgp_respond(struct buf *out, uint16_t id, const char *data, size_t len)
{
    while (len > 0) {
        size_t n = len > 65535 ? 65535 : len;
        header(out, STDOUT, id, n);
        buf_append(out, data, n);
        data += n;
        len -= n;
    }
    header(out, STDOUT, id, 0);
    header(out, END_REQUEST, id, 8);
    static const unsigned char end[8] = {0, 0, 0, 0, 0 /* REQUEST_COMPLETE */, 0, 0, 0};
    buf_append(out, end, sizeof(end));
}

/* Name-value pair lengths: 1 byte, or 4 with the top bit set. */
static int nv_len(const unsigned char **s, const unsigned char *end, size_t *len)
{
    if (*s >= end)
        return -1;
    if (**s < 0x80) {
        *len = *(*s)++;
        return 0;
    }
    if (end - *s < 4)
        return -1;
    *len = ((size_t)((*s)[0] & 0x7f) << 24) | ((size_t)(*s)[1] << 16) | ((size_t)(*s)[2] << 8) |
           (*s)[3];
    *s += 4;
    return 0;
}

/* Build envp from the params stream once it is complete. */
static int build_env(struct fcgp *p)
{
    static const unsigned char none[1];
    /* no params at all: data is NULL, and NULL + 0 is undefined */
    const unsigned char *s = p->params.len ? (const unsigned char *)p->params.data : none;
    const unsigned char *end = s + p->params.len;
    buf_reserve(&p->envstore, p->params.len * 2 + 1); /* names, '=', values, NULs */
    size_t off = 0;
    size_t n = 0;
    struct buf offs = {0};
    while (s < end) {
        size_t nl, vl;
        if (nv_len(&s, end, &nl) != 0 || nv_len(&s, end, &vl) != 0 ||
            (size_t)(end - s) < nl || (size_t)(end - s) - nl < vl) {
            buf_free(&offs);
            p->err = "malformed FastCGI params";
            return -1;
        }
        /* NUL inside a name or value would cut it short: refuse */
        if (memchr(s, '\0', nl + vl) != NULL) {
            buf_free(&offs);
            p->err = "NUL byte in FastCGI params";
            return -1;
        }
        buf_append(&offs, &off, sizeof(off));
        buf_append(&p->envstore, s, nl);
        buf_putc(&p->envstore, '=');
        buf_append(&p->envstore, s + nl, vl);
        buf_putc(&p->envstore, '\0');
        off = p->envstore.len;
        s += nl + vl;
        n++;
    }
    p->envp = xgrow(p->envp, &p->envcap, n + 1, sizeof(char *));
    const size_t *o = (const size_t *)(void *)offs.data;
    for (size_t i = 0; i < n; i++)
        p->envp[i] = p->envstore.data + o[i];
    p->envp[n] = NULL;
    p->nenv = n;
    buf_free(&offs);
    return 0;
}

enum fcgp_status fcgp_feed(struct fcgp *p, const char *in, size_t len, size_t *used,
                           struct buf *out)
{
    const unsigned char *u = (const unsigned char *)in;
    size_t pos = 0;
    *used = 0;
    while (len - pos >= HEADER_LEN) {
        const unsigned char *h = u + pos;
        int type = h[1];
        uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
        size_t clen = (size_t)h[4] << 8 | h[5];
        size_t total = HEADER_LEN + clen + h[6];
        if (h[0] != 1) {
            p->err = "not FastCGI version 1";
            return FCGP_ERROR;
        }
        if (len - pos < total)
            break;
        const unsigned char *c = h + HEADER_LEN;
        pos += total;
        *used = pos;

        if (id == 0) { /* management record */
            if (type == GET_VALUES) {
                /* We answer FCGI_MPXS_CONNS=0 only; lighttpd does not ask. */
                static const char r[] = "\x0f\x01" "FCGI_MPXS_CONNS0";
                header(out, GET_VALUES_RESULT, 0, sizeof(r) - 1);
                buf_append(out, r, sizeof(r) - 1);
            } else {
                header(out, UNKNOWN_TYPE, 0, 8);
                unsigned char body[8] = {(unsigned char)type, 0, 0, 0, 0, 0, 0, 0};
                buf_append(out, body, 8);
            }
            continue;
        }
        switch (type) {
        case BEGIN_REQUEST:
            if (p->id != 0 || clen < 8) {
                p->err = "unexpected BEGIN_REQUEST";
                return FCGP_ERROR;
            }
            if ((c[0] << 8 | c[1]) != ROLE_RESPONDER) {
                /* FCGI_UNKNOWN_ROLE */
                header(out, END_REQUEST, id, 8);
                unsigned char end[8] = {0, 0, 0, 0, 3, 0, 0, 0};
                buf_append(out, end, 8);
                continue;
            }
            p->id = id;
            p->keep_conn = c[2] & FLAG_KEEP_CONN;
            break;
        case ABORT_REQUEST:
            if (id == p->id)
                p->aborted = 1;
            break;
        case PARAMS:
            if (id != p->id || p->params_done) {
                p->err = "PARAMS outside a request";
                return FCGP_ERROR;
            }
            if (clen == 0) {
                p->params_done = 1;
                if (build_env(p) != 0)
                    return FCGP_ERROR;
            } else if (p->params.len + clen > MAX_PARAMS_BYTES) {
                p->err = "FastCGI params too large";
                return FCGP_ERROR;
            } else {
                buf_append(&p->params, c, clen);
            }
            break;
        case STDIN:
            if (id != p->id || !p->params_done || p->stdin_done) {
                p->err = "STDIN outside a request";
                return FCGP_ERROR;
            }
            if (clen == 0) {
                p->stdin_done = 1;
            } else {
                if (p->body.len < p->body_max) {
                    size_t keep = p->body_max - p->body.len;
                    buf_append(&p->body, c, clen < keep ? clen : keep);
                }
                p->body_seen += clen;
            }
            break;
        default: /* DATA and others: not for a responder; ignore */
            break;
        }
        if (p->id != 0 && p->params_done && p->stdin_done)
            return FCGP_READY;
    }
    return FCGP_MORE;
}
