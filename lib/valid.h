#ifndef VALID_H
#define VALID_H

#include <stddef.h>

/* Checks of user-supplied text fields, worded as pydantic words its
 * validation errors (msg and type of a FastAPI 422), so clients written for
 * the Python stack read ours the same way. Input is valid UTF-8 (jansson
 * guarantees it for JSON strings); lengths count characters (code points),
 * as Python's len() does. */

struct valid_err {
    const char *type; /* "string_too_short", "value_error", ... */
    char msg[160];
};

/* Number of code points in UTF-8 s. */
size_t valid_chars(const char *s);

/* min..max characters and no control characters (C0, DEL, C1). */
int valid_text(const char *s, size_t min, size_t max, struct valid_err *e);

/* A user name: 3..64 characters, no control characters, no whitespace or
 * invisible characters (Unicode spaces, zero-width), no '@', '/' or ':'
 * (it must never read as an email address, a path or a Basic credential). */
int valid_username(const char *s, struct valid_err *e);

/* An email address, as email-validator accepts for delivery: one '@'; a
 * local part of 1..64 bytes without spaces, controls or the specials
 * "(),:;<>[\]; a domain of two or more dot-separated labels, each 1..63
 * bytes of letters, digits and hyphens (or UTF-8 beyond ASCII: IDNs), not
 * starting or ending with a hyphen, the last one not all digits; 254 bytes
 * in all. */
int valid_email(const char *s, struct valid_err *e);

/* A phone number in E.164: '+', then 7..15 digits, the first not 0. */
int valid_phone(const char *s, struct valid_err *e);

#endif
