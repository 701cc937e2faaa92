/* lib/throttle.c: the address the limits count (the Redis side is
 * exercised through the gateway in tests/token.bats and tests/users_http.bats). */
#include "../../lib/throttle.c"

#include "check.h"

static const char *addr(const char *remote)
{
    static char out[64];
    throttle_addr(remote, out, sizeof(out));
    return out;
}

int main(void)
{
    check_str(addr("127.0.0.1"), "127.0.0.1");
    check_str(addr("203.0.113.7"), "203.0.113.7");
    /* IPv6: one /64, however written */
    check_str(addr("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    check_str(addr("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
    check_str(addr("2001:0DB8:0001:0002:0000:0000:0000:0001"), "2001:db8:1:2::/64");
    check_str(addr("2001:db8:1:3::1"), "2001:db8:1:3::/64");
    check_str(addr("::1"), "::/64");
    check_str(addr("fe80::1"), "fe80::/64");
    /* IPv4 reached over IPv6 is that IPv4 address */
    check_str(addr("::ffff:198.51.100.4"), "198.51.100.4");
    /* anything else as given, cut to fit; nothing is "-" */
    check_str(addr("unix:/run/x.sock"), "unix:/run/x.sock");
    check_str(addr(""), "-");
    check_str(addr(NULL), "-");
    char small[8];
    throttle_addr("2001:db8:1:2::1", small, sizeof(small));
    check_str(small, "2001:db");
    return check_done();
}
