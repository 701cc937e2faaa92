/* logmask: lighttpd's access log, with secrets masked.
 *
 *   logmask FILE
 *
 * lighttpd.conf names it as a piped logger (accesslog.filename = "|..."):
 * lighttpd writes its access-log lines to our stdin, and we append each one
 * to FILE with the secrets lib/log masks in every other log written as
 * "***" (log_mask: ?password=, ?access_token=, api_key=, a URL's password,
 * a bearer token), so a query string never lands in the log in clear while
 * the request line keeps its shape. lighttpd 1.4.69 can log a query or not,
 * but cannot mask part of it.
 *
 * FILE is made 0640 (owner and group only: a log can hold what a client
 * sent) and written with one write(2) per line, O_APPEND. When FILE is moved
 * away or removed (log rotation), the next line, at most a second later,
 * goes to a new FILE. Ends at EOF (lighttpd stopped or restarted its
 * logger); exit 1 if FILE cannot be opened at start, 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

struct out {
    const char *path;
    int fd;
    double checked; /* monotonic seconds of the last stat of path */
};

static int out_open(struct out *o)
{
    int fd = open(o->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "logmask: cannot open '%s': %s\n", o->path, strerror(errno));
        return -1;
    }
    if (o->fd >= 0)
        close(o->fd);
    o->fd = fd;
    o->checked = clock_now();
    return 0;
}

/* Still writing to the file path names? (checked at most once a second) */
static void out_follow(struct out *o)
{
    double now = clock_now();
    if (now - o->checked < 1.0)
        return;
    o->checked = now;
    struct stat byname, byfd;
    if (stat(o->path, &byname) != 0 || fstat(o->fd, &byfd) != 0 || byname.st_ino != byfd.st_ino ||
        byname.st_dev != byfd.st_dev)
        (void)out_open(o); /* on failure, keep the old file */
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '\0') {
        fputs("usage: logmask FILE   (lines on stdin, appended to FILE with secrets masked)\n",
              stderr);
        return 2;
    }
    umask(027);
    struct out o = {argv[1], -1, 0};
    if (out_open(&o) != 0)
        return 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    struct buf b = {0};
    while ((n = getline(&line, &cap, stdin)) > 0) {
        buf_clear(&b);
        log_mask(line, (size_t)n, &b);
        out_follow(&o);
        write_all(o.fd, b.data, b.len);
    }
    free(line);
    buf_free(&b);
    close(o.fd);
    return 0;
}
