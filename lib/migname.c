#include "migname.h"

#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "mem.h"

int migname_parse(const char *f, long *version, size_t *name_off, size_t *name_len)
{
    size_t digits = strspn(f, "0123456789");
    size_t len = strlen(f);
    if (digits < 3 || digits > 9 || f[digits] != '_' || len < digits + 6 ||
        strcmp(f + len - 4, ".sql") != 0)
        return -1;
    size_t nlen = len - digits - 5;
    if (strspn(f + digits + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") <
        nlen)
        return -1;
    long v = 0;
    for (size_t i = 0; i < digits; i++)
        v = v * 10 + (f[i] - '0');
    *version = v;
    *name_off = digits + 1;
    *name_len = nlen;
    return 0;
}

char *migname_default_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return xstrdup("sql");
    exe[n] = '\0';
    struct buf b = {0};
    buf_printf(&b, "%s/sql", dirname(dirname(exe)));
    return b.data;
}
