/* lib/conf.c: settings from the environment through one table. A value is
 * taken whole or refused with a one-line reason that names the variable;
 * an unset or empty variable takes the default, and without one is an error. */
#include "../../lib/conf.c"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

/* Variable names no real environment uses, so the test owns them. */
#define V_STR "UNIT_CONF_STR"
#define V_INT "UNIT_CONF_INT"
#define V_ENUM "UNIT_CONF_ENUM"

static const char *const colours[] = {"red", "green", "blue", NULL};

static void test_parse_long(void)
{
    long v = -7;
    check_int(conf_parse_long("0", 0, 10, &v), 0);
    check_int(v, 0);
    check_int(conf_parse_long("10", 0, 10, &v), 0);
    check_int(v, 10);
    check_int(conf_parse_long("007", 0, 10, &v), 0);
    check_int(v, 7);
    check_int(conf_parse_long("-3", -5, 5, &v), 0);
    check_int(v, -3);
    check_int(conf_parse_long("9223372036854775807", 0, LONG_MAX, &v), 0);
    check_int(v, LONG_MAX);
    check_int(conf_parse_long("-9223372036854775808", LONG_MIN, 0, &v), 0);
    check_int(v, LONG_MIN);

    /* refused, and *out left alone */
    static const char *const bad[] = {
        "",
        " 5",
        "5 ",
        "+5",
        "-",
        "--5",
        "-0", /* a length of "-0" is not digits */
        "-05",
        "- 5",
        "abc",
        "12x",
        "1e3",
        "0x10",
        "1.0",
        "\t5",
        "5\n",
        "1,000",
        "99999999999999999999",
        "-99999999999999999999",
        "9223372036854775808",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 1234;
        int rc = conf_parse_long(bad[i], LONG_MIN, LONG_MAX, &v);
        if (!check_int(rc, -1) || !check_int(v, 1234))
            fprintf(stderr, "  input: \"%s\"\n", bad[i]);
    }
    v = 1234;
    check_int(conf_parse_long(NULL, 0, 10, &v), -1);
    check_int(v, 1234);

    /* bounds are inclusive */
    check_int(conf_parse_long("11", 0, 10, &v), -1);
    check_int(conf_parse_long("-1", 0, 10, &v), -1);
    check_int(conf_parse_long("-6", -5, 5, &v), -1);
    check_int(v, 1234);
}

static void test_str(void)
{
    char *s = NULL;
    const struct conf_entry tab[] = {{V_STR, CONF_STR, "dflt", &s, 0, 0, NULL, NULL}};
    char err[128] = "";

    unsetenv(V_STR);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "dflt");
    free(s);
    s = NULL;

    setenv(V_STR, "from env", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "from env");
    free(s);
    s = NULL;

    /* an empty variable counts as unset */
    setenv(V_STR, "", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "dflt");
    free(s);
    s = NULL;

    /* the value is a copy: later changes to the environment do not show */
    setenv(V_STR, "first", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    setenv(V_STR, "second", 1);
    check_str(s, "first");
    free(s);
    s = NULL;
    unsetenv(V_STR);
}

/* a CONF_STR check: the value's form, reported with the variable's name */
static int starts_with_x(const char *value, char *err, size_t errlen)
{
    if (value[0] == 'x')
        return 0;
    snprintf(err, errlen, "expected x..., got '%s'", value);
    return -1;
}

static void test_str_check(void)
{
    char *s = NULL;
    const struct conf_entry tab[] = {{V_STR, CONF_STR, "xyz", &s, 0, 0, NULL, starts_with_x}};
    char err[128] = "";

    unsetenv(V_STR);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "xyz");
    free(s);
    s = NULL;

    setenv(V_STR, "abc", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_str(err, V_STR ": expected x..., got 'abc'");
    check(s == NULL, "a refused value is not stored");
    unsetenv(V_STR);
}

static void test_required(void)
{
    char *s = NULL;
    long n = 0;
    const struct conf_entry tab[] = {
        {V_STR, CONF_STR, NULL, &s, 0, 0, NULL, NULL},
        {V_INT, CONF_INT, NULL, &n, 0, 10, NULL, NULL},
    };
    char err[128] = "";

    unsetenv(V_STR);
    unsetenv(V_INT);
    check_int(conf_load(tab, 2, err, sizeof(err)), -1);
    check_str(err, V_STR " is required");
    check(s == NULL, "nothing stored for a missing setting");

    setenv(V_STR, "", 1);
    check_int(conf_load(tab, 2, err, sizeof(err)), -1);
    check_str(err, V_STR " is required");

    /* the first entry loads, the second is missing: stops there */
    setenv(V_STR, "x", 1);
    err[0] = '\0';
    check_int(conf_load(tab, 2, err, sizeof(err)), -1);
    check_str(err, V_INT " is required");
    check_str(s, "x");
    free(s);
    s = NULL;

    setenv(V_INT, "3", 1);
    check_int(conf_load(tab, 2, err, sizeof(err)), 0);
    check_int(n, 3);
    check_str(s, "x");
    free(s);
    unsetenv(V_STR);
    unsetenv(V_INT);
}

static void test_int(void)
{
    long n = -1;
    const struct conf_entry tab[] = {{V_INT, CONF_INT, "42", &n, 1, 100, NULL, NULL}};
    char err[160] = "";

    unsetenv(V_INT);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(n, 42);

    setenv(V_INT, "1", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(n, 1);
    setenv(V_INT, "100", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(n, 100);

    setenv(V_INT, "abc", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_str(err, V_INT ": expected an integer in 1..100, got 'abc'");

    static const char *const bad[] = {"0",  "101", "abc", "12x", " 5",
                                      "+5", "-5",  "5 ",  "1e3", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = -1;
        err[0] = '\0';
        setenv(V_INT, bad[i], 1);
        int rc = conf_load(tab, 1, err, sizeof(err));
        int ok = check_int(rc, -1);
        ok &= check(strncmp(err, V_INT ": ", strlen(V_INT) + 2) == 0,
                    "the reason starts with the variable's name");
        ok &= check(strstr(err, bad[i]) != NULL, "the reason quotes the bad value");
        ok &= check_int(n, -1);
        if (!ok)
            fprintf(stderr, "  input: \"%s\", err: \"%s\"\n", bad[i], err);
    }

    /* "" is never a number; as a setting it means "use the default" */
    check_int(conf_parse_long("", 1, 100, &n), -1);
    setenv(V_INT, "", 1);
    n = -1;
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(n, 42);

    /* a bad default is as bad as a bad value */
    unsetenv(V_INT);
    const struct conf_entry bad_def[] = {{V_INT, CONF_INT, "x", &n, 0, 9, NULL, NULL}};
    check_int(conf_load(bad_def, 1, err, sizeof(err)), -1);
    check_str(err, V_INT ": expected an integer in 0..9, got 'x'");

    /* the quoted value is cut at 64 bytes so the line stays short */
    char longval[200];
    memset(longval, '7', sizeof(longval) - 1);
    longval[sizeof(longval) - 1] = '\0';
    setenv(V_INT, longval, 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_int(strlen(err), strlen(V_INT ": expected an integer in 1..100, got ''") + 64);
    unsetenv(V_INT);
}

static void test_enum(void)
{
    int idx = -1;
    const struct conf_entry tab[] = {{V_ENUM, CONF_ENUM, "green", &idx, 0, 0, colours, NULL}};
    char err[160] = "";

    unsetenv(V_ENUM);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(idx, 1);

    setenv(V_ENUM, "red", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(idx, 0);

    setenv(V_ENUM, "BLUE", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(idx, 2);

    setenv(V_ENUM, "gReEn", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_int(idx, 1);

    idx = -1;
    setenv(V_ENUM, "purple", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_str(err, V_ENUM ": expected one of red, green, blue, got 'purple'");
    check_int(idx, -1);

    /* whole words only */
    setenv(V_ENUM, "re", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    setenv(V_ENUM, "red ", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_str(err, V_ENUM ": expected one of red, green, blue, got 'red '");
    unsetenv(V_ENUM);
}

static void test_err_truncated(void)
{
    /* errlen bounds the reason; it stays a C string */
    int idx = 0;
    const struct conf_entry tab[] = {{V_ENUM, CONF_ENUM, "nope", &idx, 0, 0, colours, NULL}};
    char err[12];
    memset(err, 'X', sizeof(err));
    unsetenv(V_ENUM);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_str(err, "UNIT_CONF_E");
}

static void test_table_order(void)
{
    /* every entry is read, in order, into its own place */
    char *s = NULL;
    long n = 0;
    int idx = 0;
    const struct conf_entry tab[] = {
        {V_STR, CONF_STR, "a", &s, 0, 0, NULL, NULL},
        {V_INT, CONF_INT, "0", &n, -10, 10, NULL, NULL},
        {V_ENUM, CONF_ENUM, "red", &idx, 0, 0, colours, NULL},
    };
    char err[128] = "";
    setenv(V_STR, "s", 1);
    setenv(V_INT, "-10", 1);
    setenv(V_ENUM, "Blue", 1);
    check_int(conf_load(tab, 3, err, sizeof(err)), 0);
    check_str(s, "s");
    check_int(n, -10);
    check_int(idx, 2);
    free(s);
    unsetenv(V_STR);
    unsetenv(V_INT);
    unsetenv(V_ENUM);

    /* an empty table is fine */
    check_int(conf_load(tab, 0, err, sizeof(err)), 0);
}

/* NAME_FILE: the value read from a file when NAME is unset or empty */
static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!check(f != NULL, "the temp file opens"))
        return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_file(void)
{
    char dir[] = "/tmp/test_conf.XXXXXX";
    if (!check(mkdtemp(dir) != NULL, "a temp dir"))
        return;
    char path[256], err[256];
    snprintf(path, sizeof(path), "%s/secret", dir);
    char *s = NULL;
    const struct conf_entry tab[] = {
        {V_STR, CONF_STR, NULL, &s, 0, 0, NULL, NULL},
        {V_INT, CONF_INT, "1", &(long){0}, 0, 100, NULL, NULL},
    };
    unsetenv(V_STR);
    setenv(V_STR "_FILE", path, 1);

    /* the file's one line, its newline (and a CR) off */
    write_file(path, "s3cret-Value\r\n\n", 15);
    char *v = NULL;
    check_int(conf_value(V_STR, &v, err, sizeof(err)), 1);
    check_str(v, "s3cret-Value");
    free(v);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "s3cret-Value");
    free(s);
    s = NULL;

    /* NAME itself wins; an empty NAME does not */
    setenv(V_STR, "from env", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "from env");
    free(s);
    s = NULL;
    setenv(V_STR, "", 1);
    check_int(conf_load(tab, 1, err, sizeof(err)), 0);
    check_str(s, "s3cret-Value");
    free(s);
    s = NULL;
    unsetenv(V_STR);

    /* any type: an integer from a file */
    char ipath[256];
    snprintf(ipath, sizeof(ipath), "%s/int", dir);
    write_file(ipath, "42\n", 3);
    long n = 0;
    const struct conf_entry itab[] = {{V_INT, CONF_INT, "1", &n, 0, 100, NULL, NULL}};
    setenv(V_INT "_FILE", ipath, 1);
    check_int(conf_load(itab, 1, err, sizeof(err)), 0);
    check_int(n, 42);
    unsetenv(V_INT "_FILE");

    /* refused, with the path and never the contents */
    static const struct {
        const char *data;
        size_t n;
        const char *why;
    } bad[] = {
        {"", 0, "is empty"},
        {"\n\r\n", 3, "is empty"},
        {"SECRETX\nSECRETY", 15, "holds more than one line"},
        {"SECRETX\0b", 9, "holds more than one line"},
        {"SECRETX\rb", 9, "holds more than one line"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, bad[i].data, bad[i].n);
        check_int(conf_load(tab, 1, err, sizeof(err)), -1);
        check(strstr(err, V_STR "_FILE: '") == err, "the reason names the variable");
        check(strstr(err, path) != NULL, "the reason names the file");
        check(strstr(err, bad[i].why) != NULL, "the reason says what is wrong");
        check(strstr(err, "SECRET") == NULL, "no contents in the reason");
    }
    /* too big */
    static char big[65537];
    memset(big, 'k', sizeof(big));
    write_file(path, big, sizeof(big));
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check(strstr(err, "is over 65536 bytes") != NULL, "a file over 64 KiB is refused");
    /* missing: the reason and errno's text */
    unlink(path);
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check(strstr(err, "cannot read '") != NULL && strstr(err, "No such file") != NULL,
          "a missing file is refused with the reason");
    /* a required setting with neither is "required"; NAME_FILE empty is unset */
    setenv(V_STR "_FILE", "", 1);
    char *none = (char *)"x";
    check_int(conf_value(V_STR, &none, err, sizeof(err)), 0);
    check(none == NULL, "no value");
    check_int(conf_load(tab, 1, err, sizeof(err)), -1);
    check_str(err, V_STR " is required");
    unsetenv(V_STR "_FILE");
    rmdir(dir);
}

int main(void)
{
    test_parse_long();
    test_str();
    test_str_check();
    test_required();
    test_int();
    test_enum();
    test_err_truncated();
    test_table_order();
    test_file();
    return check_done();
}
