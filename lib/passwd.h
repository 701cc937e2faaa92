#ifndef PASSWD_H
#define PASSWD_H

#include <stddef.h>

/* Password hashes for storage: yescrypt through libcrypt (libxcrypt), the
 * hash Debian itself uses for /etc/shadow. Slow and salted by design; the
 * string holds its own algorithm, cost and salt ("$y$j9T$..."), so older
 * hashes keep verifying after the default changes. */

#define PASSWD_HASH_MAX 128
/* libcrypt hashes passphrases of up to 511 bytes; longer ones it refuses. */
#define PASSWD_MAX_BYTES 511

/* Hash password (at most PASSWD_MAX_BYTES) with a fresh random salt into out
 * (PASSWD_HASH_MAX bytes). Returns 0, or -1 (too long, no entropy, or
 * libcrypt refused). */
int passwd_hash(const char *password, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* 1 if password matches hash, else 0 (also for a malformed hash). Compares
 * in constant time. */
int passwd_verify(const char *password, const char *hash);

#endif
