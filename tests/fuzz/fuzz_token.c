/* libFuzzer target over lib/token.c's token_verify: the parser the
 * gateway's authorizer runs on every bearer token a client sends.
 *
 * The first byte picks the shape of the rest of the input:
 *   even  the token as a client sends it: every check before the signature
 *         (the split, canonical base64url, the header's JSON, alg, kid) and
 *         the HMAC itself;
 *   odd   "<header JSON>\n<payload JSON>", which this target signs with the
 *         test key, so what comes after the signature (libjwt's decode, the
 *         claims, the times) is fuzzed too.
 * Invariants: a token is accepted only with the reason TOKEN_OK, claims
 * NUL-terminated within their fields and an exp after now; a refusal has a
 * reason and zeroed claims; the same token gives the same answer twice.
 * Anything else aborts. Nothing may leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base64.h"
#include "buf.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1800000000L

/* The key of tests/fuzz/corpus-token's valid seeds ("fz", 32 bytes "fuzz..."). */
static const char keyspec[] = "fz:ZnV6emZ1enpmdXp6ZnV6emZ1enpmdXp6ZnV6emZ1eno";

static void b64url(struct buf *out, const void *p, size_t n)
{
    struct buf t = {0};
    b64_encode(&t, p, n, B64_URL);
    size_t m = t.len;
    while (m > 0 && t.data[m - 1] == '=')
        m--;
    buf_append(out, t.data, m);
    buf_free(&t);
}

static void check_one(const struct token_keys *ks, const char *token)
{
    struct token_claims c, c2;
    enum token_err why = TOKEN_OK, why2 = TOKEN_OK;
    int rc = token_verify(ks, token, NOW, &c, &why);
    int rc2 = token_verify(ks, token, NOW, &c2, &why2);
    if (rc != rc2 || why != why2 || memcmp(&c, &c2, sizeof(c)) != 0)
        abort();
    if (rc == 0) {
        if (why != TOKEN_OK || memchr(c.sub, '\0', sizeof(c.sub)) == NULL ||
            memchr(c.scope, '\0', sizeof(c.scope)) == NULL ||
            memchr(c.jti, '\0', sizeof(c.jti)) == NULL || c.exp <= NOW)
            abort();
    } else {
        static const struct token_claims zero;
        if (rc != -1 || why == TOKEN_OK || memcmp(&c, &zero, sizeof(c)) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct token_keys ks;
    if (ks.n == 0) {
        char err[128];
        if (token_keys_parse(&ks, keyspec, err, sizeof(err)) != 0)
            abort();
    }
    if (size == 0 || size > 3 * TOKEN_MAX)
        return 0;
    struct buf token = {0};
    if ((data[0] & 1) == 0) {
        buf_append(&token, data + 1, size - 1);
    } else {
        const uint8_t *nl = memchr(data + 1, '\n', size - 1);
        if (nl == NULL)
            return 0;
        b64url(&token, data + 1, (size_t)(nl - data - 1));
        buf_putc(&token, '.');
        b64url(&token, nl + 1, size - (size_t)(nl + 1 - data));
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (HMAC(EVP_sha256(), ks.k[0].key, (int)ks.k[0].len, (const unsigned char *)token.data,
                 token.len, mac, &maclen) == NULL)
            abort();
        buf_putc(&token, '.');
        b64url(&token, mac, maclen);
    }
    /* a client's token reaches us as a C string: stop at a NUL, as the
     * authorizer's header value would */
    check_one(&ks, token.data ? token.data : "");
    buf_free(&token);
    return 0;
}
