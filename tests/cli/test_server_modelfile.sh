#!/usr/bin/env bash
# POST /api/create with Modelfile settings against a real `mlxr serve` (bundled pydoc-7M model):
# a model created with PARAMETER temperature 0 + num_predict 8 + SYSTEM generates, without
# options, exactly what the base model generates with those options and that system prompt given
# explicitly (/api/generate and /api/chat); request options and the request's system override
# them; /api/show lists them (modelfile, parameters, system, template, license); /api/copy keeps
# them; a create FROM a created model inherits them; the structured fields (from, system,
# parameters, messages) work as the text; bad Modelfiles are 400 and leave no model. Then a
# catalog made with the schema before the modelfile column opens, keeps its row and gains the
# column.
# usage: test_server_modelfile.sh PATH/TO/mlxr [TESTDATA_DIR]
set -u
MLXR=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
need curl python3
# check CONDITION MESSAGE: the message (single-quoted by callers) is expanded only on failure
check() { if eval "$1"; then ok; else bad "$(eval "printf '%s' \"$2\"")"; fi; }
MODEL=$(cd "$HERE/../.." && pwd)/models/pydoc-7M-q8_0.gguf
[ -r "$MODEL" ] || { echo "missing $MODEL" >&2; exit 1; }

# req METHOD PATH [BODY]: writes the body to $tmp/r, prints the status code
req() {
    if [ -n "${3-}" ]; then
        curl -s -o "$tmp/r" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
            --data-binary "$3" "http://127.0.0.1:$PORT$2"
    else
        curl -s -o "$tmp/r" -w '%{http_code}' -X "$1" "http://127.0.0.1:$PORT$2"
    fi
}
# jbody PYTHON-EXPR: a JSON body built by python (MODEL in scope)
jbody() { MODEL=$MODEL py -c "import json, os; MODEL = os.environ['MODEL']; print(json.dumps($1))"; }

start_server main --home "$tmp/home" || exit 1

SYS="You write about Python."
mf=$(jbody "{'model': 'pyd', 'stream': False, 'modelfile': '# settings\nFROM ' + MODEL + '\nPARAMETER temperature 0\nPARAMETER num_predict 8\nSYSTEM \"\"\"\n$SYS\n\"\"\"\nLICENSE MIT\nTEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n'}")
check '[ "$(req POST /api/create "$mf")" = 200 ] && json $tmp/r "j[\"status\"] == \"success\""' 'create: $(cat $tmp/r)'

# generate without options == the base model with the options and system given explicitly
req POST /api/generate '{"model":"pyd","prompt":"A dictionary maps","stream":false}' > /dev/null
cp "$tmp/r" "$tmp/gen_created"
base=$(jbody "{'model': 'pydoc-7M-q8_0', 'prompt': 'A dictionary maps', 'stream': False, 'system': '$SYS', 'options': {'temperature': 0, 'num_predict': 8}}")
req POST /api/generate "$base" > /dev/null
cp "$tmp/r" "$tmp/gen_base"
check 'py - "$tmp/gen_created" "$tmp/gen_base" <<EOF
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["eval_count"] == 8 and b["eval_count"] == 8, (a, b)
assert a["response"] == b["response"] and len(a["response"]) > 0, (a["response"], b["response"])
assert a["prompt_eval_count"] == b["prompt_eval_count"]
EOF' 'created model defaults: $(cat $tmp/gen_created) vs $(cat $tmp/gen_base)'
# without the system prompt the base model's prompt is shorter: the SYSTEM really was applied
req POST /api/generate '{"model":"pydoc-7M-q8_0","prompt":"A dictionary maps","stream":false,"options":{"temperature":0,"num_predict":8}}' > /dev/null
check 'py -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if b[\"prompt_eval_count\"] < a[\"prompt_eval_count\"] else 1)" "$tmp/gen_created" "$tmp/r"' \
    'SYSTEM not applied: $(cat $tmp/r)'
# request options and system override the stored ones
check '[ "$(req POST /api/generate "{\"model\":\"pyd\",\"prompt\":\"A dictionary maps\",\"stream\":false,\"options\":{\"num_predict\":3}}")" = 200 ] && json $tmp/r "j[\"eval_count\"] == 3"' \
    'options.num_predict overrides: $(cat $tmp/r)'
req POST /api/generate '{"model":"pyd","prompt":"A dictionary maps","stream":false,"system":""}' > /dev/null
check 'py -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if b[\"prompt_eval_count\"] < a[\"prompt_eval_count\"] and b[\"eval_count\"] == 8 else 1)" "$tmp/gen_created" "$tmp/r"' \
    'request system overrides SYSTEM: $(cat $tmp/r)'
# chat: SYSTEM as the first message
req POST /api/chat '{"model":"pyd","messages":[{"role":"user","content":"Explain lists."}],"stream":false}' > /dev/null
cp "$tmp/r" "$tmp/chat_created"
cbase=$(jbody "{'model': 'pydoc-7M-q8_0', 'stream': False, 'messages': [{'role': 'system', 'content': '$SYS'}, {'role': 'user', 'content': 'Explain lists.'}], 'options': {'temperature': 0, 'num_predict': 8}}")
req POST /api/chat "$cbase" > /dev/null
check 'py - "$tmp/chat_created" "$tmp/r" <<EOF
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert a["message"]["content"] == b["message"]["content"] and a["eval_count"] == b["eval_count"] == 8
assert a["prompt_eval_count"] == b["prompt_eval_count"]
EOF' 'chat defaults: $(cat $tmp/chat_created) vs $(cat $tmp/r)'
# the OpenAI endpoint applies them too
check '[ "$(req POST /v1/chat/completions "{\"model\":\"pyd\",\"messages\":[{\"role\":\"user\",\"content\":\"Explain lists.\"}]}")" = 200 ] && py -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if a[\"choices\"][0][\"message\"][\"content\"] == b[\"message\"][\"content\"] else 1)" "$tmp/r" "$tmp/chat_created"' \
    'OpenAI chat with the defaults: $(cat $tmp/r)'

# /api/show
check '[ "$(req POST /api/show "{\"model\":\"pyd\"}")" = 200 ]' 'show: $(cat $tmp/r)'
cp "$tmp/r" "$tmp/show_pyd"
check 'py - "$tmp/show_pyd" "$SYS" <<EOF
import json, sys
j = json.load(open(sys.argv[1]))
assert j["system"] == sys.argv[2], j
assert j["license"] == "MIT" and j["template"] == "{{ .Prompt }}", j
lines = j["parameters"].split("\n")
assert "num_predict                    8" in lines and "temperature                    0" in lines, lines
m = j["modelfile"]
assert "\nFROM " in m and "PARAMETER num_predict 8" in m and "PARAMETER temperature 0" in m, m
assert "SYSTEM \"\"\"" + sys.argv[2] + "\"\"\"" in m and "LICENSE" in m and "TEMPLATE" in m, m
EOF' 'show fields: $(cat $tmp/show_pyd)'

# copy keeps them; a create FROM the created model inherits them
check '[ "$(req POST /api/copy "{\"source\":\"pyd\",\"destination\":\"pyd2:v1\"}")" = 200 ]' 'copy: $(cat $tmp/r)'
check '[ "$(req POST /api/show "{\"model\":\"pyd2:v1\"}")" = 200 ] && py -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if all(a[k] == b[k] for k in (\"system\", \"parameters\", \"license\", \"template\")) else 1)" "$tmp/r" "$tmp/show_pyd"' \
    'copy keeps the settings: $(cat $tmp/r)'
check '[ "$(req POST /api/generate "{\"model\":\"pyd2:v1\",\"prompt\":\"A dictionary maps\",\"stream\":false}")" = 200 ] && py -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(0 if a[\"response\"] == b[\"response\"] else 1)" "$tmp/r" "$tmp/gen_created"' \
    'copy generates the same: $(cat $tmp/r)'
check '[ "$(req POST /api/create "{\"model\":\"pyd3\",\"stream\":false,\"modelfile\":\"FROM pyd\\nPARAMETER num_predict 4\\n\"}")" = 200 ] && [ "$(req POST /api/show "{\"model\":\"pyd3\"}")" = 200 ] && json $tmp/r "j[\"system\"] == \"$SYS\" and \"num_predict                    4\" in j[\"parameters\"] and \"temperature                    0\" in j[\"parameters\"]"' \
    'create FROM a created model inherits: $(cat $tmp/r)'

# the structured fields
sb=$(jbody "{'model': 'pys', 'stream': False, 'from': MODEL, 'system': '$SYS', 'parameters': {'temperature': 0, 'num_predict': 8, 'stop': ['zzz', 'yyy']}, 'messages': [{'role': 'user', 'content': 'hi'}]}")
check '[ "$(req POST /api/create "$sb")" = 200 ] && [ "$(req POST /api/show "{\"model\":\"pys\"}")" = 200 ] && json $tmp/r "j[\"system\"] == \"$SYS\" and j[\"parameters\"].count(\"stop \") == 2 and j[\"messages\"] == [{\"role\": \"user\", \"content\": \"hi\"}]"' \
    'structured create: $(cat $tmp/r)'
check '[ "$(req POST /api/generate "{\"model\":\"pys\",\"prompt\":\"A dictionary maps\",\"stream\":false}")" = 200 ] && json $tmp/r "j[\"eval_count\"] <= 8"' \
    'structured create generates: $(cat $tmp/r)'

# bad Modelfiles: 400 with a message, and no model
n=0
for bad in 'FROM M\nFOO bar' 'FROM M\nPARAMETER temperature hot' 'FROM M\nSYSTEM """never closed' \
           'FROM M\nPARAMETER mirostat 1' 'PARAMETER temperature 0' 'FROM M\nADAPTER x.gguf' \
           'FROM M\nMESSAGE tool hi' 'FROM M\nPARAMETER num_ctx 0'; do
    n=$((n + 1))
    body=$(jbody "{'model': 'bad$n', 'modelfile': '''$bad'''.replace('M', MODEL, 1) if '''$bad'''.startswith('FROM') else '''$bad'''}")
    check '[ "$(req POST /api/create "$body")" = 400 ] && json $tmp/r "isinstance(j[\"error\"], str) and len(j[\"error\"]) > 10"' \
        'bad modelfile $n accepted: $(cat $tmp/r)'
    check '[ "$(req POST /api/show "{\"model\":\"bad$n\"}")" = 404 ]' "bad modelfile $n left a model"
done
check '[ "$(req POST /api/create "{\"model\":\"bad9\",\"from\":\"pyd\",\"parameters\":{\"top_k\":\"x\"}}")" = 400 ] && [ "$(req POST /api/show "{\"model\":\"bad9\"}")" = 404 ]' \
    'bad structured parameter: $(cat $tmp/r)'
check '[ "$(req GET /api/tags)" = 200 ] && json $tmp/r "not any(m[\"name\"].startswith(\"bad\") for m in j[\"models\"])"' 'tags after bad creates: $(cat $tmp/r)'
kill "$SPID" && wait "$SPID" 2>/dev/null

# a catalog with the schema before the modelfile column: opens, keeps its row, gains the column
OLD=$tmp/old
mkdir -p "$OLD/models/blobs" "$OLD/models/tmp"
SHA=$(py -c "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())" "$MODEL")
cp "$MODEL" "$OLD/models/blobs/sha256-$SHA"
py - "$OLD/catalog.db" "$SHA" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE models (name TEXT NOT NULL, tag TEXT NOT NULL, path TEXT NOT NULL,"
           " format TEXT NOT NULL, arch TEXT NOT NULL, n_params INTEGER NOT NULL,"
           " quant TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,"
           " n_ctx INTEGER NOT NULL, chat_template TEXT, created INTEGER NOT NULL,"
           " last_used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (name, tag))")
db.execute("INSERT INTO models VALUES ('oldie','latest',?, 'gguf','llama',7000000,'Q8_0',1,?,512,NULL,1700000000,0)",
           ("models/blobs/sha256-" + sys.argv[2], sys.argv[2]))
db.commit()
EOF
start_server old --home "$OLD" || exit 1
check '[ "$(req POST /api/show "{\"model\":\"oldie\"}")" = 200 ] && json $tmp/r "j[\"parameters\"] == \"\""' 'old catalog row: $(cat $tmp/r)'
check '[ "$(req POST /api/generate "{\"model\":\"oldie\",\"prompt\":\"A dictionary maps\",\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":8}}")" = 200 ] && py -c "import json,sys; a=json.load(open(sys.argv[1])); sys.exit(0 if a[\"eval_count\"] == 8 else 1)" "$tmp/r"' \
    'old catalog generates: $(cat $tmp/r)'
check '[ "$(req POST /api/create "{\"model\":\"newer\",\"stream\":false,\"modelfile\":\"FROM oldie\\nSYSTEM hi\"}")" = 200 ] && [ "$(req POST /api/show "{\"model\":\"newer\"}")" = 200 ] && json $tmp/r "j[\"system\"] == \"hi\""' \
    'create on an old catalog: $(cat $tmp/r)'
check 'py -c "import sqlite3,sys; c=[r[1] for r in sqlite3.connect(sys.argv[1]).execute(\"PRAGMA table_info(models)\")]; sys.exit(0 if \"modelfile\" in c else 1)" "$OLD/catalog.db"' \
    "migrated catalog lacks the modelfile column"
kill "$SPID" && wait "$SPID" 2>/dev/null

finish test_server_modelfile
