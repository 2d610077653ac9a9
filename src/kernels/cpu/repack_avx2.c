/*
 * repack_avx2.c - AVX2 products over the interleaved Q4_0x8 / Q8_0x8 layouts (kernels.h,
 * ref/repack.c), for prompt processing and single-token decoding alike.
 *
 * One micro-kernel call covers one group of 8 weight rows against up to 4 activation rows (Q8_0)
 * over a chunk of KB blocks. Per block and 4-element slice k, a weight register holds that slice
 * of all 8 rows (4 bytes per row); the activation's matching 4 bytes are broadcast (a load), and
 * vpmaddubsw + vpmaddwd leave row r's partial dot in 32-bit lane r. So the 8 row sums never need
 * a horizontal reduction, and the 8 rows' scales convert with one vcvtph2ps.
 *
 * Q4_0: maddubs needs an unsigned operand, and the nibbles u = q + 8 are one: sum((u - 8) * x)
 * = sum(u * x) - 8 * sum(x), with sum(x) per activation block computed once per chunk. The
 * 16-bit pair sums of all 8 slices are added before widening: |u * x| <= 15 * 128, so 16
 * products per lane stay within 30720 < 2^15 (exact, any activation byte). Q8_0: the sign trick
 * of types_avx2.c (|w| unsigned, the sign moved onto x; exact as activations avoid -128 where it
 * matters, see ref/types.c), widened to 32 bits per slice since the pairs reach 32512.
 *
 * Then acc_r += (d_w[r] * d_x) * (float)sum_r, with FMA, block after block. K is walked in chunks
 * of KB blocks when several activation tiles pass over the weights (a chunk of a 64-row band stays
 * in L2 meanwhile), in one chunk up to KB_ONE blocks for a single tile; between chunks the
 * accumulators park in y and resume from there, which is exact. So an output is one FMA chain
 * over its blocks in order whatever nr, nc, the chunking or the tile it falls in: the product is
 * batch invariant.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/cpu/repack_drive.h"
#include "kernels/cpu/simd_avx2.h"

enum {
    KB = 64,      /* blocks per K chunk when several activation tiles share the weights */
    KB_ONE = 512, /* blocks per K chunk for a single tile (decoding): rows streamed whole */
    CT = RP_CT,   /* activation rows per micro-kernel */
};

/* Per activation row of a tile and block of a chunk: the scale as float and, for Q4_0,
 * 8 * sum(quants). */
typedef struct xinfo {
    float d[CT][KB_ONE];
    int32_t s8[CT][KB_ONE];
} xinfo;


/* Sum of the 32 signed bytes: sad against 0 of x + 128, less 32 * 128. */
static inline int32_t block_sum(const int8_t *qs) {
    const __m256i v = _mm256_xor_si256(load_i8x32(qs), _mm256_set1_epi8((char)0x80));
    const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi64(t, _mm_unpackhi_epi64(t, t));
    return _mm_cvtsi128_si32(t) - 32 * 128;
}

static void fill_q8_0(void *xv, int C, const uint8_t *x, size_t xs, int64_t i0, int64_t kb) {
    xinfo *xi = xv;
    for (int c = 0; c < C; c++) {
        const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)c * xs) + i0;
        for (int64_t i = 0; i < kb; i++)
            xi->d[c][i] = _cvtsh_ss(xb[i].d);
    }
}

static void fill_q8_0_sums(void *xv, int C, const uint8_t *x, size_t xs, int64_t i0, int64_t kb) {
    xinfo *xi = xv;
    for (int c = 0; c < C; c++) {
        const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)c * xs) + i0;
        for (int64_t i = 0; i < kb; i++) {
            xi->d[c][i] = _cvtsh_ss(xb[i].d);
            xi->s8[c][i] = 8 * block_sum(xb[i].qs);
        }
    }
}

/* One group of 8 rows (blocks wb[0..kb)) against C activation rows (their block 0 at x + c*xs). */
static ALWAYS_INLINE void group_q4_0(const int C, const mlxr_block_q4_0x8 *wb, const uint8_t *x,
                                     size_t xs, int64_t kb, const xinfo *xi, float *y, size_t ldy,
                                     bool cont) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[CT];
    load_acc(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        prefetch_block(&wb[i], sizeof wb[i]);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wb[i].d));
        __m256i s16[CT];
        for (int c = 0; c < C; c++)
            s16[c] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb[i].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            for (int c = 0; c < C; c++) {
                const int8_t *xq = ((const mlxr_block_q8_0 *)(x + (size_t)c * xs))[i].qs + 8 * j;
                const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, bcast4(xq)),
                                                   _mm256_maddubs_epi16(hi, bcast4(xq + 4)));
                s16[c] = _mm256_add_epi16(s16[c], p);
            }
        }
        for (int c = 0; c < C; c++) {
            const __m256i s32 =
                _mm256_sub_epi32(_mm256_madd_epi16(s16[c], ones), _mm256_set1_epi32(xi->s8[c][i]));
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xi->d[c][i])),
                                     _mm256_cvtepi32_ps(s32), acc[c]);
        }
    }
    store_acc(C, acc, y, ldy);
}

static ALWAYS_INLINE void group_q8_0(const int C, const mlxr_block_q8_0x8 *wb, const uint8_t *x,
                                     size_t xs, int64_t kb, const xinfo *xi, float *y, size_t ldy,
                                     bool cont) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[CT];
    load_acc(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        prefetch_block(&wb[i], sizeof wb[i]);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wb[i].d));
        __m256i s32[CT];
        for (int c = 0; c < C; c++)
            s32[c] = _mm256_setzero_si256();
            /* kept rolled: unrolled, gcc hoists the 8 slices' loads and spills the accumulators */
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb[i].qs + 32 * k));
            const __m256i a = _mm256_sign_epi8(q, q);
            for (int c = 0; c < C; c++) {
                const int8_t *xq = ((const mlxr_block_q8_0 *)(x + (size_t)c * xs))[i].qs + 4 * k;
                const __m256i p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(a, _mm256_sign_epi8(bcast4(xq), q)), ones);
                s32[c] = _mm256_add_epi32(s32[c], p);
            }
        }
        for (int c = 0; c < C; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xi->d[c][i])),
                                     _mm256_cvtepi32_ps(s32[c]), acc[c]);
    }
    store_acc(C, acc, y, ldy);
}

RP_GROUP_VARIANT(, q4_0_c1, group_q4_0, mlxr_block_q4_0x8, xinfo, 1)
RP_GROUP_VARIANT(, q4_0_c2, group_q4_0, mlxr_block_q4_0x8, xinfo, 2)
RP_GROUP_VARIANT(, q4_0_c3, group_q4_0, mlxr_block_q4_0x8, xinfo, 3)
RP_GROUP_VARIANT(, q4_0_c4, group_q4_0, mlxr_block_q4_0x8, xinfo, 4)
RP_GROUP_VARIANT(, q8_0_c1, group_q8_0, mlxr_block_q8_0x8, xinfo, 1)
RP_GROUP_VARIANT(, q8_0_c2, group_q8_0, mlxr_block_q8_0x8, xinfo, 2)
RP_GROUP_VARIANT(, q8_0_c3, group_q8_0, mlxr_block_q8_0x8, xinfo, 3)
RP_GROUP_VARIANT(, q8_0_c4, group_q8_0, mlxr_block_q8_0x8, xinfo, 4)

static const rp_type Q4_0X8 = {{NULL, q4_0_c1, q4_0_c2, q4_0_c3, q4_0_c4},
                               {NULL},
                               fill_q8_0_sums,
                               MLXR_QK4_0,
                               sizeof(mlxr_block_q4_0x8),
                               sizeof(mlxr_block_q8_0),
                               KB,
                               KB_ONE,
                               mlxr_vec_dot_q4_0_avx2};
static const rp_type Q8_0X8 = {{NULL, q8_0_c1, q8_0_c2, q8_0_c3, q8_0_c4},
                               {NULL},
                               fill_q8_0,
                               MLXR_QK8_0,
                               sizeof(mlxr_block_q8_0x8),
                               sizeof(mlxr_block_q8_0),
                               KB,
                               KB_ONE,
                               mlxr_vec_dot_q8_0_avx2};
void mlxr_gemm_q4_0x8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t ldy) {
    xinfo xi;
    rp_gemm(&Q4_0X8, &xi, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

void mlxr_gemm_q8_0x8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                           const void *x, size_t x_stride, float *y, size_t ldy) {
    xinfo xi;
    rp_gemm(&Q8_0X8, &xi, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

#endif /* x86 */
