/* /api/health: liveness. It answers as long as lighttpd can reach a live
 * route process, and touches nothing else (no Redis, no PostgreSQL, no
 * files): a failing dependency must not get a healthy gateway restarted.
 * Whether the deployment can serve is /api/ready's question.
 *
 *   GET /api/health -> 200 {"status":"ok"} | 404 any sub-path | 405 not GET/HEAD */
#include "serve.h"

static int health(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg != 0)
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET") != 0)
        return rs->status;
    http_header_add(rs, "Cache-Control", "no-store");
    return http_json_new(rs, 200, json_pack("{s:s}", "status", "ok"));
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "health", NULL, 0, health);
}
