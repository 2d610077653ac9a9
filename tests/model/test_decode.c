/*
 * test_decode.c - the batch contract of mlxr_decode: bad batches are rejected with a message and
 * leave the KV cache untouched; one batch of the whole prompt equals token-by-token decoding;
 * several sequences in one batch equal each decoded alone; thread counts and ISA levels agree;
 * with batch_invariant, bitwise so whatever the chunking, interleaving and thread count.
 */
#include "test.h"

#include <math.h>

#include "mlxr.h"

static mlxr_context *ctx(mlxr_model *m, int n_seq, int threads, int isa) {
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = 64;
    o.n_seq_max = n_seq;
    o.n_batch = 64;
    o.n_threads = threads;
    o.isa_max = isa;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_OK, "context: %s", err.msg);
    return c;
}

static float maxdiff(const float *a, const float *b, int n) {
    float d = 0;
    for (int i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

int main(void) {
    char *path = test_data_path("models/pydoc-7M/pydoc-7M-q8_0.gguf");
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(path, NULL, &m, &err) == MLXR_OK, "load: %s", err.msg);
    free(path);
    if (!m) return test_finish("model_decode");
    const int V = mlxr_model_get_info(m)->n_vocab;
    const int32_t toks[8] = {1, 368, 565, 605, 269, 13, 728, 436};
    const int32_t pos[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int32_t seq0[16] = {0};

    /* reference: the 8 tokens one by one; keep the last logits */
    mlxr_context *a = ctx(m, 1, 2, 0);
    for (int i = 0; i < 8; i++) {
        mlxr_batch b = {1, &toks[i], &pos[i], seq0, NULL};
        CHECK(mlxr_decode(a, &b, &err) == MLXR_OK, "decode %d: %s", i, err.msg);
    }
    float *ref = malloc(V * sizeof *ref);
    memcpy(ref, mlxr_get_logits(a, 0), V * sizeof *ref);

    /* rejected batches: the cache must stay as it was */
    const int32_t bad_tok[1] = {V}, p8[1] = {8}, p9[1] = {9}, p0[1] = {0}, s1[1] = {1};
    mlxr_batch rej[] = {
        {1, bad_tok, p8, seq0, NULL}, /* token out of range */
        {1, toks, p9, seq0, NULL},    /* position gap */
        {1, toks, p0, seq0, NULL},    /* position rewinds */
        {1, toks, p8, s1, NULL},      /* sequence out of range */
        {0, toks, p8, seq0, NULL},    /* empty */
        {65, toks, p8, seq0, NULL},   /* larger than n_batch */
    };
    for (size_t i = 0; i < sizeof rej / sizeof *rej; i++) {
        mlxr_err e = {0};
        CHECK(mlxr_decode(a, &rej[i], &e) != MLXR_OK && e.msg[0], "bad batch %zu accepted", i);
    }
    CHECK(mlxr_decode(NULL, &rej[0], NULL) == MLXR_ERR_INVALID, "null context");
    /* a batch whose second entry is bad must not write the first entry either */
    int32_t two_t[2] = {5, V + 3}, two_p[2] = {8, 9};
    mlxr_batch half = {2, two_t, two_p, seq0, NULL};
    CHECK(mlxr_decode(a, &half, &err) == MLXR_ERR_RANGE, "half-bad batch rejected");
    /* after all that, decoding token 9 continues exactly where it was: bitwise what a context
     * that saw no rejected batch gives for the same steps (the same steps keep the same float
     * order on every ISA, where a 9-token batch would not) */
    mlxr_context *a2 = ctx(m, 1, 2, 0);
    int32_t all9[9] = {1, 368, 565, 605, 269, 13, 728, 436, 42}, pos9[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < 9; i++) {
        mlxr_batch step = {1, &all9[i], &pos9[i], seq0, NULL};
        CHECK(mlxr_decode(a2, &step, &err) == MLXR_OK, "step %d: %s", i, err.msg);
    }
    mlxr_batch next = {1, &all9[8], &pos9[8], seq0, NULL};
    CHECK(mlxr_decode(a, &next, &err) == MLXR_OK, "continue after rejects: %s", err.msg);
    CHECK(!memcmp(mlxr_get_logits(a, 0), mlxr_get_logits(a2, 0), V * sizeof(float)),
          "cache changed by rejected batches");
    float d;

    /* whole prompt in one batch == token by token; the first 7 logits requested too */
    mlxr_context *b1 = ctx(m, 1, 1, 0);
    int8_t want[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    mlxr_batch all = {8, toks, pos, seq0, want};
    CHECK(mlxr_decode(b1, &all, &err) == MLXR_OK, "batch: %s", err.msg);
    d = maxdiff(mlxr_get_logits(b1, 7), ref, V);
    CHECK(d < 1e-3f, "batched vs incremental logits: max |d| %g", (double)d);
    CHECK(mlxr_get_logits(b1, 3) != NULL && mlxr_get_logits(b1, 8) == NULL, "logit rows");

    /* two sequences interleaved in one batch == each alone */
    mlxr_context *c2 = ctx(m, 2, 2, 0);
    int32_t it[16], ip[16], is[16];
    for (int i = 0; i < 8; i++) {
        it[2 * i] = toks[i], ip[2 * i] = i, is[2 * i] = 0;
        it[2 * i + 1] = toks[7 - i], ip[2 * i + 1] = i, is[2 * i + 1] = 1;
    }
    int8_t w2[16] = {0};
    w2[14] = w2[15] = 1;
    mlxr_batch inter = {16, it, ip, is, w2};
    CHECK(mlxr_decode(c2, &inter, &err) == MLXR_OK, "two sequences: %s", err.msg);
    d = maxdiff(mlxr_get_logits(c2, 14), ref, V);
    CHECK(d < 1e-3f, "sequence 0 in a shared batch: max |d| %g", (double)d);
    int32_t rev[8];
    for (int i = 0; i < 8; i++) rev[i] = toks[7 - i];
    mlxr_context *c3 = ctx(m, 1, 2, 1);
    mlxr_batch rb = {8, rev, pos, seq0, NULL};
    CHECK(mlxr_decode(c3, &rb, &err) == MLXR_OK, "reverse: %s", err.msg);
    d = maxdiff(mlxr_get_logits(c2, 15), mlxr_get_logits(c3, 7), V);
    /* Across ISAs float sums run in another order; with Q8_0 activations a flipped rounding of
     * one quantum can follow (see reference/README.md), so allow 1% of the ~20 logit scale. */
    CHECK(d < 0.2f, "sequence 1 in a shared batch (vs scalar ISA alone): max |d| %g", (double)d);

    /* batch_invariant: a sequence's logits are bitwise the same alone, chunked, or interleaved
     * with another sequence (the engine relies on it for exact batched greedy outputs) */
    {
        mlxr_context_opts io = mlxr_context_default_opts();
        io.n_ctx = 64;
        io.n_seq_max = 2;
        io.n_batch = 64;
        io.n_threads = 2;
        io.batch_invariant = true;
        mlxr_context *ia = NULL, *ib = NULL;
        CHECK(mlxr_context_new(m, &io, &ia, &err) == MLXR_OK, "invariant ctx: %s", err.msg);
        io.n_threads = 1;
        CHECK(mlxr_context_new(m, &io, &ib, &err) == MLXR_OK, "invariant ctx: %s", err.msg);
        mlxr_batch whole = {8, toks, pos, seq0, NULL};
        CHECK(mlxr_decode(ia, &whole, &err) == MLXR_OK, "whole: %s", err.msg);
        float *alone = malloc(V * sizeof *alone);
        memcpy(alone, mlxr_get_logits(ia, 7), V * sizeof *alone);
        /* the same prompt in chunks of 3, 1, 4, interleaved with sequence 1's tokens */
        int32_t ct[16], cp[16], cs[16];
        int n = 0, done = 0;
        const int chunks[3] = {3, 1, 4};
        for (int k = 0; k < 3; k++) {
            n = 0;
            for (int i = 0; i < chunks[k]; i++, done++) {
                ct[n] = toks[done], cp[n] = done, cs[n++] = 0;
                ct[n] = toks[7 - done], cp[n] = done, cs[n++] = 1;
            }
            int8_t wl[16] = {0};
            wl[n - 2] = 1;
            mlxr_batch cb = {n, ct, cp, cs, wl};
            CHECK(mlxr_decode(ib, &cb, &err) == MLXR_OK, "chunk %d: %s", k, err.msg);
        }
        CHECK(!memcmp(mlxr_get_logits(ib, n - 2), alone, V * sizeof *alone),
              "batch_invariant: chunked + interleaved logits differ from alone");
        free(alone);
        mlxr_context_free(ia);
        mlxr_context_free(ib);
    }

    /* clearing a sequence lets it start again at position 0 */
    mlxr_kv_clear(c3, 0);
    CHECK(mlxr_decode(c3, &rb, &err) == MLXR_OK, "after clear: %s", err.msg);

    /* context full */
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = 4;
    o.n_threads = 1;
    mlxr_context *small = NULL;
    CHECK(mlxr_context_new(m, &o, &small, &err) == MLXR_OK, "small ctx");
    mlxr_batch five = {5, toks, pos, seq0, NULL};
    CHECK(small && mlxr_decode(small, &five, &err) == MLXR_ERR_RANGE, "context overflow rejected");

    mlxr_context_free(small);
    mlxr_context_free(a);
    mlxr_context_free(a2);
    mlxr_context_free(b1);
    mlxr_context_free(c2);
    mlxr_context_free(c3);
    mlxr_context_free(NULL);
    free(ref);
    mlxr_model_free(m);
    mlxr_model_free(NULL);

    /* load errors */
    CHECK(mlxr_model_load("/nonexistent/x.gguf", NULL, &m, &err) == MLXR_ERR_IO && m == NULL,
          "missing file -> IO error");
    char *tok_only = test_data_path("tokenizer/ggml-vocab-llama-spm.gguf");
    CHECK(mlxr_model_load(tok_only, NULL, &m, &err) != MLXR_OK && strstr(err.msg, "tensor"),
          "vocab-only file rejected naming a tensor: %s", err.msg);
    free(tok_only);
    return test_finish("model_decode");
}
