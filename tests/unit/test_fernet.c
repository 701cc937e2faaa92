/* lib/fernet.c: the spec's test vectors (generate.json, verify.json,
 * invalid.json from github.com/fernet/spec), vectors made by Python's
 * cryptography.fernet (Fernet._encrypt_from_parts with a fixed key, IV and
 * time), key parsing as Fernet(key) does it, round trips, and every way a
 * token can be wrong: each bit flipped, truncated, re-padded, another
 * version, another key, expired, from the future. Keyrings decrypt with any
 * key and rotate keeping the timestamp. */
#include "../../lib/fernet.c"

#include "check.h"

/* fernet/spec: every vector uses this key, this IV and this time */
#define SPEC_KEY "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define SPEC_TOKEN                                                                                 \
    "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4" \
    "IwqDA=="
#define SPEC_NOW 499162800 /* 1985-10-26T01:20:00-07:00 */
static const unsigned char iv0[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* A ring of the given keys (NULL-terminated); every key must parse. */
static struct fernet_keyring ring(const char *k, ...)
{
    struct fernet_keyring kr = {0};
    va_list ap;
    va_start(ap, k);
    for (const char *s = k; s != NULL; s = va_arg(ap, const char *)) {
        if (!check(fernet_keyring_add(&kr, s, strlen(s)) == 0, "a test key parses"))
            fprintf(stderr, "  key: %s\n", s);
    }
    va_end(ap);
    return kr;
}

/* Decrypts the C string tok; returns the why (FERNET_OK on success), the
 * message in *out (a fresh buffer the caller frees). */
static enum fernet_why dec_at(const struct fernet_keyring *kr, const char *tok, int64_t ttl,
                              uint64_t now, struct buf *out)
{
    enum fernet_why why = FERNET_WHY_INTERNAL;
    buf_init(out);
    int rc = fernet_decrypt_at(kr, tok, strlen(tok), ttl, now, out, &why);
    check((rc == 0) == (why == FERNET_OK), "the return value and why agree");
    return why;
}

/* Refused with exactly this reason, and out left as it was. */
static int refused(const struct fernet_keyring *kr, const char *tok, size_t n, int64_t ttl,
                   uint64_t now, enum fernet_why want, const char *what)
{
    struct buf out = {0};
    buf_puts(&out, "keep");
    enum fernet_why why = FERNET_OK;
    int rc = fernet_decrypt_at(kr, tok, n, ttl, now, &out, &why);
    int ok = check(rc == -1 && why == want, "the token is refused for the right reason");
    if (!ok)
        fprintf(stderr, "  %s: rc %d, why %s, want %s\n", what, rc, fernet_why_str(why),
                fernet_why_str(want));
    if (!check_mem(out.data, out.len, "keep", 4))
        fprintf(stderr, "  %s\n", what);
    buf_free(&out);
    return ok;
}

/* The raw bytes of a token, re-encoded after the caller altered them. */
static struct buf encode(const unsigned char *raw, size_t n)
{
    struct buf b = {0};
    b64_encode(&b, raw, n, B64_URL);
    return b;
}

static struct buf decode(const char *tok)
{
    struct buf b = {0};
    check(b64_decode(&b, tok, strlen(tok), B64_URL) == 0, "a test token decodes");
    return b;
}

/* raw[0..n) with its HMAC (the last 32 bytes) recomputed under key: a token
 * that is authentic whatever else is wrong with it. */
static void resign(const struct fernet_key *key, unsigned char *raw, size_t n)
{
    check(mac(key, raw, n - MAC_BYTES, raw + n - MAC_BYTES) == 0, "HMAC computed");
}

static void test_spec_generate(void)
{
    struct fernet_keyring kr = ring(SPEC_KEY, NULL);
    struct buf tok = {0};
    check(encrypt_parts(&kr.keys[0], "hello", 5, SPEC_NOW, iv0, &tok) == 0, "encrypts");
    check_str(tok.data, SPEC_TOKEN);
    buf_free(&tok);
    fernet_keyring_free(&kr);
}

static void test_spec_verify(void)
{
    struct fernet_keyring kr = ring(SPEC_KEY, NULL);
    struct buf m;
    check_int(dec_at(&kr, SPEC_TOKEN, 60, SPEC_NOW + 1, &m), FERNET_OK);
    check_mem(m.data, m.len, "hello", 5);
    buf_free(&m);
    /* without a TTL, any time */
    check_int(dec_at(&kr, SPEC_TOKEN, 0, 2000000000, &m), FERNET_OK);
    check_mem(m.data, m.len, "hello", 5);
    buf_free(&m);
    uint64_t ts = 0;
    check(fernet_timestamp(&kr, SPEC_TOKEN, strlen(SPEC_TOKEN), &ts, NULL) == 0, "timestamp");
    check_int(ts, SPEC_NOW);
    fernet_keyring_free(&kr);
}

static void test_spec_invalid(void)
{
    static const struct {
        const char *desc, *token;
        uint64_t now;
        enum fernet_why why;
    } cases[] = {
        {"incorrect mac",
         "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFB"
         "QUFBQUFBQQ==",
         SPEC_NOW + 1, FERNET_WHY_HMAC},
        {"too short", "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==", SPEC_NOW + 1,
         FERNET_WHY_LENGTH},
        {"invalid base64",
         "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfs"
         "H-p1YsUD2Q==",
         SPEC_NOW + 1, FERNET_WHY_BASE64},
        {"payload size not multiple of block size",
         "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7m"
         "rfyudzUm",
         SPEC_NOW + 1, FERNET_WHY_LENGTH},
        {"payload padding error",
         "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNY"
         "IbkuKNqOhw==",
         SPEC_NOW + 1, FERNET_WHY_PADDING},
        {"far-future TS (unacceptable clock skew)",
         "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-"
         "iX9b_qXQcw==",
         SPEC_NOW + 1, FERNET_WHY_FUTURE},
        {"expired TTL",
         "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfs"
         "H-p1YsUD2Q==",
         SPEC_NOW + 91, FERNET_WHY_EXPIRED},
        {"incorrect IV (causes padding error)",
         "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1"
         "TIvcZjK1zQ==",
         SPEC_NOW + 1, FERNET_WHY_PADDING},
        /* two more that some implementations' copies of invalid.json carry */
        {"very short payload size", "gAAAAABdnQ1TUKh2OE_ggbyCIxfg", SPEC_NOW + 1,
         FERNET_WHY_LENGTH},
        {"super short payload size", "gAAA", SPEC_NOW + 1, FERNET_WHY_LENGTH},
    };
    struct fernet_keyring kr = ring(SPEC_KEY, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        refused(&kr, cases[i].token, strlen(cases[i].token), 60, cases[i].now, cases[i].why,
                cases[i].desc);
    /* the expired one is fine a minute earlier, and the future one without a TTL */
    struct buf m;
    check_int(dec_at(&kr, cases[6].token, 60, SPEC_NOW + 1, &m), FERNET_OK);
    check_int(m.len, 0);
    buf_free(&m);
    check_int(dec_at(&kr, cases[5].token, 0, SPEC_NOW + 1, &m), FERNET_OK);
    buf_free(&m);
    fernet_keyring_free(&kr);
}

/* Made by Python 3.11, cryptography 38.0.4 (Debian 12):
 *   Fernet(KEY2)._encrypt_from_parts(msg, 1700000000, bytes(range(16))) */
#define KEY2 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
static const struct {
    const char *msg;
    size_t n;
    const char *token;
} pyvec[] = {
    {"", 0,
     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD7eteCFsVWnW2hqrh_bbxWG2kgARxHn5BD1_8db41B-9AjTeFsfNLWkqNE3a"
     "SOKVfQ=="},
    {"a", 1,
     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD6aTaYpU5HrEW70wL5fDQeJS6KkyrLfSoxY0PPXvDlAE80oluz42y9uvNKGO"
     "d1XXaQ=="},
    {"0123456789abcde", 15,
     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0ODxzxQaltUF4g0jBJeKRUsB2Xe140gROYPRhBbsecZvO9LJE-HkLhLocENZF3"
     "V5wGiw=="},
    {"0123456789abcdef", 16,
     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD8zTj7aYw76sT2BMihR6GOexJN0dCt8_pFiKdeB6QS9WSil_St2l-tGwzFGG"
     "RHes2xrVyF4iCTB-W-h2hFcie1g="},
    {"0123456789abcdefg", 17,
     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD8zTj7aYw76sT2BMihR6GOf52SAs1xEJdlIq1y8VaNj5_lhh7t-ZpY7n3YpX"
     "f6OtbGOpxIimblVM7EE6IjTZHx4="},
    {"\x00\xff\x80\n\r\x00", 6,
     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD-BS21JX1rsl_VZodOjm5ffx03M6vHoowGB3ubUIs4FirLKGSLjEvji_9h0w"
     "Fh29ew=="},
};

static void test_python_vectors(void)
{
    struct fernet_keyring kr = ring(KEY2, NULL);
    for (size_t i = 0; i < sizeof(pyvec) / sizeof(pyvec[0]); i++) {
        struct buf tok = {0}, m;
        check(encrypt_parts(&kr.keys[0], pyvec[i].msg, pyvec[i].n, 1700000000, iv0, &tok) == 0,
              "encrypts");
        if (!check_str(tok.data, pyvec[i].token))
            fprintf(stderr, "  message of %zu bytes\n", pyvec[i].n);
        check_int(dec_at(&kr, pyvec[i].token, 0, 0, &m), FERNET_OK);
        check_mem(m.data ? m.data : "", m.len, pyvec[i].msg, pyvec[i].n);
        buf_free(&m);
        buf_free(&tok);
    }
    fernet_keyring_free(&kr);

    /* a key in the standard alphabet is the same key (Python accepts it) */
    kr = ring("+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=", NULL);
    struct buf m;
    check_int(dec_at(&kr,
                     "gAAAAABlU_EAAAECAwQFBgcICQoLDA0OD9VySlOribUIYTB_KLOc8N1rY_BDDt_khuk_02j9rj9a"
                     "wCj7Q80q4JTrtu7AAax2yg==",
                     0, 0, &m),
              FERNET_OK);
    check_str(m.data, "std");
    buf_free(&m);
    fernet_keyring_free(&kr);
}

static void test_key_parse(void)
{
    struct fernet_key a, b;
    check(fernet_key_parse(KEY2, 44, &a) == 0, "a canonical key parses");
    for (int i = 0; i < 16; i++) {
        check_int(a.signing[i], i);
        check_int(a.encryption[i], 16 + i);
    }
    /* the two alphabets, and both mixed, give the same bytes */
    check(fernet_key_parse("-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s=", 44, &a) == 0, "URL");
    check(fernet_key_parse("+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=", 44, &b) == 0, "std");
    check(memcmp(&a, &b, sizeof(a)) == 0, "URL and standard alphabets decode alike");
    check(fernet_key_parse("-/v7+_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s=", 44, &b) == 0, "mixed");
    check(memcmp(&a, &b, sizeof(a)) == 0, "mixed alphabets decode alike");
    /* the 2 bits below the last byte are ignored, as by Python ('8' vs '_') */
    check(fernet_key_parse(KEY2, 44, &a) == 0, "canonical");
    check(fernet_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh_=", 44, &b) == 0,
          "non-canonical last character");
    check(memcmp(&a, &b, sizeof(a)) == 0, "same key");

    /* what Python refuses too, and what it skips and we refuse */
    static const char *const bad[] = {
        "",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",     /* no padding */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh==",    /* 31 bytes */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAAA", /* 35 bytes */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 48 bytes */
        /* Python skips these bytes; we do not */
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH!8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=abcd",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd==h8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh.=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&b, 0x5a, sizeof(b));
        if (!check(fernet_key_parse(bad[i], strlen(bad[i]), &b) != 0, "not a key"))
            fprintf(stderr, "  key: \"%s\"\n", bad[i]);
        struct fernet_key untouched;
        memset(&untouched, 0x5a, sizeof(untouched));
        check(memcmp(&b, &untouched, sizeof(b)) == 0, "no key stored on error");
    }
    /* a NUL inside the counted text */
    check(fernet_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\0h8=", 44, &b) != 0, "NUL");
    check(fernet_key_parse(NULL, 0, &b) != 0, "NULL");

    /* a ring is unchanged by a bad key */
    struct fernet_keyring kr = ring(KEY2, NULL);
    check(fernet_keyring_add(&kr, "nope", 4) != 0, "not a key");
    check_int(kr.n, 1);
    fernet_keyring_free(&kr);
    check_int(kr.n, 0);
    check(kr.keys == NULL, "freed");
}

static void test_generate(void)
{
    struct buf k1 = {0}, k2 = {0};
    check(fernet_key_generate(&k1) == 0 && fernet_key_generate(&k2) == 0, "keys generated");
    check_int(k1.len, FERNET_KEY_TEXT);
    check(k1.data[43] == '=', "padded");
    check(strspn(k1.data, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43,
          "URL-safe alphabet");
    check(strcmp(k1.data, k2.data) != 0, "two keys differ");
    struct fernet_key k;
    check(fernet_key_parse(k1.data, k1.len, &k) == 0, "a generated key parses");
    /* appended, not overwritten */
    buf_clear(&k2);
    buf_puts(&k2, "K=");
    check(fernet_key_generate(&k2) == 0, "generated");
    check_int(k2.len, 2 + FERNET_KEY_TEXT);
    buf_free(&k1);
    buf_free(&k2);
}

/* Encrypt then decrypt n bytes; the token has the length the format says. */
static void round_trip(const struct fernet_keyring *kr, const unsigned char *msg, size_t n)
{
    struct buf tok = {0}, m = {0};
    enum fernet_why why = FERNET_WHY_INTERNAL;
    check(fernet_encrypt(kr, msg, n, &tok) == 0, "encrypts");
    size_t raw = HEAD_BYTES + (n / 16 + 1) * 16 + MAC_BYTES;
    if (!check_int(tok.len, (raw + 2) / 3 * 4))
        fprintf(stderr, "  message of %zu bytes\n", n);
    check(tok.data[0] == 'g' && tok.data[1] == 'A', "starts with gA (0x80)");
    int rc = fernet_decrypt(kr, tok.data, tok.len, 60, &m, &why);
    if (!check(rc == 0 && why == FERNET_OK, "decrypts"))
        fprintf(stderr, "  message of %zu bytes: %s\n", n, fernet_why_str(why));
    check_int(m.len, n);
    check(n == 0 || (m.data != NULL && memcmp(m.data, msg, n) == 0), "same message back");
    buf_free(&tok);
    buf_free(&m);
}

static void test_round_trips(void)
{
    struct fernet_keyring kr = ring(KEY2, NULL);
    static unsigned char big[1 << 20];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 131 + (i >> 8));
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 32, 33, 255, 4096, sizeof(big)};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        round_trip(&kr, big, sizes[i]);

    /* two encryptions of one message differ (random IV) */
    struct buf t1 = {0}, t2 = {0};
    check(fernet_encrypt(&kr, "x", 1, &t1) == 0 && fernet_encrypt(&kr, "x", 1, &t2) == 0, "enc");
    check(strcmp(t1.data, t2.data) != 0, "fresh IV each time");
    /* the timestamp is now */
    uint64_t ts = 0;
    uint64_t before = now_seconds();
    check(fernet_timestamp(&kr, t1.data, t1.len, &ts, NULL) == 0, "timestamp");
    check(ts >= before - 1 && ts <= now_seconds(), "stamped with the current time");
    buf_free(&t1);
    buf_free(&t2);

    /* output is appended */
    buf_puts(&t1, "tok:");
    check(fernet_encrypt_at(&kr, "x", 1, 5, &t1) == 0, "enc");
    check(strncmp(t1.data, "tok:gAAAAAAAAAAF", 16) == 0, "appended, timestamp 5");
    buf_puts(&t2, "msg:");
    check(fernet_decrypt(&kr, t1.data + 4, t1.len - 4, 0, &t2, NULL) == 0, "dec");
    check_str(t2.data, "msg:x");
    buf_free(&t1);
    buf_free(&t2);

    /* an empty ring encrypts nothing and decrypts nothing */
    struct fernet_keyring none = {0};
    check(fernet_encrypt(&none, "x", 1, &t1) != 0, "no key, no token");
    check_int(t1.len, 0);
    refused(&none, pyvec[1].token, strlen(pyvec[1].token), 0, 0, FERNET_WHY_HMAC, "empty ring");
    fernet_keyring_free(&kr);
}

static void test_bit_flips(void)
{
    struct fernet_keyring kr = ring(KEY2, NULL);
    const char *tok = pyvec[2].token; /* 15 bytes: one block */
    size_t n = strlen(tok);
    /* every bit of the token's bytes */
    struct buf raw = decode(tok);
    int bad = 0;
    for (size_t i = 0; i < raw.len * 8 && bad < 5; i++) {
        raw.data[i / 8] ^= (char)(1 << (i % 8));
        struct buf t = encode((unsigned char *)raw.data, raw.len);
        /* the version byte is looked at first; the rest only the HMAC sees */
        enum fernet_why want = i < 8 ? FERNET_WHY_VERSION : FERNET_WHY_HMAC;
        if (!refused(&kr, t.data, t.len, 0, 0, want, "a bit flipped in the token's bytes")) {
            fprintf(stderr, "  bit %zu\n", i);
            bad++;
        }
        buf_free(&t);
        raw.data[i / 8] ^= (char)(1 << (i % 8));
    }
    buf_free(&raw);

    /* every bit of the token's text: not base64 any more, or other bytes */
    char *t = xstrdup(tok);
    for (size_t i = 0; i < n * 8 && bad < 10; i++) {
        t[i / 8] ^= (char)(1 << (i % 8));
        struct buf out = {0};
        enum fernet_why why = FERNET_OK;
        if (!check(fernet_decrypt_at(&kr, t, n, 0, 0, &out, &why) == -1 && out.len == 0,
                   "a bit flipped in the token's text is refused")) {
            fprintf(stderr, "  bit %zu: %s\n", i, t);
            bad++;
        }
        buf_free(&out);
        t[i / 8] ^= (char)(1 << (i % 8));
    }
    free(t);
    fernet_keyring_free(&kr);
}

static void test_malformed(void)
{
    struct fernet_keyring kr = ring(KEY2, NULL);
    const char *tok = pyvec[4].token; /* 17 bytes, ends in one '=' */
    size_t n = strlen(tok);

    /* every truncation */
    for (size_t i = 0; i < n; i++) {
        enum fernet_why why = FERNET_OK;
        struct buf out = {0};
        if (!check(fernet_decrypt_at(&kr, tok, i, 0, 0, &out, &why) == -1, "truncated"))
            fprintf(stderr, "  %zu of %zu characters\n", i, n);
        check_int(out.len, 0);
        buf_free(&out);
    }
    /* cut at whole base64 quads, the bytes are short: length (or HMAC for
     * whole blocks, which then miss their HMAC) */
    refused(&kr, tok, 4, 0, 0, FERNET_WHY_LENGTH, "4 characters");
    refused(&kr, tok, n - 44, 0, 0, FERNET_WHY_LENGTH, "a block short");

    /* re-padded: only the canonical, padded encoding is a token */
    struct buf t = {0};
    buf_append(&t, tok, n - 1);
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "padding removed");
    buf_puts(&t, "==");
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "padding doubled");
    buf_clear(&t);
    buf_puts(&t, pyvec[0].token);
    buf_puts(&t, "=");
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "'=' added to '=='");
    buf_clear(&t);
    buf_append(&t, pyvec[0].token, strlen(pyvec[0].token) - 1);
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "one '=' of two");
    buf_clear(&t);
    buf_puts(&t, tok);
    buf_puts(&t, "====");
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "a quad of padding");
    buf_clear(&t);
    buf_puts(&t, tok);
    buf_puts(&t, "\n");
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "a newline (the CLI strips it)");
    buf_clear(&t);
    buf_puts(&t, tok);
    t.data[10] = ' ';
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "a space");
    /* the standard alphabet ('-' '_' as '+' '/') */
    buf_clear(&t);
    buf_puts(&t, tok);
    for (size_t i = 0; i < t.len; i++)
        t.data[i] = t.data[i] == '-' ? '+' : t.data[i] == '_' ? '/' : t.data[i];
    check(strcmp(t.data, tok) != 0, "the sample has a '-' or '_'");
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "standard alphabet");
    /* non-canonical last character before the padding: same bytes, other text */
    buf_clear(&t);
    buf_puts(&t, tok);
    check(t.data[n - 2] == '4', "the sample's last character is 4");
    t.data[n - 2] = '5';
    refused(&kr, t.data, t.len, 0, 0, FERNET_WHY_BASE64, "non-canonical last character");
    buf_free(&t);
    refused(&kr, "", 0, 0, 0, FERNET_WHY_VERSION, "empty"); /* decodes to no byte at all */
    refused(&kr, NULL, 0, 0, 0, FERNET_WHY_BASE64, "NULL");

    /* another version byte, even authentic, is refused */
    struct buf raw = decode(tok);
    static const unsigned char versions[] = {0x00, 0x7f, 0x81, 0x91, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        raw.data[0] = (char)versions[i];
        resign(&kr.keys[0], (unsigned char *)raw.data, raw.len);
        struct buf e = encode((unsigned char *)raw.data, raw.len);
        refused(&kr, e.data, e.len, 0, 0, FERNET_WHY_VERSION, "another version");
        buf_free(&e);
    }
    /* authentic, but no whole blocks of ciphertext */
    raw.data[0] = (char)VERSION;
    for (size_t cut = 1; cut < 16; cut++) {
        resign(&kr.keys[0], (unsigned char *)raw.data, raw.len - cut);
        struct buf e = encode((unsigned char *)raw.data, raw.len - cut);
        refused(&kr, e.data, e.len, 0, 0, FERNET_WHY_LENGTH, "ciphertext not whole blocks");
        buf_free(&e);
    }
    /* authentic, no ciphertext at all */
    memmove(raw.data + HEAD_BYTES, raw.data + raw.len - MAC_BYTES, MAC_BYTES);
    resign(&kr.keys[0], (unsigned char *)raw.data, HEAD_BYTES + MAC_BYTES);
    struct buf e = encode((unsigned char *)raw.data, HEAD_BYTES + MAC_BYTES);
    refused(&kr, e.data, e.len, 0, 0, FERNET_WHY_LENGTH, "no ciphertext");
    buf_free(&e);
    buf_free(&raw);
    fernet_keyring_free(&kr);
}

static void test_other_key(void)
{
    struct fernet_keyring kr = ring(SPEC_KEY, NULL);
    for (size_t i = 0; i < sizeof(pyvec) / sizeof(pyvec[0]); i++)
        refused(&kr, pyvec[i].token, strlen(pyvec[i].token), 0, 0, FERNET_WHY_HMAC, "other key");
    uint64_t ts = 7;
    check(fernet_timestamp(&kr, pyvec[0].token, strlen(pyvec[0].token), &ts, NULL) != 0,
          "no timestamp from an unauthentic token");
    check_int(ts, 7);
    fernet_keyring_free(&kr);

    /* same signing half, other encryption half: authentic, but garbage out */
    struct fernet_keyring half = ring(KEY2, NULL);
    half.keys[0].encryption[0] ^= 1;
    refused(&half, pyvec[2].token, strlen(pyvec[2].token), 0, 0, FERNET_WHY_PADDING,
            "wrong encryption key");
    fernet_keyring_free(&half);
}

static void test_ttl(void)
{
    struct fernet_keyring kr = ring(KEY2, NULL);
    const char *tok = pyvec[1].token; /* "a" at 1700000000 */
    size_t n = strlen(tok);
    const uint64_t ts = 1700000000;
    struct buf m;
    /* ttl 60: valid from now - 60 .. now + 60 (clock skew) */
    check_int(dec_at(&kr, tok, 60, ts + 60, &m), FERNET_OK);
    buf_free(&m);
    refused(&kr, tok, n, 60, ts + 61, FERNET_WHY_EXPIRED, "61 s old, ttl 60");
    refused(&kr, tok, n, 1, ts + 2, FERNET_WHY_EXPIRED, "2 s old, ttl 1");
    check_int(dec_at(&kr, tok, 1, ts + 1, &m), FERNET_OK);
    buf_free(&m);
    check_int(dec_at(&kr, tok, 60, ts - 60, &m), FERNET_OK);
    buf_free(&m);
    refused(&kr, tok, n, 60, ts - 61, FERNET_WHY_FUTURE, "61 s ahead");
    refused(&kr, tok, n, 3600, ts - 3600, FERNET_WHY_FUTURE, "an hour ahead, ttl an hour");
    /* no TTL: no time checks at all (Python's decrypt(token)) */
    check_int(dec_at(&kr, tok, 0, ts + 100000000, &m), FERNET_OK);
    buf_free(&m);
    check_int(dec_at(&kr, tok, 0, 0, &m), FERNET_OK);
    buf_free(&m);
    refused(&kr, tok, n, -1, ts, FERNET_WHY_EXPIRED, "negative ttl");
    /* a huge TTL does not wrap */
    check_int(dec_at(&kr, tok, INT64_MAX, ts + (uint64_t)INT64_MAX, &m), FERNET_OK);
    buf_free(&m);
    refused(&kr, tok, n, INT64_MAX, ts + (uint64_t)INT64_MAX + 1, FERNET_WHY_EXPIRED, "2^63");
    buf_free(&m);

    /* the extremes of the timestamp field do not wrap either */
    struct buf t = {0};
    check(fernet_encrypt_at(&kr, "z", 1, UINT64_MAX, &t) == 0, "enc");
    check(strncmp(t.data, "gP__________", 12) == 0, "timestamp 2^64-1");
    refused(&kr, t.data, t.len, 60, 0, FERNET_WHY_FUTURE, "2^64-1 at 0");
    refused(&kr, t.data, t.len, INT64_MAX, UINT64_MAX - 61, FERNET_WHY_FUTURE, "2^64-1");
    check_int(dec_at(&kr, t.data, 60, UINT64_MAX, &m), FERNET_OK);
    buf_free(&m);
    buf_clear(&t);
    check(fernet_encrypt_at(&kr, "z", 1, 0, &t) == 0, "enc");
    refused(&kr, t.data, t.len, INT64_MAX, UINT64_MAX, FERNET_WHY_EXPIRED, "0 at 2^64-1");
    check_int(dec_at(&kr, t.data, 60, 60, &m), FERNET_OK);
    buf_free(&m);
    buf_free(&t);
    fernet_keyring_free(&kr);
}

static void test_keyring(void)
{
    struct buf newk = {0}, tok_old = {0}, tok_new = {0}, m;
    check(fernet_key_generate(&newk) == 0, "key");
    struct fernet_keyring old = ring(KEY2, NULL);
    struct fernet_keyring both = ring(newk.data, KEY2, NULL);
    struct fernet_keyring only_new = ring(newk.data, NULL);
    check_int(both.n, 2);

    check(fernet_encrypt_at(&old, "secret", 6, 1000, &tok_old) == 0, "enc");
    check(fernet_encrypt_at(&both, "fresh", 5, 2000, &tok_new) == 0, "enc");
    /* the ring decrypts with its old key, and encrypts with its first */
    check_int(dec_at(&both, tok_old.data, 0, 0, &m), FERNET_OK);
    check_str(m.data, "secret");
    buf_free(&m);
    check_int(dec_at(&only_new, tok_new.data, 0, 0, &m), FERNET_OK);
    check_str(m.data, "fresh");
    buf_free(&m);
    refused(&old, tok_new.data, tok_new.len, 0, 0, FERNET_WHY_HMAC, "made with the new key");
    /* TTLs apply through the ring too */
    refused(&both, tok_old.data, tok_old.len, 10, 1011, FERNET_WHY_EXPIRED, "old and expired");

    /* rotate: re-encrypted under the first key, same timestamp, new IV */
    struct buf rot = {0};
    enum fernet_why why = FERNET_WHY_INTERNAL;
    check(fernet_rotate(&both, tok_old.data, tok_old.len, &rot, &why) == 0 && why == FERNET_OK,
          "rotates");
    check(strcmp(rot.data, tok_old.data) != 0, "a new token");
    uint64_t ts = 0;
    check(fernet_timestamp(&only_new, rot.data, rot.len, &ts, NULL) == 0, "under the new key");
    check_int(ts, 1000);
    check_int(dec_at(&only_new, rot.data, 0, 0, &m), FERNET_OK);
    check_str(m.data, "secret");
    buf_free(&m);
    refused(&old, rot.data, rot.len, 0, 0, FERNET_WHY_HMAC, "the old key no longer opens it");
    /* rotating a token of the first key gives a new token of the same */
    struct buf rot2 = {0};
    check(fernet_rotate(&both, rot.data, rot.len, &rot2, NULL) == 0, "rotates again");
    check(strcmp(rot2.data, rot.data) != 0, "fresh IV");
    check(fernet_timestamp(&only_new, rot2.data, rot2.len, &ts, NULL) == 0 && ts == 1000, "ts");
    buf_free(&rot2);
    /* the empty message, and a rotation of an expired token (rotate has no TTL) */
    buf_clear(&rot);
    check(fernet_rotate(&both, pyvec[0].token, strlen(pyvec[0].token), &rot, NULL) == 0, "rot");
    check_int(dec_at(&only_new, rot.data, 0, 0, &m), FERNET_OK);
    check_int(m.len, 0);
    buf_free(&m);
    check(fernet_timestamp(&only_new, rot.data, rot.len, &ts, NULL) == 0 && ts == 1700000000,
          "keeps Python's timestamp");
    /* what no key opens is not rotated; out is left alone */
    buf_clear(&rot);
    buf_puts(&rot, "keep");
    check(fernet_rotate(&old, tok_new.data, tok_new.len, &rot, &why) == -1, "refused");
    check_int(why, FERNET_WHY_HMAC);
    check_str(rot.data, "keep");
    check(fernet_rotate(&old, "gAAA", 4, &rot, &why) == -1 && why == FERNET_WHY_LENGTH, "short");
    check_str(rot.data, "keep");
    /* a ring of the same key twice, a bad token: each key tried, still HMAC */
    struct fernet_keyring twice = ring(KEY2, KEY2, NULL);
    refused(&twice, tok_new.data, tok_new.len, 0, 0, FERNET_WHY_HMAC, "neither");
    fernet_keyring_free(&twice);

    /* a ring grows past its first allocation and keeps every key */
    struct fernet_keyring many = {0};
    for (int i = 0; i < 9; i++)
        check(fernet_keyring_add(&many, SPEC_KEY, strlen(SPEC_KEY)) == 0, "added");
    check(fernet_keyring_add(&many, KEY2, strlen(KEY2)) == 0, "added");
    check_int(many.n, 10);
    check_int(dec_at(&many, tok_old.data, 0, 0, &m), FERNET_OK);
    buf_free(&m);
    fernet_keyring_free(&many);

    buf_free(&rot);
    buf_free(&newk);
    buf_free(&tok_old);
    buf_free(&tok_new);
    fernet_keyring_free(&old);
    fernet_keyring_free(&both);
    fernet_keyring_free(&only_new);
}

static void test_why_str(void)
{
    check_str(fernet_why_str(FERNET_OK), "ok");
    check_str(fernet_why_str(FERNET_WHY_HMAC), "hmac");
    check_str(fernet_why_str(FERNET_WHY_INTERNAL), "internal");
    check_str(fernet_why_str((enum fernet_why)99), "?");
}

int main(void)
{
    test_spec_generate();
    test_spec_verify();
    test_spec_invalid();
    test_python_vectors();
    test_key_parse();
    test_generate();
    test_round_trips();
    test_bit_flips();
    test_malformed();
    test_other_key();
    test_ttl();
    test_keyring();
    test_why_str();
    return check_done();
}
