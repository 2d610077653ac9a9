// embed_ref.mjs - llama.cpp's embeddings (the prebuilt CPU build in node-llama-cpp, pinned in
// package.json) for a few texts, written as reference vectors for mlxr's embedding tests.
//
//   node embed_ref.mjs OUT_DIR MODEL.gguf [MODEL.gguf ...]
//
// For each model writes OUT_DIR/<model file name without .gguf>.json:
//   {model, source, pooling: "last", normalized: false, n_embd,
//    texts: [{text, tokens, embedding}], prefixes: {tokens, embeddings: [[...] per prefix]}}
//
// What llama.cpp computes (node-llama-cpp 3.21.1, LlamaEmbeddingContext.getEmbeddingFor): the
// context is made with embeddings on and the model's pooling type; a Llama GGUF without a
// `llama.pooling_type` key gets LLAMA_POOLING_TYPE_NONE, for which node-llama-cpp's addon
// (AddonContext::GetEmbedding) returns llama_get_embeddings_ith(ctx, -1): the last token's
// hidden state after the output RMSNorm (the graph's "result_norm", the input of the output
// projection), NOT normalized. The input is the text's tokens with BOS prepended when the vocab
// asks for it (and EOS appended when it asks for that); those exact ids are written too.
//
// `prefixes` holds, for the first text, the embedding of every prefix of its token ids (BOS, BOS
// + t1, ...). With causal attention the hidden state of token i in the whole sequence equals the
// last one of the prefix ending at i, so these are llama.cpp's per-token vectors: their mean is
// MEAN pooling and the first is CLS (first-token) pooling.
//
// Nothing is downloaded or built (build "never", skipDownload).
import {mkdirSync, writeFileSync} from "node:fs";
import {basename} from "node:path";
import process from "node:process";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const {getLlama, LlamaLogLevel} = await import("node-llama-cpp");

const TEXTS = [
    "The list type is a mutable sequence.",
    "def f(x):\n    return x + 1\n\nThis function adds one.\n",
    "Zürich, naïve café: ∑ of 東京 and 🙂 emoji",
    "A",
];

// Floats to 9 significant digits: float32 round-trips exactly, the files stay small.
const round = (v) => Array.from(v, (x) => Number(x.toPrecision(9)));

async function refFor(llama, path) {
    const model = await llama.loadModel({modelPath: path, gpuLayers: 0, useMmap: true});
    try {
        const ctx = await model.createEmbeddingContext({contextSize: 256, batchSize: 256,
                                                        threads: 1});
        const prep = (ids) => {
            const t = model.tokens;
            if (t.shouldPrependBosToken && t.bos != null && ids[0] !== t.bos) ids.unshift(t.bos);
            if (t.shouldAppendEosToken && t.eos != null && ids.at(-1) !== t.eos) ids.push(t.eos);
            return ids;
        };
        const texts = [];
        for (const text of TEXTS) {
            const tokens = prep(Array.from(model.tokenize(text)));
            const e = await ctx.getEmbeddingFor(tokens);
            texts.push({text, tokens, embedding: round(e.vector)});
        }
        const all = texts[0].tokens;
        const embeddings = [];
        for (let i = 1; i <= all.length; i++)
            embeddings.push(round((await ctx.getEmbeddingFor(all.slice(0, i))).vector));
        await ctx.dispose();
        return {
            model: basename(path),
            source: "llama.cpp via node-llama-cpp 3.21.1 (bench/peer/embed_ref.mjs), CPU",
            pooling: "last",
            normalized: false,
            n_embd: texts[0].embedding.length,
            texts,
            prefixes: {tokens: all, embeddings},
        };
    } finally {
        await model.dispose();
    }
}

const [outDir, ...models] = process.argv.slice(2);
if (!outDir || !models.length) {
    process.stderr.write("usage: node embed_ref.mjs OUT_DIR MODEL.gguf...\n");
    process.exit(2);
}
mkdirSync(outDir, {recursive: true});
const llama = await getLlama({gpu: false, build: "never", skipDownload: true,
                              usePrebuiltBinaries: true, progressLogs: false,
                              logLevel: LlamaLogLevel.error});
for (const path of models) {
    const r = await refFor(llama, path);
    const out = `${outDir}/${basename(path).replace(/\.gguf$/, "")}.json`;
    writeFileSync(out, JSON.stringify(r) + "\n");
    process.stdout.write(`${out}: ${r.texts.length} texts, ` +
                         `${r.prefixes.embeddings.length} prefixes, n_embd ${r.n_embd}\n`);
}
await llama.dispose();
