#ifndef LOG_H
#define LOG_H

#include <stddef.h>

/* One line per event on stderr. The default ("text") is the format of the
 * Python stack this replaces (logging's
 * "%(asctime)s - %(name)s - %(levelname)s - %(message)s", local time):
 *
 *   2026-11-27 13:25:20,123 - hello - INFO - GET /api/hello/world 200 0.053ms request_id=...
 *
 * LOG_FORMAT=json makes it one JSON object per line (UTC, milliseconds;
 * "request_id" only while one is set):
 *
 *   {"time":"2026-11-27T13:25:20.123Z","level":"INFO","logger":"hello",
 *    "message":"GET /api/hello/world 200 0.053ms","request_id":"..."}
 *
 * A line never forges another: in text, control characters in a message are
 * written as \xNN; in JSON, every string is escaped (control characters as
 * \u00XX, each byte of invalid UTF-8 as \ufffd), so every line is valid JSON
 * whatever bytes a request brought. Secrets are masked as *** before
 * anything is written: the password of a URL ("redis://:***@host"), the
 * value of key=value pairs (conninfo, query strings) and of "key":"value"
 * pairs whose key ends in password, passwd, pwd, token, secret or api_key /
 * apikey / api-key (any case), and a "Bearer <token>". Messages over 4095
 * bytes are cut and marked "...". Each line is one write(2), so lines from
 * the processes sharing a log file do not interleave. */

enum log_level {
    LOG_LVL_DEBUG = 10,
    LOG_LVL_INFO = 20,
    LOG_LVL_WARNING = 30,
    LOG_LVL_ERROR = 40,
};

enum log_format {
    LOG_FMT_TEXT,
    LOG_FMT_JSON,
};

/* `name` is copied (truncated to 63 bytes). Before log_init the name is "-",
 * the level INFO and the format text.
 *
 * log_init also reads LOG_FORMAT from the environment ("text" when unset or
 * empty, "text" or "json" in any case), so every program that calls it
 * (route programs through serve_setup, the queue runner, taskctl) follows
 * the one setting. An unknown value leaves the format text and logs one
 * WARNING saying so (once per process); lighttpd.conf refuses to start with
 * one. log_set_format after log_init overrides the environment. */
void log_init(const char *name, enum log_level level);
/* The name given to log_init ("-" before). */
const char *log_name(void);
/* "DEBUG", "INFO", "WARNING" (or "WARN"), "ERROR"; case-insensitive.
 * Returns 0 and sets *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);
/* "text" or "json", case-insensitive. Returns 0 and sets *out, or -1. */
int log_format_parse(const char *s, enum log_format *out);
void log_set_format(enum log_format format);
enum log_format log_get_format(void);
int log_enabled(enum log_level level);

/* The request being handled: while set, every line carries it (text: the
 * line ends in " request_id=<id>", unless the message already ends so;
 * JSON: a "request_id" member). `id` is copied (truncated to 64 bytes);
 * NULL or "" clears it. Servers set it once the request's id is known and
 * clear it when the request is done (lib/serve.c, lib/aserve.c). */
void log_set_request_id(const char *id);
/* The id set, or NULL. Borrowed: valid until the next log_set_request_id. */
const char *log_request_id(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct buf;
/* Append s[0..n) to out with the secrets log_msg masks (the rules above)
 * written as "***", and nothing else changed: no escaping, no time, level or
 * newline added. For lines another program wrote: lighttpd's access log,
 * through bin/logmask. */
void log_mask(const char *s, size_t n, struct buf *out);

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_err(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
