# workq - hand-written GNU Makefile (STYLE.md habit 15).
#
#   make              build libworkq.a and the four binaries into build/
#   make SAN=1        the same with ASan+UBSan, into build-san/
#   make check        install missing packages, start the private test
#                     servers, run unit + integration tests, then again
#                     under the sanitizers
#   make unit | integration | fuzz | demo | deps | install | clean
#
# Debian 12 and 13 differ in package and pkg-config names; the differences
# are resolved here and in tests/deps.sh, never with #ifdefs on the distro.

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DESTDIR   ?=
SAN       ?= 0
CC        ?= cc

ifeq ($(SAN),1)
BUILD     ?= build-san
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all \
             -fno-omit-frame-pointer
else
BUILD     ?= build
SANFLAGS  :=
endif

# msgpack-c is "msgpack" on Debian 12 and "msgpack-c" from Debian 13 on.
MSGPACK_PC := $(shell pkg-config --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
PKGS      := rdkafka librabbitmq libpq $(MSGPACK_PC) libconfig libmicrohttpd \
             libsystemd jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

VERSION   := $(shell git describe --always --dirty --tags 2>/dev/null || echo 0.1.0)

CFLAGS    ?= -O2 -g
WQ_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -Wformat=2 -Wshadow \
             -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers \
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

# The binaries, each a thin main plus what is only its own.
WORKQ_OBJS     := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard producer/cli*.c)))
PRODUCER_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(filter-out producer/cli%,$(sort $(wildcard producer/*.c))))
WORKER_OBJS    := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard worker/*.c)))
SCHEDULER_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard scheduler/*.c)))
BINS := $(BUILD)/workq $(BUILD)/workq-producer $(BUILD)/workq-worker \
        $(BUILD)/workq-scheduler

# Tests: tests/unit/test_*.c need no server; tests/integration/test_*.c
# need the private servers of tests/services.
TEST_HARNESS   := $(BUILD)/tests/wq_test.o $(BUILD)/tests/wq_test_pg.o \
                  $(BUILD)/tests/wq_test_broker.o
UNIT_TESTS     := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/unit/test_*.c)))
INTEG_TESTS    := $(patsubst %.c,$(BUILD)/%,$(sort $(wildcard tests/integration/test_*.c)))

MIGRATIONS := $(sort $(wildcard shared/migrations/*.sql))

.PHONY: all clean deps check unit integration fuzz demo install uninstall \
        services-start services-stop tests
.DEFAULT_GOAL := all

all: $(LIB) $(BINS)

# Test sources also see the harness header, tests/wq_test.h.
$(BUILD)/tests/%.o: WQ_CFLAGS += -Itests

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WQ_CFLAGS) -c $< -o $@

# The SQL migrations are compiled into the library, so an installed
# `workq migrate` needs no source tree.
$(BUILD)/gen/migrations.c: $(MIGRATIONS) shared/migrations/embed.sh
	@mkdir -p $(@D)
	sh shared/migrations/embed.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c
	$(CC) $(CFLAGS) $(WQ_CFLAGS) -c $< -o $@

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
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(TEST_HARNESS) $(LIB) $(LIBS) $(TEST_LIBS)
$(BUILD)/tests/integration/test_%: $(BUILD)/tests/integration/test_%.o $(TEST_HARNESS) $(LIB)
	$(CC) $(WQ_LDFLAGS) -o $@ $< $(TEST_HARNESS) $(LIB) $(LIBS) $(TEST_LIBS)

tests: all $(UNIT_TESTS) $(INTEG_TESTS)

# --- tests -----------------------------------------------------------------

deps:
	sh tests/deps.sh

services-start:
	tests/services/ctl start all
services-stop:
	tests/services/ctl stop all

unit: all $(UNIT_TESTS)
	sh tests/run.sh unit $(UNIT_TESTS)

integration: all $(INTEG_TESTS)
	WORKQ_BUILD=$(BUILD) sh tests/run.sh integration $(INTEG_TESTS)

# The one test entry: packages, servers, plain build, sanitizer build.
check: deps
	tests/services/ctl start all
	$(MAKE) unit integration
	$(MAKE) SAN=1 unit integration
	@echo "check: all suites passed (servers left running: make services-stop)"

# libFuzzer targets (clang).  FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_CFLAGS  := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRCS) $(BUILD)/gen/migrations.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -std=gnu11 -D_GNU_SOURCE -DWQ_VERSION='"fuzz"' \
	    -DWQ_SYSCONFDIR='"/etc"' -DWQ_SOURCE_DIR='"$(CURDIR)"' -Ishared -I$(BUILD)/gen $(PKG_CFLAGS) \
	    -o $@ $< $(LIB_SRCS) $(BUILD)/gen/migrations.c $(LIBS)

fuzz: $(FUZZ_TARGETS)
	sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: deps all
	sh tests/demo.sh

# --- install -----------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/workq
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 0644 config/workq.conf $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf || \
	    install -m 0640 config/workq.conf $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,workq workq-producer workq-worker workq-scheduler)
	rm -f $(DESTDIR)$(SYSCONFDIR)/workq/workq.conf.example

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
