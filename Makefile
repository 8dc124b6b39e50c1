# mailspool — plain GNU make (see docs/ARCHITECTURE.md).
#
#   make            build programs, libraries and unit tests into build/
#   make check      unit + integration tests, then again under ASan+UBSan
#   make demo       run the product end to end on loopback
#   make install    PREFIX, DESTDIR, SYSCONFDIR, UNITDIR overridable
#   make deps       install missing Debian packages (root) or print the command
#   SANITIZE=1      build into build-san/ with -fsanitize=address,undefined
#   V=1             show full command lines

VERSION     := 0.1.0
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBEXECDIR  ?= $(PREFIX)/libexec
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
DATADIR     ?= $(PREFIX)/share
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR     ?=

CC      ?= cc
PYTHON  ?= /usr/bin/python3
PKGS    := libcurl libevent libevent_pthreads libcjson libsystemd sqlite3

ifeq ($(SANITIZE),1)
B        ?= build-san
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow
OPT      ?= -O1 -g
else
B        ?= build
SANFLAGS :=
OPT      ?= -O2 -g
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= $(OPT)
ALL_CFLAGS := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -MMD -MP \
	-I. -Icommon -Ispool -Idaemon $(PKG_CFLAGS) $(SANFLAGS) \
	-DMAILSPOOL_VERSION='"$(VERSION)"' -DSYSCONFDIR='"$(SYSCONFDIR)"' \
	-DSBINDIR='"$(SBINDIR)"' -DLIBEXECDIR='"$(LIBEXECDIR)"' $(CFLAGS)
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lpthread -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

COMMON_SRC := $(sort $(wildcard common/*.c))
CLI_SRC    := $(sort $(wildcard spool/cli*.c))
# The front `mailspool` (no SQLite: see spool/cli_front.c) and the full CLI.
FRONT_ONLY := spool/cli_front.c spool/cli_submit.c
FRONT_SRC  := spool/cli_enqueue.c spool/cli_test.c spool/cli_util.c $(FRONT_ONLY)
CLI_FULL_SRC := $(filter-out $(FRONT_ONLY),$(CLI_SRC))
SPOOL_SRC  := $(filter-out $(CLI_SRC),$(sort $(wildcard spool/*.c)))
DAEMON_MAIN := daemon/main.c
DAEMON_SRC := $(filter-out $(DAEMON_MAIN),$(sort $(wildcard daemon/*.c)))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC  := $(sort $(wildcard tests/bench/*.c))
TOOL_SRC   := $(sort $(wildcard tests/tools/*.c))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIBMS_A  := $(B)/libmailspool.a
LIBMS_SO := $(B)/libmailspool.so.0
LIBD_A   := $(B)/libmailspoold.a
MAILSPOOL  := $(B)/mailspool
MAILSPOOL_CLI := $(B)/mailspool-cli
MAILSPOOLD := $(B)/mailspoold
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
BENCH_BINS := $(patsubst tests/bench/%.c,$(B)/bench/%,$(BENCH_SRC))
TOOL_BINS  := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TOOL_SRC))

.PHONY: all check check-unit check-integration check-san clean install deps demo bench fuzz soak check-valgrind format fuzz-build check-fuzz
all: $(MAILSPOOL) $(MAILSPOOL_CLI) $(MAILSPOOLD) $(LIBMS_A) $(LIBMS_SO) $(B)/mailspool.pc $(UNIT_BINS) $(BENCH_BINS) $(TOOL_BINS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

# libmailspool carries common/ so producers link one library.
$(LIBMS_A): $(call obj,$(COMMON_SRC) $(SPOOL_SRC))
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBMS_SO): $(call obj,$(COMMON_SRC) $(SPOOL_SRC)) spool/libmailspool.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libmailspool.so.0 -Wl,--version-script=spool/libmailspool.map \
	    $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBS)
	$(Q)ln -sf libmailspool.so.0 $(B)/libmailspool.so

$(LIBD_A): $(call obj,$(DAEMON_SRC))
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(MAILSPOOL_CLI): $(call obj,$(CLI_FULL_SRC)) $(LIBMS_A)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# cli.c again, as the front's main.
$(B)/obj/front/spool/cli.o: spool/cli.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (front)")
	$(Q)$(CC) $(ALL_CFLAGS) -DCLI_FRONT -c $< -o $@

# --as-needed: the front must not load libsqlite3 (nothing in it calls SQLite).
$(MAILSPOOL): $(B)/obj/front/spool/cli.o $(call obj,$(FRONT_SRC)) $(LIBMS_A)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $^ $(LIBS)

$(MAILSPOOLD): $(call obj,$(DAEMON_MAIN)) $(LIBD_A) $(LIBMS_A)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIBD_A) $(LIBMS_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# Test drivers: small programs the integration tests run (daemon pieces included).
$(B)/tools/%: $(B)/obj/tests/tools/%.o $(LIBD_A) $(LIBMS_A)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/bench/%: $(B)/obj/tests/bench/%.o $(LIBMS_A)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/mailspool.pc: spool/mailspool.pc.in Makefile
	@mkdir -p $(B)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# ---- tests -------------------------------------------------------------
check: deps
	$(MAKE) check-unit check-integration
	$(MAKE) SANITIZE=1 check-unit check-integration PYTEST_ARGS='-m "not slow"'
	$(MAKE) check-fuzz
	@echo "make check: all suites passed (plain and ASan+UBSan)"

check-unit: all
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The integration tests mostly wait on sockets and timers: run them in
# PYTEST_JOBS processes (pytest-xdist); PYTEST_JOBS=1 runs them one by one.
# loadgroup keeps the tests marked xdist_group("NAME") on one worker (a
# file whose tests share one module-scoped daemon, e.g. test_badinput_*.py);
# unmarked tests are spread as before.
PYTEST_JOBS ?= 4
check-integration: all
	MAILSPOOL_BUILD=$(abspath $(B)) $(PYTHON) -m pytest -q -p no:cacheprovider \
	    $(if $(filter-out 1,$(PYTEST_JOBS)),-n $(PYTEST_JOBS) --dist loadgroup) tests/integration \
	    $(PYTEST_ARGS)

# Memcheck (about 15 minutes): the unit tests; the whole integration suite
# with mailspoold under valgrind (tests/integration/mshelpers.py); the CLI
# tests with mailspool under valgrind (conftest.run). Any error or definite
# leak fails.
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --num-callers=30
VALGRIND_CLI_TESTS := $(addprefix tests/integration/,test_cli_admin.py test_cli_render.py \
	test_config_check.py test_spool_enqueue.py test_spool_sql.py test_badinput_cli.py \
	test_badinput_json.py)
check-valgrind: all
	@set -e; for t in $(UNIT_BINS); do echo "== valgrind $$t"; $(VALGRIND) $$t >/dev/null; done
	MAILSPOOL_BUILD=$(abspath $(B)) MAILSPOOL_VALGRIND=1 $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)
	MAILSPOOL_BUILD=$(abspath $(B)) MAILSPOOL_VALGRIND_CLI=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(VALGRIND_CLI_TESTS) $(PYTEST_ARGS)

# make soak [SOAK_MESSAGES=N] [SOAK_SEED=S]: long; never part of make check.
SOAK_MESSAGES ?= 100000
SOAK_SEED     ?= 20261204
soak: deps
	$(MAKE) all
	$(PYTHON) tests/soak/soak.py --build $(abspath $(B)) --messages $(SOAK_MESSAGES) --seed $(SOAK_SEED)

# ---- fuzzing: libFuzzer targets in tests/fuzz, built with clang into FUZZ_B
# (never mixed with the gcc objects); tests/fuzz/run.sh runs them.
FUZZ_B       ?= $(B)-fuzz
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_CC      ?= clang
FUZZ_TARGETS := address config json mime submit
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP -g -O1 $(FUZZ_SAN) \
	-fsanitize=fuzzer-no-link -I. -Icommon -Ispool -Itests/fuzz $(PKG_CFLAGS) \
	-DMAILSPOOL_VERSION='"$(VERSION)"' -DSYSCONFDIR='"$(SYSCONFDIR)"'
FUZZ_SRC     := $(COMMON_SRC) spool/json_enqueue.c spool/b64decode.c spool/filetype.c \
	spool/isotime.c spool/submit_wire.c tests/fuzz/fuzz_wire.c
FUZZ_BINS    := $(patsubst %,$(FUZZ_B)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_OBJS    := $(patsubst %.c,$(FUZZ_B)/fobj/%.o,$(FUZZ_SRC) \
	$(patsubst %,tests/fuzz/fuzz_%.c,$(FUZZ_TARGETS)))
.SECONDARY: $(FUZZ_OBJS)

$(FUZZ_B)/fobj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/fobj/tests/fuzz/fuzz_%.o $(patsubst %.c,$(FUZZ_B)/fobj/%.o,$(FUZZ_SRC))
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -lcjson -lm

fuzz-build: $(FUZZ_BINS)

# make fuzz FUZZ_SECONDS=N: each target N seconds, FUZZ_JOBS at a time.
fuzz: deps
	$(MAKE) fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_B) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

# What make check runs: each target 60 s, two at a time (about 2 minutes).
check-fuzz: fuzz-build
	sh tests/fuzz/run.sh $(FUZZ_B) 60 2 $(FUZZ_TARGETS)

# deps first, then a sub-make: pkg-config flags are read when make starts, so
# packages that deps installs are only seen by a new make.
demo: deps
	$(MAKE) all
	$(PYTHON) tests/demo.py --build $(abspath $(B))

bench: deps
	$(MAKE) all
	$(PYTHON) tests/bench/bench.py --build $(abspath $(B))

deps:
	@sh tests/deps.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# ---- install -----------------------------------------------------------
# NOBUILD=1 installs the existing build as it is (the install test uses it so
# that it never rebuilds under the feet of other running tests).
install: $(if $(NOBUILD),,all)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/mailspool $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	install -m 0755 $(MAILSPOOL) $(DESTDIR)$(BINDIR)/mailspool
	install -d $(DESTDIR)$(LIBEXECDIR)/mailspool
	install -m 0755 $(MAILSPOOL_CLI) $(DESTDIR)$(LIBEXECDIR)/mailspool/mailspool-cli
	install -m 0755 $(MAILSPOOLD) $(DESTDIR)$(SBINDIR)/mailspoold
	install -m 0644 $(LIBMS_A) $(DESTDIR)$(LIBDIR)/libmailspool.a
	install -m 0755 $(LIBMS_SO) $(DESTDIR)$(LIBDIR)/libmailspool.so.0
	ln -sf libmailspool.so.0 $(DESTDIR)$(LIBDIR)/libmailspool.so
	install -m 0644 spool/mailspool.h $(DESTDIR)$(INCLUDEDIR)/mailspool.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    spool/mailspool.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/mailspool.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/mailspool.pc
	install -m 0644 man/mailspool.1 $(DESTDIR)$(MANDIR)/man1/mailspool.1
	install -m 0644 man/mailspool.conf.5 $(DESTDIR)$(MANDIR)/man5/mailspool.conf.5
	install -m 0644 man/mailspoold.8 $(DESTDIR)$(MANDIR)/man8/mailspoold.8
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    systemd/mailspoold.service.in > $(DESTDIR)$(UNITDIR)/mailspoold.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/mailspoold.service
	install -m 0644 systemd/mailspool.sysusers $(DESTDIR)$(SYSUSERSDIR)/mailspool.conf
	install -m 0644 systemd/mailspool.tmpfiles $(DESTDIR)$(TMPFILESDIR)/mailspool.conf
	install -m 0640 conf/mailspool.conf $(DESTDIR)$(SYSCONFDIR)/mailspool/mailspool.conf.example
	install -m 0644 conf/logrotate.d/mailspool $(DESTDIR)$(SYSCONFDIR)/logrotate.d/mailspool

clean:
	rm -rf build build-san build-fuzz build-san-fuzz

# Test and tool objects are intermediates of pattern rules: keep them.
.SECONDARY: $(call obj,$(UNIT_SRC) $(TOOL_SRC) $(BENCH_SRC))

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_B)/fobj -name '*.d' 2>/dev/null)
