/*
 * kv_q8_avx2.c - AVX2 + FMA + F16C V-sum kernel of the Q8_0 KV cache (see kernels/kv_q8.h and
 * mlxr_kv_q8_pv_ref in ref/kv_q8.c).
 *
 * out[d] += sum_p (w[p] * d_p) * q_p[d]: the int8 quants of a block are widened to floats and
 * added with one FMA per 8 values, so the result differs from the reference (a multiply, then an
 * add) by the FMA's single rounding only. Two blocks (64 values) are accumulated in 8 registers
 * across all positions, positions in order, so each output is a fixed sequence of FMAs whatever
 * the caller's split into runs.
 */
#include "kernels/kv_q8.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

/* 8 int8 quants at p as 8 floats. */
static inline __m256 q8x8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* acc[0..3] += s * block (32 values). */
static inline void fma_block(__m256 acc[4], __m256 s, const mlxr_block_q8_0 *b) {
    acc[0] = _mm256_fmadd_ps(s, q8x8(b->qs), acc[0]);
    acc[1] = _mm256_fmadd_ps(s, q8x8(b->qs + 8), acc[1]);
    acc[2] = _mm256_fmadd_ps(s, q8x8(b->qs + 16), acc[2]);
    acc[3] = _mm256_fmadd_ps(s, q8x8(b->qs + 24), acc[3]);
}

static inline void load4(__m256 acc[4], const float *o) {
    for (int i = 0; i < 4; i++)
        acc[i] = _mm256_loadu_ps(o + 8 * i);
}

static inline void store4(float *o, const __m256 acc[4]) {
    for (int i = 0; i < 4; i++)
        _mm256_storeu_ps(o + 8 * i, acc[i]);
}

void mlxr_kv_q8_pv_avx2(int64_t hd, int64_t n, const void *v, size_t vs, const float *w,
                        float *out) {
    const int64_t nb = hd / MLXR_QK8_0;
    const uint8_t *base = v;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) { /* two blocks per pass over the rows */
        __m256 a0[4], a1[4];
        load4(a0, out + b * MLXR_QK8_0);
        load4(a1, out + (b + 1) * MLXR_QK8_0);
        for (int64_t p = 0; p < n; p++) {
            const mlxr_block_q8_0 *r = (const mlxr_block_q8_0 *)(base + (size_t)p * vs) + b;
            fma_block(a0, _mm256_set1_ps(w[p] * _cvtsh_ss(r[0].d)), &r[0]);
            fma_block(a1, _mm256_set1_ps(w[p] * _cvtsh_ss(r[1].d)), &r[1]);
        }
        store4(out + b * MLXR_QK8_0, a0);
        store4(out + (b + 1) * MLXR_QK8_0, a1);
    }
    if (b < nb) {
        __m256 a0[4];
        load4(a0, out + b * MLXR_QK8_0);
        for (int64_t p = 0; p < n; p++) {
            const mlxr_block_q8_0 *r = (const mlxr_block_q8_0 *)(base + (size_t)p * vs) + b;
            fma_block(a0, _mm256_set1_ps(w[p] * _cvtsh_ss(r->d)), r);
        }
        store4(out + b * MLXR_QK8_0, a0);
    }
}

#endif
