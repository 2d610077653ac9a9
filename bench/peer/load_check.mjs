// load_check.mjs - does llama.cpp (the prebuilt CPU build in node-llama-cpp, pinned in
// package.json) load a GGUF file and generate from it? Used to check files written by
// `mlxr quantize`.
//
//   node load_check.mjs [-p PROMPT] [-n N] MODEL.gguf [MODEL.gguf ...]
//
// For each model: load it (CPU, mmap), tokenize PROMPT with BOS, greedily generate N tokens
// (temperature 0) and print one JSON line {model, ok, size, tokens, text} or
// {model, ok: false, error}. Exit status 1 if any model failed to load or generate. Nothing is
// downloaded or built (build "never", skipDownload).
import process from "node:process";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");

function parseArgs(argv) {
    const o = {prompt: "The list type", n: 16, models: []};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "-p") o.prompt = argv[++i];
        else if (a === "-n") o.n = Number(argv[++i]);
        else if (a === "-h" || a === "--help") {
            process.stdout.write("usage: node load_check.mjs [-p PROMPT] [-n N] MODEL.gguf...\n");
            process.exit(0);
        } else o.models.push(a);
    }
    if (!o.models.length || !Number.isInteger(o.n) || o.n < 1) {
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

const o = parseArgs(process.argv.slice(2));
const llama = await getLlama({gpu: false, build: "never", skipDownload: true,
                              usePrebuiltBinaries: true, progressLogs: false,
                              logLevel: LlamaLogLevel.error});
let failed = 0;
for (const path of o.models) {
    try {
        process.stdout.write(JSON.stringify(await check(llama, path, o)) + "\n");
    } catch (e) {
        failed++;
        process.stdout.write(JSON.stringify({model: path, ok: false, error: String(e)}) + "\n");
    }
}
await llama.dispose();
process.exit(failed ? 1 : 0);
