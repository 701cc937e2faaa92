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

void cel_message(struct buf *out, const char *task, const char *id, json_t *args,
                 json_t *kwargs, const char *queue, int priority)
{
    struct buf body = {0}, b64 = {0};
    json_t *embed = json_pack("{s:n,s:n,s:n,s:n}", "callbacks", "errbacks", "chain", "chord");
    json_t *arr = json_pack("[OOo]", args, kwargs, embed);
    jsonfmt_dump(arr, &body, JSON_COMPACT);
    json_decref(arr);
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

    json_t *env = json_pack(
        "{s:s, s:s, s:s,"
        " s:{s:s,s:s,s:s,s:n,s:n,s:n,s:n,s:n,s:i,s:[nn],s:s,s:n,s:s,s:s,s:s,s:b},"
        " s:{s:s,s:s,s:i,s:{s:s,s:s},s:i,s:s,s:s}}",
        "body", b64.data, "content-encoding", "utf-8", "content-type", "application/json",
        "headers", "lang", "c", "task", task, "id", id, "shadow", "eta", "expires", "group",
        "group_index", "retries", 0, "timelimit", "root_id", id, "parent_id", "argsrepr", "",
        "kwargsrepr", "", "origin", origin, "ignore_result", 0,
        "properties", "correlation_id", id, "reply_to", id, "delivery_mode", 2,
        "delivery_info", "exchange", "", "routing_key", queue, "priority", priority,
        "body_encoding", "base64", "delivery_tag", tag);
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

    const char *ctype = json_string_value(json_object_get(m->envelope, "content-type"));
    if (m->id == NULL || m->task == NULL) {
        snprintf(err, errlen, "message without a task name or a valid id");
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

void cel_meta(struct buf *out, const char *status, json_t *result, const char *traceback,
              const char *task_id, const char *name)
{
    char date[40] = "";
    if (cel_state_ready(status)) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(date + n, sizeof(date) - n, ".%06ld", (long)tv.tv_usec);
    }
    json_t *meta = json_pack("{s:s,s:O?,s:s?,s:[],s:s?,s:s,s:s?}", "status", status, "result",
                             result, "traceback", traceback, "children", "date_done",
                             date[0] ? date : NULL, "task_id", task_id, "name", name);
    jsonfmt_dump(meta, out, JSON_COMPACT);
    json_decref(meta);
}

json_t *cel_exc(const char *type, const char *module, const char *message)
{
    return json_pack("{s:s,s:[s],s:s}", "exc_type", type, "exc_message", message, "exc_module",
                     module);
}
