# bolt: `make` builds ./bolt, `make test` builds and runs the Check suites, `make demo`
# trains a tiny TNL on the fortunes corpus and samples from it.
CC ?= gcc
CFLAGS ?= -O2 -march=native
CFLAGS += -std=c11 -fopenmp -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -MMD -MP
LDLIBS = -lzstd -lcjson -lpcre2-8 -lpthread -lm
TEST_LDLIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt) $(LDLIBS)

SRC := $(wildcard core/*.c kernels/*.c model/*.c data/*.c optim/*.c dist/*.c train/*.c)
LIB_SRC := $(filter-out train/main.c,$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=build/%.o)
TESTS := $(patsubst tests/%.c,build/tests/%,$(wildcard tests/test_*.c))

.PHONY: all test demo clean format
all: bolt

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/libbolt.a: $(LIB_OBJ)
	ar rcs $@ $^

bolt: build/train/main.o build/libbolt.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/tests/%: tests/%.c tests/testing.h build/libbolt.a
	@mkdir -p build/tests
	$(CC) $(CFLAGS) $< build/libbolt.a -o $@ $(TEST_LDLIBS)

# Every tests/test_*.c is its own Check program; tools/run-tests.sh runs them all and
# prints one "N passed, N failed" line.
test: bolt $(TESTS)
	@bash tools/run-tests.sh $(TESTS)

# Not `demo: bolt`: the demo installs missing build dependencies before it builds.
demo:
	@bash tools/demo.sh

format:
	clang-format -i $(SRC) $(wildcard core/*.h kernels/*.h model/*.h data/*.h optim/*.h dist/*.h train/*.h tests/*.c tests/*.h)

clean:
	rm -rf build bolt

-include $(LIB_OBJ:.o=.d) build/train/main.d
