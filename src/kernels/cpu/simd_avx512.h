/*
 * simd_avx512.h - helpers shared by the AVX-512 kernel files (types_avx512.c, quants_avx512.c,
 * vnni_avx512.c): horizontal sums, block-scale packing, and the register layouts of Q8_0/Q4_0
 * block pairs and K-quant scales. Internal: include it only from files compiled with the
 * AVX-512 F/BW/DQ/VL flags (the `_avx512` suffix), after kernels.h.
 */
#ifndef MLXR_KERNELS_CPU_SIMD_AVX512_H
#define MLXR_KERNELS_CPU_SIMD_AVX512_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

/* ---- horizontal sums ---------------------------------------------------------------------- */

static inline float hsum128(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline float hsum256(__m256 v) {
    return hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

/* ---- Q8_0 / Q4_0 block scales and block pairs ---------------------------------------------- */

/* Block scales, 4 at a time, as in types_avx2.c: lane k = fp16_to_fp32(d_x[k]) *
 * fp16_to_fp32(d_y[k]), one vcvtph2ps per 4 scales instead of one per scale. */
static inline __m128 scales4(uint16_t x0, uint16_t x1, uint16_t x2, uint16_t x3, uint16_t y0,
                             uint16_t y1, uint16_t y2, uint16_t y3) {
    const uint64_t px = x0 | (uint64_t)x1 << 16 | (uint64_t)x2 << 32 | (uint64_t)x3 << 48;
    const uint64_t py = y0 | (uint64_t)y1 << 16 | (uint64_t)y2 << 32 | (uint64_t)y3 << 48;
    const __m128 dx = _mm_cvtph_ps(_mm_set_epi64x(0, (long long)px));
    const __m128 dy = _mm_cvtph_ps(_mm_set_epi64x(0, (long long)py));
    return _mm_mul_ps(dx, dy);
}

#define SCALES4(a, b, i)                                                                           \
    scales4(a[i].d, a[i + 1].d, a[i + 2].d, a[i + 3].d, b[i].d, b[i + 1].d, b[i + 2].d, b[i + 3].d)

/* Lanes of d4 spread by an index vector: lanes 0..7 get d4[idx[0]], 8..15 get d4[idx[8]]. */
static inline __m512 lanes(__m128 d4, __m512i idx) {
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d4));
}

static inline __m256 scale1(uint16_t dx, uint16_t dy) {
    return _mm256_set1_ps(_cvtsh_ss(dx) * _cvtsh_ss(dy));
}

/* The 32 int8 values of two Q8_0 blocks: p0 in the low half, p1 in the high half. */
static inline __m512i load_2x_q8(const int8_t *p0, const int8_t *p1) {
    const __m256i lo = _mm256_loadu_si256((const __m256i *)p0);
    const __m256i hi = _mm256_loadu_si256((const __m256i *)p1);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* The nibbles of two Q4_0 blocks as bytes in [0, 15], laid out like load_2x_q8: each block's
 * 16 bytes are loaded into two 128-bit lanes and the second copy shifted right by 4, giving the
 * lanes [p0 low nibbles, p0 high nibbles, p1 low nibbles, p1 high nibbles]. */
static inline __m512i load_2x_q4(const uint8_t *p0, const uint8_t *p1) {
    const __m256i b0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p0));
    const __m256i b1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p1));
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(b0), b1, 1);
    const __m512i sh = _mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(sh, _mm512_set1_epi8(0x0F));
}

/* The nibbles of one Q4_0 block as 32 bytes in [0, 15] in element order (low half: low
 * nibbles, high half: high nibbles). */
static inline __m256i load_q4(const uint8_t *qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(0x0F));
}

/* ---- K-quant scales ------------------------------------------------------------------------ */

/* A 16-byte vector in all four 128-bit lanes. */
static inline __m512i lanes4(__m128i v) {
    return _mm512_broadcast_i32x4(v);
}

/* A vpshufb mask built from one 16-byte pattern per 128-bit lane. */
static inline __m512i per_lane(__m128i l0, __m128i l1, __m128i l2, __m128i l3) {
    const __m512i v = _mm512_castsi128_si512(l0);
    return _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(v, l1, 1), l2, 2), l3, 3);
}

/* vpshufb mask giving, in every int16 of 128-bit lane L, int16 element e[L] of a lanes4()
 * vector. */
static inline __m512i pick16(int e0, int e1, int e2, int e3) {
    const int m0 = (2 * e0 + 1) << 8 | 2 * e0, m1 = (2 * e1 + 1) << 8 | 2 * e1;
    const int m2 = (2 * e2 + 1) << 8 | 2 * e2, m3 = (2 * e3 + 1) << 8 | 2 * e3;
    return per_lane(_mm_set1_epi16((short)m0), _mm_set1_epi16((short)m1), _mm_set1_epi16((short)m2),
                    _mm_set1_epi16((short)m3));
}

/* 32 bytes at p in both 256-bit halves. */
static inline __m512i load2x256(const void *p) {
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/* Q4_K/Q5_K 6-bit scales and mins (same unpacking as quants_avx2.c k4_scales_mins): scales in
 * bytes 0..7, mins in 8..15. */
static inline __m128i k4_scales_mins(const uint8_t *q) {
    uint64_t a;
    uint32_t b;
    memcpy(&a, q, 8);
    memcpy(&b, q + 8, 4);
    const uint64_t lo = a & 0x3f3f3f3f3f3f3f3full;
    const uint64_t hi = ((uint64_t)((b >> 4) & 0x0f0f0f0fu) << 32 | (b & 0x0f0f0f0fu)) |
                        ((a >> 6) & 0x0303030303030303ull) << 4;
    const uint64_t scales = (lo & 0xffffffffull) | hi << 32;
    const uint64_t mins = lo >> 32 | (hi & 0xffffffff00000000ull);
    return _mm_set_epi64x((long long)mins, (long long)scales);
}

/* Sum over sub-blocks of min[g] * (bsums[2g] + bsums[2g+1]), 4 int32 lanes (sm16: scales then
 * mins as 16 int16). */
static inline __m128i k4_min_sums(__m256i sm16, const int16_t *bsums) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i pairs =
        _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    return _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), pairs);
}

#endif
