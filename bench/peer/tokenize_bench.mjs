// tokenize_bench.mjs - llama.cpp's tokenizer (through node-llama-cpp, pinned in package.json) as
// the peer of mlxr's: a speed benchmark and a reference-output generator.
//
//   node tokenize_bench.mjs bench VOCAB.gguf TEXT_FILE [REPEATS]
//       tokenizes the whole file (as one string, no special-token parsing) REPEATS times after a
//       warm-up and prints MB/s and the token count, like build/mlxr-bench-tokenize.
//   node tokenize_bench.mjs ref TOKENIZER_DIR OUT.json
//       writes llama.cpp's ids for a fixed, seeded set of texts for every vocabulary in the
//       shared test data (tests/tokenizer/llamacpp_ids.json): plain and with special tokens
//       parsed; add_special is off (node-llama-cpp's tokenize adds no BOS).
import {getLlama} from "node-llama-cpp";
import fs from "node:fs";

const llama = await getLlama({gpu: false, build: "never", skipDownload: true, logLevel: "error"});

async function load(path) {
    return llama.loadModel({modelPath: path, vocabOnly: true});
}

// ---- bench -----------------------------------------------------------------------------------
async function bench(vocab, file, repeats) {
    const text = fs.readFileSync(file, "utf8");
    const bytes = Buffer.byteLength(text, "utf8");
    const model = await load(vocab);
    let n = model.tokenize(text).length; // warm-up
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < repeats; r++) n = model.tokenize(text).length;
    const s = Number(process.hrtime.bigint() - t0) / 1e9 / repeats;
    console.log(`${vocab}: ${bytes} bytes -> ${n} tokens, ${(s * 1e3).toFixed(1)} ms, ` +
                `${(bytes / s / 1e6).toFixed(2)} MB/s (node-llama-cpp ${repeats} runs)`);
    await model.dispose();
}

// ---- reference ids ---------------------------------------------------------------------------
// xorshift32: the same texts on every run
function rng(seed) {
    let x = seed >>> 0 || 1;
    return () => {
        x ^= x << 13; x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5; x >>>= 0;
        return x;
    };
}

// code point ranges: ASCII, spaces and controls, Latin, Greek, Cyrillic, Hebrew, Arabic,
// Devanagari, combining marks, CJK, kana, Hangul, general punctuation (incl. U+2000-U+200F),
// emoji, odd spaces (U+0085, U+00A0, U+1680, U+180E, U+3000), digits of other scripts
const RANGES = [
    [0x20, 0x7e], [0x20, 0x7e], [0x20, 0x7e], [0x61, 0x7a], [0x20, 0x20], [0x09, 0x0d],
    [0xa0, 0x24f], [0x300, 0x36f], [0x391, 0x3c9], [0x400, 0x4ff], [0x5d0, 0x5ea],
    [0x620, 0x669], [0x900, 0x97f], [0x3040, 0x30ff], [0x4e00, 0x4fff], [0xac00, 0xac40],
    [0x2000, 0x206f], [0x1f300, 0x1f64f], [0x85, 0x85], [0x1680, 0x1680], [0x180e, 0x180e],
    [0x3000, 0x3003], [0x660, 0x669], [0xff01, 0xff5e],
];
const PHRASES = [
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Ve", " ", "  ", "\n", "\r\n",
    "\n\n", " \t", "123", "4567", "3.14", "don't", "I'M", "hello", " world", "ÄÖÜ", "naïve",
    "Cửa Việt", "Führer", "🦙.cpp", "😶‍🌫️", "-->", "...", "!!", "$x+y", "~/x", "我想在apple工作",
];
function randomText(next) {
    let s = "";
    const parts = 1 + (next() % 12);
    for (let p = 0; p < parts; p++) {
        if (next() % 3 === 0) {
            s += PHRASES[next() % PHRASES.length];
        } else {
            const [lo, hi] = RANGES[next() % RANGES.length];
            const n = 1 + (next() % 6);
            for (let i = 0; i < n; i++) s += String.fromCodePoint(lo + (next() % (hi - lo + 1)));
        }
    }
    return s;
}

const SPECIAL_TEXTS = [
    "<s>Hello</s>", "a<|endoftext|>b", "[CLS] hi [SEP] there [MASK]", "<unk> x", " <s> ",
    "<｜begin▁of▁sentence｜>x<｜end▁of▁sentence｜>", "<|end|>\n<|user|>\nHi<|end|>\n",
    "<|im_start|>user", ">>TITLE<<x", "<fim-prefix>def<fim-suffix>",
];

async function ref(dir, out) {
    const names = ["llama-spm", "phi-3", "gpt-2", "deepseek-coder", "falcon", "bert-bge"];
    const result = {};
    for (const [k, name] of names.entries()) {
        const model = await load(`${dir}/ggml-vocab-${name}.gguf`);
        const next = rng(1234 + k);
        const texts = [];
        for (let i = 0; i < 150; i++) texts.push(randomText(next));
        const cases = [];
        for (const t of texts.concat(SPECIAL_TEXTS)) {
            cases.push({
                text: t,
                ids: Array.from(model.tokenize(t, false)),
                ids_special: Array.from(model.tokenize(t, true)),
            });
        }
        result[name] = cases;
        await model.dispose();
    }
    fs.writeFileSync(out, JSON.stringify(result) + "\n");
    console.log(`wrote ${out}`);
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === "bench") await bench(a, b, Number(c || 5));
else if (mode === "ref") await ref(a, b);
else console.error("usage: node tokenize_bench.mjs bench VOCAB TEXT [REPEATS] | ref DIR OUT.json");
