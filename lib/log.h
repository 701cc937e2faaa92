#ifndef LOG_H
#define LOG_H

/* One line per event on stderr, in the format of the Python stack this
 * replaces (logging's "%(asctime)s - %(name)s - %(levelname)s - %(message)s"):
 *
 *   2026-11-27 13:25:20,123 - hello - INFO - GET /api/hello/world 200 ...
 *
 * Control characters in a message are written as \xNN so a request can never
 * forge a log line. Lines are written with one write(2) each, so lines from
 * the processes sharing a log file do not interleave. */

enum log_level {
    LOG_LVL_DEBUG = 10,
    LOG_LVL_INFO = 20,
    LOG_LVL_WARNING = 30,
    LOG_LVL_ERROR = 40,
};

/* `name` is copied (truncated to 63 bytes). Before log_init the name is "-"
 * and the level INFO. */
void log_init(const char *name, enum log_level level);
/* The name given to log_init ("-" before). */
const char *log_name(void);
/* "DEBUG", "INFO", "WARNING" (or "WARN"), "ERROR"; case-insensitive.
 * Returns 0 and sets *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_err(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)

#endif
