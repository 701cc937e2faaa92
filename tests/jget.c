/* jget JSON EXPR: the fast path of the suites' jget (tests/queue.bash) for
 * the expressions they use most, a path (j["a"][0]["b"]) or a list of
 * paths ([j["a"], j["b"]]), answered exactly as the Python version does:
 * a string raw, anything else as compact JSON, a missing key or index an
 * error. A python3 start costs ~35 ms of CPU and the suites make thousands
 * of these, so this is most of some suites' CPU; this program starts in ~1.
 *
 * jget --obj KEY VALUE ...: a JSON object of those string members (the
 * users suite's request bodies; Python's when a value is not UTF-8)
 *
 * Exit: 0 answered; 1 a missing key or index; 3 "ask Python": any other
 * expression, JSON jansson reads differently (NaN, huge integers), or an
 * answer Python prints differently (a real number: Python prints the
 * shortest form, jansson 17 digits; non-ASCII inside JSON: Python escapes
 * it). Nothing is printed unless the exit is 0. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ANSWER = 0, MISSING = 1, ASK_PYTHON = 3 };

/* walk one path "j[..][..]" from *p over root; on success *p is past it */
static int walk(const char **p, json_t *root, json_t **out)
{
    const char *s = *p;
    if (*s != 'j')
        return ASK_PYTHON;
    s++;
    json_t *v = root;
    int steps = 0;
    while (*s == '[') {
        s++;
        if (*s == '"') {
            const char *k = ++s;
            while (*s != '\0' && *s != '"' && *s != '\\')
                s++;
            if (*s != '"' || s[1] != ']')
                return ASK_PYTHON;
            size_t n = (size_t)(s - k);
            if (!json_is_object(v))
                return json_is_array(v) ? MISSING : ASK_PYTHON;
            json_t *next = json_object_getn(v, k, n);
            if (next == NULL)
                return MISSING;
            v = next;
            s += 2;
        } else if (*s >= '0' && *s <= '9') {
            size_t i = 0;
            while (*s >= '0' && *s <= '9') {
                if (i > 100000000)
                    return ASK_PYTHON;
                i = i * 10 + (size_t)(*s - '0');
                s++;
            }
            if (*s != ']')
                return ASK_PYTHON;
            s++;
            if (!json_is_array(v))
                return json_is_object(v) ? MISSING : ASK_PYTHON; /* a string's [0] */
            if (i >= json_array_size(v))
                return MISSING;
            v = json_array_get(v, i);
        } else {
            return ASK_PYTHON;
        }
        steps++;
    }
    if (steps == 0)
        return ASK_PYTHON;
    *p = s;
    *out = v;
    return ANSWER;
}

/* 1 if v holds a real anywhere (Python prints those differently) */
static int has_real(json_t *v)
{
    if (json_is_real(v))
        return 1;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (has_real(json_array_get(v, i)))
                return 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) {
            if (has_real(m))
                return 1;
        }
    }
    return 0;
}

static int print_answer(json_t *v, int top)
{
    if (top && json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
        putchar('\n');
        return ANSWER;
    }
    if (has_real(v))
        return ASK_PYTHON;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return ASK_PYTHON;
    for (const char *c = text; *c != '\0'; c++) {
        if ((unsigned char)*c >= 0x80) {
            free(text);
            return ASK_PYTHON;
        }
    }
    puts(text);
    free(text);
    return ANSWER;
}

static int jget(const char *doc, const char *expr)
{
    json_error_t err;
    json_t *root = json_loads(doc, JSON_DECODE_ANY, &err);
    if (root == NULL)
        return ASK_PYTHON;
    int rc;
    const char *p = expr;
    json_t *v = NULL;
    if (*p == '[') {
        json_t *list = json_array();
        p++;
        rc = ANSWER;
        for (;;) {
            rc = walk(&p, root, &v);
            if (rc != ANSWER)
                break;
            json_array_append(list, v);
            if (p[0] == ']' && p[1] == '\0')
                break;
            if (p[0] != ',' || p[1] != ' ') {
                rc = ASK_PYTHON;
                break;
            }
            p += 2;
        }
        if (rc == ANSWER)
            rc = print_answer(list, 0);
        json_decref(list);
    } else {
        rc = walk(&p, root, &v);
        if (rc == ANSWER)
            rc = *p == '\0' ? print_answer(v, 1) : ASK_PYTHON;
    }
    json_decref(root);
    return rc;
}

static int obj(int argc, char **argv)
{
    json_t *o = json_object();
    for (int i = 0; i + 1 < argc; i += 2) {
        json_t *s = json_string(argv[i + 1]);
        if (s == NULL || json_object_set_new(o, argv[i], s) != 0) {
            json_decref(o); /* not UTF-8: Python keeps the bytes as given */
            return ASK_PYTHON;
        }
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (text == NULL)
        return ASK_PYTHON;
    puts(text);
    free(text);
    return ANSWER;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--obj") == 0)
        return obj(argc - 2, argv + 2);
    if (argc != 3)
        return ASK_PYTHON;
    return jget(argv[1], argv[2]);
}
