#!/usr/bin/env python3
"""Concurrency checks for a running `mlxr serve` (called by tests/cli/test_server.sh).

usage: concurrency.py PORT same N      -- N streaming clients at once; each text must equal the
                                          same greedy request run alone (non-streamed, earlier)
       concurrency.py PORT disconnect N -- N long streams; half hang up after a few chunks; the
                                          others finish; the KV pool returns to its idle level
                                          and the hung-up streams stopped generating
Standard library only (threads + http.client). Prints what differs and exits 1 on failure.
"""
import http.client
import json
import re
import sys
import threading
import time

PORT = int(sys.argv[1])
PROMPTS = ["A dictionary maps", "The list type", "In Python 3.11, the", "A tuple is",
           "Strings are", "The for statement", "Exceptions are raised", "A set holds"]


def post(body, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    return c, c.getresponse()


def stream_text(body, out, i, hang_up_after=None):
    """Read an SSE completion stream; out[i] = (text, finish_reason) or an error string."""
    try:
        c, r = post(body)
        if r.status != 200:
            out[i] = "status %d: %s" % (r.status, r.read()[:200])
            return
        text, fin, chunks = [], None, 0
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                break
            j = json.loads(line[6:])
            text.append(j["choices"][0]["text"])
            fin = j["choices"][0]["finish_reason"] or fin
            chunks += 1
            if hang_up_after is not None and chunks >= hang_up_after:
                c.sock.shutdown(2)  # the client goes away mid-stream
                c.close()
                out[i] = ("".join(text), "hung up")
                return
        c.close()
        out[i] = ("".join(text), fin)
    except Exception as e:  # noqa: BLE001 - reported as a failure
        out[i] = "exception: %r" % (e,)


def metrics():
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    c.request("GET", "/metrics")
    t = c.getresponse().read().decode()
    c.close()
    vals = {}
    for m in re.finditer(r'^(mlxr_kv_blocks\{[^}]*state="(\w+)"\}|mlxr_engine_running\{[^}]*\}'
                         r'|mlxr_engine_waiting\{[^}]*\}) (\d+)', t, re.M):
        key = m.group(2) or m.group(1).split("{")[0]
        vals[key] = vals.get(key, 0) + int(m.group(3))
    m = re.search(r"^mlxr_generated_tokens_total (\d+)", t, re.M)
    vals["generated"] = int(m.group(1)) if m else 0
    return vals


def run_all(bodies, hang=None):
    out = [None] * len(bodies)
    ts = [threading.Thread(target=stream_text, args=(b, out, i, hang(i) if hang else None))
          for i, b in enumerate(bodies)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def same(n):
    bodies = [{"prompt": PROMPTS[i % len(PROMPTS)] + " " * (i // len(PROMPTS)),
               "max_tokens": 24 + i % 7, "temperature": 0} for i in range(n)]
    alone = []
    for b in bodies:
        c, r = post(b)
        j = json.loads(r.read())
        c.close()
        alone.append((j["choices"][0]["text"], j["choices"][0]["finish_reason"]))
    out = run_all([dict(b, stream=True) for b in bodies])
    bad = [(i, out[i], alone[i]) for i in range(n) if out[i] != alone[i]]
    for i, got, want in bad[:5]:
        print("client %d: got %r, alone %r" % (i, got, want))
    return not bad


def disconnect(n):
    before = metrics()
    # the clients that hang up ask for the whole context (about 500 tokens): had their generation
    # gone on, far more tokens would be generated than the bound checked below
    bodies = [{"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 100000 if i % 2 == 0 else 120,
               "temperature": 0.8, "seed": i, "stream": True} for i in range(n)]
    out = run_all(bodies, hang=lambda i: 3 if i % 2 == 0 else None)
    ok = True
    for i, o in enumerate(out):
        want = "hung up" if i % 2 == 0 else "length"
        if isinstance(o, str) or o[1] != want:
            print("client %d: %r (wanted %s)" % (i, o, want))
            ok = False
    deadline = time.time() + 30
    while True:
        m = metrics()
        if m.get("used", -1) == before.get("used", 0) and m.get("mlxr_engine_running", -1) == 0 \
                and m.get("mlxr_engine_waiting", -1) == 0:
            break
        if time.time() > deadline:
            print("KV pool not back to idle: before %r, now %r" % (before, m))
            return False
        time.sleep(0.1)
    made, bound = m["generated"] - before["generated"], (n // 2) * 120 + (n - n // 2) * 100
    if made > bound:
        print("%d tokens generated, more than %d: hung-up streams kept generating" % (made, bound))
        ok = False
    return ok


if __name__ == "__main__":
    n = int(sys.argv[3])
    sys.exit(0 if {"same": same, "disconnect": disconnect}[sys.argv[2]](n) else 1)
