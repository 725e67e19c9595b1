# bolt: `make` builds ./bolt, `make test` builds and runs the Check suites, `make demo`
# trains a tiny TNL on the fortunes corpus and samples from it.
#
# The CUDA backend (kernels/*.cu) is built whenever nvcc is found (on PATH, or at
# /usr/local/cuda/bin/nvcc); `make CUDA=0` builds the CPU-only binary. Switching between
# the two rebuilds everything (the stamp build/.config-cuda0 or -cuda1 says which it is).
#
# Multi-process training (dist/) links MPI when its headers are found (pkg-config ompi-c,
# else mpicc --showme); `make MPI=0` or no MPI builds a single-process binary that refuses
# multi-process launches. With CUDA, NCCL is used when nccl.h is found (`make NCCL=0`: off).
CC ?= gcc
CFLAGS ?= -O2 -march=native
# Objects, libbolt.a and test programs go under BUILD; the binary is BOLT. `make sanitize`
# sets both (build-asan-gcc/, build-asan-clang/) and adds the SANITIZE flags.
BUILD ?= build
BOLT ?= bolt
SANITIZE ?=
CFLAGS += $(SANITIZE) -std=c11 -fopenmp -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -MMD -MP
LDLIBS = -lzstd -lcjson -lpcre2-8 -lpthread -lm
TEST_LDLIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt) $(LDLIBS)

# nvcc on PATH, else the default toolkit's (looked up once); CUDA_HOME follows the nvcc.
ifeq ($(origin NVCC),undefined)
NVCC := $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
endif
ifeq ($(origin CUDA_HOME),undefined)
CUDA_HOME := $(if $(NVCC),$(patsubst %/bin/,%,$(dir $(NVCC))),/usr/local/cuda)
endif
CUDA ?= $(if $(NVCC),1,0)

# MPI: compile and link flags from pkg-config, else from the mpicc wrapper.
ifeq ($(origin MPI_CFLAGS),undefined)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
endif
MPI ?= $(if $(strip $(MPI_LIBS)),1,0)
ifeq ($(MPI),1)
CFLAGS += -DBOLT_MPI $(MPI_CFLAGS)
LDLIBS += $(MPI_LIBS)
endif

# Figures (train/plot.c, plot_bench.c, their shared plot_draw.c) are drawn with Cairo when
# pkg-config finds it; `make PLOT=0` or no Cairo builds a bolt whose plot command and
# end-of-run figure say it was built without.
ifeq ($(origin CAIRO_CFLAGS),undefined)
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo 2>/dev/null)
CAIRO_LIBS := $(shell pkg-config --libs cairo 2>/dev/null)
endif
PLOT ?= $(if $(strip $(CAIRO_LIBS)),1,0)
ifeq ($(PLOT),1)
PLOT_SRC := train/plot.c train/plot_bench.c train/plot_draw.c
$(PLOT_SRC:%.c=$(BUILD)/%.o): CFLAGS += -DBOLT_CAIRO $(CAIRO_CFLAGS)
LDLIBS += $(CAIRO_LIBS)
endif

SRC := $(wildcard core/*.c kernels/*.c model/*.c data/*.c optim/*.c dist/*.c train/*.c)
LIB_SRC := $(filter-out train/main.c,$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
CU_SRC := $(wildcard kernels/*.cu dist/*.cu)
CU_HDR := $(wildcard kernels/*.cuh)

ifeq ($(CUDA),1)
ifeq ($(NVCC),)
$(error CUDA=1 but no nvcc found (PATH or /usr/local/cuda/bin/nvcc); use CUDA=0)
endif
# sm_90a machine code for Hopper, compute_80 PTX for anything newer or older down to
# Ampere (so kernels use mma.sync/wmma-level features only: no wgmma, no TMA).
NVCCFLAGS ?= -O3
NVCCFLAGS += -std=c++17 -gencode arch=compute_90a,code=sm_90a \
	-gencode arch=compute_80,code=compute_80 --expt-relaxed-constexpr \
	-Xcompiler -fopenmp,-fPIC -MMD -MP
CFLAGS += -DBOLT_CUDA
# NCCL: include/nccl.h and lib/libnccl.so under NCCL_HOME (default: the toolkit's, or /usr).
NCCL_HOME ?= $(firstword $(foreach d,$(CUDA_HOME) /usr,$(if $(wildcard $(d)/include/nccl.h),$(d))))
NCCL ?= $(if $(NCCL_HOME),1,0)
ifeq ($(NCCL),1)
CFLAGS += -DBOLT_NCCL
NVCCFLAGS += -DBOLT_NCCL -I$(NCCL_HOME)/include
LDLIBS += -L$(NCCL_HOME)/lib -L$(NCCL_HOME)/lib64 -Wl,-rpath,$(NCCL_HOME)/lib -lnccl
endif
# .cu objects are named .cu.o: kernels/matmul.c and kernels/matmul.cu sit side by side.
CU_OBJ := $(CU_SRC:%.cu=$(BUILD)/%.cu.o)
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lstdc++
else
NCCL := 0
endif

.DEFAULT_GOAL := all # `make` builds ./bolt, whatever rule comes first below

# The version and git commit `bolt --version` prints and runs record ("unknown" outside a
# git checkout). build/.commit changes only when the commit does, so only version.o is
# recompiled then.
VERSION := 0.1.0
COMMIT := $(or $(shell git rev-parse --short=12 HEAD 2>/dev/null),unknown)
COMMIT_STAMP := $(BUILD)/.commit
$(shell mkdir -p $(BUILD); echo '$(COMMIT)' | cmp -s - $(COMMIT_STAMP) || echo '$(COMMIT)' > $(COMMIT_STAMP))
$(BUILD)/train/version.o: $(COMMIT_STAMP)
$(BUILD)/train/version.o: CFLAGS += -DBOLT_VERSION='"$(VERSION)"' -DBOLT_COMMIT='"$(COMMIT)"'

.PHONY: all test sanitize sanitize-gcc sanitize-clang fuzz fuzz-targets fuzz-run fuzz-seeds demo distill-demo clean format
all: $(BOLT)

# Every object depends on the stamp of the build kind, so switching CUDA, MPI, NCCL or PLOT on
# or off recompiles them all (kernels/backend.c and dist/ test BOLT_CUDA, BOLT_MPI, ...).
BUILD_STAMP := $(BUILD)/.config-cuda$(CUDA)-mpi$(MPI)-nccl$(NCCL)-plot$(PLOT)
$(BUILD_STAMP):
	@mkdir -p $(BUILD)
	@rm -f $(BUILD)/.config-*
	@touch $@

$(BUILD)/%.o: %.c $(BUILD_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu $(BUILD_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/libbolt.a: $(LIB_OBJ) $(CU_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BOLT): $(BUILD)/train/main.o $(BUILD)/libbolt.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libbolt.a
	@mkdir -p $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(BUILD)/libbolt.a -o $@ $(TEST_LDLIBS)

# test_plot decodes the figures with libpng (a test-only dependency).
$(BUILD)/tests/test_plot: CFLAGS += $(shell pkg-config --cflags libpng 2>/dev/null)
$(BUILD)/tests/test_plot: TEST_LDLIBS += $(shell pkg-config --libs libpng 2>/dev/null || echo -lpng)

# Every tests/test_*.c is its own Check program; tools/run-tests.sh runs them all and
# prints one "N passed, N failed" line.
test: $(BOLT) $(TESTS)
	@for f in train/plot.c train/plot_bench.c train/plot_draw.c; do \
		$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -fsyntax-only $$f || exit 1; \
	done # the figures without Cairo compile
	@BOLT_BIN=$(abspath $(BOLT)) bash tools/run-tests.sh $(TESTS)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer, leak detection on,
# built CPU-only by gcc and by clang into build dirs of their own (each with its own
# sanitized bolt, which the suites that run the binary use through BOLT_BIN). Any report
# ends the process that made it with a non-zero status, so it fails its suite. Sanitized
# code runs several times slower, so Check's per-test timeouts are stretched 4x. The clang
# run uses one OpenMP thread: with clang's OpenMP runtime (libomp) worker threads,
# LeakSanitizer's thread tracer crashes at the exit of a forked test ("Tracer caught signal
# 11"); the gcc run (libgomp) covers the threaded paths, and the tests that set their own
# thread counts still do.
SANITIZE_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	CK_TIMEOUT_MULTIPLIER=4
sanitize: sanitize-gcc sanitize-clang
sanitize-gcc:
	$(SANITIZE_ENV) $(MAKE) CUDA=0 CC=gcc BUILD=build-asan-gcc BOLT=build-asan-gcc/bolt \
		SANITIZE="$(SANITIZE_FLAGS)" test
sanitize-clang:
	$(SANITIZE_ENV) OMP_NUM_THREADS=1 $(MAKE) CUDA=0 CC=clang BUILD=build-asan-clang \
		BOLT=build-asan-clang/bolt \
		SANITIZE="$(SANITIZE_FLAGS) -Wno-pass-failed" test

# libFuzzer targets (tests/fuzz/fuzz_*.c, one per reader), built CPU-only by clang with
# ASan and UBSan into build-fuzz/fuzz/. The harness tracks what a reader opens (the --wrap
# of fopen/open) so it can release it when the reader dies (tests/fuzz/harness.h).
# `make fuzz-run FUZZ_SECONDS=60` runs each target for that long on its seed corpus
# (tests/fuzz/corpus/<target>/) via tools/fuzz.sh.
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=all -Wno-pass-failed
FUZZ_WRAP := -Wl,--wrap=fopen,--wrap=fclose,--wrap=open,--wrap=close
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60

# The harness itself is not instrumented: its bookkeeping is not what is being fuzzed.
$(BUILD)/fuzz/harness.o: tests/fuzz/harness.c tests/fuzz/harness.h $(BUILD_STAMP)
	@mkdir -p $(BUILD)/fuzz
	$(CC) -O2 -g -std=c11 -Wall -Wextra -D_GNU_SOURCE -c $< -o $@

$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/fuzz/harness.o $(BUILD)/libbolt.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(BUILD)/fuzz/harness.o $(BUILD)/libbolt.a -o $@ \
		$(LDLIBS) $(FUZZ_WRAP)

fuzz-targets: $(FUZZ_TARGETS)

fuzz:
	$(MAKE) CUDA=0 MPI=0 PLOT=0 CC=clang BUILD=build-fuzz BOLT=build-fuzz/bolt \
		SANITIZE="$(FUZZ_FLAGS)" fuzz-targets

fuzz-run: fuzz
	bash tools/fuzz.sh $(FUZZ_SECONDS)

# The binary seeds (shards, safetensors) rewritten by bolt's own writers.
$(BUILD)/fuzz/make_seeds: tests/fuzz/make_seeds.c $(BUILD)/libbolt.a
	@mkdir -p $(BUILD)/fuzz
	$(CC) $(CFLAGS) $< $(BUILD)/libbolt.a -o $@ $(LDLIBS)

fuzz-seeds: $(BUILD)/fuzz/make_seeds
	$(BUILD)/fuzz/make_seeds tests/fuzz/corpus

# Not `demo: bolt`: the demo installs missing build dependencies before it builds.
demo:
	@bash tools/demo.sh

# After `make demo` (it prepares the corpus): teacher, distilled and from-scratch students.
distill-demo:
	@CUDA=$(CUDA) bash tools/distill-demo.sh

format:
	clang-format -i $(SRC) $(CU_SRC) $(CU_HDR) $(wildcard core/*.h kernels/*.h model/*.h data/*.h optim/*.h dist/*.h train/*.h tests/*.c tests/*.h)

clean:
	rm -rf build build-asan-gcc build-asan-clang build-fuzz bolt

-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(BUILD)/train/main.d
