#!/usr/bin/env python3
"""Open-loop load test of an OpenAI-compatible /v1/completions server (streaming), stdlib only.

Requests arrive as a Poisson process at a fixed rate for a fixed duration, whatever the server
does (open loop: a slow server gets a growing queue, not fewer requests). Each request has a
prompt length and a max_tokens drawn from a seeded mix, so every run at the same seed sends the
same requests at the same offsets. Prompts are windows of a seeded random-word corpus cut at
token boundaries with the server's /tokenize + /detokenize (mlxr's native endpoints), so their
lengths are exact in the model's tokens, and windows start at random places, so the prefix cache
finds little to share.

Reported per rate: requests sent, completed (within the window + drain), completed requests/s
and generated tokens/s over the window, TTFT p50/p95 (send -> first text), per-token latency
p50/p95 (each request's (last - first text) / (tokens - 1)), inter-token gap p95 over all gaps,
errors and 429s. Tokens are counted from the final usage record (stream_options.include_usage).

usage: server_load.py --url http://127.0.0.1:PORT [--rates 1,2,4] [--duration 20] [--seed 1]
       [--prompt-mix 16:64:0.5,64:256:0.3,256:1000:0.2] [--max-tokens 32:128] [--drain 60]
       [--model NAME] [--json]
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

WORDS = ("the a of to and in is for that with as on by this be are from or an it which can "
         "object function value list type string module class method return name file data "
         "argument default error number key set new time used when if not each first see also "
         "python call example code line text using dictionary element index sequence format "
         "system option path mode user item result version call buffer stream thread lock "
         "process signal socket server client request response header body length size count "
         "integer float byte character encoding decode encode read write open close seek tell "
         "iterator generator expression statement loop condition exception raise handle").split()


def post(url, path, body, timeout=300):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError("%s %s: HTTP %d %s" % (path, body.get("model", ""), r.status, data[:200]))
    return json.loads(data)


def get(url, path):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    c.request("GET", path)
    data = c.getresponse().read()
    c.close()
    return json.loads(data)


def model_ctx(url, model):
    """The model's context length from /api/show (0 when unknown)."""
    try:
        model = model or get(url, "/v1/models")["data"][0]["id"]
        info = post(url, "/api/show", {"model": model}).get("model_info", {})
        return next((int(v) for k, v in info.items() if k.endswith(".context_length")), 0)
    except Exception:
        return 0


def parse_mix(s):
    mix = []
    for part in s.split(","):
        lo, hi, w = part.split(":")
        mix.append((int(lo), int(hi), float(w)))
    return mix


def make_requests(args, rate, rng, corpus_ids, url, cap):
    """Arrival offsets and bodies for one rate (deterministic for a seed)."""
    mix = parse_mix(args.prompt_mix)
    tmin, tmax = (int(x) for x in args.max_tokens.split(":"))
    weights = [w for _, _, w in mix]
    reqs, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= args.duration:
            break
        lo, hi, _ = rng.choices(mix, weights)[0]
        n_prompt = rng.randint(lo, hi)
        max_tokens = rng.randint(tmin, tmax)
        if cap and n_prompt + max_tokens > cap:
            n_prompt = max(1, cap - max_tokens)
        start = rng.randrange(0, len(corpus_ids) - n_prompt)
        reqs.append({"t": t, "n_prompt": n_prompt, "max_tokens": max_tokens, "start": start,
                     "seed": rng.randrange(1 << 30)})
    # prompt texts: one /detokenize per request, before the clock starts
    for q in reqs:
        body = {"tokens": corpus_ids[q["start"]:q["start"] + q["n_prompt"]]}
        if args.model:
            body["model"] = args.model
        text = post(url, "/detokenize", body)
        q["body"] = {"prompt": text["content"], "max_tokens": q["max_tokens"], "stream": True,
                     "stream_options": {"include_usage": True}, "temperature": 0.8,
                     "seed": q["seed"]}
        if args.model:
            q["body"]["model"] = args.model
    return reqs


def run_one(url, q, t0, res):
    u = urllib.parse.urlsplit(url)
    rec = {"sent": None, "first": None, "last": None, "gaps": [], "tokens": 0, "status": 0,
           "error": None, "done": None, "token_times": []}
    res.append(rec)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
        rec["sent"] = time.perf_counter() - t0
        c.request("POST", "/v1/completions", json.dumps(q["body"]),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        rec["status"] = r.status
        if r.status != 200:
            r.read()
            rec["error"] = "HTTP %d" % r.status
            return
        prev = None
        while True:
            line = r.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            ev = json.loads(line[6:])
            now = time.perf_counter() - t0
            if ev.get("choices") and ev["choices"][0].get("text"):
                if rec["first"] is None:
                    rec["first"] = now
                if prev is not None:
                    rec["gaps"].append(now - prev)
                prev = rec["last"] = now
                rec["token_times"].append(now)
            if ev.get("usage"):
                rec["tokens"] = ev["usage"].get("completion_tokens", 0)
        rec["done"] = time.perf_counter() - t0
        c.close()
    except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
        rec["error"] = type(e).__name__ + ": " + str(e)


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def run_rate(args, rate, reqs):
    res, threads = [], []
    t0 = time.perf_counter()
    for q in reqs:
        delay = q["t"] - (time.perf_counter() - t0)
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=run_one, args=(args.url, q, t0, res), daemon=True)
        th.start()
        threads.append(th)
    deadline = time.perf_counter() + args.drain
    for th in threads:
        th.join(max(0.0, deadline - time.perf_counter()))
    window = args.duration
    ok = [r for r in res if r["done"] is not None and r["error"] is None]
    in_window = [r for r in ok if r["done"] <= window]
    # tokens generated inside the window: by arrival time of their text records, scaled to the
    # usage count of each request (a record may carry more than one token)
    gen = 0.0
    for r in ok:
        n = len(r["token_times"])
        if n:
            gen += r["tokens"] * sum(1 for t in r["token_times"] if t <= window) / n
    ttft = [r["first"] - r["sent"] for r in ok if r["first"] is not None]
    tpot = [(r["last"] - r["first"]) / (r["tokens"] - 1) for r in ok
            if r["first"] is not None and r["tokens"] > 1]
    gaps = [g for r in ok for g in r["gaps"]]
    errs = [r for r in res if r["error"] is not None]
    return {
        "rate": rate, "sent": len(reqs), "completed": len(ok),
        "unfinished": len(reqs) - len(ok) - len(errs),
        "completed_rps": len(in_window) / window, "gen_tps": gen / window,
        "prompt_tokens_mean": sum(q["n_prompt"] for q in reqs) / max(1, len(reqs)),
        "ttft_p50_ms": pct(ttft, 50) * 1e3, "ttft_p95_ms": pct(ttft, 95) * 1e3,
        "tpot_p50_ms": pct(tpot, 50) * 1e3, "tpot_p95_ms": pct(tpot, 95) * 1e3,
        "itl_p95_ms": pct(gaps, 95) * 1e3,
        "errors": len(errs), "http_429": sum(1 for r in errs if r["status"] == 429),
        "first_error": errs[0]["error"] if errs else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--rates", default="1,2,4")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prompt-mix", default="16:64:0.5,64:256:0.3,256:1000:0.2",
                    help="LO:HI:WEIGHT,... prompt token ranges, uniform within a range")
    ap.add_argument("--max-tokens", default="32:128", help="LO:HI, uniform")
    ap.add_argument("--drain", type=float, default=60.0,
                    help="seconds to wait for requests still running after the window")
    ap.add_argument("--model", default="")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ctx = model_ctx(args.url, args.model)
    rng = random.Random(args.seed)
    corpus = " ".join(rng.choice(WORDS) for _ in range(12000))
    body = {"content": corpus, "add_special": False}
    if args.model:
        body["model"] = args.model
    ids = post(args.url, "/tokenize", body)["tokens"]
    hi = max(int(p.split(":")[1]) for p in args.prompt_mix.split(","))
    if len(ids) < hi + 1:
        sys.exit("corpus of %d tokens is shorter than the longest prompt %d" % (len(ids), hi))
    if ctx:
        print("model context %d: prompt + max_tokens capped to it" % ctx, file=sys.stderr)
    out = []
    for rate in (float(x) for x in args.rates.split(",")):
        rrng = random.Random("%d/%s" % (args.seed, rate))
        reqs = make_requests(args, rate, rrng, ids, args.url, ctx)
        m = run_rate(args, rate, reqs)
        out.append(m)
        if not args.json:
            print("rate %5.2f/s: sent %4d, done %4d (%d unfinished), %6.2f req/s, %8.1f gen tok/s, "
                  "TTFT p50 %7.0f p95 %7.0f ms, per-token p50 %6.1f p95 %6.1f ms (gap p95 %6.1f), "
                  "errors %d (429: %d)%s"
                  % (m["rate"], m["sent"], m["completed"], m["unfinished"], m["completed_rps"],
                     m["gen_tps"], m["ttft_p50_ms"], m["ttft_p95_ms"], m["tpot_p50_ms"],
                     m["tpot_p95_ms"], m["itl_p95_ms"], m["errors"], m["http_429"],
                     " first: " + m["first_error"] if m["first_error"] else ""), flush=True)
    if args.json:
        print(json.dumps({"duration_s": args.duration, "seed": args.seed,
                          "prompt_mix": args.prompt_mix, "max_tokens": args.max_tokens,
                          "context": ctx, "results": out}, indent=1))


if __name__ == "__main__":
    main()
