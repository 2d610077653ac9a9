/*
 * bf16_avx512.c - AVX512_BF16 variant of the BF16 dot product (kernels.h; ref/types.c
 * mlxr_vec_dot_bf16_ref is the definition).
 *
 * Compiled with the AVX-512 F/BW/DQ/VL flags (the `_avx512` suffix); the function adds
 * AVX512_BF16 through a target attribute, so it runs only after dispatch.c found the level
 * MLXR_ISA_AVX512_BF16. The activation row stays BF16 (the type's vec_dot_type, encoded by the
 * reference's round-to-nearest-even conversion), so only the dot product itself changes:
 * vdpbf16ps multiplies 16 pairs of BF16 values and adds both products of a pair to one f32 lane.
 * A product of two BF16 values (8-bit significands) is exact in f32, as in the reference and the
 * AVX-512F path, so the sums differ from the reference by float accumulation order only, with one
 * exception the reference does not share: vdpbf16ps treats BF16 subnormal inputs (|v| < 2^-126)
 * as zero and flushes subnormal f32 results to zero. Weights and activations of real models are
 * nowhere near that range; the tests use normal values.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define BF16 __attribute__((target("avx512bf16")))

/* 32 BF16 values as the operand type of vdpbf16ps (same bits). */
BF16 static inline __m512bh as_bh(__m512i v) {
    return (__m512bh)v;
}

/* 4 accumulators over 128 elements per step, then 32 at a time, the last step masked (masked-off
 * lanes load as +0, adding nothing). */
BF16 void mlxr_vec_dot_bf16_avx512bf16(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 128 <= n; i += 128) {
        acc0 = _mm512_dpbf16_ps(acc0, as_bh(_mm512_loadu_si512(a + i)),
                                as_bh(_mm512_loadu_si512(b + i)));
        acc1 = _mm512_dpbf16_ps(acc1, as_bh(_mm512_loadu_si512(a + i + 32)),
                                as_bh(_mm512_loadu_si512(b + i + 32)));
        acc2 = _mm512_dpbf16_ps(acc2, as_bh(_mm512_loadu_si512(a + i + 64)),
                                as_bh(_mm512_loadu_si512(b + i + 64)));
        acc3 = _mm512_dpbf16_ps(acc3, as_bh(_mm512_loadu_si512(a + i + 96)),
                                as_bh(_mm512_loadu_si512(b + i + 96)));
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1u);
        acc0 = _mm512_dpbf16_ps(acc0, as_bh(_mm512_maskz_loadu_epi16(m, a + i)),
                                as_bh(_mm512_maskz_loadu_epi16(m, b + i)));
    }
    acc0 = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
    *s = _mm512_reduce_add_ps(acc0);
}

#endif /* x86 */
