#!/usr/bin/env bash
# POST /api/pull and `mlxr pull` of http URLs against a local python3 HTTP server that can serve
# a small GGUF (stories260K.gguf) slowly, behind a gate, truncated, with a wrong Content-Length,
# as a non-GGUF page, with an impossible size, through redirects, or with a (wrong) announced
# sha256. Checks: progress lines arrive while the download runs (the gate opens only once the
# client has seen a partial progress line, so a pull that reported nothing until the end would
# fail, with no timing assumption; meanwhile `mlxr list` opens the registry, whose clean-up must
# spare the partial download), completed grows to total, the model is listed and
# generates; failures give an error (HTTP status before the body, an error line after it) and
# leave no catalog row, blob or temp file; a client that disconnects mid-download cancels it
# (the far server sees its connection closed) and leaves nothing behind; the CLI pulls with
# progress lines.
# usage: test_server_pull.sh PATH/TO/mlxr TESTDATA_DIR
set -u
MLXR=$1
DATA=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
need curl python3
# check CONDITION MESSAGE: the message (single-quoted by callers) is expanded only on failure
check() { if eval "$1"; then ok; else bad "$(eval "printf '%s' \"$2\"")"; fi; }

mkdir -p "$tmp/www"
cp "$DATA/models/stories260K.gguf" "$tmp/www/"
SIZE=$(wc -c < "$tmp/www/stories260K.gguf")
SHA=$(py -c "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())" "$tmp/www/stories260K.gguf")
cat > "$tmp/far.py" <<'PY'
import http.server, os, sys, time
root, gate, log = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(os.path.join(root, "stories260K.gguf"), "rb").read()

def note(s):
    with open(log, "a") as f: f.write(s + "\n")

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def head(self, code, length, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None: self.send_header("Content-Length", str(length))
        for k, v in extra: self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
    def do_GET(self):
        mode = self.path.strip("/").split("/")[0]
        try:
            self.serve(mode)
        except (BrokenPipeError, ConnectionResetError):
            note(mode + ": client gone")
    def serve(self, mode):
        n = len(data)
        if mode == "plain":
            self.head(200, n); self.wfile.write(data)
        elif mode == "chunked":  # no Content-Length: the body ends with the connection
            self.send_response(200); self.send_header("Connection", "close"); self.end_headers()
            self.wfile.write(data)
        elif mode == "slow":  # 16 pieces, 50 ms apart
            self.head(200, n)
            for i in range(16):
                self.wfile.write(data[i * n // 16:(i + 1) * n // 16]); self.wfile.flush()
                time.sleep(0.05)
        elif mode == "gate":  # half, then the rest once the client made the gate file (30 s max)
            self.head(200, n)
            self.wfile.write(data[:n // 2]); self.wfile.flush()
            for _ in range(300):
                if os.path.exists(gate): break
                time.sleep(0.1)
            else:
                note("gate: timeout"); return
            self.wfile.write(data[n // 2:])
        elif mode == "crawl":  # 1 KiB every 100 ms: minutes for the whole file
            self.head(200, n)
            for i in range(0, n, 1024):
                self.wfile.write(data[i:i + 1024]); self.wfile.flush()
                time.sleep(0.1)
        elif mode == "trunc":  # announces all, sends half, closes
            self.head(200, n); self.wfile.write(data[:n // 2])
        elif mode == "short":  # announces (and sends) less than the file: a truncated GGUF
            self.head(200, n // 2); self.wfile.write(data[:n // 2])
        elif mode == "html":
            body = b"<!DOCTYPE html><html><body>not a model</body></html>" * 100
            self.head(200, len(body)); self.wfile.write(body)
        elif mode == "huge":  # announces 2^60 bytes
            self.head(200, 1 << 60); self.wfile.write(b"GGUF")
        elif mode == "linked":
            self.head(200, n, [("X-Linked-Etag", '"%s"' % sys.argv[4])]); self.wfile.write(data)
        elif mode == "badlinked":
            self.head(200, n, [("X-Linked-Etag", '"%s"' % ("0" * 64))]); self.wfile.write(data)
        elif mode.startswith("redir"):  # redirN -> redir(N-1) -> ... -> plain
            k = int(mode[5:] or 0)
            self.head(302, 0, [("Location", "/%s/stories260K.gguf" % ("redir%d" % (k - 1) if k > 1 else "plain"))])
        elif mode == "loop":
            self.head(302, 0, [("Location", "/loop/stories260K.gguf")])
        else:
            self.head(404, 9); self.wfile.write(b"not found")

s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
PY
py "$tmp/far.py" "$tmp/www" "$tmp/gate" "$tmp/far.log" "$SHA" > "$tmp/far.out" 2>&1 &
pids+=($!)
touch "$tmp/far.log"
FAR=""
for _ in $(seq 100); do
    FAR=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$tmp/far.out")
    [ -n "$FAR" ] && break
    sleep 0.1
done
[ -n "$FAR" ] || { echo "far server did not start: $(cat "$tmp/far.out" 2>/dev/null)" >&2; exit 1; }
URL=http://127.0.0.1:$FAR

# ---- mlxr serve with a fresh home ----------------------------------------------------------
HOME_DIR=$tmp/home
start_server serve --home "$HOME_DIR" || exit 1

# pull BODY: POST /api/pull, body to $tmp/r, prints the status code
pull() {
    curl -s -o "$tmp/r" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "$1" "http://127.0.0.1:$PORT/api/pull"
}
# nothing_left NAME: no row NAME in /api/tags, no temp file, no blob beyond the imported ones
nothing_left() {
    curl -s "http://127.0.0.1:$PORT/api/tags" > "$tmp/tags" &&
        json "$tmp/tags" "not any(m['name'] == '$1' for m in j['models'])" &&
        [ -z "$(ls -A "$HOME_DIR/models/tmp")" ] &&
        [ "$(ls "$HOME_DIR/models/blobs" | wc -l)" -le 1 ]
}
# last_error SUBSTRING: the last NDJSON line of $tmp/r is {"error": "...SUBSTRING..."}
last_error() {
    py -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1]).read().splitlines()]; e=l[-1].get('error',''); sys.exit(0 if sys.argv[2] in e and len(l[-1]) == 1 else 1)" "$tmp/r" "$1" 2>/dev/null
}

# live progress: the gate opens only after the client has seen a partial progress line
cat > "$tmp/live.py" <<'PY'
import http.client, json, os, subprocess, sys
port, url, gate, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
mlxr, home = sys.argv[5], sys.argv[6]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
c.request("POST", "/api/pull", json.dumps({"model": url, "as": "tiny:live"}),
          {"Content-Type": "application/json"})
r = c.getresponse()
assert r.status == 200, r.status
assert r.getheader("Content-Type") == "application/x-ndjson", r.getheader("Content-Type")
lines = []
while True:
    l = r.readline()
    if not l: break
    j = json.loads(l)
    lines.append(j)
    if "completed" in j and 0 < j["completed"] < size and not os.path.exists(gate):
        # another process opening the registry meanwhile must not sweep the partial download
        subprocess.run([mlxr, "list", "--home", home], check=True, stdout=subprocess.DEVNULL)
        open(gate, "w").close()  # a partial progress line arrived before the download ended
st = [j["status"] for j in lines]
prog = [j for j in lines if "completed" in j]
assert os.path.exists(gate), "no progress line before the end: %s" % lines
assert st[0] == "pulling manifest" and st[-3:] == ["verifying sha256 digest", "writing manifest", "success"], st
assert all(j["status"] == "pulling stories260K.gguf" and j["total"] == size for j in prog), prog
done = [j["completed"] for j in prog]
assert len(done) >= 2 and done == sorted(done) and done[-1] == size, done
print("progress lines:", len(prog))
PY
check 'py "$tmp/live.py" "$PORT" "$URL/gate/stories260K.gguf" "$tmp/gate" "$SIZE" "$MLXR" "$HOME_DIR" > "$tmp/live.out" 2>&1' 'live progress: $(cat "$tmp/live.out" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/slow/stories260K.gguf\",\"as\":\"tiny:slow\"}")" = 200 ] && py -c "import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; d=[j[\"completed\"] for j in l if \"completed\" in j]; sys.exit(0 if len(d) >= 2 and d == sorted(d) and d[-1] == $SIZE and l[-1] == {\"status\": \"success\"} else 1)" "$tmp/r"' 'slow server: several progress lines: $(cat "$tmp/r" 2>/dev/null)'
check 'curl -s "http://127.0.0.1:$PORT/api/tags" > "$tmp/tags" && json "$tmp/tags" "any(m[\"name\"] == \"tiny:live\" and m[\"size\"] == $SIZE and m[\"digest\"].endswith(\"$SHA\") for m in j[\"models\"])"' 'pulled model listed: $(cat "$tmp/tags" 2>/dev/null)'
check '[ "$(curl -s -o "$tmp/g" -w "%{http_code}" -X POST -d "{\"model\":\"tiny:live\",\"prompt\":\"Once upon a time\",\"stream\":false,\"options\":{\"num_predict\":3}}" "http://127.0.0.1:$PORT/api/generate")" = 200 ] && json "$tmp/g" "j[\"done\"] and j[\"eval_count\"] > 0"' 'generate with the pulled model: $(cat "$tmp/g" 2>/dev/null)'

# stream false: one JSON object; no Content-Length; redirects; an announced digest
check '[ "$(pull "{\"model\":\"$URL/plain/stories260K.gguf\",\"as\":\"tiny:plain\",\"stream\":false}")" = 200 ] && json "$tmp/r" "j == {\"status\": \"success\"}"' 'stream false: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/chunked/stories260K.gguf\",\"as\":\"tiny:chunked\"}")" = 200 ] && tail -n 1 "$tmp/r" | grep -q "\"success\""' 'no Content-Length: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/redir3/stories260K.gguf\",\"as\":\"tiny:redir\",\"stream\":false}")" = 200 ]' '3 redirects: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/linked/stories260K.gguf\",\"as\":\"tiny:linked\"}")" = 200 ] && grep -q "{\"status\":\"pulling ${SHA:0:12}\",\"digest\":\"sha256:$SHA\",\"total\":$SIZE,\"completed\":$SIZE}" "$tmp/r"' 'X-Linked-Etag digest in the progress lines: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/plain/stories260K.gguf#sha256=$SHA\",\"as\":\"tiny:frag\",\"stream\":false}")" = 200 ]' '#sha256= fragment that matches: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/plain/stories260K.gguf\",\"stream\":false}")" = 200 ] && curl -s "http://127.0.0.1:$PORT/api/tags" | grep -q "\"stories260K:latest\""' 'default name from the URL: $(cat "$tmp/r" 2>/dev/null)'

# failures: an error, and nothing left behind
check '[ "$(pull "{\"model\":\"$URL/trunc/stories260K.gguf\",\"as\":\"bad:trunc\"}")" = 200 ] && last_error "download of" && nothing_left bad:trunc' 'truncated body: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/short/stories260K.gguf\",\"as\":\"bad:short\"}")" = 200 ] && last_error "" && nothing_left bad:short' 'short Content-Length (truncated GGUF): $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/html/page.gguf\",\"as\":\"bad:html\"}")" = 502 ] && last_error "not a GGUF file" && nothing_left bad:html' 'not a GGUF (refused before the body): $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/html/page.gguf\",\"as\":\"bad:html\",\"stream\":false}")" = 502 ] && json "$tmp/r" "\"not a GGUF file\" in j[\"error\"]" && nothing_left bad:html' 'not a GGUF, stream false: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/nope/x.gguf\",\"as\":\"bad:404\"}")" = 502 ] && json "$tmp/r" "\"HTTP 404\" in j[\"error\"]" && nothing_left bad:404' '404: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/huge/x.gguf\",\"as\":\"bad:huge\"}")" = 502 ] && json "$tmp/r" "\"bytes\" in j[\"error\"] and (\"free\" in j[\"error\"] or \"limit\" in j[\"error\"])" && nothing_left bad:huge' 'Content-Length over the limit: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/loop/x.gguf\",\"as\":\"bad:loop\"}")" = 502 ] && json "$tmp/r" "\"redirect\" in j[\"error\"].lower()" && nothing_left bad:loop' 'redirect loop: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/badlinked/stories260K.gguf\",\"as\":\"bad:sha\"}")" = 200 ] && last_error "expected 0000" && nothing_left bad:sha' 'announced digest mismatch: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"$URL/plain/stories260K.gguf\",\"as\":\"bad name!\"}")" = 400 ] && nothing_left "bad name!"' 'invalid name: $(cat "$tmp/r" 2>/dev/null)'
check '[ "$(pull "{\"model\":\"http://127.0.0.1:1/x.gguf\",\"as\":\"bad:conn\"}")" = 502 ] && nothing_left bad:conn' 'connection refused: $(cat "$tmp/r" 2>/dev/null)'

# a client that disconnects mid-download (streaming, then stream false) cancels it
gone() { # gone MODE-LABEL: the far server saw its client leave, nothing is left, within 15 s
    for _ in $(seq 150); do
        [ "$(grep -c "crawl: client gone" "$tmp/far.log")" -ge "$1" ] && nothing_left bad:gone && return 0
        sleep 0.1
    done
    return 1
}
curl -s --max-time 3 -X POST -d "{\"model\":\"$URL/crawl/stories260K.gguf\",\"as\":\"bad:gone\"}" "http://127.0.0.1:$PORT/api/pull" > "$tmp/gone1"
check 'grep -q "\"completed\"" "$tmp/gone1" && gone 1' 'disconnect while streaming: $(cat "$tmp/gone1"; ls -A "$HOME_DIR/models/tmp"; cat "$tmp/far.log")'
curl -s --max-time 1 -X POST -d "{\"model\":\"$URL/crawl/stories260K.gguf\",\"as\":\"bad:gone\",\"stream\":false}" "http://127.0.0.1:$PORT/api/pull" > /dev/null
check 'gone 2' 'disconnect while waiting (stream false): $(ls -A "$HOME_DIR/models/tmp"; cat "$tmp/far.log")'
check '[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$PORT/health")" = 200 ]' 'server healthy after the pulls'

# SIGTERM during a download: the server cancels it and exits cleanly, leaving no partial file
curl -s --max-time 30 -X POST -d "{\"model\":\"$URL/crawl/stories260K.gguf\",\"as\":\"bad:stop\"}" "http://127.0.0.1:$PORT/api/pull" > /dev/null &
pids+=($!)
for _ in $(seq 100); do [ -n "$(ls -A "$HOME_DIR/models/tmp")" ] && break; sleep 0.1; done
kill -TERM "$SPID"
for _ in $(seq 150); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
wait "$SPID" 2>/dev/null
src=$?
check '[ "$src" = 0 ] && [ -z "$(ls -A "$HOME_DIR/models/tmp")" ] && "$MLXR" list --home "$HOME_DIR" > "$tmp/list" && ! grep -q "^bad:" "$tmp/list"' 'SIGTERM during a pull (exit $src): $(ls -A "$HOME_DIR/models/tmp"; cat "$tmp/list" 2>/dev/null; tail -n 5 "$tmp/serve.log")'
check '! grep -q "Sanitizer\|runtime error" "$tmp/serve.log"' 'sanitizer report: $(grep -A20 "Sanitizer\|runtime error" "$tmp/serve.log" | head -40)'

# the CLI (stderr is not a terminal here: progress comes as separate lines)
CLI_HOME=$tmp/cli-home
check '"$MLXR" pull "$URL/slow/stories260K.gguf" --name cli:slow --home "$CLI_HOME" > "$tmp/cli.out" 2> "$tmp/cli.err" && grep -q "imported cli:slow" "$tmp/cli.out" && grep -q "^pulling stories260K.gguf (" "$tmp/cli.err" && grep -q "^pulling: .*(100 %)" "$tmp/cli.err" && ! grep -q $(printf "\r") "$tmp/cli.err"' 'mlxr pull URL: $(cat "$tmp/cli.out" "$tmp/cli.err" 2>/dev/null)'
check '! "$MLXR" pull --insecure "$URL/html/page.gguf" --name cli:html --home "$CLI_HOME" > /dev/null 2> "$tmp/cli.err" && grep -q "not a GGUF file" "$tmp/cli.err" && ! "$MLXR" list --home "$CLI_HOME" | grep -q "^cli:html" && [ -z "$(ls -A "$CLI_HOME/models/tmp")" ]' 'mlxr pull of a non-GGUF: $(cat "$tmp/cli.err" 2>/dev/null)'
check '! "$MLXR" pull "$URL/badlinked/stories260K.gguf" --name cli:sha --home "$CLI_HOME" > /dev/null 2> "$tmp/cli.err" && grep -q "sha256" "$tmp/cli.err"' 'mlxr pull with a digest mismatch: $(cat "$tmp/cli.err" 2>/dev/null)'

finish test_server_pull
