/*
 * llama.c - the Llama forward pass over a batch of (token, position, sequence) entries.
 *
 * Per layer:  x += Wo . attn(rope(Wq . n1), rope(Wk . n1), Wv . n1),  n1 = rmsnorm(x) * g1
 *             x += Wdown . (silu(Wgate . n2) * (Wup . n2)),           n2 = rmsnorm(x) * g2
 * then logits = Wout . (rmsnorm(x) * g_out) for the entries that asked for them.
 *
 * Numerics follow llama.cpp's CPU path so that outputs match its references: activations are
 * encoded to the weight type's vec_dot_type before each matrix product (F16 for F16 weights,
 * Q8_0 blocks for Q8_0/Q4_0); with an F16 KV cache, K and V are stored as F16, Q is rounded to
 * F16 for Q.K, and the softmax probabilities to F16 for P.V.
 *
 * The batch was validated by mlxr_decode, so nothing here can fail. Work is split across the
 * context's thread pool: matrix products by output rows, attention (attention.c) by heads.
 */
#include "kernels/ops.h"
#include "model/model.h"
#include "util/fp16.h"

#include <math.h>
#include <string.h>

/* ---- matrix products ------------------------------------------------------------------- */

typedef struct matmul_job {
    const mlxr_context *c;
    const mlxr_weight *w; /* [ne1][ne0] */
    const void *xq;       /* [T] rows of ne0 elements in w's vec_dot_type, stride c->xq_row */
    float *y;             /* [T][ne1] */
    int32_t T;
} matmul_job;

/* Weight rows per tile: a tile stays in cache while every token of the batch passes over it. */
#define TILE_ROWS 16
/* With a tiled kernel: rows x tokens per call (~64 KiB of Q8_0 weights, 32 activation rows). */
#define GEMM_ROWS 32
#define GEMM_COLS 32

static void matmul_worker(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    const mlxr_weight *w = j->w;
    const mlxr_type_kernels *tk = &j->c->kern.type[w->type];
    const int64_t N = w->ne1;
    /* contiguous row ranges per thread keep each thread's weight reads sequential */
    const int64_t per = (N + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < N ? r0 + per : N;
    const uint8_t *wd = w->data;
    const size_t xs = j->c->xq_row;
    if (tk->gemm && j->T > 1 && !j->c->batch_invariant) {
        for (int64_t rt = r0; rt < r1; rt += GEMM_ROWS) {
            const int64_t nr = rt + GEMM_ROWS < r1 ? GEMM_ROWS : r1 - rt;
            for (int32_t t = 0; t < j->T; t += GEMM_COLS) {
                const int64_t nc = t + GEMM_COLS < j->T ? GEMM_COLS : j->T - t;
                tk->gemm(w->ne0, nr, nc, wd + (size_t)rt * w->row_bytes, w->row_bytes,
                         (const uint8_t *)j->xq + (size_t)t * xs, xs,
                         j->y + (size_t)t * (size_t)N + (size_t)rt, (size_t)N);
            }
        }
        return;
    }
    for (int64_t rt = r0; rt < r1; rt += TILE_ROWS) {
        const int64_t rend = rt + TILE_ROWS < r1 ? rt + TILE_ROWS : r1;
        for (int32_t t = 0; t < j->T; t++) {
            const void *x = (const uint8_t *)j->xq + (size_t)t * xs;
            float *y = j->y + (size_t)t * (size_t)N;
            for (int64_t r = rt; r < rend; r++)
                tk->vec_dot(w->ne0, &y[r], wd + (size_t)r * w->row_bytes, x);
        }
    }
}

typedef struct encode_job {
    const mlxr_context *c;
    mlxr_from_float_fn enc;
    const float *x; /* [T][n] */
    int64_t n;
    int32_t T;
} encode_job;

static void encode_worker(void *arg, int ith, int nth) {
    const encode_job *j = arg;
    for (int32_t t = ith; t < j->T; t += nth)
        j->enc(j->x + (size_t)t * (size_t)j->n, (uint8_t *)j->c->xq + (size_t)t * j->c->xq_row, j->n);
}

/* Encode x [T][w->ne0] into c->xq in w's vec_dot_type. */
static void encode_for(mlxr_context *c, const mlxr_weight *w, const float *x, int32_t T) {
    const mlxr_dtype vt = c->kern.type[w->type].vec_dot_type;
    encode_job ej = {c, c->kern.type[vt].from_float, x, w->ne0, T};
    if (T == 1)
        encode_worker(&ej, 0, 1);
    else
        mlxr_tp_run(c->tp, encode_worker, &ej);
}

/* y [T][w->ne1] = x [T][w->ne0] . w^T, with x already encoded for w by encode_for. */
static void matmul_encoded(mlxr_context *c, const mlxr_weight *w, float *y, int32_t T) {
    matmul_job j = {c, w, c->xq, y, T};
    mlxr_tp_run(c->tp, matmul_worker, &j);
}

static void matmul(mlxr_context *c, const mlxr_weight *w, const float *x, float *y, int32_t T) {
    encode_for(c, w, x, T);
    matmul_encoded(c, w, y, T);
}

/* ---- the pass ------------------------------------------------------------------------------ */

static void embed(mlxr_context *c, const mlxr_batch *b) {
    const mlxr_model *m = c->m;
    const mlxr_to_float_fn dec = c->kern.type[m->tok_embd.type].to_float;
    for (int32_t t = 0; t < b->n; t++)
        dec((const uint8_t *)m->tok_embd.data + (size_t)b->token[t] * m->tok_embd.row_bytes,
            c->x + (size_t)t * (size_t)m->info.n_embd, m->info.n_embd);
}

static void rmsnorm_rows(const float *x, const mlxr_weight *g, float *y, int32_t T, int64_t n,
                         float eps) {
    for (int32_t t = 0; t < T; t++)
        mlxr_rmsnorm_f32_ref(x + (size_t)t * n, g->data, y + (size_t)t * n, n, eps);
}

static void attention_block(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const mlxr_model_info *h = &c->m->info;
    const mlxr_layer *L = &c->m->layers[il];
    const int32_t T = b->n, E = h->n_embd;
    rmsnorm_rows(c->x, &L->attn_norm, c->xb, T, E, h->rms_eps);
    /* Q, K and V share their input; encode it once when their vec_dot_types agree */
    encode_for(c, &L->wq, c->xb, T);
    matmul_encoded(c, &L->wq, c->q, T);
    if (c->kern.type[L->wk.type].vec_dot_type != c->kern.type[L->wq.type].vec_dot_type)
        encode_for(c, &L->wk, c->xb, T);
    matmul_encoded(c, &L->wk, c->k, T);
    if (c->kern.type[L->wv.type].vec_dot_type != c->kern.type[L->wk.type].vec_dot_type)
        encode_for(c, &L->wv, c->xb, T);
    matmul_encoded(c, &L->wv, c->v, T);
    float *cs = c->rope_cs;
    for (int32_t t = 0; t < T; t++) {
        mlxr_rope_f32_ref(c->q + (size_t)t * E, h->n_head, h->head_dim, h->n_rot, b->pos[t],
                          h->rope_freq_base, cs);
        mlxr_rope_f32_ref(c->k + (size_t)t * c->kv_dim, h->n_head_kv, h->head_dim, h->n_rot,
                          b->pos[t], h->rope_freq_base, cs);
    }
    mlxr_attention(c, b, il); /* K/V into the cache, attention into xb2 */
    matmul(c, &L->wo, c->xb2, c->xb, T);
    for (int32_t t = 0; t < T; t++)
        mlxr_add_f32_ref(c->x + (size_t)t * E, c->xb + (size_t)t * E, E);
}

static void ffn_block(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const mlxr_model_info *h = &c->m->info;
    const mlxr_layer *L = &c->m->layers[il];
    const int32_t T = b->n, E = h->n_embd, F = h->n_ff;
    rmsnorm_rows(c->x, &L->ffn_norm, c->xb, T, E, h->rms_eps);
    encode_for(c, &L->w_gate, c->xb, T);
    matmul_encoded(c, &L->w_gate, c->hb, T);
    if (c->kern.type[L->w_up.type].vec_dot_type != c->kern.type[L->w_gate.type].vec_dot_type)
        encode_for(c, &L->w_up, c->xb, T);
    matmul_encoded(c, &L->w_up, c->hb2, T);
    for (int32_t t = 0; t < T; t++)
        mlxr_swiglu_f32_ref(c->hb + (size_t)t * F, c->hb2 + (size_t)t * F, F);
    matmul(c, &L->w_down, c->hb, c->xb, T);
    for (int32_t t = 0; t < T; t++)
        mlxr_add_f32_ref(c->x + (size_t)t * E, c->xb + (size_t)t * E, E);
}

void mlxr_llama_forward(mlxr_context *c, const mlxr_batch *b) {
    const mlxr_model *m = c->m;
    const mlxr_model_info *h = &m->info;
    const int32_t E = h->n_embd;
    embed(c, b);
    for (int32_t il = 0; il < h->n_layer; il++) {
        attention_block(c, b, il);
        ffn_block(c, b, il);
    }
    /* gather the rows that want logits, then one product for all of them */
    int32_t R = 0;
    for (int32_t t = 0; t < b->n; t++) {
        if (c->logit_row[t] < 0) continue;
        mlxr_rmsnorm_f32_ref(c->x + (size_t)t * E, m->output_norm.data, c->xb + (size_t)R * E, E,
                             h->rms_eps);
        R++;
    }
    if (R > 0) matmul(c, &m->output, c->xb, c->logits, R);
}
