/*
 * fuzz_tokenize.c - libFuzzer harness for the tokenizers. The first input byte picks one of the
 * vocabularies of the shared test data (SentencePiece, byte-level BPE with three pre-tokenizers,
 * WordPiece) and the flags (add_special, parse_special); the rest is the text. Every input is
 * tokenized, decoded in one shot and as a stream; the stream must equal the one-shot text, and
 * for the lossless vocabularies (llama-spm, gpt-2) valid UTF-8 must come back unchanged.
 * A broken invariant traps, so the fuzzer reports it as a crash.
 *
 * Run: scripts/fuzz.sh [SECONDS] tokenize   (seeds: fuzz/seeds/tokenize/; the vocabularies
 * come from $MLXR_TESTDATA/tokenizer, default ../shared/testdata/tokenizer)
 */
#include "format/gguf.h"
#include "tokenizer/detok.h"
#include "tokenizer/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static const char *const names[] = {"llama-spm", "gpt-2", "deepseek-coder", "falcon", "bert-bge"};
#define N_VOCAB (sizeof names / sizeof names[0])
static mlxr_vocab *vocabs[N_VOCAB];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *dir = getenv("MLXR_TESTDATA");
    if (!dir || !*dir) dir = "../shared/testdata";
    for (size_t i = 0; i < N_VOCAB; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizer/ggml-vocab-%s.gguf", dir, names[i]);
        mlxr_gguf *g = NULL;
        mlxr_err err = {0};
        if (mlxr_gguf_open(path, &g, &err) || mlxr_vocab_load_gguf(g, &vocabs[i], &err)) {
            fprintf(stderr, "fuzz_tokenize: cannot load %s: %s\n", path, err.msg);
            abort(); /* a setup error, not a finding */
        }
        mlxr_gguf_close(g);
    }
    return 0;
}

/* Strict UTF-8 check (for the round-trip property). */
static bool valid_utf8(const uint8_t *u, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || n - i < k) return false;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return false;
        if ((c == 0xE0 && u[i + 1] < 0xA0) || (c == 0xED && u[i + 1] >= 0xA0) ||
            (c == 0xF0 && u[i + 1] < 0x90) || (c == 0xF4 && u[i + 1] >= 0x90))
            return false;
        i += k;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t sel = data[0];
    const mlxr_vocab *v = vocabs[(sel & 7) % N_VOCAB];
    bool add_special = sel & 8, parse_special = sel & 16, special = sel & 32;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    size_t n = 0;
    mlxr_err err = {0};
    mlxr_status st =
        mlxr_vocab_tokenize(v, text, len, add_special, parse_special, NULL, 0, &n, &err);
    REQUIRE(st == MLXR_OK || st == MLXR_ERR_RANGE);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t n2 = 0;
    st = mlxr_vocab_tokenize(v, text, len, add_special, parse_special, ids, n, &n2, &err);
    REQUIRE(st == MLXR_OK && n2 == n);
    for (size_t i = 0; i < n; i++)
        REQUIRE(ids[i] >= 0 && ids[i] < mlxr_vocab_n_tokens(v));

    size_t dn = 0;
    st = mlxr_vocab_detokenize(v, ids, n, special, NULL, 0, &dn, &err);
    REQUIRE(st == MLXR_OK || st == MLXR_ERR_RANGE);
    char *d = malloc(dn + 1);
    st = mlxr_vocab_detokenize(v, ids, n, special, d, dn, &dn, &err);
    REQUIRE(st == MLXR_OK);

    /* SentencePiece decodes a literal U+2581 in the text as a space, as llama.cpp does */
    bool lossless = (v == vocabs[1] || (v == vocabs[0] && !memmem(text, len, "\xe2\x96\x81", 3))) &&
                    !special && !parse_special;
    if (lossless && valid_utf8(data + 1, len)) REQUIRE(dn == len && !memcmp(d, text, len));

    mlxr_detok_stream *s = NULL;
    REQUIRE(mlxr_vocab_detok_stream_new(v, special, &s, &err) == MLXR_OK);
    char *out = malloc(dn + 8);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        REQUIRE(mlxr_vocab_detok_stream_push(s, ids[i], out + used, dn + 8 - used, &k, &err) ==
                MLXR_OK);
        used += k;
        REQUIRE(used <= dn);
    }
    size_t k = 0;
    REQUIRE(mlxr_vocab_detok_stream_flush(s, out + used, dn + 8 - used, &k, &err) == MLXR_OK);
    used += k;
    REQUIRE(used == dn && !memcmp(out, d, dn));
    mlxr_vocab_detok_stream_free(s);
    free(out);
    free(d);
    free(ids);
    return 0;
}
