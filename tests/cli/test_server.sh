#!/usr/bin/env bash
# Daemon tests against a real `mlxr serve` with the bundled pydoc-7M model: every endpoint over
# curl, JSON checked with python3. Greedy completions must equal llama.cpp's reference text;
# streamed output must concatenate to the non-streamed output for the same seed; error paths
# give the right status and error shape; API keys, CORS, the Unix socket, the request table,
# cancellation by disconnect, the queue limit, the registry, and a clean SIGTERM shutdown;
# continuous batching (32 concurrent clients equal to each run alone, disconnects free the KV
# pool as /metrics shows) through tests/server/concurrency.py.
# Then the official `openai` and `ollama` npm clients (tests/server/clients) when npm exists.
# usage: test_server.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
need curl python3

# req METHOD PATH [BODY] [CURL ARGS...]: writes the body to $tmp/r, prints the status code
req() {
    local m=$1 p=$2 body=${3-}
    shift 3 2>/dev/null || shift $#
    if [ -n "$body" ]; then
        curl -s -o "$tmp/r" -w '%{http_code}' -X "$m" -H 'Content-Type: application/json' \
            --data-binary "$body" "$@" "http://127.0.0.1:$PORT$p"
    else
        curl -s -o "$tmp/r" -w '%{http_code}' -X "$m" "$@" "http://127.0.0.1:$PORT$p"
    fi
}

# ---- main server: a fresh home, the bundled default model, a Unix socket, CORS ------------------
HOME_DIR=$tmp/home
SOCK=$tmp/mlxr.sock
start_server main --home "$HOME_DIR" --socket "$SOCK" --cors http://allowed.example \
    --max-body 65536 || exit 1

check '[ "$(req GET /health)" = 200 ] && json $tmp/r "j[\"status\"] == \"ok\""' "/health"
check '[ "$(req GET /v1/models)" = 200 ] && json $tmp/r "j[\"object\"] == \"list\" and any(m[\"id\"] == \"pydoc-7M-q8_0:latest\" for m in j[\"data\"])"' \
    "/v1/models lists the default model: $(cat $tmp/r)"

# greedy completion == llama.cpp's reference text for the bundled model
ref=$DATA/reference/pydoc-7M-q8_0__dict_maps.ref
hdr=$(head -n 3 "$ref" | wc -c)
tail -c +$((hdr + 1)) "$ref" > "$tmp/want"
st=$(req POST /v1/completions '{"prompt":"A dictionary maps","max_tokens":41,"temperature":0}')
py -c "import json,sys; sys.stdout.write(json.load(open('$tmp/r'))['choices'][0]['text'])" > "$tmp/got" 2>/dev/null
check '[ "$st" = 200 ] && cmp -s "$tmp/want" "$tmp/got"' "greedy /v1/completions differs from the reference: $(cat $tmp/r)"
check 'json $tmp/r "j[\"object\"] == \"text_completion\" and j[\"choices\"][0][\"finish_reason\"] == \"length\" and j[\"usage\"][\"completion_tokens\"] == 41 and j[\"usage\"][\"prompt_tokens\"] > 0 and j[\"usage\"][\"total_tokens\"] == j[\"usage\"][\"prompt_tokens\"] + 41"' \
    "completion usage/finish_reason: $(cat $tmp/r)"
check '[ "$(req POST /v1/completions "{\"prompt\":\"A dictionary maps\"}")" = 200 ] && json $tmp/r "j[\"usage\"][\"completion_tokens\"] == 16"' \
    "completions default to 16 tokens"

# stop string: the reference text cut before it, never shown, finish_reason "stop" (also streamed)
stop=$(py -c "t=open('$tmp/want').read(); print(t[20:27])")
cut=$(py -c "t=open('$tmp/want').read(); s=t[20:27]; print(len(t[:t.index(s)]))")
body=$(py -c "import json; print(json.dumps({'prompt':'A dictionary maps','max_tokens':41,'temperature':0,'stop':[open('$tmp/want').read()[20:27]]}))")
req POST /v1/completions "$body" > /dev/null
check 'json $tmp/r "j[\"choices\"][0][\"finish_reason\"] == \"stop\" and j[\"choices\"][0][\"text\"] == open(\"$tmp/want\").read()[:$cut]"' \
    "stop string '$stop': $(cat $tmp/r)"
sbody=$(py -c "import json,sys; d=json.loads(sys.argv[1]); d['stream']=True; print(json.dumps(d))" "$body")
req POST /v1/completions "$sbody" > /dev/null
check 'py - "$tmp/r" "$tmp/want" $cut <<EOF
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "[DONE]"
chunks = [json.loads(l) for l in lines[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks)
assert text == open(sys.argv[2]).read()[:int(sys.argv[3])], repr(text)
assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
EOF' "streamed stop string"

# OpenAI presence/frequency penalties of zero change nothing (non-zero values: test_server_sampling.sh)
check '[ "$(req POST /v1/completions "{\"prompt\":\"A dictionary maps\",\"max_tokens\":41,\"temperature\":0,\"frequency_penalty\":0,\"presence_penalty\":0}")" = 200 ] && json $tmp/r "j[\"choices\"][0][\"text\"] == open(\"$tmp/want\").read()"' "zero penalties: $(cat $tmp/r)"

# chat: streamed == non-streamed for the same seed; usage chunk with include_usage
chat='{"messages":[{"role":"system","content":"You write about Python."},{"role":"user","content":"Explain lists."}],"max_tokens":48,"temperature":0.9,"seed":1234}'
req POST /v1/chat/completions "$chat" > /dev/null
cp "$tmp/r" "$tmp/chat_full"
check 'json $tmp/chat_full "j[\"object\"] == \"chat.completion\" and j[\"choices\"][0][\"message\"][\"role\"] == \"assistant\" and len(j[\"choices\"][0][\"message\"][\"content\"]) > 0 and j[\"usage\"][\"completion_tokens\"] <= 48"' \
    "chat completion: $(cat $tmp/chat_full)"
schat=$(py -c "import json,sys; d=json.loads(sys.argv[1]); d['stream']=True; d['stream_options']={'include_usage':True}; print(json.dumps(d))" "$chat")
req POST /v1/chat/completions "$schat" > /dev/null
check 'py - "$tmp/r" "$tmp/chat_full" <<EOF
import json, sys
lines = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "[DONE]"
chunks = [json.loads(l) for l in lines[:-1]]
full = json.load(open(sys.argv[2]))
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
assert text == full["choices"][0]["message"]["content"], (text, full)
fin = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
assert fin == [full["choices"][0]["finish_reason"]], fin
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == full["usage"], chunks[-1]
EOF' "streamed chat != non-streamed chat"

# a control token written in a message stays text: "</s>" is one control token with
# parse_special but 4 text tokens here, so the prompt grows by >= 3 tokens, not by 1
ptoks() { req POST /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$1\"}],\"max_tokens\":1}" > /dev/null; py -c "import json; print(json.load(open('$tmp/r'))['usage']['prompt_tokens'])"; }
check '[ "$(req POST /tokenize "{\"content\":\"x</s>y\",\"parse_special\":true}")" = 200 ] && json $tmp/r "2 in j[\"tokens\"]" && [ $(( $(ptoks "x</s>y") - $(ptoks "xy") )) -ge 3 ]' "control-token text in a message is not injected"

# OpenAI error objects and status codes
err_is() { json "$tmp/r" "j['error']['type'] == '$1' and ('$2' == '' or j['error']['code'] == '$2' or j['error']['param'] == '$2') and len(j['error']['message']) > 0"; }
check '[ "$(req POST /v1/chat/completions "{\"messages\": [")" = 400 ] && err_is invalid_request_error ""' "malformed JSON: $(cat $tmp/r)"
check '[ "$(req POST /v1/completions "{\"prompt\": 3}")" = 400 ] && err_is invalid_request_error prompt' "wrong type: $(cat $tmp/r)"
check '[ "$(req POST /v1/completions "{\"prompt\":\"x\",\"n\":2}")" = 400 ] && err_is invalid_request_error n' "n=2: $(cat $tmp/r)"
check '[ "$(req POST /v1/completions "{\"prompt\":\"x\",\"temperature\":-1}")" = 400 ] && err_is invalid_request_error temperature' "temperature: $(cat $tmp/r)"
check '[ "$(req POST /v1/completions "{\"prompt\":\"x\",\"model\":\"no-such-model\"}")" = 404 ] && err_is invalid_request_error model_not_found' "unknown model: $(cat $tmp/r)"
long=$(py -c "import json; print(json.dumps({'prompt': 'the list type ' * 400}))")
check '[ "$(req POST /v1/completions "$long")" = 400 ] && err_is invalid_request_error context_length_exceeded' "prompt longer than the context: $(cat $tmp/r)"
py -c "print('{\"prompt\":\"' + 'a' * 70000 + '\"}')" > "$tmp/big.json"
st=$(curl -s -o "$tmp/r" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$tmp/big.json" "http://127.0.0.1:$PORT/v1/completions")
check '[ "$st" = 413 ] && err_is invalid_request_error request_too_large' "oversized body: $st $(cat $tmp/r)"
check '[ "$(req GET /v1/nothing)" = 404 ]' "unknown endpoint"
check '[ "$(req GET /v1/completions)" = 405 ]' "wrong method"
check '[ "$(req POST /v1/embeddings "{\"input\":\"x\"}")" = 200 ] && json $tmp/r "len(j[\"data\"][0][\"embedding\"]) == 256"' "embeddings: $(cat $tmp/r)"

# Ollama API
check '[ "$(req GET /api/version)" = 200 ] && json $tmp/r "len(j[\"version\"]) > 0"' "/api/version"
check '[ "$(req GET /api/tags)" = 200 ] && json $tmp/r "any(m[\"name\"] == \"pydoc-7M-q8_0:latest\" and m[\"details\"][\"quantization_level\"] == \"Q8_0\" and m[\"size\"] > 0 for m in j[\"models\"])"' "/api/tags: $(cat $tmp/r)"
check '[ "$(req POST /api/show "{\"model\":\"pydoc-7M-q8_0\"}")" = 200 ] && json $tmp/r "j[\"details\"][\"family\"] == \"llama\" and j[\"model_info\"][\"llama.context_length\"] == 512"' "/api/show: $(cat $tmp/r)"
check '[ "$(req POST /api/show "{\"model\":\"nope\"}")" = 404 ] && json $tmp/r "isinstance(j[\"error\"], str)"' "/api/show unknown: $(cat $tmp/r)"
check '[ "$(req GET /api/ps)" = 200 ] && json $tmp/r "j[\"models\"][0][\"name\"] == \"pydoc-7M-q8_0:latest\" and j[\"models\"][0][\"context_length\"] == 512"' "/api/ps: $(cat $tmp/r)"
gen='{"model":"pydoc-7M-q8_0","prompt":"A dictionary maps","stream":false,"options":{"temperature":0,"num_predict":41}}'
check '[ "$(req POST /api/generate "$gen")" = 200 ] && json $tmp/r "j[\"response\"] == open(\"$tmp/want\").read() and j[\"done\"] and j[\"done_reason\"] == \"length\" and j[\"eval_count\"] == 41 and j[\"prompt_eval_count\"] > 0 and j[\"total_duration\"] >= j[\"eval_duration\"] > 0"' \
    "/api/generate greedy == reference: $(cat $tmp/r)"
req POST /api/generate '{"prompt":"A dictionary maps","options":{"temperature":0,"num_predict":41}}' > /dev/null
check 'py - "$tmp/r" "$tmp/want" <<EOF
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
assert all(not r["done"] for r in recs[:-1]) and recs[-1]["done"]
assert "".join(r["response"] for r in recs) == open(sys.argv[2]).read()
assert recs[-1]["eval_count"] == 41 and recs[-1]["done_reason"] == "length"
EOF' "/api/generate NDJSON stream"
ochat='{"messages":[{"role":"user","content":"What is a tuple?"}],"options":{"seed":99,"temperature":0.7,"num_predict":40}}'
req POST /api/chat "$ochat" > /dev/null
cp "$tmp/r" "$tmp/ochat_stream"
req POST /api/chat "$(py -c "import json,sys; d=json.loads(sys.argv[1]); d['stream']=False; print(json.dumps(d))" "$ochat")" > /dev/null
check 'py - "$tmp/ochat_stream" "$tmp/r" <<EOF
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
full = json.load(open(sys.argv[2]))
text = "".join(r["message"]["content"] for r in recs)
assert text == full["message"]["content"] and full["message"]["role"] == "assistant", (text, full)
assert recs[-1]["done"] and recs[-1]["eval_count"] == full["eval_count"]
EOF' "/api/chat streamed != non-streamed"
check '[ "$(req POST /api/chat "{\"model\":\"nope\",\"messages\":[]}")" = 404 ] && json $tmp/r "isinstance(j[\"error\"], str)"' "Ollama error shape: $(cat $tmp/r)"
check '[ "$(req POST /api/generate "{\"model\":\"pydoc-7M-q8_0\"}")" = 200 ] && json $tmp/r "j[\"done\"] and j[\"done_reason\"] == \"load\""' "Ollama load request"

# tokenize / detokenize (ids as in tests/cli/test_cli.sh)
check '[ "$(req POST /tokenize "{\"content\":\"In Python 3.11, the\"}")" = 200 ] && json $tmp/r "j[\"tokens\"] == [1, 728, 436, 3894, 3949, 3912, 3936, 3936, 3917, 269]"' "/tokenize: $(cat $tmp/r)"
check '[ "$(req POST /detokenize "{\"tokens\":[728, 436, 3894, 3949, 3912, 3936, 3936, 3917, 269]}")" = 200 ] && json $tmp/r "j[\"content\"] == \" In Python 3.11, the\""' "/detokenize: $(cat $tmp/r)"
check '[ "$(req POST /detokenize "{\"tokens\":[99999999]}")" = 400 ]' "/detokenize out of range"
# /apply-template: pydoc-7M has no template, so the library's ChatML default applies (spelled out)
check '[ "$(req POST /apply-template "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi \u00e9\"}]}")" = 200 ] && json $tmp/r "j[\"prompt\"] == \"<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nHi \u00e9<|im_end|>\\n<|im_start|>assistant\\n\""' "/apply-template: $(cat $tmp/r)"
check '[ "$(req POST /apply-template "{\"messages\":3}")" = 400 ]' "/apply-template bad body"

# CORS
st=$(curl -s -o /dev/null -D "$tmp/h" -w '%{http_code}' -X OPTIONS -H 'Origin: http://allowed.example' \
    -H 'Access-Control-Request-Method: POST' "http://127.0.0.1:$PORT/v1/chat/completions")
check '[ "$st" = 204 ] && grep -qi "^access-control-allow-origin: http://allowed.example" "$tmp/h" && grep -qi "^access-control-allow-headers:.*authorization" "$tmp/h"' "CORS preflight"
curl -s -o /dev/null -D "$tmp/h" -H 'Origin: http://evil.example' "http://127.0.0.1:$PORT/v1/models"
check '! grep -qi "^access-control-allow-origin" "$tmp/h"' "CORS header for a foreign origin"

# Unix socket (0600)
check '[ "$(stat -c %a "$SOCK")" = 600 ]' "socket mode $(stat -c %a "$SOCK")"
check 'curl -s --unix-socket "$SOCK" http://localhost/health | grep -q ok' "health over the Unix socket"

# request table, cancel by id, cancel by disconnect
long_req='{"prompt":"The list type","max_tokens":400,"temperature":0.8,"seed":5}'
curl -s -o "$tmp/cancelled" -H 'Content-Type: application/json' --data-binary "$long_req" "http://127.0.0.1:$PORT/v1/completions" &
cpid=$!
id=""
for _ in $(seq 1 100); do
    req GET /v1/requests > /dev/null
    id=$(py -c "import json; d=json.load(open('$tmp/r'))['data']; print(d[0]['id'] if d else '')" 2>/dev/null)
    [ -n "$id" ] && break
    sleep 0.05
done
check '[ -n "$id" ] && [ "$(req POST /v1/requests/$id/cancel)" = 200 ]' "cancel by id ($id)"
wait $cpid
check 'json $tmp/cancelled "j[\"choices\"][0][\"finish_reason\"] == \"cancelled\" and j[\"usage\"][\"completion_tokens\"] < 400"' "cancelled request: $(cat $tmp/cancelled)"
check '[ "$(req POST /v1/requests/999999/cancel)" = 404 ]' "cancel unknown id"
sbody=$(py -c "import json,sys; d=json.loads(sys.argv[1]); d['stream']=True; print(json.dumps(d))" "$long_req")
curl -s -N --max-time 0.5 -o /dev/null -H 'Content-Type: application/json' --data-binary "$sbody" "http://127.0.0.1:$PORT/v1/completions"
gone=0
for _ in $(seq 1 100); do
    req GET /v1/requests > /dev/null
    json "$tmp/r" "j['data'] == []" && { gone=1; break; }
    sleep 0.05
done
check '[ $gone = 1 ]' "a client that disconnects mid-stream does not keep its generation: $(cat $tmp/r)"

# metrics
check '[ "$(req GET /metrics)" = 200 ] && grep -q "^mlxr_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"}" $tmp/r && grep -q "^mlxr_generated_tokens_total [1-9]" $tmp/r && grep -q "^mlxr_time_to_first_token_seconds_count [1-9]" $tmp/r && grep -q "^mlxr_loaded_models 1" $tmp/r' "/metrics"
check 'grep -q "POST /v1/completions 200" "$tmp/main.log"' "access log line"
check 'grep -q "^mlxr_kv_blocks{model=\"pydoc-7M-q8_0:latest\",state=\"free\"} [0-9]" $tmp/r && grep -q "^mlxr_engine_running{model=\"pydoc-7M-q8_0:latest\"} 0" $tmp/r && grep -q "^mlxr_prefix_cache_hit_ratio{model=\"pydoc-7M-q8_0:latest\"} [0-9.]*$" $tmp/r' "/metrics engine series: $(grep engine_running $tmp/r)"

# continuous batching: 32 streaming clients at once, each text equal to the same greedy request
# run alone; then 32 long streams of which half hang up after 3 chunks: the others finish and the
# KV pool's used blocks return to their idle level (GET /metrics)
check 'py "$HERE/../server/concurrency.py" $PORT same 32 >&2' "32 concurrent clients (details above)"
check 'py "$HERE/../server/concurrency.py" $PORT disconnect 32 >&2' "disconnects free the KV pool (details above)"

# registry: import a second model; the running server finds it by name
"$MLXR" import "$DATA/models/stories260K.gguf" --name tiny:v1 --home "$HOME_DIR" > "$tmp/imp" 2>&1
check 'grep -q "imported tiny:v1" "$tmp/imp"' "mlxr import: $(cat $tmp/imp)"
check '"$MLXR" list --home "$HOME_DIR" | grep -q "^tiny:v1 "' "mlxr list"
check '"$MLXR" show tiny:v1 --home "$HOME_DIR" | grep -q "architecture: *llama"' "mlxr show"
check '[ "$(req POST /v1/completions "{\"model\":\"tiny:v1\",\"prompt\":\"Once upon a time\",\"max_tokens\":5}")" = 200 ] && json $tmp/r "j[\"model\"] == \"tiny:v1\" and j[\"usage\"][\"completion_tokens\"] > 0"' "generate with an imported model: $(cat $tmp/r)"
check '! "$MLXR" import /nonexistent.gguf --name x --home "$HOME_DIR" 2>/dev/null' "import of a missing file fails"
# pull by URL (libcurl) from a local HTTP server (python3 -m http.server on a free port)
mkdir -p "$tmp/www" && cp "$DATA/models/stories260K.gguf" "$tmp/www/"
py -m http.server 0 --bind 127.0.0.1 --directory "$tmp/www" > "$tmp/www.log" 2>&1 &
pids+=($!)
WWW=""
for _ in $(seq 100); do
    WWW=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$tmp/www.log" | head -n 1)
    [ -n "$WWW" ] && break
    sleep 0.1
done
check '"$MLXR" pull "http://127.0.0.1:$WWW/stories260K.gguf?x=1" --home "$HOME_DIR" > "$tmp/pull" 2>&1 && grep -q "imported stories260K:latest" "$tmp/pull"' "pull of an http URL: $(cat $tmp/pull)"
check '[ -z "$(ls "$HOME_DIR/models/tmp")" ]' "pull leaves no temporary file"
check '! "$MLXR" pull "http://127.0.0.1:$WWW/missing.gguf" --home "$HOME_DIR" 2> "$tmp/pull" && grep -q "HTTP 404" "$tmp/pull" && ! "$MLXR" list --home "$HOME_DIR" | grep -q "^missing"' "pull of a missing URL: $(cat $tmp/pull)"
check '! "$MLXR" pull "ftp://127.0.0.1/x.gguf" --home "$HOME_DIR" 2>/dev/null' "pull of an ftp URL says no"
check '"$MLXR" pull "file://$DATA/models/stories260K.gguf" --name tiny:v2 --home "$HOME_DIR" > /dev/null' "pull of a local file"

# chat through the model's own template: the bundled model with a tokenizer.chat_template added
# (tests/server/gguf_set_template.py). Prompt ids == the Python jinja2 rendering tokenized with
# special tokens; raise_exception -> 400 with its message; a message holding "</s>" stays text
# (4 + 5 + 6 ids, not the 1 control token) and, where the template trims contents so the text
# cannot be located, the request is refused
printf '%s' "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role, please') }}{% endif %}[{{ m['role'] }}]{{ m['content'] | trim }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}" > "$tmp/tmpl.jinja"
py "$HERE/../server/gguf_set_template.py" "$HERE/../../models/pydoc-7M-q8_0.gguf" "$tmp/tmpl.gguf" "$tmp/tmpl.jinja" &&
    "$MLXR" import "$tmp/tmpl.gguf" --name tmpl:t --home "$HOME_DIR" > /dev/null
tchat() { req POST /v1/chat/completions "{\"model\":\"tmpl:t\",\"messages\":[$1],\"max_tokens\":2}"; }
ntok() { req POST /tokenize "$(py -c 'import json,sys; print(json.dumps({"model":"tmpl:t","content":sys.argv[1],"parse_special":sys.argv[2]=="1","add_special":False}))' "$1" "$2")" > /dev/null; py -c "import json; print(len(json.load(open('$tmp/r'))['tokens']))"; }
want=$(ntok "$(py -c "import jinja2; print(jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(open('$tmp/tmpl.jinja').read()).render(messages=[{'role':'user','content':' Explain lists. '}], bos_token='<s>', eos_token='</s>', add_generation_prompt=True), end='')")" 1)
check '[ "$(tchat "{\"role\":\"user\",\"content\":\" Explain lists. \"}")" = 200 ] && json $tmp/r "j[\"usage\"][\"prompt_tokens\"] == $want"' "the model's template renders the prompt ($want ids): $(cat $tmp/r)"
check '[ "$(req POST /api/generate "{\"model\":\"tmpl:t\",\"prompt\":\" Explain lists. \",\"stream\":false,\"options\":{\"num_predict\":2}}")" = 200 ] && json $tmp/r "j[\"prompt_eval_count\"] == $want"' "/api/generate uses the model's template: $(cat $tmp/r)"
raw_want=$(( $(ntok "Explain lists." 0) + 1 ))
check '[ "$(req POST /api/generate "{\"model\":\"tmpl:t\",\"prompt\":\"Explain lists.\",\"raw\":true,\"stream\":false,\"options\":{\"num_predict\":2}}")" = 200 ] && json $tmp/r "j[\"prompt_eval_count\"] == $raw_want"' "/api/generate raw skips it (BOS + $((raw_want - 1)) ids)"
check '[ "$(tchat "{\"role\":\"system\",\"content\":\"S\"}")" = 400 ] && json $tmp/r "j[\"error\"][\"message\"] == \"chat template: no system role, please\""' "template error -> 400: $(cat $tmp/r)"
want=$(( $(ntok "<s>[user]" 1) + $(ntok "x</s>y" 0) + $(ntok "</s>[assistant]" 1) ))
check '[ "$(tchat "{\"role\":\"user\",\"content\":\"x</s>y\"}")" = 200 ] && json $tmp/r "j[\"usage\"][\"prompt_tokens\"] == $want"' "control-token text in a message stays text ($want ids): $(cat $tmp/r)"
check '[ "$(tchat "{\"role\":\"user\",\"content\":\" x</s>y \"}")" = 400 ]' "control-token text the template alters is refused: $(cat $tmp/r)"

# Ollama model management on the registry: copy, delete, pull (local files), create (FROM)
check '[ "$(req POST /api/copy "{\"source\":\"tiny:v1\",\"destination\":\"tiny:copy\"}")" = 200 ] && [ "$(req GET /api/tags)" = 200 ] && json $tmp/r "any(m[\"name\"] == \"tiny:copy\" for m in j[\"models\"])"' "/api/copy: $(cat $tmp/r)"
check '[ "$(req POST /api/copy "{\"source\":\"nope\",\"destination\":\"x\"}")" = 404 ]' "/api/copy of an unknown model"
check '[ "$(req POST /v1/completions "{\"model\":\"tiny:copy\",\"prompt\":\"Once\",\"max_tokens\":2}")" = 200 ] && [ "$(req DELETE /api/delete "{\"model\":\"tiny:copy\"}")" = 200 ] && [ "$(req GET /api/tags)" = 200 ] && json $tmp/r "not any(m[\"name\"] == \"tiny:copy\" for m in j[\"models\"])" && [ "$(req POST /v1/completions "{\"model\":\"tiny:copy\",\"prompt\":\"Once\"}")" = 404 ]' "/api/delete: $(cat $tmp/r)"
check '[ "$(req DELETE /api/delete "{\"model\":\"tiny:copy\"}")" = 404 ]' "/api/delete of a missing model"
check '[ "$(req POST /api/pull "{\"model\":\"file://$DATA/models/stories260K.gguf\",\"as\":\"tiny:pulled\"}")" = 200 ] && py -c "import json; r=[json.loads(l) for l in open(\"$tmp/r\").read().splitlines()]; assert r[-1] == {\"status\": \"success\"} and len(r) > 1"' "/api/pull of a local file (NDJSON): $(cat $tmp/r)"
check '[ "$(req POST /api/pull "{\"model\":\"tiny:pulled\",\"stream\":false}")" = 200 ] && json $tmp/r "j == {\"status\": \"success\"}"' "/api/pull of an installed model"
check '[ "$(req POST /api/pull "{\"model\":\"llama3.2\"}")" = 404 ] && json $tmp/r "\"no model library\" in j[\"error\"]"' "/api/pull of a bare name says no: $(cat $tmp/r)"
check '[ "$(req POST /api/pull "{\"model\":\"http://127.0.0.1:$WWW/stories260K.gguf\",\"as\":\"tiny:http\",\"stream\":false}")" = 200 ] && json $tmp/r "j == {\"status\": \"success\"}" && "$MLXR" list --home "$HOME_DIR" | grep -q "^tiny:http "' "/api/pull of an http URL: $(cat $tmp/r)"
check '[ "$(req POST /api/pull "{\"model\":\"http://127.0.0.1:$WWW/nope.gguf\"}")" = 502 ] && json $tmp/r "\"HTTP 404\" in j[\"error\"]"' "/api/pull of a missing URL: $(cat $tmp/r)"
check '[ "$(req POST /api/create "{\"model\":\"tiny:made\",\"modelfile\":\"FROM tiny:v1\\n\",\"stream\":false}")" = 200 ] && json $tmp/r "j[\"status\"] == \"success\"" && [ "$(req POST /api/generate "{\"model\":\"tiny:made\",\"prompt\":\"Once\",\"stream\":false,\"options\":{\"num_predict\":2}}")" = 200 ]' "/api/create FROM an installed model: $(cat $tmp/r)"
check '[ "$(req POST /api/create "{\"model\":\"tiny:made2\",\"from\":\"$DATA/models/stories260K.gguf\"}")" = 200 ] && [ "$(req POST /api/create "{\"model\":\"x\",\"from\":\"/nonexistent.gguf\"}")" = 404 ]' "/api/create from a path: $(cat $tmp/r)"

# official clients (openai + ollama npm packages)
if command -v npm > /dev/null && command -v node > /dev/null; then
    cdir=$HERE/../server/clients
    if [ ! -d "$cdir/node_modules" ]; then
        (cd "$cdir" && npm ci --no-audit --no-fund > "$tmp/npm.log" 2>&1) || bad "npm ci failed: $(tail -5 "$tmp/npm.log")"
    fi
    if node "$cdir/clients.mjs" "http://127.0.0.1:$PORT" > "$tmp/clients.log" 2>&1; then ok
    else bad "official clients: $(cat "$tmp/clients.log")"; fi
else
    echo "test_server.sh: npm not found, skipping the official client test" >&2
fi

# SIGTERM: clean exit, socket removed
kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
check '[ $rc = 0 ] && grep -q "stopped" "$tmp/main.log" && [ ! -e "$SOCK" ]' "SIGTERM shutdown (rc $rc)"

# ---- second server: API keys (flag, environment, config file) and a queue of one ----------------
printf '# test config\napi-key = "key-d"\nmax-queue = 4\n' > "$tmp/mlxr.conf"
MLXR_API_KEY="key-b, key-c" start_server auth --home "$HOME_DIR" --config "$tmp/mlxr.conf" \
    --api-key key-a --max-queue 1 --parallel 1 || exit 1
check '[ "$(req GET /health)" = 200 ]' "/health needs no key"
check '[ "$(req GET /v1/models)" = 401 ] && err_is authentication_error ""' "401 without a key: $(cat $tmp/r)"
check '[ "$(req GET /api/tags "" -H "Authorization: Bearer nope")" = 401 ] && json $tmp/r "isinstance(j[\"error\"], str)"' "401 with a wrong key (Ollama shape)"
check '[ "$(req GET /metrics "" -H "Authorization: Bearer key-a")" = 200 ]' "--api-key key"
check '[ "$(req GET /v1/models "" -H "Authorization: Bearer key-c")" = 200 ]' "MLXR_API_KEY key"
check '[ "$(req GET /v1/models "" -H "Authorization: Bearer key-d")" = 200 ]' "config file key"
check '[ "$(req POST /v1/completions "{\"prompt\":\"x\",\"max_tokens\":1}" -H "Authorization: Bearer key-b")" = 200 ]' "completion with a key"
# one running + one queued, then a third is refused with 429 + Retry-After. The running request
# (400 tokens of a 7M model) may finish before the third is sent on an idle fast machine, and the
# third is then queued, not refused: up to 3 attempts, each after the earlier requests are done.
long_max=$(py -c "import json,sys; d=json.loads(sys.argv[1]); d['max_tokens']=500; print(json.dumps(d))" "$long_req")
for attempt in 1 2 3; do
    qpids=()
    for want in running queued; do
        curl -s -o /dev/null -H 'Authorization: Bearer key-a' --data-binary "$long_max" "http://127.0.0.1:$PORT/v1/completions" &
        qpids+=("$!")
        for _ in $(seq 1 100); do
            req GET /v1/requests "" -H "Authorization: Bearer key-a" > /dev/null
            json "$tmp/r" "any(r['state'] == '$want' for r in j['data'])" && break
            sleep 0.05
        done
    done
    st=$(curl -s -o "$tmp/r" -D "$tmp/h" -w '%{http_code}' -H 'Authorization: Bearer key-a' --data-binary "$long_max" "http://127.0.0.1:$PORT/v1/completions")
    [ "$st" = 429 ] && { pids+=("${qpids[@]}"); break; }
    wait "${qpids[@]}"
done
check '[ "$st" = 429 ] && grep -qi "^retry-after:" "$tmp/h" && json $tmp/r "j[\"error\"][\"code\"] == \"queue_full\""' "queue full: $st $(cat $tmp/r)"
kill -INT "$SPID"
rc=0
wait "$SPID" || rc=$?
check '[ $rc = 0 ]' "SIGINT with requests in flight (rc $rc)"

# ---- third server: --model preloads an installed model and makes it the default ----------------
# (and with --max-loaded 1, loading another model unloads the least recently used idle one;
# keep_alive 0 unloads at once)
start_server preload --home "$HOME_DIR" --model tiny:v1 --max-loaded 1 || exit 1
check '[ "$(req GET /api/ps)" = 200 ] && json $tmp/r "[m[\"name\"] for m in j[\"models\"]] == [\"tiny:v1\"]"' "preloaded before any request: $(cat $tmp/r)"
check '[ "$(req POST /v1/completions "{\"prompt\":\"Once\",\"max_tokens\":3}")" = 200 ] && json $tmp/r "j[\"model\"] == \"tiny:v1\""' "--model is the default: $(cat $tmp/r)"
check '[ "$(req POST /api/generate "{\"model\":\"tiny:v2\",\"prompt\":\"Once\",\"stream\":false,\"options\":{\"num_predict\":2}}")" = 200 ] && [ "$(req GET /api/ps)" = 200 ] && json $tmp/r "[m[\"name\"] for m in j[\"models\"]] == [\"tiny:v2\"]"' "--max-loaded 1 unloads the LRU model: $(cat $tmp/r)"
check '[ "$(req POST /api/generate "{\"model\":\"tiny:v2\",\"keep_alive\":0}")" = 200 ] && json $tmp/r "j[\"done_reason\"] == \"unload\"" && [ "$(req GET /api/ps)" = 200 ] && json $tmp/r "j[\"models\"] == []"' "keep_alive 0 unloads: $(cat $tmp/r)"
check '[ "$(req POST /api/generate "{\"model\":\"tiny:v2\",\"keep_alive\":\"soon\"}")" = 400 ]' "bad keep_alive"
check '[ "$(req POST /api/generate "{\"model\":\"tiny:v1\",\"prompt\":\"Once\",\"stream\":false,\"keep_alive\":\"1h\",\"options\":{\"num_predict\":2}}")" = 200 ] && [ "$(req GET /api/ps)" = 200 ] && py -c "import json,datetime as d; m=json.load(open(\"$tmp/r\"))[\"models\"][0]; t=d.datetime.fromisoformat(m[\"expires_at\"].replace(\"Z\",\"+00:00\")); n=d.datetime.now(d.timezone.utc); assert m[\"name\"]==\"tiny:v1\" and 3500 < (t-n).total_seconds() <= 3601, (t, n)"' "keep_alive 1h sets expires_at: $(cat $tmp/r)"
kill -TERM "$SPID"
wait "$SPID"

# ---- a model trained for 16384 positions: that is its context by default (no silent cap), while
# the KV pool is sized for 16 sequences x 4096 positions (2048 blocks of 32) --------------------
"$(dirname "$MLXR")/mlxr-gen-llama" -o "$tmp/long.gguf" --type q8_0 --preset tiny --n-ctx 16384 \
    > /dev/null 2>&1 || bad "mlxr-gen-llama"
start_server long --model "$tmp/long.gguf" --home "$tmp/home_long" || exit 1
check '[ "$(req GET /api/ps)" = 200 ] && json $tmp/r "j[\"models\"][0][\"context_length\"] == 16384"' "full trained context: $(cat $tmp/r)"
check '[ "$(req GET /metrics)" = 200 ] && grep -q "mlxr_kv_blocks{model=\"long:latest\",state=\"free\"} 2048" $tmp/r' "default pool: $(grep kv_blocks $tmp/r)"
kill -TERM "$SPID"
wait "$SPID"

finish test_server
