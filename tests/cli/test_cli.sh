#!/usr/bin/env bash
# CLI tests: `mlxr run --temp 0` prints exactly the text of every supported reference case
# (llama.cpp's greedy output), tokenize/info/bench work, and errors give one line and exit != 0.
# usage: test_cli.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- run: byte-exact greedy text for every case of a supported model
for ref in "$DATA"/reference/*.ref; do
    case "$(basename "$ref")" in
        stories260K__*|llama-2-tiny-random__*|toy-f16__*|toy-q8_0__*|toy-q4_0__*|toy-q4_k_m__*) ;;
        toy-q6_k__*|pydoc-7M-f16__*|pydoc-7M-q8_0__*|pydoc-7M-q4_0__*|pydoc-7M-q4_k_m__*) ;;
        *) continue ;;
    esac
    model=$(sed -n 1p "$ref")
    prompt=$(sed -n 2p "$ref")
    n=$(sed -n 3p "$ref")
    hdr=$(head -n 3 "$ref" | wc -c)
    tail -c +$((hdr + 1)) "$ref" > "$tmp/want"
    if "$MLXR" run -m "$DATA/$model" -p "$prompt" -n "$n" --temp 0 -t 2 > "$tmp/got" 2> "$tmp/err"; then
        if cmp -s "$tmp/want" "$tmp/got"; then ok; else bad "run $(basename "$ref"): text differs"; fi
    else
        bad "run $(basename "$ref"): exit $? $(cat "$tmp/err")"
    fi
    grep -q "tok/s" "$tmp/err" && ok || bad "run $(basename "$ref"): no timing line on stderr"
done

# --- run with the bundled default model (no -m) writes text and a timing line
if "$MLXR" run -p "The list type" -n 16 --temp 0 > "$tmp/out" 2> "$tmp/err" && [ -s "$tmp/out" ]; then ok
else bad "run with the default model: $(cat "$tmp/err")"; fi
# the bundled model is pydoc-7M-q8_0: its greedy text equals the reference's
hdr=$(head -n 3 "$DATA/reference/pydoc-7M-q8_0__dict_maps.ref" | wc -c)
tail -c +$((hdr + 1)) "$DATA/reference/pydoc-7M-q8_0__dict_maps.ref" > "$tmp/want"
"$MLXR" run -p "A dictionary maps" -n 41 --temp 0 > "$tmp/got" 2>/dev/null
cmp -s "$tmp/want" "$tmp/got" && ok || bad "default model greedy text differs from pydoc-7M-q8_0 reference"

# --- sampling is reproducible with a seed
"$MLXR" run -p "To open a file" -n 24 --temp 0.9 --top-k 40 --top-p 0.9 --min-p 0.05 \
    --repeat-penalty 1.1 --seed 7 > "$tmp/s1" 2>/dev/null
"$MLXR" run -p "To open a file" -n 24 --temp 0.9 --top-k 40 --top-p 0.9 --min-p 0.05 \
    --repeat-penalty 1.1 --seed 7 -t 1 > "$tmp/s2" 2>/dev/null
[ -s "$tmp/s1" ] && cmp -s "$tmp/s1" "$tmp/s2" && ok || bad "same seed gave different text"

# --- tokenize
got=$(printf 'In Python 3.11, the' | "$MLXR" tokenize -m "$DATA/models/pydoc-7M/pydoc-7M-f16.gguf")
[ "$got" = "1 728 436 3894 3949 3912 3936 3936 3917 269" ] && ok || bad "tokenize: '$got'"
got=$(printf 'import os\n' | "$MLXR" tokenize -m "$DATA/models/pydoc-7M/pydoc-7M-f16.gguf")
[ "$got" = "1 579 1138 13" ] && ok || bad "tokenize newline: '$got'"
got=$(printf 'Hello world' | "$MLXR" tokenize --no-bos -m "$DATA/tokenizer/ggml-vocab-llama-spm.gguf")
[ "$got" = "15043 3186" ] && ok || bad "tokenize --no-bos: '$got'"

# --- info
"$MLXR" info -m "$DATA/models/stories260K.gguf" > "$tmp/info" 2>&1 && ok || bad "info failed"
grep -q "general.architecture = \"llama\"" "$tmp/info" && ok || bad "info: no architecture"
grep -q "token_embd.weight" "$tmp/info" && ok || bad "info: no tensor table"
grep -q "tensors (47)" "$tmp/info" && ok || bad "info: tensor count"

# --- bench --json
"$MLXR" bench -m "$DATA/models/stories260K.gguf" -p 16 -n 8 -r 2 -t 2 --json > "$tmp/bench" 2>&1 && ok \
    || bad "bench failed: $(cat "$tmp/bench")"
for k in pp_tok_s pp_sd tg_tok_s tg_sd threads model; do
    grep -q "\"$k\"" "$tmp/bench" && ok || bad "bench --json lacks $k"
done

# --- Q8_0 KV cache (--kv-type, llama.cpp's -ctk/-ctv; its accuracy: tests/kv/test_kv_q8.c)
pyd="$DATA/models/pydoc-7M/pydoc-7M-f16.gguf"
"$MLXR" bench -m "$pyd" -p 16 -n 8 -r 1 -t 2 --json -ctk q8_0 -ctv q8_0 > "$tmp/bench" 2>&1 && ok \
    || bad "bench -ctk q8_0 failed: $(cat "$tmp/bench")"
grep -q '"kv_type": *"q8_0"' "$tmp/bench" && ok || bad "bench --json lacks kv_type q8_0: $(cat "$tmp/bench")"

# --- errors: one line on stderr, non-zero exit
expect_error() { # description, then the command
    local what=$1; shift
    if "$@" > "$tmp/out" 2> "$tmp/err"; then bad "$what: exit 0"; return; fi
    if [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^mlxr: error: " "$tmp/err"; then ok
    else bad "$what: stderr was: $(cat "$tmp/err")"; fi
}
expect_error "missing model" "$MLXR" run -m "$tmp/nope.gguf" -p hi
expect_error "not a gguf" "$MLXR" run -m "$DATA/reference/README.md" -p hi
head -c 5000 "$DATA/models/stories260K.gguf" > "$tmp/trunc.gguf"
expect_error "truncated model" "$MLXR" run -m "$tmp/trunc.gguf" -p hi
expect_error "no prompt" "$MLXR" run -m "$DATA/models/stories260K.gguf"
expect_error "bad -n" "$MLXR" run -m "$DATA/models/stories260K.gguf" -p hi -n abc
expect_error "bad --temp" "$MLXR" run -m "$DATA/models/stories260K.gguf" -p hi --temp -1
expect_error "unknown flag" "$MLXR" run -p hi --bogus 1
expect_error "bad -ngl" "$MLXR" run -m "$DATA/models/stories260K.gguf" -p hi -ngl x
# the engine bench takes -ngl; one layer of five is a partial offload (refused by CUDA builds)
# and any -ngl is refused without CUDA: one clear error either way
expect_error "-ngl 1 with the engine bench" "$MLXR" bench -m "$DATA/models/stories260K.gguf" -ngl 1 --parallel 2
# -ngl 0 is the CPU path: same greedy text as without the flag
a=$("$MLXR" run -m "$DATA/models/stories260K.gguf" -p "Once upon a time" -n 8 --temp 0 -t 1 2>/dev/null)
b=$("$MLXR" run -m "$DATA/models/stories260K.gguf" -p "Once upon a time" -n 8 --temp 0 -t 1 -ngl 0 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "-ngl 0 changes the output"
expect_error "unknown command" "$MLXR" frobnicate
expect_error "-ctk and -ctv differ" "$MLXR" run -m "$pyd" -p hi -ctk q8_0 -ctv f16
expect_error "bad --kv-type" "$MLXR" run -m "$pyd" -p hi --kv-type q4_0
expect_error "Q8_0 cache, head size 8" "$MLXR" run -m "$DATA/models/stories260K.gguf" -p hi --kv-type q8_0
# every reference model is readable now: make an unsupported one by retyping toy-f16's F16
# output.weight as I16 (same size; integer tensors have no matrix product). Its tensor info is
# name (u64 length 13, bytes), n_dims (u32 2), 2 dims (u64), then the type (u32).
cp "$DATA/models/toy-f16.gguf" "$tmp/i16.gguf"
at=$(LC_ALL=C grep -obUaP '\x0d\x00{7}output\.weight' "$tmp/i16.gguf" | head -n 1 | cut -d: -f1)
printf '\x19\x00\x00\x00' | dd of="$tmp/i16.gguf" bs=1 seek=$((at + 8 + 13 + 4 + 16)) conv=notrunc 2>/dev/null
expect_error "unsupported type" "$MLXR" run -m "$tmp/i16.gguf" -p hi
grep -q "I16" "$tmp/err" && ok || bad "unsupported type: message does not name the type: $(cat "$tmp/err")"
expect_error "info on missing file" "$MLXR" info -m "$tmp/nope.gguf"

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
