#!/usr/bin/env bash
# CLI tests of `mlxr tokenize` and `mlxr detokenize` for every tokenizer family in the shared
# test data (SentencePiece, byte-level BPE, WordPiece). Expected ids come from the Hugging Face
# vectors (tokenizer/*.out) and llama.cpp; texts must come back byte for byte.
# usage: test_tokenizer_cli.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
T=$DATA/tokenizer
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect_ids() { # description, expected, vocab, input, then extra flags
    local what=$1 want=$2 vocab=$3 input=$4; shift 4
    local got
    got=$(printf '%s' "$input" | "$MLXR" tokenize -m "$T/ggml-vocab-$vocab.gguf" "$@" 2> "$tmp/err")
    [ "$got" = "$want" ] && ok || bad "$what: got '$got', want '$want' $(cat "$tmp/err")"
}

# --- tokenize: every family, plain text (ids from the .out vectors of the same inputs)
expect_ids "spm" "15043 3186" llama-spm "Hello world" --no-bos
expect_ids "spm bos" "1 15043 3186" llama-spm "Hello world"
expect_ids "gpt-2" "15496 995" gpt-2 "Hello world" --no-bos
expect_ids "gpt-2 space" "220" gpt-2 " " --no-bos
expect_ids "deepseek-coder bos" "32013 17535 1835" deepseek-coder "Hello world"
expect_ids "falcon" "9856 1079" falcon "Hello world" --no-bos
expect_ids "bert" "7592 2088 999" bert-bge " Hello World!" --no-bos
expect_ids "bert cls/sep" "101 7592 2088 102" bert-bge "Hello world"
# --- special tokens: plain text unless --parse-special
expect_ids "gpt-2 no special" "64 27 91 437 1659 5239 91 29 65" gpt-2 "a<|endoftext|>b" --no-bos
expect_ids "gpt-2 special" "64 50256 65" gpt-2 "a<|endoftext|>b" --no-bos --parse-special
expect_ids "spm special" "1 15043" llama-spm "<s>Hello" --no-bos --parse-special

# --- detokenize: ids back to the exact text (no newline added), args or stdin
for v in llama-spm phi-3 gpt-2 deepseek-coder falcon; do
    for text in "Hello world" " leading space" "tabs	and
newlines

" "Ünïcödé 🦙 我想在apple工作 нещо" "   "; do
        printf '%s' "$text" > "$tmp/in"
        "$MLXR" tokenize -m "$T/ggml-vocab-$v.gguf" < "$tmp/in" > "$tmp/ids" 2> "$tmp/err" \
            || { bad "$v tokenize: $(cat "$tmp/err")"; continue; }
        "$MLXR" detokenize -m "$T/ggml-vocab-$v.gguf" < "$tmp/ids" > "$tmp/out" 2> "$tmp/err" \
            || { bad "$v detokenize: $(cat "$tmp/err")"; continue; }
        cmp -s "$tmp/in" "$tmp/out" && ok || bad "$v: round trip of '$text' gave '$(cat "$tmp/out")'"
    done
done
got=$("$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" 15496 995)
[ "$got" = "Hello world" ] && ok || bad "detokenize args: '$got'"
"$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" 15496 995 | od -c | grep -q '\\n' \
    && bad "detokenize added a newline" || ok
got=$("$MLXR" detokenize -m "$T/ggml-vocab-bert-bge.gguf" 101 7592 2088 999 102)
[ "$got" = " hello world !" ] && ok || bad "bert detokenize: '$got'"
got=$("$MLXR" detokenize -m "$T/ggml-vocab-bert-bge.gguf" --special 101 7592 102)
[ "$got" = "[CLS] hello[SEP]" ] && ok || bad "bert detokenize --special: '$got'"
got=$("$MLXR" detokenize -m "$T/ggml-vocab-llama-spm.gguf" --special 1 15043)
[ "$got" = "<s>Hello" ] && ok || bad "spm detokenize --special: '$got'"
printf '' | "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" > "$tmp/out" && [ ! -s "$tmp/out" ] \
    && ok || bad "empty input"

# --- errors: one line on stderr, non-zero exit
expect_error() { # description, then the command (stdin from $tmp/stdin)
    local what=$1; shift
    if "$@" < "$tmp/stdin" > "$tmp/out" 2> "$tmp/err"; then bad "$what: exit 0"; return; fi
    if [ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "^mlxr: error: " "$tmp/err"; then ok
    else bad "$what: stderr was: $(cat "$tmp/err")"; fi
}
printf '1 2 3' > "$tmp/stdin"
expect_error "id out of range" "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" 50257
expect_error "negative id" "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" -1
expect_error "not a number" "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" 12x
printf '15496 hello' > "$tmp/stdin"
expect_error "bad word on stdin" "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf"
printf '15496 99999999999' > "$tmp/stdin"
expect_error "huge id on stdin" "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf"
expect_error "unknown option" "$MLXR" detokenize -m "$T/ggml-vocab-gpt-2.gguf" --bogus
expect_error "tokenize unknown option" "$MLXR" tokenize --bogus
expect_error "detokenize missing model" "$MLXR" detokenize -m "$tmp/nope.gguf" 1

echo "test_tokenizer_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
