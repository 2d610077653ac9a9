/*
 * repack_vnni_avx512.c - AVX512_VNNI products over the interleaved Q4_0x8 / Q8_0x8 layouts
 * (kernels.h, ref/repack.c): repack_avx2.c's kernels with vpdpbusd on 256-bit registers
 * (AVX512_VL + AVX512_VNNI), for prompt processing and single-token decoding alike.
 *
 * Same layout walk, chunking and tiles as repack_avx2.c (read its header first; the shared driver
 * and helpers are in repack_drive.h), plus pairs of groups in 512-bit registers: per block and
 * 4-element slice, one register holds that slice of the 8 rows and the activation's 4 bytes are
 * broadcast, so lane r accumulates row r. vpdpbusd multiplies the unsigned by the signed bytes and
 * adds each group of 4 products straight into the int32 lane, where AVX2 needs vpmaddubsw,
 * vpmaddwd and vpaddd (Q8_0) or two vpmaddubsw and two int16 adds (Q4_0):
 *   - Q4_0: the nibbles u = q + 8 against the activation bytes, the accumulator starting at
 *     -8 * sum(x) of the block (computed once per chunk), exact for any bytes;
 *   - Q8_0: |w| against x with w's sign (vpsignb; exact as activations avoid -128, see
 *     repack_avx2.c).
 * The integer sums are exact and the float steps are repack_avx2.c's (acc_r += (d_w[r] * d_x) *
 * (float)sum_r, one FMA chain per output over its blocks in order), so the rows of full 8-row
 * groups equal the AVX2 kernels' bit for bit and stay batch invariant (the rows of a last partial
 * group go through the VNNI vec_dot, as repack_avx2.c's go through the AVX2 one).
 *
 * Compiled with the AVX-512 F/BW/DQ/VL flags (the `_avx512` suffix); every function adds
 * AVX512_VNNI through a target attribute, so nothing here runs before dispatch.c found the level
 * MLXR_ISA_AVX512_VNNI.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/cpu/repack_drive.h"

#define VNNI __attribute__((target("avx512vnni")))

enum {
    KB = 64,      /* blocks per K chunk when several activation tiles share the weights */
    KB_ONE = 512, /* blocks per K chunk for a single tile (decoding) */
    CT = RP_CT,   /* activation rows per micro-kernel */
};

/* Per activation row of a tile and block of a chunk: the scale as float and, for Q4_0,
 * 8 * sum(quants). */
typedef struct xinfo {
    float d[CT][KB_ONE];
    int32_t s8[CT][KB_ONE];
} xinfo;

/* Sum of the 32 signed bytes: one vpdpbusd of all-ones against them, then the 8 lanes. */
VNNI static inline int32_t block_sum(const int8_t *qs) {
    const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1),
                                          _mm256_loadu_si256((const __m256i *)qs));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
    return _mm_cvtsi128_si32(t);
}

static void fill_q8_0(void *xv, int C, const uint8_t *x, size_t xs, int64_t i0, int64_t kb) {
    xinfo *xi = xv;
    for (int c = 0; c < C; c++) {
        const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)c * xs) + i0;
        for (int64_t i = 0; i < kb; i++)
            xi->d[c][i] = _cvtsh_ss(xb[i].d);
    }
}

VNNI static void fill_q8_0_sums(void *xv, int C, const uint8_t *x, size_t xs, int64_t i0,
                                int64_t kb) {
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
VNNI static ALWAYS_INLINE void group_q4_0(const int C, const mlxr_block_q4_0x8 *wb,
                                          const uint8_t *x, size_t xs, int64_t kb, const xinfo *xi,
                                          float *y, size_t ldy, bool cont) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[CT];
    load_acc(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        prefetch_block(&wb[i], sizeof wb[i]);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wb[i].d));
        __m256i s32[CT];
        for (int c = 0; c < C; c++)
            s32[c] = _mm256_set1_epi32(-xi->s8[c][i]);
#pragma GCC unroll 1
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb[i].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(q, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            for (int c = 0; c < C; c++) {
                const int8_t *xq = ((const mlxr_block_q8_0 *)(x + (size_t)c * xs))[i].qs + 8 * j;
                s32[c] = _mm256_dpbusd_epi32(s32[c], lo, bcast4(xq));
                s32[c] = _mm256_dpbusd_epi32(s32[c], hi, bcast4(xq + 4));
            }
        }
        for (int c = 0; c < C; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xi->d[c][i])),
                                     _mm256_cvtepi32_ps(s32[c]), acc[c]);
    }
    store_acc(C, acc, y, ldy);
}

VNNI static ALWAYS_INLINE void group_q8_0(const int C, const mlxr_block_q8_0x8 *wb,
                                          const uint8_t *x, size_t xs, int64_t kb, const xinfo *xi,
                                          float *y, size_t ldy, bool cont) {
    __m256 acc[CT];
    load_acc(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        prefetch_block(&wb[i], sizeof wb[i]);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)wb[i].d));
        __m256i s32[CT];
        for (int c = 0; c < C; c++)
            s32[c] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(wb[i].qs + 32 * k));
            const __m256i a = _mm256_sign_epi8(q, q);
            for (int c = 0; c < C; c++) {
                const int8_t *xq = ((const mlxr_block_q8_0 *)(x + (size_t)c * xs))[i].qs + 4 * k;
                s32[c] = _mm256_dpbusd_epi32(s32[c], a, _mm256_sign_epi8(bcast4(xq), q));
            }
        }
        for (int c = 0; c < C; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xi->d[c][i])),
                                     _mm256_cvtepi32_ps(s32[c]), acc[c]);
    }
    store_acc(C, acc, y, ldy);
}

/*
 * Two groups at once (rows r..r+15; group 1's blocks at wb1) in 512-bit registers: group 0 in
 * the low 256 bits, group 1 in the high, so the 16 row results land in one register and store to
 * 16 consecutive floats of y. Per lane the integer sums are exact and the float steps are those
 * of group_q4_0 / group_q8_0, so each output equals the one-group kernels' bit for bit (the
 * driver may pair a group or not, depending on nr, without changing any result).
 */
static ALWAYS_INLINE __m512i load_pair(const void *p0, const void *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p0)),
                              _mm256_loadu_si256((const __m256i *)p1), 1);
}

static ALWAYS_INLINE __m512 scales_pair(const uint16_t *d0, const uint16_t *d1) {
    const __m256i h =
        _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)d0)),
                                _mm_loadu_si128((const __m128i *)d1), 1);
    return _mm512_cvtph_ps(h);
}

static ALWAYS_INLINE __m512i bcast4_512(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

static ALWAYS_INLINE void load_acc2(const int C, __m512 *acc, const float *y, size_t ldy,
                                    bool cont) {
    for (int c = 0; c < C; c++)
        acc[c] = cont ? _mm512_loadu_ps(y + (size_t)c * ldy) : _mm512_setzero_ps();
}

static ALWAYS_INLINE void store_acc2(const int C, const __m512 *acc, float *y, size_t ldy) {
    for (int c = 0; c < C; c++)
        _mm512_storeu_ps(y + (size_t)c * ldy, acc[c]);
}

VNNI static ALWAYS_INLINE void pair_q4_0(const int C, const mlxr_block_q4_0x8 *wb,
                                         const mlxr_block_q4_0x8 *wb1, const uint8_t *x, size_t xs,
                                         int64_t kb, const xinfo *xi, float *y, size_t ldy,
                                         bool cont) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[CT];
    load_acc2(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        prefetch_block(&wb[i], sizeof wb[i]);
        prefetch_block(&wb1[i], sizeof wb1[i]);
        const __m512 dw = scales_pair(wb[i].d, wb1[i].d);
        __m512i s32[CT];
        for (int c = 0; c < C; c++)
            s32[c] = _mm512_set1_epi32(-xi->s8[c][i]);
#pragma GCC unroll 1
        for (int j = 0; j < 4; j++) {
            const __m512i q = load_pair(wb[i].qs + 32 * j, wb1[i].qs + 32 * j);
            const __m512i lo = _mm512_and_si512(q, m4);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
            for (int c = 0; c < C; c++) {
                const int8_t *xq = ((const mlxr_block_q8_0 *)(x + (size_t)c * xs))[i].qs + 8 * j;
                s32[c] = _mm512_dpbusd_epi32(s32[c], lo, bcast4_512(xq));
                s32[c] = _mm512_dpbusd_epi32(s32[c], hi, bcast4_512(xq + 4));
            }
        }
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xi->d[c][i])),
                                     _mm512_cvtepi32_ps(s32[c]), acc[c]);
    }
    store_acc2(C, acc, y, ldy);
}

/* |w| against x with w's sign: AVX-512 has no vpsignb, so x is negated under the mask of negative
 * w (where w = 0, |w| = 0 already zeroes the product, as vpsignb's zeroing would). */
VNNI static ALWAYS_INLINE void pair_q8_0(const int C, const mlxr_block_q8_0x8 *wb,
                                         const mlxr_block_q8_0x8 *wb1, const uint8_t *x, size_t xs,
                                         int64_t kb, const xinfo *xi, float *y, size_t ldy,
                                         bool cont) {
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc[CT];
    load_acc2(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        prefetch_block(&wb[i], sizeof wb[i]);
        prefetch_block(&wb1[i], sizeof wb1[i]);
        const __m512 dw = scales_pair(wb[i].d, wb1[i].d);
        __m512i s32[CT];
        for (int c = 0; c < C; c++)
            s32[c] = zero;
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            const __m512i q = load_pair(wb[i].qs + 32 * k, wb1[i].qs + 32 * k);
            const __m512i a = _mm512_abs_epi8(q);
            const __mmask64 neg = _mm512_movepi8_mask(q);
            for (int c = 0; c < C; c++) {
                const int8_t *xq = ((const mlxr_block_q8_0 *)(x + (size_t)c * xs))[i].qs + 4 * k;
                const __m512i bx = bcast4_512(xq);
                s32[c] = _mm512_dpbusd_epi32(s32[c], a, _mm512_mask_sub_epi8(bx, neg, zero, bx));
            }
        }
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xi->d[c][i])),
                                     _mm512_cvtepi32_ps(s32[c]), acc[c]);
    }
    store_acc2(C, acc, y, ldy);
}

RP_GROUP_VARIANT(VNNI, q4_0_c1, group_q4_0, mlxr_block_q4_0x8, xinfo, 1)
RP_GROUP_VARIANT(VNNI, q4_0_c2, group_q4_0, mlxr_block_q4_0x8, xinfo, 2)
RP_GROUP_VARIANT(VNNI, q4_0_c3, group_q4_0, mlxr_block_q4_0x8, xinfo, 3)
RP_GROUP_VARIANT(VNNI, q4_0_c4, group_q4_0, mlxr_block_q4_0x8, xinfo, 4)
RP_GROUP_VARIANT(VNNI, q8_0_c1, group_q8_0, mlxr_block_q8_0x8, xinfo, 1)
RP_GROUP_VARIANT(VNNI, q8_0_c2, group_q8_0, mlxr_block_q8_0x8, xinfo, 2)
RP_GROUP_VARIANT(VNNI, q8_0_c3, group_q8_0, mlxr_block_q8_0x8, xinfo, 3)
RP_GROUP_VARIANT(VNNI, q8_0_c4, group_q8_0, mlxr_block_q8_0x8, xinfo, 4)

RP_PAIR_VARIANT(VNNI, q4_0_p1, pair_q4_0, mlxr_block_q4_0x8, xinfo, 1)
RP_PAIR_VARIANT(VNNI, q4_0_p2, pair_q4_0, mlxr_block_q4_0x8, xinfo, 2)
RP_PAIR_VARIANT(VNNI, q4_0_p3, pair_q4_0, mlxr_block_q4_0x8, xinfo, 3)
RP_PAIR_VARIANT(VNNI, q4_0_p4, pair_q4_0, mlxr_block_q4_0x8, xinfo, 4)
RP_PAIR_VARIANT(VNNI, q8_0_p1, pair_q8_0, mlxr_block_q8_0x8, xinfo, 1)
RP_PAIR_VARIANT(VNNI, q8_0_p2, pair_q8_0, mlxr_block_q8_0x8, xinfo, 2)
RP_PAIR_VARIANT(VNNI, q8_0_p3, pair_q8_0, mlxr_block_q8_0x8, xinfo, 3)
RP_PAIR_VARIANT(VNNI, q8_0_p4, pair_q8_0, mlxr_block_q8_0x8, xinfo, 4)

static const rp_type Q4_0X8 = {{NULL, q4_0_c1, q4_0_c2, q4_0_c3, q4_0_c4},
                               {NULL, q4_0_p1, q4_0_p2, q4_0_p3, q4_0_p4},
                               fill_q8_0_sums,
                               MLXR_QK4_0,
                               sizeof(mlxr_block_q4_0x8),
                               sizeof(mlxr_block_q8_0),
                               KB,
                               KB_ONE,
                               mlxr_vec_dot_q4_0_avx512vnni};
static const rp_type Q8_0X8 = {{NULL, q8_0_c1, q8_0_c2, q8_0_c3, q8_0_c4},
                               {NULL, q8_0_p1, q8_0_p2, q8_0_p3, q8_0_p4},
                               fill_q8_0,
                               MLXR_QK8_0,
                               sizeof(mlxr_block_q8_0x8),
                               sizeof(mlxr_block_q8_0),
                               KB,
                               KB_ONE,
                               mlxr_vec_dot_q8_0_avx512vnni};

void mlxr_gemm_q4_0x8_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                                 const void *x, size_t x_stride, float *y, size_t ldy) {
    xinfo xi;
    rp_gemm(&Q4_0X8, &xi, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

void mlxr_gemm_q8_0x8_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                                 const void *x, size_t x_stride, float *y, size_t ldy) {
    xinfo xi;
    rp_gemm(&Q8_0X8, &xi, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

#endif /* x86 */
