#!/usr/bin/env bash
# CLI tests of tokenizer.json-only Hugging Face directories and `mlxr info` on HF/MLX ones:
# pydoc-7M's hf/ without tokenizer.model runs to exactly llama.cpp's reference continuation of
# pydoc-7M-f16 (dict_maps), also as an MLX 8-bit copy made by `mlxr convert` (up to the
# reference's first near-tie), and tokenizes
# "In Python 3.11, the" to the README's ids; `mlxr info -m DIR` prints the configuration, the
# tokenizer's source and the tensor table for the HF copy, the tokenizer.json-only copy, a sharded
# MLX 4-bit copy and a .safetensors path; a directory with neither tokenizer file gives one error
# line and exit != 0.
# usage: test_hf_tokjson_cli.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
HF=$(cd "$DATA/models/pydoc-7M/hf" && pwd) # absolute: the symlinks below point here
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"

mkdir "$tmp/tj"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    ln -s "$HF/$f" "$tmp/tj/$f"
done

# --- run and tokenize from tokenizer.json only
ref=$DATA/reference/pydoc-7M-f16__dict_maps.ref
hdr=$(head -n 3 "$ref" | wc -c)
tail -c +$((hdr + 1)) "$ref" > "$tmp/want"
if "$MLXR" run -m "$tmp/tj" -p "$(sed -n 2p "$ref")" -n "$(sed -n 3p "$ref")" --temp 0 -t 2 \
    > "$tmp/got" 2> "$tmp/err"; then
    cmp -s "$tmp/want" "$tmp/got" && ok || bad "run tokenizer.json-only dict_maps: text differs"
else
    bad "run tokenizer.json-only: $(cat "$tmp/err")"
fi
if printf 'In Python 3.11, the' | "$MLXR" tokenize -m "$tmp/tj" > "$tmp/got" 2> "$tmp/err"; then
    [ "$(tr -s ' \n' '  ' < "$tmp/got" | sed 's/ *$//')" = "1 728 436 3894 3949 3912 3936 3936 3917 269" ] \
        && ok || bad "tokenize tokenizer.json-only: $(cat "$tmp/got")"
else
    bad "tokenize tokenizer.json-only: $(cat "$tmp/err")"
fi

# an MLX 8-bit copy of the tokenizer.json-only directory keeps its tokenizer: the reference text
# up to its first near-tie (the 8-bit products round activations to int8 blocks; test_hf_cli.sh)
py "$(dirname "$0")/lib/ref_prefix.py" "${ref%.ref}.json" 0.1 > "$tmp/want8"
if "$MLXR" convert --mlx-bits 8 "$tmp/tj" "$tmp/tj8" > /dev/null 2> "$tmp/err" \
    && "$MLXR" run -m "$tmp/tj8" -p "$(sed -n 2p "$ref")" -n "$(sed -n 3p "$ref")" --temp 0 -t 2 \
        > "$tmp/got" 2> "$tmp/err"; then
    [ -s "$tmp/want8" ] && [ "$(head -c "$(wc -c < "$tmp/want8")" "$tmp/got" | od -An -tx1)" = \
        "$(od -An -tx1 < "$tmp/want8")" ] && ok \
        || bad "run tokenizer.json-only MLX 8-bit: text differs before the reference's first near-tie"
else
    bad "tokenizer.json-only MLX 8-bit: $(cat "$tmp/err")"
fi

# --- info
info_has() { # DESCRIPTION, MODEL, then grep patterns that must all be in the output
    local what=$1 model=$2
    shift 2
    if ! "$MLXR" info -m "$model" > "$tmp/info" 2> "$tmp/err"; then
        bad "info $what: $(cat "$tmp/err")"
        return
    fi
    for pat in "$@"; do
        grep -q -- "$pat" "$tmp/info" && ok || bad "info $what: no '$pat' in the output"
    done
}
info_has "hf" "$HF" "^architecture: llama" "^embedding: 256" "^blocks: 6" \
    "KV heads 2" "^quantization: none" "SentencePiece BPE from tokenizer.model" \
    "^tensors (57 in 1 file)" "model.layers.5.self_attn.q_proj.weight *F16 *\[256, 256\]"
info_has "tokenizer.json-only" "$tmp/tj" "SentencePiece BPE from tokenizer.json, 4096 tokens"
info_has "safetensors path" "$HF/model.safetensors" "^architecture: llama" "lm_head.weight"
if "$MLXR" convert --mlx-bits 4 --group-size 32 --shard-mib 2 "$HF" "$tmp/mlx4" > /dev/null \
    2> "$tmp/err"; then
    info_has "mlx 4-bit" "$tmp/mlx4" "^format: MLX" '"bits":4' '"group_size":32' \
        "q_proj.scales" "q_proj.weight *U32" "^  MLX_Q4_G32: 44 matrices"
else
    bad "convert 4-bit: $(cat "$tmp/err")"
fi
mkdir "$tmp/notok"
ln -s "$HF/config.json" "$tmp/notok/config.json"
if "$MLXR" info -m "$tmp/notok" > /dev/null 2> "$tmp/err"; then
    bad "info without a tokenizer: exit 0"
else
    [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^mlxr: error: .*neither tokenizer.model nor" \
        "$tmp/err" && ok || bad "info without a tokenizer: $(cat "$tmp/err")"
fi

finish cli_hf_tokjson
