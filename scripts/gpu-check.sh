#!/usr/bin/env bash
# gpu-check.sh - build mlxr with the CUDA backend, run the GPU tests (and compute-sanitizer memcheck
# on the kernel tests when it is installed), run the GPU benchmark, and print a summary table.
# Needs a CUDA device; takes a few minutes (most of it generating and loading the 7B-shaped models).
#
#   scripts/gpu-check.sh [TYPES]        TYPES: weight types of the 7B-shaped benchmark models,
#                                        default "q4_0 q8_0 f16"; "none" skips the model benchmark
# Environment: BUILD (build folder, default build-cuda), MLXR_TESTDATA (test data folder),
#              MODELS_DIR (where the generated models go, default $BUILD/models), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}
TYPES=${1:-q4_0 q8_0 f16}
MD=${MODELS_DIR:-$B/models}
JOBS=${JOBS:-$(nproc)}
LOG=${LOG:-$B/gpu-check.log}
mkdir -p "$B" "$MD"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }
status=0

say "== configure + build (-DMLXR_CUDA=ON)"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DMLXR_CUDA=ON \
    ${MLXR_TESTDATA:+-DMLXR_TESTDATA="$MLXR_TESTDATA"} >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
cmake --build "$B" -j"$JOBS" --target cuda_test_kernels cuda_test_model mlxr-bench-cuda mlxr-gen-llama \
    >>"$LOG" 2>&1 || { grep -E "error|Error" "$LOG" | head -30; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee -a "$LOG" || true

say "== kernel tests"
"$B/cuda_test_kernels" 2>&1 | tee -a "$LOG" || status=1

say "== whole-model tests"
"$B/mlxr-gen-llama" -o "$MD/tiny-q4_0.gguf" --type q4_0 --preset tiny >>"$LOG" 2>&1
"$B/mlxr-gen-llama" -o "$MD/tiny-q8_0.gguf" --type q8_0 --preset tiny >>"$LOG" 2>&1
"$B/mlxr-gen-llama" -o "$MD/tiny-f16.gguf" --type f16 --preset tiny >>"$LOG" 2>&1
MLXR_CUDA_MODELS="$MD/tiny-q4_0.gguf:$MD/tiny-q8_0.gguf:$MD/tiny-f16.gguf" "$B/cuda_test_model" 2>&1 |
    tee -a "$LOG" || status=1

if command -v compute-sanitizer >/dev/null 2>&1; then
    say "== compute-sanitizer memcheck: kernel tests"
    compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 "$B/cuda_test_kernels" >"$B/memcheck.log" 2>&1 &&
        say "memcheck: clean ($(grep -c . "$B/memcheck.log") lines of log)" ||
        { status=1; tail -40 "$B/memcheck.log" | tee -a "$LOG"; }
else
    say "== compute-sanitizer not installed: memcheck skipped"
fi

say "== benchmark"
models=()
if [ "$TYPES" != none ]; then
    for t in $TYPES; do
        f="$MD/llama-7b-$t.gguf"
        if [ ! -s "$f" ]; then
            # Llama-2-7B shapes; the generator's "7b" preset where it has one, else explicit sizes
            "$B/mlxr-gen-llama" -o "$f" --type "$t" --preset 7b >>"$LOG" 2>&1 ||
                "$B/mlxr-gen-llama" -o "$f" --type "$t" --preset 1b --n-embd 4096 --n-layer 32 \
                    --n-head 32 --n-head-kv 32 --n-ff 11008 --n-vocab 32000 --n-ctx 4096 >>"$LOG" 2>&1
        fi
        models+=("$f")
    done
fi
"$B/mlxr-bench-cuda" "${models[@]}" 2>&1 | tee "$B/bench.md" | tee -a "$LOG"

say ""
say "== summary"
grep -E "passed, .* failed|SKIP" "$LOG" | sed 's/^/  /' | tee -a /dev/null
grep -E "^\| (device|matvec-summary|op|model) " "$B/bench.md" | sed 's/^/  /'
say "  overall: $([ $status -eq 0 ] && echo PASS || echo FAIL) (log: $LOG)"
exit $status
