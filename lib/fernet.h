#ifndef FERNET_H
#define FERNET_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Fernet (https://github.com/fernet/spec/blob/master/Spec.md), token for
 * token what Python's cryptography.fernet makes and reads:
 *
 *   token = base64url(0x80 || timestamp (8 bytes, big-endian seconds)
 *                     || IV (16) || AES-128-CBC(PKCS7(message)) || HMAC (32))
 *
 * where the HMAC is HMAC-SHA256 over everything before it, keyed with the
 * first half of the 32-byte key; the second half is the AES key. A token is
 * checked before anything is decrypted (version, length, TTL, then the HMAC,
 * compared in constant time), so a tampered token is never run through the
 * cipher. On libcrypto (OpenSSL 3); keys and IVs come from RAND_bytes.
 *
 * A keyring holds one key or several (Python's MultiFernet): the first
 * encrypts, every one is tried to decrypt, and fernet_rotate re-encrypts a
 * token made with any of them under the first, keeping its timestamp.
 *
 * Errors: every function returns 0 or -1. For a token, -1 always means the
 * one thing Python calls InvalidToken ("invalid token"), whatever was wrong
 * with it; callers show nothing finer. The optional `why` out-parameter says
 * which check refused it, for tests and debug logs only. Outputs are
 * appended to a caller-owned struct buf, which is left as it was on error. */

#define FERNET_KEY_BYTES 32
/* A key as text: 43 base64 characters and one '=' (Fernet.generate_key()). */
#define FERNET_KEY_TEXT 44
/* A token is never older than its TTL, nor more than this many seconds in
 * the future (Python's _MAX_CLOCK_SKEW), when a TTL is given. */
#define FERNET_MAX_CLOCK_SKEW 60

/* One key: signing key (HMAC) and encryption key (AES-128), 16 bytes each. */
struct fernet_key {
    unsigned char signing[16];
    unsigned char encryption[16];
};

/* Keys in order: keys[0] encrypts. Zero-initialise it (= {0}); free with
 * fernet_keyring_free, which wipes the keys. */
struct fernet_keyring {
    struct fernet_key *keys;
    size_t n;
    size_t cap;
};

/* Why a token was refused (detail for tests and debug logs; never shown to
 * whoever sent the token, who gets "invalid token"). */
enum fernet_why {
    FERNET_OK = 0,
    FERNET_WHY_BASE64,   /* not canonical padded base64url */
    FERNET_WHY_VERSION,  /* first byte not 0x80 */
    FERNET_WHY_LENGTH,   /* too short, or ciphertext not whole AES blocks */
    FERNET_WHY_EXPIRED,  /* older than the TTL */
    FERNET_WHY_FUTURE,   /* more than FERNET_MAX_CLOCK_SKEW s ahead (with a TTL) */
    FERNET_WHY_HMAC,     /* made with none of the keys, or altered */
    FERNET_WHY_PADDING,  /* authentic, but its plaintext padding is wrong */
    FERNET_WHY_INTERNAL, /* libcrypto failed (no entropy, out of memory) */
};

/* A short name for `why` ("hmac", "expired", ...), static. */
const char *fernet_why_str(enum fernet_why why);

/* Parse a key as Fernet(key) does: 43 characters of the URL-safe base64
 * alphabet, or of the standard one ('+' '/', which Python accepts too),
 * then one '='. Unlike Python, which skips them, whitespace and other bytes
 * are refused, and so is anything after the '='. Returns 0, or -1 (no key
 * stored). */
int fernet_key_parse(const char *text, size_t n, struct fernet_key *key)
    __attribute__((warn_unused_result));

/* Append a new random key, as text (FERNET_KEY_TEXT characters, URL-safe),
 * to out. Returns 0, or -1 (RAND_bytes failed; out unchanged). */
int fernet_key_generate(struct buf *out) __attribute__((warn_unused_result));

/* Parse a key (as fernet_key_parse) and append it to the ring. Returns 0,
 * or -1 (not a key; the ring is unchanged). */
int fernet_keyring_add(struct fernet_keyring *kr, const char *text, size_t n)
    __attribute__((warn_unused_result));
/* A list of keys as FERNET_KEYS holds them, "key1,key2,...", appended to
 * the ring in order (so the first encrypts). Returns 0, or -1 with the ring
 * emptied and the reason in err, which names a bad key by its position,
 * never by its text. */
int fernet_keyring_parse(struct fernet_keyring *kr, const char *list, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Wipe and free the keys; the ring is empty again afterwards. */
void fernet_keyring_free(struct fernet_keyring *kr);

/* Encrypt msg[0..n) (any bytes) under the ring's first key, stamped with the
 * current time (fernet_encrypt) or with `now`, seconds since the epoch
 * (fernet_encrypt_at, Python's encrypt_at_time), and append the token.
 * Returns 0, or -1 (empty ring, or libcrypto failed). */
int fernet_encrypt(const struct fernet_keyring *kr, const void *msg, size_t n, struct buf *out)
    __attribute__((warn_unused_result));
int fernet_encrypt_at(const struct fernet_keyring *kr, const void *msg, size_t n, uint64_t now,
                      struct buf *out) __attribute__((warn_unused_result));

/* Check token[0..n) against every key of the ring and append its message to
 * out. ttl > 0: refuse a token made more than ttl seconds before now, or more
 * than FERNET_MAX_CLOCK_SKEW seconds after it (Python's decrypt(token, ttl));
 * ttl == 0: no time checks. fernet_decrypt uses the current time,
 * fernet_decrypt_at `now` (decrypt_at_time). Returns 0, or -1 for an invalid
 * token (a negative ttl refuses every token as expired; an empty ring refuses
 * every token); *why (if why is not NULL) is set either way. */
int fernet_decrypt(const struct fernet_keyring *kr, const char *token, size_t n, int64_t ttl,
                   struct buf *out, enum fernet_why *why) __attribute__((warn_unused_result));
int fernet_decrypt_at(const struct fernet_keyring *kr, const char *token, size_t n, int64_t ttl,
                      uint64_t now, struct buf *out, enum fernet_why *why)
    __attribute__((warn_unused_result));

/* MultiFernet.rotate: decrypt token[0..n) with any key of the ring (no TTL),
 * re-encrypt its message under the first key with a fresh IV and the
 * token's own timestamp, and append the new token to out. Returns 0, or -1
 * (invalid token, or libcrypto failed: see *why). */
int fernet_rotate(const struct fernet_keyring *kr, const char *token, size_t n, struct buf *out,
                  enum fernet_why *why) __attribute__((warn_unused_result));

/* The timestamp of an authentic token (Python's extract_timestamp): checks
 * the HMAC against every key, decrypts nothing. Returns 0, or -1. */
int fernet_timestamp(const struct fernet_keyring *kr, const char *token, size_t n, uint64_t *ts,
                     enum fernet_why *why) __attribute__((warn_unused_result));

#endif
