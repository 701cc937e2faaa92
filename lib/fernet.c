#include "fernet.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "base64.h"
#include "mem.h"

#define VERSION 0x80
#define TS_BYTES 8
#define IV_BYTES 16
#define BLOCK 16
#define MAC_BYTES 32
/* version, timestamp, IV: what precedes the ciphertext */
#define HEAD_BYTES (1 + TS_BYTES + IV_BYTES)
/* the shortest token: one block of ciphertext (an empty message pads to one) */
#define MIN_BYTES (HEAD_BYTES + BLOCK + MAC_BYTES)
/* EVP_*Update take an int length: longer messages go through in pieces */
#define CHUNK (1 << 24)

const char *fernet_why_str(enum fernet_why why)
{
    switch (why) {
    case FERNET_OK:
        return "ok";
    case FERNET_WHY_BASE64:
        return "base64";
    case FERNET_WHY_VERSION:
        return "version";
    case FERNET_WHY_LENGTH:
        return "length";
    case FERNET_WHY_EXPIRED:
        return "expired";
    case FERNET_WHY_FUTURE:
        return "future";
    case FERNET_WHY_HMAC:
        return "hmac";
    case FERNET_WHY_PADDING:
        return "padding";
    case FERNET_WHY_INTERNAL:
        return "internal";
    }
    return "?";
}

/* The value of a base64 character in either alphabet (as Python's
 * urlsafe_b64decode, which maps '-' '_' onto '+' '/' and keeps both), or -1. */
static int key_char(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

int fernet_key_parse(const char *text, size_t n, struct fernet_key *key)
{
    if (text == NULL || n != FERNET_KEY_TEXT || text[FERNET_KEY_TEXT - 1] != '=')
        return -1;
    unsigned char raw[FERNET_KEY_BYTES + 1];
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    int rc = 0;
    /* 43 characters: 258 bits, of which 256 are the key. The last 2 bits
     * are not checked, as Python does not check them. */
    for (size_t i = 0; i < FERNET_KEY_TEXT - 1; i++) {
        int v = key_char((unsigned char)text[i]);
        if (v < 0) {
            rc = -1;
            break;
        }
        acc = (acc << 6 | (unsigned)v) & 0xfff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (rc == 0) {
        memcpy(key->signing, raw, 16);
        memcpy(key->encryption, raw + 16, 16);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

int fernet_key_generate(struct buf *out)
{
    unsigned char raw[FERNET_KEY_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    b64_encode(out, raw, sizeof(raw), B64_URL);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

int fernet_keyring_add(struct fernet_keyring *kr, const char *text, size_t n)
{
    struct fernet_key k;
    if (fernet_key_parse(text, n, &k) != 0)
        return -1;
    if (kr->n == kr->cap) {
        /* not realloc: that could leave a copy of the keys in freed memory */
        size_t cap = kr->cap ? kr->cap * 2 : 4;
        struct fernet_key *keys = xcalloc(cap, sizeof(*keys));
        if (kr->n > 0)
            memcpy(keys, kr->keys, kr->n * sizeof(*keys));
        if (kr->keys != NULL)
            OPENSSL_cleanse(kr->keys, kr->cap * sizeof(*keys));
        free(kr->keys);
        kr->keys = keys;
        kr->cap = cap;
    }
    kr->keys[kr->n++] = k;
    OPENSSL_cleanse(&k, sizeof(k));
    return 0;
}

int fernet_keyring_parse(struct fernet_keyring *kr, const char *list, char *err, size_t errlen)
{
    size_t i = 1;
    for (const char *p = list;; i++) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (fernet_keyring_add(kr, p, n) != 0) {
            snprintf(err, errlen, "key %zu is not a Fernet key (32 url-safe base64-encoded bytes)",
                     i);
            fernet_keyring_free(kr);
            return -1;
        }
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

void fernet_keyring_free(struct fernet_keyring *kr)
{
    if (kr->keys != NULL)
        OPENSSL_cleanse(kr->keys, kr->cap * sizeof(*kr->keys));
    free(kr->keys);
    kr->keys = NULL;
    kr->n = 0;
    kr->cap = 0;
}

/* HMAC-SHA256 of data[0..n) under the key's signing half into mac. */
static int mac(const struct fernet_key *key, const unsigned char *data, size_t n,
               unsigned char mac_out[MAC_BYTES])
{
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key->signing, sizeof(key->signing), data, n, mac_out, &len) == NULL ||
        len != MAC_BYTES)
        return -1;
    return 0;
}

/* AES-128-CBC with PKCS7 padding of in[0..n) into out, which has room for
 * n + BLOCK bytes; *outlen gets the length written. enc: 1 encrypt, 0
 * decrypt (-1 then also for bad padding). */
static int cbc(const struct fernet_key *key, const unsigned char iv[IV_BYTES], int enc,
               const unsigned char *in, size_t n, unsigned char *out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = -1;
    size_t o = 0;
    if (ctx == NULL ||
        EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, key->encryption, iv, enc) != 1)
        goto done;
    for (size_t i = 0; i < n; i += CHUNK) {
        int step = n - i > CHUNK ? CHUNK : (int)(n - i);
        int w = 0;
        if (EVP_CipherUpdate(ctx, out + o, &w, in + i, step) != 1)
            goto done;
        o += (size_t)w;
    }
    int w = 0;
    if (EVP_CipherFinal_ex(ctx, out + o, &w) != 1)
        goto done;
    o += (size_t)w;
    *outlen = o;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* Python's _encrypt_from_parts: the token for msg[0..n) under key, with the
 * given timestamp and IV, appended to out. */
static int encrypt_parts(const struct fernet_key *key, const void *msg, size_t n, uint64_t ts,
                         const unsigned char iv[IV_BYTES], struct buf *out)
{
    if (n > SIZE_MAX / 2 - MIN_BYTES)
        return -1;
    size_t ctlen = (n / BLOCK + 1) * BLOCK;
    size_t total = HEAD_BYTES + ctlen + MAC_BYTES;
    unsigned char *raw = xmalloc(total);
    raw[0] = VERSION;
    for (int i = 0; i < TS_BYTES; i++)
        raw[1 + i] = (unsigned char)(ts >> (8 * (TS_BYTES - 1 - i)));
    memcpy(raw + 1 + TS_BYTES, iv, IV_BYTES);
    size_t w = 0;
    int rc = -1;
    if (cbc(key, iv, 1, msg, n, raw + HEAD_BYTES, &w) == 0 && w == ctlen &&
        mac(key, raw, HEAD_BYTES + ctlen, raw + HEAD_BYTES + ctlen) == 0) {
        b64_encode(out, raw, total, B64_URL);
        rc = 0;
    }
    free(raw);
    return rc;
}

int fernet_encrypt_at(const struct fernet_keyring *kr, const void *msg, size_t n, uint64_t now,
                      struct buf *out)
{
    unsigned char iv[IV_BYTES];
    if (kr->n == 0 || RAND_bytes(iv, sizeof(iv)) != 1)
        return -1;
    return encrypt_parts(&kr->keys[0], msg, n, now, iv, out);
}

static uint64_t now_seconds(void)
{
    time_t t = time(NULL);
    return t < 0 ? 0 : (uint64_t)t;
}

int fernet_encrypt(const struct fernet_keyring *kr, const void *msg, size_t n, struct buf *out)
{
    return fernet_encrypt_at(kr, msg, n, now_seconds(), out);
}

/* A token decoded and checked up to (not including) its HMAC. */
struct token {
    struct buf raw;
    uint64_t ts;
};

static int set_why(enum fernet_why *why, enum fernet_why w)
{
    if (why != NULL)
        *why = w;
    return w == FERNET_OK ? 0 : -1;
}

/* Decode token[0..n) into t->raw and check its form: canonical padded
 * base64url (the only encoding Python and we produce), version, length.
 * On error t->raw is freed. */
static enum fernet_why parse_token(const char *token, size_t n, struct token *t)
{
    buf_init(&t->raw);
    t->ts = 0;
    /* b64_decode(B64_URL) takes the '=' padding as optional; a token has it */
    if (token == NULL || n % 4 != 0 || b64_decode(&t->raw, token, n, B64_URL) != 0) {
        buf_free(&t->raw);
        return FERNET_WHY_BASE64;
    }
    const unsigned char *r = (const unsigned char *)t->raw.data;
    if (t->raw.len < 1 || r[0] != VERSION) {
        buf_free(&t->raw);
        return FERNET_WHY_VERSION;
    }
    if (t->raw.len < MIN_BYTES || (t->raw.len - HEAD_BYTES - MAC_BYTES) % BLOCK != 0) {
        buf_free(&t->raw);
        return FERNET_WHY_LENGTH;
    }
    for (int i = 0; i < TS_BYTES; i++)
        t->ts = t->ts << 8 | r[1 + i];
    return FERNET_OK;
}

/* Python's time checks (only made with a TTL): ts + ttl < now is expired,
 * now + skew < ts is from the future. In unsigned arithmetic that cannot
 * overflow. */
static enum fernet_why check_time(uint64_t ts, int64_t ttl, uint64_t now)
{
    if (ttl < 0)
        return FERNET_WHY_EXPIRED;
    if (ttl == 0)
        return FERNET_OK;
    if (ts < now && now - ts > (uint64_t)ttl)
        return FERNET_WHY_EXPIRED;
    if (ts > now && ts - now > FERNET_MAX_CLOCK_SKEW)
        return FERNET_WHY_FUTURE;
    return FERNET_OK;
}

/* 1 if the token's HMAC is key's, compared in constant time. */
static int authentic(const struct fernet_key *key, const struct token *t)
{
    const unsigned char *r = (const unsigned char *)t->raw.data;
    size_t body = t->raw.len - MAC_BYTES;
    unsigned char want[MAC_BYTES];
    if (mac(key, r, body, want) != 0)
        return 0;
    int ok = CRYPTO_memcmp(want, r + body, MAC_BYTES) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}

/* Try each key in turn: HMAC first, and only for an authentic token the
 * cipher. The message is appended to out. As MultiFernet, a key whose HMAC
 * matches but whose plaintext does not unpad lets the next key try. */
static enum fernet_why open_token(const struct fernet_keyring *kr, const struct token *t,
                                  struct buf *out)
{
    const unsigned char *r = (const unsigned char *)t->raw.data;
    size_t ctlen = t->raw.len - HEAD_BYTES - MAC_BYTES;
    enum fernet_why w = FERNET_WHY_HMAC;
    for (size_t k = 0; k < kr->n; k++) {
        if (!authentic(&kr->keys[k], t))
            continue;
        size_t start = out->len;
        buf_reserve(out, ctlen + BLOCK);
        unsigned char *dst = (unsigned char *)out->data + start;
        size_t got = 0;
        if (cbc(&kr->keys[k], r + 1 + TS_BYTES, 0, r + HEAD_BYTES, ctlen, dst, &got) == 0) {
            out->len = start + got;
            out->data[out->len] = '\0';
            return FERNET_OK;
        }
        /* whatever the cipher wrote is plaintext too */
        OPENSSL_cleanse(dst, ctlen + BLOCK);
        out->data[start] = '\0';
        w = FERNET_WHY_PADDING;
    }
    return w;
}

int fernet_decrypt_at(const struct fernet_keyring *kr, const char *token, size_t n, int64_t ttl,
                      uint64_t now, struct buf *out, enum fernet_why *why)
{
    struct token t;
    enum fernet_why w = parse_token(token, n, &t);
    if (w != FERNET_OK)
        return set_why(why, w);
    w = check_time(t.ts, ttl, now);
    if (w == FERNET_OK)
        w = open_token(kr, &t, out);
    buf_free(&t.raw);
    return set_why(why, w);
}

int fernet_decrypt(const struct fernet_keyring *kr, const char *token, size_t n, int64_t ttl,
                   struct buf *out, enum fernet_why *why)
{
    return fernet_decrypt_at(kr, token, n, ttl, now_seconds(), out, why);
}

int fernet_rotate(const struct fernet_keyring *kr, const char *token, size_t n, struct buf *out,
                  enum fernet_why *why)
{
    struct token t;
    enum fernet_why w = parse_token(token, n, &t);
    if (w != FERNET_OK)
        return set_why(why, w);
    struct buf msg = {0};
    w = open_token(kr, &t, &msg);
    if (w == FERNET_OK) {
        unsigned char iv[IV_BYTES];
        if (RAND_bytes(iv, sizeof(iv)) != 1 ||
            encrypt_parts(&kr->keys[0], msg.data ? msg.data : "", msg.len, t.ts, iv, out) != 0)
            w = FERNET_WHY_INTERNAL;
    }
    if (msg.data != NULL)
        OPENSSL_cleanse(msg.data, msg.cap);
    buf_free(&msg);
    buf_free(&t.raw);
    return set_why(why, w);
}

int fernet_timestamp(const struct fernet_keyring *kr, const char *token, size_t n, uint64_t *ts,
                     enum fernet_why *why)
{
    struct token t;
    enum fernet_why w = parse_token(token, n, &t);
    if (w != FERNET_OK)
        return set_why(why, w);
    w = FERNET_WHY_HMAC;
    for (size_t k = 0; k < kr->n && w != FERNET_OK; k++) {
        if (authentic(&kr->keys[k], &t))
            w = FERNET_OK;
    }
    if (w == FERNET_OK)
        *ts = t.ts;
    buf_free(&t.raw);
    return set_why(why, w);
}
