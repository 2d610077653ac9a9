// llama_bench.mjs - the peer side of mlxr's side-by-side benchmarks: llama.cpp's CPU backend, as
// shipped prebuilt by the npm package node-llama-cpp (@node-llama-cpp/linux-x64), timed the way
// llama-bench times it.
//
//   node llama_bench.mjs -m MODEL.gguf [-t THREADS] [-p P] [-n G] [-r R] [-ub UBATCH] [--fa 0|1]
//                        [--api raw|public]
//
// Prints one JSON object on stdout (progress goes to stderr):
//   {pp_tok_s, pp_sd, tg_tok_s, tg_sd, threads, model, peer, n_prompt, n_gen, reps, ...}
//
// What is measured (as llama-bench's pp and tg tests):
//  - pp: a prompt of exactly P token ids (BOS, then ids walking the vocabulary with a stride),
//    decoded into an empty KV cache in batches of at most UBATCH (default 512, llama-bench's
//    n_ubatch and mlxr bench's n_batch: P <= 512 is one batch); logits of the last token only.
//  - tg: from an empty KV cache, G single-token decodes: BOS, then each step feeds one token and
//    computes its logits. With --api raw (default) the fed tokens are fixed ids, as llama-bench
//    does (the choice of token does not change the work; greedy argmax over n_vocab logits is
//    microseconds). With --api public, node-llama-cpp's own greedy generation loop
//    (sequence.evaluate, temperature 0) is timed, JavaScript overhead included (about 1.5 ms per
//    token on this machine: it matters only for tiny models).
//  One untimed warm-up of each precedes the R timed repetitions; tok/s is the mean over the
//  repetitions and *_sd their sample standard deviation. CPU only (gpu: false), F16 KV cache
//  (llama.cpp's default), flash attention off unless --fa 1, mmap on.
//
// --api raw drives node-llama-cpp's native addon context (LlamaContext._ctx: initBatch,
// addToBatch, decodeBatch), an internal interface: hence the exact version pin in package.json.
//
// libuv's thread pool is forced to one thread (the script re-executes itself with
// UV_THREADPOOL_SIZE=1): with the default four, 2-thread decodes on a 2-core machine ran 10 to 30
// times slower (llama.cpp's spinning thread barrier kept losing its CPU), far from what the same
// binaries do in a plain C program.
//
// The package never downloads or builds anything here: getLlama runs with build "never",
// skipDownload and usePrebuiltBinaries, and bench/peer/.npmrc makes `npm ci` skip install scripts.
import {spawnSync} from "node:child_process";
import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import path from "node:path";
import {fileURLToPath} from "node:url";

if (process.env.UV_THREADPOOL_SIZE !== "1") {
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(process.execPath, [self, ...process.argv.slice(2)], {
        stdio: "inherit",
        env: {...process.env, UV_THREADPOOL_SIZE: "1", NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true"},
    });
    process.exit(r.status ?? 1);
}
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");

// The commit inside the prebuilt binaries (LLAMA_COMMIT in libllama-common.so) per package
// version; the package's bundled llama.cpp source is one squashed commit, so its build number
// reads b1 and the release is named by llama.cpp's version (v0.4.0 for 3.21.1).
const LLAMA_CPP_COMMIT = {"3.21.1": "5b4ebc5", "3.22.1": "0ad4a86"};

function usage(msg) {
    if (msg) process.stderr.write(`llama_bench: ${msg}\n`);
    process.stderr.write("usage: node llama_bench.mjs -m MODEL.gguf [-t THREADS] [-p N_PROMPT] " +
                         "[-n N_GEN] [-r REPS] [-ub UBATCH] [--fa 0|1] [--api raw|public]\n");
    process.exit(2);
}

function parseArgs(argv) {
    const o = {model: null, threads: 2, p: 512, n: 128, r: 3, fa: false, api: "raw", ub: 512};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        const int = (lo) => {
            const s = val();
            const v = Number(s);
            if (!Number.isInteger(v) || v < lo)
                usage(`${a}: expected an integer >= ${lo}, got '${s}'`);
            return v;
        };
        if (a === "-m" || a === "--model") o.model = val();
        else if (a === "-t" || a === "--threads") o.threads = int(1);
        else if (a === "-p" || a === "--n-prompt") o.p = int(0);
        else if (a === "-n" || a === "--n-gen") o.n = int(0);
        else if (a === "-r" || a === "--reps") o.r = int(1);
        else if (a === "--fa") o.fa = int(0) !== 0;
        else if (a === "-ub" || a === "--ubatch") o.ub = int(1);
        else if (a === "--api") {
            o.api = val();
            if (o.api !== "raw" && o.api !== "public") usage("--api: expected raw or public");
        } else if (a === "-h" || a === "--help") usage();
        else usage(`unknown argument '${a}'`);
    }
    if (!o.model) usage("-m MODEL is required");
    return o;
}

function meanSd(xs) {
    const n = xs.length;
    if (n === 0) return [0, 0];
    const mean = xs.reduce((s, x) => s + x, 0) / n;
    if (n < 2) return [mean, 0];
    const v = xs.reduce((s, x) => s + (x - mean) * (x - mean), 0) / (n - 1);
    return [mean, Math.sqrt(v)];
}

const nowS = () => Number(process.hrtime.bigint()) / 1e9;

// Token id i of a synthetic stream: BOS first, then ids walking the vocabulary with a stride.
const tokenAt = (i, bos, nVocab) => (i === 0 ? bos : 3 + ((i * 7919) % (nVocab - 3)));

// Timing through the native addon context: one decode per call, no JavaScript batching layer.
function rawRunner(context, bos, nVocab, threads) {
    const c = context._ctx;
    if (!c || typeof c.decodeBatch !== "function" || typeof c.addToBatch !== "function")
        throw new Error("node-llama-cpp internals changed (LlamaContext._ctx); use --api public");
    c.setThreads(threads);
    return {
        threads: () => c.getThreads(),
        async pp(p, ubatch) {
            const ids = Uint32Array.from({length: p}, (_, i) => tokenAt(i, bos, nVocab));
            c.disposeSequence(0);
            const t0 = nowS();
            for (let i0 = 0; i0 < p; i0 += ubatch) {
                const n = Math.min(ubatch, p - i0);
                c.initBatch(n);
                c.addToBatch(0, i0, ids.subarray(i0, i0 + n),
                             i0 + n === p ? Uint32Array.of(n - 1) : new Uint32Array(0));
                await c.decodeBatch();
            }
            return nowS() - t0;
        },
        async tg(g) {
            c.disposeSequence(0);
            const t0 = nowS();
            for (let i = 0; i < g; i++) {
                c.initBatch(1);
                c.addToBatch(0, i, Uint32Array.of(tokenAt(i, bos, nVocab)), Uint32Array.of(0));
                await c.decodeBatch();
            }
            return [nowS() - t0, g];
        },
    };
}

// Timing through node-llama-cpp's public sequence API (greedy generation in its JS loop).
function publicRunner(context, bos, nVocab) {
    const seq = context.getSequence();
    return {
        async pp(p) {
            const ids = Array.from({length: p}, (_, i) => tokenAt(i, bos, nVocab));
            await seq.clearHistory();
            const t0 = nowS();
            await seq.evaluateWithoutGeneratingNewTokens(ids);
            return nowS() - t0;
        },
        async tg(g) {
            await seq.clearHistory();
            let n = 0;
            const t0 = nowS();
            for await (const tok of seq.evaluate([bos], {temperature: 0, yieldEogToken: true})) {
                void tok;
                if (++n >= g) break;
            }
            return [nowS() - t0, n];
        },
    };
}

function peerName(llama) {
    const req = createRequire(import.meta.url);
    const pkgDir = path.resolve(path.dirname(req.resolve("node-llama-cpp")), "..");
    const ver = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    const rel = llama.llamaCppRelease?.release ?? "?";
    const commit = LLAMA_CPP_COMMIT[ver];
    return `llama.cpp via node-llama-cpp ${ver} (llama.cpp ${rel}` +
           (commit ? `, commit ${commit}` : "") + ", prebuilt CPU binaries)";
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    const llama = await getLlama({
        gpu: false,
        build: "never",
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        maxThreads: 0, /* no cap: the context's thread count is used as given */
        logLevel: LlamaLogLevel.error,
    });
    const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0, useMmap: true});
    const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 259;
    const bos = model.tokens.bos ?? 1;
    const context = await model.createContext({
        contextSize: Math.max(o.p, o.n + 1, 16),
        batchSize: Math.max(Math.min(o.p, o.ub), 1),
        threads: o.threads,
        flashAttention: o.fa,
        sequences: 1,
        ignoreMemorySafetyChecks: true,
    });
    const run = o.api === "raw" ? rawRunner(context, bos, nVocab, o.threads)
                                 : publicRunner(context, bos, nVocab);

    // Warm-up: fault the weights in, size the compute buffers, start the threads.
    if (o.p > 0) await run.pp(o.p, o.ub);
    if (o.n > 0) await run.tg(Math.min(o.n, 16));

    const pp = [], tg = [];
    let tgShort = 0;
    for (let rep = 0; rep < o.r; rep++) {
        if (o.p > 0) pp.push(o.p / await run.pp(o.p, o.ub));
        if (o.n > 0) {
            const [s, n] = await run.tg(o.n);
            if (n < o.n) tgShort++;
            tg.push(n / s);
        }
        process.stderr.write(`rep ${rep + 1}/${o.r}: pp ${pp.at(-1)?.toFixed(2) ?? "-"} tok/s, ` +
                             `tg ${tg.at(-1)?.toFixed(2) ?? "-"} tok/s\n`);
    }
    const [ppMean, ppSd] = meanSd(pp);
    const [tgMean, tgSd] = meanSd(tg);
    const out = {
        pp_tok_s: ppMean,
        pp_sd: ppSd,
        tg_tok_s: tgMean,
        tg_sd: tgSd,
        threads: run.threads ? run.threads() : o.threads,
        model: path.basename(o.model),
        peer: peerName(llama),
        n_prompt: o.p,
        n_gen: o.n,
        n_ubatch: o.ub,
        reps: o.r,
        api: o.api,
        flash_attn: o.fa,
        kv_type: "f16",
    };
    if (tgShort) out.tg_note = `generation stopped early (EOS) in ${tgShort} repetition(s)`;
    process.stdout.write(JSON.stringify(out) + "\n");
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((e) => {
    process.stderr.write(`llama_bench: ${e?.stack ?? e}\n`);
    process.exit(1);
});
