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
 *     block i+1 in the high), use the sign trick of types_avx2.c (exact while y != -128) with a
 *     mask-negate standing in for the missing 512-bit vpsignb, and scale the low and high halves
 *     by their own d_x*d_y. Per-block integer sums stay exact; only float accumulation order
 *     differs from the reference.
 *   - Q8_0 quantization produces the same bytes as the reference and the AVX2 path: vrndscaleps
 *     rounds half to even and vpmovsdb saturates exactly like the AVX2 pack sequence.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

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

static inline __m512 load_bf16(const uint16_t *p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

static inline __m512 load_bf16_tail(const uint16_t *p, __mmask16 m) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
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
    DOT_FLOAT_BODY(load_bf16, load_bf16_tail)
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

/* Sums of 4 adjacent products x[k]*y[k] as 16 float lanes (exact); y != -128. */
static inline __m512 mul_sum_i8_quads(__m512i x, __m512i y) {
    const __m512i ax = _mm512_abs_epi8(x); /* -128 reads as 128 unsigned */
    const __mmask64 neg = _mm512_movepi8_mask(x);
    const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    const __m512i p16 = _mm512_maddubs_epi16(ax, sy); /* |pair sum| <= 2*128*127 */
    const __m512i p32 = _mm512_madd_epi16(p16, _mm512_set1_epi16(1));
    return _mm512_cvtepi32_ps(p32);
}

/* The 32 int8 values of two Q8_0 blocks: p0 in the low half, p1 in the high half. */
static inline __m512i load_2x_q8(const int8_t *p0, const int8_t *p1) {
    const __m256i lo = _mm256_loadu_si256((const __m256i *)p0);
    const __m256i hi = _mm256_loadu_si256((const __m256i *)p1);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* Two Q4_0 blocks as int8 in [-8, 7], laid out like load_2x_q8: 128-bit lanes are
 * [q0 low nibbles, q0 high nibbles, q1 low nibbles, q1 high nibbles]. */
static inline __m512i load_2x_q4(const uint8_t *p0, const uint8_t *p1) {
    const __m128i q0 = _mm_loadu_si128((const __m128i *)p0);
    const __m128i q1 = _mm_loadu_si128((const __m128i *)p1);
    const __m256i q01 = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(q01), _mm256_srli_epi16(q01, 4), 1);
    const __m512i w = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_sub_epi8(_mm512_and_si512(w, _mm512_set1_epi8(0x0F)), _mm512_set1_epi8(8));
}

static inline float scale2(uint16_t dx, uint16_t dy) {
    return _cvtsh_ss(dx) * _cvtsh_ss(dy);
}

/* d0 in the low 8 lanes, d1 in the high 8. */
static inline __m512 scales_2x(float d0, float d1) {
    return _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

void mlxr_vec_dot_q8_0_avx512(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q8_0 *a = x, *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512 d01 = scales_2x(scale2(a[i].d, b[i].d), scale2(a[i + 1].d, b[i + 1].d));
        const __m512 d23 =
            scales_2x(scale2(a[i + 2].d, b[i + 2].d), scale2(a[i + 3].d, b[i + 3].d));
        const __m512 q01 =
            mul_sum_i8_quads(load_2x_q8(a[i].qs, a[i + 1].qs), load_2x_q8(b[i].qs, b[i + 1].qs));
        const __m512 q23 = mul_sum_i8_quads(load_2x_q8(a[i + 2].qs, a[i + 3].qs),
                                            load_2x_q8(b[i + 2].qs, b[i + 3].qs));
        acc0 = _mm512_fmadd_ps(d01, q01, acc0);
        acc1 = _mm512_fmadd_ps(d23, q23, acc1);
    }
    /* 1 to 3 blocks left: pair the last one with itself and scale its upper copy by 0 */
    for (; i < nb; i += 2) {
        const int64_t j = i + 1 < nb ? i + 1 : i;
        const float dj = j != i ? scale2(a[j].d, b[j].d) : 0.0f;
        const __m512 d01 = scales_2x(scale2(a[i].d, b[i].d), dj);
        const __m512 q01 =
            mul_sum_i8_quads(load_2x_q8(a[i].qs, a[j].qs), load_2x_q8(b[i].qs, b[j].qs));
        acc0 = _mm512_fmadd_ps(d01, q01, acc0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void mlxr_vec_dot_q4_0_avx512(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_0 *a = x;
    const mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK4_0;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512 d01 = scales_2x(scale2(a[i].d, b[i].d), scale2(a[i + 1].d, b[i + 1].d));
        const __m512 d23 =
            scales_2x(scale2(a[i + 2].d, b[i + 2].d), scale2(a[i + 3].d, b[i + 3].d));
        const __m512 q01 =
            mul_sum_i8_quads(load_2x_q4(a[i].qs, a[i + 1].qs), load_2x_q8(b[i].qs, b[i + 1].qs));
        const __m512 q23 = mul_sum_i8_quads(load_2x_q4(a[i + 2].qs, a[i + 3].qs),
                                            load_2x_q8(b[i + 2].qs, b[i + 3].qs));
        acc0 = _mm512_fmadd_ps(d01, q01, acc0);
        acc1 = _mm512_fmadd_ps(d23, q23, acc1);
    }
    /* 1 to 3 blocks left: pair the last one with itself and scale its upper copy by 0 */
    for (; i < nb; i += 2) {
        const int64_t j = i + 1 < nb ? i + 1 : i;
        const float dj = j != i ? scale2(a[j].d, b[j].d) : 0.0f;
        const __m512 d01 = scales_2x(scale2(a[i].d, b[i].d), dj);
        const __m512 q01 =
            mul_sum_i8_quads(load_2x_q4(a[i].qs, a[j].qs), load_2x_q8(b[i].qs, b[j].qs));
        acc0 = _mm512_fmadd_ps(d01, q01, acc0);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

#endif /* x86 */
