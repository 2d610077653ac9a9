/*
 * simd_avx2.h - helpers shared by the AVX2 kernel files (types_avx2.c, quants_avx2.c): horizontal
 * sums, block-scale packing, nibble unpacking, and the tiled-product driver. Internal: include it
 * only from files compiled with -mavx2 -mfma -mf16c (the `_avx2.c` suffix), after kernels.h.
 */
#ifndef MLXR_KERNELS_CPU_SIMD_AVX2_H
#define MLXR_KERNELS_CPU_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* Sum of the 8 lanes. */
static inline float hsum_ps(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* Sum of 4 lanes. */
static inline float hsum_ps128(__m128 r) {
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/*
 * Block scales. Converting each f16 scale on its own (vcvtph2ps per value, then a broadcast)
 * costs more shuffle-port work than the integer dot itself, so the loops take 4 blocks at a time:
 * the 4 x scales and the 4 y scales are packed into 64-bit words with scalar integer ops, converted
 * with one vcvtph2ps each and multiplied, and each block's product is then spread across a
 * register with one vpermps. Each lane equals fp16_to_fp32(d_x) * fp16_to_fp32(d_y) exactly as in
 * the reference (one float multiply of exactly converted values).
 */
static inline __m128 f16x4(uint16_t a, uint16_t b, uint16_t c, uint16_t d) {
    const uint64_t p = a | (uint64_t)b << 16 | (uint64_t)c << 32 | (uint64_t)d << 48;
    return _mm_cvtph_ps(_mm_set_epi64x(0, (long long)p));
}

static inline __m128 scales4(uint16_t x0, uint16_t x1, uint16_t x2, uint16_t x3, uint16_t y0,
                             uint16_t y1, uint16_t y2, uint16_t y3) {
    return _mm_mul_ps(f16x4(x0, x1, x2, x3), f16x4(y0, y1, y2, y3));
}

#define SCALES4(a, b, i)                                                                           \
    scales4(a[i].d, a[i + 1].d, a[i + 2].d, a[i + 3].d, b[i].d, b[i + 1].d, b[i + 2].d, b[i + 3].d)

/* Lane k of d4 broadcast to all 8 lanes (k as a vector of 8 equal indices). */
static inline __m256 lane(__m128 d4, __m256i k) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d4), k);
}

static inline __m256 scale1(uint16_t dx, uint16_t dy) {
    return _mm256_set1_ps(_cvtsh_ss(dx) * _cvtsh_ss(dy));
}

static inline __m256i load_i8x32(const int8_t *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/*
 * The 32 nibbles of 16 bytes as unsigned bytes in [0, 15], in GGML's element order: the 16 bytes
 * are loaded into both 128-bit halves (a plain load, no shuffle), the upper half shifted right by
 * 4, so the low half holds elements 0..15 (low nibbles) and the upper half 16..31 (high nibbles).
 */
static inline __m256i unpack_q4_0(const uint8_t *qs) {
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i sh = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(sh, _mm256_set1_epi8(0x0F));
}

/* One R x C tile of a tiled product over rows of n elements: y[c * ldy + r] = dot(w row r,
 * x row c), w rows ws bytes apart, x rows xs bytes apart. */
typedef void (*tile_fn)(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,
                        float *y, size_t ldy);

/* A whole tiled product (kernels.h mlxr_gemm_fn) from R x C tiles; the rows and columns past the
 * last full tile go through `dot`. Defined in types_avx2.c. */
void mlxr_gemm_tiled_avx2(tile_fn tile, int R, int C, mlxr_vec_dot_fn dot, int64_t n, int64_t nr,
                          int64_t nc, const void *w, size_t ws, const void *x, size_t xs, float *y,
                          size_t ldy);

#endif
