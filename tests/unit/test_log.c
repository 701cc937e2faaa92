/* lib/log.c: one line per event on stderr,
 *
 *   YYYY-MM-DD HH:MM:SS,mmm - name - LEVEL - message\n
 *
 * (local time, Python logging's default format), control characters written
 * as \xNN, messages over 4095 bytes cut and marked "...". The tests point
 * stderr at a temporary file and read back what was written. */
#include "../../lib/log.c"

#include <stdlib.h>
#include <time.h>

#include "buf.h"
#include "check.h"

/* While capturing, stderr is the temp file: no check() between begin and end,
 * or its failure message lands in the capture instead of on the terminal. */
static FILE *cap_file;
static int cap_saved_fd = -1;

static void capture_begin(void)
{
    fflush(stderr);
    cap_file = tmpfile();
    cap_saved_fd = dup(STDERR_FILENO);
    if (cap_file == NULL || cap_saved_fd < 0 || dup2(fileno(cap_file), STDERR_FILENO) < 0) {
        perror("test_log: capturing stderr");
        exit(2);
    }
}

/* Restores stderr; out receives everything written meanwhile. */
static void capture_end(struct buf *out)
{
    fflush(stderr);
    dup2(cap_saved_fd, STDERR_FILENO);
    close(cap_saved_fd);
    cap_saved_fd = -1;
    buf_init(out);
    buf_reserve(out, 0);
    out->data[0] = '\0';
    rewind(cap_file);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), cap_file)) > 0)
        buf_append(out, chunk, n);
    fclose(cap_file);
    cap_file = NULL;
}

#define TS_LEN 23 /* "2026-11-27 13:25:20,123" */

/* 1 if line starts with "YYYY-MM-DD HH:MM:SS,mmm" within a few seconds of
 * the local time now. */
static int timestamp_ok(const char *line)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd,ddd";
    for (size_t i = 0; i < TS_LEN; i++) {
        if (shape[i] == 'd' ? line[i] < '0' || line[i] > '9' : line[i] != shape[i])
            return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(line, "%Y-%m-%d %H:%M:%S", &tm);
    if (end == NULL || *end != ',')
        return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    time_t now = time(NULL);
    return t != (time_t)-1 && t <= now && now - t <= 5;
}

/* Checks that got is exactly one line: a timestamp, then `rest`. */
#define check_line(got, rest)                                                                      \
    do {                                                                                           \
        check((got)->len > TS_LEN && timestamp_ok((got)->data),                                    \
              "line starts with a current local timestamp");                                       \
        if ((got)->len > TS_LEN)                                                                   \
            check_str((got)->data + TS_LEN, rest);                                                 \
    } while (0)

static void test_defaults_before_init(void)
{
    /* before log_init: name "-", level INFO */
    check_int(log_enabled(LOG_LVL_DEBUG), 0);
    check_int(log_enabled(LOG_LVL_INFO), 1);

    struct buf got;
    capture_begin();
    log_info("starting");
    log_debug("not shown");
    capture_end(&got);
    check_line(&got, " - - - INFO - starting\n");
    buf_free(&got);
}

static void test_level_parse(void)
{
    static const struct {
        const char *s;
        enum log_level want;
    } good[] = {
        {"DEBUG", LOG_LVL_DEBUG},  {"debug", LOG_LVL_DEBUG},     {"INFO", LOG_LVL_INFO},
        {"Info", LOG_LVL_INFO},    {"WARNING", LOG_LVL_WARNING}, {"warning", LOG_LVL_WARNING},
        {"WARN", LOG_LVL_WARNING}, {"warn", LOG_LVL_WARNING},    {"ERROR", LOG_LVL_ERROR},
        {"eRRoR", LOG_LVL_ERROR},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        enum log_level lv = (enum log_level)0;
        if (!check_int(log_level_parse(good[i].s, &lv), 0) || !check_int(lv, good[i].want))
            fprintf(stderr, "  input: \"%s\"\n", good[i].s);
    }

    static const char *const bad[] = {"",         "INF",   "INFO ", " INFO", "WARNINGS",
                                      "CRITICAL", "FATAL", "TRACE", "10",    "ERR"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum log_level lv = (enum log_level)7;
        if (!check_int(log_level_parse(bad[i], &lv), -1) || !check_int(lv, 7))
            fprintf(stderr, "  input: \"%s\"\n", bad[i]);
    }
}

static void test_enabled_thresholds(void)
{
    static const enum log_level levels[] = {LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARNING,
                                            LOG_LVL_ERROR};
    for (size_t t = 0; t < 4; t++) {
        log_init("unit", levels[t]);
        for (size_t l = 0; l < 4; l++) {
            if (!check_int(log_enabled(levels[l]), l >= t))
                fprintf(stderr, "  threshold %d, level %d\n", levels[t], levels[l]);
        }
    }
}

static void test_format(void)
{
    struct buf got;
    log_init("unit", LOG_LVL_DEBUG);

    capture_begin();
    log_info("GET %s %d", "/api/hello/world", 200);
    capture_end(&got);
    check_line(&got, " - unit - INFO - GET /api/hello/world 200\n");
    buf_free(&got);

    /* every level's name */
    capture_begin();
    log_debug("d");
    capture_end(&got);
    check_line(&got, " - unit - DEBUG - d\n");
    buf_free(&got);

    capture_begin();
    log_warn("w");
    capture_end(&got);
    check_line(&got, " - unit - WARNING - w\n");
    buf_free(&got);

    capture_begin();
    log_err("e");
    capture_end(&got);
    check_line(&got, " - unit - ERROR - e\n");
    buf_free(&got);

    /* a message is data, not a format */
    capture_begin();
    log_info("%s", "100% %s %n");
    capture_end(&got);
    check_line(&got, " - unit - INFO - 100% %s %n\n");
    buf_free(&got);

    /* an empty message is still a line */
    capture_begin();
    log_info("%s", "");
    capture_end(&got);
    check_line(&got, " - unit - INFO - \n");
    buf_free(&got);

    /* one call, one line: two calls, two lines */
    capture_begin();
    log_info("one");
    log_info("two");
    capture_end(&got);
    const char *nl = memchr(got.data, '\n', got.len);
    check(nl != NULL && (size_t)(nl - got.data) == TS_LEN + strlen(" - unit - INFO - one"),
          "first line ends after its message");
    if (nl != NULL)
        check_str(nl + 1 + TS_LEN, " - unit - INFO - two\n");
    buf_free(&got);
}

static void test_escapes(void)
{
    struct buf got;
    log_init("unit", LOG_LVL_INFO);

    capture_begin();
    log_info("a\nb");
    capture_end(&got);
    check_line(&got, " - unit - INFO - a\\x0ab\n");
    buf_free(&got);

    /* a request cannot forge a second line, with or without \r */
    capture_begin();
    log_info("GET /x\r\n2026-01-01 00:00:00,000 - unit - ERROR - forged");
    capture_end(&got);
    check_line(&got, " - unit - INFO - GET /x\\x0d\\x0a2026-01-01 00:00:00,000 - unit - ERROR - "
                     "forged\n");
    buf_free(&got);

    /* every C0 control, DEL; not space, not UTF-8 */
    capture_begin();
    log_info("%s", "\x01\t\x1b[31m\x1f \x7f~J\xc3\xb6rg");
    capture_end(&got);
    check_line(&got, " - unit - INFO - \\x01\\x09\\x1b[31m\\x1f \\x7f~J\xc3\xb6rg\n");
    buf_free(&got);

    /* the name is copied as given (set by the program, not by requests) */
    /* (on the heap: with a fixed-size array GCC's -Wformat-truncation flags
     * the snprintf in log_init, which this test includes and inlines) */
    char *name = malloc(100);
    memset(name, 'n', 99);
    name[99] = '\0';
    log_init(name, LOG_LVL_INFO);
    name[0] = 'X'; /* a copy: changing the caller's string changes nothing */
    capture_begin();
    log_info("x");
    capture_end(&got);
    struct buf want = {0};
    buf_puts(&want, " - ");
    buf_append(&want, name + 1, 63); /* truncated to 63 bytes */
    buf_puts(&want, " - INFO - x\n");
    check_line(&got, want.data);
    buf_free(&got);
    buf_free(&want);
    free(name);
}

static void test_below_threshold(void)
{
    struct buf got;
    log_init("unit", LOG_LVL_WARNING);
    capture_begin();
    log_debug("debug %d", 1);
    log_info("info %d", 2);
    capture_end(&got);
    check_int(got.len, 0);
    buf_free(&got);

    log_init("unit", LOG_LVL_ERROR);
    capture_begin();
    log_warn("warn");
    log_err("err");
    capture_end(&got);
    check_line(&got, " - unit - ERROR - err\n");
    buf_free(&got);
}

static void test_truncation(void)
{
    struct buf got, want = {0};
    log_init("unit", LOG_LVL_INFO);

    /* 4095 bytes fit whole */
    char *msg = malloc(6001);
    memset(msg, 'a', 4095);
    msg[4095] = '\0';
    capture_begin();
    log_info("%s", msg);
    capture_end(&got);
    buf_puts(&want, " - unit - INFO - ");
    buf_append(&want, msg, 4095);
    buf_puts(&want, "\n");
    check_line(&got, want.data);
    buf_free(&got);

    /* 4096 and more: the first 4095, then "...", and still one newline */
    for (size_t len = 4096; len <= 6000; len += 1904) {
        memset(msg, 'b', len);
        msg[len] = '\0';
        capture_begin();
        log_info("%s", msg);
        capture_end(&got);
        buf_clear(&want);
        buf_puts(&want, " - unit - INFO - ");
        buf_append(&want, msg, 4095);
        buf_puts(&want, "...\n");
        check_line(&got, want.data);
        check(got.len > 0 && got.data[got.len - 1] == '\n', "a cut line still ends in a newline");
        buf_free(&got);
    }

    /* the worst case: every byte of a cut message becomes \xNN */
    memset(msg, '\x01', 6000);
    msg[6000] = '\0';
    capture_begin();
    log_info("%s", msg);
    capture_end(&got);
    buf_clear(&want);
    buf_puts(&want, " - unit - INFO - ");
    for (int i = 0; i < 4095; i++)
        buf_puts(&want, "\\x01");
    buf_puts(&want, "...\n");
    check_line(&got, want.data);
    buf_free(&got);

    free(msg);
    buf_free(&want);
}

int main(void)
{
    test_defaults_before_init(); /* first: nothing has called log_init yet */
    test_level_parse();
    test_enabled_thresholds();
    test_format();
    test_escapes();
    test_below_threshold();
    test_truncation();
    return check_done();
}
