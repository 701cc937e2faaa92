/* lib/migname.c: which files in sql/ are migrations, and their versions. */
#include "../../lib/migname.c"

#include "check.h"

int main(void)
{
    long v = -1;
    size_t off = 0, len = 0;
    check(migname_parse("001_users.sql", &v, &off, &len) == 0, "a migration");
    check_int(v, 1);
    check_int(off, 4);
    check_int(len, 5);
    check(migname_parse("123456789_x_Y_9.sql", &v, &off, &len) == 0, "nine digits");
    check_int(v, 123456789);
    static const char *const not_ones[] = {
        "01_short.sql", "1234567890_long.sql", "001users.sql", "001_.sql", "001_a-b.sql",
        "001_users.SQL", "001_users.sql~", "notes.sql", "001_users", "", "_001_x.sql",
        "001_a b.sql",
    };
    for (size_t i = 0; i < sizeof(not_ones) / sizeof(not_ones[0]); i++)
        if (!check(migname_parse(not_ones[i], &v, &off, &len) == -1, "not a migration"))
            fprintf(stderr, "  accepted \"%s\"\n", not_ones[i]);
    return check_done();
}
