# The stack's one image: lighttpd with the route programs (the default
# command) and the queue runner and tools (bin/), installed as `make
# install` lays them out on a host, run as a user that is not root.
# docker-compose.yml runs every service of it; README "Docker" says how.
#
#   docker build -t apistack .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://... -e DATABASE_URL=postgresql://... apistack
#   docker run --rm -e REDIS_URL=redis://... apistack queue-runner -c 2
#
# Commands are exec form (JSON arrays, no shell between): the program named
# is the container's PID 1 and gets `docker stop`'s signal itself.
# scripts/gateway execs lighttpd, so lighttpd is PID 1: SIGINT (STOPSIGNAL
# below) finishes the requests in flight (5 s), SIGTERM stops at once. The
# queue runner drains on SIGTERM or SIGINT (RUNNER_DRAIN, 30 s).

# ---- build: the normal build, installed into /out ----------------------
FROM debian:12 AS build
# scripts/deps's pkgs_build (tests/docker.bats checks they agree)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make pkg-config libfcgi-dev libjansson-dev libhiredis-dev libpq-dev \
      libcrypt-dev libssl-dev libjwt-dev libicu-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The C sources first: this layer is reused while only scripts, pages,
# migrations or docs change.
COPY Makefile ./
COPY lib/ lib/
COPY fcgi/ fcgi/
COPY src/ src/
RUN make -j"$(nproc)" all
# What make install copies besides the programs.
COPY lighttpd.conf lighttpd-routes.conf prometheus.yml ./
COPY scripts/ scripts/
COPY sql/ sql/
COPY www/ www/
COPY cron/ cron/
COPY deploy/ deploy/
RUN make install DESTDIR=/out PREFIX=/usr/local

# ---- runtime: Debian 12 slim, the shared libraries, lighttpd -----------
FROM debian:12-slim
# The libraries the programs link (readelf -d: NEEDED), lighttpd and its TLS
# module (lighttpd.conf loads mod_openssl), curl for the healthcheck.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libfcgi0ldbl libjansson4 libhiredis0.14 libpq5 libcrypt1 libssl3 libjwt0 libicu72 \
      lighttpd lighttpd-mod-openssl curl \
 && rm -rf /var/lib/apt/lists/*
# apistack (uid 10001, not a host user's): owns GW_STATE and nothing else;
# the programs and pages stay root's, read-only to it.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/apistack --no-create-home \
      --shell /usr/sbin/nologin apistack \
 && install -d -o apistack -g apistack -m 0750 /var/lib/apistack /var/lib/apistack/metrics
COPY --from=build /out/usr/local/lib/apistack/ /usr/local/lib/apistack/
# GW_STATE: sockets, the access log (log/access.log), upload
# temp files, the metrics files, and, when TOKEN_KEYS or FERNET_KEYS are
# unset, the development keys scripts/gateway makes (secrets/): a volume.
# TLS belongs to the proxy in front (GW_TLS_PORT=0); or mount a certificate
# and set GW_TLS_PORT, GW_TLS_CERT, GW_TLS_KEY (README "Docker").
# GW_WORKERS=0: one lighttpd process. With worker processes, lighttpd
# 1.4.69's graceful stop is not graceful: it passes SIGINT to its whole
# process group, route programs included, and a worker with nothing left
# to do stops them (SIGTERM) under another worker's requests, which end 500
# (tests/docker.bats). Scale with more containers instead.
# GW_LOG=stderr: lighttpd's errors and the route programs' lines go to the
# container's log (docker logs); access.log stays in GW_STATE/log.
ENV GW_STATE=/var/lib/apistack \
    GW_LOG=stderr \
    METRICS_DIR=/var/lib/apistack/metrics \
    GW_BIND=0.0.0.0 \
    GW_PORT=8080 \
    GW_TLS_PORT=0 \
    GW_WORKERS=0 \
    PATH=/usr/local/lib/apistack/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /usr/local/lib/apistack
VOLUME ["/var/lib/apistack"]
# apistack:apistack, by number (runtimes can then tell it is not root)
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGINT
# liveness: lighttpd answers and runs a route program (/api/ready also
# checks Redis, PostgreSQL, the migrations and a runner: for balancers)
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "-m", "2", "http://127.0.0.1:8080/api/health"]
CMD ["/usr/local/lib/apistack/scripts/gateway"]
