/* libFuzzer target over lib/fcgiproto.c, the FastCGI responder parser that
 * reads what lighttpd sends (aserve.c): arbitrary bytes as a FastCGI stream.
 *
 * The input is fed twice, the way aserve.c feeds a connection (unused bytes
 * kept for the next call; after READY, the response appended and the parser
 * reset for the next request): once all at once, once in pieces split at
 * pseudo-random points (seeded from the input, so a replay is exact). Both
 * must give the same transcript (every READY's request, the error, the
 * management replies); every request must be well formed (envp of nenv
 * "NAME=value" strings, NULL-terminated; body within body_max). Anything
 * else aborts. Nothing may leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fcgiproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rng {
    uint64_t s;
};

static uint32_t rng_next(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static void put_size(struct buf *t, size_t n) { buf_append(t, &n, sizeof(n)); }

/* Checks the READY request in p and writes it into the transcript t. */
static void record_ready(struct fcgp *p, struct buf *t)
{
    if (p->id == 0 || !p->params_done || !p->stdin_done || p->envp == NULL ||
        p->envp[p->nenv] != NULL || p->body.len > p->body_max || p->body_seen < p->body.len ||
        p->body.len != (p->body_seen < p->body_max ? p->body_seen : p->body_max))
        abort();
    buf_puts(t, "READY");
    put_size(t, p->id);
    put_size(t, (size_t)p->keep_conn);
    put_size(t, (size_t)p->aborted);
    put_size(t, p->nenv);
    for (size_t i = 0; i < p->nenv; i++) {
        const char *e = p->envp[i];
        if (e == NULL || strchr(e, '=') == NULL)
            abort();
        put_size(t, strlen(e));
        buf_puts(t, e);
    }
    put_size(t, p->body_seen);
    put_size(t, p->body.len);
    buf_append(t, p->body.data, p->body.len);
}

/* Feeds in[0..size): whole (split == NULL) or in pieces. The transcript of
 * what happened goes to t, the bytes written back to out. */
static void run(const char *in, size_t size, size_t body_max, struct rng *split, struct buf *t,
                struct buf *out)
{
    struct fcgp p;
    struct buf pending = {0};
    fcgp_init(&p, body_max);
    int failed = 0;
    for (size_t off = 0; off < size && !failed;) {
        size_t n = size - off;
        if (split != NULL) {
            uint32_t r = rng_next(split);
            size_t want = r & 0x100 ? 1 + (r & 7) : 1 + (r & 0xff) + ((r >> 16) & 0x3ff);
            if (want < n)
                n = want;
        }
        buf_append(&pending, in + off, n);
        off += n;
        for (;;) {
            size_t used = (size_t)-1;
            size_t before = out->len;
            enum fcgp_status st = fcgp_feed(&p, pending.data, pending.len, &used, out);
            if (used > pending.len || (st != FCGP_ERROR && out->len < before))
                abort();
            memmove(pending.data, pending.data + used, pending.len - used);
            pending.len -= used;
            if (st == FCGP_ERROR) {
                if (p.err == NULL || p.err[0] == '\0')
                    abort();
                buf_puts(t, "ERROR:");
                buf_puts(t, p.err);
                failed = 1;
                break;
            }
            if (st != FCGP_READY)
                break;
            record_ready(&p, t);
            /* the body back as the response (at most body_max bytes) */
            fcgp_respond(out, p.id, p.body.data, p.body.len);
            fcgp_reset(&p);
            if (p.id != 0 || p.nenv != 0 || p.body.len != 0 || p.body_seen != 0)
                abort();
        }
    }
    buf_puts(t, "END");
    put_size(t, failed ? 0 : pending.len);
    fcgp_free(&p);
    buf_free(&pending);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* FNV-1a of the input: the split points and body_max */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    static const size_t maxes[] = {0, 1, 7, 64, 1 << 20};
    size_t body_max = maxes[h % (sizeof(maxes) / sizeof(maxes[0]))];
    struct rng r = {h | 1};

    struct buf t1 = {0}, t2 = {0}, o1 = {0}, o2 = {0};
    run((const char *)data, size, body_max, NULL, &t1, &o1);
    run((const char *)data, size, body_max, &r, &t2, &o2);
    if (t1.len != t2.len || (t1.len > 0 && memcmp(t1.data, t2.data, t1.len) != 0) ||
        o1.len != o2.len || (o1.len > 0 && memcmp(o1.data, o2.data, o1.len) != 0))
        abort(); /* the result depends on how the bytes arrived */
    buf_free(&t1);
    buf_free(&t2);
    buf_free(&o1);
    buf_free(&o2);
    return 0;
}
