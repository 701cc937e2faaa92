/* lib/base64.c: b64_encode appends the padded encoding (standard or URL-safe
 * alphabet); b64_decode appends the decoding, padding required for B64_STD
 * and optional for B64_URL, rejecting any other byte (whitespace too), wrong
 * padding, non-canonical trailing bits and a length that is 1 mod 4, and
 * leaving out as it was on error. */
#include "../../lib/base64.c"

#include <stdint.h>

#include "check.h"

/* The encoding of the C string s, in a fresh buffer the caller frees. */
static struct buf enc(const char *s, size_t n, enum b64_alphabet a)
{
    struct buf b = {0};
    b64_encode(&b, s, n, a);
    return b;
}

/* Decodes the C string s into a fresh buffer; returns b64_decode's result. */
static int dec(const char *s, enum b64_alphabet a, struct buf *out)
{
    buf_init(out);
    return b64_decode(out, s, strlen(s), a);
}

/* RFC 4648 section 10 */
static const struct {
    const char *plain, *std;
} rfc[] = {
    {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};
#define NRFC (sizeof(rfc) / sizeof(rfc[0]))

static void test_rfc_vectors(void)
{
    for (size_t i = 0; i < NRFC; i++) {
        struct buf b = enc(rfc[i].plain, strlen(rfc[i].plain), B64_STD);
        if (!check_str(b.data ? b.data : "", rfc[i].std))
            fprintf(stderr, "  encoding \"%s\"\n", rfc[i].plain);
        check_int(b.len, strlen(rfc[i].std));
        buf_free(&b);

        /* the URL alphabet gives the same text for these (no + or /) */
        b = enc(rfc[i].plain, strlen(rfc[i].plain), B64_URL);
        check_str(b.data ? b.data : "", rfc[i].std);
        buf_free(&b);

        if (check_int(dec(rfc[i].std, B64_STD, &b), 0)) {
            check_mem(b.data ? b.data : "", b.len, rfc[i].plain, strlen(rfc[i].plain));
        } else {
            fprintf(stderr, "  decoding \"%s\"\n", rfc[i].std);
        }
        buf_free(&b);

        check_int(dec(rfc[i].std, B64_URL, &b), 0);
        check_mem(b.data ? b.data : "", b.len, rfc[i].plain, strlen(rfc[i].plain));
        buf_free(&b);
    }

    /* an empty encoding still leaves a C string when something was appended
     * before; an empty decode is 0 bytes */
    struct buf b = {0};
    b64_encode(&b, "", 0, B64_STD);
    check_int(b.len, 0);
    buf_free(&b);
}

static void test_appends(void)
{
    struct buf b = {0};
    buf_puts(&b, "x:");
    b64_encode(&b, "foo", 3, B64_STD);
    check_str(b.data, "x:Zm9v");
    b64_encode(&b, "f", 1, B64_STD);
    check_str(b.data, "x:Zm9vZg==");
    buf_free(&b);

    buf_puts(&b, "y:");
    check_int(b64_decode(&b, "Zm9vYg==", 8, B64_STD), 0);
    check_str(b.data, "y:foob");
    check_int(b.len, 6);
    check_int(b64_decode(&b, "YmFy", 4, B64_STD), 0);
    check_str(b.data, "y:foobbar");
    buf_free(&b);
}

static void test_alphabets(void)
{
    /* 0xfb 0xff 0xbf encodes to the last two letters of each alphabet */
    static const char hi[] = "\xfb\xff\xbf";
    struct buf b = enc(hi, 3, B64_STD);
    check_str(b.data, "+/+/");
    buf_free(&b);
    b = enc(hi, 3, B64_URL);
    check_str(b.data, "-_-_");
    buf_free(&b);

    /* 0xff 0xef: 2 bytes, padded in both */
    b = enc("\xff\xef", 2, B64_STD);
    check_str(b.data, "/+8=");
    buf_free(&b);
    b = enc("\xff\xef", 2, B64_URL);
    check_str(b.data, "_-8=");
    buf_free(&b);

    check_int(dec("+/+/", B64_STD, &b), 0);
    check_mem(b.data, b.len, hi, 3);
    buf_free(&b);
    check_int(dec("-_-_", B64_URL, &b), 0);
    check_mem(b.data, b.len, hi, 3);
    buf_free(&b);

    /* each alphabet refuses the other's two characters */
    check_int(dec("-_-_", B64_STD, &b), -1);
    buf_free(&b);
    check_int(dec("+/+/", B64_URL, &b), -1);
    buf_free(&b);
    check_int(dec("ab+c", B64_URL, &b), -1);
    buf_free(&b);
    check_int(dec("ab_c", B64_STD, &b), -1);
    buf_free(&b);
}

static void test_url_padding(void)
{
    struct buf b;
    /* URL: padding optional */
    check_int(dec("Zg", B64_URL, &b), 0);
    check_str(b.data, "f");
    buf_free(&b);
    check_int(dec("Zg==", B64_URL, &b), 0);
    check_str(b.data, "f");
    buf_free(&b);
    check_int(dec("Zm8", B64_URL, &b), 0);
    check_str(b.data, "fo");
    buf_free(&b);
    check_int(dec("Zm8=", B64_URL, &b), 0);
    check_str(b.data, "fo");
    buf_free(&b);
    check_int(dec("Zm9vYmE", B64_URL, &b), 0);
    check_str(b.data, "fooba");
    buf_free(&b);
    check_int(dec("_-8", B64_URL, &b), 0);
    check_mem(b.data, b.len, "\xff\xef", 2);
    buf_free(&b);

    /* but if present it must be complete */
    static const char *const bad_url[] = {"Zg=", "Zm8==", "Zm9vYmE==", "Zg===", "Z===", "="};
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        if (!check_int(dec(bad_url[i], B64_URL, &b), -1))
            fprintf(stderr, "  URL input: \"%s\"\n", bad_url[i]);
        buf_free(&b);
    }

    /* STD: padding required */
    static const char *const unpadded[] = {"Zg", "Zm8", "Zm9vYg", "Zm9vYmE"};
    for (size_t i = 0; i < sizeof(unpadded) / sizeof(unpadded[0]); i++) {
        if (!check_int(dec(unpadded[i], B64_STD, &b), -1))
            fprintf(stderr, "  STD input: \"%s\"\n", unpadded[i]);
        buf_free(&b);
    }
}

static void test_rejects(void)
{
    static const char *const bad[] = {
        /* bytes outside the alphabet */
        "Zm9v!A==", "Zm9\x80", "Zm9v\xff\xff\xff\xff", "Zm.v", "Zm9v*g==",
        /* whitespace anywhere */
        "Zm9v Yg==", " Zm9v", "Zm9v\n", "Zm9v\r\nYmFy", "Zm\t9v", "Zm9vYg==\n", "Zm9vYg== ",
        /* padding in the wrong place or of the wrong size */
        "=Zm9", "Zm=v", "Z=9v", "Zm9v=", "Zm9v==", "Zm9v===", "Zm9v====", "Zg=", "Zg===",
        "Zm8==", "Zg==Zg==", "Zm8=Zm8=", "====", "==", "Z===",
        /* non-canonical: bits below the last whole byte must be zero */
        "Zh==", "Zm9=", "Zm9vYh==", "Zm9vYmF=", "AB==", "AAB=",
        /* one significant character left over */
        "Z", "Zm9vY", "Zm9vY===", "A", "AAAAA",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int a = B64_STD; a <= B64_URL; a++) {
            struct buf b = {0};
            buf_puts(&b, "keep");
            int rc = b64_decode(&b, bad[i], strlen(bad[i]), (enum b64_alphabet)a);
            if (!check_int(rc, -1))
                fprintf(stderr, "  input (%s): \"%s\"\n", a == B64_STD ? "STD" : "URL", bad[i]);
            /* out left as it was */
            if (!check_mem(b.data, b.len, "keep", 4))
                fprintf(stderr, "  input: \"%s\"\n", bad[i]);
            check(b.data[b.len] == '\0', "still NUL-terminated after an error");
            buf_free(&b);
        }
    }

    /* an empty buffer stays empty on error */
    struct buf b = {0};
    check_int(b64_decode(&b, "Zm9v!A==", 8, B64_STD), -1);
    check_int(b.len, 0);
    check(b.data == NULL || b.data[0] == '\0', "an empty buffer is still empty");
    buf_free(&b);

    /* a NUL byte inside the counted input is a bad byte, not the end */
    b = (struct buf){0};
    check_int(b64_decode(&b, "Zm9v\0AAA", 8, B64_STD), -1);
    check_int(b.len, 0);
    buf_free(&b);

    /* the error is found after some output was written: still rolled back */
    b = (struct buf){0};
    buf_puts(&b, "ab");
    check_int(b64_decode(&b, "Zm9vYmFyZm9vYmFy!mFy", 20, B64_STD), -1);
    check_mem(b.data, b.len, "ab", 2);
    check_int(b64_decode(&b, "Zm9vYmFyZm9vYmFyZh==", 20, B64_STD), -1);
    check_mem(b.data, b.len, "ab", 2);
    buf_free(&b);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* Encodes src in alphabet a and decodes it back (with unpad, the URL text
 * without its '='): one check, with the details printed if it fails. */
static int round_trip(const unsigned char *src, size_t n, enum b64_alphabet a, int unpad)
{
    struct buf e = {0}, d = {0};
    const char *why = NULL;
    b64_encode(&e, src, n, a);
    const char *other = a == B64_URL ? "+/" : "-_";
    if (e.len != (n + 2) / 3 * 4)
        why = "encoded length is not 4 * ceil(n / 3)";
    for (size_t i = 0; why == NULL && i < e.len; i++) {
        if (e.data[i] == other[0] || e.data[i] == other[1] || e.data[i] == '\n')
            why = "a character from outside the alphabet";
    }
    size_t elen = e.len;
    if (unpad) {
        while (elen > 0 && e.data[elen - 1] == '=')
            elen--;
    }
    if (why == NULL && b64_decode(&d, e.data ? e.data : "", elen, a) != 0)
        why = "the encoding does not decode";
    if (why == NULL && (d.len != n || (n > 0 && memcmp(d.data, src, n) != 0)))
        why = "decodes to other bytes";
    int ok = check(why == NULL, "encode then decode gives the input back");
    if (!ok) {
        fprintf(stderr, "  %s (%s%s, %zu bytes): ", why, a == B64_URL ? "URL" : "STD",
                unpad ? " unpadded" : "", n);
        check_print_mem(e.data, e.len);
        fputc('\n', stderr);
    }
    buf_free(&e);
    buf_free(&d);
    return ok;
}

static void test_round_trip(void)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    round_trip(all, sizeof(all), B64_STD, 0);
    round_trip(all, sizeof(all), B64_URL, 0);
    round_trip(all, sizeof(all), B64_URL, 1);

    /* every single byte value, and every byte in each of the 3 positions */
    for (int i = 0; i < 256; i++) {
        unsigned char one[3] = {(unsigned char)i, (unsigned char)(255 - i), (unsigned char)(i * 7)};
        for (size_t n = 1; n <= 3; n++) {
            if (!round_trip(one, n, B64_STD, 0) || !round_trip(one, n, B64_URL, 1))
                fprintf(stderr, "  byte %d, length %zu\n", i, n);
        }
    }

    /* random lengths 0..299, random bytes, both alphabets */
    unsigned char data[300];
    int bad = 0;
    for (int round = 0; round < 500 && bad < 5; round++) {
        size_t n = rng() % sizeof(data);
        for (size_t i = 0; i < n; i++)
            data[i] = (unsigned char)rng();
        enum b64_alphabet a = round & 1 ? B64_URL : B64_STD;
        if (!round_trip(data, n, a, a == B64_URL && (round & 2))) {
            fprintf(stderr, "  random round %d, length %zu\n", round, n);
            bad++;
        }
    }
}

int main(void)
{
    test_rfc_vectors();
    test_appends();
    test_alphabets();
    test_url_padding();
    test_rejects();
    test_round_trip();
    return check_done();
}
