# sessync — see README.md. `make` builds ./sessyncd, `make check` installs what
# is missing, builds with warnings as errors and runs every test.

PREFIX    ?= /usr/local
DESTDIR   ?=
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

CC        ?= cc
CFLAGS    ?= -O2 -g
WARNINGS  := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes \
             -Wstrict-prototypes -Wvla -Wpointer-arith
CPPFLAGS  += -I. -D_GNU_SOURCE
LDLIBS    := -lrsync -lssh2 -linih -lxxhash -lcrypto
BUILD     ?= build

VERSION   := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

PROTO_SRC  := $(wildcard proto/*.c)
LIB_SRC    := $(wildcard lib/*.c)
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
CORE_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(PROTO_SRC) $(LIB_SRC) $(DAEMON_SRC))
MAIN_OBJ   := $(BUILD)/daemon/main.o
UNIT_SRC   := $(wildcard tests/test_*.c)
UNIT_BIN   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all unit check demo bench bench-deps install uninstall clean deps fuzz fuzz-long chaos
all: sessyncd

$(BUILD)/%.o: %.c $(wildcard */*.h) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DSESSYNC_VERSION='"$(VERSION)"' $(CFLAGS) $(WARNINGS) -c -o $@ $<

$(BUILD)/sessyncd: $(MAIN_OBJ) $(CORE_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

sessyncd: $(BUILD)/sessyncd
	cp -f $< $@

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARNINGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(CORE_OBJ) $(LDLIBS) -lcriterion

$(BUILD)/bench/%: bench/%.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARNINGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(CORE_OBJ) $(LDLIBS)

unit: $(UNIT_BIN)

# The test driver installs nothing itself: deps does, then everything is
# built (plain and ASan+UBSan) with -Werror, then tests/run prints the tally.
check: deps
	$(MAKE) all unit
	$(MAKE) BUILD=build/asan CC=gcc \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" unit
	tests/run

deps:
	@tests/deps

demo: deps all
	tests/demo

# The long form of tests/integration/t_chaos.sh (make check runs a 20 s one):
# CHAOS_SECONDS (default 600), CHAOS_SEED, CHAOS_RATE, CHAOS_CLOCK_STEPS.
chaos: deps all
	CHAOS_LONG=1 CHAOS_SECONDS=$${CHAOS_SECONDS:-600} tests/integration/t_chaos.sh

# Never part of check: figures, not pass/fail (bench/run says what runs).
bench: all $(BENCH_BIN) bench-deps
	bench/run

bench-deps:
	@bench/deps

fuzz: $(CORE_OBJ)
	tests/fuzz/run

# The long run (issue 10 asks 10^8 executions in all before a release): every
# tests/fuzz/fuzz_*.c, FUZZ_SECONDS in all (default an hour) shared by the
# targets, each on one process per core (FUZZ_JOBS), corpora kept in FUZZ_DIR
# (default build/fuzz). Prints executions per target and the total; fails on
# any crash, leak, timeout or OOM, naming the input.
fuzz-long: $(CORE_OBJ)
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),3600) FUZZ_JOBS=$(or $(FUZZ_JOBS),$(shell nproc)) tests/fuzz/run

install: $(BUILD)/sessyncd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(BUILD)/sessyncd $(DESTDIR)$(SBINDIR)/sessyncd
	if [ -d man ]; then \
	  for m in man/*.5; do [ -f "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(MANDIR)/man5/; done; \
	  for m in man/*.8; do [ -f "$$m" ] && install -m 0644 "$$m" $(DESTDIR)$(MANDIR)/man8/; done; \
	fi; true

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sessyncd

clean:
	rm -rf build sessyncd

# A Debian package (README.md "Debian package"): dpkg-buildpackage in a copy
# of the source under $(BUILD)/deb, so the worktree stays clean and the
# results, which dpkg-buildpackage writes into the copy's parent directory,
# stay under $(BUILD). Then lintian, which fails it on any warning or error
# not overridden in debian/sessync.lintian-overrides.
DEB_DIR := $(BUILD)/deb
.PHONY: deb
deb:
	@v=$$(dpkg-parsechangelog -S Version) && [ "$$v" = "$(VERSION)" ] || \
	  { echo "deb: debian/changelog is at $$v but VERSION is $(VERSION): add a changelog entry" >&2; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/sessync-$(VERSION)
	tar -c --exclude=./.git --exclude=./build --exclude=./$(BUILD) --exclude=./sessyncd \
	    --exclude='*.o' --exclude=__pycache__ . | tar -x -C $(DEB_DIR)/sessync-$(VERSION)
	cd $(DEB_DIR)/sessync-$(VERSION) && dpkg-buildpackage -us -uc -b
	rm -rf $(DEB_DIR)/sessync-$(VERSION)
	lintian -I --pedantic --show-overrides --fail-on error,warning $(DEB_DIR)/sessync_$(VERSION)_*.changes
	@ls -l $(DEB_DIR)/*.deb
