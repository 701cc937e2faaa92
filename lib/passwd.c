#include "passwd.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

int passwd_hash(const char *password, char *out, size_t outlen)
{
    if (strlen(password) > PASSWD_MAX_BYTES)
        return -1;
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    /* "$y$", cost 0 (libcrypt's default), random bytes from the kernel */
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL)
        return -1;
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    const char *h = crypt_r(password, salt, cd);
    int rc = -1;
    if (h != NULL && h[0] == '$' && strlen(h) < outlen) {
        memcpy(out, h, strlen(h) + 1);
        rc = 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return rc;
}

int passwd_verify(const char *password, const char *hash)
{
    if (hash == NULL || hash[0] != '$')
        return 0;
    struct crypt_data *cd = xcalloc(1, sizeof(*cd));
    const char *h = crypt_r(password, hash, cd);
    int ok = 0;
    size_t n = strlen(hash);
    if (h != NULL && h[0] == '$' && strlen(h) == n) {
        unsigned char diff = 0;
        for (size_t i = 0; i < n; i++)
            diff |= (unsigned char)(h[i] ^ hash[i]);
        ok = diff == 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ok;
}
