/* lib/fcgiproto.c: the FastCGI responder protocol as pure byte processing.
 * Byte streams are built by hand here, record by record, the way lighttpd
 * sends them: BEGIN_REQUEST, PARAMS (name-value pairs with 1- or 4-byte
 * lengths, ended by an empty PARAMS), STDIN (ended by an empty STDIN), plus
 * management records (request id 0). */
#include "../../lib/fcgiproto.c"

#include <stdint.h>

#include "check.h"

/* Record types and fields, spelled out as the spec numbers them. */
#define T_BEGIN 1
#define T_ABORT 2
#define T_END 3
#define T_PARAMS 4
#define T_STDIN 5
#define T_STDOUT 6
#define T_DATA 8
#define T_GET_VALUES 9
#define T_GET_VALUES_RESULT 10
#define T_UNKNOWN_TYPE 11

/* One record: header, content, `pad` padding bytes (0xAA, never looked at). */
static void rec(struct buf *b, int type, unsigned id, const void *content, size_t clen, size_t pad)
{
    unsigned char h[8] = {1,
                          (unsigned char)type,
                          (unsigned char)(id >> 8),
                          (unsigned char)id,
                          (unsigned char)(clen >> 8),
                          (unsigned char)clen,
                          (unsigned char)pad,
                          0};
    buf_append(b, h, 8);
    if (clen > 0)
        buf_append(b, content, clen);
    for (size_t i = 0; i < pad; i++)
        buf_putc(b, (char)0xAA);
}

static void begin(struct buf *b, unsigned id, unsigned role, unsigned flags)
{
    unsigned char c[8] = {(unsigned char)(role >> 8), (unsigned char)role, (unsigned char)flags,
                          0, 0, 0, 0, 0};
    rec(b, T_BEGIN, id, c, 8, 0);
}

/* A name-value length: 1 byte if it fits in 7 bits and !wide, else 4. */
static void nv_length(struct buf *b, size_t len, int wide)
{
    if (len < 0x80 && !wide) {
        buf_putc(b, (char)len);
        return;
    }
    unsigned char l[4] = {(unsigned char)(0x80 | (len >> 24)), (unsigned char)(len >> 16),
                          (unsigned char)(len >> 8), (unsigned char)len};
    buf_append(b, l, 4);
}

/* Appends one name-value pair (lengths as short as they can be). */
static void nv(struct buf *b, const char *name, const char *value)
{
    nv_length(b, strlen(name), 0);
    nv_length(b, strlen(value), 0);
    buf_puts(b, name);
    buf_puts(b, value);
}

/* PARAMS records carrying pairs (split into records of at most `chunk`
 * bytes, anywhere, even inside a pair), then the empty PARAMS. */
static void params(struct buf *b, unsigned id, const struct buf *pairs, size_t chunk)
{
    for (size_t off = 0; off < pairs->len; off += chunk) {
        size_t n = pairs->len - off < chunk ? pairs->len - off : chunk;
        rec(b, T_PARAMS, id, pairs->data + off, n, (off / chunk) % 3 == 1 ? 5 : 0);
    }
    rec(b, T_PARAMS, id, NULL, 0, 0);
}

static void stdin_rec(struct buf *b, unsigned id, const char *s)
{
    rec(b, T_STDIN, id, s, strlen(s), 0);
}

/* The usual request: 3 pairs, one of them with a 4-byte name and value length. */
static char long_name[200], long_value[300];
static void std_pairs(struct buf *pairs)
{
    memset(long_name, 'N', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    nv(pairs, "REQUEST_METHOD", "POST");
    nv(pairs, long_name, long_value);
    nv(pairs, "EMPTY", "");
    /* a short length may also be sent in the 4-byte form */
    nv_length(pairs, 11, 1);
    nv_length(pairs, 1, 1);
    buf_puts(pairs, "SCRIPT_NAME/");
}

static void std_request(struct buf *b, unsigned id, int keep_conn)
{
    struct buf pairs = {0};
    std_pairs(&pairs);
    begin(b, id, 1, keep_conn ? 1 : 0);
    params(b, id, &pairs, 100);
    stdin_rec(b, id, "hello");
    stdin_rec(b, id, " world");
    rec(b, T_STDIN, id, NULL, 0, 0);
    buf_free(&pairs);
}

/* Checks p holds the std_request. */
static void check_std_at(int line, struct fcgp *p, unsigned id, int keep_conn)
{
    int ok = check_int(p->id, id) & check_int(p->keep_conn != 0, keep_conn) &
             check_int(p->params_done, 1) & check_int(p->stdin_done, 1);
    if (check_int(p->nenv, 4) && check(p->envp != NULL, "envp set after READY")) {
        char want[600];
        ok &= check_str(p->envp[0], "REQUEST_METHOD=POST");
        snprintf(want, sizeof(want), "%s=%s", long_name, long_value);
        ok &= check_str(p->envp[1], want);
        ok &= check_str(p->envp[2], "EMPTY=");
        ok &= check_str(p->envp[3], "SCRIPT_NAME=/");
        ok &= check(p->envp[4] == NULL, "envp is NULL-terminated");
    } else {
        ok = 0;
    }
    ok &= check_mem(p->body.data, p->body.len, "hello world", 11);
    ok &= check_int(p->body_seen, 11);
    if (!ok)
        fprintf(stderr, "  (request checked at line %d)\n", line);
}
#define check_std(p, id, keep) check_std_at(__LINE__, (p), (id), (keep))

static void test_whole(void)
{
    struct buf in = {0}, out = {0};
    std_request(&in, 1, 0);
    struct fcgp p;
    fcgp_init(&p, 1024);
    size_t used = 12345;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, in.len);
    check_std(&p, 1, 0);
    check_int(out.len, 0);
    check(p.err == NULL, "no error");
    check_int(p.aborted, 0);
    fcgp_free(&p);

    /* with KEEP_CONN, and a request id above 255 */
    buf_clear(&in);
    std_request(&in, 0x1234, 1);
    fcgp_init(&p, 1024);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, in.len);
    check_std(&p, 0x1234, 1);
    fcgp_free(&p);

    buf_free(&in);
    buf_free(&out);
}

/* Feeds in[0..len) the way aserve.c does, `step` bytes arriving at a time
 * (0: sizes from a fixed pseudo-random sequence): what is not used stays
 * for the next call. Stops at the first READY or ERROR and returns it (or
 * MORE); *ready_at is the byte count when READY came (0 if never), *early
 * is set if that was before the end of the input. */
static enum fcgp_status feed_in_steps(struct fcgp *p, const char *in, size_t len, size_t step,
                                      struct buf *out, size_t *ready_at, int *early)
{
    struct buf pending = {0};
    enum fcgp_status st = FCGP_MORE;
    uint32_t r = 12345;
    *ready_at = 0;
    *early = 0;
    for (size_t off = 0; off < len;) {
        size_t n = step;
        if (n == 0) {
            r = r * 1103515245u + 12345u;
            n = 1 + (r >> 16) % 37;
        }
        if (n > len - off)
            n = len - off;
        buf_append(&pending, in + off, n);
        off += n;
        size_t used;
        st = fcgp_feed(p, pending.data, pending.len, &used, out);
        if (used > pending.len) {
            check(0, "used never exceeds the input");
            break;
        }
        memmove(pending.data, pending.data + used, pending.len - used);
        pending.len -= used;
        if (st != FCGP_MORE) {
            if (st == FCGP_READY)
                *ready_at = off;
            if (off < len)
                *early = 1;
            break;
        }
    }
    buf_free(&pending);
    return st;
}

static void test_in_pieces(void)
{
    struct buf in = {0}, out = {0};
    std_request(&in, 7, 1);
    static const size_t steps[] = {1, 2, 3, 7, 8, 9, 13, 64, 0};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct fcgp p;
        fcgp_init(&p, 1024);
        size_t ready_at;
        int early;
        enum fcgp_status st = feed_in_steps(&p, in.data, in.len, steps[i], &out, &ready_at, &early);
        if (!check_int(st, FCGP_READY) | !check_int(ready_at, in.len) | !check_int(early, 0))
            fprintf(stderr, "  step %zu\n", steps[i]);
        check_std(&p, 7, 1);
        check_int(out.len, 0);
        fcgp_free(&p);
    }

    /* *used: only whole records are consumed */
    struct fcgp p;
    fcgp_init(&p, 1024);
    size_t used = 99;
    check_int(fcgp_feed(&p, in.data, 0, &used, &out), FCGP_MORE);
    check_int(used, 0);
    check_int(fcgp_feed(&p, in.data, 7, &used, &out), FCGP_MORE); /* part of a header */
    check_int(used, 0);
    check_int(fcgp_feed(&p, in.data, 15, &used, &out), FCGP_MORE); /* header + 7 of 8 */
    check_int(used, 0);
    check_int(p.id, 0);
    check_int(fcgp_feed(&p, in.data, 16 + 9, &used, &out), FCGP_MORE); /* BEGIN + 9 bytes */
    check_int(used, 16);
    check_int(p.id, 7);
    fcgp_free(&p);

    /* a READY request followed by more bytes: they are left unused */
    size_t first = in.len;
    std_request(&in, 8, 0);
    fcgp_init(&p, 1024);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, first);
    check_std(&p, 7, 1);
    fcgp_free(&p);

    buf_free(&in);
    buf_free(&out);
}

static void test_body_max(void)
{
    struct buf in = {0}, out = {0};
    std_request(&in, 1, 0);
    static const size_t maxes[] = {0, 1, 4, 5, 6, 10, 11, 12, 1 << 20};
    for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        struct fcgp p;
        fcgp_init(&p, maxes[i]);
        size_t used;
        check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
        size_t keep = maxes[i] < 11 ? maxes[i] : 11;
        if (!check_mem(p.body.data ? p.body.data : "", p.body.len, "hello world", keep))
            fprintf(stderr, "  body_max %zu\n", maxes[i]);
        check_int(p.body_seen, 11);
        fcgp_free(&p);
    }

    /* many STDIN records, body_max in the middle of one */
    buf_clear(&in);
    begin(&in, 3, 1, 0);
    rec(&in, T_PARAMS, 3, NULL, 0, 0);
    char chunk[1000];
    for (int i = 0; i < 70; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        rec(&in, T_STDIN, 3, chunk, sizeof(chunk), (size_t)i % 8);
    }
    rec(&in, T_STDIN, 3, NULL, 0, 0);
    struct fcgp p;
    fcgp_init(&p, 65536 + 123);
    size_t used;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(p.body_seen, 70000);
    check_int(p.body.len, 65536 + 123);
    check(p.body.len > 65623 - 1 && p.body.data[65622] == 'a' + 65 % 26 &&
              p.body.data[999] == 'a' && p.body.data[1000] == 'b',
          "the kept body is the start of stdin");
    check_int(p.nenv, 0);
    check(p.envp != NULL && p.envp[0] == NULL, "no params: an empty envp");
    fcgp_free(&p);

    buf_free(&in);
    buf_free(&out);
}

static void test_padding(void)
{
    /* every record padded, up to 255 bytes */
    struct buf in = {0}, out = {0};
    unsigned char b[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    rec(&in, T_BEGIN, 2, b, 8, 255);
    struct buf pairs = {0};
    nv(&pairs, "A", "1");
    nv(&pairs, "BB", "22");
    rec(&in, T_PARAMS, 2, pairs.data, pairs.len, 1);
    rec(&in, T_PARAMS, 2, NULL, 0, 7);
    rec(&in, T_STDIN, 2, "xyz", 3, 5);
    rec(&in, T_STDIN, 2, NULL, 0, 200);
    struct fcgp p;
    fcgp_init(&p, 100);
    size_t used;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, in.len);
    if (check_int(p.nenv, 2)) {
        check_str(p.envp[0], "A=1");
        check_str(p.envp[1], "BB=22");
    }
    check_mem(p.body.data, p.body.len, "xyz", 3);
    fcgp_free(&p);

    /* the same one byte at a time: padding split anywhere */
    fcgp_init(&p, 100);
    size_t ready_at;
    int early;
    check_int(feed_in_steps(&p, in.data, in.len, 1, &out, &ready_at, &early), FCGP_READY);
    check_int(ready_at, in.len);
    check_mem(p.body.data, p.body.len, "xyz", 3);
    fcgp_free(&p);

    /* a record whose padding has not all arrived is not consumed */
    fcgp_init(&p, 100);
    check_int(fcgp_feed(&p, in.data, 8 + 8 + 254, &used, &out), FCGP_MORE);
    check_int(used, 0);
    check_int(p.id, 0);
    fcgp_free(&p);

    buf_free(&pairs);
    buf_free(&in);
    buf_free(&out);
}

/* Reads the records of out, checking each against types[] (ended by 0),
 * and returns the content of the last one in *last (pointer into out). */
static void check_records_at(int line, const struct buf *out, const int *types, unsigned id,
                             const unsigned char **last, size_t *lastlen)
{
    const unsigned char *s = (const unsigned char *)out->data, *end = s + out->len;
    size_t i = 0;
    for (; types[i] != 0; i++) {
        if (end - s < 8) {
            check_at(__FILE__, line, 0, "a whole record header in out", "");
            return;
        }
        size_t clen = (size_t)s[4] << 8 | s[5];
        if (!check_int(s[0], 1) | !check_int(s[1], types[i]) | !check_int(s[2] << 8 | s[3], id) |
            !check((size_t)(end - s) >= 8 + clen + s[6], "the whole record in out"))
            fprintf(stderr, "  (record %zu, checked at line %d)\n", i, line);
        if ((size_t)(end - s) < 8 + clen + s[6])
            return;
        *last = s + 8;
        *lastlen = clen;
        s += 8 + clen + s[6];
    }
    if (!check_int(end - s, 0))
        fprintf(stderr, "  (more records than expected, checked at line %d)\n", line);
}
#define check_records(out, id, last, lastlen, ...)                                                 \
    check_records_at(__LINE__, (out), (const int[]){__VA_ARGS__, 0}, (id), (last), (lastlen))

static void test_management(void)
{
    struct buf in = {0}, out = {0};
    struct buf q = {0};
    nv(&q, "FCGI_MPXS_CONNS", "");
    nv(&q, "FCGI_MAX_CONNS", "");
    rec(&in, T_GET_VALUES, 0, q.data, q.len, 3);
    buf_free(&q);

    struct fcgp p;
    fcgp_init(&p, 100);
    size_t used;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_MORE);
    check_int(used, in.len);
    const unsigned char *c = NULL;
    size_t clen = 0;
    check_records(&out, 0, &c, &clen, T_GET_VALUES_RESULT);
    check_mem((const char *)c, clen, "\x0f\x01" "FCGI_MPXS_CONNS0", 18);
    check_int(p.id, 0);

    /* an unknown management type */
    buf_clear(&in);
    buf_clear(&out);
    rec(&in, 42, 0, "abc", 3, 0);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_MORE);
    check_int(used, in.len);
    check_records(&out, 0, &c, &clen, T_UNKNOWN_TYPE);
    check_mem((const char *)c, clen, "\x2a\0\0\0\0\0\0\0", 8);

    /* BEGIN_REQUEST with id 0 is a management record too: unknown */
    buf_clear(&in);
    buf_clear(&out);
    begin(&in, 0, 1, 0);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_MORE);
    check_records(&out, 0, &c, &clen, T_UNKNOWN_TYPE);
    check_mem((const char *)c, clen, "\x01\0\0\0\0\0\0\0", 8);
    check_int(p.id, 0);

    /* management records in the middle of a request: answered, the request
     * carries on */
    buf_clear(&in);
    buf_clear(&out);
    struct buf pairs = {0};
    std_pairs(&pairs);
    begin(&in, 5, 1, 0);
    rec(&in, T_GET_VALUES, 0, NULL, 0, 0);
    params(&in, 5, &pairs, 1000);
    rec(&in, 99, 0, NULL, 0, 0);
    stdin_rec(&in, 5, "hello world");
    rec(&in, T_STDIN, 5, NULL, 0, 0);
    buf_free(&pairs);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, in.len);
    check_int(p.nenv, 4);
    check_mem(p.body.data, p.body.len, "hello world", 11);
    check_records(&out, 0, &c, &clen, T_GET_VALUES_RESULT, T_UNKNOWN_TYPE);
    check_mem((const char *)c, clen, "\x63\0\0\0\0\0\0\0", 8);
    fcgp_free(&p);

    buf_free(&in);
    buf_free(&out);
}

static void test_roles(void)
{
    /* an authorizer (2) or filter (3): END_REQUEST with FCGI_UNKNOWN_ROLE,
     * and the connection can still take a responder request */
    struct buf in = {0}, out = {0};
    begin(&in, 3, 2, 0);
    begin(&in, 4, 3, 1);
    std_request(&in, 6, 0);
    struct fcgp p;
    fcgp_init(&p, 100);
    size_t used;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, in.len);
    check_std(&p, 6, 0);

    const unsigned char *s = (const unsigned char *)out.data;
    if (check_int(out.len, 32)) {
        check_mem((const char *)s, 16, "\x01\x03\x00\x03\x00\x08\x00\x00"
                                       "\x00\x00\x00\x00\x03\x00\x00\x00", 16);
        check_mem((const char *)s + 16, 16, "\x01\x03\x00\x04\x00\x08\x00\x00"
                                            "\x00\x00\x00\x00\x03\x00\x00\x00", 16);
    }
    fcgp_free(&p);

    /* role 0x0101 is not 1 either */
    buf_clear(&in);
    buf_clear(&out);
    begin(&in, 9, 0x101, 0);
    fcgp_init(&p, 100);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_MORE);
    check_int(p.id, 0);
    check_int(out.len, 16);
    check(out.len == 16 && out.data[12] == 3, "FCGI_UNKNOWN_ROLE");
    fcgp_free(&p);

    buf_free(&in);
    buf_free(&out);
}

/* Expects the stream in to be a protocol error, fed whole and byte by byte. */
static void check_error_at(int line, const struct buf *in, const char *what)
{
    struct fcgp p;
    struct buf out = {0};
    fcgp_init(&p, 100);
    size_t used;
    enum fcgp_status st = fcgp_feed(&p, in->data, in->len, &used, &out);
    if (!check_at(__FILE__, line, st == FCGP_ERROR, "a protocol error", what))
        fprintf(stderr, "  got status %d\n", st);
    else
        check_at(__FILE__, line, p.err != NULL && p.err[0] != '\0', "with a reason", what);
    check_at(__FILE__, line, used <= in->len, "used within the input", what);
    fcgp_free(&p);

    /* the same, fed one byte at a time */
    fcgp_init(&p, 100);
    size_t ready_at;
    int early;
    st = feed_in_steps(&p, in->data, in->len, 1, &out, &ready_at, &early);
    check_at(__FILE__, line, st == FCGP_ERROR, "a protocol error, byte by byte", what);
    fcgp_free(&p);
    buf_free(&out);
}
#define check_error(in, what) check_error_at(__LINE__, (in), (what))

static void test_errors(void)
{
    struct buf in = {0}, pairs = {0};

    /* version != 1 */
    static const unsigned char versions[] = {0, 2, 3, 0x81, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        buf_clear(&in);
        begin(&in, 1, 1, 0);
        in.data[0] = (char)versions[i];
        check_error(&in, "version");
    }
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 1, NULL, 0, 0);
    in.data[16] = 2; /* the second record's version */
    check_error(&in, "version 2 in the second record");
    {
        /* a bad version is an error as soon as the header is there */
        struct fcgp p;
        struct buf out = {0};
        size_t used;
        fcgp_init(&p, 100);
        check_int(fcgp_feed(&p, "\x02\x01\x00\x01\x00\x08\x00\x00", 8, &used, &out), FCGP_ERROR);
        fcgp_free(&p);
    }

    /* PARAMS, STDIN or ABORT before BEGIN */
    buf_clear(&in);
    nv(&pairs, "A", "1");
    rec(&in, T_PARAMS, 1, pairs.data, pairs.len, 0);
    check_error(&in, "PARAMS before BEGIN");
    buf_clear(&in);
    rec(&in, T_PARAMS, 1, NULL, 0, 0);
    check_error(&in, "empty PARAMS before BEGIN");
    buf_clear(&in);
    stdin_rec(&in, 1, "x");
    check_error(&in, "STDIN before BEGIN");

    /* a second BEGIN while a request is open, with the same or another id */
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    begin(&in, 1, 1, 0);
    check_error(&in, "second BEGIN, same id");
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 1, pairs.data, pairs.len, 0);
    begin(&in, 2, 1, 0);
    check_error(&in, "second BEGIN, other id");
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_BEGIN, 2, "\0\1\0\0", 4, 0);
    check_error(&in, "second BEGIN, short");
    buf_clear(&in);
    rec(&in, T_BEGIN, 1, "\0\1\0\0\0\0\0", 7, 0);
    check_error(&in, "BEGIN shorter than 8 bytes");

    /* PARAMS for another request id; PARAMS after their end */
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 2, pairs.data, pairs.len, 0);
    check_error(&in, "PARAMS of another id");
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 1, NULL, 0, 0);
    rec(&in, T_PARAMS, 1, pairs.data, pairs.len, 0);
    check_error(&in, "PARAMS after the empty PARAMS");

    /* STDIN before the end of PARAMS, or for another id */
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    stdin_rec(&in, 1, "x");
    check_error(&in, "STDIN before PARAMS");
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 1, pairs.data, pairs.len, 0);
    stdin_rec(&in, 1, "x");
    check_error(&in, "STDIN before the empty PARAMS");
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 1, NULL, 0, 0);
    stdin_rec(&in, 2, "x");
    check_error(&in, "STDIN of another id");
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    rec(&in, T_PARAMS, 1, NULL, 0, 0);
    rec(&in, T_STDIN, 1, NULL, 0, 0);
    rec(&in, T_STDIN, 1, NULL, 0, 0);
    {
        /* after READY, without fcgp_reset, another STDIN is an error */
        struct fcgp p;
        struct buf out = {0};
        size_t used;
        fcgp_init(&p, 100);
        check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
        check_int(fcgp_feed(&p, in.data + used, in.len - used, &used, &out), FCGP_ERROR);
        fcgp_free(&p);
    }

    /* malformed name-value lengths */
    static const struct {
        const char *bytes;
        size_t len;
        const char *what;
    } bad[] = {
        {"\x05\x01" "AB", 4, "name longer than the params"},
        {"\x01\x05" "AB", 4, "value longer than the params"},
        {"\x01", 1, "no value length"},
        {"\x80\x00\x00", 3, "4-byte name length cut short"},
        {"\x01\x80\x00" "A", 4, "4-byte value length cut short"},
        {"\x80\x00\x01\x00\x01" "A", 6, "4-byte name length (256) longer than the params"},
        {"\xff\xff\xff\xff\x00", 5, "2^31-1 name length"},
        {"\x01\xff\xff\xff\xff" "A", 6, "2^31-1 value length"},
        {"\x01\x01" "AB" "\x01", 5, "a trailing partial pair"},
        {"\x01\x01" "A" "\x00", 4, "NUL value"},
        {"\x01\x01" "\x00" "B", 4, "NUL name"},
        {"\x03\x03" "A\0B" "CDE", 8, "NUL inside a name"},
        {"\x03\x03" "ABC" "CD\0", 8, "NUL at the end of a value"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf_clear(&in);
        begin(&in, 1, 1, 0);
        buf_clear(&pairs);
        nv(&pairs, "GOOD", "pair");
        buf_append(&pairs, bad[i].bytes, bad[i].len);
        params(&in, 1, &pairs, 3);
        rec(&in, T_STDIN, 1, NULL, 0, 0);
        check_error(&in, bad[i].what);
    }

    /* params beyond 256 KiB */
    buf_clear(&in);
    begin(&in, 1, 1, 0);
    char big[65535];
    memset(big, 'x', sizeof(big));
    for (int i = 0; i < 5; i++)
        rec(&in, T_PARAMS, 1, big, sizeof(big), 0);
    check_error(&in, "params too large");

    buf_free(&pairs);
    buf_free(&in);
}

static void test_abort_and_other_types(void)
{
    struct buf in = {0}, out = {0};
    begin(&in, 4, 1, 0);
    rec(&in, T_DATA, 4, "data", 4, 0); /* DATA: not for a responder, ignored */
    rec(&in, 77, 4, "??", 2, 0);       /* unknown type with a request id: ignored */
    rec(&in, T_ABORT, 5, NULL, 0, 0);  /* abort of another request: ignored */
    struct fcgp p;
    fcgp_init(&p, 100);
    size_t used;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_MORE);
    check_int(used, in.len);
    check_int(p.aborted, 0);
    check_int(p.id, 4);
    buf_clear(&in);
    rec(&in, T_ABORT, 4, NULL, 0, 0);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_MORE);
    check_int(p.aborted, 1);
    check_int(out.len, 0);
    fcgp_free(&p);
    buf_free(&in);
    buf_free(&out);
}

static void test_respond(void)
{
    static const size_t sizes[] = {0, 1, 65534, 65535, 65536, 70000, 131070, 131071, 200000};
    static char data[200000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 31 + i / 256);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t len = sizes[k];
        struct buf out = {0};
        buf_puts(&out, "pre");
        fcgp_respond(&out, 0x0102, data, len);
        check(memcmp(out.data, "pre", 3) == 0, "fcgp_respond appends");
        /* STDOUT records of at most 65535 bytes, then the empty STDOUT, then
         * END_REQUEST {appStatus 0, REQUEST_COMPLETE} */
        const unsigned char *s = (const unsigned char *)out.data + 3, *end = s + out.len - 3;
        size_t got = 0, nrec = 0;
        int ok = 1;
        while (end - s >= 8 && s[1] == T_STDOUT && (s[4] | s[5]) != 0) {
            size_t clen = (size_t)s[4] << 8 | s[5];
            ok &= s[0] == 1 && s[2] == 1 && s[3] == 2 && s[6] == 0 &&
                  (size_t)(end - s) >= 8 + clen && clen <= 65535;
            if (!ok || got + clen > len)
                break;
            ok &= memcmp(s + 8, data + got, clen) == 0;
            got += clen;
            nrec++;
            s += 8 + clen;
        }
        if (!check(ok, "STDOUT records carry the data in order") |
            !check_int(got, len) | !check_int(nrec, (len + 65534) / 65535))
            fprintf(stderr, "  response of %zu bytes\n", len);
        check_int(end - s, 8 + 16);
        if (end - s == 24) {
            check_mem((const char *)s, 8, "\x01\x06\x01\x02\x00\x00\x00\x00", 8);
            check_mem((const char *)s + 8, 16, "\x01\x03\x01\x02\x00\x08\x00\x00"
                                               "\x00\x00\x00\x00\x00\x00\x00\x00", 16);
        }
        buf_free(&out);
    }
}

static void test_reset(void)
{
    /* two requests on one keep_conn connection, arriving in one read */
    struct buf in = {0}, out = {0}, pairs = {0};
    std_request(&in, 1, 1);
    size_t first = in.len;
    begin(&in, 2, 1, 1);
    nv(&pairs, "SECOND", "yes");
    params(&in, 2, &pairs, 100);
    stdin_rec(&in, 2, "2nd");
    rec(&in, T_STDIN, 2, NULL, 0, 0);

    struct fcgp p;
    fcgp_init(&p, 1024);
    size_t used;
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_int(used, first);
    check_std(&p, 1, 1);
    fcgp_respond(&out, p.id, "Status: 200\r\n\r\n", 15);

    fcgp_reset(&p);
    check_int(p.id, 0);
    check_int(p.keep_conn, 0);
    check_int(p.params_done, 0);
    check_int(p.stdin_done, 0);
    check_int(p.body_seen, 0);
    check_int(p.body.len, 0);
    check_int(p.nenv, 0);
    check_int(p.body_max, 1024);

    size_t rest = in.len - first;
    check_int(fcgp_feed(&p, in.data + first, rest, &used, &out), FCGP_READY);
    check_int(used, rest);
    check_int(p.id, 2);
    check_int(p.keep_conn, 1);
    if (check_int(p.nenv, 1)) {
        check_str(p.envp[0], "SECOND=yes");
        check(p.envp[1] == NULL, "envp is NULL-terminated");
    }
    check_mem(p.body.data, p.body.len, "2nd", 3);
    check_int(p.body_seen, 3);

    /* and a third, the std_request again, byte by byte after a reset */
    fcgp_reset(&p);
    buf_clear(&in);
    std_request(&in, 3, 0);
    size_t ready_at;
    int early;
    check_int(feed_in_steps(&p, in.data, in.len, 1, &out, &ready_at, &early), FCGP_READY);
    check_std(&p, 3, 0);

    /* reset of a half-read request (the connection was closed early) */
    fcgp_reset(&p);
    check_int(fcgp_feed(&p, in.data, 40, &used, &out), FCGP_MORE);
    fcgp_reset(&p);
    check_int(fcgp_feed(&p, in.data, in.len, &used, &out), FCGP_READY);
    check_std(&p, 3, 0);
    fcgp_free(&p);

    buf_free(&pairs);
    buf_free(&in);
    buf_free(&out);
}

int main(void)
{
    test_whole();
    test_in_pieces();
    test_body_max();
    test_padding();
    test_management();
    test_roles();
    test_errors();
    test_abort_and_other_types();
    test_respond();
    test_reset();
    return check_done();
}
