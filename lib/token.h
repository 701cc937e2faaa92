#ifndef TOKEN_H
#define TOKEN_H

#include <stddef.h>

#include "buf.h"

/* Access tokens: JWT (RFC 7519) signed HS256, made with libjwt. Each token
 * names its signing key in the header ("kid"), so keys rotate without
 * logging everyone out: the keyring's first key signs, every key verifies,
 * and a retired key is dropped once its last tokens have expired.
 *
 * Verification trusts nothing before the signature: the header must say
 * exactly alg HS256 and a kid we hold; the three parts must be canonical
 * base64url; the HMAC is compared in constant time (libjwt 1.10 compares
 * with strcmp); only then are the claims read. Claims: sub, scope, iat,
 * exp, jti (all required), nbf and gen (optional). gen is the user's
 * token generation when the token was issued (the users table's
 * token_gen): a password or email change revokes the user's tokens of
 * older generations at once (denylist.h), which iat (whole seconds) could
 * not tell apart from a token issued in the same second after the change. */

#define TOKEN_MAX 4096 /* longer tokens are refused unread */
#define TOKEN_KEYS_MAX 8
/* No token lives longer (TOKEN_TTL's and tokenctl --ttl's upper bound):
 * what is revoked for this long outlives every token issued before. */
#define TOKEN_LIFETIME_MAX 86400

struct token_key {
    char kid[33];
    unsigned char key[64];
    size_t len;
};

struct token_keys {
    struct token_key k[TOKEN_KEYS_MAX]; /* k[0] signs */
    size_t n;
};

struct token_claims {
    char sub[65];
    char scope[257];
    char jti[65];
    long iat, exp, nbf; /* seconds since the epoch; nbf 0: none */
    long gen;           /* the user's token generation; 0: none (tokenctl's) */
};

enum token_err {
    TOKEN_OK = 0,
    TOKEN_MALFORMED,     /* not three canonical base64url parts of JSON, or too long */
    TOKEN_BAD_ALG,       /* alg other than HS256 (none, RS256, HS512 ...) */
    TOKEN_UNKNOWN_KEY,   /* no kid, or one we do not hold */
    TOKEN_BAD_SIGNATURE, /* the HMAC does not match */
    TOKEN_BAD_CLAIMS,    /* a required claim missing or of the wrong type */
    TOKEN_EXPIRED,       /* now >= exp */
    TOKEN_NOT_YET_VALID, /* now < nbf, or iat in the future (60 s leeway) */
};

/* "kid1:KEY1,kid2:KEY2": KEY is URL-safe base64 of 32..64 bytes; the first
 * signs. Returns 0, or -1 with the reason in err (never the key). */
int token_keys_parse(struct token_keys *ks, const char *spec, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Whether spec is a keyring token_keys_parse accepts (a conf_entry check:
 * a bad TOKEN_KEYS stops a program at start). 0, or -1 with the reason. */
int token_keys_check(const char *spec, char *err, size_t errlen);
/* Scopes are space-separated names (RFC 6749 §3.3). Whether scope holds
 * the name want[0..n); whether every name of want is in have. */
int token_scope_has(const char *scope, const char *want, size_t n);
int token_scopes_within(const char *want, const char *have);
/* Wipe the keys. */
void token_keys_clear(struct token_keys *ks);

/* Sign c with the first key; the token is appended to out. 0, or -1. */
int token_sign(const struct token_keys *ks, const struct token_claims *c, struct buf *out)
    __attribute__((warn_unused_result));

/* Verify token at time now: 0 with the claims in *c, or -1 with the reason
 * in *why (for logs and tests; clients get RFC 6750's invalid_token). */
int token_verify(const struct token_keys *ks, const char *token, long now,
                 struct token_claims *c, enum token_err *why);

/* A short name for a reason: "expired", "bad signature", ... */
const char *token_err_name(enum token_err e);

#endif
