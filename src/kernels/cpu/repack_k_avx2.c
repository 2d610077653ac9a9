/*
 * repack_k_avx2.c - AVX2 products over the interleaved Q4_Kx8 and Q6_Kx8 layouts (ref/repack_k.h),
 * for prompt processing and single-token decoding alike (the types' gemm_packed).
 *
 * One micro-kernel call covers one group of 8 weight rows against up to 4 activation rows (Q8_K)
 * over a chunk of super-blocks. Per Q4_K super-block:
 *   - the 64 scales and 64 mins of the 8 rows decode from sm_lo / sm_hi with a few byte ops into
 *     the orders the layout stores them in; per sub-block s one vpshufb turns the scales into
 *     "scale of row r in both int16 halves of lane r";
 *   - per sub-block s and 8-value slice j, one 32-byte load gives 8 values of all 8 rows (AND,
 *     shift + AND); each activation row's 4-byte pieces are broadcast and vpmaddubsw leaves row
 *     r's pair sums in lane r; the 8 pair sums of a sub-block add in int16 (|sum| <= 8 * 2 * 15 *
 *     127 = 30480, exact), then one vpmaddwd with the scales widens them to int32;
 *   - the min term: the mins as int16 pairs (sub-blocks 2k, 2k + 1 of row r in lane r) against the
 *     activation's bsums summed per sub-block (computed once per chunk and activation row),
 *     4 vpmaddwd;
 *   - acc_r += (d_w[r] * d_x) * isum_r, then acc_r -= (dmin_w[r] * d_x) * summs_r, with FMA.
 * Q6_K: see its section below. The super-blocks of a row form one FMA chain in order whatever
 * nr, nc or the K chunking (the accumulators park in y between chunks, which is exact), so the
 * products are batch invariant. The sums differ from mlxr_vec_dot_q4_k_ref's / _q6_k_ref's by
 * float reordering only (integer parts exact).
 *
 * One AVX2 core (AMD EPYC Zen 3), TSC ticks per 256 weights and activation row, best of many
 * runs, weights in cache: Q4_K 7.3 for 32 activation rows (plain 1x4 tiles 14.0, llama.cpp's
 * repacked 8x8 GEMM 13.7), 12.7 for one row (plain vec_dot 21.2, llama.cpp's 8x8 GEMV 20.9);
 * Q6_K 9.3 for 32 rows (plain tiles 13.4), 17.8 for one (vec_dot 24.7). The 3-4 row variants
 * keep their inner loops rolled: unrolled, gcc hoists the products and spills them.
 */
#include "kernels/ref/repack_k.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/cpu/repack_drive.h"
#include "kernels/cpu/simd_avx2.h"

enum {
    KB = 8,      /* super-blocks per K chunk when several activation tiles share the weights:
                  * 64 rows x 8 x 144 bytes = 72 KiB stay in L2 meanwhile */
    KB_ONE = 64, /* per chunk for a single tile (decoding): rows streamed in long runs */
    CT = RP_CT,  /* activation rows per micro-kernel */
};

/* Per activation row of a tile and super-block of a chunk: the scale, and the bsums summed per
 * 32-value sub-block as int16 pairs (lane k: sub-blocks 2k and 2k + 1). */
typedef struct xinfo_k {
    float d[CT][KB_ONE];
    int32_t bp[CT][KB_ONE][4];
} xinfo_k;

/* vpshufb masks: the scale of sub-block s (pattern s % 4) of row r as int16 in both halves of
 * 32-bit lane r, from the decoded scales' bytes 4(s % 4) + r % 4 of each 128-bit half. */
#define PAT_HALF(q) q, -1, q, -1, q + 1, -1, q + 1, -1, q + 2, -1, q + 2, -1, q + 3, -1, q + 3, -1
#define PAT(q)                                                                                     \
    { PAT_HALF(q), PAT_HALF(q) }
static const int8_t SCALE_PAT[4][32]
    __attribute__((aligned(32))) = {PAT(0), PAT(4), PAT(8), PAT(12)};

static void fill_q8_k(void *xv, int C, const uint8_t *x, size_t xs, int64_t i0, int64_t kb) {
    xinfo_k *xi = xv;
    for (int c = 0; c < C; c++) {
        const mlxr_block_q8_k *xb = (const mlxr_block_q8_k *)(x + (size_t)c * xs) + i0;
        for (int64_t i = 0; i < kb; i++) {
            xi->d[c][i] = xb[i].d;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)xb[i].bsums);
            /* |pair| <= 32 * 127: no wrap */
            const __m128i pairs =
                _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
            _mm_storeu_si128((__m128i *)xi->bp[c][i], pairs);
        }
    }
}

/* 8 values of the 8 rows (32 bytes at qs) against values e..e+7 of C activation rows' super-block
 * i: int16 pair sums added into s16. */
static ALWAYS_INLINE void slice_q4_k(const int C, const uint8_t *qs, const uint8_t *x, size_t xs,
                                     int64_t i, int e, __m256i *s16) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i qv = _mm256_loadu_si256((const __m256i *)qs);
    const __m256i vl = _mm256_and_si256(qv, m4);
    const __m256i vh = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
    for (int c = 0; c < C; c++) {
        const int8_t *xq = ((const mlxr_block_q8_k *)(x + (size_t)c * xs))[i].qs + e;
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(vl, bcast4(xq)),
                                           _mm256_maddubs_epi16(vh, bcast4(xq + 4)));
        s16[c] = _mm256_add_epi16(s16[c], p);
    }
}

/* One group of 8 rows (super-blocks wb[0..kb)) against C activation rows (their block 0 at
 * x + c * xs). */
static ALWAYS_INLINE void group_q4_k(const int C, const mlxr_block_q4_kx8 *wb, const uint8_t *x,
                                     size_t xs, int64_t kb, const xinfo_k *xi, float *y, size_t ldy,
                                     bool cont) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    __m256 acc[CT];
    load_acc(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        const mlxr_block_q4_kx8 *b = &wb[i];
        prefetch_block(b, sizeof *b);
        /* scales in order 32(s/4) + 16(r/4) + 4(s%4) + r%4, mins in 16(s/2) + 2r + s%2 */
        const __m256i lo0 = _mm256_loadu_si256((const __m256i *)b->sm_lo);
        const __m256i lo1 = _mm256_loadu_si256((const __m256i *)(b->sm_lo + 32));
        const __m256i hi = _mm256_loadu_si256((const __m256i *)b->sm_hi);
        const __m256i h0 = _mm256_and_si256(hi, m4);
        const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(hi, 4), m4);
        const __m256i sc0 = _mm256_or_si256(_mm256_and_si256(lo0, m4),
                                            _mm256_slli_epi16(_mm256_and_si256(h0, m3), 4));
        const __m256i sc1 = _mm256_or_si256(_mm256_and_si256(lo1, m4),
                                            _mm256_slli_epi16(_mm256_and_si256(h1, m3), 4));
        const __m256i mh = _mm256_set1_epi8(0x0C);
        const __m256i mn0 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo0, 4), m4),
                                            _mm256_slli_epi16(_mm256_and_si256(h0, mh), 2));
        const __m256i mn1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo1, 4), m4),
                                            _mm256_slli_epi16(_mm256_and_si256(h1, mh), 2));
        __m256i sumi[CT];
        for (int c = 0; c < C; c++)
            sumi[c] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int s = 0; s < 8; s++) {
            const __m256i scs = _mm256_shuffle_epi8(
                s < 4 ? sc0 : sc1, _mm256_load_si256((const __m256i *)SCALE_PAT[s & 3]));
            __m256i s16[CT];
            for (int c = 0; c < C; c++)
                s16[c] = _mm256_setzero_si256();
            /* for 3-4 activation rows kept rolled: unrolled, gcc hoists the products and
             * spills them */
            if (C <= 2) {
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    slice_q4_k(C, b->qs + 128 * s + 32 * j, x, xs, i, 32 * s + 8 * j, s16);
            } else {
#pragma GCC unroll 1
                for (int j = 0; j < 4; j++)
                    slice_q4_k(C, b->qs + 128 * s + 32 * j, x, xs, i, 32 * s + 8 * j, s16);
            }
            for (int c = 0; c < C; c++)
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(s16[c], scs));
        }
        const __m256i mk0 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(mn0));
        const __m256i mk1 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(mn0, 1));
        const __m256i mk2 = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(mn1));
        const __m256i mk3 = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(mn1, 1));
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->d));
        const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->dmin));
        for (int c = 0; c < C; c++) {
            const int32_t *bp = xi->bp[c][i];
            __m256i mins = _mm256_madd_epi16(mk0, _mm256_set1_epi32(bp[0]));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(mk1, _mm256_set1_epi32(bp[1])));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(mk2, _mm256_set1_epi32(bp[2])));
            mins = _mm256_add_epi32(mins, _mm256_madd_epi16(mk3, _mm256_set1_epi32(bp[3])));
            const __m256 dx = _mm256_set1_ps(xi->d[c][i]);
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_mul_ps(mw, dx), _mm256_cvtepi32_ps(mins), acc[c]);
        }
    }
    store_acc(C, acc, y, ldy);
}

/* ---- Q6_Kx8 ---------------------------------------------------------------------------------
 *
 * Per 16-value group g of the 8 rows: three 32-byte rows give 4 vectors of unsigned quants u in
 * [0, 63] (4 values of each row per vector); vpmaddubsw pair sums reach 2 * 63 * 127
 * = 16002, so two of them add in int16 (32004) before a vpmaddwd with the group's scales (int16
 * of row r in both halves of lane r). The 32 offset comes off per pair of groups as 32 * the
 * scales (int16 pairs, lane 2r + e) times the activation's bsums pair (one vpmaddwd).
 */

/* vpshufb masks: int16 lane 2r + e (e = 0, 1) of each 128-bit half into both halves of 32-bit
 * lane r. */
#define PAT6_HALF(e)                                                                               \
    2 * e, 2 * e + 1, 2 * e, 2 * e + 1, 4 + 2 * e, 5 + 2 * e, 4 + 2 * e, 5 + 2 * e, 8 + 2 * e,     \
        9 + 2 * e, 8 + 2 * e, 9 + 2 * e, 12 + 2 * e, 13 + 2 * e, 12 + 2 * e, 13 + 2 * e
static const int8_t PAT6[2][32]
    __attribute__((aligned(32))) = {{PAT6_HALF(0), PAT6_HALF(0)}, {PAT6_HALF(1), PAT6_HALF(1)}};

/* Group g of super-block i: the 8 rows' 16 values against C activation rows, into sumi. */
static ALWAYS_INLINE void group16_q6_k(const int C, const mlxr_block_q6_kx8 *b, int g,
                                       const uint8_t *x, size_t xs, int64_t i, __m256i *sumi) {
    const __m256i sc16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b->sc + 16 * (g / 2))));
    const __m256i scd = _mm256_shuffle_epi8(sc16, _mm256_load_si256((const __m256i *)PAT6[g & 1]));
    const __m256i m6 = _mm256_set1_epi8(0x3F);
    const __m256i b0 = _mm256_loadu_si256((const __m256i *)(b->q + 96 * g));
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b->q + 96 * g + 32));
    const __m256i b2 = _mm256_loadu_si256((const __m256i *)(b->q + 96 * g + 64));
    const __m256i v0 = _mm256_and_si256(b0, m6);
    const __m256i v1 = _mm256_and_si256(b1, m6);
    const __m256i v2 = _mm256_and_si256(b2, m6);
    /* the top 2 bits of each byte, moved to bits 0-1, 2-3 and 4-5 (what a 16-bit shift brings
     * in from the next byte is masked off) */
    const __m256i v3 = _mm256_or_si256(
        _mm256_and_si256(_mm256_srli_epi16(b0, 6), _mm256_set1_epi8(0x03)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), _mm256_set1_epi8(0x0C)),
                        _mm256_and_si256(_mm256_srli_epi16(b2, 2), _mm256_set1_epi8(0x30))));
    for (int c = 0; c < C; c++) {
        const int8_t *xq = ((const mlxr_block_q8_k *)(x + (size_t)c * xs))[i].qs + 16 * g;
        const __m256i p01 = _mm256_add_epi16(_mm256_maddubs_epi16(v0, bcast4(xq)),
                                             _mm256_maddubs_epi16(v1, bcast4(xq + 4)));
        const __m256i p23 = _mm256_add_epi16(_mm256_maddubs_epi16(v2, bcast4(xq + 8)),
                                             _mm256_maddubs_epi16(v3, bcast4(xq + 12)));
        sumi[c] = _mm256_add_epi32(
            sumi[c], _mm256_add_epi32(_mm256_madd_epi16(p01, scd), _mm256_madd_epi16(p23, scd)));
    }
}

static ALWAYS_INLINE void group_q6_k(const int C, const mlxr_block_q6_kx8 *wb, const uint8_t *x,
                                     size_t xs, int64_t kb, const xinfo_k *xi, float *y, size_t ldy,
                                     bool cont) {
    __m256 acc[CT];
    load_acc(C, acc, y, ldy, cont);
    for (int64_t i = 0; i < kb; i++) {
        const mlxr_block_q6_kx8 *b = &wb[i];
        prefetch_block(b, sizeof *b);
        __m256i sumi[CT];
        for (int c = 0; c < C; c++)
            sumi[c] = _mm256_setzero_si256();
            /* the offset term first, then the groups: one loop holding both spills for 3-4 rows */
#pragma GCC unroll 1
        for (int k = 0; k < 8; k++) {
            const __m256i sc16 =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b->sc + 16 * k)));
            for (int c = 0; c < C; c++) {
                const int16_t *bs = ((const mlxr_block_q8_k *)(x + (size_t)c * xs))[i].bsums;
                int32_t pair;
                memcpy(&pair, bs + 2 * k, 4);
                sumi[c] = _mm256_sub_epi32(
                    sumi[c],
                    _mm256_slli_epi32(_mm256_madd_epi16(sc16, _mm256_set1_epi32(pair)), 5));
            }
        }
        if (C <= 2) {
#pragma GCC unroll 2
            for (int g = 0; g < 16; g++)
                group16_q6_k(C, b, g, x, xs, i, sumi);
        } else {
#pragma GCC unroll 1
            for (int g = 0; g < 16; g++)
                group16_q6_k(C, b, g, x, xs, i, sumi);
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b->d));
        for (int c = 0; c < C; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(xi->d[c][i])),
                                     _mm256_cvtepi32_ps(sumi[c]), acc[c]);
    }
    store_acc(C, acc, y, ldy);
}

RP_GROUP_VARIANT(, q4_k_c1, group_q4_k, mlxr_block_q4_kx8, xinfo_k, 1)
RP_GROUP_VARIANT(, q4_k_c2, group_q4_k, mlxr_block_q4_kx8, xinfo_k, 2)
RP_GROUP_VARIANT(, q4_k_c3, group_q4_k, mlxr_block_q4_kx8, xinfo_k, 3)
RP_GROUP_VARIANT(, q4_k_c4, group_q4_k, mlxr_block_q4_kx8, xinfo_k, 4)
RP_GROUP_VARIANT(, q6_k_c1, group_q6_k, mlxr_block_q6_kx8, xinfo_k, 1)
RP_GROUP_VARIANT(, q6_k_c2, group_q6_k, mlxr_block_q6_kx8, xinfo_k, 2)
RP_GROUP_VARIANT(, q6_k_c3, group_q6_k, mlxr_block_q6_kx8, xinfo_k, 3)
RP_GROUP_VARIANT(, q6_k_c4, group_q6_k, mlxr_block_q6_kx8, xinfo_k, 4)

static const rp_type Q4_KX8 = {{NULL, q4_k_c1, q4_k_c2, q4_k_c3, q4_k_c4},
                               {NULL},
                               fill_q8_k,
                               MLXR_QK_K,
                               sizeof(mlxr_block_q4_kx8),
                               sizeof(mlxr_block_q8_k),
                               KB,
                               KB_ONE,
                               mlxr_vec_dot_q4_k_avx2};
static const rp_type Q6_KX8 = {{NULL, q6_k_c1, q6_k_c2, q6_k_c3, q6_k_c4},
                               {NULL},
                               fill_q8_k,
                               MLXR_QK_K,
                               sizeof(mlxr_block_q6_kx8),
                               sizeof(mlxr_block_q8_k),
                               KB,
                               KB_ONE,
                               mlxr_vec_dot_q6_k_avx2};

void mlxr_gemm_q4_kx8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t ws,
                           const void *x, size_t xs, float *y, size_t ldy) {
    xinfo_k xi;
    rp_gemm(&Q4_KX8, &xi, n, nr, nc, w, ws, x, xs, y, ldy);
}

void mlxr_gemm_q6_kx8_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t ws,
                           const void *x, size_t xs, float *y, size_t ldy) {
    xinfo_k xi;
    rp_gemm(&Q6_KX8, &xi, n, nr, nc, w, ws, x, xs, y, ldy);
}

#endif /* x86 */
