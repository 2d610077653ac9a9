#!/usr/bin/env bash
# Daemon throughput and streaming overhead with the bundled pydoc-7M model (or MODEL=path):
#  1. requests/s for tiny completions (8-token prompt, 4 tokens out, greedy) at 1, 16 and 64
#     concurrent clients (keep-alive connections, REQS requests per level);
#  2. server overhead per streamed token: one /api/generate stream of up to 200 tokens; the
#     client's time per token (first to last NDJSON record) minus the engine's own
#     eval_duration / eval_count of that same request (the text is handed over on another
#     thread, so this is added latency per token, ~0 unless the HTTP side falls behind); and the
#     client's wall time minus the server's total_duration (per-request HTTP/JSON cost).
# usage: bench/bench_server.sh [PATH/TO/mlxr] [extra serve flags, e.g. --no-batch-invariant]
#        (THREADS=2 REQS=256 by default)
# Numbers from a shared, noisy machine are indicative only: run it twice and compare.
set -eu
MLXR=${1:-build/mlxr}
shift || true
THREADS=${THREADS:-2}
REQS=${REQS:-256}
. "$(dirname "$0")/serve_lib.sh"
args=(serve --port 0 -t "$THREADS" --parallel 64 --max-queue 256 --quiet)
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
args+=("$@")
start_serve "${args[@]}"
python3 - "$port" "$REQS" <<'PY'
import http.client, json, sys, threading, time
port, total = int(sys.argv[1]), int(sys.argv[2])
body = json.dumps({"prompt": "A dictionary maps keys to", "max_tokens": 4, "temperature": 0})

def worker(n, errs):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for _ in range(n):
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            errs.append(r.status)
    c.close()

worker(4, [])  # load the model, warm up
for conc in (1, 16, 64):
    per = max(1, total // conc)
    errs = []
    ts = [threading.Thread(target=worker, args=(per, errs)) for _ in range(conc)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    dt = time.perf_counter() - t0
    print("tiny completions, %2d clients: %7.1f requests/s (%d requests, %d errors)"
          % (conc, per * conc / dt, per * conc, len(errs)))

c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
c.request("POST", "/api/generate", json.dumps({"prompt": "The list type", "stream": True,
          "options": {"num_predict": 200, "temperature": 0.8, "seed": 3}}),
          {"Content-Type": "application/json"})
t_send = time.perf_counter()
r = c.getresponse()
times, last = [], None
while True:
    line = r.readline()
    if not line: break
    rec = json.loads(line)
    if rec.get("response"): times.append(time.perf_counter())
    if rec.get("done"): last = rec; break
n = last["eval_count"]
engine = last["eval_duration"] / 1e9 / max(1, n)
client = (times[-1] - times[0]) / max(1, len(times) - 1)
t_done = time.perf_counter()
print("streamed tokens: %d; engine %.1f us/token, client-observed %.1f us/token, "
      "overhead %.1f us/token" % (n, engine * 1e6, client * 1e6, (client - engine) * 1e6))
print("streamed request: client wall %.2f ms, server total_duration %.2f ms, HTTP+parse+NDJSON "
      "overhead %.2f ms per request" % ((t_done - t_send) * 1e3, last["total_duration"] / 1e6,
                                        (t_done - t_send) * 1e3 - last["total_duration"] / 1e6))
PY
