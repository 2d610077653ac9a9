#!/usr/bin/env bash
# Daemon throughput under a steady open-loop load of mixed prompt lengths (bench/server_load.py):
# Poisson arrivals at each rate in RATES for DURATION seconds, prompt lengths from a seeded mix
# (16-64 tokens 50 %, 64-256 30 %, 256-1000 20 %; capped to the model's context), max_tokens
# 32-128, streamed /v1/completions. Reports completed requests/s, generated tokens/s, TTFT
# p50/p95, per-token latency p50/p95, errors and 429s per rate.
# usage: bench/bench_server_load.sh [PATH/TO/mlxr] [extra serve flags, e.g. --no-batch-invariant]
#   env: MODEL=path|name (default: the bundled model), THREADS (default: all cores),
#        PARALLEL=16, MAX_QUEUE=256, RATES=1,2,4, DURATION=60, SEED=1, PROMPT_MIX, MAX_TOKENS,
#        JSON=1 (machine-readable), URL=http://host:port (bench a running server instead)
# Run it on a quiet machine: every other process shows up in the latencies.
set -eu
MLXR=${1:-build/mlxr}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
RATES=${RATES:-1,2,4}
DURATION=${DURATION:-60}
SEED=${SEED:-1}
client=(python3 "$HERE/server_load.py" --rates "$RATES" --duration "$DURATION" --seed "$SEED")
[ -n "${PROMPT_MIX:-}" ] && client+=(--prompt-mix "$PROMPT_MIX")
[ -n "${MAX_TOKENS:-}" ] && client+=(--max-tokens "$MAX_TOKENS")
[ -n "${JSON:-}" ] && client+=(--json)
if [ -n "${URL:-}" ]; then
    exec "${client[@]}" --url "$URL"
fi
. "$(dirname "$0")/serve_lib.sh"
args=(serve --port 0 --parallel "${PARALLEL:-16}" --max-queue "${MAX_QUEUE:-256}"
      --max-connections 1024 --quiet)
[ -n "${THREADS:-}" ] && args+=(-t "$THREADS")
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
args+=("$@")
start_serve "${args[@]}"
echo "mlxr serve ${args[*]:1}; rates $RATES/s for ${DURATION}s each, seed $SEED" >&2
"${client[@]}" --url "http://127.0.0.1:$port"
