/* tokenctl: access tokens from the shell, signed and checked exactly as
 * the gateway does (lib/token.h), for operators and scripts: a token for a
 * cron job or a service account, or a look inside a token a client sent.
 *
 *   tokenctl issue --sub ID [--scope "a b"] [--ttl SECONDS]
 *       a token on stdout (TTL default 900, at most 86400)
 *   tokenctl verify
 *       reads a token on stdin; its claims as JSON on stdout
 *
 * Keys: TOKEN_KEYS ("kid:base64url,..."; the first signs), as for the
 * gateway. Exit: 0 done; 1 a refused token, no or bad keys (one line on
 * stderr, never a key); 2 usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "buf.h"
#include "celery.h"
#include "conf.h"
#include "token.h"

static int usage(void)
{
    fputs("usage: tokenctl issue --sub ID [--scope \"a b\"] [--ttl SECONDS]\n"
          "       tokenctl verify      (token on stdin)\n"
          "Keys from TOKEN_KEYS.\n",
          stderr);
    return 2;
}

static int load_keys(struct token_keys *ks)
{
    char *spec = NULL;
    char err[256];
    int got = conf_value("TOKEN_KEYS", &spec, err, sizeof(err));
    if (got <= 0) {
        if (got < 0)
            fprintf(stderr, "tokenctl: %s\n", err);
        else
            fputs("tokenctl: TOKEN_KEYS is not set (nor TOKEN_KEYS_FILE)\n", stderr);
        return -1;
    }
    int rc = token_keys_parse(ks, spec, err, sizeof(err));
    explicit_bzero(spec, strlen(spec));
    free(spec);
    if (rc != 0) {
        fprintf(stderr, "tokenctl: TOKEN_KEYS: %s\n", err);
        return -1;
    }
    return 0;
}

static int issue(int argc, char **argv)
{
    struct token_claims c = {0};
    long ttl = 900;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage();
        const char *v = argv[i + 1];
        if (strcmp(argv[i], "--sub") == 0 && strlen(v) < sizeof(c.sub) && *v != '\0') {
            snprintf(c.sub, sizeof(c.sub), "%s", v);
        } else if (strcmp(argv[i], "--scope") == 0 && strlen(v) < sizeof(c.scope)) {
            snprintf(c.scope, sizeof(c.scope), "%s", v);
        } else if (strcmp(argv[i], "--ttl") == 0) {
            char *end;
            errno = 0;
            ttl = strtol(v, &end, 10);
            if (errno != 0 || *end != '\0' || ttl < 1 || ttl > TOKEN_LIFETIME_MAX) {
                fputs("tokenctl: --ttl: 1 to 86400 seconds\n", stderr);
                return 2;
            }
        } else {
            return usage();
        }
    }
    if (c.sub[0] == '\0')
        return usage();
    struct token_keys ks;
    if (load_keys(&ks) != 0)
        return 1;
    long now = (long)time(NULL);
    c.iat = now;
    c.exp = now + ttl;
    cel_uuid(c.jti);
    struct buf t = {0};
    int rc = token_sign(&ks, &c, &t) == 0 ? 0 : 1;
    if (rc == 0)
        printf("%s\n", t.data);
    else
        fputs("tokenctl: signing failed\n", stderr);
    buf_free(&t);
    token_keys_clear(&ks);
    return rc;
}

static int verify(void)
{
    char line[TOKEN_MAX + 3];
    if (fgets(line, sizeof(line), stdin) == NULL) {
        fputs("tokenctl: no token on stdin\n", stderr);
        return 1;
    }
    line[strcspn(line, "\r\n")] = '\0';
    struct token_keys ks;
    if (load_keys(&ks) != 0)
        return 1;
    struct token_claims c;
    enum token_err why;
    int rc = token_verify(&ks, line, (long)time(NULL), &c, &why);
    token_keys_clear(&ks);
    if (rc != 0) {
        fprintf(stderr, "tokenctl: refused: %s\n", token_err_name(why));
        return 1;
    }
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I}", "sub", c.sub, "scope", c.scope, "jti", c.jti,
                          "iat", (json_int_t)c.iat, "exp", (json_int_t)c.exp);
    if (c.nbf != 0)
        json_object_set_new(j, "nbf", json_integer(c.nbf));
    if (c.gen != 0)
        json_object_set_new(j, "gen", json_integer(c.gen));
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", s);
    free(s);
    json_decref(j);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "issue") == 0)
        return issue(argc, argv);
    if (argc == 2 && strcmp(argv[1], "verify") == 0)
        return verify();
    return usage();
}
