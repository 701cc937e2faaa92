#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define MSG_MAX 4096 /* a message's bytes, with its NUL; longer ones are cut */
#define REQUEST_ID_MAX 64

static char prog_name[64] = "-";
static enum log_level log_threshold = LOG_LVL_INFO;
static enum log_format log_fmt = LOG_FMT_TEXT;
static char cur_request_id[REQUEST_ID_MAX + 1];

void log_init(const char *name, enum log_level level)
{
    static int format_warned;
    snprintf(prog_name, sizeof(prog_name), "%s", name);
    log_threshold = level;
    const char *env = getenv("LOG_FORMAT");
    enum log_format f = LOG_FMT_TEXT;
    int bad = env != NULL && *env != '\0' && log_format_parse(env, &f) != 0;
    log_fmt = f;
    if (bad && !format_warned) {
        format_warned = 1;
        log_warn("LOG_FORMAT: expected text or json, got '%.64s'; logging text", env);
    }
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

int log_format_parse(const char *s, enum log_format *out)
{
    if (strcasecmp(s, "text") == 0)
        *out = LOG_FMT_TEXT;
    else if (strcasecmp(s, "json") == 0)
        *out = LOG_FMT_JSON;
    else
        return -1;
    return 0;
}

void log_set_format(enum log_format format)
{
    log_fmt = format == LOG_FMT_JSON ? LOG_FMT_JSON : LOG_FMT_TEXT;
}

enum log_format log_get_format(void)
{
    return log_fmt;
}

int log_enabled(enum log_level level)
{
    return level >= log_threshold;
}

const char *log_name(void)
{
    return prog_name;
}

void log_set_request_id(const char *id)
{
    size_t n = id != NULL ? strnlen(id, REQUEST_ID_MAX) : 0;
    memcpy(cur_request_id, id != NULL ? id : "", n);
    cur_request_id[n] = '\0';
}

const char *log_request_id(void)
{
    return cur_request_id[0] != '\0' ? cur_request_id : NULL;
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

/* ---- the line being built ---------------------------------------------- */

/* A fixed buffer that never overflows: what does not fit is dropped (the
 * buffer is sized for the worst case, so that does not happen), and one
 * byte is always kept for the final newline. */
struct line {
    char *p;
    size_t len, cap;
};

static void put(struct line *l, const char *s, size_t n)
{
    if (n > l->cap - 1 - l->len)
        n = l->cap - 1 - l->len;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* "YYYY-MM-DD HH:MM:SS,mmm" in local time (text) or "YYYY-MM-DDTHH:MM:SS.mmmZ"
 * in UTC (JSON). The formatted second is cached because a busy route logs
 * many lines per second. */
static void put_time(struct line *l, enum log_format f)
{
    static time_t cached_sec[2] = {-1, -1};
    static char cached[2][32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int j = f == LOG_FMT_JSON;
    if (ts.tv_sec != cached_sec[j]) {
        struct tm tm;
        if (j)
            gmtime_r(&ts.tv_sec, &tm);
        else
            localtime_r(&ts.tv_sec, &tm);
        if (strftime(cached[j], sizeof(cached[j]), j ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S",
                     &tm) == 0)
            cached[j][0] = '\0';
        cached_sec[j] = ts.tv_sec;
    }
    char ms[16];
    int n = snprintf(ms, sizeof(ms), j ? ".%03ldZ" : ",%03ld", ts.tv_nsec / 1000000L);
    puts_(l, cached[j]);
    put(l, ms, n > 0 ? (size_t)n : 0);
}

static const char hex[] = "0123456789abcdef";

/* Text: control characters and DEL as \xNN, every other byte as it is. */
static void put_text_escaped(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            put(l, e, 4);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* The length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

/* The inside of a JSON string: " and \ escaped, control characters and DEL
 * as \u00XX, well-formed UTF-8 as it is, every other byte as \ufffd. */
static void put_json_escaped(struct line *l, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(l, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(l, e, 6);
            i++;
        } else {
            size_t k = utf8_len(u + i, n - i);
            if (k == 0) {
                puts_(l, "\\ufffd");
                i++;
            } else {
                put(l, s + i, k);
                i += k;
            }
        }
    }
}

static void put_escaped(struct line *l, enum log_format f, const char *s, size_t n)
{
    if (f == LOG_FMT_JSON)
        put_json_escaped(l, s, n);
    else
        put_text_escaped(l, s, n);
}

/* ---- secrets ------------------------------------------------------------ */

/* Bytes [from, to) of a message that are written as "***". */
struct span {
    size_t from, to;
};
#define MAX_SPANS 32

static int is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Ends a value that is not quoted (other control characters do not: they
 * are masked with the rest). */
static int is_value_end(unsigned char c)
{
    return c == '\0' || c == ' ' || (c >= '\t' && c <= '\r') || c == '&' || c == ';' || c == ',' ||
           c == '"' || c == '\'' || c == ')' || c == '}' || c == ']' || c == '#';
}

/* Ends a URL in a message. */
static int is_url_end(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '"' || c == '\'' || c == '<' || c == '>';
}

/* 1 if m[from..to) is a name whose value is a secret. */
static int secret_name(const char *m, size_t from, size_t to)
{
    static const char *const suffixes[] = {"password", "passwd",  "pwd",    "token",
                                           "secret",   "api_key", "apikey", "api-key"};
    size_t n = to - from;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strncasecmp(m + to - k, suffixes[i], k) == 0)
            return 1;
    }
    return 0;
}

/* Where the name ending at m[end] begins (end if there is none). */
static size_t name_start(const char *m, size_t end)
{
    size_t s = end;
    while (s > 0 && is_name_char((unsigned char)m[s - 1]))
        s--;
    return s;
}

/* The value starting at m[i]: quoted ('...' or "..."; the span is inside the
 * quotes) or up to is_value_end. Sets *from, returns its end. */
static size_t value_at(const char *m, size_t n, size_t i, size_t *from)
{
    if (i < n && (m[i] == '\'' || m[i] == '"')) {
        char q = m[i];
        size_t j = i + 1;
        while (j < n && m[j] != q) {
            if (m[j] == '\\' && j + 1 < n)
                j++;
            j++;
        }
        *from = i + 1;
        return j;
    }
    size_t j = i;
    while (j < n && !is_value_end((unsigned char)m[j]))
        j++;
    *from = i;
    return j;
}

static size_t skip_spaces(const char *m, size_t n, size_t i)
{
    while (i < n && (m[i] == ' ' || m[i] == '\t'))
        i++;
    return i;
}

/* Finds the secrets in m[0..n) (see log.h), in order and not overlapping.
 * Past MAX_SPANS of them the rest of the message is one span. Returns how
 * many were found. */
static size_t find_secrets(const char *m, size_t n, struct span *sp)
{
    size_t ns = 0, url_end = 0, url_at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t from = 0, to = 0;
        char c = m[i];
        if (c == ':' && i + 2 < n && m[i + 1] == '/' && m[i + 2] == '/') {
            /* scheme://user:password@host: the password may hold '/', '@'
             * and ':', so the userinfo ends at the last '@' of the URL.
             * Another "://" inside a URL already scanned has the same end
             * and last '@' (if after it): no second scan, so a message of
             * many "://" costs O(n). */
            size_t j = i + 3;
            if (j >= url_end) {
                url_end = j;
                url_at = 0;
                while (url_end < n && !is_url_end((unsigned char)m[url_end])) {
                    if (m[url_end] == '@')
                        url_at = url_end;
                    url_end++;
                }
            }
            size_t at = url_at > j ? url_at : 0;
            const char *colon = at > j ? memchr(m + j, ':', at - j) : NULL;
            if (colon == NULL) {
                i += 2;
                continue;
            }
            from = (size_t)(colon - m) + 1;
            to = at;
        } else if (c == '=' || c == '"') {
            size_t s = name_start(m, i);
            if (s == i || !secret_name(m, s, i))
                continue;
            size_t v = i + 1;
            if (c == '"') { /* "name": value, only after a quoted name */
                v = skip_spaces(m, n, v);
                if (s == 0 || m[s - 1] != '"' || v >= n || m[v] != ':')
                    continue;
                v = skip_spaces(m, n, v + 1);
            }
            to = value_at(m, n, v, &from);
        } else if ((c == 'B' || c == 'b') && (i == 0 || !is_name_char((unsigned char)m[i - 1])) &&
                   n - i > 7 && strncasecmp(m + i, "bearer ", 7) == 0) {
            to = value_at(m, n, skip_spaces(m, n, i + 7), &from);
        } else {
            continue;
        }
        if (to <= from)
            continue;
        if (ns == MAX_SPANS - 1) {
            sp[ns++] = (struct span){from, n};
            return ns;
        }
        sp[ns++] = (struct span){from, to};
        i = to; /* a closing quote or a delimiter: nothing to find in it */
    }
    return ns;
}

/* The message, escaped, with its secrets as "***". A span never starts
 * inside a UTF-8 sequence (it follows an ASCII delimiter), and the bytes
 * before it are escaped on their own. */
static void put_message(struct line *l, enum log_format f, const char *m, size_t n)
{
    struct span sp[MAX_SPANS];
    size_t ns = find_secrets(m, n, sp);
    size_t i = 0;
    for (size_t k = 0; k < ns; k++) {
        put_escaped(l, f, m + i, sp[k].from - i);
        puts_(l, "***");
        i = sp[k].to;
    }
    put_escaped(l, f, m + i, n - i);
}

void log_mask(const char *s, size_t n, struct buf *out)
{
    struct span sp[MAX_SPANS];
    size_t ns = find_secrets(s, n, sp);
    size_t i = 0;
    for (size_t k = 0; k < ns; k++) {
        buf_append(out, s + i, sp[k].from - i);
        buf_append(out, "***", 3);
        i = sp[k].to;
    }
    buf_append(out, s + i, n - i);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int mlen = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (mlen < 0)
        return;
    int truncated = (size_t)mlen >= sizeof(msg);
    size_t n = truncated ? sizeof(msg) - 1 : (size_t)mlen;

    /* worst case: every byte of the message, the name and the id becomes
     * \u00XX (6 bytes) */
    char buf[MSG_MAX * 6 + (sizeof(prog_name) + sizeof(cur_request_id)) * 6 + 160];
    struct line l = {buf, 0, sizeof(buf)};
    const char *id = log_request_id();

    if (log_fmt == LOG_FMT_JSON) {
        puts_(&l, "{\"time\":\"");
        put_time(&l, LOG_FMT_JSON);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_name(level));
        puts_(&l, "\",\"logger\":\"");
        put_json_escaped(&l, prog_name, strlen(prog_name));
        puts_(&l, "\",\"message\":\"");
        put_message(&l, LOG_FMT_JSON, msg, n);
        if (truncated)
            puts_(&l, "...");
        puts_(&l, "\"");
        if (id != NULL) {
            puts_(&l, ",\"request_id\":\"");
            put_json_escaped(&l, id, strlen(id));
            puts_(&l, "\"");
        }
        puts_(&l, "}");
    } else {
        put_time(&l, LOG_FMT_TEXT);
        puts_(&l, " - ");
        put_text_escaped(&l, prog_name, strlen(prog_name));
        puts_(&l, " - ");
        puts_(&l, level_name(level));
        puts_(&l, " - ");
        put_message(&l, LOG_FMT_TEXT, msg, n);
        if (truncated)
            puts_(&l, "...");
        if (id != NULL) {
            /* unless the message already ends with this very suffix */
            char suffix[sizeof(cur_request_id) + 16];
            int sn = snprintf(suffix, sizeof(suffix), " request_id=%s", id);
            size_t slen = sn > 0 ? (size_t)sn : 0;
            if (truncated || n < slen || memcmp(msg + n - slen, suffix, slen) != 0) {
                puts_(&l, " request_id=");
                put_text_escaped(&l, id, strlen(id));
            }
        }
    }
    buf[l.len++] = '\n'; /* put() always leaves room for it */
    write_all(buf, l.len);
}
