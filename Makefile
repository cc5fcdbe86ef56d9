# Antenna - plain Makefile. `make` builds build/antennad and build/antenna; `make test` runs
# everything (format and lint checks, unit tests, sanitizer build, integration on a real Slurm
# cluster with the hostile table, a short fuzz pass, the quick pass of the fault harness).
# `make bench`, `make reliability` and `make fuzz` run long.
# Quiet unless V=1. SANITIZER=address,undefined builds into build-san/.

CC      ?= cc
SANITIZER ?=
V ?= 0

ifeq ($(SANITIZER),)
BUILD   ?= build
SANFLAGS :=
OPT     ?= -O2 -g
else
BUILD   ?= build-san
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT     ?= -O1 -g
endif

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror
HARDEN  := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CPPFLAGS += -D_GNU_SOURCE -Ipolicies -Ischeduler -Iclient
CFLAGS  += -std=c11 $(WARN) $(HARDEN) $(OPT) $(SANFLAGS) -MMD -MP
LDFLAGS += -pie -Wl,-z,relro -Wl,-z,now $(SANFLAGS)

LIBS_SCHED  := -luv -lhttp_parser -lssl -lcrypto -ljansson -lsqlite3 -lslurm -lpthread -lm
LIBS_CLIENT := -lcurl -ljansson -lcrypto -lm
LIBS_TEST   := -lcmocka

ifeq ($(V),0)
Q := @
say = @printf '  %-6s %s\n' $(1) $(2);
else
Q :=
say :=
endif

POL_SRC   := $(wildcard policies/*.c)
SCHED_SRC := $(filter-out scheduler/main.c,$(wildcard scheduler/*.c))
CLI_SRC   := $(filter-out client/main.c,$(wildcard client/*.c))
TEST_SRC  := $(wildcard tests/unit/test_*.c)

POL_OBJ   := $(POL_SRC:%.c=$(BUILD)/%.o)
SCHED_OBJ := $(SCHED_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/ui_assets_data.o
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BIN := $(ITEST_SRC:tests/integration/%.c=$(BUILD)/itests/%)

.SECONDARY:
.PHONY: all deps test unit unit-san integration browser-deps format format-check demo demo-stop clean bench bench-bin reliability

all: $(BUILD)/antennad $(BUILD)/antenna

$(BUILD)/%.o: %.c | $(BUILD)/.build-deps
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Before the first compile: name the missing Debian packages (and `make deps`) instead of a
# compiler error about a header. Checked once per build folder.
$(BUILD)/.build-deps: deploy/check-build-deps.sh
	@mkdir -p $(dir $@)
	$(Q)deploy/check-build-deps.sh $(CC) && touch $@
$(BUILD)/.test-deps: deploy/check-build-deps.sh
	@mkdir -p $(dir $@)
	$(Q)deploy/check-build-deps.sh $(CC) test && touch $@
$(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.o): | $(BUILD)/.test-deps

# The web console (ui/) embedded into antennad as C arrays (scheduler/ui_embed.sh): served from
# memory at /ui, no file read at run time.
UI_FILES := $(sort $(shell find ui -type f 2>/dev/null))
$(BUILD)/gen/ui_assets_data.c: scheduler/ui_embed.sh $(UI_FILES)
	@mkdir -p $(dir $@)
	$(call say,EMBED,ui/)scheduler/ui_embed.sh $@ ui $(UI_FILES)
$(BUILD)/gen/ui_assets_data.o: $(BUILD)/gen/ui_assets_data.c | $(BUILD)/.build-deps
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libpolicies.a: $(POL_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^
$(BUILD)/libscheduler.a: $(SCHED_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^
$(BUILD)/libclient.a: $(CLI_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(BUILD)/antennad: $(BUILD)/scheduler/main.o $(BUILD)/libscheduler.a $(BUILD)/libpolicies.a
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_SCHED)

$(BUILD)/antenna: $(BUILD)/client/main.o $(BUILD)/libclient.a $(BUILD)/libpolicies.a
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_CLIENT)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libscheduler.a $(BUILD)/libclient.a $(BUILD)/libpolicies.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_SCHED) $(LIBS_CLIENT) $(LIBS_TEST)

$(BUILD)/itests/%: $(BUILD)/tests/integration/%.o $(BUILD)/libscheduler.a $(BUILD)/libclient.a $(BUILD)/libpolicies.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_SCHED) $(LIBS_CLIENT) $(LIBS_TEST)

# Installs missing Debian packages (idempotent; quick when all are there).
deps:
	$(Q)deploy/install-deps.sh

unit: all $(TEST_BIN)
	$(Q)tests/run-unit.sh $(BUILD)

unit-san:
	$(Q)$(MAKE) --no-print-directory SANITIZER=address,undefined unit

integration: all $(ITEST_BIN) browser-deps
	$(Q)tests/integration/run.sh $(BUILD)

# The browser test's driver (playwright-core, pinned in tests/browser/package-lock.json), installed
# when missing; it drives Debian's chromium (make deps), never a browser of its own.
browser-deps: tests/browser/node_modules/.installed
tests/browser/node_modules/.installed: tests/browser/package.json tests/browser/package-lock.json
	$(call say,NPM,tests/browser)cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	$(Q)touch $@

format:
	$(Q)clang-format -i $(wildcard */*.[ch] tests/unit/*.[ch] tests/integration/*.[ch] tests/bench/*.[ch] tests/fuzz/*.[ch])

format-check:
	$(Q)clang-format --dry-run --Werror $(wildcard */*.[ch] tests/unit/*.[ch] tests/integration/*.[ch] tests/bench/*.[ch] tests/fuzz/*.[ch]) && echo "  format ok"
	$(Q)tests/lint.sh

test: deps
	$(Q)$(MAKE) --no-print-directory format-check
	$(Q)$(MAKE) --no-print-directory unit
	$(Q)$(MAKE) --no-print-directory unit-san
	$(Q)$(MAKE) --no-print-directory integration
	$(Q)$(MAKE) --no-print-directory fuzz-quick
	$(Q)RELIABILITY_QUICK=1 RELIABILITY_DOC=- tests/reliability/run.sh $(BUILD)

demo: deps all
	$(Q)deploy/demo.sh start

demo-stop:
	$(Q)deploy/demo.sh stop

# Benchmarks: print measurements, never fail on a time. `make bench` runs tests/bench/run.sh: one
# private Slurm cluster with antennad and slurmrestd side by side, a table on stdout and
# $(BUILD)/bench.json. Knobs (environment): BENCH_DURATION (10s), BENCH_QUEUED (100000),
# BENCH_DISPATCH_N, BENCH_IDLE, BENCH_POLICY_MAX... (see tests/bench/run.sh).
BENCH_BIN := $(addprefix $(BUILD)/bench/,bench_policy bench_dispatch loadgen bench_report)

$(BUILD)/bench/bench_policy: tests/bench/bench_policy.c $(BUILD)/libpolicies.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/bench/bench_dispatch: tests/bench/bench_dispatch.c $(BUILD)/libscheduler.a $(BUILD)/libpolicies.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS_SCHED)

$(BUILD)/bench/loadgen: tests/bench/loadgen.c
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lssl -lcrypto -lpthread -lm

$(BUILD)/bench/bench_report: tests/bench/bench_report.c
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ -ljansson -lm

.PHONY: bench-bin
bench-bin: all $(BENCH_BIN)

bench: deps
	$(Q)$(MAKE) --no-print-directory bench-bin
	$(Q)tests/bench/run.sh $(BUILD)

# Fault harness on its own cluster (tests/reliability/run.sh): prints a table, writes
# docs/reliability.md, fails on any non-zero cell. RELIABILITY_QUICK=1 for a short pass.
.PHONY: reliability
# The fault harness: SIGKILLs, a hung and a dead slurmctld, SIGTERM restarts, a full disk
# (docs/reliability.md). `make test` runs its quick pass.
reliability: deps all
	$(Q)tests/reliability/run.sh $(BUILD)

# Fuzzing (libFuzzer, clang, ASan+UBSan): every tests/fuzz/fuzz_<name>.c is a target, built into
# $(FUZZ_BUILD) against the project's objects (compiled there by clang with fuzzer-no-link) and run
# by tests/fuzz/run.sh for FUZZ_SECONDS each from a scratch copy of tests/fuzz/seeds/<name>/;
# any crash, leak or sanitizer report fails. `make test` runs a short pass (fuzz-quick).
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BUILD   ?= $(BUILD)-fuzz
FUZZ_SECONDS ?= 60
FUZZ_QUICK_SECONDS ?= 4
.PHONY: fuzz fuzz-bin fuzz-quick

$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/libscheduler.a $(BUILD)/libclient.a $(BUILD)/libpolicies.a
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS_SCHED) $(LIBS_CLIENT)

# (fuzz-bin is the inner step of `make fuzz`, which sets clang and the sanitizers.)
fuzz-bin: $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
	@:

fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang \
		SANITIZER=fuzzer-no-link,address,undefined fuzz-bin
	$(Q)tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-quick:
	$(Q)$(MAKE) --no-print-directory FUZZ_SECONDS=$(FUZZ_QUICK_SECONDS) fuzz

clean:
	$(Q)rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
