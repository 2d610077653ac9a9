/*
 * kv_q8.c - reference of attention over a paged Q8_0 KV cache (see kernels/kv_q8.h): the V-sum
 * kernel and the whole path, one query and one cached position at a time, built from the scalar
 * kernels only. This is the definition the fast path (cpu/kv_q8.c) is tested against.
 */
#include "kernels/kv_q8.h"

#include "kernels/ops.h"
#include "util/fp16.h"

#define ROW_BLOCKS(hd) ((size_t)(hd) / MLXR_QK8_0)

void mlxr_kv_q8_pv_ref(int64_t hd, int64_t n, const void *v, size_t vs, const float *w,
                       float *out) {
    for (int64_t p = 0; p < n; p++) {
        const mlxr_block_q8_0 *row = (const mlxr_block_q8_0 *)((const uint8_t *)v + (size_t)p * vs);
        for (int64_t b = 0; b < hd / MLXR_QK8_0; b++) {
            /* weight times the block's scale, then times each quant: w * (d * q) regrouped */
            const float wd = w[p] * mlxr_fp16_to_fp32(row[b].d);
            for (int i = 0; i < MLXR_QK8_0; i++)
                out[b * MLXR_QK8_0 + i] += wd * (float)row[b].qs[i];
        }
    }
}

size_t mlxr_attn_q8_scratch(int32_t nq, int32_t n_ctx, int32_t head_dim) {
    const size_t scores = (size_t)nq * (size_t)n_ctx * sizeof(float);
    const size_t q8 = (size_t)nq * ROW_BLOCKS(head_dim) * sizeof(mlxr_block_q8_0);
    return (scores + q8 + 63) / 64 * 64;
}

/* Pool row of position p. */
static size_t row_of(const mlxr_attn_q8_args *a, int32_t p) {
    return (size_t)a->table[p / a->block] * (size_t)a->block + (size_t)(p % a->block);
}

void mlxr_attn_q8_ref(const mlxr_attn_q8_args *a, void *scratch) {
    const int32_t hd = a->head_dim;
    float *s = scratch;                                             /* [pos0 + nq] */
    mlxr_block_q8_0 *q8 = (mlxr_block_q8_0 *)(s + a->pos0 + a->nq); /* [hd / 32] */
    for (int32_t j = 0; j < a->nq; j++) {
        const int32_t n = a->pos0 + j + 1; /* causal: positions 0 .. pos0 + j */
        mlxr_quantize_q8_0_ref(a->q + (size_t)j * a->ldq, q8, hd);
        for (int32_t p = 0; p < n; p++)
            mlxr_vec_dot_q8_0_ref(hd, &s[p], a->k + row_of(a, p) * a->row_bytes, q8);
        mlxr_softmax_f32_ref(s, n, a->scale);
        float *o = a->out + (size_t)j * a->ldo;
        for (int32_t d = 0; d < hd; d++)
            o[d] = 0.0f;
        for (int32_t p = 0; p < n; p++)
            mlxr_kv_q8_pv_ref(hd, 1, a->v + row_of(a, p) * a->row_bytes, 0, &s[p], o);
    }
}
