#!/usr/bin/env bash
# Daemon sampling features against a real `mlxr serve` with the bundled pydoc-7M model, over curl,
# JSON checked with python3: logprobs (chat, legacy completions and Ollama, streamed and not: logprob <= 0,
# top lists sorted, the greedy token is the top one, token texts concatenate to the text, the
# stream carries the same entries as the single answer), logit_bias (-100 changes the greedy first
# token, +100 forces a token), presence/frequency penalties (accepted, less repetition), JSON mode
# (OpenAI response_format, Ollama format "json" and schema objects: the text parses as a JSON
# object) and bad values (400 with the parameter named).
# usage: test_server_sampling.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
need curl python3
touch "$tmp/r"
start_server server --home "$tmp/home" || exit 1

req() {
    curl -s -o "${3:-$tmp/r}" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$2" "http://127.0.0.1:$PORT$1"
}

# ---- logprobs: chat ------------------------------------------------------------------------------
chat='"messages":[{"role":"user","content":"What is a list?"}],"max_tokens":24,"temperature":0'
check '[ "$(req /v1/chat/completions "{$chat,\"logprobs\":true,\"top_logprobs\":5}")" = 200 ]' \
    "chat logprobs: $(cat $tmp/r 2>/dev/null)"
cp "$tmp/r" "$tmp/chat_lp"
check 'py - "$tmp/chat_lp" <<EOF
import json, sys
j = json.load(open(sys.argv[1]))
c = j["choices"][0]
lp = c["logprobs"]["content"]
assert len(lp) == j["usage"]["completion_tokens"], (len(lp), j["usage"])
assert bytes(b for e in lp for b in e["bytes"]).decode() == c["message"]["content"]
for e in lp:
    assert e["logprob"] <= 0
    tops = e["top_logprobs"]
    assert len(tops) == 5
    assert all(tops[i]["logprob"] >= tops[i + 1]["logprob"] for i in range(4))
    # greedy: the chosen token is the most likely one, its logprob the largest
    assert tops[0]["token"] == e["token"] and tops[0]["logprob"] == e["logprob"], e
    assert all(0 < len(t["bytes"]) for t in tops)
EOF' "chat logprobs consistent: $(head -c 600 $tmp/chat_lp 2>/dev/null)"
check '[ "$(req /v1/chat/completions "{$chat}")" = 200 ] && py -c "import json; assert json.load(open(\"$tmp/r\"))[\"choices\"][0][\"logprobs\"] is None"' \
    "no logprobs unless asked: $(cat $tmp/r 2>/dev/null)"
# streamed: the same entries, each in the chunk with its text
req /v1/chat/completions "{$chat,\"logprobs\":true,\"top_logprobs\":5,\"stream\":true}" "$tmp/chat_sse" > /dev/null
check 'py - "$tmp/chat_sse" "$tmp/chat_lp" <<EOF
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "[DONE]"
chunks = [json.loads(l)["choices"][0] for l in lines[:-1]]
text, entries = "", []
for c in chunks:
    text += c["delta"].get("content", "")
    if c.get("logprobs"):
        entries += c["logprobs"]["content"]
    # a token comes out with the chunk that completes its text (text held back for a possible
    # stop string holds its tokens back too)
    assert text.encode().startswith(bytes(b for e in entries for b in e["bytes"])), (text, entries)
want = json.load(open(sys.argv[2]))["choices"][0]
assert text == want["message"]["content"], (text, want)
assert entries == want["logprobs"]["content"]
EOF' "streamed chat logprobs equal the single answer"

# ---- logprobs: legacy completions -------------------------------------------------------------------
comp='"prompt":"A dictionary maps","max_tokens":20,"temperature":0'
check '[ "$(req /v1/completions "{$comp,\"logprobs\":3}")" = 200 ]' "completion logprobs: $(cat $tmp/r 2>/dev/null)"
cp "$tmp/r" "$tmp/comp_lp"
check 'py - "$tmp/comp_lp" <<EOF
import json, sys
c = json.load(open(sys.argv[1]))["choices"][0]
lp = c["logprobs"]
n = len(lp["tokens"])
assert n == 20 and len(lp["token_logprobs"]) == n and len(lp["top_logprobs"]) == n
assert len(lp["text_offset"]) == n
assert "".join(lp["tokens"]) == c["text"]
off = 0
for t, l, top, o in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], lp["text_offset"]):
    assert o == off and l <= 0 and 1 <= len(top) <= 3
    assert top[t] == l == max(top.values()), (t, l, top)
    off += len(t)
EOF' "completion logprobs consistent: $(head -c 600 $tmp/comp_lp 2>/dev/null)"
req /v1/completions "{$comp,\"logprobs\":3,\"stream\":true}" "$tmp/comp_sse" > /dev/null
check 'py - "$tmp/comp_sse" "$tmp/comp_lp" <<EOF
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
chunks = [json.loads(l)["choices"][0] for l in lines[:-1]]
toks, text = [], ""
for c in chunks:
    if c.get("logprobs"):
        assert "".join(c["logprobs"]["tokens"]) == c["text"]
        toks += c["logprobs"]["tokens"]
    text += c["text"]
want = json.load(open(sys.argv[2]))["choices"][0]
assert text == want["text"] and toks == want["logprobs"]["tokens"]
EOF' "streamed completion logprobs"
# a stop string: entries of tokens wholly inside the cut are dropped, the rest cover the text
check '[ "$(req /v1/completions "{$comp,\"logprobs\":1,\"stop\":[\"the\"]}")" = 200 ] && py -c "
import json; c = json.load(open(\"$tmp/r\"))[\"choices\"][0]
t = \"\".join(c[\"logprobs\"][\"tokens\"])
assert c[\"finish_reason\"] == \"stop\" and t.startswith(c[\"text\"]) and \"the\" not in c[\"text\"], c
assert len(t) - len(c[\"text\"]) < 16, c"' "logprobs with a stop string: $(cat $tmp/r 2>/dev/null)"

# ---- logprobs: Ollama (logprobs, top_logprobs; entries in the records with their text) ----------
og='"prompt":"A dictionary maps","options":{"temperature":0,"num_predict":12},"logprobs":true,"top_logprobs":3'
check '[ "$(req /api/generate "{$og,\"stream\":false}" "$tmp/oll_lp")" = 200 ] && py - "$tmp/oll_lp" <<EOF
import json, sys
j = json.load(open(sys.argv[1]))
lp = j["logprobs"]
assert len(lp) == j["eval_count"] == 12 and "".join(e["token"] for e in lp) == j["response"]
for e in lp:
    t = e["top_logprobs"]
    assert e["logprob"] <= 0 and len(t) == 3 and t[0]["token"] == e["token"]
    assert t[0]["logprob"] >= t[1]["logprob"] >= t[2]["logprob"]
EOF' "Ollama generate logprobs: $(head -c 600 $tmp/oll_lp 2>/dev/null)"
req /api/generate "{$og}" "$tmp/oll_stream" > /dev/null
check 'py - "$tmp/oll_stream" "$tmp/oll_lp" <<EOF
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
entries = [e for r in recs for e in r.get("logprobs", [])]
want = json.load(open(sys.argv[2]))
assert "".join(r["response"] for r in recs) == want["response"] and entries == want["logprobs"]
EOF' "Ollama streamed logprobs"

# ---- logit_bias ----------------------------------------------------------------------------------
first=$(py -c "import json; print(json.load(open('$tmp/comp_lp'))['choices'][0]['logprobs']['tokens'][0])")
# the ids that may be that token: its text tokenized with and without the leading space
ids=$(for t in "$first" "${first# }"; do
    curl -s -X POST "http://127.0.0.1:$PORT/tokenize" --data-binary \
        "$(py -c 'import json,sys; print(json.dumps({"content": sys.argv[1], "add_special": False}))' "$t")"
done | py -c "import json,sys; print(' '.join(str(i) for l in sys.stdin.read().replace('}{','}\n{').splitlines() for i in json.loads(l)['tokens']))")
ban=$(py -c "import json,sys; print(json.dumps({i: -100 for i in sys.argv[1:]}))" $ids)
check '[ "$(req /v1/completions "{$comp,\"logprobs\":0,\"logit_bias\":$ban}")" = 200 ] && py -c "
import json; c = json.load(open(\"$tmp/r\"))[\"choices\"][0]
assert c[\"logprobs\"][\"tokens\"][0] != \"$first\", c"' "logit_bias -100 on '$first' ($ids): $(cat $tmp/r 2>/dev/null)"
force=$(curl -s -X POST "http://127.0.0.1:$PORT/tokenize" --data-binary '{"content":"Python","add_special":false}' |
    py -c "import json,sys; print(json.load(sys.stdin)['tokens'][-1])")
check '[ "$(req /v1/completions "{\"prompt\":\"A dictionary maps\",\"temperature\":0,\"max_tokens\":6,\"logprobs\":0,\"logit_bias\":{\"$force\":100}}")" = 200 ] && py -c "
import json; c = json.load(open(\"$tmp/r\"))[\"choices\"][0]
t = c[\"logprobs\"][\"tokens\"]
assert len(t) == 6 and len(set(t)) == 1 and t[0] != \"$first\" and \"Python\".endswith(t[0].strip()), c"' \
    "logit_bias +100 forces token $force: $(cat $tmp/r 2>/dev/null)"

# ---- presence / frequency penalties ---------------------------------------------------------------
rep='"prompt":"The list type","max_tokens":80,"temperature":0,"logprobs":0'
req /v1/completions "{$rep}" "$tmp/plain" > /dev/null
check '[ "$(req /v1/completions "{$rep,\"frequency_penalty\":1.5,\"presence_penalty\":1}")" = 200 ] && py - "$tmp/plain" "$tmp/r" <<EOF
import json, sys
a, b = (json.load(open(f))["choices"][0] for f in sys.argv[1:])
ta, tb = a["logprobs"]["tokens"], b["logprobs"]["tokens"]
assert a["text"] != b["text"]
assert len(set(tb)) / len(tb) > len(set(ta)) / len(ta), (len(set(ta)), len(ta), len(set(tb)), len(tb))
EOF' "penalties reduce repetition: $(head -c 400 $tmp/r 2>/dev/null)"
check '[ "$(req /api/generate "{\"prompt\":\"The list type\",\"stream\":false,\"options\":{\"num_predict\":40,\"temperature\":0,\"frequency_penalty\":1.5,\"presence_penalty\":1}}")" = 200 ] && [ "$(req /api/generate "{\"prompt\":\"The list type\",\"stream\":false,\"options\":{\"num_predict\":40,\"temperature\":0}}" $tmp/r2)" = 200 ] && py -c "
import json; a = json.load(open(\"$tmp/r\")); b = json.load(open(\"$tmp/r2\"))
assert a[\"response\"] != b[\"response\"]"' "Ollama options penalties: $(cat $tmp/r 2>/dev/null)"

# ---- JSON mode -------------------------------------------------------------------------------------
n_obj=0
for seed in 1 2 3 4; do
    req /api/generate "{\"prompt\":\"Describe a list\",\"format\":\"json\",\"stream\":false,\"options\":{\"seed\":$seed,\"num_predict\":200}}" > /dev/null
    if py -c "import json; r = json.load(open('$tmp/r')); assert r['done_reason'] == 'stop'; assert isinstance(json.loads(r['response']), dict)" 2>/dev/null; then
        n_obj=$((n_obj + 1))
    else
        py -c "import json; r = json.load(open('$tmp/r')); assert r['done_reason'] == 'length'" 2>/dev/null || bad "format json seed $seed: $(cat $tmp/r 2>/dev/null)"
    fi
done
check '[ $n_obj -ge 2 ]' "Ollama format json gave $n_obj objects of 4"
n_plain=0
for seed in 1 2 3 4; do
    req /api/generate "{\"prompt\":\"Describe a list\",\"stream\":false,\"options\":{\"seed\":$seed,\"num_predict\":200}}" > /dev/null
    py -c "import json; json.loads(json.load(open('$tmp/r'))['response'])" 2>/dev/null && n_plain=$((n_plain + 1))
done
check '[ $n_plain -le 1 ]' "without format, $n_plain of 4 outputs were JSON"
check '[ "$(req /api/chat "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"format\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}},\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":200}}")" = 200 ] && py -c "
import json; r = json.load(open(\"$tmp/r\")); assert r[\"done_reason\"] == \"length\" or isinstance(json.loads(r[\"message\"][\"content\"]), dict)"' \
    "Ollama format schema: $(cat $tmp/r 2>/dev/null)"
for seed in 5 6; do
    check '[ "$(req /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"Give JSON\"}],\"response_format\":{\"type\":\"json_object\"},\"seed\":$seed,\"max_tokens\":200,\"stream\":true}")" = 200 ] && py - "$tmp/r" <<EOF
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
chunks = [json.loads(l)["choices"][0] for l in lines[:-1]]
text = "".join(c["delta"].get("content", "") for c in chunks)
if chunks[-1]["finish_reason"] == "stop":
    assert isinstance(json.loads(text), dict), text
else:
    assert chunks[-1]["finish_reason"] == "length"
EOF' "response_format json_object (stream, seed $seed): $(head -c 600 $tmp/r 2>/dev/null)"
done

# ---- bad values -------------------------------------------------------------------------------------
badreq() { # PATH BODY PARAM
    local st
    st=$(req "$1" "$2")
    if [ "$st" = 400 ] && py -c "import json,sys; e = json.load(open(sys.argv[1]))['error']; assert e['param'] == sys.argv[2] and e['type'] == 'invalid_request_error' and e['message']" "$tmp/r" "$3"; then
        ok
    else
        bad "$2 -> $st $(cat $tmp/r 2>/dev/null)"
    fi
}
badreq /v1/completions "{$comp,\"logit_bias\":{\"abc\":1}}" logit_bias
badreq /v1/completions "{$comp,\"logit_bias\":{\"5\":101}}" logit_bias
badreq /v1/completions "{$comp,\"logit_bias\":{\"99999\":1}}" logit_bias
badreq /v1/completions "{$comp,\"logprobs\":6}" logprobs
badreq /v1/chat/completions "{$chat,\"logprobs\":true,\"top_logprobs\":21}" top_logprobs
badreq /v1/chat/completions "{$chat,\"top_logprobs\":2}" top_logprobs
badreq /v1/chat/completions "{$chat,\"response_format\":{\"type\":\"xml\"}}" response_format
badreq /v1/chat/completions "{$chat,\"presence_penalty\":3}" presence_penalty
check '[ "$(req /api/generate "{\"prompt\":\"x\",\"format\":\"yaml\"}")" = 400 ] && py -c "import json; assert \"format\" in json.load(open(\"$tmp/r\"))[\"error\"]"' \
    "Ollama format yaml: $(cat $tmp/r 2>/dev/null)"

kill "$SPID" 2>/dev/null
wait "$SPID" 2>/dev/null
finish test_server_sampling
