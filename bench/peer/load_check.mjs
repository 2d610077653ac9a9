// load_check.mjs - does llama.cpp (the prebuilt CPU build in node-llama-cpp, pinned in
// package.json) load a GGUF file and generate from it? Used to check files written by
// `mlxr quantize`.
//
//   node load_check.mjs [-p PROMPT] [-n N] MODEL.gguf [MODEL.gguf ...]
//   node load_check.mjs --ppl IDS_FILE [-c N_CTX] MODEL.gguf [MODEL.gguf ...]
//
// For each model: load it (CPU, mmap), tokenize PROMPT with BOS, greedily generate N tokens
// (temperature 0) and print one JSON line {model, ok, size, tokens, text} or
// {model, ok: false, error}. Exit status 1 if any model failed to load or generate. Nothing is
// downloaded or built (build "never", skipDownload).
//
// With --ppl: llama.cpp's perplexity of the token ids in IDS_FILE (whitespace-separated, e.g. the
// output of `mlxr tokenize -m MODEL < TEXT`), computed the way llama-perplexity and
// `mlxr perplexity` do (chunks of N_CTX tokens, default 256, first token of each replaced by BOS,
// the second half of each chunk scored from llama.cpp's full softmax): an independent reference
// for `mlxr perplexity`. Prints {model, ok, chunks, scored, ppl}.
import {readFileSync} from "node:fs";
import process from "node:process";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");

function parseArgs(argv) {
    const o = {prompt: "The list type", n: 16, models: [], ppl: null, nCtx: 256};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "-p") o.prompt = argv[++i];
        else if (a === "-n") o.n = Number(argv[++i]);
        else if (a === "--ppl") o.ppl = argv[++i];
        else if (a === "-c") o.nCtx = Number(argv[++i]);
        else if (a === "-h" || a === "--help") {
            process.stdout.write("usage: node load_check.mjs [-p PROMPT] [-n N] MODEL.gguf...\n");
            process.exit(0);
        } else o.models.push(a);
    }
    if (!o.models.length || !Number.isInteger(o.n) || o.n < 1 || !Number.isInteger(o.nCtx) ||
        o.nCtx < 4 || o.nCtx % 2) {
        process.stderr.write("usage: node load_check.mjs [-p PROMPT] [-n N] MODEL.gguf...\n");
        process.exit(2);
    }
    return o;
}

async function check(llama, path, o) {
    const model = await llama.loadModel({modelPath: path, gpuLayers: 0, useMmap: true});
    try {
        const context = await model.createContext({contextSize: 256, threads: 2, sequences: 1});
        const seq = context.getSequence();
        const ids = model.tokenize(o.prompt);
        const input = model.tokens.bos != null && ids[0] !== model.tokens.bos
                          ? [model.tokens.bos, ...ids]
                          : ids;
        const out = [];
        for await (const t of seq.evaluate(input, {temperature: 0})) {
            out.push(t);
            if (out.length >= o.n) break;
        }
        const text = model.detokenize(out);
        await context.dispose();
        return {model: path, ok: true, size: model.size, tokens: out, text};
    } finally {
        await model.dispose();
    }
}

// Perplexity of fixed token ids (see the header): probabilities come from controlledEvaluate with
// sampling neutralised (temperature 1, no top-k/top-p/min-p), i.e. the plain softmax.
async function perplexity(llama, path, o) {
    const ids = readFileSync(o.ppl, "utf8").trim().split(/\s+/).map(Number);
    const model = await llama.loadModel({modelPath: path, gpuLayers: 0, useMmap: true});
    try {
        const context = await model.createContext({contextSize: o.nCtx, batchSize: o.nCtx,
                                                   threads: 1, sequences: 1});
        const seq = context.getSequence();
        const nChunk = Math.floor(ids.length / o.nCtx), first = o.nCtx / 2;
        const want = {generateNext: {probabilities: true,
                                     options: {temperature: 1, topK: 0, topP: 1, minP: 0}}};
        let nll = 0, n = 0;
        for (let c = 0; c < nChunk; c++) {
            const tok = ids.slice(c * o.nCtx, (c + 1) * o.nCtx);
            tok[0] = model.tokens.bos ?? tok[0];
            await seq.clearHistory();
            const out = await seq.controlledEvaluate(
                tok.map((t, j) => (j >= first && j < o.nCtx - 1 ? [t, want] : t)));
            for (let j = first; j < o.nCtx - 1; j++) {
                nll -= Math.log(out[j].next.probabilities.get(tok[j + 1]) ?? 0);
                n++;
            }
        }
        await context.dispose();
        return {model: path, ok: true, chunks: nChunk, scored: n, ppl: Math.exp(nll / n)};
    } finally {
        await model.dispose();
    }
}

const o = parseArgs(process.argv.slice(2));
const llama = await getLlama({gpu: false, build: "never", skipDownload: true,
                              usePrebuiltBinaries: true, progressLogs: false,
                              logLevel: LlamaLogLevel.error});
let failed = 0;
for (const path of o.models) {
    try {
        const r = o.ppl ? await perplexity(llama, path, o) : await check(llama, path, o);
        process.stdout.write(JSON.stringify(r) + "\n");
    } catch (e) {
        failed++;
        process.stdout.write(JSON.stringify({model: path, ok: false, error: String(e)}) + "\n");
    }
}
await llama.dispose();
process.exit(failed ? 1 : 0);
