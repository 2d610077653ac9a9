#!/usr/bin/env bash
# `mlxr quantize` and `mlxr perplexity` on the trained pydoc-7M model.
#
# quantize: every preset from the F16 file loads (`mlxr info`), has general.file_type = llama.cpp's
#   LLAMA_FTYPE value and the per-tensor types llama-quantize gives this model (n_layer 6, 2 query
#   heads per KV head); for Q8_0, Q4_0 and Q4_K_M the tensor data is byte for byte that of the
#   llama-quantize files in the shared test data (our files differ only by the general.alignment
#   key that our GGUF writer always writes). Failures (requantizing, unknown type, missing input,
#   unwritable output) print one error line and leave no output or .tmp file.
# perplexity: on tests/data/pydoc_passage.txt (CPython module docstrings, PSF licence; 2194
#   tokens), -c 256: 8 chunks, 1016 scored tokens. Measured (F16 base: PPL 41.10):
#     Q8_0:   ln(PPL/PPL_base) 0.0010, mean KLD 0.00066, same top token 98.4 %
#     Q4_K_M: ln(PPL/PPL_base) 0.046,  mean KLD 0.043,   same top token 84.0 %
#   (for comparison: Q6_K KLD 0.0042, Q5_K_M 0.0128, Q4_0 0.068). Bounds, about 2-5x the
#   measured values: Q8_0 |ln ratio| < 0.005, KLD < 0.003, top1 > 0.96; Q4_K_M |ln ratio| < 0.10,
#   KLD < 0.09, top1 > 0.75. The inputs are fixed, so the numbers only move with float summation
#   order (ISA, threads); the margin covers that, while a broken quantizer or scale packing gives
#   a KLD of 0.5 and more. The model against itself must give KLD 0 and top1 1 exactly.
#   One thread (-t 1): the work is small, and spinning workers only slow a loaded machine down.
# MLXR_TEST_QUICK=1 (scripts/test.sh sets it for the sanitizer build, where K-quant searches run
# ~20x slower) checks only the presets Q8_0, Q4_0, Q4_K_M and Q6_K; everything else is the same.
# usage: test_quantize_cli.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PASSAGE=$HERE/../data/pydoc_passage.txt
SRC=$DATA/models/pydoc-7M/pydoc-7M-f16.gguf
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# type of tensor $2 in the `mlxr info` listing $1
ttype() { awk -v n="$2" '$2 == n { print $3; exit }' "$1"; }
# "a b c" -> each tensor of the list must have type $3 in listing $1 (layers $2)
expect_types() { # info_file what type layers...
    local info=$1 what=$2 want=$3; shift 3
    local l got
    for l in "$@"; do
        got=$(ttype "$info" "blk.$l.$what.weight")
        [ "$got" = "$want" ] || { bad "$(basename "$info"): blk.$l.$what is '$got', want $want"; return; }
    done
    ok
}

# preset ftype output token_embd q/k/gate/up attn_output attn_v(0..5) ffn_down(0..5)
# (llama.cpp's rules for 6 layers: use_more_bits picks layers 2 and 5; n_gqa = 2)
while read -r preset ftype out emb base ao v0 v1 v2 v3 v4 v5 d0 d1 d2 d3 d4 d5; do
    if [ "${MLXR_TEST_QUICK:-0}" = 1 ]; then
        case $preset in Q8_0|Q4_0|Q4_K_M|Q6_K) ;; *) continue ;; esac
    fi
    q=$tmp/$preset.gguf
    if ! "$MLXR" quantize "$SRC" "$q" "$preset" -t 1 > "$tmp/out" 2> "$tmp/err"; then
        bad "quantize $preset: $(tail -1 "$tmp/err")"
        continue
    fi
    ok
    [ ! -e "$q.tmp" ] && ok || bad "quantize $preset left $q.tmp"
    if ! "$MLXR" info -m "$q" > "$tmp/info-$preset" 2>&1; then
        bad "info $preset: $(tail -1 "$tmp/info-$preset")"
        continue
    fi
    i=$tmp/info-$preset
    grep -q "^  general.file_type = $ftype\$" "$i" && ok || bad "$preset: file_type is not $ftype"
    grep -q "^  general.quantization_version = 2\$" "$i" && ok || bad "$preset: quantization_version"
    grep -q "tensors (57)" "$i" && ok || bad "$preset: tensor count"
    [ "$(ttype "$i" output.weight)" = "$out" ] && ok || bad "$preset: output is $(ttype "$i" output.weight), want $out"
    [ "$(ttype "$i" token_embd.weight)" = "$emb" ] && ok || bad "$preset: token_embd is $(ttype "$i" token_embd.weight), want $emb"
    [ "$(ttype "$i" output_norm.weight)" = F32 ] && ok || bad "$preset: output_norm not F32"
    expect_types "$i" attn_norm F32 0 1 2 3 4 5
    expect_types "$i" attn_q "$base" 0 1 2 3 4 5
    expect_types "$i" attn_k "$base" 0 1 2 3 4 5
    expect_types "$i" ffn_gate "$base" 0 1 2 3 4 5
    expect_types "$i" ffn_up "$base" 0 1 2 3 4 5
    expect_types "$i" attn_output "$ao" 0 1 2 3 4 5
    l=0
    for t in $v0 $v1 $v2 $v3 $v4 $v5; do expect_types "$i" attn_v "$t" $l; l=$((l + 1)); done
    l=0
    for t in $d0 $d1 $d2 $d3 $d4 $d5; do expect_types "$i" ffn_down "$t" $l; l=$((l + 1)); done
done <<'EOF'
F32    0  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32  F32
F16    1  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16  F16
BF16   32 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16 BF16
Q8_0   7  Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0 Q8_0
Q4_0   2  Q6_K Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0 Q4_0
Q4_1   3  Q6_K Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1 Q4_1
Q5_0   8  Q6_K Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0 Q5_0
Q5_1   9  Q6_K Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1 Q5_1
Q2_K   10 Q6_K Q2_K Q2_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K
Q3_K_S 11 Q6_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K Q3_K
Q3_K_M 12 Q6_K Q3_K Q3_K Q4_K Q5_K Q5_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K
Q3_K_L 13 Q6_K Q3_K Q3_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K
Q4_K_S 14 Q6_K Q4_K Q4_K Q4_K Q5_K Q5_K Q5_K Q5_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K Q4_K
Q4_K_M 15 Q6_K Q4_K Q4_K Q4_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K
Q5_K_S 16 Q6_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K Q5_K
Q5_K_M 17 Q6_K Q5_K Q5_K Q5_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K Q5_K Q5_K Q6_K
Q6_K   18 Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K Q6_K
IQ4_NL 25 Q6_K IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL IQ4_NL
IQ4_XS 30 Q6_K IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS IQ4_XS
EOF

# --- same tensor data as llama-quantize's files (compared from each file's data offset)
data_of() { # file -> its data section on stdout
    local off
    off=$("$MLXR" info -m "$1" 2>/dev/null | awk '/^data offset:/ { print $3; exit }')
    tail -c +$((off + 1)) "$1"
}
for p in q8_0 q4_0 q4_k_m; do
    P=$(echo "$p" | tr a-z A-Z)
    if [ -f "$tmp/$P.gguf" ] && cmp -s <(data_of "$tmp/$P.gguf") <(data_of "$DATA/models/pydoc-7M/pydoc-7M-$p.gguf"); then ok
    else bad "$P: tensor data differs from llama-quantize's pydoc-7M-$p.gguf"; fi
done

# --- fallbacks (llama.cpp's): stories260K has rows of 64 (n_embd) and 172 (ffn_down), which
# 256-blocks cannot hold. Q4_K_M: Q4_K -> Q5_0, Q6_K (attn_v/ffn_down of layers 2 and 4, and the
# tied classifier token_embd) -> Q8_0, and rows of 172 fit no block -> F16. Q4_0 has no fallback.
S260=$DATA/models/stories260K.gguf
if "$MLXR" quantize "$S260" "$tmp/s.gguf" Q4_K_M -t 1 > /dev/null 2>&1 && "$MLXR" info -m "$tmp/s.gguf" > "$tmp/info-s" 2>&1; then
    got=$(for t in token_embd blk.0.attn_q blk.0.attn_v blk.2.attn_v blk.4.attn_v blk.0.ffn_gate blk.0.ffn_down blk.2.ffn_down; do
        printf '%s ' "$(ttype "$tmp/info-s" "$t.weight")"; done)
    [ "$got" = "Q8_0 Q5_0 Q5_0 Q8_0 Q8_0 Q5_0 F16 F16 " ] && ok || bad "stories260K Q4_K_M fallbacks: $got"
    "$MLXR" run -m "$tmp/s.gguf" -p "Once upon a time" -n 4 --temp 0 -t 1 > /dev/null 2>&1 && ok || bad "stories260K Q4_K_M does not run"
else
    bad "stories260K Q4_K_M: $(tail -1 "$tmp/info-s" 2>/dev/null)"
fi

# --- errors: one line on stderr, non-zero exit, no output file and no .tmp left behind
expect_error() { # description, output path to check, then the command
    local what=$1 outp=$2; shift 2
    if "$@" > "$tmp/out" 2> "$tmp/err"; then bad "$what: exit 0"; return; fi
    if [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^mlxr: error: " "$tmp/err"; then ok
    else bad "$what: stderr was: $(cat "$tmp/err")"; fi
    [ ! -e "$outp" ] && [ ! -e "$outp.tmp" ] && ok || bad "$what: left $outp or $outp.tmp"
}
expect_error "requantize" "$tmp/rq.gguf" "$MLXR" quantize "$DATA/models/pydoc-7M/pydoc-7M-q8_0.gguf" "$tmp/rq.gguf" Q4_K_M
grep -q "already quantized" "$tmp/err" && ok || bad "requantize message: $(cat "$tmp/err")"
expect_error "unknown type" "$tmp/u.gguf" "$MLXR" quantize "$SRC" "$tmp/u.gguf" Q9_9
expect_error "missing input" "$tmp/m.gguf" "$MLXR" quantize "$tmp/nope.gguf" "$tmp/m.gguf" Q8_0
expect_error "unwritable output" "$tmp/no/dir/o.gguf" "$MLXR" quantize "$SRC" "$tmp/no/dir/o.gguf" Q8_0
expect_error "rows that fit no block" "$tmp/s0.gguf" "$MLXR" quantize "$S260" "$tmp/s0.gguf" Q4_0
grep -q "rows of 172 elements" "$tmp/err" && ok || bad "no-fallback message: $(cat "$tmp/err")"
expect_error "missing args" "$tmp/x.gguf" "$MLXR" quantize "$SRC"
# a failed run leaves an existing output file untouched
cp "$tmp/Q8_0.gguf" "$tmp/keep.gguf" 2>/dev/null
"$MLXR" quantize "$DATA/models/pydoc-7M/pydoc-7M-q4_0.gguf" "$tmp/keep.gguf" Q4_K_M > /dev/null 2>&1
cmp -s "$tmp/Q8_0.gguf" "$tmp/keep.gguf" && ok || bad "a failed quantize changed the existing output"

# --- perplexity and KL divergence against the F16 original
ppl_json() { "$MLXR" perplexity -f "$PASSAGE" -c 256 -t 1 --json "$@" 2> "$tmp/perr"; }
field() { echo "$1" | tr -d '{}' | tr ',' '\n' | awk -F': ' -v k="\"$2\"" '$1 ~ k { print $2 }'; }
check_bounds() { # name json max_abs_ln_ratio max_kld min_top1
    local name=$1 j=$2 r k t
    r=$(field "$j" ln_ppl_ratio); k=$(field "$j" kld); t=$(field "$j" top1)
    echo "perplexity $name: ppl $(field "$j" ppl) base $(field "$j" base_ppl) ln_ratio $r kld $k top1 $t" >&2
    awk -v r="$r" -v k="$k" -v t="$t" -v mr="$3" -v mk="$4" -v mt="$5" \
        'BEGIN { ar = r < 0 ? -r : r; exit !(r != "" && ar < mr && k < mk && t > mt) }' \
        && ok || bad "perplexity $name out of bounds (|ln ratio| < $3, kld < $4, top1 > $5): $j"
}
for spec in "Q8_0 0.005 0.003 0.96" "Q4_K_M 0.10 0.09 0.75"; do
    set -- $spec
    if [ -f "$tmp/$1.gguf" ] && j=$(ppl_json -m "$tmp/$1.gguf" --base "$SRC"); then
        check_bounds "$1" "$j" "$2" "$3" "$4"
    else
        bad "perplexity $1 failed: $(tail -1 "$tmp/perr")"
    fi
done
# the model against itself: KL exactly 0, every top token the same; the text summary line
head -c 3000 "$PASSAGE" > "$tmp/part.txt"
if "$MLXR" perplexity -m "$SRC" --base "$SRC" -f "$tmp/part.txt" -c 128 -t 1 > "$tmp/self" 2> "$tmp/perr"; then
    grep -q "^summary: ppl=[0-9.]* ppl_err=[0-9.]* tokens=[0-9]* scored=[0-9]* chunks=[0-9]* n_ctx=128 .*kld=0.000000 .*top1=1.0000" "$tmp/self" \
        && ok || bad "self-perplexity summary: $(tail -1 "$tmp/self")"
else
    bad "self-perplexity failed: $(tail -1 "$tmp/perr")"
fi
expect_error "perplexity without -f" "$tmp/none" "$MLXR" perplexity -m "$SRC"
head -c 300 "$PASSAGE" > "$tmp/short.txt"
expect_error "perplexity on a short text" "$tmp/none" "$MLXR" perplexity -m "$SRC" -f "$tmp/short.txt" -c 256
expect_error "perplexity with another vocabulary" "$tmp/none" "$MLXR" perplexity -m "$SRC" \
    --base "$DATA/models/stories260K.gguf" -f "$PASSAGE" -c 64

echo "test_quantize_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
