/* fernet: Fernet tokens from the shell, interchangeable with Python's
 * cryptography.fernet.
 *
 *   fernet genkey                      print a new key
 *   fernet encrypt   [--key K]...      stdin (any bytes) -> token on stdout
 *   fernet decrypt   [--key K]... [--ttl S]   token on stdin -> message on stdout
 *   fernet rotate    [--key K]...      token on stdin -> the same message,
 *                                      under the first key, same timestamp
 *
 * Keys: each --key K in order, else FERNET_KEYS (comma-separated); the
 * first encrypts, all decrypt (MultiFernet). Tokens are written with a
 * newline after them; decrypt and rotate accept one ("\n" or "\r\n") after
 * the token they read. --ttl S refuses tokens older than S seconds (or more
 * than 60 s in the future); without it, time is not checked. Messages are
 * written exactly, no newline added.
 *
 * Exit: 0 done; 1 invalid token, a bad key, no key, or an I/O error (one
 * line on stderr, which never holds a key or a message); 2 usage.
 * LOG_LEVEL=DEBUG also logs which check refused a token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "fernet.h"
#include "log.h"

/* About 146 years: any longer TTL is no TTL in practice. */
#define TTL_MAX (1L << 32)

static int usage(void)
{
    fputs("usage: fernet genkey\n"
          "       fernet encrypt [--key K]...\n"
          "       fernet decrypt [--key K]... [--ttl SECONDS]\n"
          "       fernet rotate [--key K]...\n"
          "Keys: --key (repeatable) or FERNET_KEYS=k1,k2,... ; the first encrypts.\n"
          "encrypt reads stdin; decrypt and rotate read a token from stdin.\n",
          stderr);
    return 2;
}

/* All of stdin into b. Returns 0, or -1 (errno set). */
static int read_all(FILE *f, struct buf *b)
{
    for (;;) {
        buf_reserve(b, 65536);
        size_t got = fread(b->data + b->len, 1, b->cap - b->len - 1, f);
        b->len += got;
        b->data[b->len] = '\0';
        if (got == 0)
            return ferror(f) ? -1 : 0;
    }
}

static int write_all(const void *p, size_t n)
{
    if (n > 0 && fwrite(p, 1, n, stdout) != n)
        return -1;
    return fflush(stdout) == 0 ? 0 : -1;
}

/* Wipe what b held (a message or a key) and free it. */
static void buf_wipe(struct buf *b)
{
    if (b->data != NULL)
        explicit_bzero(b->data, b->cap);
    buf_free(b);
}

static int cmd_genkey(void)
{
    struct buf k = {0};
    if (fernet_key_generate(&k) != 0) {
        fputs("fernet: no randomness for a key\n", stderr);
        return 1;
    }
    buf_putc(&k, '\n');
    int rc = write_all(k.data, k.len);
    buf_wipe(&k);
    if (rc != 0) {
        fprintf(stderr, "fernet: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* encrypt, decrypt, rotate: stdin in, one result out. */
static int cmd_token(const char *cmd, const struct fernet_keyring *kr, long ttl)
{
    struct buf in = {0}, out = {0};
    if (read_all(stdin, &in) != 0) {
        fprintf(stderr, "fernet: reading stdin: %s\n", strerror(errno));
        buf_wipe(&in);
        return 1;
    }
    enum fernet_why why = FERNET_OK;
    int rc;
    if (strcmp(cmd, "encrypt") == 0) {
        rc = fernet_encrypt(kr, in.data ? in.data : "", in.len, &out);
        if (rc != 0)
            why = FERNET_WHY_INTERNAL;
        else
            buf_putc(&out, '\n');
    } else {
        /* the token as a line: one newline after it is not part of it */
        size_t n = in.len;
        if (n > 0 && in.data[n - 1] == '\n')
            n--;
        if (n > 0 && in.data[n - 1] == '\r' && n < in.len)
            n--;
        if (strcmp(cmd, "decrypt") == 0) {
            rc = fernet_decrypt(kr, in.data, n, ttl, &out, &why);
        } else {
            rc = fernet_rotate(kr, in.data, n, &out, &why);
            if (rc == 0)
                buf_putc(&out, '\n');
        }
    }
    if (rc != 0) {
        if (why == FERNET_WHY_INTERNAL) {
            fputs("fernet: libcrypto failed\n", stderr);
        } else {
            log_debug("token refused: %s", fernet_why_str(why));
            fputs("fernet: invalid token\n", stderr);
        }
    } else if (write_all(out.data, out.len) != 0) {
        fprintf(stderr, "fernet: write error: %s\n", strerror(errno));
        rc = -1;
    }
    buf_wipe(&in);
    buf_wipe(&out);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    enum log_level level = LOG_LVL_WARNING;
    const char *lv = getenv("LOG_LEVEL");
    if (lv != NULL && lv[0] != '\0' && log_level_parse(lv, &level) != 0)
        level = LOG_LVL_WARNING;
    log_init("fernet", level);

    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    int is_genkey = strcmp(cmd, "genkey") == 0;
    int is_decrypt = strcmp(cmd, "decrypt") == 0;
    if (!is_genkey && !is_decrypt && strcmp(cmd, "encrypt") != 0 && strcmp(cmd, "rotate") != 0)
        return usage();

    struct fernet_keyring kr = {0};
    long ttl = 0;
    size_t nkey = 0;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *a = argv[i], *val = NULL;
        int is_key = 0;
        if (strcmp(a, "--key") == 0 || strcmp(a, "--ttl") == 0) {
            if (i + 1 >= argc) {
                rc = usage();
                break;
            }
            is_key = a[2] == 'k';
            val = argv[++i];
        } else if (strncmp(a, "--key=", 6) == 0 || strncmp(a, "--ttl=", 6) == 0) {
            is_key = a[2] == 'k';
            val = a + 6;
        } else {
            rc = usage();
            break;
        }
        if (is_genkey || (!is_key && !is_decrypt)) {
            rc = usage();
        } else if (is_key) {
            nkey++;
            if (fernet_keyring_add(&kr, val, strlen(val)) != 0) {
                fprintf(stderr,
                        "fernet: --key %zu is not a Fernet key (32 url-safe base64-encoded "
                        "bytes)\n",
                        nkey);
                rc = 1;
            }
        } else if (conf_parse_long(val, 1, TTL_MAX, &ttl) != 0) {
            fprintf(stderr, "fernet: --ttl: expected seconds in 1..%ld\n", TTL_MAX);
            rc = 2;
        }
    }
    if (rc == 0 && is_genkey) {
        rc = cmd_genkey();
    } else if (rc == 0) {
        char *env = NULL;
        char err[256];
        int got = kr.n == 0 ? conf_value("FERNET_KEYS", &env, err, sizeof(err)) : 0;
        if (got < 0) {
            fprintf(stderr, "fernet: %s\n", err);
            rc = 1;
        } else if (got > 0 && fernet_keyring_parse(&kr, env, err, sizeof(err)) != 0) {
            fprintf(stderr, "fernet: FERNET_KEYS: %s\n", err);
            rc = 1;
        } else if (kr.n == 0) {
            fputs("fernet: no key: set FERNET_KEYS or pass --key\n", stderr);
            rc = 1;
        } else {
            rc = cmd_token(cmd, &kr, ttl);
        }
        if (env != NULL)
            explicit_bzero(env, strlen(env));
        free(env);
    }
    fernet_keyring_free(&kr);
    return rc;
}
