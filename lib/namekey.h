#ifndef NAMEKEY_H
#define NAMEKEY_H

#include "buf.h"

/* What makes two user names the same, or too alike, with ICU (Unicode's
 * own tables, not ours):
 *
 *   key       NFKC_Casefold(name) (UAX #15 + UTS #46's NFKC_CF): compatibility
 *             forms folded ("ａdmin" -> "admin"), case folded ("ADMIN",
 *             "Straße" -> "strasse"), default-ignorable code points dropped.
 *             Two names with one key are one name: unique in the users
 *             table, and what a login looks up.
 *   skeleton  the TR39 confusable skeleton of the key ("admіn" with a
 *             Cyrillic і, "adrnin" and "admin" share one). Unique too: a
 *             name that looks like a registered one is refused.
 *
 * Both depend on the Unicode data of the ICU the program runs with (Debian
 * 12: ICU 72, Unicode 15). Input is NUL-terminated UTF-8; anything else is
 * refused (-1), never guessed at. Not thread-safe (one spoof checker per
 * process, made on first use and kept). */

/* Append NFKC_Casefold(name) to key. 0, or -1 (invalid UTF-8, ICU failed). */
int namekey_fold(const char *name, struct buf *key) __attribute__((warn_unused_result));

/* Append the key and the skeleton of name. 0, or -1 as namekey_fold. */
int namekey_make(const char *name, struct buf *key, struct buf *skeleton)
    __attribute__((warn_unused_result));

/* 1 if name holds a default-ignorable code point (soft hyphen, zero-width
 * characters, bidi controls, variation selectors, ...) or is not valid
 * UTF-8, else 0. Such characters vanish from the key: a new name must not
 * hold them, or "ad<soft hyphen>min" would be shown as one name and be
 * another's. */
int namekey_has_ignorable(const char *name);

#endif
