#ifndef MIGNAME_H
#define MIGNAME_H

#include <stddef.h>

/* The names of migration files in sql/: NNN_name.sql, NNN the version (3 to
 * 9 digits), name of [A-Za-z0-9_]+. Shared by bin/migrate, which applies
 * them, and /api/ready, which checks that they all are. */

/* 0 with *version, and the name part as file[*name_off .. +*name_len), or
 * -1 if file is not a migration's name. */
int migname_parse(const char *file, long *version, size_t *name_off, size_t *name_len);

/* sql/ beside the bin/ (or cgi-bin/) holding this program: where a checkout
 * or an install keeps its migrations. New string, caller frees. */
char *migname_default_dir(void);

#endif
