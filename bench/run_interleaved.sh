#!/usr/bin/env bash
# run_interleaved.sh - side-by-side benchmark of mlxr and llama.cpp (the peer: node-llama-cpp's
# prebuilt CPU backend, bench/peer/) that survives a shared VM whose memory bandwidth drifts:
# the two engines run alternately (mlxr, peer, mlxr, peer, ... R times each, every run one
# repetition after its own warm-up), so a slow minute hurts both sides alike; the memory read
# bandwidth (build/mlxr-membw) is measured just before and just after each model's runs.
#
#   bench/run_interleaved.sh THREADS P N R MODEL...     one markdown row per model
#   bench/run_interleaved.sh --header
#
# Per model the row gives, for pp (P prompt tokens in one batch) and tg (N generated tokens),
# the median tok/s of each engine with [min-max] over the R runs and the ratio of the medians
# (mlxr / peer; above 1: mlxr faster); then generation as effective GB/s (bytes of the weights
# read per token x median tg tok/s: every matrix except token_embd, which is only gathered) and
# that as a share of the bandwidth measured around the runs (the roofline of generation).
# Raw JSON of every run goes to stderr. Environment: MLXR_BIN (default build/mlxr), MEMBW_BIN
# (default build/mlxr-membw), PEER_ARGS (extra llama_bench.mjs arguments).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

header() {
    echo "| model | weights MB/token | pp mlxr tok/s | pp peer tok/s | pp ratio" \
         "| tg mlxr tok/s | tg peer tok/s | tg ratio | tg mlxr GB/s | tg peer GB/s" \
         "| bandwidth before / after GB/s | mlxr tg % of roofline |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
}
if [ "${1:-}" = "--header" ]; then
    header
    exit 0
fi
if [ $# -lt 5 ]; then
    echo "usage: $0 THREADS P N R MODEL...   |   $0 --header" >&2
    exit 2
fi
threads=$1 p=$2 n=$3 r=$4
shift 4
mlxr=${MLXR_BIN:-$root/build/mlxr}
membw=${MEMBW_BIN:-$root/build/mlxr-membw}
peer_dir=$root/bench/peer
[ -x "$mlxr" ] || { echo "$0: no mlxr binary at '$mlxr'" >&2; exit 1; }
[ -x "$membw" ] || { echo "$0: no bandwidth probe at '$membw' (build target mlxr-membw)" >&2; exit 1; }
command -v node >/dev/null || { echo "$0: node (>= 20) is needed for the peer" >&2; exit 1; }
if [ ! -d "$peer_dir/node_modules/node-llama-cpp" ]; then
    echo "$0: installing the peer (npm ci in bench/peer)" >&2
    (cd "$peer_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --no-audit --no-fund >&2)
fi

for model in "$@"; do
    [ -f "$model" ] || { echo "$0: no model file '$model'" >&2; exit 1; }
    # bytes read per generated token: all tensors but token_embd (from `mlxr info`'s table)
    wbytes=$("$mlxr" info -m "$model" | awk '$1 ~ /^[0-9]+$/ && NF >= 6 && $2 != "token_embd.weight" { s += $NF } END { print s + 0 }')
    bw0=$("$membw" "$threads" 1024 5)
    echo "membw before: $bw0" >&2
    runs=()
    for ((i = 1; i <= r; i++)); do
        m=$("$mlxr" bench -m "$model" -p "$p" -n "$n" -t "$threads" -r 1 --json | tail -n 1)
        echo "mlxr[$i]: $m" >&2
        # shellcheck disable=SC2086 # PEER_ARGS is a list of words
        q=$(node "$peer_dir/llama_bench.mjs" -m "$model" -t "$threads" -p "$p" -n "$n" -r 1 \
            ${PEER_ARGS:-} | grep '^{' | tail -n 1)
        echo "peer[$i]: $q" >&2
        runs+=("$m" "$q")
    done
    bw1=$("$membw" "$threads" 1024 5)
    echo "membw after: $bw1" >&2
    node - "$model" "$wbytes" "$bw0" "$bw1" "${runs[@]}" <<'EOF'
const [model, wbytes, bw0s, bw1s, ...runs] = process.argv.slice(2);
const mx = [], px = [];
runs.forEach((s, i) => (i % 2 ? px : mx).push(JSON.parse(s)));
const med = (a) => { const s = [...a].sort((x, y) => x - y), k = s.length >> 1;
                     return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2; };
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const cell = (a) => `${f(med(a))} [${f(Math.min(...a))}–${f(Math.max(...a))}]`;
const pick = (rs, k) => rs.map((o) => o[k]);
const mpp = pick(mx, "pp_tok_s"), ppp = pick(px, "pp_tok_s");
const mtg = pick(mx, "tg_tok_s"), ptg = pick(px, "tg_tok_s");
const wb = Number(wbytes), bw0 = JSON.parse(bw0s).best_gb_s, bw1 = JSON.parse(bw1s).best_gb_s;
const gbs = (t) => (wb * t) / 1e9;
const roof = Math.max(bw0, bw1);
console.log(`| ${model.split("/").pop()} | ${f(wb / 1e6, 0)} | ${cell(mpp)} | ${cell(ppp)} | ` +
            `${f(med(mpp) / med(ppp), 2)} | ${cell(mtg)} | ${cell(ptg)} | ` +
            `${f(med(mtg) / med(ptg), 2)} | ${f(gbs(med(mtg)))} | ${f(gbs(med(ptg)))} | ` +
            `${f(bw0)} / ${f(bw1)} | ${f((100 * gbs(med(mtg))) / roof, 0)} % |`);
EOF
done
