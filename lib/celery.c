#include "celery.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "jsonfmt.h"
#include "log.h"

void cel_uuid(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    char *d = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *d++ = '-';
        *d++ = hex[b[i] >> 4];
        *d++ = hex[b[i] & 15];
    }
    *d = '\0';
}

int cel_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
        if (n >= CEL_ID_MAX)
            return 0;
    }
    return n > 0;
}

int cel_queue_key(char *out, size_t outlen, const char *queue, int priority)
{
    int band = priority < 3 ? 0 : priority < 6 ? 3 : priority < 9 ? 6 : 9;
    int n = band == 0 ? snprintf(out, outlen, "%s", queue)
                      : snprintf(out, outlen, "%s\x06\x16%d", queue, band);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int dump_cb(const char *data, size_t size, void *arg)
{
    buf_append(arg, data, size);
    return 0;
}

int cel_queue_valid(const char *q)
{
    static const char *const exact[] = {"revoked", "unacked", "unacked_index", "unacked_mutex",
                                        NULL};
    static const char *const prefix[] = {"_kombu.", "celery-task-meta-", "celery-taskset-meta-",
                                         "chord-unlock-", NULL};
    size_t n = strlen(q);
    if (n == 0 || n > CEL_QUEUE_NAME_MAX ||
        strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return 0;
    for (size_t i = 0; exact[i] != NULL; i++)
        if (strcmp(q, exact[i]) == 0)
            return 0;
    for (size_t i = 0; prefix[i] != NULL; i++)
        if (strncmp(q, prefix[i], strlen(prefix[i])) == 0)
            return 0;
    return !(n >= 7 && strcmp(q + n - 7, ".pidbox") == 0);
}

/* A limit for headers.timelimit: the number, or null. */
static json_t *limit_or_null(double s)
{
    return s > 0 ? json_real(s) : json_null();
}

void cel_message(struct buf *out, const struct cel_call *c)
{
    struct buf body = {0}, b64 = {0};
    json_t *no_args = c->args ? NULL : json_array(), *no_kwargs = c->kwargs ? NULL : json_object();
    json_t *embed = json_pack("{s:n,s:n,s:n,s:n}", "callbacks", "errbacks", "chain", "chord");
    json_t *arr = json_pack("[OOo]", c->args ? c->args : no_args,
                            c->kwargs ? c->kwargs : no_kwargs, embed);
    jsonfmt_dump(arr, &body, JSON_COMPACT);
    json_decref(arr);
    json_decref(no_args);
    json_decref(no_kwargs);
    b64_encode(&b64, body.data, body.len, B64_STD);

    char tag[37];
    cel_uuid(tag);
    /* Celery's "origin" (pid@host), looked up once per process */
    static char origin[96];
    static pid_t origin_pid;
    if (origin_pid != getpid()) {
        char host[64];
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        origin_pid = getpid();
        snprintf(origin, sizeof(origin), "%ld@%s", (long)origin_pid, host);
    }
    const char *queue = c->queue ? c->queue : "celery";
    json_t *env = json_pack(
        "{s:s, s:s, s:s,"
        " s:{s:s,s:s,s:s,s:n,s:n,s:n,s:n,s:n,s:i,s:[oo],s:s,s:n,s:s,s:s,s:s,s:b},"
        " s:{s:s,s:s,s:i,s:{s:s,s:s},s:i,s:s,s:s}}",
        "body", b64.data, "content-encoding", "utf-8", "content-type", "application/json",
        "headers", "lang", "c", "task", c->task, "id", c->id, "shadow", "eta", "expires", "group",
        "group_index", "retries", 0, "timelimit", limit_or_null(c->time_limit),
        limit_or_null(c->soft_time_limit), "root_id", c->id, "parent_id", "argsrepr", "",
        "kwargsrepr", "", "origin", origin, "ignore_result", 0,
        "properties", "correlation_id", c->id, "reply_to", c->id, "delivery_mode", 2,
        "delivery_info", "exchange", "", "routing_key", queue, "priority", c->priority,
        "body_encoding", "base64", "delivery_tag", tag);
    json_t *headers = json_object_get(env, "headers");
    char when[40];
    if (c->eta > 0) {
        cel_time_format(c->eta, when);
        json_object_set_new(headers, "eta", json_string(when));
    }
    if (c->expires > 0) {
        cel_time_format(c->expires, when);
        json_object_set_new(headers, "expires", json_string(when));
    }
    if (c->owner != NULL)
        json_object_set_new(headers, "owner", json_string(c->owner));
    json_dump_callback(env, dump_cb, out, JSON_COMPACT);
    json_decref(env);
    buf_free(&body);
    buf_free(&b64);
}

void cel_msg_free(struct cel_msg *m)
{
    json_decref(m->envelope);
    json_decref(m->body);
    memset(m, 0, sizeof(*m));
}

void cel_redeliver(struct buf *out, const json_t *envelope, int retries, double eta)
{
    json_t *env = json_deep_copy(envelope);
    json_t *headers = json_object_get(env, "headers");
    json_t *props = json_object_get(env, "properties");
    if (!json_is_object(headers))
        json_object_set_new(env, "headers", headers = json_object());
    if (!json_is_object(props))
        json_object_set_new(env, "properties", props = json_object());
    char when[40], tag[37];
    json_object_set_new(headers, "retries", json_integer(retries));
    if (eta > 0) {
        cel_time_format(eta, when);
        json_object_set_new(headers, "eta", json_string(when));
    } else {
        json_object_set_new(headers, "eta", json_null());
    }
    if (retries > 0)
        json_object_set(headers, "parent_id", json_object_get(headers, "id"));
    else
        json_object_set_new(headers, "expires", json_null());
    json_object_del(headers, "redelivered");
    json_object_del(json_object_get(props, "delivery_info"), "redelivered");
    cel_uuid(tag);
    json_object_set_new(props, "delivery_tag", json_string(tag));
    json_dump_callback(env, dump_cb, out, JSON_COMPACT);
    json_decref(env);
}

#define TIME_MIN (-62135596800.0) /* 0001-01-01T00:00:00Z */
#define TIME_MAX 253402300800.0   /* 10000-01-01T00:00:00Z */

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * algorithm): timegm() would read TZ-free but is not in C11/POSIX. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* n decimal digits at *p into *v; advances p. */
static int digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        *v = *v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return 0;
}

int cel_time_parse(const char *s, double *epoch)
{
    const char *p = s;
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return -1;
    double frac = 0, scale = 0.1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (digits(&p, 2, &oh))
            return -1;
        if (*p == ':')
            p++;
        if (digits(&p, 2, &om))
            return -1;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 60 || oh > 23 || om > 59)
        return -1;
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    double t = (double)(days * 86400 + h * 3600 + mi * 60 + sec) + frac -
               sign * (oh * 3600 + om * 60);
    /* Python's datetime range (years 1-9999), in UTC: what we format back */
    if (t < TIME_MIN || t >= TIME_MAX)
        return -1;
    *epoch = t;
    return 0;
}

void cel_time_format(double epoch, char out[40])
{
    if (!(epoch >= TIME_MIN))
        epoch = TIME_MIN;
    if (epoch >= TIME_MAX)
        epoch = TIME_MAX - 1;
    long long secs = (long long)epoch; /* toward zero: floor it (no libm) */
    if ((double)secs > epoch)
        secs--;
    long us = (long)((epoch - (double)secs) * 1e6 + 0.5);
    if (us >= 1000000) {
        secs++;
        us -= 1000000;
    }
    /* civil_from_days (Howard Hinnant): gmtime's %Y is not zero-padded */
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    long long rem = secs - days * 86400;
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    /* in range: y 1..9999, rem 0..86399, us 0..999999 (the casts tell the
     * compiler so) */
    snprintf(out, 40, "%04d-%02u-%02uT%02d:%02d:%02d.%06d+00:00", (int)(y % 10000), m % 100,
             d % 100, (int)(rem / 3600 % 24), (int)(rem / 60 % 60), (int)(rem % 60),
             (int)(us % 1000000));
}

void cel_pidbox_channel(char *out, size_t n, int db)
{
    snprintf(out, n, "/%d.celery.pidbox", db);
}

void cel_revoke_broadcast(struct buf *out, const char *id, int terminate)
{
    struct buf body = {0}, b64 = {0};
    json_t *b = json_pack("{s:s,s:{s:s,s:b,s:s},s:n,s:n,s:n}", "method", "revoke", "arguments",
                          "task_id", id, "terminate", terminate, "signal", "SIGTERM",
                          "destination", "pattern", "matcher");
    jsonfmt_dump(b, &body, JSON_COMPACT);
    json_decref(b);
    b64_encode(&b64, body.data, body.len, B64_STD);
    char tag[37];
    cel_uuid(tag);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /* Receivers drop a broadcast older than headers.expires: 1 s, as Celery. */
    double expires = (double)tv.tv_sec + (double)tv.tv_usec / 1e6 + 1.0;
    json_t *env = json_pack("{s:s,s:s,s:s,s:{s:i,s:f},s:{s:i,s:{s:s,s:s},s:i,s:s,s:s}}", "body",
                            b64.data, "content-encoding", "utf-8", "content-type",
                            "application/json", "headers", "clock", 1, "expires", expires,
                            "properties", "delivery_mode", 2, "delivery_info", "exchange",
                            "celery.pidbox", "routing_key", "", "priority", 0, "body_encoding",
                            "base64", "delivery_tag", tag);
    json_dump_callback(env, dump_cb, out, JSON_COMPACT);
    json_decref(env);
    buf_free(&body);
    buf_free(&b64);
}

int cel_control_parse(const char *raw, size_t len, json_t **ids, int *terminate)
{
    *ids = NULL;
    *terminate = 0;
    json_t *env = json_loadb(raw, len, 0, NULL);
    json_t *jbody = json_object_get(env, "body");
    const char *benc =
        json_string_value(json_object_get(json_object_get(env, "properties"), "body_encoding"));
    if (!json_is_string(jbody)) {
        json_decref(env);
        return -1;
    }
    struct buf dec = {0};
    const char *bs = json_string_value(jbody);
    size_t blen = json_string_length(jbody);
    if (benc != NULL && strcmp(benc, "base64") == 0) {
        if (b64_decode(&dec, bs, blen, B64_STD) != 0) {
            buf_free(&dec); /* it may have reserved room */
            json_decref(env);
            return -1;
        }
        bs = dec.data ? dec.data : "";
        blen = dec.len;
    }
    json_t *body = json_loadb(bs, blen, 0, NULL);
    buf_free(&dec);
    json_decref(env);
    if (!json_is_object(body)) {
        json_decref(body);
        return -1;
    }
    const char *method = json_string_value(json_object_get(body, "method"));
    if (method == NULL || strcmp(method, "revoke") != 0) {
        json_decref(body);
        return method ? 0 : -1;
    }
    json_t *args = json_object_get(body, "arguments");
    json_t *tid = json_object_get(args, "task_id");
    *terminate = json_is_true(json_object_get(args, "terminate"));
    *ids = json_array();
    if (json_is_string(tid) && cel_id_valid(json_string_value(tid))) {
        json_array_append(*ids, tid);
    } else if (json_is_array(tid)) {
        size_t i;
        json_t *v;
        json_array_foreach(tid, i, v) {
            if (json_is_string(v) && cel_id_valid(json_string_value(v)))
                json_array_append(*ids, v);
        }
    }
    json_decref(body);
    return 1;
}

/* A header time: null/absent 0, an ISO string, or (older clients) a number
 * of epoch seconds. -1: present and unreadable. */
static int header_time(json_t *v, double *out)
{
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return *out > 0 ? 0 : -1;
    }
    if (json_is_string(v))
        return cel_time_parse(json_string_value(v), out);
    return -1;
}

int cel_parse(struct cel_msg *m, const char *raw, size_t len, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    json_error_t je;
    m->envelope = json_loadb(raw, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(m->envelope)) {
        snprintf(err, errlen, "message is not a JSON object");
        return -1;
    }
    json_t *headers = json_object_get(m->envelope, "headers");
    json_t *props = json_object_get(m->envelope, "properties");
    m->id = json_string_value(json_object_get(headers, "id"));
    m->task = json_string_value(json_object_get(headers, "task"));
    if (m->id != NULL && !cel_id_valid(m->id))
        m->id = NULL;
    json_t *di = json_object_get(props, "delivery_info");
    m->routing_key = json_string_value(json_object_get(di, "routing_key"));
    if (m->routing_key == NULL || m->routing_key[0] == '\0')
        m->routing_key = "celery";
    m->ignore_result = json_is_true(json_object_get(headers, "ignore_result"));
    m->owner = json_string_value(json_object_get(headers, "owner"));
    if (m->owner != NULL && !cel_id_valid(m->owner))
        m->owner = NULL;
    json_int_t prio = json_integer_value(json_object_get(props, "priority"));
    m->priority = prio < 0 ? 0 : prio > 9 ? 9 : (int)prio;
    json_int_t retries = json_integer_value(json_object_get(headers, "retries"));
    m->retries = retries < 0 ? 0 : retries > 1000000 ? 1000000 : (int)retries;
    json_t *tl = json_object_get(headers, "timelimit"); /* [hard, soft], either null */
    if (json_is_array(tl)) {
        json_t *hard = json_array_get(tl, 0), *soft = json_array_get(tl, 1);
        if (json_is_number(hard) && json_number_value(hard) > 0)
            m->time_limit = json_number_value(hard);
        if (json_is_number(soft) && json_number_value(soft) > 0)
            m->soft_time_limit = json_number_value(soft);
    }

    const char *ctype = json_string_value(json_object_get(m->envelope, "content-type"));
    if (m->id == NULL || m->task == NULL) {
        snprintf(err, errlen, "message without a task name or a valid id");
        return -1;
    }
    if (header_time(json_object_get(headers, "eta"), &m->eta) != 0) {
        snprintf(err, errlen, "eta is not an ISO-8601 time");
        return -1;
    }
    if (header_time(json_object_get(headers, "expires"), &m->expires) != 0) {
        snprintf(err, errlen, "expires is not an ISO-8601 time");
        return -1;
    }
    if (ctype == NULL || strcmp(ctype, "application/json") != 0) {
        snprintf(err, errlen, "content type %s is not application/json", ctype ? ctype : "(none)");
        return -1;
    }
    if (json_object_get(headers, "compression") != NULL &&
        !json_is_null(json_object_get(headers, "compression"))) {
        snprintf(err, errlen, "compressed messages are not supported");
        return -1;
    }
    json_t *jbody = json_object_get(m->envelope, "body");
    const char *benc = json_string_value(json_object_get(props, "body_encoding"));
    if (!json_is_string(jbody)) {
        snprintf(err, errlen, "message body is not a string");
        return -1;
    }
    const char *bs = json_string_value(jbody);
    size_t blen = json_string_length(jbody);
    struct buf dec = {0};
    if (benc != NULL && strcmp(benc, "base64") == 0) {
        if (b64_decode(&dec, bs, blen, B64_STD) != 0) {
            buf_free(&dec);
            snprintf(err, errlen, "message body is not valid base64");
            return -1;
        }
        bs = dec.data ? dec.data : "";
        blen = dec.len;
    } else if (benc != NULL) {
        snprintf(err, errlen, "body encoding %s is not supported", benc);
        return -1;
    }
    m->body = json_loadb(bs, blen, 0, &je);
    buf_free(&dec);
    if (!json_is_array(m->body) || json_array_size(m->body) < 2 ||
        !json_is_array(json_array_get(m->body, 0)) ||
        !json_is_object(json_array_get(m->body, 1))) {
        snprintf(err, errlen, "message body is not [args, kwargs, embed]");
        return -1;
    }
    m->args = json_array_get(m->body, 0);
    m->kwargs = json_array_get(m->body, 1);
    return 0;
}

int cel_state_ready(const char *s)
{
    return strcmp(s, CEL_SUCCESS) == 0 || strcmp(s, CEL_FAILURE) == 0 ||
           strcmp(s, CEL_REVOKED) == 0;
}

void cel_meta(struct buf *out, const struct cel_state *s)
{
    char date[40] = "";
    if (cel_state_ready(s->status)) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(date + n, sizeof(date) - n, ".%06ld", (long)tv.tv_usec);
    }
    json_t *meta = json_pack("{s:s,s:O?,s:s?,s:[],s:s?,s:s,s:s?}", "status", s->status, "result",
                             s->result, "traceback", s->traceback, "children", "date_done",
                             date[0] ? date : NULL, "task_id", s->task_id, "name", s->name);
    if (s->owner != NULL)
        json_object_set_new(meta, "owner", json_string(s->owner));
    jsonfmt_dump(meta, out, JSON_COMPACT);
    json_decref(meta);
}

json_t *cel_exc(const char *type, const char *module, const char *message)
{
    return json_pack("{s:s,s:[s],s:s}", "exc_type", type, "exc_message", message, "exc_module",
                     module);
}
