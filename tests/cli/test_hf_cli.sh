#!/usr/bin/env bash
# CLI tests of Hugging Face / MLX model directories: `mlxr run -m DIR --temp 0` on pydoc-7M's hf/
# copy (config.json + model.safetensors + tokenizer.model) prints exactly llama.cpp's reference
# continuation of pydoc-7M-f16 for every reference prompt, also when -m names the .safetensors
# file; `mlxr convert` writes MLX 8-bit and sharded 4-bit copies that `mlxr run` loads (8-bit:
# the reference's text for dict_maps up to its first near-tie), `mlxr info` names their native
# types; bad directories give one error line and exit != 0.
# usage: test_hf_cli.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
HF=$DATA/models/pydoc-7M/hf
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"

want_text() { # the generated text of a .ref file
    local hdr
    hdr=$(head -n 3 "$1" | wc -c)
    tail -c +$((hdr + 1)) "$1"
}

# --- run: byte-exact greedy text of every pydoc-7M-f16 case from the safetensors copy
for ref in "$DATA"/reference/pydoc-7M-f16__*.ref; do
    prompt=$(sed -n 2p "$ref")
    n=$(sed -n 3p "$ref")
    want_text "$ref" > "$tmp/want"
    if "$MLXR" run -m "$HF" -p "$prompt" -n "$n" --temp 0 -t 2 > "$tmp/got" 2> "$tmp/err"; then
        cmp -s "$tmp/want" "$tmp/got" && ok || bad "run hf $(basename "$ref"): text differs"
    else
        bad "run hf $(basename "$ref"): $(cat "$tmp/err")"
    fi
done
ref=$DATA/reference/pydoc-7M-f16__dict_maps.ref
want_text "$ref" > "$tmp/want"
if "$MLXR" run -m "$HF/model.safetensors" -p "$(sed -n 2p "$ref")" -n "$(sed -n 3p "$ref")" \
    --temp 0 -t 2 > "$tmp/got" 2> "$tmp/err"; then
    cmp -s "$tmp/want" "$tmp/got" && ok || bad "run hf/model.safetensors: text differs"
else
    bad "run hf/model.safetensors: $(cat "$tmp/err")"
fi

# --- convert to MLX and run the copies
if "$MLXR" convert --mlx-bits 8 "$HF" "$tmp/mlx8" > "$tmp/out" 2> "$tmp/err"; then ok
else bad "convert 8-bit: $(cat "$tmp/err")"; fi
grep -q '"bits": 8' "$tmp/mlx8/config.json" 2> /dev/null && ok || bad "convert 8-bit: no quantization in config.json"
# the 8-bit products quantize activations to int8 blocks (kernels/mlx_affine.h), as llama.cpp's
# Q8_0 does: greedy text follows the F16 reference up to its first near-tie (top-2 logit margin
# < 0.1 in the reference's steps), where that rounding may pick the other token
py "$(dirname "$0")/lib/ref_prefix.py" "${ref%.ref}.json" 0.1 > "$tmp/want8"
if "$MLXR" run -m "$tmp/mlx8" -p "$(sed -n 2p "$ref")" -n "$(sed -n 3p "$ref")" --temp 0 -t 2 \
    > "$tmp/got" 2> "$tmp/err"; then
    [ -s "$tmp/want8" ] && [ "$(head -c "$(wc -c < "$tmp/want8")" "$tmp/got" | od -An -tx1)" = \
        "$(od -An -tx1 < "$tmp/want8")" ] && ok \
        || bad "run mlx 8-bit dict_maps: text differs from the reference before its first near-tie"
else
    bad "run mlx 8-bit: $(cat "$tmp/err")"
fi
if "$MLXR" convert --mlx-bits 4 --group-size 32 --shard-mib 2 "$HF" "$tmp/mlx4" > /dev/null 2> "$tmp/err"; then ok
else bad "convert 4-bit: $(cat "$tmp/err")"; fi
[ -f "$tmp/mlx4/model.safetensors.index.json" ] && ok || bad "convert --shard-mib 2: no index"
if "$MLXR" run -m "$tmp/mlx4" -p "The list type" -n 16 --temp 0 -t 2 > "$tmp/got" 2> "$tmp/err" \
    && [ -s "$tmp/got" ]; then ok
else bad "run mlx 4-bit: $(cat "$tmp/err")"; fi
# info names the native types the MLX triples load as (6 blocks x 7 + embedding + lm_head)
"$MLXR" info -m "$tmp/mlx8" > "$tmp/out" 2> "$tmp/err" \
    && grep -q "^  MLX_Q8_G64: 44 matrices$" "$tmp/out" && ok \
    || bad "info mlx 8-bit: no MLX_Q8_G64 line: $(cat "$tmp/err")"
"$MLXR" info -m "$tmp/mlx4" > "$tmp/out" 2> "$tmp/err" \
    && grep -q "^  MLX_Q4_G32: 44 matrices$" "$tmp/out" && ok \
    || bad "info mlx 4-bit: no MLX_Q4_G32 line: $(cat "$tmp/err")"
# bench runs on an MLX directory (prompt batches go through the tiled product)
"$MLXR" bench -m "$tmp/mlx4" -p 40 -n 4 -r 1 -t 2 > "$tmp/out" 2> "$tmp/err" \
    && grep -q "pp40" "$tmp/out" && grep -q "tg4" "$tmp/out" && ok \
    || bad "bench mlx 4-bit: $(cat "$tmp/err")"

# --- errors: one line, non-zero exit
mkdir "$tmp/empty"
check_error() { # DESCRIPTION, then the command
    local what=$1
    shift
    if "$@" > "$tmp/out" 2> "$tmp/err"; then
        bad "$what: exit 0"
    else
        [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^mlxr: error: " "$tmp/err" && ok \
            || bad "$what: stderr not one error line: $(cat "$tmp/err")"
    fi
}
check_error "empty directory" "$MLXR" run -m "$tmp/empty" -p hi -n 1
mkdir "$tmp/broken"
cp "$HF/config.json" "$HF/tokenizer.model" "$tmp/broken/"
head -c 100000 "$HF/model.safetensors" > "$tmp/broken/model.safetensors"
check_error "truncated safetensors" "$MLXR" run -m "$tmp/broken" -p hi -n 1
check_error "convert bad bits" "$MLXR" convert --mlx-bits 5 "$HF" "$tmp/mlx5"
check_error "convert without bits" "$MLXR" convert "$HF" "$tmp/mlx0"
check_error "convert onto itself" "$MLXR" convert --mlx-bits 8 "$tmp/mlx8" "$tmp/mlx8"
check_error "convert an MLX copy" "$MLXR" convert --mlx-bits 4 "$tmp/mlx8" "$tmp/mlx84"

finish cli_hf
