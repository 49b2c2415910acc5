# workq - hand-written GNU Makefile (STYLE.md habit 15).
#
#   make              build libworkq.a and the four binaries into build/
#   make SAN=1        the same with ASan+UBSan, into build-san/
#   make TSAN=1       the same with ThreadSanitizer, into build-tsan/
#                     (make TSAN=1 tsan runs the threaded modules' tests)
#   make check        install missing packages, start the private test
#                     servers, run unit + integration tests, then again
#                     under the sanitizers, then the threaded modules'
#                     tests under ThreadSanitizer
#   make unit | integration | tsan | fuzz | demo | deps | style-check
#   make install | uninstall | clean    (install: the C SDK too)
#   make deb          workq and workq-dev .deb packages into build-deb/
#
# Debian 12 and 13 differ in package and pkg-config names; the differences
# are resolved here and in tests/deps.sh, never with #ifdefs on the distro.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DESTDIR   ?=
SAN       ?= 0
CC        ?= cc

TSAN      ?= 0

ifeq ($(SAN),1)
BUILD     ?= build-san
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
else ifeq ($(TSAN),1)
BUILD     ?= build-tsan
SANFLAGS  := -fsanitize=thread -fno-omit-frame-pointer
else
BUILD     ?= build
SANFLAGS  :=
endif

# msgpack-c is "msgpack" on Debian 12 and "msgpack-c" from Debian 13 on.
MSGPACK_PC := $(shell pkg-config --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
PKGS      := rdkafka librabbitmq libpq $(MSGPACK_PC) libconfig libmicrohttpd \
             libsystemd jansson libcrypto libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

# X.Y.Z from a tag vX.Y.Z, else VERSION plus the commit (shared/version.sh)
VERSION   := $(shell sh shared/version.sh 2>/dev/null || cat VERSION)

CFLAGS    ?= -O2 -g
# The warnings every build uses: the main, sanitizer, ThreadSanitizer and
# fuzz builds alike.
WQ_WARN   := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wno-missing-field-initializers
WQ_CFLAGS := -std=gnu11 $(WQ_WARN) \
             -MMD -MP -D_GNU_SOURCE -DWQ_VERSION='"$(VERSION)"' \
             -DWQ_SYSCONFDIR='"$(SYSCONFDIR)"' -DWQ_SOURCE_DIR='"$(CURDIR)"' \
             -Ishared -I$(BUILD)/gen \
             $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS   ?=
WQ_LDFLAGS := $(SANFLAGS) $(LDFLAGS)
LIBS      := $(PKG_LIBS) -lpthread -lm

# libworkq.a: every module of shared/ (one concern per file pair).
LIB_SRCS  := $(sort $(wildcard shared/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
LIB       := $(BUILD)/libworkq.a
# Its objects are also libworkq.so's (the C SDK, below).
LIB_CFLAGS := -fPIC

# The binaries, each a thin main plus what is only its own; the CLI,
# `workq`, lives in producer/cli/, beside the HTTP daemon in producer/.
WORKQ_OBJS     := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard producer/cli/*.c)))
PRODUCER_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard producer/*.c))) \
                  $(BUILD)/gen/openapi.o $(BUILD)/gen/ui_assets.o
WORKER_OBJS    := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard worker/*.c)))
SCHEDULER_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard scheduler/*.c)))
BINS := $(BUILD)/workq $(BUILD)/workq-producer $(BUILD)/workq-worker \
        $(BUILD)/workq-scheduler

# Tests: tests/unit/test_*.c need no server; tests/integration/test_*.c
# need the private servers of tests/services.
TEST_HARNESS   := $(BUILD)/tests/wq_test.o $(BUILD)/tests/wq_test_pg.o \
                  $(BUILD)/tests/wq_test_broker.o $(BUILD)/tests/wq_test_http.o \
                  $(BUILD)/tests/wq_test_producer.o
UNIT_TESTS     := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/unit/test_*.c)))
INTEG_TESTS    := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/integration/test_*.c)))

MIGRATIONS := $(sort $(wildcard shared/migrations/*.sql))

# The worker's modules (all but its main), linked into the unit tests of
# handlers and worker parts; sample handler plugins (workq_plugin.h) for
# the tests, built as shared objects.
WORKER_LIB_OBJS := $(filter-out $(BUILD)/worker/main.o,$(WORKER_OBJS))
WORKER_UNIT     := $(filter $(BUILD)/tests/unit/test_handler_% \
                   $(BUILD)/tests/unit/test_worker_%,$(UNIT_TESTS))
PLUGINS := $(patsubst tests/plugins/%.c,$(BUILD)/tests/plugins/%.so,\
           $(sort $(wildcard tests/plugins/*.c)))

.PHONY: all clean deps check unit integration tsan fuzz demo style-check \
        install uninstall fresh-check \
        services-start services-stop tests bench-e2e bench-submit bench chaos \
        bench-process bench-http cluster-up cluster-down cluster-status \
        cluster-smoke cluster-chaos cluster-scale
.DEFAULT_GOAL := all

all: $(LIB) $(BINS)

# Every object of $(BUILD) depends on $(BUILD)/.flags, the flags it is
# compiled and linked with, which make rewrites as it reads this file
# when they differ from what it holds: a build dir made with other flags
# (another CFLAGS, or from before libworkq.so's -fPIC) is rebuilt
# instead of linked stale, and make -n shows it.  Flags a rule adds for
# some objects only go in a variable named here (LIB_CFLAGS); include
# paths need not.  The version (-DWQ_VERSION) is left out: it changes
# with every commit and would rebuild everything.
FLAGS_STAMP   := $(BUILD)/.flags
STAMPED_FLAGS := $(CC) $(CFLAGS) $(filter-out -DWQ_VERSION=%,$(WQ_CFLAGS)) \
                 $(LIB_CFLAGS) $(WQ_LDFLAGS)
ifneq ($(file <$(FLAGS_STAMP)),$(STAMPED_FLAGS))
$(shell mkdir -p $(BUILD))
$(file >$(FLAGS_STAMP),$(STAMPED_FLAGS))
endif

# Test sources also see the harness header, tests/wq_test.h.
$(BUILD)/tests/%.o: WQ_CFLAGS += -Itests

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WQ_CFLAGS) -c $< -o $@

# The SQL migrations are compiled into the library, so an installed
# `workq migrate` needs no source tree.
$(BUILD)/gen/migrations.c: $(MIGRATIONS) shared/migrations/embed.sh
	@mkdir -p $(@D)
	sh shared/migrations/embed.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c $(FLAGS_STAMP)
	$(CC) $(CFLAGS) $(WQ_CFLAGS) -c $< -o $@

# The OpenAPI document is compiled into workq-producer, which serves it at
# GET /v1/openapi.json.
$(BUILD)/gen/openapi.c: docs/openapi.json producer/embed.sh
	@mkdir -p $(@D)
	sh producer/embed.sh wq_openapi_json docs/openapi.json > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/openapi.o: $(BUILD)/gen/openapi.c $(FLAGS_STAMP)
	$(CC) $(CFLAGS) $(WQ_CFLAGS) -c $< -o $@

# The dashboard's files (producer/ui/) are compiled into workq-producer
# the same way: no build step of their own, nothing to install beside it.
UI_ASSETS := $(sort $(wildcard producer/ui/*.html producer/ui/*.css producer/ui/*.js))

$(BUILD)/gen/ui_assets.c: $(UI_ASSETS) producer/ui/embed.sh
	@mkdir -p $(@D)
	sh producer/ui/embed.sh $(UI_ASSETS) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/ui_assets.o: $(BUILD)/gen/ui_assets.c $(FLAGS_STAMP)
	$(CC) $(CFLAGS) $(WQ_CFLAGS) -Iproducer -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/workq: $(WORKQ_OBJS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $(WORKQ_OBJS) $(LIB) $(LIBS)
$(BUILD)/workq-producer: $(PRODUCER_OBJS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $(PRODUCER_OBJS) $(LIB) $(LIBS)
$(BUILD)/workq-worker: $(WORKER_OBJS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $(WORKER_OBJS) $(LIB) $(LIBS)
$(BUILD)/workq-scheduler: $(SCHEDULER_OBJS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $(SCHEDULER_OBJS) $(LIB) $(LIBS)

$(BUILD)/tests/unit/test_%: $(BUILD)/tests/unit/test_%.o $(TEST_HARNESS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(TEST_EXTRA) $(TEST_HARNESS) $(LIB) $(LIBS) $(TEST_LIBS)

$(BUILD)/tests/unit/test_handler_%.o $(BUILD)/tests/unit/test_worker_%.o: \
    WQ_CFLAGS += -Iworker
$(WORKER_UNIT): TEST_EXTRA = $(WORKER_LIB_OBJS)
$(WORKER_UNIT): $(WORKER_LIB_OBJS) $(PLUGINS)
$(filter $(BUILD)/tests/integration/test_worker%,$(INTEG_TESTS)): $(PLUGINS)

# -std=c99 and nothing but workq_plugin.h: what a plugin author has.
$(BUILD)/tests/plugins/%.so: tests/plugins/%.c shared/workq_plugin.h \
    $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SANFLAGS) -std=c99 -Wall -Wextra -Werror -fPIC \
	    -shared -Ishared -o $@ $<

# End-to-end benchmark: producer side, workers, brokers and PostgreSQL
# on this machine (tests/bench/bench_e2e.sh prints the figures).
$(BUILD)/tests/bench/bench_e2e: $(BUILD)/tests/bench/bench_e2e.o $(TEST_HARNESS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(TEST_HARNESS) $(LIB) $(LIBS) $(TEST_LIBS)

bench-e2e: all $(BUILD)/tests/bench/bench_e2e
	WORKQ_BUILD=$(BUILD) sh tests/bench/bench_e2e.sh $(BUILD)/tests/bench/bench_e2e

# The process handler against exec with a trivial Python handler, and
# the worker's CPU per task through the protocol (no servers needed).
$(BUILD)/tests/bench/bench_process.o: WQ_CFLAGS += -Iworker
$(BUILD)/tests/bench/bench_process: $(BUILD)/tests/bench/bench_process.o $(BUILD)/tests/bench/bench_threads.o $(WORKER_LIB_OBJS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $^ $(LIBS)

bench-process: all $(BUILD)/tests/bench/bench_process
	$(BUILD)/tests/bench/bench_process $(WORKQ_BENCH_ARGS)

# The http handler against a local C receiver that answers at once:
# tasks/s and the worker's CPU per task (no servers needed).
$(BUILD)/tests/bench/bench_http.o: WQ_CFLAGS += -Iworker
$(BUILD)/tests/bench/bench_http: $(BUILD)/tests/bench/bench_http.o $(BUILD)/tests/bench/bench_threads.o $(WORKER_LIB_OBJS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $^ $(LIBS)

bench-http: all $(BUILD)/tests/bench/bench_http
	$(BUILD)/tests/bench/bench_http $(WORKQ_BENCH_ARGS)

# Submit benchmarks (C client, `workq submit --batch`, HTTP under wrk),
# per transport; a benchmark prints figures and never fails on them.
$(BUILD)/tests/bench/bench_submit: $(BUILD)/tests/bench/bench_submit.o $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(LIB) $(LIBS)

bench-submit: all $(BUILD)/tests/bench/bench_submit
	tests/services/ctl start all
	WORKQ_BUILD=$(BUILD) sh tests/bench/run.sh

# The report: end to end on both transports (median of three runs, 1, 2
# and 4 workers), the submit benchmarks, a table and gnuplot charts in
# $(BUILD)/bench/ (tests/bench/report.sh; 10-20 minutes, idle machine).
bench: deps
	$(MAKE) all $(BUILD)/tests/bench/bench_e2e $(BUILD)/tests/bench/bench_submit
	tests/services/ctl start all
	WORKQ_BUILD=$(BUILD) sh tests/bench/report.sh
$(BUILD)/tests/integration/test_%: $(BUILD)/tests/integration/test_%.o $(TEST_HARNESS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(TEST_HARNESS) $(LIB) $(LIBS) $(TEST_LIBS)

tests: all $(UNIT_TESTS) $(INTEG_TESTS) $(PLUGINS)

# --- tests -----------------------------------------------------------------

# The targets that install packages (check, demo, chaos) depend on deps
# and compile only in a sub-make: this make computed the pkg-config flags
# above when it read this file, before deps ran, so on a machine without
# the -dev packages they are empty; a new $(MAKE) reads them again once
# the packages exist (tests/unit/test_makefile.c).
deps:
	sh tests/deps.sh

services-start:
	tests/services/ctl start all
services-stop:
	tests/services/ctl stop all

unit: all $(UNIT_TESTS)
	WORKQ_BUILD=$(BUILD) sh tests/run.sh unit $(UNIT_TESTS)

integration: all $(INTEG_TESTS)
	WORKQ_BUILD=$(BUILD) sh tests/run.sh integration $(INTEG_TESTS)

# ThreadSanitizer over the tests of the threaded modules: the HTTP server
# (shared/http.c) in its unit test; the producer's publisher and database
# threads behind its HTTP server; the worker's consumers, pool and lease
# thread. The daemons the integration tests start are those of
# $(BUILD), so built with -fsanitize=thread too; a report stops the
# process (halt_on_error), which fails its test. Only the cases that
# drive the threads are run, to keep make check short (BIN:CASE,CASE:
# tests/run.sh). Only RabbitMQ cases: Debian's librdkafka starts its
# threads with C11 thrd_create, which ThreadSanitizer (gcc 12/14) does not
# intercept, so a Kafka client crashes in the TSan allocator at once.
# tests/tsan.supp names races inside libraries, not ours.
TSAN_RUN := \
    $(BUILD)/tests/unit/test_http \
    $(BUILD)/tests/unit/test_worker_pool \
    $(BUILD)/tests/integration/test_producer_http:accepted_rabbitmq,concurrency_rabbitmq,sigterm_drains \
    $(BUILD)/tests/integration/test_worker:noop_many_rabbitmq,sigterm_under_load_rabbitmq,lease_renewed_rabbitmq,unclaimed_runs_rabbitmq \
    $(BUILD)/tests/integration/test_hooks:hooks_rabbitmq,hang_rabbitmq
TSAN_OPTS := halt_on_error=1 second_deadlock_stack=1 \
    suppressions=$(CURDIR)/tests/tsan.supp

ifeq ($(TSAN),1)
tsan: all $(foreach t,$(TSAN_RUN),$(firstword $(subst :, ,$(t)))) $(PLUGINS)
	TSAN_OPTIONS="$(TSAN_OPTS) $${TSAN_OPTIONS:-}" WORKQ_BUILD=$(BUILD) \
	    sh tests/run.sh tsan $(TSAN_RUN)
else
tsan:
	$(MAKE) TSAN=1 tsan
endif

# The one test entry: packages, servers, plain build, sanitizer build,
# ThreadSanitizer build.
# Suites run one after another; each prints "KIND: N passed, M failed"
# and the last line sums them all.
# The builds of check (and demo) compile on every core (JOBS); the tests
# still run one binary at a time (tests/run.sh), as they share the servers.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: deps
	tests/services/ctl start all
	@rm -f $(CURDIR)/.check-summary
	$(MAKE) -j$(JOBS) all
	WQ_TEST_SUMMARY=$(CURDIR)/.check-summary $(MAKE) -j$(JOBS) unit
	WQ_TEST_SUMMARY=$(CURDIR)/.check-summary $(MAKE) -j$(JOBS) integration
	$(MAKE) -j$(JOBS) SAN=1 all
	WQ_TEST_SUMMARY=$(CURDIR)/.check-summary $(MAKE) -j$(JOBS) SAN=1 unit
	WQ_TEST_SUMMARY=$(CURDIR)/.check-summary $(MAKE) -j$(JOBS) SAN=1 integration
	$(MAKE) -j$(JOBS) TSAN=1 all
	WQ_TEST_SUMMARY=$(CURDIR)/.check-summary $(MAKE) -j$(JOBS) TSAN=1 tsan
	@awk '{p += $$1; f += $$2} END {printf "check: %d passed, %d failed\n", p, f; exit f > 0}' $(CURDIR)/.check-summary
	@rm -f $(CURDIR)/.check-summary
	@echo "(the private servers stay up for reruns: make services-stop)"

# libFuzzer targets (clang).  FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS) $(BUILD)/gen/migrations.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(WQ_WARN) -std=gnu11 -D_GNU_SOURCE -DWQ_VERSION='"fuzz"' \
	    -DWQ_SYSCONFDIR='"/etc"' -DWQ_SOURCE_DIR='"$(CURDIR)"' -Ishared -I$(BUILD)/gen $(PKG_CFLAGS) \
	    -o $@ $< $(FUZZ_EXTRA) $(LIB_SRCS) $(BUILD)/gen/migrations.c $(LIBS)

# The producer's request handling, with its publisher and database thread
# stubbed in the target and the HTTP completion wrapped by the linker.
$(FUZZ_BUILD)/fuzz_http_api: FUZZ_EXTRA = producer/api.c producer/api_ops.c \
    producer/api_workflow.c producer/ui.c $(BUILD)/gen/openapi.c $(BUILD)/gen/ui_assets.c -Iproducer \
    -Wl,--wrap=wq_http_complete -Wl,--wrap=wq_http_retry_after \
    -Wl,--wrap=wq_http_set_fields
$(FUZZ_BUILD)/fuzz_http_api: producer/api.c producer/api.h producer/api_ops.c \
    producer/api_ops.h producer/api_workflow.c producer/api_workflow.h producer/ui.c $(BUILD)/gen/openapi.c \
    $(BUILD)/gen/ui_assets.c

fuzz: $(FUZZ_TARGETS)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: deps
	$(MAKE) -j$(JOBS) all
	sh tests/demo.sh

# Layout (.clang-format) of the C lines changed since STYLE_BASE (default:
# where this branch left main, else the last commit), uncommitted changes
# included.  Only changed lines, as librdkafka's style-check-changed: code
# older than .clang-format does not match it everywhere.  Advisory: it
# shows the layout clang-format wants (`git clang-format STYLE_BASE`
# applies it) and fails only with STYLE_STRICT=1, because clang-format 14
# cannot write some of the hand layouts the code uses (nested
# continuation lines) and a reviewer, not the tool, decides those.
STYLE_BASE   ?= $(shell git merge-base HEAD main 2>/dev/null || echo HEAD)
STYLE_STRICT ?= 0
style-check:
	@out=$$(git clang-format --diff $(STYLE_BASE) -- '*.c' '*.h'); \
	if printf '%s\n' "$$out" | grep -q '^diff '; then \
	    printf '%s\n' "$$out"; \
	    echo "style-check: changed lines differ from .clang-format (git clang-format $(STYLE_BASE) applies it)"; \
	    [ "$(STYLE_STRICT)" != 1 ] || exit 1; \
	else echo "style-check: changed lines match .clang-format"; fi

# The chaos suite (tests/fault/chaos.sh): steady submits, a mix of
# handlers, two workers and two schedulers killed, brokers and PostgreSQL
# restarted and frozen; then counts that every accepted task ended once.
#   make chaos [DURATION=600] [TRANSPORTS="rabbitmq kafka"] [RATE=50]
DURATION   ?= 120
TRANSPORTS ?= rabbitmq kafka
RATE       ?= 50
$(BUILD)/tests/fault/chaos-tool: $(BUILD)/tests/fault/chaos_tool.o $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(LIB) $(LIBS)

chaos: deps
	$(MAKE) all $(BUILD)/tests/fault/chaos-tool
	tests/services/ctl start all
	set -e; for t in $(TRANSPORTS); do \
	    WORKQ_BUILD=$(BUILD) bash tests/fault/chaos.sh --transport $$t \
	        --duration $(DURATION) --rate $(RATE); \
	done

# --- the cluster test bed (issue 19; not part of check or CI) ---------------
#
#   make cluster-up | cluster-down | cluster-status | cluster-smoke
#   make cluster-chaos | cluster-scale
#
# Three RabbitMQ nodes, three Kafka brokers, a PostgreSQL primary with a
# synchronous standby, each on a host of its own (a network namespace;
# needs root): tests/cluster/ctl --help.

cluster-up:
	tests/cluster/ctl up

cluster-down:
	tests/cluster/ctl down

cluster-status:
	tests/cluster/ctl status

# The smoke run (tests/cluster/smoke.sh; takes the tests' lock itself):
#   make cluster-smoke [SMOKE_DURATION=40] [SMOKE_RATE=40]
SMOKE_DURATION ?= 40
SMOKE_RATE     ?= 40
cluster-smoke:
	$(MAKE) all $(BUILD)/tests/fault/chaos-tool
	WORKQ_BUILD=$(BUILD) tests/cluster/ctl smoke --duration $(SMOKE_DURATION) \
	    --rate $(SMOKE_RATE)

# Faults under load (tests/cluster/chaos.sh; takes the tests' lock itself):
#   make cluster-chaos [DURATION=600] [TRANSPORTS="rabbitmq kafka"]
#                      [CLUSTER_RATE=40]
# DURATION is per transport; here it defaults to 600 (make chaos: 120).
# About DURATION + 4 minutes per transport.
CLUSTER_RATE ?= 40
cluster-chaos:
	$(MAKE) all $(BUILD)/tests/fault/chaos-tool
	WORKQ_BUILD=$(BUILD) tests/cluster/ctl chaos \
	    --duration $(if $(filter command line environment,$(origin DURATION)),$(DURATION),600) \
	    --rate $(CLUSTER_RATE) --transport "$(TRANSPORTS)"

# Scale-out figures (tests/cluster/scale.sh; takes the tests' lock itself):
# throughput of SCALE_TASKS noop tasks with workers on 1, 2 and 4 hosts,
# then the producers' latency at SCALE_RATE tasks/s (one blocking submit
# each) with all broker nodes up, the second node killed, the first
# killed; every task counted.  About 5 minutes for both transports.
#   make cluster-scale [TRANSPORTS="rabbitmq kafka"] [SCALE_TASKS=20000]
#                      [SCALE_RATE=100]
SCALE_TASKS ?= 20000
SCALE_RATE  ?= 100
cluster-scale:
	$(MAKE) all $(BUILD)/tests/fault/chaos-tool
	WORKQ_BUILD=$(BUILD) tests/cluster/ctl scale --tasks $(SCALE_TASKS) \
	    --rate $(SCALE_RATE) --transport "$(TRANSPORTS)"

# --- install -----------------------------------------------------------------
#
#   make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc] ...
#   make uninstall (the same variables)
#
# Installs the binaries, the systemd units (systemd/, with @BINDIR@,
# @SYSCONFDIR@ and @DOCDIR@ replaced, so ExecStart= names the installed
# binaries), the sysusers.d and tmpfiles.d entries, the documented
# configuration (never overwriting an existing workq.conf), man pages made
# from each binary's --help, and the documentation.  Without DESTDIR, on
# a host that runs systemd, it then creates the workq user, applies the
# tmpfiles entry and reloads systemd (SYSTEMD_SETUP=no skips that).
# uninstall removes all of it but the configuration and the user.

DOCDIR          ?= $(PREFIX)/share/doc/workq
MANDIR          ?= $(PREFIX)/share/man
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR     ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR     ?= $(PREFIX)/lib/tmpfiles.d
SYSTEMD_SETUP   ?= auto

UNITS     := workq-producer.service workq-scheduler.service \
             workq-worker@.service workq.target
MAN_PAGES := $(BUILD)/man/workq.1 $(BUILD)/man/workq-producer.8 \
             $(BUILD)/man/workq-worker.8 $(BUILD)/man/workq-scheduler.8
DOCS      := README.md docs/production.md docs/task-states.md \
             docs/operator-api.md docs/openapi.json docs/dashboard.md \
             docs/dashboard.png docs/workflows.md
SUBST     := sed -e 's|@BINDIR@|$(BINDIR)|g' \
             -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'
MAN_DATE  := $(shell git log -1 --format=%cd --date=short 2>/dev/null)

# A man page from a binary's --help, which is laid out as one already:
# lines in capitals are sections, NAME is a "name - summary" line, the
# rest is kept as it is (no fill).
HELP2MAN := '\
    BEGIN { printf ".TH \"%s\" \"%s\" \"%s\" \"workq %s\" \"workq manual\"\n", \
            toupper(name), sec, date, ver } \
    { gsub(/\\/, "\\e"); gsub(/-/, "\\-") } \
    /^[A-Z][A-Z ]*[A-Z]$$/ { if (nf) print ".fi"; nf = 0; blank = 0; \
            print ".SH " $$0; sect = $$0; next } \
    /^ *$$/ { blank++; next } \
    sect == "NAME" { sub(/^ +/, ""); print; next } \
    { if (!nf) print ".nf"; nf = 1; for (; blank > 0; blank--) print ""; \
      sub(/^    /, ""); if ($$0 ~ /^[.\047]/) $$0 = "\\&" $$0; print } \
    END { if (nf) print ".fi" }'

$(BUILD)/man/%.1: $(BUILD)/%
	@mkdir -p $(@D)
	$< --help | awk -v name=$* -v sec=1 -v date='$(MAN_DATE)' \
	    -v ver='$(VERSION)' $(HELP2MAN) > $@.tmp && mv $@.tmp $@
$(BUILD)/man/%.8: $(BUILD)/%
	@mkdir -p $(@D)
	$< --help | awk -v name=$* -v sec=8 -v date='$(MAN_DATE)' \
	    -v ver='$(VERSION)' $(HELP2MAN) > $@.tmp && mv $@.tmp $@

install: all $(MAN_PAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSTEMD_UNITDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/workq
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	for u in $(UNITS); do \
	    $(SUBST) systemd/$$u > $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u.tmp && \
	    chmod 0644 $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u.tmp && \
	    mv $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMD_UNITDIR)/$$u \
	    || exit 1; done
	install -m 0644 systemd/sysusers.d/workq.conf $(DESTDIR)$(SYSUSERSDIR)/workq.conf
	$(SUBST) systemd/tmpfiles.d/workq.conf > $(DESTDIR)$(TMPFILESDIR)/workq.conf
	chmod 0644 $(DESTDIR)$(TMPFILESDIR)/workq.conf
	install -m 0644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	install -m 0644 config/workq.conf $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf || \
	    install -m 0640 config/workq.conf $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf
	@if [ -z "$(DESTDIR)" ] && [ "$(SYSTEMD_SETUP)" != no ] \
	    && [ -d /run/systemd/system ]; then \
	    echo "systemd-sysusers, systemd-tmpfiles --create, daemon-reload"; \
	    systemd-sysusers $(SYSUSERSDIR)/workq.conf && \
	    systemd-tmpfiles --create $(TMPFILESDIR)/workq.conf && \
	    systemctl daemon-reload; \
	else \
	    echo "installed; on the target host run: systemd-sysusers;" \
	        "systemd-tmpfiles --create; systemctl daemon-reload" \
	        "(see $(DOCDIR)/production.md)"; \
	fi

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,workq workq-producer workq-worker workq-scheduler)
	rm -f $(addprefix $(DESTDIR)$(SYSTEMD_UNITDIR)/,$(UNITS))
	rm -f $(DESTDIR)$(SYSUSERSDIR)/workq.conf $(DESTDIR)$(TMPFILESDIR)/workq.conf
	rm -f $(DESTDIR)$(MANDIR)/man1/workq.1 $(addprefix $(DESTDIR)$(MANDIR)/man8/,\
	    workq-producer.8 workq-worker.8 workq-scheduler.8)
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf.example
	@if [ -z "$(DESTDIR)" ] && [ "$(SYSTEMD_SETUP)" != no ] \
	    && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "left in place: $(SYSCONFDIR)/workq (configuration), the workq user"

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# The README's two commands on a Debian root made from nothing, in a
# network namespace of its own (tests/fresh/check.sh; needs root):
#   make fresh-check [DIST=bookworm|trixie] [FRESH_STEPS="demo check"]
# (FRESH_STEPS="deb": make deb, then the package installed on a clean root)
DIST        ?= bookworm
FRESH_STEPS ?= demo check
fresh-check:
	sh tests/fresh/check.sh $(DIST) $(FRESH_STEPS)

# --- C SDK: libworkq.so, headers, workq.pc -----------------------------------
#
# libworkq.so.X.Y.Z with the soname libworkq.so.X (X, Y, Z from VERSION),
# exporting only the public C API: the version script
# shared/libworkq.map keeps every other symbol local
# (tests/unit/test_abi.c checks it).  Its objects are those of libworkq.a,
# built position-independent for it.  The binaries link libworkq.a: they
# use the internal modules the shared library hides (README, "Building and
# testing").
#   make install-sdk [PREFIX=/usr/local] [LIBDIR=$(PREFIX)/lib] [DESTDIR=]
# installs the headers, both libraries, the soname links and workq.pc
# (part of make install); uninstall-sdk removes them.
SOVERSION    := $(shell echo '$(VERSION)' | sed -E 's/^([0-9]+[.][0-9]+[.][0-9]+).*/\1/')
SOMAJOR      := $(firstword $(subst ., ,$(SOVERSION)))
SONAME       := libworkq.so.$(SOMAJOR)
SOLIB        := $(BUILD)/libworkq.so.$(SOVERSION)
SDK_HEADERS  := shared/workq.h shared/workq_outbox.h shared/workq_plugin.h
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LDCONFIG     ?= ldconfig

.PHONY: install-sdk uninstall-sdk deb clean-deb

all: $(SOLIB)
$(LIB_OBJS): WQ_CFLAGS += $(LIB_CFLAGS)

$(SOLIB): $(LIB_OBJS) shared/libworkq.map
	$(CC) $(WQ_LDFLAGS) -shared -Wl,-soname,$(SONAME) \
	    -Wl,--version-script=shared/libworkq.map -Wl,--no-undefined \
	    -o $@ $(LIB_OBJS) $(LIBS)
	ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libworkq.so

# The SDK's test installs it from this build and builds the README's
# example with the same sanitizer flags as the library (test_sdk.c).
$(BUILD)/tests/integration/test_sdk.o: WQ_CFLAGS += \
    -DWQ_TEST_MAKEVARS='"SAN=$(SAN) TSAN=$(TSAN)"' \
    -DWQ_TEST_SANFLAGS='"$(SANFLAGS)"'

install: install-sdk
uninstall: uninstall-sdk

install-sdk: $(LIB) $(SOLIB)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0644 $(SDK_HEADERS) $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(LIB) $(SOLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SOLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libworkq.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES@|$(PKGS)|' shared/workq.pc.in \
	    > $(DESTDIR)$(PKGCONFIGDIR)/workq.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/workq.pc
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then $(LDCONFIG); fi

uninstall-sdk:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(SDK_HEADERS)))
	rm -f $(DESTDIR)$(LIBDIR)/libworkq.a $(DESTDIR)$(LIBDIR)/libworkq.so \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libworkq.so.$(SOMAJOR).*
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/workq.pc

# --- Debian packages ---------------------------------------------------------
#
# make deb: workq_VERSION_ARCH.deb (daemons, CLI, units, configuration,
# the shared library) and workq-dev_VERSION_ARCH.deb (headers, static
# library, libworkq.so link, workq.pc) into build-deb/, built with
# dpkg-buildflags, dpkg-shlibdeps and dpkg-deb, then checked by lintian
# (systemd/debian/build.sh).  Like check and demo, it installs packages first and
# compiles in a new make.
deb: deps
	sh systemd/debian/build.sh

clean: clean-deb
clean-deb:
	rm -rf build-deb

# The units under a real systemd as PID 1: make deb's package in a Debian
# 12 root booted by systemd-nspawn, against the private servers
# (tests/systemd/boot.sh; needs root and a cached fresh-check root).
.PHONY: systemd-check
systemd-check: deb
	tests/services/ctl start all
	sh tests/systemd/boot.sh
