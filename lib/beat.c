#include "beat.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "celery.h"
#include "conf.h"
#include "mem.h"

/* Where the parser is: the file and line for messages, and the rest of the
 * current line. */
struct cursor {
    const char *fname;
    int line;
    const char *bol, *p, *end; /* the line's start, the parser, the line's end */
    char *err;
    size_t errlen;
};

/* Blank-separated fields other than the JSON ones are at most this long
 * (the longest, an `at` list, is BEAT_TIMES_MAX * 6 bytes). */
#define TOKEN_MAX 1024

static int fail(struct cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct cursor *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%d: %s", c->fname, c->line, msg);
    return -1;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void skip_blanks(struct cursor *c)
{
    while (c->p < c->end && is_blank(*c->p))
        c->p++;
}

/* The next blank-separated field into out (NUL-terminated). Returns its
 * length, 0 at the end of the line, or -1 (reported) if it is too long. */
static int next_token(struct cursor *c, char *out, size_t n, const char *what)
{
    skip_blanks(c);
    const char *s = c->p;
    while (c->p < c->end && !is_blank(*c->p))
        c->p++;
    size_t len = (size_t)(c->p - s);
    if (len >= n)
        return fail(c, "%s is too long (%zu bytes)", what, len);
    memcpy(out, s, len);
    out[len] = '\0';
    return (int)len;
}

/* 1 if s is 1..max bytes of [A-Za-z0-9._-] (entry and queue names: they go
 * into Redis keys and log lines as they are). */
static int name_ok(const char *s, size_t max)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    return n > 0 && n <= max && s[n] == '\0';
}

/* 1 if s is dot-separated identifiers, as Python task names are
 * ("tasks.add"): a typo such as "tasks..add" or "tasks.add," is caught here
 * rather than by a worker failing the task every slot. */
static int task_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > BEAT_TASK_MAX)
        return 0;
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
    const char *alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789";
    for (;;) {
        if (*s == '\0' || strchr(alpha, *s) == NULL)
            return 0;
        s += 1 + strspn(s + 1, alnum);
        if (*s == '\0')
            return 1;
        if (*s != '.')
            return 0;
        s++;
    }
}

int beat_parse_duration(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s < '1' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    long unit;
    switch (*end) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    default:
        return -1;
    }
    if (v > max / unit || v * unit < min)
        return -1;
    *out = v * unit;
    return 0;
}

/* "HH:MM[,HH:MM...]" into e->times, ascending. */
static int parse_times(struct cursor *c, const char *s, struct beat_entry *e)
{
    const char *all = s;
    e->ntimes = 0;
    for (;;) {
        const char *t = s;
        if (!(t[0] >= '0' && t[0] <= '2' && t[1] >= '0' && t[1] <= '9' && t[2] == ':' &&
              t[3] >= '0' && t[3] <= '5' && t[4] >= '0' && t[4] <= '9' &&
              (t[5] == '\0' || t[5] == ',')))
            break;
        int hh = (t[0] - '0') * 10 + (t[1] - '0'), mm = (t[3] - '0') * 10 + (t[4] - '0');
        if (hh > 23)
            break;
        if (e->ntimes == BEAT_TIMES_MAX)
            return fail(c, "more than %d times", BEAT_TIMES_MAX);
        int v = hh * 3600 + mm * 60, i = e->ntimes;
        /* insertion keeps them sorted; beat_due looks for the last one passed */
        while (i > 0 && e->times[i - 1] > v) {
            e->times[i] = e->times[i - 1];
            i--;
        }
        if (i > 0 && e->times[i - 1] == v)
            return fail(c, "time %.5s is given twice", t);
        e->times[i] = v;
        e->ntimes++;
        if (t[5] == '\0')
            return 0;
        s = t + 6;
    }
    return fail(c, "at: expected times HH:MM[,HH:MM...] (UTC, 00:00..23:59), got '%s'", all);
}

/* A JSON value starting at the cursor, which must end at a blank or the end
 * of the line. New reference, or NULL (reported). */
static json_t *json_field(struct cursor *c, const char *what)
{
    json_error_t je;
    json_t *v = json_loadb(c->p, (size_t)(c->end - c->p),
                           JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &je);
    if (v == NULL) {
        fail(c, "%s: bad JSON at column %ld: %s", what, (long)(c->p - c->bol) + (long)je.column,
             je.text);
        return NULL;
    }
    c->p += je.position;
    if (c->p < c->end && !is_blank(*c->p)) {
        json_decref(v);
        fail(c, "%s: unexpected '%c' right after the JSON value", what, *c->p);
        return NULL;
    }
    return v;
}

static int parse_option(struct cursor *c, const char *tok, struct beat_entry *e, int *seen)
{
    const char *eq = strchr(tok, '=');
    size_t klen = eq ? (size_t)(eq - tok) : 0;
    const char *val = eq ? eq + 1 : "";
    static const char *const keys[] = {"queue", "priority", "window"};
    int k = -1;
    for (int i = 0; i < 3 && eq != NULL; i++)
        if (strlen(keys[i]) == klen && strncmp(tok, keys[i], klen) == 0)
            k = i;
    if (k < 0)
        return fail(c, "unknown option '%s' (expected queue=NAME, priority=N or window=DURATION)",
                    tok);
    if (seen[k])
        return fail(c, "option %s given twice", keys[k]);
    seen[k] = 1;
    long v;
    switch (k) {
    case 0:
        if (!name_ok(val, BEAT_QUEUE_MAX))
            return fail(c, "queue: expected 1..%d of [A-Za-z0-9._-], got '%s'", BEAT_QUEUE_MAX,
                        val);
        if (!cel_queue_valid(val)) /* a key Redis holds for something else */
            return fail(c, "queue: '%s' is a name Redis or kombu keep for themselves", val);
        memcpy(e->queue, val, strlen(val) + 1); /* checked above */
        return 0;
    case 1:
        if (conf_parse_long(val, 0, 9, &v) != 0)
            return fail(c, "priority: expected an integer in 0..9, got '%s'", val);
        e->priority = (int)v;
        return 0;
    default:
        if (e->every > 0)
            return fail(c, "window= applies to 'at' entries only");
        if (beat_parse_duration(val, 1, 86400, &v) != 0)
            return fail(c, "window: expected a duration such as 30m (1s..24h), got '%s'", val);
        e->window = v;
        return 0;
    }
}

/* One non-empty, non-comment line into e (zeroed by the caller). On -1 the
 * caller frees e's JSON. */
static int parse_entry(struct cursor *c, struct beat_entry *e)
{
    char tok[TOKEN_MAX];
    int n;

    n = next_token(c, tok, sizeof(tok), "NAME");
    if (n < 0)
        return -1;
    if (!name_ok(tok, BEAT_NAME_MAX))
        return fail(c, "name: expected 1..%d of [A-Za-z0-9._-], got '%s'", BEAT_NAME_MAX, tok);
    memcpy(e->name, tok, (size_t)n + 1); /* n <= BEAT_NAME_MAX: checked */

    n = next_token(c, tok, sizeof(tok), "WHEN");
    if (n < 0)
        return -1;
    int every = strcmp(tok, "every") == 0;
    if (!every && strcmp(tok, "at") != 0)
        return fail(c, "expected 'every' or 'at' after the name, got '%s'", tok);
    n = next_token(c, tok, sizeof(tok), "WHEN");
    if (n < 0)
        return -1;
    if (n == 0)
        return fail(c, every ? "expected a period after 'every', such as 5m"
                             : "expected times after 'at', such as 02:30,14:00");
    if (every) {
        if (beat_parse_duration(tok, 1, 31L * 86400, &e->every) != 0)
            return fail(c, "every: expected a period such as 30s, 5m, 2h or 1d (1s..31d), got '%s'",
                        tok);
    } else {
        if (parse_times(c, tok, e) != 0)
            return -1;
        e->window = BEAT_WINDOW_DEFAULT;
    }

    n = next_token(c, tok, sizeof(tok), "TASK");
    if (n < 0)
        return -1;
    if (n == 0)
        return fail(c, "expected a task name after the schedule, such as tasks.add");
    if (!task_ok(tok))
        return fail(c,
                    "task: expected a dotted name such as tasks.add (1..%d of "
                    "[A-Za-z0-9_.], no empty part, not starting with a digit), got '%s'",
                    BEAT_TASK_MAX, tok);
    memcpy(e->task, tok, (size_t)n + 1); /* n <= BEAT_TASK_MAX: checked */

    skip_blanks(c);
    if (c->p == c->end || *c->p != '[')
        return fail(c, "expected ARGS, a JSON array such as [4, 4], after the task name");
    e->args = json_field(c, "args");
    if (e->args == NULL)
        return -1;
    skip_blanks(c);
    if (c->p < c->end && *c->p == '{')
        e->kwargs = json_field(c, "kwargs");
    else
        e->kwargs = json_object();
    if (e->kwargs == NULL)
        return -1;

    snprintf(e->queue, sizeof(e->queue), "celery");
    int seen[3] = {0, 0, 0};
    while ((n = next_token(c, tok, sizeof(tok), "option")) > 0) {
        if (tok[0] == '#')
            return 0; /* a comment to the end of the line */
        if (parse_option(c, tok, e, seen) != 0)
            return -1;
    }
    return n;
}

void beat_free(struct beat_schedule *s)
{
    for (size_t i = 0; i < s->n; i++) {
        json_decref(s->entries[i].args);
        json_decref(s->entries[i].kwargs);
    }
    free(s->entries);
    s->entries = NULL;
    s->n = 0;
}

int beat_parse(struct beat_schedule *s, const char *text, size_t len, const char *fname, char *err,
               size_t errlen)
{
    struct cursor c = {.fname = fname, .line = 0, .err = err, .errlen = errlen};
    size_t cap = 0;
    s->entries = NULL;
    s->n = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        c.line++;
        if (memchr(p, '\0', n) != NULL) {
            fail(&c, "a NUL byte (not a text file?)");
            goto bad;
        }
        c.bol = c.p = p;
        c.end = p + n;
        p = nl ? nl + 1 : end;
        if (n > 0 && c.end[-1] == '\r') /* written on Windows */
            c.end--;
        skip_blanks(&c);
        if (c.p == c.end || *c.p == '#')
            continue;
        if (s->n == BEAT_ENTRIES_MAX) {
            fail(&c, "more than %d entries", BEAT_ENTRIES_MAX);
            goto bad;
        }
        s->entries = xgrow(s->entries, &cap, s->n + 1, sizeof(*s->entries));
        struct beat_entry *e = &s->entries[s->n];
        memset(e, 0, sizeof(*e));
        e->line = c.line;
        s->n++; /* counted now, so beat_free releases a half-parsed entry */
        if (parse_entry(&c, e) != 0)
            goto bad;
        /* names key the slots: two entries sharing one would take each
         * other's slots and only one of them would ever run */
        for (size_t i = 0; i + 1 < s->n; i++) {
            if (strcmp(s->entries[i].name, e->name) == 0) {
                fail(&c, "name '%s' is already used on line %d", e->name, s->entries[i].line);
                goto bad;
            }
        }
    }
    return 0;
bad:
    beat_free(s);
    return -1;
}

int beat_load(struct beat_schedule *s, const char *path, char *err, size_t errlen)
{
    s->entries = NULL;
    s->n = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = xmalloc(BEAT_FILE_MAX + 1);
    size_t len = fread(text, 1, BEAT_FILE_MAX + 1, f);
    int rc = -1;
    if (ferror(f))
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    else if (len > BEAT_FILE_MAX)
        snprintf(err, errlen, "%s: larger than %d bytes", path, BEAT_FILE_MAX);
    else
        rc = beat_parse(s, text, len, path, err, errlen);
    free(text);
    fclose(f);
    return rc;
}

int beat_due(const struct beat_entry *e, long long now, long long *slot, long *ttl)
{
    if (now < 0)
        return 0;
    if (e->every > 0) {
        *slot = now - now % e->every;
        *ttl = e->every + BEAT_SKEW_S;
        return 1;
    }
    if (e->ntimes <= 0)
        return 0;
    long long day = now - now % 86400, sec = now % 86400;
    int i = e->ntimes - 1;
    while (i >= 0 && e->times[i] > sec)
        i--;
    long long start, next;
    if (i < 0) { /* before today's first time: yesterday's last one is the latest */
        start = day - 86400 + e->times[e->ntimes - 1];
        next = day + e->times[0];
    } else {
        start = day + e->times[i];
        next = i + 1 < e->ntimes ? day + e->times[i + 1] : day + 86400 + e->times[0];
    }
    /* windows never overlap, so a run late in one slot cannot also take the
     * next one's */
    long w = e->window;
    if (next - start < w)
        w = (long)(next - start);
    if (now >= start + w)
        return 0;
    *slot = start;
    *ttl = w + BEAT_SKEW_S;
    return 1;
}

int beat_slot_key(char *out, size_t n, const char *name, long long slot)
{
    int len = snprintf(out, n, "qrun:beat:%s:%lld", name, slot);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}
