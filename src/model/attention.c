/*
 * attention.c - causal multi-head / grouped-query attention over the per-sequence KV cache.
 *
 * Cache layout (per sequence and layer): K as [n_ctx][kv_dim] rows, V transposed as
 * [kv_dim][n_ctx] rows, so that both products below run over contiguous rows:
 *   scores[q][p] = K[p] . Q[q]          (then softmax over p <= pos[q], scaled by 1/sqrt(hd))
 *   out[q][d]    = Vt[d] . P[q]
 * With an F16 cache, Q and P are rounded to F16 for these products, as llama.cpp does.
 *
 * The batch is cut into segments: runs of up to ATT_QCHUNK entries of one sequence at
 * consecutive positions (a prompt is a few long segments; interleaved sequences give segments of
 * one entry). A task is (segment, head); its queries share the keys 0..last position, so both
 * products are tiled matrix products (the type's gemm), with the causal mask applied before the
 * softmax. Positions past a query's own are given probability exactly 0.
 */
#include "kernels/ops.h"
#include "model/model.h"

#include <math.h>
#include <string.h>

/* Byte offsets inside one thread's scratch (see mlxr_attention_scratch). */
static size_t off_q(int32_t n_ctx) {
    return (size_t)ATT_QCHUNK * (size_t)n_ctx * 4;
}
static size_t off_p(int32_t n_ctx, int32_t hd) {
    return off_q(n_ctx) + (size_t)ATT_QCHUNK * (size_t)hd * 4;
}

size_t mlxr_attention_scratch(int32_t n_ctx, int32_t head_dim) {
    /* scores f32, then Q and P in the KV type (4 bytes each reserved, enough for F32) */
    size_t n = off_p(n_ctx, head_dim) + (size_t)ATT_QCHUNK * (size_t)n_ctx * 4;
    return (n + 63) / 64 * 64;
}

/* K row of position p in layer il of sequence s: [kv_dim] elements. */
static uint8_t *k_row(const mlxr_context *c, int32_t s, int32_t il, int32_t p) {
    size_t idx = ((size_t)s * (size_t)c->m->info.n_layer + (size_t)il) * (size_t)c->n_ctx + (size_t)p;
    return (uint8_t *)c->k_cache + idx * (size_t)c->kv_dim * c->kv_elt;
}

/* V row of dimension d in layer il of sequence s: [n_ctx] elements (V is stored transposed). */
static uint8_t *v_row(const mlxr_context *c, int32_t s, int32_t il, int32_t d) {
    size_t idx = ((size_t)s * (size_t)c->m->info.n_layer + (size_t)il) * (size_t)c->kv_dim + (size_t)d;
    return (uint8_t *)c->v_cache + idx * (size_t)c->n_ctx * c->kv_elt;
}

/* Store the batch's K (after RoPE) and V of layer il. */
static void kv_store(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const int32_t KV = c->kv_dim;
    const mlxr_from_float_fn enc =
        c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32].from_float;
    for (int32_t t = 0; t < b->n; t++) {
        const float *k = c->k + (size_t)t * KV, *v = c->v + (size_t)t * KV;
        const int32_t s = b->seq[t], p = b->pos[t];
        enc(k, k_row(c, s, il, p), KV);
        for (int32_t d = 0; d < KV; d++) {
            uint8_t *dst = v_row(c, s, il, d) + (size_t)p * c->kv_elt;
            enc(&v[d], dst, 1);
        }
    }
}

/* y[j][i] = dot(w_i, x_j) with the type's gemm, or its dot product where there is none. */
static void products(const mlxr_type_kernels *tk, int64_t n, int64_t nr, int64_t nc, const void *w,
                     size_t ws, const void *x, size_t xs, float *y, size_t ldy) {
    if (tk->gemm) {
        tk->gemm(n, nr, nc, w, ws, x, xs, y, ldy);
        return;
    }
    for (int64_t j = 0; j < nc; j++)
        for (int64_t i = 0; i < nr; i++)
            tk->vec_dot(n, &y[(size_t)j * ldy + (size_t)i], (const uint8_t *)w + (size_t)i * ws,
                        (const uint8_t *)x + (size_t)j * xs);
}

typedef struct attn_job {
    mlxr_context *c;
    const mlxr_batch *b;
    int32_t il;
    int32_t n_seg;
} attn_job;

static void attn_task(const attn_job *j, int32_t seg, int32_t head, uint8_t *scratch) {
    mlxr_context *c = j->c;
    const mlxr_model_info *h = &c->m->info;
    const int32_t hd = h->head_dim, E = h->n_embd, kvh = head / (h->n_head / h->n_head_kv);
    const int32_t t0 = c->att_seg[seg], nq = c->att_seg[seg + 1] - t0;
    const int32_t s = j->b->seq[t0], p0 = j->b->pos[t0], n_kv = p0 + nq;
    const mlxr_type_kernels *tk =
        &c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32];
    const size_t elt = c->kv_elt;
    float *scores = (float *)scratch;                  /* [nq][n_ctx] */
    uint8_t *q16 = scratch + off_q(c->n_ctx);          /* [nq][hd] in the KV type */
    uint8_t *p16 = scratch + off_p(c->n_ctx, hd);      /* [nq][n_ctx] in the KV type */

    for (int32_t q = 0; q < nq; q++)
        tk->from_float(c->q + (size_t)(t0 + q) * E + (size_t)head * hd, q16 + (size_t)q * hd * elt, hd);
    products(tk, hd, n_kv, nq, k_row(c, s, j->il, 0) + (size_t)kvh * hd * elt,
             (size_t)c->kv_dim * elt, q16, (size_t)hd * elt, scores, (size_t)c->n_ctx);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t q = 0; q < nq; q++) {
        float *row = scores + (size_t)q * c->n_ctx;
        const int32_t valid = p0 + q + 1; /* causal: positions 0..pos */
        mlxr_softmax_f32_ref(row, valid, scale);
        for (int32_t p = valid; p < n_kv; p++) row[p] = 0.0f;
        tk->from_float(row, p16 + (size_t)q * c->n_ctx * elt, n_kv);
    }
    products(tk, n_kv, hd, nq, v_row(c, s, j->il, kvh * hd), (size_t)c->n_ctx * elt, p16,
             (size_t)c->n_ctx * elt, c->xb2 + (size_t)t0 * E + (size_t)head * hd, (size_t)E);
}

static void attn_worker(void *arg, int ith, int nth) {
    const attn_job *j = arg;
    uint8_t *scratch = (uint8_t *)j->c->att + (size_t)ith * j->c->att_stride;
    const int32_t n_head = j->c->m->info.n_head, n_tasks = j->n_seg * n_head;
    for (int32_t task = ith; task < n_tasks; task += nth)
        attn_task(j, task / n_head, task % n_head, scratch);
}

void mlxr_attention(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    kv_store(c, b, il);
    /* segments: runs of one sequence at consecutive positions, at most ATT_QCHUNK long */
    int32_t n_seg = 0;
    c->att_seg[0] = 0;
    for (int32_t t = 1; t <= b->n; t++) {
        const int32_t start = c->att_seg[n_seg];
        if (t == b->n || b->seq[t] != b->seq[t - 1] || b->pos[t] != b->pos[t - 1] + 1 ||
            t - start == ATT_QCHUNK)
            c->att_seg[++n_seg] = t;
    }
    attn_job j = {c, b, il, n_seg};
    mlxr_tp_run(c->tp, attn_worker, &j);
}
