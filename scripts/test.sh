#!/usr/bin/env bash
# The whole test suite: a Release build with every test, the same tests under
# AddressSanitizer + UndefinedBehaviorSanitizer, and a bounded fuzzing run of every parser.
# Set MLXR_FUZZ_SECONDS (default 60) to change the fuzzing time; 0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== release build + tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMLXR_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== ASan + UBSan build + tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DMLXR_SANITIZE=ON \
    -DCMAKE_C_FLAGS="-O1" -DMLXR_WERROR=ON >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"

secs=${MLXR_FUZZ_SECONDS:-60}
if [ "$secs" != 0 ]; then
    echo "== fuzzing (${secs}s per harness)"
    scripts/fuzz.sh "$secs"
fi
echo "== all tests passed"
