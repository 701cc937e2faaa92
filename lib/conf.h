#ifndef CONF_H
#define CONF_H

#include <stddef.h>

/* Settings come from the environment (lighttpd passes its own environment and
 * "bin-environment" to the programs it spawns), declared in one table per
 * program and read once at start, before the first request. A bad value is a
 * start-up error, never a surprise at request time.
 *
 * Every setting NAME may instead be given as a file: when NAME is unset or
 * empty and NAME_FILE names a file, the value is that file's contents (its
 * trailing newlines off), as Docker secrets and systemd credentials hand
 * them over. So a secret (REDIS_URL with its password, DATABASE_URL,
 * TOKEN_KEYS, FERNET_KEYS) travels as a path, and only the program that
 * reads the file ever holds the value. Reasons never quote a file's bytes. */

enum conf_type {
    CONF_STR,  /* ptr: char **, a copy that lives as long as the process */
    CONF_INT,  /* ptr: long *, decimal, within [min, max] */
    CONF_ENUM, /* ptr: int *, index into choices (matched case-insensitively) */
};

struct conf_entry {
    const char *name;           /* environment variable */
    enum conf_type type;
    const char *def;            /* default as text; NULL means required */
    void *ptr;                  /* where the parsed value goes, see conf_type */
    long min, max;              /* CONF_INT bounds, inclusive */
    const char *const *choices; /* CONF_ENUM: NULL-terminated list */
    /* CONF_STR: optional check of the value's form; 0, or -1 with the
     * reason in err (reported as "NAME: reason") */
    int (*check)(const char *value, char *err, size_t errlen);
};

/* The value of setting `name`: the environment variable when set and not
 * empty, else the contents of the file NAME_FILE names (when set and not
 * empty), trailing CR/LF off. Returns 1 with *out a new string (caller frees
 * with free), 0 when neither is set (*out NULL), or -1 with a one-line
 * reason in err ("TOKEN_KEYS_FILE: cannot read '/path': No such file or
 * directory"; also for an empty file, one over 64 KiB, or one holding a NUL
 * or a line break inside the value). */
int conf_value(const char *name, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Read every entry of `tab` from the environment (conf_value), or its default.
 * Returns 0, or -1 with a one-line reason naming the variable in err
 * (e.g. "MAX_BODY_BYTES: expected an integer in 0..1073741824, got 'abc'").
 * Stops at the first bad entry. */
int conf_load(const struct conf_entry *tab, size_t n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parse a whole decimal string into a long within [min, max]: no sign
 * surprises, no trailing junk, no overflow. Returns 0 or -1. */
int conf_parse_long(const char *s, long min, long max, long *out)
    __attribute__((warn_unused_result));

#endif
