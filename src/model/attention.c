/*
 * attention.c - causal multi-head / grouped-query attention over the paged KV cache.
 *
 * Cache layout (kv/kv.h): per block of 32 positions and layer, K as [32][kv_dim] rows and V
 * transposed as [kv_dim][32] rows, so that both products below run over contiguous rows:
 *   scores[q][p] = K[p] . Q[q]          (then softmax over p <= pos[q], scaled by 1/sqrt(hd))
 *   out[q][d]    = sum over blocks of Vt_block[d] . P[q][block]
 * With an F16 cache, Q and P are rounded to F16 for these products, as llama.cpp does. The
 * products read each block where it lies, through the sequence's block table; nothing is copied
 * into a contiguous buffer. Q.K is bitwise what one product over all positions gives (blocks
 * start at multiples of the kernels' 4-row tiles); P.V sums per-block partial dot products, which
 * reorders that sum's float additions only.
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

static size_t off_o(int32_t n_ctx, int32_t hd) {
    return off_p(n_ctx, hd) + (size_t)ATT_QCHUNK * (size_t)n_ctx * 4;
}

size_t mlxr_attention_scratch(int32_t n_ctx, int32_t head_dim) {
    /* scores f32, Q and P in the KV type (4 bytes each reserved, enough for F32), partial P.V */
    size_t n = off_o(n_ctx, head_dim) + (size_t)ATT_QCHUNK * (size_t)head_dim * 4;
    return (n + 63) / 64 * 64;
}

/* K rows of block `blk` in layer il: [MLXR_KV_BLOCK][kv_dim]. */
static uint8_t *k_block(const mlxr_context *c, int32_t blk, int32_t il) {
    const mlxr_kv_pool *p = &c->kv;
    return p->k + ((size_t)blk * (size_t)p->n_layer + (size_t)il) * p->layer_bytes;
}

/* V rows (transposed) of block `blk` in layer il: [kv_dim][MLXR_KV_BLOCK]. */
static uint8_t *v_block(const mlxr_context *c, int32_t blk, int32_t il) {
    const mlxr_kv_pool *p = &c->kv;
    return p->v + ((size_t)blk * (size_t)p->n_layer + (size_t)il) * p->layer_bytes;
}

/* Block holding position pos of sequence s. */
static int32_t block_of(const mlxr_context *c, int32_t s, int32_t pos) {
    return c->kv.table[(size_t)s * (size_t)c->kv.max_blocks + (size_t)(pos / MLXR_KV_BLOCK)];
}

/* Store the batch's K (after RoPE) and V of layer il (the blocks were allocated by mlxr_decode). */
static void kv_store(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const int32_t KV = c->kv_dim;
    const size_t elt = c->kv_elt;
    const mlxr_from_float_fn enc =
        c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32].from_float;
    for (int32_t t = 0; t < b->n; t++) {
        const float *k = c->k + (size_t)t * KV, *v = c->v + (size_t)t * KV;
        const int32_t blk = block_of(c, b->seq[t], b->pos[t]), row = b->pos[t] % MLXR_KV_BLOCK;
        enc(k, k_block(c, blk, il) + (size_t)row * KV * elt, KV);
        uint8_t *vb = v_block(c, blk, il) + (size_t)row * elt;
        for (int32_t d = 0; d < KV; d++)
            enc(&v[d], vb + (size_t)d * MLXR_KV_BLOCK * elt, 1);
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

/*
 * Batch-invariant attention of one query (batch entry t, sequence s, position pos) and one head:
 * the products run over exactly the positions the query sees, through the same kernels a
 * one-entry segment of attn_task uses (a product with one column), so the result is bitwise that
 * of the query decoded alone, whatever segment it sits in (scratch as attn_task's, one row each).
 */
static void attn_query(mlxr_context *c, int32_t il, int32_t t, int32_t s, int32_t pos, int32_t head,
                       uint8_t *scratch) {
    const mlxr_model_info *h = &c->m->info;
    const int32_t hd = h->head_dim, E = h->n_embd, kvh = head / (h->n_head / h->n_head_kv);
    const int32_t BS = MLXR_KV_BLOCK, valid = pos + 1, n_blk = mlxr_kv_blocks_for(valid);
    const mlxr_type_kernels *tk =
        &c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32];
    const size_t elt = c->kv_elt, kvs = (size_t)c->kv_dim * elt;
    float *row = (float *)scratch;                          /* [valid] */
    uint8_t *q16 = scratch + off_q(c->n_ctx);               /* [hd] */
    uint8_t *p16 = scratch + off_p(c->n_ctx, hd);           /* [valid] */
    float *part = (float *)(scratch + off_o(c->n_ctx, hd)); /* [hd] */
    float *out = c->xb2 + (size_t)t * E + (size_t)head * hd;

    tk->from_float(c->q + (size_t)t * E + (size_t)head * hd, q16, hd);
    for (int32_t ib = 0; ib < n_blk; ib++) {
        const int32_t rows = valid - ib * BS < BS ? valid - ib * BS : BS;
        const uint8_t *kb = k_block(c, block_of(c, s, ib * BS), il) + (size_t)kvh * hd * elt;
        products(tk, hd, rows, 1, kb, kvs, q16, (size_t)hd * elt, row + (size_t)ib * BS, 0);
    }
    mlxr_softmax_f32_ref(row, valid, 1.0f / sqrtf((float)hd));
    tk->from_float(row, p16, valid);
    for (int32_t ib = 0; ib < n_blk; ib++) {
        const int32_t rows = valid - ib * BS < BS ? valid - ib * BS : BS;
        const uint8_t *vb = v_block(c, block_of(c, s, ib * BS), il) + (size_t)kvh * hd * BS * elt;
        products(tk, rows, hd, 1, vb, (size_t)BS * elt, p16 + (size_t)ib * BS * elt, 0,
                 ib == 0 ? out : part, (size_t)hd);
        if (ib > 0)
            for (int32_t d = 0; d < hd; d++)
                out[d] += part[d];
    }
}

static void attn_task(const attn_job *j, int32_t seg, int32_t head, uint8_t *scratch) {
    mlxr_context *c = j->c;
    const mlxr_model_info *h = &c->m->info;
    const int32_t hd = h->head_dim, E = h->n_embd, kvh = head / (h->n_head / h->n_head_kv);
    const int32_t t0 = c->att_seg[seg], nq = c->att_seg[seg + 1] - t0;
    const int32_t s = j->b->seq[t0], p0 = j->b->pos[t0], n_kv = p0 + nq;
    if (c->batch_invariant) {
        for (int32_t q = 0; q < nq; q++)
            attn_query(c, j->il, t0 + q, s, p0 + q, head, scratch);
        return;
    }
    const int32_t BS = MLXR_KV_BLOCK, n_blk = mlxr_kv_blocks_for(n_kv);
    const mlxr_type_kernels *tk =
        &c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32];
    const size_t elt = c->kv_elt, ctx = (size_t)c->n_ctx;
    float *scores = (float *)scratch;                       /* [nq][n_ctx] */
    uint8_t *q16 = scratch + off_q(c->n_ctx);               /* [nq][hd] in the KV type */
    uint8_t *p16 = scratch + off_p(c->n_ctx, hd);           /* [nq][n_ctx] in the KV type */
    float *part = (float *)(scratch + off_o(c->n_ctx, hd)); /* [nq][hd] one block's P.V */

    for (int32_t q = 0; q < nq; q++)
        tk->from_float(c->q + (size_t)(t0 + q) * E + (size_t)head * hd, q16 + (size_t)q * hd * elt,
                       hd);
    for (int32_t ib = 0; ib < n_blk; ib++) {
        const int32_t rows = n_kv - ib * BS < BS ? n_kv - ib * BS : BS;
        products(tk, hd, rows, nq,
                 k_block(c, block_of(c, s, ib * BS), j->il) + (size_t)kvh * hd * elt,
                 (size_t)c->kv_dim * elt, q16, (size_t)hd * elt, scores + (size_t)ib * BS, ctx);
    }
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t q = 0; q < nq; q++) {
        float *row = scores + (size_t)q * ctx;
        const int32_t valid = p0 + q + 1; /* causal: positions 0..pos */
        mlxr_softmax_f32_ref(row, valid, scale);
        for (int32_t p = valid; p < n_kv; p++)
            row[p] = 0.0f;
        tk->from_float(row, p16 + (size_t)q * ctx * elt, n_kv);
    }
    float *out = c->xb2 + (size_t)t0 * E + (size_t)head * hd; /* [nq] rows, stride E */
    for (int32_t ib = 0; ib < n_blk; ib++) {
        const int32_t rows = n_kv - ib * BS < BS ? n_kv - ib * BS : BS;
        const uint8_t *vb =
            v_block(c, block_of(c, s, ib * BS), j->il) + (size_t)kvh * hd * BS * elt;
        float *y = ib == 0 ? out : part;
        const size_t ldy = ib == 0 ? (size_t)E : (size_t)hd;
        products(tk, rows, hd, nq, vb, (size_t)BS * elt, p16 + (size_t)ib * BS * elt, ctx * elt, y,
                 ldy);
        if (ib == 0) continue;
        for (int32_t q = 0; q < nq; q++)
            for (int32_t d = 0; d < hd; d++)
                out[(size_t)q * E + d] += part[(size_t)q * hd + d];
    }
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
