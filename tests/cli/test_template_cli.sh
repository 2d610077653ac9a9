#!/usr/bin/env bash
# CLI tests of `mlxr template`: for every template in the shared test data and every conversation
# in tests/template/conversations, the printed prompt equals Python jinja2's rendering byte for
# byte (tests/template/expected, made by scripts/gen_template_refs.py); where jinja2 raised, the
# command exits non-zero with the template's message. -m MODEL uses the GGUF's own template and
# BOS/EOS texts (ggml-vocab-phi-3.gguf ships one) or the ChatML default (stories260K ships none).
# usage: test_template_cli.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$SRC/tests/template
export MLXR_TEMPLATE_NOW=1735732800 # as scripts/gen_template_refs.py
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- every template x conversation, with the family's bos/eos (tests/template/tokens.json lines
# look like:   "NAME": {"bos_token": "...", "eos_token": "..."},)
for tpl in "$DATA"/templates/*.jinja; do
    name=$(basename "$tpl" .jinja)
    toks=$(sed -n "s/^  \"$name\": {\(.*\)},\{0,1\}\$/\1/p" "$T/tokens.json")
    for conv in "$T"/conversations/*.json; do
        cname=$(basename "$conv" .json)
        # merged variables: the family's tokens, then the conversation's keys
        { printf '{%s,' "$toks"; tail -c +2 "$conv"; } > "$tmp/vars.json"
        exp="$T/expected/$name.$cname"
        if "$MLXR" template --template "$tpl" --messages "$tmp/vars.json" > "$tmp/got" 2> "$tmp/err"; then
            if [ -f "$exp.txt" ] && cmp -s "$exp.txt" "$tmp/got"; then ok
            else bad "$name x $cname: output differs from jinja2"; fi
        else
            if [ -f "$exp.err" ] && grep -qF -- "$(head -n 1 "$exp.err")" "$tmp/err"; then ok
            else bad "$name x $cname: exit non-zero: $(cat "$tmp/err")"; fi
        fi
    done
done

# --- -m MODEL: the GGUF's template and special tokens, or the ChatML default
for exp in "$T"/expected_cli/*.txt; do
    base=$(basename "$exp" .txt)
    model=${base%.*}
    cname=${base##*.}
    path=$(ls "$DATA"/tokenizer/"$model".gguf "$DATA"/models/"$model".gguf 2>/dev/null | head -n 1)
    if "$MLXR" template -m "$path" --messages "$T/conversations/$cname.json" > "$tmp/got" 2> "$tmp/err" &&
        cmp -s "$exp" "$tmp/got"; then ok
    else bad "template -m $model x $cname: $(cat "$tmp/err")"; fi
done

# --- a messages array and --add-generation-prompt with the default template
printf '[{"role": "user", "content": "hi"}]' > "$tmp/arr.json"
printf '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n' > "$tmp/want"
if "$MLXR" template --messages "$tmp/arr.json" --add-generation-prompt > "$tmp/got" 2> "$tmp/err" &&
    cmp -s "$tmp/want" "$tmp/got"; then ok
else bad "messages array with the default template: $(cat "$tmp/err")"; fi

# --- raise_exception: non-zero exit, the template's message on stderr
printf '{{ raise_exception("Only user and assistant roles are supported!") }}' > "$tmp/raise.jinja"
if "$MLXR" template --template "$tmp/raise.jinja" --messages "$tmp/arr.json" > "$tmp/got" 2> "$tmp/err"; then
    bad "raise_exception: exit 0"
else
    grep -qF "Only user and assistant roles are supported!" "$tmp/err" && ok || bad "raise: $(cat "$tmp/err")"
fi

# --- errors: syntax error names line and column; missing flags and files
printf 'ok\n{%% if x %%}\n{{ 1 + }}' > "$tmp/bad.jinja"
if "$MLXR" template --template "$tmp/bad.jinja" --messages "$tmp/arr.json" > /dev/null 2> "$tmp/err"; then
    bad "syntax error: exit 0"
else
    grep -q "line 3, column" "$tmp/err" && ok || bad "syntax error message: $(cat "$tmp/err")"
fi
"$MLXR" template > /dev/null 2> "$tmp/err" && bad "no --messages: exit 0" || ok
"$MLXR" template --messages "$tmp/none.json" > /dev/null 2> "$tmp/err" && bad "missing file: exit 0" || ok
printf '{"messages": [' > "$tmp/broken.json"
"$MLXR" template --messages "$tmp/broken.json" > /dev/null 2> "$tmp/err" && bad "bad JSON: exit 0" || ok
[ "$(wc -l < "$tmp/err")" -eq 1 ] && ok || bad "bad JSON: not one error line"

echo "test_template_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
