/*
 * embed.c - embeddings: a pooled vector of the final hidden states of a token sequence.
 *
 * The hidden state of a token is the forward pass's last activation before the output
 * projection: rmsnorm(x) * g_out (llama.cpp's "result_norm"). mlxr_embed runs the tokens through
 * mlxr_decode on an empty sequence with two context fields set (model.h): embd_out, which makes
 * llama.c copy the normed rows of the entries that "want logits" into our buffer, and
 * embd_only, which skips the output projection (n_vocab x n_embd per row: by far the largest
 * product for a small model, and useless here). Only the rows the pooling needs are asked for:
 * all of them for MEAN and NONE, the first for CLS, the last for LAST. The sequence is cleared
 * afterwards, on success and on failure, so the context is left as it was.
 *
 * MEAN sums in double, then divides; normalization is L2 in double (as llama.cpp's
 * common_embd_normalize with embd_norm = 2).
 */
#include "model/model.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int32_t mlxr_model_n_embd(const mlxr_model *m) {
    return m ? m->info.n_embd : 0;
}

/* Scratch of one mlxr_embed call, sized for one chunk of n_batch tokens. */
typedef struct embed_scratch {
    int32_t *pos, *seq; /* [n_batch] */
    int8_t *want;       /* [n_batch] rows to keep */
    float *rows;        /* [n_batch][n_embd] hidden states of the wanted rows */
    double *sum;        /* [n_embd] MEAN accumulator */
} embed_scratch;

static void scratch_free(embed_scratch *s) {
    free(s->pos);
    free(s->seq);
    free(s->want);
    free(s->rows);
    free(s->sum);
}

static mlxr_status scratch_alloc(embed_scratch *s, size_t B, size_t E, mlxr_err *err) {
    s->pos = calloc(B, sizeof *s->pos);
    s->seq = calloc(B, sizeof *s->seq);
    s->want = calloc(B, sizeof *s->want);
    s->rows = B <= SIZE_MAX / E / sizeof(float) ? calloc(B * E, sizeof(float)) : NULL;
    s->sum = calloc(E, sizeof *s->sum);
    if (!s->pos || !s->seq || !s->want || !s->rows || !s->sum)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "embed: out of memory for a batch of %zu tokens", B);
    return MLXR_OK;
}

static mlxr_status check_args(const mlxr_context *c, const int32_t *tokens, int32_t n,
                              mlxr_pooling pooling, const float *out, mlxr_err *err) {
    if (!c || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "embed: NULL context or output");
    if (pooling != MLXR_POOLING_NONE && pooling != MLXR_POOLING_MEAN &&
        pooling != MLXR_POOLING_CLS && pooling != MLXR_POOLING_LAST)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "embed: unknown pooling %d", (int)pooling);
    if (n <= 0 || !tokens)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "embed: empty input (no tokens)");
    if (n > c->n_ctx)
        return MLXR_FAIL(err, MLXR_ERR_RANGE,
                         "embed: input of %d tokens exceeds the context size of %d tokens", n,
                         c->n_ctx);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->m->info.n_vocab)
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "embed: token %d at index %d out of range 0..%d",
                             tokens[i], i, c->m->info.n_vocab - 1);
    if (c->gpu)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "embed: not available on a CUDA context (n_gpu_layers != 0)");
    return MLXR_OK;
}

/* Which entry i of the whole input the pooling needs. */
static bool wanted(mlxr_pooling pooling, int32_t i, int32_t n) {
    switch (pooling) {
    case MLXR_POOLING_CLS:
        return i == 0;
    case MLXR_POOLING_LAST:
        return i == n - 1;
    default:
        return true;
    }
}

/* Decode tokens[0..n) on sequence s in chunks, pooling the wanted rows into out (or s->sum). */
static mlxr_status run_chunks(mlxr_context *c, int32_t s_id, const int32_t *tokens, int32_t n,
                              mlxr_pooling pooling, embed_scratch *s, float *out, mlxr_err *err) {
    const size_t E = (size_t)c->m->info.n_embd;
    for (int32_t i0 = 0; i0 < n; i0 += c->n_batch) {
        const int32_t T = n - i0 < c->n_batch ? n - i0 : c->n_batch;
        int32_t R = 0;
        for (int32_t t = 0; t < T; t++) {
            s->pos[t] = i0 + t;
            s->seq[t] = s_id;
            s->want[t] = wanted(pooling, i0 + t, n);
            R += s->want[t];
        }
        mlxr_batch b = {T, tokens + i0, s->pos, s->seq, s->want};
        mlxr_status st = mlxr_decode(c, &b, err);
        if (st != MLXR_OK) return st;
        /* rows come back in batch order, wanted entries only */
        for (int32_t r = 0; r < R; r++) {
            const float *h = s->rows + (size_t)r * E;
            if (pooling == MLXR_POOLING_MEAN)
                for (size_t k = 0; k < E; k++)
                    s->sum[k] += h[k];
            else if (pooling == MLXR_POOLING_NONE)
                memcpy(out + (size_t)(i0 + r) * E, h, E * sizeof *h);
            else
                memcpy(out, h, E * sizeof *h);
        }
    }
    if (pooling == MLXR_POOLING_MEAN)
        for (size_t k = 0; k < E; k++)
            out[k] = (float)(s->sum[k] / n);
    return MLXR_OK;
}

/* Scale each of `rows` vectors of E floats to unit L2 norm (zero vectors stay zero). */
static void normalize_rows(float *v, int32_t rows, size_t E) {
    for (int32_t r = 0; r < rows; r++) {
        float *x = v + (size_t)r * E;
        double ss = 0;
        for (size_t k = 0; k < E; k++)
            ss += (double)x[k] * x[k];
        const double scale = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        for (size_t k = 0; k < E; k++)
            x[k] = (float)(x[k] * scale);
    }
}

mlxr_status mlxr_embed(mlxr_context *c, const int32_t *tokens, int32_t n, mlxr_pooling pooling,
                       bool normalize, float *out, mlxr_err *err) {
    mlxr_status st = check_args(c, tokens, n, pooling, out, err);
    if (st != MLXR_OK) return st;
    int32_t s_id = -1;
    for (int32_t s = 0; s < c->n_seq && s_id < 0; s++)
        if (mlxr_kv_seq_len(c, s) == 0) s_id = s;
    if (s_id < 0)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "embed: no empty sequence among the context's %d",
                         c->n_seq);
    const size_t E = (size_t)c->m->info.n_embd;
    embed_scratch s = {0};
    st = scratch_alloc(&s, (size_t)c->n_batch, E, err);
    if (st == MLXR_OK) {
        c->embd_out = s.rows;
        c->embd_only = true;
        st = run_chunks(c, s_id, tokens, n, pooling, &s, out, err);
        c->embd_out = NULL;
        c->embd_only = false;
        c->n_batch_last = 0; /* no logits were computed: mlxr_get_logits returns NULL */
        mlxr_kv_clear(c, s_id);
    }
    scratch_free(&s);
    if (st == MLXR_OK && normalize) normalize_rows(out, pooling == MLXR_POOLING_NONE ? n : 1, E);
    return st;
}
