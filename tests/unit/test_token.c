/* lib/token.c: JWT HS256 access tokens with a keyring: what verifies, and
 * every way a token is refused (tampering, alg none, other algs, unknown
 * keys, non-canonical encodings, expiry, claims). */
#include "../../lib/token.c"

#include "check.h"
#include "mem.h"

/* KEY_A/B: 32 bytes each, URL-safe base64 */
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define KEY_B "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"
#define NOW 1800000000L

/* A token with any header and payload, signed by hand with key (NULL: the
 * signature is "sig"). */
static void forge(struct buf *out, const char *header, const char *payload, const char *b64key)
{
    struct buf k = {0}, h = {0};
    buf_clear(out);
    b64_encode(&h, header, strlen(header), B64_URL);
    while (h.len > 0 && h.data[h.len - 1] == '=')
        h.data[--h.len] = '\0';
    buf_append(out, h.data, h.len);
    buf_putc(out, '.');
    buf_clear(&h);
    b64_encode(&h, payload, strlen(payload), B64_URL);
    while (h.len > 0 && h.data[h.len - 1] == '=')
        h.data[--h.len] = '\0';
    buf_append(out, h.data, h.len);
    if (b64key == NULL) {
        buf_puts(out, ".c2ln");
    } else {
        if (b64_decode(&k, b64key, strlen(b64key), B64_URL) != 0)
            abort();
        unsigned char mac[32];
        unsigned int n = 0;
        HMAC(EVP_sha256(), k.data, (int)k.len, (unsigned char *)out->data, out->len, mac, &n);
        buf_clear(&h);
        b64_encode(&h, mac, n, B64_URL);
        while (h.len > 0 && h.data[h.len - 1] == '=')
            h.data[--h.len] = '\0';
        buf_putc(out, '.');
        buf_append(out, h.data, h.len);
    }
    buf_free(&k);
    buf_free(&h);
}

static enum token_err verdict(const struct token_keys *ks, const char *t, long now)
{
    struct token_claims c;
    enum token_err e = TOKEN_OK;
    int rc = token_verify(ks, t, now, &c, &e);
    if ((rc == 0) != (e == TOKEN_OK))
        return (enum token_err)99;
    return e;
}

#define PAYLOAD "{\"sub\":\"42\",\"scope\":\"users\",\"jti\":\"j1\",\"iat\":1800000000,\"exp\":1800000900}"

int main(void)
{
    struct token_keys ks, old, none;
    char err[128];
    check(token_keys_parse(&ks, "k2:" KEY_B ",k1:" KEY_A, err, sizeof(err)) == 0, "two keys");
    check_int(ks.n, 2);
    check(token_keys_parse(&old, "k1:" KEY_A, err, sizeof(err)) == 0, "the old key alone");
    check(token_keys_parse(&none, "", err, sizeof(err)) == -1, "no keys");
    check(token_keys_parse(&none, "k1:c2hvcnQ", err, sizeof(err)) == -1, "a short key");
    check(strstr(err, "c2hvcnQ") == NULL, "the key is not in the error");
    check(token_keys_parse(&none, KEY_A, err, sizeof(err)) == -1, "no kid");
    check(token_keys_parse(&none, "k 1:" KEY_A, err, sizeof(err)) == -1, "a bad kid");

    struct token_claims c = {.iat = NOW, .exp = NOW + 900};
    snprintf(c.sub, sizeof(c.sub), "42");
    snprintf(c.scope, sizeof(c.scope), "users admin");
    snprintf(c.jti, sizeof(c.jti), "0f8fad5b-d9cb-469f-a165-70867728950e");
    struct buf t = {0};
    check(token_sign(&ks, &c, &t) == 0, "signs");
    struct token_claims got;
    enum token_err why;
    check(token_verify(&ks, t.data, NOW + 1, &got, &why) == 0, "verifies");
    check_str(got.sub, "42");
    check_str(got.scope, "users admin");
    check_str(got.jti, c.jti);
    check_int(got.exp, NOW + 900);
    check_int(got.gen, 0); /* none given, none signed */
    check(strstr(t.data, "gen") == NULL, "no gen claim");
    check_int(verdict(&old, t.data, NOW), TOKEN_UNKNOWN_KEY); /* signed by k2 */
    check_int(verdict(&ks, t.data, NOW + 900), TOKEN_EXPIRED);
    check_int(verdict(&ks, t.data, NOW - 61), TOKEN_NOT_YET_VALID); /* iat in the future */

    /* every single byte changed: refused (a flip that decodes the same is
     * a non-canonical spelling, refused too) */
    int accepted = 0;
    for (size_t i = 0; i < t.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            char *m = xstrdup(t.data);
            m[i] = (char)(m[i] ^ (1 << bit));
            if (m[i] != '\0' && verdict(&ks, m, NOW) == TOKEN_OK)
                accepted++;
            free(m);
        }
    }
    check_int(accepted, 0);
    /* truncated anywhere */
    for (size_t i = 0; i < t.len; i++) {
        char *m = xstrndup(t.data, i);
        if (!check(verdict(&ks, m, NOW) != TOKEN_OK, "a truncated token"))
            fprintf(stderr, "  accepted at %zu\n", i);
        free(m);
    }

    /* a generation is signed and read back */
    struct buf tg = {0};
    c.gen = 7;
    check(token_sign(&ks, &c, &tg) == 0, "signs with gen");
    check(token_verify(&ks, tg.data, NOW + 1, &got, &why) == 0, "verifies with gen");
    check_int(got.gen, 7);
    c.gen = 0;
    buf_free(&tg);

    /* rotation: a token signed by the old key verifies while it is held */
    struct buf t_old = {0};
    check(token_sign(&old, &c, &t_old) == 0, "the old key signs");
    check_int(verdict(&ks, t_old.data, NOW), TOKEN_OK);

    struct buf f = {0};
    forge(&f, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", PAYLOAD, KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_OK);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", PAYLOAD, KEY_B); /* another key */
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_SIGNATURE);
    forge(&f, "{\"alg\":\"none\",\"kid\":\"k1\"}", PAYLOAD, NULL);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_ALG);
    forge(&f, "{\"alg\":\"none\",\"kid\":\"k1\"}", PAYLOAD, NULL);
    f.len = (size_t)(strrchr(f.data, '.') - f.data) + 1; /* "h.p." */
    f.data[f.len] = '\0';
    check_int(verdict(&ks, f.data, NOW), TOKEN_MALFORMED);
    forge(&f, "{\"alg\":\"HS512\",\"kid\":\"k1\"}", PAYLOAD, KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_ALG);
    forge(&f, "{\"alg\":\"hs256\",\"kid\":\"k1\"}", PAYLOAD, KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_ALG);
    forge(&f, "{\"alg\":\"HS256\"}", PAYLOAD, KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_UNKNOWN_KEY);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k9\"}", PAYLOAD, KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_UNKNOWN_KEY);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\",\"kid\":\"k2\"}", PAYLOAD, KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_MALFORMED);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
          "{\"sub\":42,\"scope\":\"\",\"jti\":\"j\",\"iat\":1,\"exp\":1800000900}", KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_CLAIMS);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
          "{\"sub\":\"1\",\"scope\":\"\",\"jti\":\"j\",\"iat\":1}", KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_CLAIMS); /* no exp */
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
          "{\"sub\":\"1\",\"scope\":\"\",\"jti\":\"j\",\"iat\":1,\"exp\":1800000900,\"nbf\":1800000100}",
          KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_NOT_YET_VALID);
    check_int(verdict(&ks, f.data, NOW + 100), TOKEN_OK);
    /* the user's token generation: an integer >= 0, or none */
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
          "{\"sub\":\"1\",\"scope\":\"\",\"jti\":\"j\",\"iat\":1,\"exp\":1800000900,\"gen\":\"7\"}", KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_CLAIMS);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
          "{\"sub\":\"1\",\"scope\":\"\",\"jti\":\"j\",\"iat\":1,\"exp\":1800000900,\"gen\":-1}", KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_BAD_CLAIMS);
    forge(&f, "{\"alg\":\"HS256\",\"kid\":\"k1\"}", "[1,2]", KEY_A);
    check_int(verdict(&ks, f.data, NOW), TOKEN_MALFORMED);

    /* garbage */
    static const char *const junk[] = {"", ".", "..", "a.b.c", "a.b", "a.b.c.d", "Bearer x",
                                       "\xff\xfe.x.y", "e30.e30.", "e30=.e30.c2ln"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        check(verdict(&ks, junk[i], NOW) != TOKEN_OK, "junk refused");
    char *big = xmalloc(TOKEN_MAX + 100);
    memset(big, 'a', TOKEN_MAX + 99);
    big[TOKEN_MAX + 99] = '\0';
    check_int(verdict(&ks, big, NOW), TOKEN_MALFORMED);
    free(big);
    check_str(token_err_name(TOKEN_EXPIRED), "expired");

    token_keys_clear(&ks);
    check_int(ks.n, 0);
    buf_free(&t);
    buf_free(&t_old);
    buf_free(&f);
    /* scope lists: whole names only, any number of spaces */
    check(token_scope_has("admin", "admin", 5), "one name");
    check(token_scope_has("  users   admin ", "admin", 5), "among others, spaced");
    check(!token_scope_has("administrator xadmin admins ADMIN", "admin", 5), "no partial names");
    check(!token_scope_has("", "admin", 5), "empty list");
    check(!token_scope_has("a b", "", 0), "no empty name");
    check(token_scopes_within("b a", "a b c"), "a subset");
    check(token_scopes_within("", "a"), "nothing asked");
    check(token_scopes_within("  ", ""), "only spaces asked");
    check(!token_scopes_within("a d", "a b c"), "one name missing");
    check(!token_scopes_within("ab", "a b"), "names are whole");
    return check_done();
}
