/* libFuzzer target over lib/celery.c's readers: what bin/queue-runner parses
 * from Redis, where anyone who can LPUSH or PUBLISH writes: task messages
 * (cel_parse), control broadcasts on the pidbox channel
 * (cel_control_parse), and the ISO-8601 times in eta/expires
 * (cel_time_parse).
 *
 * Invariants: a message that parses has an id and a task; its retry
 * (cel_redeliver) parses again with the same id and task, retries + 1 and
 * the new eta, and its re-run with retries 0 and no eta or expires; a revoke
 * gives an array of valid ids; a time that parses formats to a string that
 * parses back to the same instant (to the microsecond). Anything else
 * aborts. Nothing may leak. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "celery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void message(const char *raw, size_t size)
{
    struct cel_msg m;
    char err[256];
    if (cel_parse(&m, raw, size, err, sizeof(err)) != 0) {
        cel_msg_free(&m);
        return;
    }
    if (m.id == NULL || m.task == NULL || !cel_id_valid(m.id) || m.args == NULL ||
        m.kwargs == NULL || m.priority < 0 || m.priority > 9 || m.retries < 0)
        abort();
    for (int retry = 0; retry <= 1; retry++) {
        /* a re-run (retries 0, no eta), then a retry */
        int retries = retry ? m.retries + 1 : 0;
        double eta = retry ? 1800000000.25 : 0;
        struct buf next = {0};
        cel_redeliver(&next, m.envelope, retries, eta);
        struct cel_msg n;
        if (cel_parse(&n, next.data, next.len, err, sizeof(err)) != 0)
            abort();
        if (strcmp(n.id, m.id) != 0 || strcmp(n.task, m.task) != 0 ||
            n.retries != (retries > 1000000 ? 1000000 : retries) ||
            fabs(n.eta - eta) > 1e-5 || (!retry && n.expires != 0) ||
            (retry && n.expires != m.expires) ||
            !json_equal(n.args, m.args) || !json_equal(n.kwargs, m.kwargs))
            abort();
        cel_msg_free(&n);
        buf_free(&next);
    }
    cel_msg_free(&m);
}

static void control(const char *raw, size_t size)
{
    json_t *ids;
    int terminate;
    int rc = cel_control_parse(raw, size, &ids, &terminate);
    if (rc == 1) {
        size_t i;
        json_t *v;
        if (!json_is_array(ids) || (terminate != 0 && terminate != 1))
            abort();
        json_array_foreach(ids, i, v) {
            if (!json_is_string(v) || !cel_id_valid(json_string_value(v)))
                abort();
        }
    } else if (ids != NULL) {
        abort();
    }
    json_decref(ids);
}

static void time_text(const uint8_t *data, size_t size)
{
    char s[64], out[40];
    if (size >= sizeof(s))
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    double t, back;
    if (cel_time_parse(s, &t) != 0)
        return;
    if (!isfinite(t))
        abort();
    cel_time_format(t, out);
    if (cel_time_parse(out, &back) != 0 || fabs(back - t) > 1e-4 * (1 + fabs(t) / 1e10))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    message((const char *)data, size);
    control((const char *)data, size);
    time_text(data, size);
    return 0;
}
