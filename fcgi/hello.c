/* /api/hello: the seed's greeting service. */
#include "serve.h"

/* GET /api/hello/{name} -> 200 {"message":"Hello, {name}!"}
 *   | 404 no name, or more than one segment | 405 not GET/HEAD */
static int hello(struct http_req *rq, struct http_resp *rs)
{
    if (rq->nseg != 1 || rq->seg[0][0] == '\0')
        return http_error(rs, 404, NULL);
    if (http_allow_or_405(rq, rs, "GET") != 0)
        return rs->status;
    return http_json_new(rs, 200, json_pack("{s:s++}", "message", "Hello, ", rq->seg[0], "!"));
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "hello", NULL, 0, hello);
}
