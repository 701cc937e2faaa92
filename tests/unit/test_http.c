/* lib/http.c: a CGI environment in, a FastAPI-shaped response out.
 *
 * Requests are parsed from plain "NAME=value" arrays, as serve.c gets them
 * from FastCGI; every test parses under the prefix "/api/hello" into one
 * http_req/http_resp pair reused for the whole run (as a route process does),
 * freed at the end so LeakSanitizer sees everything released. */
#include "../../lib/http.c"

#include "check.h"

#define PREFIX "/api/hello"

static struct http_req rq;
static struct http_resp rs;

/* parse(env): a fresh response, then http_req_parse of the NULL-terminated
 * env under PREFIX. The env must outlive the checks on rq. */
static int parse_env(const char *const *env)
{
    http_resp_clear(&rs);
    return http_req_parse(&rq, (char *const *)env, PREFIX, &rs);
}
/* PARSE("REQUEST_URI=/api/hello/x", ...): the array lives to the end of the
 * enclosing block, like the FastCGI environment lives for one request. */
#define PARSE(...) parse_env((const char *[]){__VA_ARGS__, NULL})

#define check_body(want) check_mem(rs.body.data, rs.body.len, (want), strlen(want))

/* Checks rq's segments against the NULL-terminated list `want`. */
static void check_segs_at(int line, const char *const *want)
{
    size_t n = 0;
    while (want[n] != NULL)
        n++;
    if (!check_int(rq.nseg, n)) {
        fprintf(stderr, "  (segments checked at line %d)\n", line);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!check_str(rq.seg[i], want[i]))
            fprintf(stderr, "  (segment %zu, checked at line %d)\n", i, line);
    }
}
#define check_segs(...) check_segs_at(__LINE__, (const char *[]){__VA_ARGS__, NULL})

static int is_generated_id(const char *id)
{
    if (strlen(id) != 32)
        return 0;
    for (const char *p = id; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    }
    return 1;
}

static void test_segments(void)
{
    check_int(PARSE("REQUEST_METHOD=GET", "REQUEST_URI=/api/hello/world"), 0);
    check_segs("world");
    check_str(rq.method, "GET");
    check_int(rq.head, 0);
    check_str(rq.target, "/api/hello/world");
    check_int(rq.nquery, 0);
    check_int(rs.status, 0); /* parse leaves the response to the handler */
    check_str(rq.body, "");
    check_int(rq.body_len, 0);

    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    check_int(rq.nseg, 0);

    check_int(PARSE("REQUEST_URI=/api/hello/a/b/c"), 0);
    check_segs("a", "b", "c");

    /* a trailing slash is an empty last segment; so is the bare prefix + "/" */
    check_int(PARSE("REQUEST_URI=/api/hello/a/"), 0);
    check_segs("a", "");
    check_int(PARSE("REQUEST_URI=/api/hello/"), 0);
    check_segs("");
    check_int(PARSE("REQUEST_URI=/api/hello//x"), 0);
    check_segs("", "x");

    /* decoded per segment: %2F is data, not a separator */
    check_int(PARSE("REQUEST_URI=/api/hello/a%2Fb/"), 0);
    check_segs("a/b", "");
    check_int(PARSE("REQUEST_URI=/api/hello/J%C3%B6rg/%F0%9F%98%80"), 0);
    check_segs("J\xc3\xb6rg", "\xf0\x9f\x98\x80");
    /* '+' is only a space in query strings */
    check_int(PARSE("REQUEST_URI=/api/hello/a+b%20c"), 0);
    check_segs("a+b c");
    /* raw UTF-8 (lighttpd passes it undecoded) is fine too */
    check_int(PARSE("REQUEST_URI=/api/hello/J\xc3\xb6rg"), 0);
    check_segs("J\xc3\xb6rg");

    /* the query is not part of the path */
    check_int(PARSE("REQUEST_URI=/api/hello/x?y=/z"), 0);
    check_segs("x");
    check_int(PARSE("REQUEST_URI=/api/hello?y=/z"), 0);
    check_int(rq.nseg, 0);
    check_str(rq.target, "/api/hello?y=/z");
}

static void test_prefix_with_slash(void)
{
    /* a prefix given with a trailing slash means the same mount point */
    http_resp_clear(&rs);
    const char *env[] = {"REQUEST_URI=/api/hello/x", NULL};
    check_int(http_req_parse(&rq, (char *const *)env, "/api/hello/", &rs), 0);
    check_segs("x");

    /* mounted at the root, everything is a segment */
    check_int(http_req_parse(&rq, (char *const *)env, "/", &rs), 0);
    check_segs("api", "hello", "x");
}

static void test_prefix_mismatch(void)
{
    static const char *const outside[] = {
        "REQUEST_URI=/api/helloworld",
        "REQUEST_URI=/api/hello-x/y",
        "REQUEST_URI=/api/hell",
        "REQUEST_URI=/API/hello",
        "REQUEST_URI=/",
        "REQUEST_URI=",
        "REQUEST_URI=api/hello",
        "REQUEST_URI=/api/hello%2Fx",
        "REQUEST_URI=/other/api/hello",
    };
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        int ok = check_int(PARSE(outside[i]), -1);
        ok &= check_int(rs.status, 404);
        ok &= check_body("{\"detail\":\"Not Found\"}");
        ok &= check_str(rs.content_type, "application/json");
        ok &= check(is_generated_id(rq.request_id), "the request id is set on errors too");
        if (!ok)
            fprintf(stderr, "  env: %s\n", outside[i]);
    }

    /* no target at all */
    check_int(PARSE("REQUEST_METHOD=GET"), -1);
    check_int(rs.status, 404);
}

static void test_bad_encoding(void)
{
    static const struct {
        const char *env;
        const char *body;
    } cases[] = {
        {"REQUEST_URI=/api/hello/%zz", "{\"detail\":\"Invalid percent-encoding in path\"}"},
        {"REQUEST_URI=/api/hello/a%2", "{\"detail\":\"Invalid percent-encoding in path\"}"},
        {"REQUEST_URI=/api/hello/%", "{\"detail\":\"Invalid percent-encoding in path\"}"},
        {"REQUEST_URI=/api/hello/a%00b", "{\"detail\":\"Invalid NUL byte in path\"}"},
        {"REQUEST_URI=/api/hello/%C3%28", "{\"detail\":\"Invalid UTF-8 in path\"}"},
        {"REQUEST_URI=/api/hello/%C0%80", "{\"detail\":\"Invalid UTF-8 in path\"}"},
        {"REQUEST_URI=/api/hello/%ED%A0%80", "{\"detail\":\"Invalid UTF-8 in path\"}"},
        {"REQUEST_URI=/api/hello/\xff", "{\"detail\":\"Invalid UTF-8 in path\"}"},
        {"REQUEST_URI=/api/hello/ok/%E2%82", "{\"detail\":\"Invalid UTF-8 in path\"}"},
        {"REQUEST_URI=/api/hello?a=%zz",
         "{\"detail\":\"Invalid percent-encoding in query string\"}"},
        {"REQUEST_URI=/api/hello?%4=1",
         "{\"detail\":\"Invalid percent-encoding in query string\"}"},
        {"REQUEST_URI=/api/hello?a=%00", "{\"detail\":\"Invalid NUL byte in query string\"}"},
        {"REQUEST_URI=/api/hello?a=%FF", "{\"detail\":\"Invalid UTF-8 in query string\"}"},
        {"REQUEST_URI=/api/hello?%FF", "{\"detail\":\"Invalid UTF-8 in query string\"}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int ok = check_int(PARSE(cases[i].env), -1);
        ok &= check_int(rs.status, 400);
        ok &= check_body(cases[i].body);
        if (!ok)
            fprintf(stderr, "  env: %s\n", cases[i].env);
    }

    /* the same errors from QUERY_STRING */
    check_int(PARSE("REQUEST_URI=/api/hello", "QUERY_STRING=x=%G0"), -1);
    check_int(rs.status, 400);
    check_body("{\"detail\":\"Invalid percent-encoding in query string\"}");
}

static void test_redirect_uri(void)
{
    /* lighttpd's rewritten/normalised target wins over the raw one */
    check_int(PARSE("REQUEST_URI=/raw/path", "REDIRECT_URI=/api/hello/fixed"), 0);
    check_segs("fixed");
    check_str(rq.target, "/api/hello/fixed");

    check_int(PARSE("REDIRECT_URI=/elsewhere", "REQUEST_URI=/api/hello/x"), -1);
    check_int(rs.status, 404);

    check_int(PARSE("REDIRECT_URI=/api/hello/r?q=1", "REQUEST_URI=/api/hello/x?q=2"), 0);
    check_segs("r");
    check_str(http_query(&rq, "q"), "1");
}

static void test_query(void)
{
    check_int(PARSE("REQUEST_URI=/api/hello?a=1&b=&c"), 0);
    check_int(rq.nquery, 3);
    check_str(http_query(&rq, "a"), "1");
    check_str(http_query(&rq, "b"), "");
    check_str(http_query(&rq, "c"), ""); /* a bare name has the value "" */
    check_str(http_query(&rq, "d"), NULL);
    check_str(http_query(&rq, "A"), NULL); /* names are case-sensitive */

    /* decoding: '+' and %20 are spaces, %2B a plus, %26/%3D are data */
    check_int(PARSE("REQUEST_URI=/api/hello?q=a+b%20c%2Bd&k%3Dx=v%26w&n+1=J%C3%B6rg"), 0);
    check_str(http_query(&rq, "q"), "a b c+d");
    check_str(http_query(&rq, "k=x"), "v&w");
    check_str(http_query(&rq, "n 1"), "J\xc3\xb6rg");

    /* duplicates are all kept, in order; http_query returns the first */
    check_int(PARSE("REQUEST_URI=/api/hello?a=1&a=2&b=3&a=4"), 0);
    if (check_int(rq.nquery, 4)) {
        check_str(rq.query[0].name, "a");
        check_str(rq.query[0].value, "1");
        check_str(rq.query[1].name, "a");
        check_str(rq.query[1].value, "2");
        check_str(rq.query[2].name, "b");
        check_str(rq.query[2].value, "3");
        check_str(rq.query[3].value, "4");
    }
    check_str(http_query(&rq, "a"), "1");

    /* empty pieces are skipped; only the first '=' splits */
    check_int(PARSE("REQUEST_URI=/api/hello?&&x=1&&y=a=b&"), 0);
    check_int(rq.nquery, 2);
    check_str(http_query(&rq, "x"), "1");
    check_str(http_query(&rq, "y"), "a=b");

    /* "=v" is an empty name */
    check_int(PARSE("REQUEST_URI=/api/hello?=v"), 0);
    check_int(rq.nquery, 1);
    check_str(http_query(&rq, ""), "v");

    check_int(PARSE("REQUEST_URI=/api/hello?"), 0);
    check_int(rq.nquery, 0);

    /* QUERY_STRING (what lighttpd parsed) wins over the target's own */
    check_int(PARSE("REQUEST_URI=/api/hello?x=1", "QUERY_STRING=y=2"), 0);
    check_str(http_query(&rq, "x"), NULL);
    check_str(http_query(&rq, "y"), "2");
    check_int(PARSE("REQUEST_URI=/api/hello?x=1", "QUERY_STRING="), 0);
    check_int(rq.nquery, 0);
}

static void test_method(void)
{
    check_int(PARSE("REQUEST_METHOD=HEAD", "REQUEST_URI=/api/hello"), 0);
    check_str(rq.method, "GET");
    check_int(rq.head, 1);

    check_int(PARSE("REQUEST_METHOD=POST", "REQUEST_URI=/api/hello"), 0);
    check_str(rq.method, "POST");
    check_int(rq.head, 0);

    /* no method, or an empty one, reads as GET */
    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    check_str(rq.method, "GET");
    check_int(rq.head, 0);
    check_int(PARSE("REQUEST_METHOD=", "REQUEST_URI=/api/hello"), 0);
    check_str(rq.method, "GET");

    /* methods are case-sensitive: "head" is not HEAD */
    check_int(PARSE("REQUEST_METHOD=head", "REQUEST_URI=/api/hello"), 0);
    check_str(rq.method, "head");
    check_int(rq.head, 0);
}

static void test_request_id_sane(void)
{
    char id64[65], id65[66];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    memset(id65, 'a', 65);
    id65[65] = '\0';

    check_int(http_request_id_sane("a"), 1);
    check_int(http_request_id_sane("abc-DEF_123.x"), 1);
    check_int(http_request_id_sane("0f8fad5b-d9cb-469f-a165-70867728950e"), 1);
    check_int(http_request_id_sane(id64), 1);
    check_int(http_request_id_sane(id65), 0);
    check_int(http_request_id_sane(""), 0);
    check_int(http_request_id_sane("a b"), 0);
    check_int(http_request_id_sane("a\tb"), 0);
    check_int(http_request_id_sane("a\r\nX-Evil: 1"), 0);
    check_int(http_request_id_sane("a/b"), 0);
    check_int(http_request_id_sane("a:b"), 0);
    check_int(http_request_id_sane("a%20b"), 0);
    check_int(http_request_id_sane("J\xc3\xb6rg"), 0);
}

static void test_request_id(void)
{
    check_int(PARSE("REQUEST_URI=/api/hello", "HTTP_X_REQUEST_ID=abc-123_X.y"), 0);
    check_str(rq.request_id, "abc-123_X.y");
    check_str(http_header(&rq, "X-Request-Id"), "abc-123_X.y");

    char given64[100] = "HTTP_X_REQUEST_ID=";
    size_t off = strlen(given64);
    memset(given64 + off, '7', 64);
    given64[off + 64] = '\0';
    check_int(PARSE("REQUEST_URI=/api/hello", given64), 0);
    check_str(rq.request_id, given64 + off);

    /* not sane: replaced by a fresh 32-hex-digit id */
    given64[off + 64] = '8';
    given64[off + 65] = '\0';
    static const char *const insane[] = {"HTTP_X_REQUEST_ID=has space",
                                         "HTTP_X_REQUEST_ID=", "HTTP_X_REQUEST_ID=a\r\nX-Evil: 1",
                                         NULL};
    for (size_t i = 0; i < 4; i++) {
        const char *given = insane[i] != NULL ? insane[i] : given64;
        check_int(PARSE("REQUEST_URI=/api/hello", given), 0);
        if (!check(is_generated_id(rq.request_id), "an unusable id is replaced"))
            fprintf(stderr, "  env: %s, id: %s\n", given, rq.request_id);
    }

    /* none given: generated, different each request */
    char first[HTTP_REQUEST_ID_MAX + 1];
    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    check(is_generated_id(rq.request_id), "a missing id is generated");
    memcpy(first, rq.request_id, sizeof(first));
    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    check(is_generated_id(rq.request_id), "a missing id is generated");
    check(strcmp(first, rq.request_id) != 0, "generated ids differ between requests");
}

static void test_header_lookup(void)
{
    check_int(PARSE("REQUEST_URI=/api/hello", "HTTP_X_REQUEST_ID=r1",
                    "CONTENT_TYPE=application/json", "CONTENT_LENGTH=12", "HTTP_CONTENT_TYPE=wrong",
                    "HTTP_USER_AGENT=curl/8", "HTTP_X_EMPTY="),
              0);
    check_str(http_header(&rq, "X-Request-Id"), "r1");
    check_str(http_header(&rq, "x-request-id"), "r1");
    check_str(http_header(&rq, "Content-Type"), "application/json");
    check_str(http_header(&rq, "content-type"), "application/json");
    check_str(http_header(&rq, "Content-Length"), "12");
    check_str(http_header(&rq, "User-Agent"), "curl/8");
    check_str(http_header(&rq, "X-Empty"), "");
    check_str(http_header(&rq, "Accept"), NULL);
    check_str(http_header(&rq, "X-Request"), NULL); /* no prefix matches */

    char longname[200];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    check_str(http_header(&rq, longname), NULL);

    check_str(http_env(&rq, "CONTENT_LENGTH"), "12");
    check_str(http_env(&rq, "CONTENT"), NULL);
    check_str(http_env(&rq, "CONTENT_LENGTH=12"), NULL);
    check_str(http_env(&rq, "REQUEST_URI"), "/api/hello");

    struct http_req empty;
    http_req_init(&empty);
    check_str(http_env(&empty, "REQUEST_URI"), NULL);
    check_str(http_header(&empty, "X-Request-Id"), NULL);
    check_str(http_query(&empty, "a"), NULL);
    http_req_free(&empty);
}

static void test_body_len(void)
{
    size_t len;

    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    len = 99;
    check_int(http_req_body_len(&rq, 1024, &len, &rs), 0);
    check_int(len, 0);
    check_int(rs.status, 0);

    static const struct {
        const char *env;
        int rc;
        size_t len;
    } good[] = {
        {"CONTENT_LENGTH=", 0, 0},
        {"CONTENT_LENGTH=0", 0, 0},
        {"CONTENT_LENGTH=10", 0, 10},
        {"CONTENT_LENGTH=1024", 0, 1024},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        check_int(PARSE("REQUEST_URI=/api/hello", good[i].env), 0);
        len = 99;
        int ok = check_int(http_req_body_len(&rq, 1024, &len, &rs), 0);
        ok &= check_int(len, good[i].len);
        ok &= check_int(rs.status, 0);
        if (!ok)
            fprintf(stderr, "  env: %s\n", good[i].env);
    }

    static const char *const bad[] = {"CONTENT_LENGTH=-1",   "CONTENT_LENGTH=abc",
                                      "CONTENT_LENGTH=1e3",  "CONTENT_LENGTH= 5",
                                      "CONTENT_LENGTH=+5",   "CONTENT_LENGTH=5 ",
                                      "CONTENT_LENGTH=0x10", "CONTENT_LENGTH=99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_int(PARSE("REQUEST_URI=/api/hello", bad[i]), 0);
        int ok = check_int(http_req_body_len(&rq, 1024, &len, &rs), -1);
        ok &= check_int(rs.status, 400);
        ok &= check_body("{\"detail\":\"Invalid Content-Length\"}");
        if (!ok)
            fprintf(stderr, "  env: %s\n", bad[i]);
    }

    check_int(PARSE("REQUEST_URI=/api/hello", "CONTENT_LENGTH=1025"), 0);
    check_int(http_req_body_len(&rq, 1024, &len, &rs), -1);
    check_int(rs.status, 413);
    check_body("{\"detail\":\"Request Entity Too Large\"}");

    check_int(PARSE("REQUEST_URI=/api/hello", "CONTENT_LENGTH=9223372036854775807"), 0);
    check_int(http_req_body_len(&rq, 1024, &len, &rs), -1);
    check_int(rs.status, 413);

    check_int(PARSE("REQUEST_URI=/api/hello", "CONTENT_LENGTH=1"), 0);
    check_int(http_req_body_len(&rq, 0, &len, &rs), -1);
    check_int(rs.status, 413);
}

static void test_body_room(void)
{
    check_int(PARSE("REQUEST_METHOD=POST", "REQUEST_URI=/api/hello", "CONTENT_LENGTH=5"), 0);
    char *room = http_req_body_room(&rq, 5);
    memcpy(room, "ab\0cd", 5);
    http_req_body_done(&rq, 5);
    check_mem(rq.body, rq.body_len, "ab\0cd", 5);
    check_int(rq.body[5], '\0');

    /* fewer bytes than announced (the client hung up) */
    room = http_req_body_room(&rq, 10);
    memcpy(room, "xyz", 3);
    http_req_body_done(&rq, 3);
    check_str(rq.body, "xyz");
    check_int(rq.body_len, 3);

    /* the next parse forgets the body */
    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    check_str(rq.body, "");
    check_int(rq.body_len, 0);
}

static void test_reason(void)
{
    check_str(http_reason(200), "OK");
    check_str(http_reason(404), "Not Found");
    check_str(http_reason(413), "Request Entity Too Large");
    check_str(http_reason(422), "Unprocessable Entity");
    check_str(http_reason(503), "Service Unavailable");
    check_str(http_reason(299), "Unknown");
    check_str(http_reason(0), "Unknown");
}

static void test_error(void)
{
    http_resp_clear(&rs);
    check_int(http_error(&rs, 404, NULL), 404);
    check_int(rs.status, 404);
    check_str(rs.content_type, "application/json");
    check_body("{\"detail\":\"Not Found\"}");

    /* a second call replaces the body, not appends */
    check_int(http_error(&rs, 409, "User \"x\" exists"), 409);
    check_body("{\"detail\":\"User \\\"x\\\" exists\"}");

    check_int(http_error(&rs, 500, NULL), 500);
    check_body("{\"detail\":\"Internal Server Error\"}");

    /* a detail that is not UTF-8 falls back to the reason phrase */
    check_int(http_error(&rs, 400, "bad \xff byte"), 400);
    check_body("{\"detail\":\"Bad Request\"}");

    check_int(http_error(&rs, 418, NULL), 418);
    check_body("{\"detail\":\"Unknown\"}");
}

static void test_error_422(void)
{
    http_resp_clear(&rs);
    check_int(http_error_422(&rs, json_pack("[ss]", "path", "id"), "m", "t"), 422);
    check_int(rs.status, 422);
    check_body("{\"detail\":[{\"loc\":[\"path\",\"id\"],\"msg\":\"m\",\"type\":\"t\"}]}");

    check_int(http_error_422(&rs, json_pack("[ssi]", "body", "items", 3),
                             "value is not a valid integer", "type_error.integer"),
              422);
    check_body("{\"detail\":[{\"loc\":[\"body\",\"items\",3],"
               "\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"}]}");

    /* a msg that cannot be JSON (not UTF-8) is a bug in the caller: 500, and
     * loc is still consumed (LeakSanitizer checks that) */
    check_int(http_error_422(&rs, json_pack("[ss]", "path", "id"), "bad \xff", "t"), 500);
    check_body("{\"detail\":\"Internal Server Error\"}");
}

static void test_json(void)
{
    http_resp_clear(&rs);
    check_int(http_json_new(&rs, 200,
                            json_pack("{s:s}", "message", "Hello, J\xc3\xb6rg \xf0\x9f\x98\x80!")),
              200);
    check_int(rs.status, 200);
    check_str(rs.content_type, "application/json");
    /* compact, UTF-8 as is (Python's ensure_ascii=False) */
    check_body("{\"message\":\"Hello, J\xc3\xb6rg \xf0\x9f\x98\x80!\"}");

    /* control characters, quotes and backslashes escaped; '/' not */
    check_int(http_json_new(&rs, 201, json_pack("{s:s}", "m", "a\nb\x01\t\"\\/")), 201);
    check_body("{\"m\":\"a\\nb\\u0001\\t\\\"\\\\/\"}");

    /* keys in insertion order, nested values compact */
    check_int(http_json_new(&rs, 200, json_pack("{s:i,s:[i,b,n],s:{}}", "z", 1, "a", 2, 1, "m")),
              200);
    check_body("{\"z\":1,\"a\":[2,true,null],\"m\":{}}");

    /* any JSON value, not only objects */
    check_int(http_json_new(&rs, 200, json_integer(5)), 200);
    check_body("5");

    /* a NULL body (a failed json_pack) is a 500, not a crash */
    check_int(http_json_new(&rs, 200, NULL), 500);
    check_int(rs.status, 500);
    check_body("{\"detail\":\"Internal Server Error\"}");
}

static void test_allow(void)
{
    check_int(PARSE("REQUEST_METHOD=GET", "REQUEST_URI=/api/hello"), 0);
    check_int(http_allow_or_405(&rq, &rs, "GET"), 0);
    check_int(rs.status, 0);
    check_int(rs.headers.len, 0);
    check_int(http_allow_or_405(&rq, &rs, "POST, GET"), 0);
    check_int(http_allow_or_405(&rq, &rs, "POST,GET"), 0);

    check_int(PARSE("REQUEST_METHOD=POST", "REQUEST_URI=/api/hello"), 0);
    check_int(http_allow_or_405(&rq, &rs, "GET"), -1);
    check_int(rs.status, 405);
    check_body("{\"detail\":\"Method Not Allowed\"}");
    check_mem(rs.headers.data, rs.headers.len, "Allow: GET, HEAD\r\n", 18);

    /* HEAD rides on GET */
    check_int(PARSE("REQUEST_METHOD=HEAD", "REQUEST_URI=/api/hello"), 0);
    check_int(http_allow_or_405(&rq, &rs, "GET"), 0);
    check_int(rs.status, 0);
    check_int(http_allow_or_405(&rq, &rs, "POST"), -1);
    check_int(rs.status, 405);
    check_mem(rs.headers.data, rs.headers.len, "Allow: POST\r\n", 13);

    /* whole names only */
    check_int(PARSE("REQUEST_METHOD=PUT", "REQUEST_URI=/api/hello"), 0);
    check_int(http_allow_or_405(&rq, &rs, "PUTX, XPUT, PU"), -1);
    check_int(PARSE("REQUEST_METHOD=PUT", "REQUEST_URI=/api/hello"), 0);
    check_int(http_allow_or_405(&rq, &rs, "GET, HEAD, PUT"), 0);

    /* HEAD is not listed twice */
    check_int(PARSE("REQUEST_METHOD=DELETE", "REQUEST_URI=/api/hello"), 0);
    check_int(http_allow_or_405(&rq, &rs, "GET, HEAD, POST"), -1);
    check_mem(rs.headers.data, rs.headers.len, "Allow: GET, HEAD, POST\r\n", 24);
}

static void test_header_add(void)
{
    http_resp_clear(&rs);
    check_int(http_header_add(&rs, "X-A", "1"), 0);
    check_int(http_header_add(&rs, "Cache-Control", "no-store, max-age=0"), 0);
    check_str(rs.headers.data, "X-A: 1\r\nCache-Control: no-store, max-age=0\r\n");

    size_t len = rs.headers.len;
    check_int(http_header_add(&rs, "X-B", "a\r\nX-Evil: 1"), -1);
    check_int(http_header_add(&rs, "X-B", "a\nb"), -1);
    check_int(http_header_add(&rs, "X-B", "a\rb"), -1);
    check_int(http_header_add(&rs, "X-B\r\nX-Evil", "1"), -1);
    check_int(http_header_add(&rs, "X\nB", "1"), -1);
    check_int(http_header_add(&rs, "X-B: evil", "1"), -1);
    check_int(rs.headers.len, len);
    check_str(rs.headers.data, "X-A: 1\r\nCache-Control: no-store, max-age=0\r\n");
}

/* The formatted response to the current rq/rs. */
static void format(struct buf *out)
{
    buf_clear(out);
    http_resp_format(&rq, &rs, out);
}

static void test_resp_format(void)
{
    struct buf out = {0};

    check_int(PARSE("REQUEST_URI=/api/hello", "HTTP_X_REQUEST_ID=rid-1"), 0);
    http_json_new(&rs, 200, json_pack("{s:i}", "a", 1));
    check_int(http_header_add(&rs, "X-A", "1"), 0);
    format(&out);
    check_str(out.data, "Status: 200 OK\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: 7\r\n"
                        "X-Request-Id: rid-1\r\n"
                        "X-A: 1\r\n"
                        "\r\n"
                        "{\"a\":1}");

    /* Content-Length counts bytes, not characters */
    check_int(PARSE("REQUEST_URI=/api/hello", "HTTP_X_REQUEST_ID=rid-2"), 0);
    http_json_new(&rs, 200, json_string("\xc3\xb6"));
    rs.content_type = "text/plain; charset=utf-8";
    format(&out);
    check_str(out.data, "Status: 200 OK\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 4\r\n"
                        "X-Request-Id: rid-2\r\n"
                        "\r\n"
                        "\"\xc3\xb6\"");

    /* HEAD: the same headers, Content-Length included, but no body */
    check_int(PARSE("REQUEST_METHOD=HEAD", "REQUEST_URI=/api/hello", "HTTP_X_REQUEST_ID=rid-3"), 0);
    http_json_new(&rs, 200, json_pack("{s:i}", "a", 1));
    format(&out);
    check_str(out.data, "Status: 200 OK\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: 7\r\n"
                        "X-Request-Id: rid-3\r\n"
                        "\r\n");

    /* 204: no Content-Type, no Content-Length, no body */
    check_int(PARSE("REQUEST_METHOD=DELETE", "REQUEST_URI=/api/hello", "HTTP_X_REQUEST_ID=rid-4"),
              0);
    rs.status = 204;
    format(&out);
    check_str(out.data, "Status: 204 No Content\r\n"
                        "X-Request-Id: rid-4\r\n"
                        "\r\n");
    /* even if a body was set by mistake */
    buf_puts(&rs.body, "oops");
    format(&out);
    check_str(out.data, "Status: 204 No Content\r\n"
                        "X-Request-Id: rid-4\r\n"
                        "\r\n");

    /* 304 has no body either */
    rs.status = 304;
    format(&out);
    check_str(out.data, "Status: 304 Not Modified\r\n"
                        "X-Request-Id: rid-4\r\n"
                        "\r\n");

    /* an error response, as the parser leaves it */
    check_int(PARSE("REQUEST_URI=/api/helloworld", "HTTP_X_REQUEST_ID=rid-5"), -1);
    format(&out);
    check_str(out.data, "Status: 404 Not Found\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: 22\r\n"
                        "X-Request-Id: rid-5\r\n"
                        "\r\n"
                        "{\"detail\":\"Not Found\"}");

    /* appends: earlier content of out is kept */
    buf_clear(&out);
    buf_puts(&out, "before;");
    http_resp_format(&rq, &rs, &out);
    check(strncmp(out.data, "before;Status: 404 Not Found\r\n", 30) == 0, "format appends");
    buf_free(&out);
}

static void test_reuse(void)
{
    /* a big request, then a small one: nothing of the first shows through */
    check_int(PARSE("REQUEST_URI=/api/hello/a/b/c/d?x=1&y=2&z=3", "HTTP_X_REQUEST_ID=big"), 0);
    check_segs("a", "b", "c", "d");
    check_int(rq.nquery, 3);

    check_int(PARSE("REQUEST_URI=/api/hello/z"), 0);
    check_segs("z");
    check_int(rq.nquery, 0);
    check_str(http_query(&rq, "x"), NULL);
    check(strcmp(rq.request_id, "big") != 0, "the request id is not carried over");

    /* a failed parse, then a good one */
    check_int(PARSE("REQUEST_URI=/api/hello/ok/%zz/more?q=1"), -1);
    check_int(PARSE("REQUEST_URI=/api/hello/ok2?q=2"), 0);
    check_segs("ok2");
    check_str(http_query(&rq, "q"), "2");
    check_int(rq.nquery, 1);

    /* a query error after the path parsed: the next parse starts clean */
    check_int(PARSE("REQUEST_URI=/api/hello/p1/p2?a=1&b=%zz"), -1);
    check_int(PARSE("REQUEST_URI=/api/hello"), 0);
    check_int(rq.nseg, 0);
    check_int(rq.nquery, 0);
}

static void test_many_parts(void)
{
    /* enough parts to grow every array and the string store well past
     * their first sizes; every pointer must still be valid at the end */
    struct buf env = {0};
    buf_puts(&env, "REQUEST_URI=/api/hello");
    for (int i = 0; i < 300; i++)
        buf_printf(&env, "/s%d", i);
    buf_puts(&env, "?");
    for (int i = 0; i < 300; i++)
        buf_printf(&env, "k%d=v%%20%d&bare%d&", i, i, i);

    const char *envp[] = {env.data, NULL};
    check_int(parse_env(envp), 0);
    check_int(rq.nseg, 300);
    check_int(rq.nquery, 600);
    int segs_ok = rq.nseg == 300, query_ok = rq.nquery == 600;
    char want[32];
    for (size_t i = 0; segs_ok && i < 300; i++) {
        snprintf(want, sizeof(want), "s%zu", i);
        segs_ok = strcmp(rq.seg[i], want) == 0;
    }
    for (size_t i = 0; query_ok && i < 300; i++) {
        snprintf(want, sizeof(want), "k%zu", i);
        query_ok = strcmp(rq.query[2 * i].name, want) == 0;
        snprintf(want, sizeof(want), "v %zu", i);
        query_ok = query_ok && strcmp(rq.query[2 * i].value, want) == 0;
        snprintf(want, sizeof(want), "bare%zu", i);
        query_ok = query_ok && strcmp(rq.query[2 * i + 1].name, want) == 0 &&
                   strcmp(rq.query[2 * i + 1].value, "") == 0;
    }
    check(segs_ok, "all 300 segments intact");
    check(query_ok, "all 600 parameters intact");
    check_str(http_query(&rq, "k299"), "v 299");

    /* the densest input: every byte a separator or a one-byte part */
    buf_clear(&env);
    buf_puts(&env, "REQUEST_URI=/api/hello");
    for (int i = 0; i < 200; i++)
        buf_puts(&env, "/");
    buf_puts(&env, "?");
    for (int i = 0; i < 200; i++)
        buf_puts(&env, "a&=&");
    envp[0] = env.data;
    check_int(parse_env(envp), 0);
    check_int(rq.nseg, 200);
    check_int(rq.nquery, 400);
    int dense_ok = rq.nseg == 200 && rq.nquery == 400;
    for (size_t i = 0; dense_ok && i < rq.nseg; i++)
        dense_ok = rq.seg[i][0] == '\0';
    for (size_t i = 0; dense_ok && i < rq.nquery; i++)
        dense_ok = strcmp(rq.query[i].name, i % 2 ? "" : "a") == 0 && rq.query[i].value[0] == '\0';
    check(dense_ok, "every empty part intact");
    buf_free(&env);
}

int main(void)
{
    http_req_init(&rq);
    http_resp_init(&rs);

    test_segments();
    test_prefix_with_slash();
    test_prefix_mismatch();
    test_bad_encoding();
    test_redirect_uri();
    test_query();
    test_method();
    test_request_id_sane();
    test_request_id();
    test_header_lookup();
    test_body_len();
    test_body_room();
    test_reason();
    test_error();
    test_error_422();
    test_json();
    test_allow();
    test_header_add();
    test_resp_format();
    test_reuse();
    test_many_parts();

    http_req_free(&rq);
    http_resp_free(&rs);
    return check_done();
}
