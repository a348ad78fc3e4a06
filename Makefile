# Provium build. `make` builds the binaries, `make check` builds with ASan/UBSan
# and runs every test, `make bench` prints the benchmark figures, `make demo`
# shows the main job on this machine.
#
# Sources are picked up by folder, so a new file needs no Makefile change:
#   netcore/*.c qmp/*.c guest/lib/*.c -> libraries linked into every binary
#   fs/*.c                            -> provium-labd (main in fs/main.c)
#   guest/agent/*.c                   -> provium-agent (static, runs in the guest)
#   tests/unit/test_*.c               -> one cmocka binary each
#   tests/bin/*.c                     -> helper programs for tests and benchmarks

CC      ?= cc
BUILD   ?= build
SAN     ?= 0
PKGS    := fuse3 libnl-3.0 libnl-route-3.0 libnftnl libmnl json-c lua5.4 libpcap

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation -g -I. \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS        := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
ifeq ($(SAN),1)
OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else
OPT := -O2
endif
CFLAGS  := $(CFLAGS_BASE) $(OPT) $(EXTRA_CFLAGS)
LDFLAGS := $(OPT) $(EXTRA_LDFLAGS)

LIB_SRC   := $(wildcard netcore/*.c qmp/*.c guest/lib/*.c)
FS_SRC    := $(wildcard fs/*.c)
AGENT_SRC := $(wildcard guest/agent/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
TBIN_SRC  := $(wildcard tests/bin/*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
FS_OBJ    := $(FS_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TBIN_BIN  := $(TBIN_SRC:tests/bin/%.c=$(BUILD)/tests/bin/%)
LIBPV     := $(BUILD)/libprovium.a

all: $(BUILD)/provium-labd $(if $(AGENT_SRC),$(BUILD)/provium-agent)
tests: all $(UNIT_BIN) $(TBIN_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBPV): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/provium-labd: $(FS_OBJ) $(LIBPV)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The agent runs as PID 1 in a guest whose /usr is the host's; static linking
# keeps it independent of the guest's library path during early boot. No
# sanitizers: they do not link statically.
$(BUILD)/provium-agent: $(AGENT_SRC) $(wildcard guest/agent/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-format-truncation -O2 -g -I. -static -o $@ $(AGENT_SRC) \
		$(shell pkg-config --cflags --libs --static json-c)

$(BUILD)/tests/%: tests/unit/%.c $(LIBPV)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBPV) $(LIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/bin/%: tests/bin/%.c $(LIBPV)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBPV) $(LIBS)

deps:
	./contrib/install-deps

# check: install, build with sanitizers, run everything. Ends with "N passed, N failed".
check: deps
	$(MAKE) SAN=1 BUILD=build/san tests
	$(MAKE) BUILD=build all
	tests/run build/san

bench: deps
	$(MAKE) BUILD=build tests
	tests/bench/run build

demo: deps
	$(MAKE) BUILD=build all
	contrib/demo build

format:
	clang-format -i $(LIB_SRC) $(FS_SRC) $(AGENT_SRC) $(UNIT_SRC) $(TBIN_SRC) $(wildcard */*.h */*/*.h)

clean:
	rm -rf build

.PHONY: all tests deps check bench demo format clean
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
