#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET] - build a libFuzzer harness with clang and fuzz it.
#
# TARGET names fuzz/fuzz_TARGET.c (default: gguf). The harness is built by CMake in build-fuzz/
# (-DMLXR_FUZZ=ON); the seeds in fuzz/seeds/TARGET/ are copied into the scratch corpus
# fuzz/corpus-work/TARGET/ (git-ignored; it keeps growing across runs), and the fuzzer runs for
# SECONDS (default 60). Crash inputs land in fuzz/corpus-work/ as crash-*, leak-*, oom-* or
# timeout-*. Exits non-zero when the fuzzer finds a crash.
#
# Environment: FUZZ_JOBS=N runs N fuzzer processes in parallel (default 1);
# FUZZ_DIRECT=1 skips CMake and compiles only util/ + format/ with the harness (useful while
# another module does not build; the GGUF harness needs nothing else).
set -euo pipefail

secs=${1:-60}
target=${2:-gguf}
jobs=${FUZZ_JOBS:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bin=build-fuzz/fuzz_$target
if [[ "${FUZZ_DIRECT:-0}" == 1 ]]; then
    mkdir -p build-fuzz
    clang -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Wshadow -Wno-unused-parameter \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Isrc \
        src/util/*.c src/format/*.c "fuzz/fuzz_$target.c" -lm -lpthread -o "$bin"
else
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DMLXR_FUZZ=ON -DMLXR_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    if ! cmake --build build-fuzz --target "fuzz_$target" -j "$(nproc)"; then
        echo "fuzz.sh: CMake build failed; FUZZ_DIRECT=1 builds just util/ + format/" >&2
        exit 2
    fi
fi

corpus=fuzz/corpus-work/$target
mkdir -p "$corpus"
if [[ -d fuzz/seeds/$target ]]; then
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
fi

echo "fuzzing $bin for ${secs}s on $corpus ($jobs job(s))"
args=("$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10
      -artifact_prefix=fuzz/corpus-work/ -print_final_stats=1)
if (( jobs > 1 )); then
    args+=(-jobs="$jobs" -workers="$jobs")
fi
"$bin" "${args[@]}"
