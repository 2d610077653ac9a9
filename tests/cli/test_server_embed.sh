#!/usr/bin/env bash
# Embedding endpoints of a real `mlxr serve` (bundled pydoc-7M-q8_0) over curl, JSON checked with
# python3: POST /v1/embeddings (text, texts, token ids, arrays of ids; float and base64), POST
# /api/embed (normalized; truncate), POST /api/embeddings (raw). The vectors must equal llama.cpp's
# for the same text (tests/data/embed/pydoc-7M-q8_0.json, written by bench/peer/embed_ref.mjs:
# the last token's final hidden state): cosine >= 0.9999 for the first reference text, >= 0.999
# for every text (quantized activations; see tests/model/test_embed.c); six concurrent requests
# beside a generation give equal vectors. Error cases give 400 / 404 in the OpenAI or Ollama
# error shape, and keep_alive 0 unloads the model afterwards.
# usage: test_server_embed.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
HERE=$(cd "$(dirname "$0")" && pwd)
REF=$HERE/../data/embed/pydoc-7M-q8_0.json
. "$HERE/lib/common.sh"
need curl python3
# check CONDITION MESSAGE [RESPONSE]: on failure the message and the response file's start
check() {
    if eval "$1"; then ok
    else bad "$2${3:+: $(head -c 400 "$tmp/$3" 2>/dev/null)}"; fi
}

# py FILE PYTHON-EXPR: evaluate EXPR with j = the parsed file, ref = the reference JSON and a few
# vector helpers; exit 0 if truthy
py() {
    python3 - "$1" "$REF" "$2" <<'EOF' 2>/dev/null
import base64, json, math, struct, sys
j = json.load(open(sys.argv[1]))
ref = json.load(open(sys.argv[2]))
def norm(v): return math.sqrt(sum(x * x for x in v))
def cos(a, b): return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))
def unit(v): return len(v) == 256 and abs(norm(v) - 1) < 1e-5
def f32(v): return [struct.unpack('<f', struct.pack('<f', x))[0] for x in v]
def b64(s): return list(struct.unpack('<256f', base64.b64decode(s)))
R = [t['embedding'] for t in ref['texts']]
sys.exit(0 if eval(sys.argv[3]) else 1)
EOF
}

start_server server --home "$tmp/home" || exit 1

# req PATH BODY OUT: POST BODY, the response into $tmp/OUT, prints the status code
req() {
    curl -s -o "$tmp/$3" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "$2" "http://127.0.0.1:$PORT$1"
}
T0=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["texts"][0]["text"]))' "$REF")
IDS0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["texts"][0]["tokens"])' "$REF")
ALL=$(python3 -c 'import json,sys; print(json.dumps([t["text"] for t in json.load(open(sys.argv[1]))["texts"]]))' "$REF")

# ---- OpenAI /v1/embeddings
check '[ "$(req /v1/embeddings "{\"input\":$T0,\"encoding_format\":\"float\"}" o1)" = 200 ] &&
       py $tmp/o1 "j[\"object\"] == \"list\" and j[\"model\"] == \"pydoc-7M-q8_0:latest\" and len(j[\"data\"]) == 1 and j[\"data\"][0][\"object\"] == \"embedding\" and j[\"data\"][0][\"index\"] == 0 and unit(j[\"data\"][0][\"embedding\"]) and j[\"usage\"] == {\"prompt_tokens\": 9, \"total_tokens\": 9}"' \
    "/v1/embeddings of a text" o1
check 'py $tmp/o1 "cos(j[\"data\"][0][\"embedding\"], R[0]) >= 0.9999"' \
    "/v1/embeddings equals llama.cpp's vector (cosine >= 0.9999)"
check '[ "$(req /v1/embeddings "{\"input\":$T0,\"encoding_format\":\"base64\"}" o2)" = 200 ] &&
       python3 -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); a[\"f\"]=b[\"data\"][0][\"embedding\"]; json.dump(a, open(sys.argv[1], \"w\"))" $tmp/o2 $tmp/o1 &&
       py $tmp/o2 "b64(j[\"data\"][0][\"embedding\"]) == f32(j[\"f\"])"' \
    "base64 encoding == float encoding" o2
check '[ "$(req /v1/embeddings "{\"input\":$IDS0,\"encoding_format\":\"float\"}" o3)" = 200 ] &&
       py $tmp/o3 "cos(j[\"data\"][0][\"embedding\"], R[0]) >= 0.9999 and j[\"usage\"][\"prompt_tokens\"] == 9"' \
    "/v1/embeddings of token ids" o3
check '[ "$(req /v1/embeddings "{\"input\":[$IDS0,[1,386]]}" o4)" = 200 ] &&
       py $tmp/o4 "len(j[\"data\"]) == 2 and cos(j[\"data\"][1][\"embedding\"], R[3]) >= 0.999 and j[\"usage\"][\"prompt_tokens\"] == 11"' \
    "/v1/embeddings of arrays of token ids" o4
check '[ "$(req /v1/embeddings "{\"input\":$ALL}" o5)" = 200 ] &&
       py $tmp/o5 "[d[\"index\"] for d in j[\"data\"]] == [0, 1, 2, 3] and all(unit(d[\"embedding\"]) and cos(d[\"embedding\"], r) >= 0.999 for d, r in zip(j[\"data\"], R))"' \
    "/v1/embeddings of every reference text (cosine >= 0.999)" o5

# OpenAI errors
check '[ "$(req /v1/embeddings "{\"input\":\"x\",\"model\":\"no-such\"}" e1)" = 404 ] &&
       py $tmp/e1 "j[\"error\"][\"code\"] == \"model_not_found\" and \"no-such\" in j[\"error\"][\"message\"]"' \
    "unknown model: 404" e1
check '[ "$(req /v1/embeddings "{\"input\":\"x\",\"dimensions\":8}" e2)" = 400 ] &&
       py $tmp/e2 "j[\"error\"][\"param\"] == \"dimensions\" and j[\"error\"][\"type\"] == \"invalid_request_error\""' \
    "dimensions: 400" e2
for body in '{"input":""}' '{"input":[]}' '{"input":[[]]}' '{"input":5}' '{"input":["a",[1]]}' \
    '{"input":[1,-2]}' '{"input":[1,99999]}' '{}' '{"input":"x","encoding_format":"int8"}' \
    '{"input":"x","model":5}' 'not json' '[1]'; do
    check '[ "$(req /v1/embeddings "$body" e3)" = 400 ] && py $tmp/e3 "j[\"error\"][\"message\"]"' \
        "bad body $body: 400 expected, got" e3
done
LONG=$(python3 -c 'print("\"" + "The list type is a mutable sequence. " * 100 + "\"")')
check '[ "$(req /v1/embeddings "{\"input\":$LONG}" e4)" = 400 ] &&
       py $tmp/e4 "j[\"error\"][\"code\"] == \"context_length_exceeded\" and \"512\" in j[\"error\"][\"message\"]"' \
    "input longer than the context: 400" e4

# ---- Ollama /api/embed (normalized)
check '[ "$(req /api/embed "{\"model\":\"pydoc-7M-q8_0\",\"input\":$T0}" a1)" = 200 ] &&
       py $tmp/a1 "j[\"model\"] == \"pydoc-7M-q8_0:latest\" and len(j[\"embeddings\"]) == 1 and unit(j[\"embeddings\"][0]) and cos(j[\"embeddings\"][0], R[0]) >= 0.9999 and j[\"prompt_eval_count\"] == 9 and j[\"total_duration\"] > 0 and j[\"load_duration\"] >= 0"' \
    "/api/embed of the reference text == llama.cpp (cosine >= 0.9999)" a1
check '[ "$(req /api/embed "{\"input\":$ALL}" a2)" = 200 ] &&
       py $tmp/a2 "len(j[\"embeddings\"]) == 4 and all(unit(v) and cos(v, r) >= 0.999 for v, r in zip(j[\"embeddings\"], R))"' \
    "/api/embed of every reference text" a2
check '[ "$(req /api/embed "{\"input\":\"\"}" a3)" = 200 ] && py $tmp/a3 "j[\"embeddings\"] == []" &&
       [ "$(req /api/embed "{\"input\":[]}" a3)" = 200 ] && py $tmp/a3 "j[\"embeddings\"] == []"' \
    "/api/embed of nothing: 200 with no vectors" a3
check '[ "$(req /api/embed "{\"input\":$LONG}" a4)" = 200 ] && py $tmp/a4 "j[\"prompt_eval_count\"] == 512 and unit(j[\"embeddings\"][0])"' \
    "/api/embed truncates to the context by default" a4
check '[ "$(req /api/embed "{\"input\":$LONG,\"options\":{\"num_ctx\":64}}" a5)" = 200 ] && py $tmp/a5 "j[\"prompt_eval_count\"] == 64"' \
    "/api/embed truncates to options.num_ctx" a5
check '[ "$(req /api/embed "{\"input\":$LONG,\"truncate\":false}" a6)" = 400 ] && py $tmp/a6 "\"context length\" in j[\"error\"]"' \
    "/api/embed truncate false: 400" a6
check '[ "$(req /api/embed "{\"model\":\"no-such\",\"input\":\"x\"}" a7)" = 404 ] && py $tmp/a7 "\"no-such\" in j[\"error\"]"' \
    "/api/embed unknown model: 404" a7
for body in '{"input":5}' '{"input":[1,2]}' '{"input":"x","truncate":"no"}' \
    '{"input":"x","options":{"num_ctx":0}}' '{"input":"x","keep_alive":"soon"}' 'nope'; do
    check '[ "$(req /api/embed "$body" a8)" = 400 ] && py $tmp/a8 "isinstance(j[\"error\"], str)"' \
        "/api/embed bad body $body: 400 expected, got" a8
done

# ---- Ollama /api/embeddings (legacy: raw vector)
check '[ "$(req /api/embeddings "{\"model\":\"pydoc-7M-q8_0\",\"prompt\":$T0}" l1)" = 200 ] &&
       py $tmp/l1 "len(j[\"embedding\"]) == 256 and cos(j[\"embedding\"], R[0]) >= 0.9999 and abs(norm(j[\"embedding\"]) / norm(R[0]) - 1) < 0.01"' \
    "/api/embeddings: the raw vector == llama.cpp's" l1
check '[ "$(req /api/embeddings "{\"prompt\":\"\"}" l2)" = 200 ] && py $tmp/l2 "j == {\"embedding\": []}"' \
    "/api/embeddings of an empty prompt" l2
check '[ "$(req /api/embeddings "{\"prompt\":[\"a\"]}" l3)" = 400 ] && py $tmp/l3 "isinstance(j[\"error\"], str)"' \
    "/api/embeddings prompt not a string: 400" l3

# ---- concurrent requests (each on a context of its own) beside a generation: same vectors
curl -s -o "$tmp/gen" -H 'Content-Type: application/json' --data-binary \
    '{"prompt":"The list type","stream":false,"options":{"num_predict":48}}' \
    "http://127.0.0.1:$PORT/api/generate" &
cpids=($!)
for i in 1 2 3 4 5 6; do
    curl -s -o "$tmp/c$i" -H 'Content-Type: application/json' \
        --data-binary "{\"input\":[$T0,\"A\"]}" "http://127.0.0.1:$PORT/api/embed" &
    cpids+=($!)
done
wait "${cpids[@]}"
for i in 2 3 4 5 6; do
    check 'cmp -s <(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"embeddings\"])" $tmp/c1) <(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"embeddings\"])" $tmp/c$i)' \
        "concurrent request $i differs from request 1" c$i
done
check 'py $tmp/c1 "cos(j[\"embeddings\"][0], R[0]) >= 0.9999" && py $tmp/gen "j[\"done\"]"' \
    "concurrent requests beside a generation" gen

# ---- keep_alive 0: the model unloads after the request
check '[ "$(req /api/embed "{\"input\":\"x\",\"keep_alive\":0}" k1)" = 200 ]' "keep_alive 0" k1
unloaded=no
for _ in $(seq 1 50); do
    curl -s -o "$tmp/ps" "http://127.0.0.1:$PORT/api/ps"
    if py "$tmp/ps" 'j["models"] == []'; then unloaded=yes; break; fi
    sleep 0.1
done
check '[ $unloaded = yes ]' "keep_alive 0 did not unload the model" ps
check '[ "$(req /api/embed "{\"input\":$T0}" k2)" = 200 ] && py $tmp/k2 "cos(j[\"embeddings\"][0], R[0]) >= 0.9999"' \
    "embedding after a reload" k2

kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=""
check '[ $rc = 0 ]' "SIGTERM shutdown (rc $rc)"

finish test_server_embed
