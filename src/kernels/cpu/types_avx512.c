/*
 * types_avx512.c - AVX-512 (F/BW/DQ/VL) variants of the type kernels (see kernels.h,
 * ref/types.c, and types_avx2.c for the shared scheme).
 *
 * Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c; only called when
 * dispatch.c found all four AVX-512 subsets and OS-enabled ZMM state. VNNI and AVX512_BF16 are
 * deliberately not used, so any AVX-512 server CPU (Skylake-SP onwards, Zen 4) runs this file.
 *   - Float dot products: 4 x 16 float lanes with FMA; the tail is a masked load, so there is no
 *     scalar loop.
 *   - Q8_0/Q4_0 dot products put two blocks in one 512-bit register (block i in the low 256 bits,
 *     block i+1 in the high) and scale the two halves by their own d_x*d_y, converting the
 *     scales of 4 blocks at once as types_avx2.c does. Q8_0 uses the sign trick of types_avx2.c
 *     (exact while y != -128) with a mask-negate standing in for the missing 512-bit vpsignb;
 *     Q4_0 multiplies the unsigned nibbles and subtracts 8*y. Per-block integer sums stay exact;
 *     only float accumulation order differs from the reference. The last nb % 4 blocks go
 *     through 256-bit code.
 *   - Q8_0 quantization produces the same bytes as the reference and the AVX2 path: vrndscaleps
 *     rounds half to even and vpmovsdb saturates exactly like the AVX2 pack sequence.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/simd_avx512.h"

/* Lane mask for the first r (< 16) elements. */
static inline __mmask16 tail_mask(int64_t r) {
    return (__mmask16)((1u << r) - 1u);
}

static inline __m512 load_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

static inline __m512 load_f16_tail(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

/* BF16 as in types_avx2.c: 32 values loaded as 16 dwords give the even-indexed values as f32
 * (shift left by 16) and the odd-indexed ones (low half masked off), with no widening shuffle. */
static inline __m512 bf16_even(__m512i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

static inline __m512 bf16_odd(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}

static inline __m512 load_f32(const float *p) {
    return _mm512_loadu_ps(p);
}

static inline __m512 load_f32_tail(const float *p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
}

/* ---- float dot products ------------------------------------------------------------------- */

/* 4 accumulators over 64 elements per step, then 16 at a time, then one masked step. Masked-off
 * lanes load as zero, so they add nothing. */
#define DOT_FLOAT_BODY(LOAD, LOAD_TAIL)                                                            \
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                 \
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();                                 \
    int64_t i = 0;                                                                                 \
    for (; i + 64 <= n; i += 64) {                                                                 \
        acc0 = _mm512_fmadd_ps(LOAD(a + i), LOAD(b + i), acc0);                                    \
        acc1 = _mm512_fmadd_ps(LOAD(a + i + 16), LOAD(b + i + 16), acc1);                          \
        acc2 = _mm512_fmadd_ps(LOAD(a + i + 32), LOAD(b + i + 32), acc2);                          \
        acc3 = _mm512_fmadd_ps(LOAD(a + i + 48), LOAD(b + i + 48), acc3);                          \
    }                                                                                              \
    for (; i + 16 <= n; i += 16)                                                                   \
        acc0 = _mm512_fmadd_ps(LOAD(a + i), LOAD(b + i), acc0);                                    \
    if (i < n) {                                                                                   \
        const __mmask16 m = tail_mask(n - i);                                                      \
        acc1 = _mm512_fmadd_ps(LOAD_TAIL(a + i, m), LOAD_TAIL(b + i, m), acc1);                    \
    }                                                                                              \
    acc0 = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));                    \
    *s = _mm512_reduce_add_ps(acc0);

void mlxr_vec_dot_f32_avx512(int64_t n, float *s, const void *x, const void *y) {
    const float *a = x, *b = y;
    DOT_FLOAT_BODY(load_f32, load_f32_tail)
}

void mlxr_vec_dot_f16_avx512(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    DOT_FLOAT_BODY(load_f16, load_f16_tail)
}

void mlxr_vec_dot_bf16_avx512(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i x0 = _mm512_loadu_si512(a + i), y0 = _mm512_loadu_si512(b + i);
        const __m512i x1 = _mm512_loadu_si512(a + i + 32), y1 = _mm512_loadu_si512(b + i + 32);
        acc0 = _mm512_fmadd_ps(bf16_even(x0), bf16_even(y0), acc0);
        acc1 = _mm512_fmadd_ps(bf16_odd(x0), bf16_odd(y0), acc1);
        acc2 = _mm512_fmadd_ps(bf16_even(x1), bf16_even(y1), acc2);
        acc3 = _mm512_fmadd_ps(bf16_odd(x1), bf16_odd(y1), acc3);
    }
    for (; i < n; i += 32) { /* 32 at a time, the last step masked (masked-off lanes load 0) */
        const __mmask32 m = n - i >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - i)) - 1u);
        const __m512i x0 = _mm512_maskz_loadu_epi16(m, a + i);
        const __m512i y0 = _mm512_maskz_loadu_epi16(m, b + i);
        acc0 = _mm512_fmadd_ps(bf16_even(x0), bf16_even(y0), acc0);
        acc1 = _mm512_fmadd_ps(bf16_odd(x0), bf16_odd(y0), acc1);
    }
    acc0 = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
    *s = _mm512_reduce_add_ps(acc0);
}

#undef DOT_FLOAT_BODY

/* ---- Q8_0 quantization -------------------------------------------------------------------- */

/* vrndscaleps immediate: scale 0, to nearest, ties to even (must be a compile-time constant). */
#define ROUND_EVEN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

void mlxr_quantize_q8_0_avx512(const float *x, void *y, int64_t n) {
    mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK8_0;
        const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
        const float amax =
            _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);

        const __m512 mul = _mm512_set1_ps(id);
        /* round half to even (scale 0), then int32 -> int8 with signed saturation */
        const __m512i i0 =
            _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v0, mul), ROUND_EVEN));
        const __m512i i1 =
            _mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v1, mul), ROUND_EVEN));
        _mm_storeu_si128((__m128i *)b[i].qs, _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16), _mm512_cvtsepi32_epi8(i1));
    }
}

/* ---- quantized dot products --------------------------------------------------------------- */

/* Sums of 4 adjacent products x[k]*y[k] as 16 float lanes (exact); y != -128. AVX-512 has no
 * vpsignb, so y is negated under the mask of negative x instead. */
static inline __m512 mul_sum_i8_quads(__m512i x, __m512i y) {
    const __m512i ax = _mm512_abs_epi8(x); /* -128 reads as 128 unsigned */
    const __mmask64 neg = _mm512_movepi8_mask(x);
    const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    const __m512i p16 = _mm512_maddubs_epi16(ax, sy); /* |pair sum| <= 2*128*127 */
    const __m512i p32 = _mm512_madd_epi16(p16, _mm512_set1_epi16(1));
    return _mm512_cvtepi32_ps(p32);
}

/* Sums of 4 adjacent products (u[k] - 8) * y[k] for nibbles u in [0, 15], as u*y - 8*y (both
 * exact in int16, any y byte). */
static inline __m512 mul_sum_q4_quads(__m512i u, __m512i y) {
    const __m512i uy = _mm512_maddubs_epi16(u, y);
    const __m512i oy = _mm512_maddubs_epi16(_mm512_set1_epi8(8), y);
    const __m512i p32 = _mm512_madd_epi16(_mm512_sub_epi16(uy, oy), _mm512_set1_epi16(1));
    return _mm512_cvtepi32_ps(p32);
}

/* ---- the last 1..3 blocks, one at a time in 256-bit registers ---- */

static inline __m256 mul_sum_i8_quads_256(const int8_t *px, const int8_t *py) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)px);
    const __m256i y = _mm256_loadu_si256((const __m256i *)py);
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

static inline __m256 mul_sum_q4_quads_256(const uint8_t *qs, const int8_t *py) {
    const __m256i u = load_q4(qs);
    const __m256i y = _mm256_loadu_si256((const __m256i *)py);
    const __m256i p16 =
        _mm256_sub_epi16(_mm256_maddubs_epi16(u, y), _mm256_maddubs_epi16(_mm256_set1_epi8(8), y));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

void mlxr_vec_dot_q8_0_avx512(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q8_0 *a = x, *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    const __m512i i01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i i23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m128 d = SCALES4(a, b, i);
        const __m512 q01 =
            mul_sum_i8_quads(load_2x_q8(a[i].qs, a[i + 1].qs), load_2x_q8(b[i].qs, b[i + 1].qs));
        const __m512 q23 = mul_sum_i8_quads(load_2x_q8(a[i + 2].qs, a[i + 3].qs),
                                            load_2x_q8(b[i + 2].qs, b[i + 3].qs));
        acc0 = _mm512_fmadd_ps(lanes(d, i01), q01, acc0);
        acc1 = _mm512_fmadd_ps(lanes(d, i23), q23, acc1);
    }
    __m256 tail = _mm256_setzero_ps();
    for (; i < nb; i++) {
        tail =
            _mm256_fmadd_ps(scale1(a[i].d, b[i].d), mul_sum_i8_quads_256(a[i].qs, b[i].qs), tail);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum256(tail);
}

void mlxr_vec_dot_q4_0_avx512(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_0 *a = x;
    const mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK4_0;
    const __m512i i01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i i23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m128 d = SCALES4(a, b, i);
        const __m512 q01 =
            mul_sum_q4_quads(load_2x_q4(a[i].qs, a[i + 1].qs), load_2x_q8(b[i].qs, b[i + 1].qs));
        const __m512 q23 = mul_sum_q4_quads(load_2x_q4(a[i + 2].qs, a[i + 3].qs),
                                            load_2x_q8(b[i + 2].qs, b[i + 3].qs));
        acc0 = _mm512_fmadd_ps(lanes(d, i01), q01, acc0);
        acc1 = _mm512_fmadd_ps(lanes(d, i23), q23, acc1);
    }
    __m256 tail = _mm256_setzero_ps();
    for (; i < nb; i++) {
        tail =
            _mm256_fmadd_ps(scale1(a[i].d, b[i].d), mul_sum_q4_quads_256(a[i].qs, b[i].qs), tail);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum256(tail);
}

#endif /* x86 */
