/*
 * kv_q8.h - attention over a paged KV cache whose K and V rows are GGUF Q8_0 blocks (llama.cpp's
 * `-ctk q8_0 -ctv q8_0`).
 *
 * Cache layout the kernels read: one row per cached position, K and V alike (V is not transposed:
 * a Q8_0 block runs along a row, so a position's values must sit in one row to be written alone).
 * A row holds the kv_dim values of one position as kv_dim / 32 blocks { f16 d; int8 qs[32]; };
 * the callers pass pointers already offset to one KV head's slice (head_dim / 32 blocks, so
 * head_dim must be a multiple of 32). Position p of a sequence lies in pool row
 * table[p / block] * block + p % block, where `block` is the positions per table entry.
 *
 * The computation, per query j at position pos0 + j (it sees positions 0 .. pos0 + j), as
 * llama.cpp does with a quantized K cache:
 *   q8        = quantize_q8_0(q_j)                 (round to nearest, as the activation rows)
 *   s[p]      = dot_q8_0(K[p], q8) * scale         (exact per-block integer sums)
 *   w         = softmax(s)                         (mlxr_softmax_f32_ref)
 *   out_j[d]  = sum_p w[p] * dequant(V[p])[d]      (V dequantized on the fly, p in order)
 *
 * mlxr_attn_q8_ref is the definition (scalar, per query, per position); mlxr_attn_q8 is the fast
 * path the model runs: the scores of all queries of a segment as one tiled product per run of
 * consecutive pool blocks, and the V sums through the selected mlxr_kv_q8_pv kernel. A query's
 * V sum is accumulated position by position in order whatever the runs, so it depends only on
 * its weights and the cached rows; with nq == 1 the whole result depends on nothing else either
 * (batch invariance and speculative verification rely on it).
 */
#ifndef MLXR_KERNELS_KV_Q8_H
#define MLXR_KERNELS_KV_Q8_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* out[d] += sum_{p < n} w[p] * dequant(row p)[d] for d < hd, positions in order; rows of hd
 * values (hd / 32 Q8_0 blocks) vs bytes apart. hd multiple of 32. */
typedef void (*mlxr_kv_q8_pv_fn)(int64_t hd, int64_t n, const void *v, size_t vs, const float *w,
                                 float *out);

void mlxr_kv_q8_pv_ref(int64_t hd, int64_t n, const void *v, size_t vs, const float *w, float *out);
void mlxr_kv_q8_pv_avx2(int64_t hd, int64_t n, const void *v, size_t vs, const float *w,
                        float *out);

/* The best V-sum kernel up to `isa` (src/kernels/cpu/kv_q8.c). */
mlxr_kv_q8_pv_fn mlxr_kv_q8_pv_select(mlxr_isa isa);

/* One attention task: nq queries of one head over one sequence's cached positions. */
typedef struct mlxr_attn_q8_args {
    int32_t head_dim; /* multiple of 32 */
    int32_t nq;       /* queries, at positions pos0 .. pos0 + nq - 1 */
    int32_t pos0;     /* query j sees positions 0 .. pos0 + j, all already in the cache */
    const float *q;   /* [nq][ldq] query rows of this head, f32 */
    size_t ldq;       /* floats between query rows */
    const uint8_t *k; /* the layer's K rows, offset to this KV head: row r at k + r * row_bytes */
    const uint8_t *v; /* the layer's V rows, likewise */
    size_t row_bytes; /* bytes between consecutive pool rows */
    const int32_t *table; /* pool block of each `block` positions of the sequence */
    int32_t block;        /* positions per block, a multiple of 4 */
    float scale;          /* softmax scale, 1/sqrt(head_dim) */
    float *out;           /* [nq][ldo] outputs, overwritten */
    size_t ldo;           /* floats between output rows */
} mlxr_attn_q8_args;

/* Bytes of scratch either function needs for nq queries over up to n_ctx positions. */
size_t mlxr_attn_q8_scratch(int32_t nq, int32_t n_ctx, int32_t head_dim);

/* The reference: scalar kernels only (quantize_q8_0_ref, vec_dot_q8_0_ref, softmax_f32_ref,
 * kv_q8_pv_ref), one query and one position at a time. scratch: mlxr_attn_q8_scratch bytes. */
void mlxr_attn_q8_ref(const mlxr_attn_q8_args *a, void *scratch);

/* The fast path: Q quantized with `quant`, scores through `gemm` (a Q8_0 tiled product, nc =
 * nq), V sums through `pv`. Equal to the reference up to float reordering. */
typedef struct mlxr_attn_q8_kernels {
    mlxr_from_float_fn quant; /* Q8_0 quantizer: same bytes as mlxr_quantize_q8_0_ref */
    mlxr_gemm_fn gemm;        /* Q8_0 x Q8_0 tiled product */
    mlxr_kv_q8_pv_fn pv;
} mlxr_attn_q8_kernels;

void mlxr_attn_q8(const mlxr_attn_q8_kernels *k, const mlxr_attn_q8_args *a, void *scratch);

#endif
