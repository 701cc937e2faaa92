/* lib/log.c: one line per event on stderr,
 *
 *   YYYY-MM-DD HH:MM:SS,mmm - name - LEVEL - message[ request_id=ID]\n
 *
 * (local time, Python logging's default format), control characters written
 * as \xNN, messages over 4095 bytes cut and marked "..."; or, with
 * LOG_FORMAT=json, one JSON object per line that is valid JSON whatever the
 * message holds; secrets masked as *** in both. The tests point stderr at a
 * temporary file and read back what was written. */
#include "../../lib/log.c"

#include <jansson.h>
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

/* The seconds of CLOCK_REALTIME, the clock lib/log stamps lines with.
 * Not time(NULL): on Linux that reads the coarse clock, up to a tick behind
 * CLOCK_REALTIME, so a line stamped just after a second boundary looked
 * stamped in the future (2 failures in 35 runs). */
static time_t realtime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

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
    time_t now = realtime_now();
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

/* log_info("%s", msg), captured into got. */
static void logged(struct buf *got, const char *msg)
{
    capture_begin();
    log_info("%s", msg);
    capture_end(got);
}

static void test_request_id(void)
{
    struct buf got;
    log_init("unit", LOG_LVL_DEBUG);
    check(log_request_id() == NULL, "no request id before one is set");

    /* while set, every line carries it, whatever logs it */
    log_set_request_id("req-1");
    check_str(log_request_id(), "req-1");
    capture_begin();
    log_warn("PostgreSQL unavailable: %s", "no socket");
    capture_end(&got);
    check_line(&got, " - unit - WARNING - PostgreSQL unavailable: no socket request_id=req-1\n");
    buf_free(&got);

    capture_begin();
    log_debug("d");
    capture_end(&got);
    check_line(&got, " - unit - DEBUG - d request_id=req-1\n");
    buf_free(&got);

    /* a message that already ends with it gets it once */
    logged(&got, "GET /api/hello/world 200 0.053ms request_id=req-1");
    check_line(&got, " - unit - INFO - GET /api/hello/world 200 0.053ms request_id=req-1\n");
    buf_free(&got);

    /* ... but one ending with another id, or with this one in a longer
     * word, gets it */
    logged(&got, "x request_id=req-0");
    check_line(&got, " - unit - INFO - x request_id=req-0 request_id=req-1\n");
    buf_free(&got);
    logged(&got, "x request_id=xreq-1");
    check_line(&got, " - unit - INFO - x request_id=xreq-1 request_id=req-1\n");
    buf_free(&got);
    logged(&got, "");
    check_line(&got, " - unit - INFO -  request_id=req-1\n");
    buf_free(&got);

    /* a cut message: the id follows the "..." */
    char *msg = malloc(5001);
    memset(msg, 'c', 5000);
    msg[5000] = '\0';
    logged(&got, msg);
    struct buf want = {0};
    buf_puts(&want, " - unit - INFO - ");
    buf_append(&want, msg, 4095);
    buf_puts(&want, "... request_id=req-1\n");
    check_line(&got, want.data);
    buf_free(&got);
    buf_free(&want);
    free(msg);

    /* NULL or "" clears it */
    log_set_request_id(NULL);
    check(log_request_id() == NULL, "NULL clears the request id");
    logged(&got, "after");
    check_line(&got, " - unit - INFO - after\n");
    buf_free(&got);
    log_set_request_id("req-2");
    log_set_request_id("");
    check(log_request_id() == NULL, "\"\" clears the request id");
    logged(&got, "after");
    check_line(&got, " - unit - INFO - after\n");
    buf_free(&got);

    /* copied, and cut to 64 bytes */
    char *id = malloc(100);
    memset(id, 'r', 99);
    id[99] = '\0';
    log_set_request_id(id);
    id[0] = 'X';
    logged(&got, "m");
    buf_init(&want);
    buf_puts(&want, " - unit - INFO - m request_id=");
    buf_append(&want, id + 1, 64);
    buf_puts(&want, "\n");
    check_line(&got, want.data);
    buf_free(&got);
    buf_free(&want);
    free(id);

    /* an id cannot forge a line either */
    log_set_request_id("a\nb");
    logged(&got, "m");
    check_line(&got, " - unit - INFO - m request_id=a\\x0ab\n");
    buf_free(&got);
    log_set_request_id(NULL);
}

static void test_format_setting(void)
{
    static const struct {
        const char *s;
        enum log_format want;
    } good[] = {{"text", LOG_FMT_TEXT},
                {"TEXT", LOG_FMT_TEXT},
                {"json", LOG_FMT_JSON},
                {"Json", LOG_FMT_JSON}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        enum log_format f = (enum log_format)7;
        if (!check_int(log_format_parse(good[i].s, &f), 0) || !check_int(f, good[i].want))
            fprintf(stderr, "  input: \"%s\"\n", good[i].s);
    }
    static const char *const bad[] = {"", "jsonl", " json", "xml", "logfmt"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum log_format f = (enum log_format)7;
        if (!check_int(log_format_parse(bad[i], &f), -1) || !check_int(f, 7))
            fprintf(stderr, "  input: \"%s\"\n", bad[i]);
    }

    /* log_init reads LOG_FORMAT; unset or empty is text */
    unsetenv("LOG_FORMAT");
    log_init("unit", LOG_LVL_INFO);
    check_int(log_get_format(), LOG_FMT_TEXT);
    setenv("LOG_FORMAT", "json", 1);
    log_init("unit", LOG_LVL_INFO);
    check_int(log_get_format(), LOG_FMT_JSON);
    setenv("LOG_FORMAT", "", 1);
    log_init("unit", LOG_LVL_INFO);
    check_int(log_get_format(), LOG_FMT_TEXT);
    setenv("LOG_FORMAT", "JSON", 1);
    log_init("unit", LOG_LVL_INFO);
    check_int(log_get_format(), LOG_FMT_JSON);
    setenv("LOG_FORMAT", "text", 1);
    log_init("unit", LOG_LVL_INFO);
    check_int(log_get_format(), LOG_FMT_TEXT);

    /* log_set_format overrides it until the next log_init */
    log_set_format(LOG_FMT_JSON);
    check_int(log_get_format(), LOG_FMT_JSON);
    log_init("unit", LOG_LVL_INFO);
    check_int(log_get_format(), LOG_FMT_TEXT);

    /* an unknown value: text, and one warning per process */
    struct buf got;
    setenv("LOG_FORMAT", "xml", 1);
    capture_begin();
    log_init("unit", LOG_LVL_INFO);
    log_init("unit", LOG_LVL_INFO);
    capture_end(&got);
    check_int(log_get_format(), LOG_FMT_TEXT);
    check_line(&got, " - unit - WARNING - LOG_FORMAT: expected text or json, got 'xml'; "
                     "logging text\n");
    buf_free(&got);
    unsetenv("LOG_FORMAT");
}

#define JSON_TS_LEN 24 /* "2026-11-27T13:25:20.123Z" */

/* 1 if s is "YYYY-MM-DDTHH:MM:SS.mmmZ" within a few seconds of now (UTC). */
static int json_time_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (s == NULL || strlen(s) != JSON_TS_LEN)
        return 0;
    for (size_t i = 0; i < JSON_TS_LEN; i++) {
        if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
            return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || *end != '.')
        return 0;
    time_t t = timegm(&tm);
    time_t now = realtime_now();
    return t != (time_t)-1 && t <= now && now - t <= 5;
}

/* got must be exactly one line holding one JSON object with exactly time,
 * level, logger, message and (only if request_id is not NULL) request_id,
 * time first. Returns it (new reference), or NULL after a failed check. */
static json_t *json_line(const struct buf *got, const char *level, const char *logger,
                         const char *request_id)
{
    if (!check(got->len > 0 && got->data[got->len - 1] == '\n', "a JSON line ends in a newline") ||
        !check(memchr(got->data, '\n', got->len - 1) == NULL, "a JSON line is one line"))
        return NULL;
    int raw_ok = 1;
    for (size_t i = 0; i + 1 < got->len; i++) {
        unsigned char c = (unsigned char)got->data[i];
        if (c < 0x20 || c == 0x7f)
            raw_ok = 0;
    }
    check(raw_ok, "no raw control character in a JSON line");
    check(strncmp(got->data, "{\"time\":\"", 9) == 0, "a JSON line starts with its time");
    json_error_t err;
    json_t *o = json_loadb(got->data, got->len - 1, JSON_REJECT_DUPLICATES, &err);
    if (!check(o != NULL, "a JSON line parses (jansson rejects invalid UTF-8 too)")) {
        fprintf(stderr, "  %s at %d: ", err.text, err.position);
        check_print_mem(got->data, got->len);
        fputc('\n', stderr);
        return NULL;
    }
    if (!check(json_is_object(o), "a JSON line is an object")) {
        json_decref(o);
        return NULL;
    }
    check_int(json_object_size(o), request_id != NULL ? 5 : 4);
    check(json_time_ok(json_string_value(json_object_get(o, "time"))),
          "time is UTC ISO 8601 with milliseconds, now");
    check_str(json_string_value(json_object_get(o, "level")), level);
    check_str(json_string_value(json_object_get(o, "logger")), logger);
    check(json_is_string(json_object_get(o, "message")), "message is a string");
    if (request_id != NULL)
        check_str(json_string_value(json_object_get(o, "request_id")), request_id);
    return o;
}

/* The message of a JSON line is want[0..wantlen). */
#define check_json_msg(o, want, wantlen)                                                           \
    do {                                                                                           \
        json_t *m_ = (o) ? json_object_get((o), "message") : NULL;                                 \
        check_mem(json_string_value(m_), json_string_length(m_), (want), (wantlen));               \
    } while (0)

static void test_json(void)
{
    struct buf got;
    json_t *o;
    log_init("unit", LOG_LVL_DEBUG);
    log_set_format(LOG_FMT_JSON);

    capture_begin();
    log_info("GET %s %d", "/api/hello/world", 200);
    capture_end(&got);
    o = json_line(&got, "INFO", "unit", NULL);
    check_json_msg(o, "GET /api/hello/world 200", 24);
    json_decref(o);
    buf_free(&got);

    static const struct {
        enum log_level level;
        const char *name;
    } levels[] = {{LOG_LVL_DEBUG, "DEBUG"}, {LOG_LVL_WARNING, "WARNING"}, {LOG_LVL_ERROR, "ERROR"}};
    for (size_t i = 0; i < 3; i++) {
        capture_begin();
        log_msg(levels[i].level, "%s", "m");
        capture_end(&got);
        o = json_line(&got, levels[i].name, "unit", NULL);
        check_json_msg(o, "m", 1);
        json_decref(o);
        buf_free(&got);
    }

    /* with a request id: a member of its own, in this order */
    log_set_request_id("req-7");
    capture_begin();
    log_warn("PostgreSQL unavailable: %s", "no socket");
    capture_end(&got);
    o = json_line(&got, "WARNING", "unit", "req-7");
    json_decref(o);
    if (check(got.len > 9 + JSON_TS_LEN, "a whole line"))
        check_str(got.data + 9 + JSON_TS_LEN,
                  "\",\"level\":\"WARNING\",\"logger\":\"unit\",\"message\":\"PostgreSQL "
                  "unavailable: no socket\",\"request_id\":\"req-7\"}\n");
    buf_free(&got);
    log_set_request_id(NULL);

    /* two calls, two lines */
    capture_begin();
    log_info("one");
    log_info("two");
    capture_end(&got);
    const char *nl = memchr(got.data, '\n', got.len);
    check(nl != NULL && nl[1] == '{' && got.data[got.len - 1] == '\n' &&
              memchr(nl + 1, '\n', got.len - (size_t)(nl + 1 - got.data) - 1) == NULL,
          "two JSON lines");
    buf_free(&got);

    /* a hostile name and id are escaped too */
    log_init("un\"it\\\n", LOG_LVL_INFO);
    log_set_format(LOG_FMT_JSON);
    log_set_request_id("a\"b\x01\xff");
    logged(&got, "x");
    o = json_line(&got, "INFO", "un\"it\\\n", "a\"b\x01\xef\xbf\xbd");
    json_decref(o);
    buf_free(&got);
    log_set_request_id(NULL);

    log_init("unit", LOG_LVL_INFO);
}

#define FFFD "\xef\xbf\xbd"

static void test_json_hostile(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"say \"hi\" \\ \\\\ \\\" \\u0041 / </script>",
         "say \"hi\" \\ \\\\ \\\" \\u0041 / </script>"},
        {"\x01\x02\x08\t\n\x0b\x0c\r\x1b[31m\x1f \x7f~",
         "\x01\x02\x08\t\n\x0b\x0c\r\x1b[31m\x1f \x7f~"},
        {"x\"}\n{\"time\":\"2026\",\"level\":\"ERROR\",\"message\":\"forged",
         "x\"}\n{\"time\":\"2026\",\"level\":\"ERROR\",\"message\":\"forged"},
        /* well-formed UTF-8 stays */
        {"J\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf",
         "J\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf"},
        /* every byte of ill-formed UTF-8 becomes U+FFFD */
        {"a\x80z", "a" FFFD "z"},
        {"\xc0\xaf", FFFD FFFD},                   /* overlong '/' */
        {"\xe0\x80\xaf", FFFD FFFD FFFD},          /* overlong, 3 bytes */
        {"\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD}, /* overlong, 4 bytes */
        {"\xed\xa0\x80", FFFD FFFD FFFD},          /* a surrogate */
        {"\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD},
        {"\xfe\xff", FFFD FFFD},
        {"\xe2\x82x", FFFD FFFD "x"},      /* a cut sequence */
        {"a\xc3", "a" FFFD},               /* cut by the end */
        {"\xc3\xb6\xb6", "\xc3\xb6" FFFD}, /* a stray continuation */
    };
    struct buf got;
    log_init("unit", LOG_LVL_INFO);
    log_set_format(LOG_FMT_JSON);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        logged(&got, cases[i].in);
        json_t *o = json_line(&got, "INFO", "unit", NULL);
        if (o == NULL)
            fprintf(stderr, "  case %zu\n", i);
        check_json_msg(o, cases[i].want, strlen(cases[i].want));
        json_decref(o);
        buf_free(&got);
    }

    /* every byte value at once, and as the request id */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    log_set_request_id(all);
    logged(&got, all);
    all[64] = '\0'; /* the id was cut to 64 bytes */
    json_t *o = json_line(&got, "INFO", "unit", all);
    json_decref(o);
    buf_free(&got);
    log_set_request_id(NULL);

    /* over 4 KB: cut to 4095 bytes and "...", still valid, still one line */
    static const struct {
        const char *unit; /* repeated */
        const char *want_unit;
    } big[] = {
        {"\x01", "\x01"}, {"\xff", FFFD}, {"\"", "\""}, {"\\", "\\"}, {"a", "a"},
    };
    char *msg = malloc(6001);
    struct buf want = {0};
    for (size_t b = 0; b < sizeof(big) / sizeof(big[0]); b++) {
        memset(msg, big[b].unit[0], 6000);
        msg[6000] = '\0';
        logged(&got, msg);
        o = json_line(&got, "INFO", "unit", NULL);
        buf_clear(&want);
        for (int i = 0; i < 4095; i++)
            buf_puts(&want, big[b].want_unit);
        buf_puts(&want, "...");
        check_json_msg(o, want.data, want.len);
        json_decref(o);
        buf_free(&got);
    }
    /* a cut through a UTF-8 sequence: its first byte is ill-formed now */
    for (int i = 0; i < 3000; i++)
        memcpy(msg + 2 * i, "\xc3\xa9", 2);
    msg[6000] = '\0';
    logged(&got, msg);
    o = json_line(&got, "INFO", "unit", NULL);
    buf_clear(&want);
    buf_append(&want, msg, 4094);
    buf_puts(&want, FFFD "...");
    check_json_msg(o, want.data, want.len);
    json_decref(o);
    buf_free(&got);
    buf_free(&want);
    free(msg);

    log_init("unit", LOG_LVL_INFO);
}

static void test_secrets(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"Redis at redis://:s3cret@127.0.0.1:6379/0: Connection refused; retrying",
         "Redis at redis://:***@127.0.0.1:6379/0: Connection refused; retrying"},
        {"postgresql://app:pa:ss@db.example/app?sslmode=require",
         "postgresql://app:***@db.example/app?sslmode=require"},
        /* the unix form of REDIS_URL (redis-py's): an empty host */
        {"Redis unix://:s3cret@/var/redis/redis.sock?db=0 down",
         "Redis unix://:***@/var/redis/redis.sock?db=0 down"},
        /* the password may hold '@', '/', '#', ';': up to the last '@' */
        {"redis://:p@ss/w#rd;x@h:1/0 down", "redis://:***@h:1/0 down"},
        {"host=/run/pg user=app password=hunter2 dbname=app",
         "host=/run/pg user=app password=*** dbname=app"},
        {"password='a b\\' c' sslmode=disable", "password='***' sslmode=disable"},
        {"GET /api/x?access_token=abc&q=1&API_KEY=zz&sslpassword=p 200 0.1ms",
         "GET /api/x?access_token=***&q=1&API_KEY=***&sslpassword=*** 200 0.1ms"},
        {"{\"username\":\"bob\",\"password\": \"p\\\"w\",\"client_secret\":\"s\",\"n\":1}",
         "{\"username\":\"bob\",\"password\": \"***\",\"client_secret\":\"***\",\"n\":1}"},
        {"Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"},
        {"bearer  tok", "bearer  ***"},
        {"X-Api-Key=k1, Pwd=k2; secret=k3 passwd=k4",
         "X-Api-Key=***, Pwd=***; secret=*** passwd=***"},
        /* left alone */
        {"redis://h:6379/0 and unix:///run/r.sock?db=2",
         "redis://h:6379/0 and unix:///run/r.sock?db=2"},
        {"http://user@host/ a://b", "http://user@host/ a://b"},
        {"a://b://c://d:e a://", "a://b://c://d:e a://"},
        /* a URL in a URL: everything up to the last '@' may be a password */
        {"x=a://b://c:d@h y", "x=a://b:***@h y"},
        {"key=value a=b password= token=&x=1 passwordless=1 tokens=2",
         "key=value a=b password= token=&x=1 passwordless=1 tokens=2"},
        {"unbearer x, Bearer", "unbearer x, Bearer"},
        {"\"password\" is required", "\"password\" is required"},
        {"Task tasks.add[0b8f] succeeded in 0.000110s: 8",
         "Task tasks.add[0b8f] succeeded in 0.000110s: 8"},
    };
    struct buf got, want = {0};
    log_init("unit", LOG_LVL_INFO);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        logged(&got, cases[i].in);
        buf_clear(&want);
        buf_puts(&want, " - unit - INFO - ");
        buf_puts(&want, cases[i].want);
        buf_puts(&want, "\n");
        check_line(&got, want.data);
        buf_free(&got);
    }

    /* a secret holding control bytes is masked, not escaped */
    logged(&got, "password=a\001b c");
    check_line(&got, " - unit - INFO - password=*** c\n");
    buf_free(&got);

    /* past 32 secrets, the rest of the message is masked */
    struct buf many = {0};
    for (int i = 0; i < 40; i++)
        buf_puts(&many, i ? " token=t" : "token=t");
    logged(&got, many.data);
    buf_clear(&want);
    buf_puts(&want, " - unit - INFO - ");
    for (int i = 0; i < 31; i++)
        buf_puts(&want, "token=*** ");
    buf_puts(&want, "token=***\n");
    check_line(&got, want.data);
    buf_free(&got);
    buf_free(&many);

    /* JSON too */
    log_set_format(LOG_FMT_JSON);
    logged(&got, "Redis at redis://:s3cret@h:1/0: \"password\":\"x\xff\"");
    json_t *o = json_line(&got, "INFO", "unit", NULL);
    const char *w = "Redis at redis://:***@h:1/0: \"password\":\"***\"";
    check_json_msg(o, w, strlen(w));
    json_decref(o);
    buf_free(&got);
    buf_free(&want);
    log_init("unit", LOG_LVL_INFO);
}

/* log_mask: another program's line (lighttpd's access log), secrets as ***,
 * every other byte as it came (no escaping, no newline added) */
static void test_mask(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"127.0.0.1 [07/Dec/2026:18:01:50 +0000] \"GET /api/hello/world?password=S1&access_token=S2 "
         "HTTP/1.1\" 200 27 587 \"curl/7.88.1\" abc\n",
         "127.0.0.1 [07/Dec/2026:18:01:50 +0000] \"GET /api/hello/world?password=***&access_token=*** "
         "HTTP/1.1\" 200 27 587 \"curl/7.88.1\" abc\n"},
        {"{\"request\":\"GET /x?q=1&API_KEY=k&client_secret=c HTTP/1.1\",\"status\":200}\n",
         "{\"request\":\"GET /x?q=1&API_KEY=***&client_secret=*** HTTP/1.1\",\"status\":200}\n"},
        {"GET /plain?q=password HTTP/1.1 \x01\xff\n", "GET /plain?q=password HTTP/1.1 \x01\xff\n"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf b = {0};
        log_mask(cases[i].in, strlen(cases[i].in), &b);
        check_str(b.data != NULL ? b.data : "", cases[i].want);
        buf_free(&b);
    }
}

int main(void)
{
    unsetenv("LOG_FORMAT");      /* the tests set it themselves */
    test_defaults_before_init(); /* first: nothing has called log_init yet */
    test_level_parse();
    test_enabled_thresholds();
    test_format();
    test_escapes();
    test_below_threshold();
    test_truncation();
    test_request_id();
    test_format_setting();
    test_json();
    test_json_hostile();
    test_secrets();
    test_mask();
    return check_done();
}
