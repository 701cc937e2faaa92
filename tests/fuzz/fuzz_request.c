/* libFuzzer target over the request parsing in lib/: the path (prefix match,
 * segments, percent-decoding, UTF-8), the query string, headers, the body
 * length and body, and the JSON response built from what was parsed.
 *
 * Input: newline-separated fields
 *   REQUEST_URI \n QUERY_STRING \n REQUEST_METHOD \n CONTENT_LENGTH \n
 *   X-Request-Id \n REDIRECT_URI-or-empty \n body...
 * Missing fields are absent from the environment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http.h"
#include "url.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"REQUEST_URI=",    "QUERY_STRING=",      "REQUEST_METHOD=",
                                    "CONTENT_LENGTH=", "HTTP_X_REQUEST_ID=", "REDIRECT_URI="};
#define NFIELDS (sizeof(names) / sizeof(names[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    struct buf fields[NFIELDS];
    char *envp[NFIELDS + 1];
    size_t n = 0;
    for (; n < NFIELDS && p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *fend = nl ? nl : end;
        buf_init(&fields[n]);
        buf_puts(&fields[n], names[n]);
        buf_append(&fields[n], p, (size_t)(fend - p));
        envp[n] = fields[n].data; /* a NUL inside ends the C string, as in a real env */
        p = nl ? nl + 1 : end;
    }
    size_t nenv = n;
    if (nenv > 5 && fields[5].len == strlen(names[5])) /* empty REDIRECT_URI: leave it out */
        nenv = 5;
    envp[nenv] = NULL;

    /* the decoder and validator on the raw bytes too */
    struct buf dec = {0};
    if (url_decode((const char *)data, size, 1, &dec) == URL_OK)
        (void)utf8_valid(dec.data, dec.len);
    buf_free(&dec);

    struct http_req rq;
    struct http_resp rs;
    struct buf out = {0};
    http_req_init(&rq);
    http_resp_init(&rs);
    size_t len;
    if (http_req_parse(&rq, envp, "/api/hello", &rs) == 0 &&
        http_req_body_len(&rq, 1 << 16, &len, &rs) == 0) {
        size_t avail = (size_t)(end - p) < len ? (size_t)(end - p) : len;
        memcpy(http_req_body_room(&rq, len), p, avail);
        http_req_body_done(&rq, avail);
        (void)http_query(&rq, "a");
        (void)http_header(&rq, "Content-Type");
        if (http_allow_or_405(&rq, &rs, "GET, POST") == 0) {
            json_t *segs = json_array();
            for (size_t i = 0; i < rq.nseg; i++)
                json_array_append_new(segs, json_string(rq.seg[i]));
            json_t *q = json_object();
            for (size_t i = 0; i < rq.nquery; i++)
                json_object_set_new(q, rq.query[i].name, json_string(rq.query[i].value));
            /* every decoded part was UTF-8 checked, so none of these is NULL */
            if (json_array_size(segs) != rq.nseg)
                abort();
            http_json_new(&rs, 200, json_pack("{s:o,s:o,s:s%}", "seg", segs, "query", q, "body",
                                              rq.body, rq.body_len));
        }
    }
    http_resp_format(&rq, &rs, &out);
    if (out.len < 12 || memcmp(out.data, "Status: ", 8) != 0)
        abort();

    buf_free(&out);
    http_req_free(&rq);
    http_resp_free(&rs);
    for (size_t i = 0; i < n; i++)
        buf_free(&fields[i]);
    return 0;
}
