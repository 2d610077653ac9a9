#!/usr/bin/env bash
# run_side_by_side.sh - benchmark one GGUF with mlxr and with llama.cpp (the peer: prebuilt
# llama.cpp through the npm package node-llama-cpp, bench/peer/) on the same threads and token
# counts, and print one markdown table row with both results and the ratios mlxr/peer.
#
#   bench/run_side_by_side.sh MODEL THREADS P N R     one row
#   bench/run_side_by_side.sh --header                the table's header (two lines)
#
# P: prompt tokens (one batch), N: generated tokens, R: repetitions. Both sides report tok/s as
# mean ± sample standard deviation over the R repetitions (see bench/peer/llama_bench.mjs for
# how the peer measures). The raw JSON of both sides goes to stderr, and so does a warning when
# other processes took more than a tenth of a core on average while either side ran: llama.cpp's
# threads spin-wait at barriers, so with -t equal to the core count its speed collapses (10x and
# more) as soon as anything else runs; rerun such rows on a quiet machine.
#
# Environment: MLXR_BIN (default build/mlxr), PEER_ARGS (extra llama_bench.mjs arguments, e.g.
# "--fa 1" or "--api public"). The peer is installed with `npm ci` in bench/peer when its
# node_modules is missing (needs the npm registry once; nothing is downloaded at run time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

header() {
    echo "| model | threads | P / N / R | mlxr pp tok/s | peer pp tok/s | pp mlxr/peer" \
         "| mlxr tg tok/s | peer tg tok/s | tg mlxr/peer |"
    echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
}

if [ "${1:-}" = "--header" ]; then
    header
    exit 0
fi
if [ $# -ne 5 ]; then
    echo "usage: $0 MODEL THREADS P N R   |   $0 --header" >&2
    exit 2
fi
model=$1 threads=$2 p=$3 n=$4 r=$5
mlxr=${MLXR_BIN:-$root/build/mlxr}
peer_dir=$root/bench/peer

[ -f "$model" ] || { echo "$0: no model file '$model'" >&2; exit 1; }
[ -x "$mlxr" ] || { echo "$0: no mlxr binary at '$mlxr' (build it, or set MLXR_BIN)" >&2; exit 1; }
command -v node >/dev/null || { echo "$0: node (>= 20) is needed for the peer" >&2; exit 1; }

if [ ! -d "$peer_dir/node_modules/node-llama-cpp" ]; then
    echo "$0: installing the peer (npm ci in bench/peer)" >&2
    (cd "$peer_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --no-audit --no-fund >&2)
fi

# CPU time of the whole machine (user, nice, system, irq, softirq, steal) and of this shell's
# finished children, in clock ticks: their difference over a run is what other processes used.
tick=$(getconf CLK_TCK)
times_file=$(mktemp)
trap 'rm -f "$times_file"' EXIT
machine_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# `times` must run in this shell, not in a $(...) subshell, to see this shell's children.
children_ticks() {
    awk -v t="$tick" 'NR == 2 {
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%d\n", s * t }' "$times_file"
}
start_watch() {
    times >"$times_file"
    m0=$(machine_ticks) c0=$(children_ticks) w0=$(date +%s%N)
}
end_watch() { # $1: which side
    local other wall
    times >"$times_file"
    other=$(( $(machine_ticks) - m0 - ($(children_ticks) - c0) ))
    wall=$(( ($(date +%s%N) - w0) * tick / 1000000000 ))
    if [ "$wall" -gt 0 ] && [ $((other * 10)) -gt "$wall" ]; then
        echo "$0: WARNING: other processes used $(awk -v o="$other" -v w="$wall" \
            'BEGIN { printf "%.2f", o / w }') cores while $1 ran: its numbers are not reliable" >&2
    fi
}

start_watch
mlxr_json=$("$mlxr" bench -m "$model" -p "$p" -n "$n" -t "$threads" -r "$r" --json)
end_watch mlxr
echo "mlxr: $mlxr_json" >&2
start_watch
# shellcheck disable=SC2086 # PEER_ARGS is a list of words
peer_json=$(node "$peer_dir/llama_bench.mjs" -m "$model" -t "$threads" -p "$p" -n "$n" -r "$r" \
            ${PEER_ARGS:-})
end_watch peer
echo "peer: $peer_json" >&2

# Format the row in node: it parses JSON, and it is there anyway for the peer.
node - "$model" "$threads" "$p" "$n" "$r" "$mlxr_json" "$peer_json" <<'EOF'
const [model, threads, p, n, r, mj, pj] = process.argv.slice(2);
const last = (s) => JSON.parse(s.trim().split("\n").filter((l) => l.trim().startsWith("{")).pop());
const m = last(mj), q = last(pj);
const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : "-");
const ms = (mean, sd) => `${f(mean)} ± ${f(sd)}`;
const ratio = (a, b) => (a > 0 && b > 0 ? f(a / b) : "-");
const name = model.split("/").pop();
console.log(`| ${name} | ${threads} | ${p} / ${n} / ${r} | ${ms(m.pp_tok_s, m.pp_sd)} | ` +
            `${ms(q.pp_tok_s, q.pp_sd)} | ${ratio(m.pp_tok_s, q.pp_tok_s)} | ` +
            `${ms(m.tg_tok_s, m.tg_sd)} | ${ms(q.tg_tok_s, q.tg_sd)} | ` +
            `${ratio(m.tg_tok_s, q.tg_tok_s)} |`);
EOF
