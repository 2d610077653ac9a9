#!/usr/bin/env bash
# CLI tests of `mlxr run` as a chat (-i, lines of stdin), of model names resolved through the
# registry (`mlxr run NAME`), and of `mlxr ps` / `mlxr stop` against a started `mlxr serve`.
#
# Chat: each reply must equal a from-scratch computation of the same turn: the conversation so
# far rendered by `mlxr template` (the model's template; ChatML for pydoc-7M, which has none),
# then a one-shot `mlxr run -p RENDERED` (greedy, or the same seed and sampler settings), cut at
# ChatML's end markers as the chat cuts them. The chat itself keeps the KV cache between turns
# and runs only the new tokens, so this checks that incremental reuse equals a fresh run.
# Two things differ by design and are applied to the reference: the chat streams through the
# streaming detokenizer (as the daemon), which drops the leading space of a reply's first token
# for SentencePiece vocabularies (pydoc-7M's), where `run -p` prints token pieces as they are;
# and single-token decodes differ from batched ones by float rounding, so the tests that must
# agree token for token over many sampled tokens use --batch-invariant on both sides.
# usage: test_chat.sh PATH/TO/mlxr TESTDATA_DIR
set -u
shopt -s lastpipe # `printf ... | chat ARGS` sets rc in this shell
MLXR=$1
DATA=$2
M=$DATA/models/pydoc-7M/pydoc-7M-q8_0.gguf
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
# sanitizer builds: every report goes to a file, checked at the end (most runs keep stderr)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$tmp/san"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$tmp/san"
command -v python3 > /dev/null || { echo "test_chat.sh: needs python3" >&2; exit 1; }
[ -f "$M" ] || { echo "test_chat.sh: missing $M" >&2; exit 1; }

# reply [--system TEXT] USER [ASSISTANT USER]... -- RUN_ARGS...: sets R to the one-shot
# reference reply to the conversation (roles alternate from "user"), exactly
reply() {
    local args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    python3 -c '
import json, sys
a, msgs = sys.argv[2:], []
if a[:1] == ["--system"]:
    msgs.append({"role": "system", "content": a[1]})
    a = a[2:]
msgs += [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(a)]
json.dump(msgs, open(sys.argv[1], "w"))' "$tmp/msgs.json" "${args[@]}"
    "$MLXR" template -m "$M" --messages "$tmp/msgs.json" --add-generation-prompt > "$tmp/rendered"
    local p
    p=$(cat "$tmp/rendered"; echo x) # keep trailing newlines
    "$MLXR" run -m "$M" -t 1 -p "${p%x}" "$@" 2> /dev/null > "$tmp/oneshot"
    R=$(python3 -c '
import sys
t = open(sys.argv[1], "rb").read()
for s in (b"<|im_end|>", b"<|im_start|>"):
    i = t.find(s)
    if i >= 0: t = t[:i]
sys.stdout.buffer.write(t[1:] if t.startswith(b" ") else t)' "$tmp/oneshot"; echo x)
    R=${R%x}
}
# same FILE_A FILE_B: byte-equal
same() { cmp -s "$1" "$2"; }
# chat ARGS...: `mlxr run -m M -i -t 1 ARGS` on stdin; stdout to $tmp/chat, stderr to
# $tmp/chat.err, exit status to $rc
chat() {
    "$MLXR" run -m "$M" -i -t 1 "$@" > "$tmp/chat" 2> "$tmp/chat.err"
    rc=$?
}
# cache_counts: N1 = turn 1's prompt tokens, C2 = turn 2's tokens from the cache (stats lines)
cache_counts() {
    N1=$(sed -n '1s/^mlxr: prompt \([0-9]*\) tokens (0 from the cache).*/\1/p' "$tmp/chat.err")
    C2=$(sed -n '2s/^mlxr: prompt [0-9]* tokens (\([0-9]*\) from the cache).*/\1/p' "$tmp/chat.err")
}

# ---- two turns (the second reuses the first's KV cache), ended by EOF ---------------------------
U1="What is a list?"
U2="And how do I sort it?"
printf '%s\n%s\n' "$U1" "$U2" | chat --temp 0 -n 16
[ $rc = 0 ] && ok || bad "chat exit status $rc at EOF: $(cat "$tmp/chat.err")"
reply "$U1" -- --temp 0 -n 16
R1=$R
reply "$U1" "$R1" "$U2" -- --temp 0 -n 16
R2=$R
printf '%s\n%s\n' "$R1" "$R2" > "$tmp/want"
same "$tmp/chat" "$tmp/want" && ok || bad "two greedy turns differ from one-shot runs:
$(cat "$tmp/chat")
--- want:
$(cat "$tmp/want")"
[ -n "$R1" ] && [ -n "$R2" ] && ok || bad "empty reference replies"
# the second turn ran only what the first left out of the cache: turn 1's prompt and all its
# reply but the last token (sampled, never run)
cache_counts
[ -n "$N1" ] && [ "$C2" = $((N1 + 15)) ] && ok ||
    bad "KV reuse: turn 1 prompt $N1, turn 2 from the cache $C2: $(cat "$tmp/chat.err")"

# ---- sampling with a seed, where the reply re-tokenizes differently from the tokens generated:
# the cache is cut back to the first differing token (mlxr_kv_truncate) and the rest re-run
samp=(--batch-invariant --temp 1.5 --top-k 0 --top-p 1 --min-p 0 -s 3 -n 24)
printf '%s\n%s\n' "$U1" "$U2" | chat "${samp[@]}"
reply "$U1" -- "${samp[@]}"
R1=$R
reply "$U1" "$R1" "$U2" -- "${samp[@]}"
printf '%s\n%s\n' "$R1" "$R" > "$tmp/want"
same "$tmp/chat" "$tmp/want" && ok || bad "seeded sampling: chat differs from one-shot runs:
$(cat "$tmp/chat")
--- want:
$(cat "$tmp/want")"
cache_counts
[ -n "$C2" ] && [ "$C2" -gt "$N1" ] && [ "$C2" -lt $((N1 + 23)) ] && ok ||
    bad "expected a partial reuse (the truncation path): $(cat "$tmp/chat.err")"

# ---- longer replies and a system message: more reuse, more tokens to agree on ------------------
S="You answer questions about Python."
printf '%s\n%s\n' "$U1" "$U2" | chat --batch-invariant --temp 0 -n 40 --system "$S"
reply --system "$S" "$U1" -- --batch-invariant --temp 0 -n 40
R1=$R
reply --system "$S" "$U1" "$R1" "$U2" -- --batch-invariant --temp 0 -n 40
printf '%s\n%s\n' "$R1" "$R" > "$tmp/want"
same "$tmp/chat" "$tmp/want" && ok || bad "--system, -n 40: chat differs from one-shot runs:
$(cat "$tmp/chat")
--- want:
$(cat "$tmp/want")"

# ---- /clear, /set parameter (sampling with a seed), /help, unknown commands, /bye --------------
{
    printf '%s\n/clear\n%s\n' "$U1" "$U1"
    printf '/set parameter temperature 0.9\n/set parameter seed 7\n/set parameter top_k 20\n'
    printf '/set parameter num_predict 12\n%s\n' "$U2"
    printf '/set parameter bogus 1\n/foo\n/help\n/bye\nnever answered\n'
} | chat --temp 0 -n 16
reply "$U1" -- --temp 0 -n 16
R1=$R
reply "$U1" "$R1" "$U2" -- --temp 0.9 --seed 7 --top-k 20 -n 12
{
    printf '%s\nCleared session context\n%s\n' "$R1" "$R1"
    printf "Set parameter 'temperature' to '0.9'\nSet parameter 'seed' to '7'\n"
    printf "Set parameter 'top_k' to '20'\nSet parameter 'num_predict' to '12'\n"
    printf '%s\n' "$R"
    printf "Unknown command '/foo'. Type /? for help\n"
} > "$tmp/want"
# /help's text is not pinned: compare up to it, then check it names the commands
head -c "$(wc -c < "$tmp/want")" "$tmp/chat" > "$tmp/chat.head"
same "$tmp/chat.head" "$tmp/want" && ok || bad "/clear + /set: chat differs:
$(cat "$tmp/chat")
--- want (then /help):
$(cat "$tmp/want")"
grep -q '/set parameter' "$tmp/chat" && grep -q '/bye' "$tmp/chat" && ok || bad "/help text"
grep -q "unknown parameter 'bogus'" "$tmp/chat.err" && ok || bad "bogus: $(cat "$tmp/chat.err")"
[ $rc = 0 ] && ok || bad "/bye exit status $rc"
grep -q 'never answered' "$tmp/chat" && bad "a line after /bye was answered" || ok

# ---- an over-long message is refused with a message, and the chat goes on ----------------------
long=$(python3 -c 'print(" ".join(["documentation"] * 3000))')
printf '%s\n%s\n' "$long" "$U1" | chat --temp 0 -n 16
reply "$U1" -- --temp 0 -n 16
printf '%s\n' "$R" > "$tmp/want"
[ $rc = 0 ] && ok || bad "over-long input: exit status $rc"
grep -q 'more than the context of 512' "$tmp/chat.err" && ok ||
    bad "over-long input message: $(cat "$tmp/chat.err")"
same "$tmp/chat" "$tmp/want" && ok || bad "after an over-long input: $(cat "$tmp/chat")"

# ---- a message over several lines between """ marks -------------------------------------------
printf '"""What is\n\na list?\n"""\n' | chat --temp 0 -n 16
m=$(printf 'What is\n\na list?\nx') # the lines joined by newlines; x keeps the last one
reply "${m%x}" -- --temp 0 -n 16
printf '%s\n' "$R" > "$tmp/want"
same "$tmp/chat" "$tmp/want" && ok || bad "multi-line message: $(cat "$tmp/chat") $(cat "$tmp/chat.err")"

# ---- a reply that fills the context: cut with a message, no crash -----------------------------
printf '%s\n%s\n' "$U1" "$U2" | chat --temp 0 -n 100000 -c 64
[ $rc = 0 ] && ok || bad "full context: exit status $rc: $(cat "$tmp/chat.err")"
grep -q 'context of 64 tokens is full' "$tmp/chat.err" && ok ||
    bad "full context message: $(cat "$tmp/chat.err")"

# ---- argument errors --------------------------------------------------------------------------
"$MLXR" run -m "$M" < /dev/null > /dev/null 2> "$tmp/err"
[ $? != 0 ] && grep -q 'needs a prompt' "$tmp/err" && ok || bad "no -p, stdin not a terminal"
"$MLXR" run -m "$M" -i -p x < /dev/null > /dev/null 2> "$tmp/err"
[ $? != 0 ] && ok || bad "-i with -p accepted"

# ---- model names through the registry ----------------------------------------------------------
H=$tmp/home
"$MLXR" import "$M" --name pyd:test --home "$H" > /dev/null 2>&1 && ok || bad "import"
one=(-t 1 -p "The list" --temp 0 -n 12)
"$MLXR" run -m "$M" "${one[@]}" > "$tmp/want" 2> /dev/null
"$MLXR" run pyd:test --home "$H" "${one[@]}" > "$tmp/got" 2> "$tmp/err"
same "$tmp/got" "$tmp/want" && ok || bad "mlxr run NAME:TAG: $(cat "$tmp/err")"
MLXR_HOME=$H "$MLXR" run -m pyd:test "${one[@]}" > "$tmp/got" 2> "$tmp/err"
same "$tmp/got" "$tmp/want" && ok || bad "MLXR_HOME + -m NAME: $(cat "$tmp/err")"
printf '%s\n' "$U1" | MLXR_HOME=$H "$MLXR" run pyd:test -i -t 1 --temp 0 -n 16 > "$tmp/got" 2> "$tmp/err"
reply "$U1" -- --temp 0 -n 16
printf '%s\n' "$R" > "$tmp/want"
same "$tmp/got" "$tmp/want" && ok || bad "chat with a registry name: $(cat "$tmp/err")"
"$MLXR" run nosuch:model --home "$H" -p x > /dev/null 2> "$tmp/err"
[ $? != 0 ] && grep -q 'no model nosuch:model' "$tmp/err" && ok || bad "unknown name: $(cat "$tmp/err")"
"$MLXR" run ./no/such/file.gguf --home "$tmp/nohome" -p x > /dev/null 2> "$tmp/err"
[ $? != 0 ] && [ ! -e "$tmp/nohome" ] && ok || bad "a missing path: $(cat "$tmp/err"), home created"

# ---- mlxr ps / mlxr stop against a running daemon ----------------------------------------------
SOCK=$tmp/mlxr.sock
if start_server serve --home "$H" --socket "$SOCK"; then
    export MLXR_HOST=127.0.0.1:$PORT
    "$MLXR" ps > "$tmp/ps" 2> "$tmp/err" && ok || bad "ps: $(cat "$tmp/err")"
    [ "$(wc -l < "$tmp/ps")" = 1 ] && grep -q '^NAME .*SIZE .*CONTEXT .*UNTIL' "$tmp/ps" && ok ||
        bad "ps with nothing loaded: $(cat "$tmp/ps")"
    curl -s -o /dev/null "http://127.0.0.1:$PORT/api/generate" \
        -d '{"model":"pyd:test","prompt":"The list","stream":false,"options":{"num_predict":2}}'
    "$MLXR" ps > "$tmp/ps" 2> "$tmp/err"
    grep -q '^pyd:test .* 7.0 MB .* 512 .* minutes from now' "$tmp/ps" && ok ||
        bad "ps after a load: $(cat "$tmp/ps") $(cat "$tmp/err")"
    MLXR_HOST= "$MLXR" ps --socket "$SOCK" > "$tmp/ps2" 2> "$tmp/err"
    same "$tmp/ps" "$tmp/ps2" && ok || bad "ps over the socket: $(cat "$tmp/ps2") $(cat "$tmp/err")"
    "$MLXR" stop other:model > /dev/null 2> "$tmp/err"
    [ $? != 0 ] && grep -q "'other:model' is not loaded" "$tmp/err" && ok ||
        bad "stop of an unloaded model"
    "$MLXR" stop pyd:test 2> "$tmp/err" && ok || bad "stop: $(cat "$tmp/err")"
    "$MLXR" ps > "$tmp/ps" 2> "$tmp/err"
    [ "$(wc -l < "$tmp/ps")" = 1 ] && ok || bad "ps after stop still lists: $(cat "$tmp/ps")"
    # the chat equals the daemon's /api/chat for the same conversation (its default is batch-
    # invariant, as --batch-invariant), also with control-token text in a message ("</s>" is
    # pydoc-7M's EOS), which both keep as plain text (segmented tokenization)
    for first in "$U1" "What does </s> mean?"; do
        printf '%s\n%s\n' "$first" "$U2" | chat --batch-invariant --temp 0 -n 16
        python3 - "$PORT" "$first" "$U2" > "$tmp/want" << 'EOF2'
import json, sys, urllib.request
port, msgs = sys.argv[1], []
for u in sys.argv[2:]:
    msgs.append({"role": "user", "content": u})
    body = {"model": "pyd:test", "messages": msgs, "stream": False,
            "options": {"temperature": 0, "num_predict": 16}}
    req = urllib.request.Request("http://127.0.0.1:%s/api/chat" % port, json.dumps(body).encode())
    a = json.load(urllib.request.urlopen(req))["message"]["content"]
    msgs.append({"role": "assistant", "content": a})
    sys.stdout.write(a + "\n")
EOF2
        same "$tmp/chat" "$tmp/want" && ok || bad "chat differs from /api/chat ($first):
$(cat "$tmp/chat") $(cat "$tmp/chat.err")
--- /api/chat:
$(cat "$tmp/want")"
    done
    "$MLXR" ps --host "http://127.0.0.1:1" > /dev/null 2> "$tmp/err"
    [ $? != 0 ] && grep -q 'cannot reach the mlxr daemon' "$tmp/err" && ok ||
        bad "ps without a daemon: $(cat "$tmp/err")"
fi

for f in "$tmp"/san.*; do [ -e "$f" ] && bad "sanitizer report: $(head -c 2000 "$f")"; done

finish test_chat
