#include "token.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "base64.h"

const char *token_err_name(enum token_err e)
{
    static const char *const names[] = {"ok",           "malformed",     "bad alg",
                                        "unknown key",  "bad signature", "bad claims",
                                        "expired",      "not yet valid"};
    return (size_t)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

void token_keys_clear(struct token_keys *ks)
{
    OPENSSL_cleanse(ks, sizeof(*ks));
}

int token_keys_parse(struct token_keys *ks, const char *spec, char *err, size_t errlen)
{
    memset(ks, 0, sizeof(*ks));
    const char *p = spec;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *colon = memchr(p, ':', len);
        size_t klen = colon ? (size_t)(colon - p) : 0;
        if (ks->n == TOKEN_KEYS_MAX) {
            snprintf(err, errlen, "more than %d keys", TOKEN_KEYS_MAX);
            goto bad;
        }
        if (colon == NULL || klen == 0 || klen >= sizeof(ks->k[0].kid) ||
            strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") <
                klen) {
            snprintf(err, errlen, "key %zu: expected kid:base64url-key (kid of [A-Za-z0-9_.-])",
                     ks->n + 1);
            goto bad;
        }
        struct buf raw = {0};
        if (b64_decode(&raw, colon + 1, len - klen - 1, B64_URL) != 0 || raw.len < 32 ||
            raw.len > sizeof(ks->k[0].key)) {
            snprintf(err, errlen, "key %zu (%.*s): expected 32 to 64 bytes in URL-safe base64",
                     ks->n + 1, (int)klen, p);
            if (raw.data != NULL)
                OPENSSL_cleanse(raw.data, raw.len);
            buf_free(&raw);
            goto bad;
        }
        struct token_key *k = &ks->k[ks->n++];
        memcpy(k->kid, p, klen);
        memcpy(k->key, raw.data, raw.len);
        k->len = raw.len;
        OPENSSL_cleanse(raw.data, raw.len);
        buf_free(&raw);
        p += len + (p[len] == ',');
    }
    if (ks->n == 0) {
        snprintf(err, errlen, "no keys");
        return -1;
    }
    return 0;
bad:
    token_keys_clear(ks);
    return -1;
}

int token_scope_has(const char *scope, const char *want, size_t n)
{
    for (const char *p = scope; *p != '\0';) {
        p += strspn(p, " ");
        size_t m = strcspn(p, " ");
        if (m == n && n > 0 && memcmp(p, want, n) == 0)
            return 1;
        p += m;
    }
    return 0;
}

int token_scopes_within(const char *want, const char *have)
{
    for (const char *p = want; *p != '\0';) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n > 0 && !token_scope_has(have, p, n))
            return 0;
        p += n;
    }
    return 1;
}

int token_keys_check(const char *spec, char *err, size_t errlen)
{
    struct token_keys ks;
    int rc = token_keys_parse(&ks, spec, err, errlen);
    token_keys_clear(&ks);
    return rc;
}

int token_sign(const struct token_keys *ks, const struct token_claims *c, struct buf *out)
{
    if (ks->n == 0)
        return -1;
    jwt_t *jwt = NULL;
    int rc = -1;
    if (jwt_new(&jwt) != 0)
        return -1;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, ks->k[0].key, (int)ks->k[0].len) == 0 &&
        jwt_add_header(jwt, "kid", ks->k[0].kid) == 0 && jwt_add_grant(jwt, "sub", c->sub) == 0 &&
        jwt_add_grant(jwt, "scope", c->scope) == 0 && jwt_add_grant(jwt, "jti", c->jti) == 0 &&
        jwt_add_grant_int(jwt, "iat", c->iat) == 0 && jwt_add_grant_int(jwt, "exp", c->exp) == 0 &&
        (c->nbf == 0 || jwt_add_grant_int(jwt, "nbf", c->nbf) == 0) &&
        (c->gen == 0 || jwt_add_grant_int(jwt, "gen", c->gen) == 0)) {
        char *s = jwt_encode_str(jwt);
        if (s != NULL) {
            buf_puts(out, s);
            free(s);
            rc = 0;
        }
    }
    jwt_free(jwt);
    return rc;
}

/* Decode one part, insisting on the canonical encoding (no padding, no
 * spare bits set): a token has exactly one spelling. */
static int part(const char *s, size_t n, struct buf *out)
{
    if (n == 0 || memchr(s, '=', n) != NULL || b64_decode(out, s, n, B64_URL) != 0)
        return -1;
    struct buf again = {0};
    b64_encode(&again, out->data, out->len, B64_URL);
    size_t m = again.len;
    while (m > 0 && again.data[m - 1] == '=')
        m--;
    int ok = m == n && memcmp(again.data, s, n) == 0;
    buf_free(&again);
    return ok ? 0 : -1;
}

static int fail(enum token_err *why, enum token_err e)
{
    if (why != NULL)
        *why = e;
    return -1;
}

static int str_claim(json_t *o, const char *name, char *out, size_t outlen)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v) || json_string_length(v) >= outlen ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int int_claim(json_t *o, const char *name, long *out, int required)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL && !required) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v))
        return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

int token_verify(const struct token_keys *ks, const char *token, long now,
                 struct token_claims *c, enum token_err *why)
{
    memset(c, 0, sizeof(*c));
    size_t n = strnlen(token, TOKEN_MAX + 1);
    if (n > TOKEN_MAX)
        return fail(why, TOKEN_MALFORMED);
    const char *d1 = memchr(token, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)) != NULL)
        return fail(why, TOKEN_MALFORMED);
    struct buf hdr = {0}, pay = {0}, sig = {0};
    json_t *h = NULL, *p = NULL;
    int rc = -1;
    enum token_err e = TOKEN_MALFORMED;
    if (part(token, (size_t)(d1 - token), &hdr) != 0 ||
        part(d1 + 1, (size_t)(d2 - d1 - 1), &pay) != 0 ||
        part(d2 + 1, n - (size_t)(d2 + 1 - token), &sig) != 0)
        goto out;
    h = json_loadb(hdr.data, hdr.len, JSON_REJECT_DUPLICATES, NULL);
    p = json_loadb(pay.data, pay.len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(h) || !json_is_object(p))
        goto out;
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (alg == NULL || strcmp(alg, "HS256") != 0) {
        e = TOKEN_BAD_ALG;
        goto out;
    }
    const char *kid = json_string_value(json_object_get(h, "kid"));
    const struct token_key *k = NULL;
    for (size_t i = 0; kid != NULL && i < ks->n && k == NULL; i++)
        if (strcmp(ks->k[i].kid, kid) == 0)
            k = &ks->k[i];
    if (k == NULL) {
        e = TOKEN_UNKNOWN_KEY;
        goto out;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(EVP_sha256(), k->key, (int)k->len, (const unsigned char *)token,
             (size_t)(d2 - token), mac, &maclen) == NULL ||
        sig.len != maclen || CRYPTO_memcmp(mac, sig.data, maclen) != 0) {
        e = TOKEN_BAD_SIGNATURE;
        goto out;
    }
    /* Signed by us. (libjwt's jwt_decode would check the same HMAC again,
     * with strcmp; the claims are read from the payload parsed above.) */
    if (str_claim(p, "sub", c->sub, sizeof(c->sub)) != 0 ||
        str_claim(p, "scope", c->scope, sizeof(c->scope)) != 0 ||
        str_claim(p, "jti", c->jti, sizeof(c->jti)) != 0 || int_claim(p, "iat", &c->iat, 1) != 0 ||
        int_claim(p, "exp", &c->exp, 1) != 0 || int_claim(p, "nbf", &c->nbf, 0) != 0 ||
        int_claim(p, "gen", &c->gen, 0) != 0 || c->gen < 0) {
        e = TOKEN_BAD_CLAIMS;
        goto out;
    }
    if (now >= c->exp) {
        e = TOKEN_EXPIRED;
        goto out;
    }
    if ((c->nbf != 0 && now < c->nbf) || c->iat > now + 60) {
        e = TOKEN_NOT_YET_VALID;
        goto out;
    }
    e = TOKEN_OK;
    rc = 0;
out:
    json_decref(h);
    json_decref(p);
    buf_free(&hdr);
    buf_free(&pay);
    buf_free(&sig);
    if (rc != 0)
        memset(c, 0, sizeof(*c));
    if (why != NULL)
        *why = e;
    return rc;
}
