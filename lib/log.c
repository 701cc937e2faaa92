#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char prog_name[64] = "-";
static enum log_level log_threshold = LOG_LVL_INFO;

void log_init(const char *name, enum log_level level)
{
    snprintf(prog_name, sizeof(prog_name), "%s", name);
    log_threshold = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const struct {
        const char *name;
        enum log_level level;
    } names[] = {
        {"DEBUG", LOG_LVL_DEBUG},     {"INFO", LOG_LVL_INFO},   {"WARNING", LOG_LVL_WARNING},
        {"WARN", LOG_LVL_WARNING},    {"ERROR", LOG_LVL_ERROR},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= log_threshold;
}

const char *log_name(void)
{
    return prog_name;
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_LVL_DEBUG: return "DEBUG";
    case LOG_LVL_INFO: return "INFO";
    case LOG_LVL_WARNING: return "WARNING";
    case LOG_LVL_ERROR: return "ERROR";
    }
    return "INFO";
}

/* "YYYY-MM-DD HH:MM:SS" in local time; the formatted second is cached because
 * a busy route logs many lines per second. */
static size_t format_time(char *out, size_t outlen)
{
    static time_t cached_sec = -1;
    static char cached[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        localtime_r(&ts.tv_sec, &tm);
        if (strftime(cached, sizeof(cached), "%Y-%m-%d %H:%M:%S", &tm) == 0)
            cached[0] = '\0';
        cached_sec = ts.tv_sec;
    }
    int n = snprintf(out, outlen, "%s,%03ld", cached, ts.tv_nsec / 1000000L);
    return n < 0 ? 0 : ((size_t)n < outlen ? (size_t)n : outlen - 1);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    int mlen = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (mlen < 0)
        return;
    int truncated = (size_t)mlen >= sizeof(msg);
    size_t n = truncated ? sizeof(msg) - 1 : (size_t)mlen;

    /* worst case every byte becomes \xNN */
    char line[sizeof(msg) * 4 + 160];
    size_t pos = format_time(line, sizeof(line));
    int h = snprintf(line + pos, sizeof(line) - pos, " - %s - %s - ", prog_name, level_name(level));
    pos += (size_t)(h < 0 ? 0 : h);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c == 0x7f) {
            line[pos++] = '\\';
            line[pos++] = 'x';
            line[pos++] = hex[c >> 4];
            line[pos++] = hex[c & 15];
        } else {
            line[pos++] = (char)c;
        }
    }
    if (truncated) {
        memcpy(line + pos, "...", 3);
        pos += 3;
    }
    line[pos++] = '\n';

    const char *p = line;
    while (pos > 0) {
        ssize_t w = write(STDERR_FILENO, p, pos);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        pos -= (size_t)w;
    }
}
