# One flat Makefile. `make` builds route programs into cgi-bin/ and tools into
# bin/; `make SANITIZE=1` builds the same with ASan+UBSan into build/asan/.
# See README for run/test/bench/fuzz.

PKGS     := fcgi jansson hiredis libpq libcrypt libcrypto libjwt icu-uc icu-i18n
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wwrite-strings -Wformat=2 -Wno-format-nonliteral -fno-common
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifdef SANITIZE
OUT      := build/asan
TOUT     := build/asan/tests
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
OUT      := .
TOUT     := build/tests
SANFLAGS :=
endif
OBJ      := build/obj$(if $(SANITIZE),-asan)

ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) -Ilib $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS) -Wl,--as-needed

LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(patsubst %.c,$(OBJ)/%.o,$(LIB_SRC))
# Programs link lib/ as an archive: each takes only the modules it calls,
# and --as-needed then drops the libraries those do not use (hello maps no
# ICU, no libpq: ICU alone adds milliseconds to every exec under CGI).
LIB_A    := $(OBJ)/libapistack.a
ROUTES   := $(patsubst fcgi/%.c,$(OUT)/cgi-bin/%,$(wildcard fcgi/*.c))
BINS     := $(patsubst src/%.c,$(OUT)/bin/%,$(wildcard src/*.c))
# test programs never land in the source tree: build/tests/ or build/asan/tests/
UNITS    := $(patsubst tests/unit/%.c,$(TOUT)/unit/%,$(wildcard tests/unit/test_*.c))
# one replay program per fuzz target: replay (fuzz_request.c), replay_fcgi
# (fuzz_fcgi.c), replay_token (fuzz_token.c), replay_celery (fuzz_celery.c)
REPLAY   := $(TOUT)/fuzz/replay $(TOUT)/fuzz/replay_fcgi $(TOUT)/fuzz/replay_token \
            $(TOUT)/fuzz/replay_celery

.PHONY: all run test check unit bench fuzz lint clean deps install mutate
all: $(ROUTES) $(BINS)

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(OUT)/cgi-bin/%: $(OBJ)/fcgi/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(OUT)/bin/%: $(OBJ)/src/%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests include the module under test themselves (to reach its statics),
# so they link every lib object except that one.
$(TOUT)/unit/test_%: $(OBJ)/tests/unit/test_%.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(filter-out $(OBJ)/lib/$*.o,$(LIB_OBJ)) $(PKG_LIBS)

$(TOUT)/fuzz/replay: $(OBJ)/tests/fuzz/replay.o $(OBJ)/tests/fuzz/fuzz_request.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(TOUT)/fuzz/replay_fcgi: $(OBJ)/tests/fuzz/replay.o $(OBJ)/tests/fuzz/fuzz_fcgi.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(TOUT)/fuzz/replay_token: $(OBJ)/tests/fuzz/replay.o $(OBJ)/tests/fuzz/fuzz_token.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(TOUT)/fuzz/replay_celery: $(OBJ)/tests/fuzz/replay.o $(OBJ)/tests/fuzz/fuzz_celery.o $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# the suites' fast JSON path reader (tests/queue.bash's jget)
$(TOUT)/jget: $(OBJ)/tests/jget.o
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

unit: $(UNITS) $(REPLAY) $(TOUT)/jget

# make run: install what is missing, build, run the stack in the foreground.
run:
	@scripts/deps run
	@scripts/run --build

# make test: both builds, then unit tests, fuzz regressions and bats suites
# against a real lighttpd, for each build.
# both builds on every core (make test is CPU-bound on 2)
test:
	@scripts/deps test
	@$(MAKE) --no-print-directory -j$$(nproc) all unit
	@$(MAKE) --no-print-directory -j$$(nproc) SANITIZE=1 all unit
	@tests/run

check: test

# make mutate: each deliberate breakage in tests/mutations/ must fail the
# suite that guards it (tests/mutate; MUTATE=name... for some only).
mutate:
	@scripts/deps test
	@$(MAKE) --no-print-directory all unit
	@tests/mutate $(MUTATE)

bench:
	@scripts/deps bench
	@$(MAKE) --no-print-directory all
	@bench/run

FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps fuzz
	@tests/fuzz/run $(FUZZ_SECONDS)

lint:
	@scripts/deps lint
	@cppcheck -q --enable=warning,portability,performance --std=c11 -Ilib \
	    --suppress=missingIncludeSystem --error-exitcode=1 lib fcgi src
	@! grep -nE '\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|strtok)\s*\(' \
	    lib/*.[ch] fcgi/*.c src/*.c tests/*.c tests/unit/*.c tests/fuzz/*.c || { echo "lint: banned function"; exit 1; }
	@tests/lint-bats
	@echo "lint: ok"

clean:
	rm -rf build cgi-bin bin

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]
#              [LOCALSTATEDIR=/var] [SYSTEMDDIR=$(PREFIX)/lib/systemd/system]
# One tree, LIBDIR, laid out as the checkout's runtime files (so
# scripts/gateway, cron/ and /api/ready find everything as they do here),
# the lighttpd includes for a host's own lighttpd, and the systemd units.
# Installed files name the final paths, without DESTDIR. The host itself is
# prepared at its first start (LIBDIR/scripts/setup), not here.
PREFIX        ?= /usr/local
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
SYSTEMDDIR    ?= $(PREFIX)/lib/systemd/system
LIBDIR        := $(PREFIX)/lib/apistack
INSTALL_SED    = sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
                     -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
install:
	@if [ -n "$(SANITIZE)" ]; then echo "install: the sanitizer build is for tests" >&2; exit 1; fi
	@scripts/deps build
	@$(MAKE) --no-print-directory all
	install -d $(DESTDIR)$(LIBDIR)/bin $(DESTDIR)$(LIBDIR)/cgi-bin $(DESTDIR)$(LIBDIR)/scripts \
	    $(DESTDIR)$(LIBDIR)/deploy/lighttpd $(DESTDIR)$(LIBDIR)/deploy/nftables \
	    $(DESTDIR)$(LIBDIR)/deploy/haproxy \
	    $(DESTDIR)$(SYSCONFDIR)/lighttpd/conf-available \
	    $(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(LIBDIR)/bin/
	install -m 0755 $(ROUTES) $(DESTDIR)$(LIBDIR)/cgi-bin/
	install -m 0755 scripts/gateway scripts/backends scripts/setup scripts/lighttpd-site \
	    $(DESTDIR)$(LIBDIR)/scripts/
	install -m 0644 scripts/settings.sh $(DESTDIR)$(LIBDIR)/scripts/
	printf 'LIBDIR=%s\nSYSCONFDIR=%s\nLOCALSTATEDIR=%s\n' '$(LIBDIR)' '$(SYSCONFDIR)' \
	    '$(LOCALSTATEDIR)' >$(DESTDIR)$(LIBDIR)/scripts/paths
	install -m 0644 lighttpd.conf lighttpd-routes.conf prometheus.yml $(DESTDIR)$(LIBDIR)/
	install -m 0644 deploy/lighttpd/api-common.conf $(DESTDIR)$(LIBDIR)/deploy/lighttpd/
	install -m 0644 deploy/nftables/apistack-gateway.nft $(DESTDIR)$(LIBDIR)/deploy/nftables/
	install -m 0644 deploy/haproxy/apistack.cfg $(DESTDIR)$(LIBDIR)/deploy/haproxy/
	rm -rf $(DESTDIR)$(LIBDIR)/www $(DESTDIR)$(LIBDIR)/sql $(DESTDIR)$(LIBDIR)/cron
	cp -R www sql cron $(DESTDIR)$(LIBDIR)/
	for f in deploy/lighttpd/*.conf.in; do \
	    $(INSTALL_SED) $$f >$(DESTDIR)$(SYSCONFDIR)/lighttpd/conf-available/$$(basename $$f .in) || exit 1; \
	done
	for f in deploy/systemd/*.service; do \
	    [ -e "$$f" ] || continue; \
	    $(INSTALL_SED) $$f >$(DESTDIR)$(SYSTEMDDIR)/$$(basename $$f) || exit 1; \
	done

-include $(shell find build -name '*.d' 2>/dev/null)
.SECONDARY:
