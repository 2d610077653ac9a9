/*
 * kv_q8.c - the fast path of attention over a paged Q8_0 KV cache (see kernels/kv_q8.h), and the
 * choice of its V-sum kernel. Compiled without ISA flags: the SIMD work happens in the kernels it
 * is handed (the Q8_0 quantizer and tiled product of the dispatch table, kv_q8_avx2.c).
 *
 * The products read the cache where it lies, one call per run of physically consecutive pool
 * blocks. Runs start at block starts (multiples of 4, the tiled products' row tile), so a score
 * does not depend on how the sequence's blocks are spread over the pool; the V sums run position
 * by position in order, so they do not either.
 */
#include "kernels/kv_q8.h"

#include "kernels/ops.h"

#include <string.h>

mlxr_kv_q8_pv_fn mlxr_kv_q8_pv_select(mlxr_isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    if (isa >= MLXR_ISA_AVX2) return mlxr_kv_q8_pv_avx2;
#else
    (void)isa;
#endif
    return mlxr_kv_q8_pv_ref;
}

/* Pool row of position p. */
static size_t row_of(const mlxr_attn_q8_args *a, int32_t p) {
    return (size_t)a->table[p / a->block] * (size_t)a->block + (size_t)(p % a->block);
}

/* The run of positions from p0 (a block start) that lie consecutively in the pool, up to n:
 * returns its length; *r0 receives its first pool row. */
static int32_t run_of(const mlxr_attn_q8_args *a, int32_t p0, int32_t n, size_t *r0) {
    *r0 = row_of(a, p0);
    int32_t p = p0 + a->block;
    while (p < n && row_of(a, p) == *r0 + (size_t)(p - p0))
        p += a->block;
    return (p < n ? p : n) - p0;
}

void mlxr_attn_q8(const mlxr_attn_q8_kernels *k, const mlxr_attn_q8_args *a, void *scratch) {
    const int32_t hd = a->head_dim, nq = a->nq, n_kv = a->pos0 + nq;
    const size_t qrow = (size_t)hd / MLXR_QK8_0 * sizeof(mlxr_block_q8_0);
    float *scores = scratch;                                       /* [nq][n_kv] */
    uint8_t *q8 = (uint8_t *)(scores + (size_t)nq * (size_t)n_kv); /* [nq][hd / 32 blocks] */

    for (int32_t j = 0; j < nq; j++)
        k->quant(a->q + (size_t)j * a->ldq, q8 + (size_t)j * qrow, hd);
    /* scores[j][p] = K[p] . q8[j] for every p < n_kv; the causal mask is applied by the softmax
     * and V sums running only over each query's own positions */
    for (int32_t p0 = 0; p0 < n_kv;) {
        size_t r0;
        const int32_t rows = run_of(a, p0, n_kv, &r0);
        k->gemm(hd, rows, nq, a->k + r0 * a->row_bytes, a->row_bytes, q8, qrow, scores + p0,
                (size_t)n_kv);
        p0 += rows;
    }
    for (int32_t j = 0; j < nq; j++) {
        float *w = scores + (size_t)j * (size_t)n_kv, *o = a->out + (size_t)j * a->ldo;
        const int32_t n = a->pos0 + j + 1;
        mlxr_softmax_f32_ref(w, n, a->scale);
        memset(o, 0, (size_t)hd * sizeof *o);
        for (int32_t p0 = 0; p0 < n;) {
            size_t r0;
            const int32_t rows = run_of(a, p0, n, &r0);
            k->pv(hd, rows, a->v + r0 * a->row_bytes, a->row_bytes, w + p0, o);
            p0 += rows;
        }
    }
}
