#!/usr/bin/env bash
# The whole test suite: a Release build with every test, the same tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (clang), and a bounded fuzzing run of every parser.
# The tests read the shared test data from ../shared/testdata (override: MLXR_TESTDATA=DIR).
# MLXR_FUZZ_SECONDS (default 30) sets the fuzzing time per harness (every fuzz/fuzz_*.c); 0 skips it.
# The last line is "N passed, M failed" over all ctest tests and fuzzers.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Add a ctest summary line to the totals: "100% tests passed, 0 tests failed out of 12" (older
# CMake) or "100% tests passed out of 12" / "92% tests passed, 1 tests failed out of 12".
count() {
    local line n_fail n_all
    line=$(grep -E "tests passed.* out of [0-9]+" "$log" | tail -n 1)
    if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
    n_all=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
    n_fail=0
    if echo "$line" | grep -qE "[0-9]+ tests? failed"; then
        n_fail=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed.*/\1/')
    fi
    passed=$((passed + n_all - n_fail))
    failed=$((failed + n_fail))
}

data=${MLXR_TESTDATA:-../shared/testdata}
if [ ! -d "$data/reference" ]; then
    echo "test.sh: no test data at $data (set MLXR_TESTDATA)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
export MLXR_TESTDATA=$(cd "$data" && pwd)

echo "== release build + tests"
if cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMLXR_WERROR=ON -DMLXR_TESTDATA="$MLXR_TESTDATA" \
        >/dev/null &&
   cmake --build build -j "$jobs"; then
    ctest --test-dir build --output-on-failure -j "$jobs" 2>&1 | tee "$log"
    count
else
    failed=$((failed + 1))
fi

echo "== ASan + UBSan build + tests"
if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DMLXR_SANITIZE=ON \
        -DCMAKE_C_FLAGS="-O1" -DMLXR_WERROR=ON -DMLXR_TESTDATA="$MLXR_TESTDATA" >/dev/null &&
   cmake --build build-asan -j "$jobs"; then
    MLXR_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j "$jobs" 2>&1 | tee "$log"
    count
else
    failed=$((failed + 1))
fi

secs=${MLXR_FUZZ_SECONDS:-30}
if [ "$secs" != 0 ]; then
    for h in fuzz/fuzz_*.c; do
        target=$(basename "$h" .c)
        target=${target#fuzz_}
        echo "== fuzzing $target (${secs}s)"
        if scripts/fuzz.sh "$secs" "$target"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
