/* lib/celery.c: Celery's protocol v2 message and result formats on Redis, as
 * captured from Celery 5.2 in shared/research/celery-protocol.md: task ids,
 * uuid4s, priority queue names, the envelope cel_message builds and
 * cel_parse reads (base64 or plain JSON body), the result meta JSON and the
 * exception result shape. */
#include "../../lib/celery.c"

#include <stdlib.h>
#include <time.h>

#include "check.h"

/* §2: add.delay(4, 4) from the Python client, as LPUSHed to "celery" */
static const char captured[] =
    "{\"body\": \"W1s0LCA0XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbn"
    "VsbCwgImNob3JkIjogbnVsbH1d\", \"content-encoding\": \"utf-8\", \"content-type\": "
    "\"application/json\", \"headers\": {\"lang\": \"py\", \"task\": \"tasks.add\", \"id\": "
    "\"b5fc43c2-44e2-4217-92db-c133c0c6e17c\", \"shadow\": null, \"eta\": null, \"expires\": "
    "null, \"group\": null, \"group_index\": null, \"retries\": 0, \"timelimit\": [null, null], "
    "\"root_id\": \"b5fc43c2-44e2-4217-92db-c133c0c6e17c\", \"parent_id\": null, \"argsrepr\": "
    "\"(4, 4)\", \"kwargsrepr\": \"{}\", \"origin\": \"gen10512@vm\", \"ignore_result\": false}, "
    "\"properties\": {\"correlation_id\": \"b5fc43c2-44e2-4217-92db-c133c0c6e17c\", "
    "\"reply_to\": \"a09e92af-d44c-3331-9dfa-e4eae395dedd\", \"delivery_mode\": 2, "
    "\"delivery_info\": {\"exchange\": \"\", \"routing_key\": \"celery\"}, \"priority\": 0, "
    "\"body_encoding\": \"base64\", \"delivery_tag\": \"66ad4084-10cb-4904-a9f5-7ce49b231a7c\"}}";
#define CAPTURED_ID "b5fc43c2-44e2-4217-92db-c133c0c6e17c"


static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* 8-4-4-4-12 lowercase hex, version 4, RFC 4122 variant */
static int is_uuid4(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_hex(s[i])) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void test_uuid(void)
{
    char prev[37] = "";
    int bad = 0, same = 0;
    int variants[4] = {0};
    for (int i = 0; i < 400; i++) {
        char u[37];
        memset(u, 'X', sizeof(u));
        cel_uuid(u);
        if (!is_uuid4(u) || u[36] != '\0') {
            if (bad++ < 3)
                check(0, "cel_uuid gives a 36-character uuid4");
            fprintf(stderr, "  got \"%.37s\"\n", u);
        }
        if (strcmp(u, prev) == 0)
            same++;
        if (u[19] != '\0' && strchr("89ab", u[19]) != NULL)
            variants[strchr("89ab", u[19]) - "89ab"]++;
        if (!cel_id_valid(u))
            bad++;
        memcpy(prev, u, sizeof(prev));
    }
    check_int(bad, 0);
    check_int(same, 0);
    /* the two variant bits are fixed, the two below them random */
    check(variants[0] > 0 && variants[1] > 0 && variants[2] > 0 && variants[3] > 0,
          "all four variant nibbles 8, 9, a, b occur in 400 uuids");
}

static void test_id_valid(void)
{
    check_int(cel_id_valid(CAPTURED_ID), 1);
    check_int(cel_id_valid("a"), 1);
    check_int(cel_id_valid("AZaz09._-"), 1);
    check_int(cel_id_valid("task.2024_01-x"), 1);
    check_int(cel_id_valid(""), 0);

    char id[CEL_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    id[CEL_ID_MAX] = '\0';
    check_int(cel_id_valid(id), 1); /* 64: the longest */
    id[CEL_ID_MAX] = 'a';
    id[CEL_ID_MAX + 1] = '\0';
    check_int(cel_id_valid(id), 0); /* 65 */

    static const char *const bad[] = {"a b", "a/b", "a:b", "../x", "x\n", "\t", "a*", "a%20",
                                      "{id}", "a\"b", "\xc3\xa9", "a\x7f", "a\x01", "a+b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!check_int(cel_id_valid(bad[i]), 0))
            fprintf(stderr, "  id \"%s\"\n", bad[i]);
    }
}

static void check_key_at(int line, const char *queue, int priority, const char *want)
{
    char out[CEL_QUEUE_MAX];
    memset(out, 'X', sizeof(out));
    int rc = cel_queue_key(out, sizeof(out), queue, priority);
    check_at(__FILE__, line, rc == 0, "cel_queue_key fits", queue);
    if (!check_str(out, want))
        fprintf(stderr, "  priority %d, checked at line %d\n", priority, line);
}
#define check_key(q, p, want) check_key_at(__LINE__, (q), (p), (want))

static void test_queue_key(void)
{
    check_key("q", 0, "q");
    check_key("q", 1, "q");
    check_key("q", 2, "q");
    check_key("q", 3, "q\x06\x16" "3");
    check_key("q", 4, "q\x06\x16" "3");
    check_key("q", 5, "q\x06\x16" "3");
    check_key("q", 6, "q\x06\x16" "6");
    check_key("q", 7, "q\x06\x16" "6");
    check_key("q", 8, "q\x06\x16" "6");
    check_key("q", 9, "q\x06\x16" "9");
    check_key("q", 10, "q\x06\x16" "9"); /* kombu clamps 10 to 9 (§2) */
    check_key("celery", 0, "celery");
    check_key("celery", 6, "celery\x06\x16" "6");

    /* out too small: -1, never an overflow */
    char small[8];
    check_int(cel_queue_key(small, 7, "celery", 0), 0); /* "celery" + NUL = 7 */
    check_str(small, "celery");
    check_int(cel_queue_key(small, 6, "celery", 0), -1);
    check_int(cel_queue_key(small, 5, "q", 3), 0); /* "q\x06\x163" + NUL = 5 */
    check_str(small, "q\x06\x16" "3");
    check_int(cel_queue_key(small, 4, "q", 3), -1);
    check_int(cel_queue_key(small, 1, "q", 0), -1);
}

/* cel_parse of the C string raw; fills err. */
static int parse(struct cel_msg *m, const char *raw, char *err, size_t errlen)
{
    err[0] = '\0';
    return cel_parse(m, raw, strlen(raw), err, errlen);
}

/* cel_parse of the JSON object env (consumed), dumped to text first. */
static int parse_obj(struct cel_msg *m, json_t *env, char *err, size_t errlen)
{
    char *s = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    int rc = parse(m, s ? s : "", err, errlen);
    free(s);
    return rc;
}

static json_t *captured_obj(void)
{
    json_t *env = json_loads(captured, 0, NULL);
    if (env == NULL) {
        fprintf(stderr, "the captured message does not load\n");
        exit(1);
    }
    return env;
}

static void test_parse_captured(void)
{
    struct cel_msg m;
    char err[256];
    if (check_int(parse(&m, captured, err, sizeof(err)), 0)) {
        check_str(m.task, "tasks.add");
        check_str(m.id, CAPTURED_ID);
        check_json(m.args, "[4, 4]");
        check_json(m.kwargs, "{}");
        check_json(m.body, "[[4, 4], {}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null,"
                           " \"chord\": null}]");
        check_str(m.routing_key, "celery");
        check_int(m.ignore_result, 0);
        check(json_is_object(m.envelope), "the envelope is kept");
    } else {
        fprintf(stderr, "  err: %s\n", err);
    }
    cel_msg_free(&m);
    check(m.envelope == NULL && m.body == NULL && m.id == NULL, "cel_msg_free clears");

    /* the same with ignore_result and another routing key */
    json_t *env = captured_obj();
    json_object_set_new(json_object_get(env, "headers"), "ignore_result", json_true());
    json_object_set_new(json_object_get(json_object_get(env, "properties"), "delivery_info"),
                        "routing_key", json_string("hipri"));
    check_int(parse_obj(&m, env, err, sizeof(err)), 0);
    check_int(m.ignore_result, 1);
    check_str(m.routing_key, "hipri");
    cel_msg_free(&m);

    /* no delivery_info, or an empty routing key: "celery" */
    env = captured_obj();
    json_object_del(json_object_get(env, "properties"), "delivery_info");
    check_int(parse_obj(&m, env, err, sizeof(err)), 0);
    check_str(m.routing_key, "celery");
    cel_msg_free(&m);
    env = captured_obj();
    json_object_set_new(json_object_get(json_object_get(env, "properties"), "delivery_info"),
                        "routing_key", json_string(""));
    check_int(parse_obj(&m, env, err, sizeof(err)), 0);
    check_str(m.routing_key, "celery");
    cel_msg_free(&m);

    /* compression: null is the same as absent */
    env = captured_obj();
    json_object_set_new(json_object_get(env, "headers"), "compression", json_null());
    check_int(parse_obj(&m, env, err, sizeof(err)), 0);
    cel_msg_free(&m);
}

static void test_parse_plain_body(void)
{
    /* no body_encoding: the body string is the JSON itself (§2) */
    json_t *env = captured_obj();
    json_object_del(json_object_get(env, "properties"), "body_encoding");
    json_object_set_new(env, "body", json_string("[[1, \"two\"], {\"z\": [3]}, {}]"));
    struct cel_msg m;
    char err[256];
    if (check_int(parse_obj(&m, env, err, sizeof(err)), 0)) {
        check_json(m.args, "[1, \"two\"]");
        check_json(m.kwargs, "{\"z\": [3]}");
        check_str(m.task, "tasks.add");
    } else {
        fprintf(stderr, "  err: %s\n", err);
    }
    cel_msg_free(&m);

    /* a body of just [args, kwargs] is enough */
    env = captured_obj();
    json_object_del(json_object_get(env, "properties"), "body_encoding");
    json_object_set_new(env, "body", json_string("[[], {}]"));
    check_int(parse_obj(&m, env, err, sizeof(err)), 0);
    check_json(m.args, "[]");
    cel_msg_free(&m);
}

/* Expects cel_parse to reject env (consumed); id_want is what m.id must be
 * afterwards (NULL: not readable). */
static void check_reject_at(int line, json_t *env, const char *id_want, const char *what)
{
    struct cel_msg m;
    char err[256];
    int rc = parse_obj(&m, env, err, sizeof(err));
    if (!check_at(__FILE__, line, rc == -1, "cel_parse rejects", what)) {
        cel_msg_free(&m);
        return;
    }
    check_at(__FILE__, line, err[0] != '\0', "a reason in err", what);
    if (!check_str(m.id, id_want))
        fprintf(stderr, "  (%s, checked at line %d)\n", what, line);
    cel_msg_free(&m);
}
#define check_reject(env, id, what) check_reject_at(__LINE__, (env), (id), (what))

static void test_parse_rejects(void)
{
    struct cel_msg m;
    char err[256];

    /* not JSON, not an object */
    static const char *const notjson[] = {"", "{", "not json", "[1,2]", "\"s\"", "null",
                                          "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i < sizeof(notjson) / sizeof(notjson[0]); i++) {
        int rc = parse(&m, notjson[i], err, sizeof(err));
        if (!check_int(rc, -1))
            fprintf(stderr, "  input: %s\n", notjson[i]);
        check(err[0] != '\0', "a reason in err");
        check(m.id == NULL, "no id from a non-message");
        cel_msg_free(&m);
    }
    /* a truncated copy of a good message */
    check_int(cel_parse(&m, captured, sizeof(captured) / 2, err, sizeof(err)), -1);
    check(m.id == NULL, "no id from a truncated message");
    cel_msg_free(&m);

    json_t *env;
    /* text/plain: refused, the id still readable so FAILURE can be stored */
    env = captured_obj();
    json_object_set_new(env, "content-type", json_string("text/plain"));
    check_reject(env, CAPTURED_ID, "text/plain");
    env = captured_obj();
    json_object_set_new(env, "content-type", json_string("application/x-python-serialize"));
    check_reject(env, CAPTURED_ID, "pickle");
    env = captured_obj();
    json_object_del(env, "content-type");
    check_reject(env, CAPTURED_ID, "no content-type");

    /* compressed */
    env = captured_obj();
    json_object_set_new(json_object_get(env, "headers"), "compression",
                        json_string("application/x-gzip"));
    check_reject(env, CAPTURED_ID, "compression header");

    /* bad base64 */
    env = captured_obj();
    json_object_set_new(env, "body", json_string("W1s0LCA0XSwge30s!"));
    check_reject(env, CAPTURED_ID, "bad base64");
    env = captured_obj();
    json_object_set_new(env, "body", json_string("W1s0LCA0XSwge30"));
    check_reject(env, CAPTURED_ID, "unpadded base64");
    env = captured_obj();
    /* plain JSON, but marked base64: 16 bytes, a multiple of 4, so
     * b64_decode gets as far as reserving room before it meets '[', and
     * cel_parse must free that buffer too (LeakSanitizer checks) */
    json_object_set_new(env, "body", json_string("[[4, 4], {}, {}]"));
    check_reject(env, CAPTURED_ID, "JSON body marked base64");
    env = captured_obj();
    json_object_set_new(json_object_get(env, "properties"), "body_encoding", json_string("gzip"));
    check_reject(env, CAPTURED_ID, "unknown body_encoding");

    /* body not [list, dict, ...] */
    static const char *const bodies[] = {"{\"args\": [4, 4]}", "[]", "[[4, 4]]", "[{}, {}, {}]",
                                         "[[4, 4], [], {}]", "[[4, 4], null, {}]", "\"x\"",
                                         "[[4, 4], {}", "", "null", "4"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        env = captured_obj();
        json_object_del(json_object_get(env, "properties"), "body_encoding");
        json_object_set_new(env, "body", json_string(bodies[i]));
        check_reject(env, CAPTURED_ID, bodies[i]);
        /* and the same base64-encoded */
        struct buf b = {0};
        b64_encode(&b, bodies[i], strlen(bodies[i]), B64_STD);
        env = captured_obj();
        json_object_set_new(env, "body", json_string(b.data ? b.data : ""));
        buf_free(&b);
        check_reject(env, CAPTURED_ID, bodies[i]);
    }
    /* a body that is JSON but not a string */
    env = captured_obj();
    json_object_set_new(env, "body", json_pack("[[i,i],{},{}]", 4, 4));
    check_reject(env, CAPTURED_ID, "body not a string");
    env = captured_obj();
    json_object_del(env, "body");
    check_reject(env, CAPTURED_ID, "no body");

    /* missing task or id */
    env = captured_obj();
    json_object_del(json_object_get(env, "headers"), "task");
    check_reject(env, CAPTURED_ID, "no task");
    env = captured_obj();
    json_object_set_new(json_object_get(env, "headers"), "task", json_integer(1));
    check_reject(env, CAPTURED_ID, "task not a string");
    env = captured_obj();
    json_object_del(json_object_get(env, "headers"), "id");
    check_reject(env, NULL, "no id");
    env = captured_obj();
    json_object_set_new(json_object_get(env, "headers"), "id", json_string("a b/../c"));
    check_reject(env, NULL, "an id we do not accept");
    env = captured_obj();
    json_object_set_new(json_object_get(env, "headers"), "id", json_integer(7));
    check_reject(env, NULL, "id not a string");
    env = captured_obj();
    json_object_del(env, "headers");
    check_reject(env, NULL, "no headers");
}

static void test_message_round_trip(void)
{
    json_t *args = json_loads("[1, \"two\", [3.5, null], {\"k\": true}]", 0, NULL);
    json_t *kwargs = json_loads("{\"n\": {\"deep\": [\"\\u00e9\"]}, \"s\": \"a\\\"b\"}", 0, NULL);
    const char *id = "0f6b2a0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b";
    struct buf out = {0};
    buf_puts(&out, "prefix:");
    struct cel_call call = {.task = "tasks.mul", .id = id, .args = args, .kwargs = kwargs,
                            .queue = "hipri", .priority = 7};
    cel_message(&out, &call);
    check(args->refcount == 1 && kwargs->refcount == 1, "args and kwargs are borrowed");
    check(out.len > 7 && memcmp(out.data, "prefix:", 7) == 0, "cel_message appends");

    struct cel_msg m;
    char err[256] = "";
    if (check_int(cel_parse(&m, out.data + 7, out.len - 7, err, sizeof(err)), 0)) {
        check_str(m.task, "tasks.mul");
        check_str(m.id, id);
        check(json_equal(m.args, args), "args read back");
        check(json_equal(m.kwargs, kwargs), "kwargs read back");
        check_str(m.routing_key, "hipri");
        check_int(m.ignore_result, 0);
        check_json(json_array_get(m.body, 2),
                   "{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}");
        check_int(json_array_size(m.body), 3);

        /* the envelope's fields, as the Python worker needs them (§2) */
        json_t *env = m.envelope, *h = json_object_get(env, "headers"),
               *p = json_object_get(env, "properties");
        check_str(json_string_value(json_object_get(env, "content-type")), "application/json");
        check_str(json_string_value(json_object_get(env, "content-encoding")), "utf-8");
        check_str(json_string_value(json_object_get(h, "task")), "tasks.mul");
        check_str(json_string_value(json_object_get(h, "id")), id);
        check_str(json_string_value(json_object_get(h, "root_id")), id);
        check(json_is_null(json_object_get(h, "parent_id")), "parent_id null");
        check(json_is_null(json_object_get(h, "group")), "group null");
        check(json_is_null(json_object_get(h, "eta")), "eta null");
        check(json_is_null(json_object_get(h, "expires")), "expires null");
        check_json(json_object_get(h, "retries"), "0");
        check_json(json_object_get(h, "timelimit"), "[null, null]");
        check(json_object_get(h, "owner") == NULL, "no owner header unless given");
        check(m.owner == NULL, "no owner read");
        check(json_is_false(json_object_get(h, "ignore_result")), "ignore_result false");
        check(json_object_get(h, "compression") == NULL, "no compression header");
        check_str(json_string_value(json_object_get(p, "body_encoding")), "base64");
        check_json(json_object_get(p, "priority"), "7");
        check_json(json_object_get(p, "delivery_mode"), "2");
        check_json(json_object_get(p, "delivery_info"),
                   "{\"exchange\": \"\", \"routing_key\": \"hipri\"}");
        check_str(json_string_value(json_object_get(p, "correlation_id")), id);
        const char *tag = json_string_value(json_object_get(p, "delivery_tag"));
        check(is_uuid4(tag), "delivery_tag is a fresh uuid4");
        check(tag == NULL || strcmp(tag, id) != 0, "delivery_tag is not the task id");
        const char *origin = json_string_value(json_object_get(h, "origin"));
        check(origin != NULL && strchr(origin, '@') != NULL, "origin is pid@host");

        /* the body, decoded by hand: compact [args, kwargs, embed] */
        const char *body = json_string_value(json_object_get(env, "body"));
        struct buf dec = {0};
        if (check(body != NULL, "body is a string") &&
            check_int(b64_decode(&dec, body, strlen(body), B64_STD), 0)) {
            json_t *arr = json_loadb(dec.data, dec.len, 0, NULL);
            check(arr != NULL && json_equal(json_array_get(arr, 0), args) &&
                      json_equal(json_array_get(arr, 1), kwargs),
                  "the body decodes to [args, kwargs, embed]");
            json_decref(arr);
        }
        buf_free(&dec);
    } else {
        fprintf(stderr, "  err: %s\n  message: %s\n", err, out.data);
    }
    cel_msg_free(&m);

    /* two messages get different delivery tags */
    struct buf out2 = {0};
    cel_message(&out2, &call);
    check(out2.len == out.len - 7 && memcmp(out2.data, out.data + 7, out2.len) != 0,
          "a second message differs (its delivery_tag)");
    buf_free(&out2);

    /* empty args and kwargs, priority 0, default queue */
    json_t *noargs = json_array(), *nokw = json_object();
    buf_clear(&out);
    cel_message(&out, &(struct cel_call){.task = "tasks.sleep", .id = "x", .args = noargs,
                                         .kwargs = nokw});
    if (check_int(cel_parse(&m, out.data, out.len, err, sizeof(err)), 0)) {
        check_str(m.id, "x");
        check_json(m.args, "[]");
        check_json(m.kwargs, "{}");
        check_str(m.routing_key, "celery");
        check_json(json_object_get(json_object_get(m.envelope, "properties"), "priority"), "0");
    }
    cel_msg_free(&m);
    json_decref(noargs);
    json_decref(nokw);

    json_decref(args);
    json_decref(kwargs);
    buf_free(&out);
}

/* date_done: naive UTC ISO with microseconds, "2026-11-27T11:14:53.499260",
 * within a few seconds of now. */
static int is_date_now(const char *s)
{
    if (s == NULL || strlen(s) != 26)
        return 0;
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddddd";
    for (int i = 0; i < 26; i++) {
        if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != pat[i])
            return 0;
    }
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == NULL || *end != '.')
        return 0;
    time_t t = timegm(&tm), now = time(NULL);
    return t <= now + 1 && t >= now - 5;
}

static void test_meta(void)
{
    struct buf out = {0};
    /* not ready: date_done null; the exact bytes (key order as Celery's) */
    cel_meta(&out, &(struct cel_state){.status = CEL_PENDING, .task_id = "abc",
                                       .name = "tasks.add"});
    check_str(out.data, "{\"status\":\"PENDING\",\"result\":null,\"traceback\":null,\"children\":[],"
                        "\"date_done\":null,\"task_id\":\"abc\",\"name\":\"tasks.add\"}");
    buf_free(&out);

    json_t *who = json_pack("{s:i,s:s}", "pid", 42, "hostname", "h");
    cel_meta(&out, &(struct cel_state){.status = CEL_STARTED, .result = who, .task_id = "abc"});
    check(who->refcount == 1, "result is borrowed");
    check_str(out.data, "{\"status\":\"STARTED\",\"result\":{\"pid\":42,\"hostname\":\"h\"},"
                        "\"traceback\":null,\"children\":[],\"date_done\":null,\"task_id\":\"abc\","
                        "\"name\":null}");
    buf_free(&out);
    json_decref(who);

    /* floats as Python writes them (lib/jsonfmt), not jansson's 17 digits */
    json_t *tenth = json_real(0.1);
    cel_meta(&out, &(struct cel_state){.status = CEL_STARTED, .result = tenth, .task_id = "abc",
                                       .name = "tasks.add"});
    check(strstr(out.data, "\"result\":0.1,") != NULL, "0.1 is written as 0.1");
    json_decref(tenth);
    buf_free(&out);

    cel_meta(&out, &(struct cel_state){.status = CEL_RETRY, .traceback = "Traceback...",
                                       .task_id = "abc", .name = "tasks.add"});
    json_t *j = json_loads(out.data, 0, NULL);
    check(json_is_null(json_object_get(j, "date_done")), "RETRY is not ready");
    check_str(json_string_value(json_object_get(j, "traceback")), "Traceback...");
    json_decref(j);
    buf_free(&out);

    /* ready states: date_done set */
    static const char *const ready[] = {CEL_SUCCESS, CEL_FAILURE, CEL_REVOKED};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_integer(8);
        buf_puts(&out, "pre");
        cel_meta(&out, &(struct cel_state){.status = ready[i], .result = r,
                                           .task_id = CAPTURED_ID, .name = "tasks.add"});
        check(r->refcount == 1, "result is borrowed");
        json_decref(r);
        check(memcmp(out.data, "pre", 3) == 0, "cel_meta appends");
        j = json_loads(out.data + 3, 0, NULL);
        if (!check(json_is_object(j), "cel_meta gives a JSON object")) {
            buf_free(&out);
            continue;
        }
        check_int(json_object_size(j), 7);
        check_str(json_string_value(json_object_get(j, "status")), ready[i]);
        check_json(json_object_get(j, "result"), "8");
        check(json_is_null(json_object_get(j, "traceback")), "traceback null");
        check_json(json_object_get(j, "children"), "[]");
        check_str(json_string_value(json_object_get(j, "task_id")), CAPTURED_ID);
        check_str(json_string_value(json_object_get(j, "name")), "tasks.add");
        const char *d = json_string_value(json_object_get(j, "date_done"));
        if (!check(is_date_now(d), "date_done is naive UTC ISO with microseconds, now"))
            fprintf(stderr, "  date_done: %s\n", d ? d : "(null)");
        json_decref(j);
        buf_free(&out);
    }

    /* a FAILURE with cel_exc's result, as the runner stores it */
    json_t *exc = cel_exc("ValueError", "builtins", "boom");
    cel_meta(&out, &(struct cel_state){.status = CEL_FAILURE, .result = exc, .traceback = "tb",
                                       .task_id = "abc", .name = "tasks.fail"});
    j = json_loads(out.data, 0, NULL);
    check_json(json_object_get(j, "result"),
               "{\"exc_type\": \"ValueError\", \"exc_message\": [\"boom\"], \"exc_module\": "
               "\"builtins\"}");
    check_str(json_string_value(json_object_get(j, "traceback")), "tb");
    json_decref(j);
    json_decref(exc);
    buf_free(&out);
}

static void test_exc(void)
{
    json_t *e = cel_exc("NotRegistered", "celery.exceptions", "tasks.nope");
    char *s = json_dumps(e, JSON_COMPACT);
    check_str(s, "{\"exc_type\":\"NotRegistered\",\"exc_message\":[\"tasks.nope\"],"
                 "\"exc_module\":\"celery.exceptions\"}");
    free(s);
    check_int(e->refcount, 1);
    json_decref(e);

    e = cel_exc("TypeError", "builtins", "add() takes 2 positional arguments but 3 were given");
    check_json(e, "{\"exc_type\": \"TypeError\", \"exc_message\": [\"add() takes 2 positional "
                  "arguments but 3 were given\"], \"exc_module\": \"builtins\"}");
    json_decref(e);

    e = cel_exc("ValueError", "builtins", "");
    check_json(json_object_get(e, "exc_message"), "[\"\"]");
    json_decref(e);
}

static void test_state_ready(void)
{
    check_int(cel_state_ready(CEL_SUCCESS), 1);
    check_int(cel_state_ready(CEL_FAILURE), 1);
    check_int(cel_state_ready(CEL_REVOKED), 1);
    check_int(cel_state_ready(CEL_PENDING), 0);
    check_int(cel_state_ready(CEL_STARTED), 0);
    check_int(cel_state_ready(CEL_RETRY), 0);
    check_int(cel_state_ready(""), 0);
    check_int(cel_state_ready("success"), 0);
    check_int(cel_state_ready("SUCCESSFUL"), 0);
}


/* ISO-8601 as Celery writes eta/expires, and the forms it reads. */
static void test_time(void)
{
    double t;
    check(cel_time_parse("2026-11-27T11:16:56.295718+00:00", &t) == 0 &&
              t > 1795778216.2957 && t < 1795778216.2958,
          "Celery's own eta form");
    check(cel_time_parse("1970-01-01T00:00:00Z", &t) == 0 && t == 0, "Z");
    check(cel_time_parse("1970-01-01 01:00:00+01:00", &t) == 0 && t == 0, "space, +01:00");
    check(cel_time_parse("1970-01-01T00:00:00-0130", &t) == 0 && t == 5400, "-0130");
    check(cel_time_parse("2000-02-29T12:00:00", &t) == 0 && t == 951825600, "naive is UTC, leap day");
    check(cel_time_parse("2024-12-31T23:59:59.5", &t) == 0 && t == 1735689599.5, "fraction");
    const char *bad[] = {"", "2026", "2026-11-27", "2026-11-27T11:16", "2026-13-01T00:00:00",
                         "2026-02-30T00:00:00", "2026-11-27T24:00:00", "2026-11-27T11:16:56.",
                         "2026-11-27T11:16:56+5", "2026-11-27T11:16:56 junk", "tomorrow",
                         "2026-11-27T11:16:56+00:00x", "-026-11-27T11:16:56"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (!check(cel_time_parse(bad[i], &t) == -1, "an unreadable time is refused"))
            fprintf(stderr, "  (%s)\n", bad[i]);
    char out[40];
    cel_time_format(1795778216.295718, out);
    check_str(out, "2026-11-27T11:16:56.295718+00:00");
    cel_time_format(0.9999999, out);
    check_str(out, "1970-01-01T00:00:01.000000+00:00");
    check(cel_time_parse(out, &t) == 0 && t == 1, "format and parse round-trip");
    /* Python's datetime range, formatted with four-digit years */
    check(cel_time_parse("0001-01-01T00:00:00Z", &t) == 0, "year 1");
    cel_time_format(t, out);
    check_str(out, "0001-01-01T00:00:00.000000+00:00");
    check(cel_time_parse("9999-12-31T23:59:59Z", &t) == 0, "year 9999");
    check(cel_time_parse("0000-03-01T00:00:00Z", &t) == -1, "year 0 is refused");
    check(cel_time_parse("0001-01-01T00:00:00+00:01", &t) == -1, "before year 1 in UTC: refused");
    cel_time_format(-86400.5, out);
    check_str(out, "1969-12-30T23:59:59.500000+00:00");
}

/* A delayed message carries eta/expires; its redelivery (a retry) keeps the
 * id and body, counts the retry, gets a new tag and parent_id = its id. */
static void test_eta_and_redeliver(void)
{
    json_t *args = json_pack("[ii]", 4, 4), *kw = json_object();
    struct buf out = {0};
    cel_message(&out, &(struct cel_call){.task = "tasks.add", .id = "abc", .args = args,
                                         .kwargs = kw, .queue = "q2", .priority = 9,
                                         .eta = 1795778216.5, .expires = 1795778300});
    struct cel_msg m;
    char err[128];
    if (check(cel_parse(&m, out.data, out.len, err, sizeof(err)) == 0, "parses")) {
        check(m.eta == 1795778216.5 && m.expires == 1795778300, "eta and expires read back");
        check(m.priority == 9 && m.retries == 0, "priority, no retries");
        check_str(m.routing_key, "q2");
        struct buf next = {0};
        cel_redeliver(&next, m.envelope, 1, 1795778400);
        struct cel_msg n;
        if (check(cel_parse(&n, next.data, next.len, err, sizeof(err)) == 0, "retry parses")) {
            json_t *h = json_object_get(n.envelope, "headers");
            json_t *p = json_object_get(n.envelope, "properties");
            check_str(n.id, "abc");
            check(n.retries == 1 && n.eta == 1795778400, "retries+1 and the new eta");
            check_str(json_string_value(json_object_get(h, "parent_id")), "abc");
            check(strcmp(json_string_value(json_object_get(p, "delivery_tag")),
                         json_string_value(json_object_get(
                             json_object_get(m.envelope, "properties"), "delivery_tag"))) != 0,
                  "a new delivery_tag");
            check(json_equal(n.args, m.args), "the same args");
            check(n.expires == 1795778300, "a retry keeps expires");
            cel_msg_free(&n);
        }
        buf_free(&next);
        cel_redeliver(&next, m.envelope, 0, 0);
        if (check(cel_parse(&n, next.data, next.len, err, sizeof(err)) == 0, "re-run parses")) {
            check(n.retries == 0 && n.eta == 0 && n.expires == 0, "a re-run: no eta, no expires");
            cel_msg_free(&n);
        }
        buf_free(&next);
        cel_msg_free(&m);
    }
    buf_free(&out);
    /* timelimit [hard, soft], and a bad eta refused */
    json_t *env = json_pack("{s:s,s:s,s:{s:s,s:s,s:[ii],s:s},s:{}}", "body", "[[], {}, {}]",
                            "content-type", "application/json", "headers", "id", "x", "task",
                            "t", "timelimit", 5, 2, "eta", "soon", "properties");
    char *raw = json_dumps(env, 0);
    check(cel_parse(&m, raw, strlen(raw), err, sizeof(err)) == -1 && strstr(err, "eta"),
          "an unreadable eta is refused");
    cel_msg_free(&m);
    free(raw);
    json_object_set_new(json_object_get(env, "headers"), "eta", json_null());
    raw = json_dumps(env, 0);
    if (check(cel_parse(&m, raw, strlen(raw), err, sizeof(err)) == 0, "plain body parses"))
        check(m.time_limit == 5 && m.soft_time_limit == 2, "timelimit is [hard, soft]");
    cel_msg_free(&m);
    free(raw);
    json_decref(env);
    json_decref(args);
    json_decref(kw);
}

/* Our revoke broadcast reads back; Python's form (task_id list) too. */
static void test_control(void)
{
    struct buf b = {0};
    cel_revoke_broadcast(&b, "id-1", 1);
    json_t *ids;
    int term;
    if (check(cel_control_parse(b.data, b.len, &ids, &term) == 1, "a revoke")) {
        check(term == 1 && json_array_size(ids) == 1, "terminate and one id");
        check_str(json_string_value(json_array_get(ids, 0)), "id-1");
        json_decref(ids);
    }
    buf_free(&b);
    /* {"method":"revoke","arguments":{"task_id":["a","b c"]}} in base64 */
    struct buf body = {0};
    const char *js = "{\"method\":\"revoke\",\"arguments\":{\"task_id\":[\"a\",\"b c\"]}}";
    b64_encode(&body, js, strlen(js), B64_STD);
    json_t *env = json_pack("{s:s,s:{s:s}}", "body", body.data, "properties", "body_encoding",
                            "base64");
    char *raw = json_dumps(env, 0);
    if (check(cel_control_parse(raw, strlen(raw), &ids, &term) == 1, "a list of ids")) {
        check(term == 0 && json_array_size(ids) == 1, "invalid ids dropped");
        json_decref(ids);
    }
    free(raw);
    json_decref(env);
    buf_free(&body);
    const char *ping = "{\"body\":\"{\\\"method\\\":\\\"ping\\\"}\"}";
    check(cel_control_parse(ping, strlen(ping), &ids, &term) == 0 && ids == NULL,
          "another method: 0");
    check(cel_control_parse("nope", 4, &ids, &term) == -1, "garbage: -1");
    char chan[32];
    cel_pidbox_channel(chan, sizeof(chan), 3);
    check_str(chan, "/3.celery.pidbox");
}

/* The owner and time limits travel in the message's headers and come back
 * from cel_parse; an owner our keys cannot take is not read. The meta
 * carries the owner last, after Celery's own keys. */
static void test_owner_and_limits(void)
{
    struct buf out = {0};
    cel_message(&out, &(struct cel_call){.task = "tasks.add", .id = "abc", .owner = "42",
                                         .time_limit = 30, .soft_time_limit = 20.5});
    struct cel_msg m;
    char err[128];
    if (check_int(cel_parse(&m, out.data, out.len, err, sizeof(err)), 0)) {
        check_str(m.owner, "42");
        check(m.time_limit == 30 && m.soft_time_limit == 20.5, "timelimit [30, 20.5] read back");
        check_json(json_object_get(json_object_get(m.envelope, "headers"), "timelimit"),
                   "[30.0, 20.5]");
        check_json(m.args, "[]");
        check_json(m.kwargs, "{}");
    }
    cel_msg_free(&m);
    json_t *env = json_loadb(out.data, out.len, 0, NULL);
    json_object_set_new(json_object_get(env, "headers"), "owner", json_string("a b"));
    char *raw = json_dumps(env, JSON_COMPACT);
    if (check_int(cel_parse(&m, raw, strlen(raw), err, sizeof(err)), 0))
        check(m.owner == NULL, "an owner with a blank is not read");
    cel_msg_free(&m);
    free(raw);
    json_decref(env);
    buf_free(&out);

    cel_meta(&out, &(struct cel_state){.status = CEL_PENDING, .task_id = "abc",
                                       .name = "tasks.add", .owner = "42"});
    check_str(out.data, "{\"status\":\"PENDING\",\"result\":null,\"traceback\":null,\"children\":[],"
                        "\"date_done\":null,\"task_id\":\"abc\",\"name\":\"tasks.add\","
                        "\"owner\":\"42\"}");
    buf_free(&out);
}

/* Queue names: kombu keys a queue's list by its bare name, so a name that
 * Redis already holds for something else is refused. */
static void test_queue_valid(void)
{
    static const char *const good[] = {"celery", "reports", "a", "q.1-x_y", "revoked2",
                                       "my.pidbox.q", "unackedx", "kombu.binding"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!check_int(cel_queue_valid(good[i]), 1))
            fprintf(stderr, "  (%s)\n", good[i]);
    static const char *const bad[] = {"", "revoked", "unacked", "unacked_index",
                                      "unacked_mutex", "_kombu.binding.celery",
                                      "celery-task-meta-x", "celery-taskset-meta-x",
                                      "chord-unlock-x", "celery@host.celery.pidbox",
                                      "x.reply.celery.pidbox", "qrun:queues", "a b", "a/b",
                                      "user:1", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (!check_int(cel_queue_valid(bad[i]), 0))
            fprintf(stderr, "  (%s)\n", bad[i]);
    char longq[CEL_QUEUE_NAME_MAX + 2];
    memset(longq, 'q', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    check_int(cel_queue_valid(longq), 0);
    longq[CEL_QUEUE_NAME_MAX] = '\0';
    check_int(cel_queue_valid(longq), 1);
}

int main(void)
{
    test_uuid();
    test_id_valid();
    test_queue_key();
    test_parse_captured();
    test_parse_plain_body();
    test_parse_rejects();
    test_message_round_trip();
    test_meta();
    test_exc();
    test_state_ready();
    test_time();
    test_eta_and_redeliver();
    test_control();
    test_owner_and_limits();
    test_queue_valid();
    return check_done();
}
