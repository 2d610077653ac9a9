#!/usr/bin/env bash
# gpu-check.sh - build mlxr with the CUDA backend, run the GPU tests (and compute-sanitizer memcheck
# and racecheck on the kernel tests when it is installed; the engine, paged-KV and speculative
# decoding tests with every context on the GPU), run the GPU benchmark (kernels; per model pp512,
# tg128 and, when the CLI builds, continuous batching at 8/32/128 sequences, time to first token
# of a 512-token prompt and with a shared 1000-token prefix), and print a summary table. Needs a CUDA device; takes several minutes (most of it generating, quantizing and
# loading the 7B-shaped models).
#
#   scripts/gpu-check.sh [TYPES]        TYPES: weight types of the 7B-shaped benchmark models,
#                                        default "q4_0 q8_0 f16 q4_k_m"; "none" skips the model
#                                        benchmark. f16/q8_0/q4_0 files come straight from
#                                        mlxr-gen-llama; q4_k_m is the f16 one quantized (mlxr quantize's code)
#                                        (llama-quantize's Q4_K_M mix: Q4_K, Q6_K for output and
#                                        half of attn_v/ffn_down).
# Environment: BUILD (build folder, default build-cuda), MLXR_TESTDATA (test data folder),
#              MODELS_DIR (where the generated models go, default $BUILD/models), JOBS,
#              KEEP_MODELS=1 (keep the 7B files; by default each is deleted after its benchmark,
#              so that only one is on disk at a time), SANITIZE=0 (skip compute-sanitizer),
#              CUDA_ARCH (e.g. 90: compile for that architecture only, faster),
#              MLXR_BENCH_ONLY=models (skip the kernel tables of the benchmark),
#              EXTRA_MODELS (colon-separated GGUF files or HF/MLX directories that the whole-model
#              test also compares GPU vs CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-cuda}
TYPES=${1:-q4_0 q8_0 f16 q4_k_m}
MD=${MODELS_DIR:-$B/models}
JOBS=${JOBS:-$(nproc)}
LOG=${LOG:-$B/gpu-check.log}
mkdir -p "$B" "$MD"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }
status=0

say "== configure + build (-DMLXR_CUDA=ON)"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DMLXR_CUDA=ON ${CUDA_ARCH:+-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH} \
    ${MLXR_TESTDATA:+-DMLXR_TESTDATA="$MLXR_TESTDATA"} >>"$LOG" 2>&1 || { tail -30 "$LOG"; exit 1; }
ENGINE_TESTS="kv_test_kv sched_test_engine sched_test_engine_sampling sched_test_spec"
cmake --build "$B" -j"$JOBS" --target cuda_test_kernels cuda_test_model mlxr-bench-cuda mlxr-gen-llama $ENGINE_TESTS \
    >>"$LOG" 2>&1 || { grep -E "error|Error" "$LOG" | head -30; exit 1; }
# the CLI (for the engine benchmark: batched decoding, time to first token); it also needs the
# daemon's libraries, so a GPU host without them still runs everything else
HAVE_CLI=1
cmake --build "$B" -j"$JOBS" --target mlxr >>"$LOG" 2>&1 || HAVE_CLI=0
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader | tee -a "$LOG" || true

# gen_model TYPE FILE: a Llama-2-7B-shaped random model of TYPE (or tiny with PRESET=tiny)
gen_model() {
    local t=$1 f=$2 p=${PRESET:-7b}
    if [ "$t" = q4_k_m ]; then
        gen_model f16 "$f.f16.gguf"
        "$B/mlxr-bench-cuda" --quantize "$f.f16.gguf" "$f" Q4_K_M >>"$LOG" 2>&1
        rm -f "$f.f16.gguf"
    else
        "$B/mlxr-gen-llama" -o "$f" --type "$t" --preset "$p" >>"$LOG" 2>&1
    fi
}

say "== kernel tests"
"$B/cuda_test_kernels" 2>&1 | tee -a "$LOG" || status=1

say "== whole-model tests"
extra=""
for t in q4_0 q8_0 f16 q4_k_m; do
    PRESET=tiny gen_model "$t" "$MD/tiny-$t.gguf"
    extra="$extra${extra:+:}$MD/tiny-$t.gguf"
done
MLXR_CUDA_MODELS="$extra${EXTRA_MODELS:+:$EXTRA_MODELS}" "$B/cuda_test_model" 2>&1 | tee -a "$LOG" || status=1

say "== engine, paged KV and speculative decoding tests with every context on the GPU"
for t in $ENGINE_TESTS; do
    MLXR_TEST_NGL=-1 "$B/$t" >"$B/gpu_$t.log" 2>&1 || { status=1; grep FAIL "$B/gpu_$t.log" | head -20 | tee -a "$LOG"; }
    say "gpu $(tail -1 "$B/gpu_$t.log")"
done

if [ "${SANITIZE:-1}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
    for tool in memcheck racecheck; do
        say "== compute-sanitizer $tool: kernel tests"
        if compute-sanitizer --tool "$tool" --report-api-errors no --error-exitcode 9 "$B/cuda_test_kernels" \
            >"$B/$tool.log" 2>&1; then
            say "$tool: clean ($(grep -c . "$B/$tool.log") lines of log)"
        else
            status=1
            tail -40 "$B/$tool.log" | tee -a "$LOG"
        fi
    done
else
    say "== compute-sanitizer not installed (or SANITIZE=0): memcheck/racecheck skipped"
fi

say "== benchmark"
"$B/mlxr-bench-cuda" 2>&1 | tee "$B/bench.md" | tee -a "$LOG"
if [ "$TYPES" != none ]; then
    for t in $TYPES; do
        f="$MD/llama-7b-$t.gguf"
        [ -s "$f" ] || gen_model "$t" "$f"
        MLXR_BENCH_ONLY=models "$B/mlxr-bench-cuda" "$f" 2>&1 | grep -E "^\| model " | tee -a "$B/bench.md" | tee -a "$LOG"
        if [ "$HAVE_CLI" = 1 ]; then # continuous batching through the engine, TTFT, prefix cache
            for n in 8 32 128; do
                echo "| engine | $t | $("$B/mlxr" bench -m "$f" -ngl -1 --parallel $n -p 128 -n 128 2>&1 | tail -1) |"
            done | tee -a "$B/bench.md" | tee -a "$LOG"
            echo "| engine | $t | $("$B/mlxr" bench -m "$f" -ngl -1 --parallel 1 -p 512 -n 1 2>&1 | tail -1) |" |
                tee -a "$B/bench.md" | tee -a "$LOG"
            echo "| engine | $t | $("$B/mlxr" bench -m "$f" -ngl -1 --prefix-share -p 1000 -n 16 2>&1 | tail -1) |" |
                tee -a "$B/bench.md" | tee -a "$LOG"
        fi
        [ "${KEEP_MODELS:-0}" = 1 ] || rm -f "$f"
    done
fi

say ""
say "== summary"
grep -E "passed, .* failed|SKIP" "$LOG" | sed 's/^/  /' | tee -a /dev/null
grep -E "^\| (device|matvec-summary|gemm-summary|op|model|engine) " "$B/bench.md" | sed 's/^/  /'
say "  overall: $([ $status -eq 0 ] && echo PASS || echo FAIL) (log: $LOG)"
exit $status
