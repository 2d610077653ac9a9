/*
 * vnni_avx512.c - AVX512_VNNI variants of the Q8_0, Q4_0 (x Q8_0) and Q4_K, Q5_K, Q6_K (x Q8_K)
 * dot products (see kernels.h, ref/types.c and ref/quants.c for the definitions).
 *
 * The file is compiled with the AVX-512 F/BW/DQ/VL flags (its `_avx512` suffix); each function
 * adds AVX512_VNNI through a target attribute, so nothing here runs before dispatch.c found the
 * level MLXR_ISA_AVX512_VNNI. The schemes are those of types_avx512.c / quants_avx512.c with the
 * integer products done by vpdpbusd (u8 x s8, 4 adjacent products summed into an int32 lane),
 * which replaces the vpmaddubsw + vpmaddwd (+ vpaddd) pair of the plain AVX-512 code:
 *   - Q8_0: |x| as the unsigned operand, x's sign moved onto y (exact while y != -128, as the
 *     other SIMD paths; activations come from the Q8_0 quantizer, which never writes -128);
 *   - Q4_0: the nibbles u = q + 8 are unsigned already: sum(u * y) - 8 * sum(y), both by vpdpbusd
 *     (exact for any bytes);
 *   - Q4_K / Q5_K / Q6_K: vpdpbusd gives the int32 sum of 4 products, which fits in int16
 *     (|sum| <= 4 * 63 * 128 = 32256 for Q6_K's 6-bit quants, less for 4/5 bits), so its low
 *     16 bits are the sum and its high 16 bits only the sign; vpdpwssd against a register holding
 *     the sub-block scale in the low int16 of each int32 and 0 in the high one then multiplies
 *     by the scale and accumulates in one instruction (the int16 pair product of vpmaddwd with
 *     one factor 0). Mins and Q6_K's -32 go through the bsums as in quants_avx512.c.
 * Per block (super-block) the integer sums are exact, so results differ from the reference by
 * float accumulation order only.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/simd_avx512.h"

#define VNNI __attribute__((target("avx512vnni")))

/* ---- Q8_0 / Q4_0 ------------------------------------------------------------------------------
 */

/* Sums of 4 adjacent products x[k] * y[k] as 16 int32 lanes; y != -128 where x < 0. */
VNNI static inline __m512i dot_i8_quads(__m512i x, __m512i y) {
    const __m512i ax = _mm512_abs_epi8(x); /* -128 reads as 128 unsigned */
    const __m512i sy = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(x), _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
}

/* Sums of 4 adjacent products (u[k] - 8) * y[k] for nibbles u in [0, 15], any y byte. */
VNNI static inline __m512i dot_q4_quads(__m512i u, __m512i y) {
    const __m512i uy = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, y);
    return _mm512_sub_epi32(uy,
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(8), y));
}

VNNI static inline __m256i dot_i8_quads_256(const int8_t *px, const int8_t *py) {
    const __m256i x = _mm256_loadu_si256((const __m256i *)px);
    const __m256i y = _mm256_loadu_si256((const __m256i *)py);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(x, x),
                               _mm256_sign_epi8(y, x));
}

VNNI static inline __m256i dot_q4_quads_256(const uint8_t *qs, const int8_t *py) {
    const __m256i y = _mm256_loadu_si256((const __m256i *)py);
    const __m256i uy = _mm256_dpbusd_epi32(_mm256_setzero_si256(), load_q4(qs), y);
    return _mm256_sub_epi32(uy,
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), y));
}

/* Two blocks per 512-bit register (low half block i, high half block i + 1), 4 blocks per step,
 * each half scaled by its own d_x * d_y; the last nb % 4 blocks one at a time in 256 bits. */
#define Q_DOT_BODY(LOAD_X, DOT, DOT_256)                                                           \
    const int64_t nb = n / 32;                                                                     \
    const __m512i i01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);         \
    const __m512i i23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);         \
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                 \
    int64_t i = 0;                                                                                 \
    for (; i + 4 <= nb; i += 4) {                                                                  \
        const __m128 d = SCALES4(a, b, i);                                                         \
        const __m512i q01 = DOT(LOAD_X(a[i].qs, a[i + 1].qs), load_2x_q8(b[i].qs, b[i + 1].qs));   \
        const __m512i q23 =                                                                        \
            DOT(LOAD_X(a[i + 2].qs, a[i + 3].qs), load_2x_q8(b[i + 2].qs, b[i + 3].qs));           \
        acc0 = _mm512_fmadd_ps(lanes(d, i01), _mm512_cvtepi32_ps(q01), acc0);                      \
        acc1 = _mm512_fmadd_ps(lanes(d, i23), _mm512_cvtepi32_ps(q23), acc1);                      \
    }                                                                                              \
    __m256 tail = _mm256_setzero_ps();                                                             \
    for (; i < nb; i++) {                                                                          \
        tail = _mm256_fmadd_ps(scale1(a[i].d, b[i].d),                                             \
                               _mm256_cvtepi32_ps(DOT_256(a[i].qs, b[i].qs)), tail);               \
    }                                                                                              \
    *s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + hsum256(tail);

VNNI void mlxr_vec_dot_q8_0_avx512vnni(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q8_0 *a = x, *b = y;
    Q_DOT_BODY(load_2x_q8, dot_i8_quads, dot_i8_quads_256)
}

VNNI void mlxr_vec_dot_q4_0_avx512vnni(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_0 *a = x;
    const mlxr_block_q8_0 *b = y;
    Q_DOT_BODY(load_2x_q4, dot_q4_quads, dot_q4_quads_256)
}

#undef Q_DOT_BODY

/* ---- K-quants ------------------------------------------------------------------------------- */

/* vpshufb mask giving, in each int32 of 128-bit lane L, int16 element e[L] of a lanes4() vector
 * in the low half and 0 in the high half (the operand vpdpwssd multiplies a vpdpbusd sum by). */
static inline __m512i pick16_lo(int e0, int e1, int e2, int e3) {
    const int e[4] = {e0, e1, e2, e3};
    __m128i l[4];
    for (int k = 0; k < 4; k++)
        l[k] = _mm_set1_epi32(
            (int)(0x80800000u | (unsigned)(2 * e[k] + 1) << 8 | (unsigned)(2 * e[k])));
    return per_lane(l[0], l[1], l[2], l[3]);
}

/*
 * Q4_K / Q5_K, super-block integer sum of scale[g] * sum(u * y) over the 8 sub-blocks, in 16
 * int32 lanes. Register layout as quants_avx512.c k_sumi: chunk j's 32 bytes in both halves, the
 * high half shifted by 4, so the register holds values 64j..64j+63 in order (sub-block 2j in the
 * low half, 2j+1 in the high), Q5_K's fifth bit ORed in from qh.
 */
VNNI static inline __m512i k_sumi_vnni(const uint8_t *qs, const uint8_t *qh, const int8_t *q8,
                                       __m128i sc8) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    const __m512i shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    const __m512i sc = lanes4(sc8);
    const __m512i hb = qh ? load2x256(qh) : _mm512_setzero_si512();
    __m512i sumi = _mm512_setzero_si512();
    for (int j = 0; j < 4; j++) {
        __m512i u = _mm512_and_si512(_mm512_srlv_epi64(load2x256(qs + 32 * j), shift), m4);
        if (qh) {
            const __m512i hs = _mm512_srlv_epi64(
                hb, _mm512_add_epi64(_mm512_set1_epi64(2 * j), _mm512_srli_epi64(shift, 2)));
            u = _mm512_or_si512(u, _mm512_slli_epi16(_mm512_and_si512(hs, one), 4));
        }
        const __m512i p =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(q8 + 64 * j));
        const __m512i s = _mm512_shuffle_epi8(sc, pick16_lo(2 * j, 2 * j, 2 * j + 1, 2 * j + 1));
        sumi = _mm512_dpwssd_epi32(sumi, p, s);
    }
    return sumi;
}

VNNI static void dot_k4_vnni(int64_t n, float *s, const void *x, size_t bytes, size_t off_scales,
                             size_t off_qh, size_t off_qs, const mlxr_block_q8_k *b) {
    const uint8_t *a = x;
    const int64_t nb = n / MLXR_QK_K;
    __m512 acc = _mm512_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = a + (size_t)i * bytes;
        uint16_t d16, m16;
        memcpy(&d16, blk, 2);
        memcpy(&m16, blk + 2, 2);
        const __m256i sm = _mm256_cvtepu8_epi16(k4_scales_mins(blk + off_scales));
        const __m128i mins = k4_min_sums(sm, b[i].bsums);
        const __m512i sumi = k_sumi_vnni(blk + off_qs, off_qh ? blk + off_qh : NULL, b[i].qs,
                                         _mm256_castsi256_si128(sm));
        const float d = _cvtsh_ss(d16) * b[i].d, dmin = _cvtsh_ss(m16) * b[i].d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), accm);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum128(accm);
}

VNNI void mlxr_vec_dot_q4_k_avx512vnni(int64_t n, float *s, const void *x, const void *y) {
    dot_k4_vnni(n, s, x, sizeof(mlxr_block_q4_k), offsetof(mlxr_block_q4_k, scales), 0,
                offsetof(mlxr_block_q4_k, qs), y);
}

VNNI void mlxr_vec_dot_q5_k_avx512vnni(int64_t n, float *s, const void *x, const void *y) {
    dot_k4_vnni(n, s, x, sizeof(mlxr_block_q5_k), offsetof(mlxr_block_q5_k, scales),
                offsetof(mlxr_block_q5_k, qh), offsetof(mlxr_block_q5_k, qs), y);
}

/* Q6_K: quants_avx512.c's layout (per 128-value half, A = values 0..63 and B = 64..127, each
 * 128-bit lane one 16-value scale group) with vpdpbusd + vpdpwssd. */
VNNI void mlxr_vec_dot_q6_k_avx512vnni(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q6_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
    const __m512i sh_a = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    const __m512i sh_b = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);
    const __m512i pick_a = pick16_lo(0, 1, 2, 3), pick_b = pick16_lo(4, 5, 6, 7);
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512i sumi = zero;
        for (int h = 0; h < 2; h++) {
            const __m512i sc =
                lanes4(h ? _mm256_extracti128_si256(sc16, 1) : _mm256_castsi256_si128(sc16));
            const __m512i ql = _mm512_loadu_si512(a[i].ql + 64 * h);
            const __m512i qh = load2x256(a[i].qh + 32 * h);
            const __m512i ua = _mm512_or_si512(
                _mm512_and_si512(ql, m4),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, sh_a), m2), 4));
            const __m512i ub = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(qh, sh_b), m2), 4));
            const __m512i pa = _mm512_dpbusd_epi32(zero, ua, _mm512_loadu_si512(b[i].qs + 128 * h));
            const __m512i pb =
                _mm512_dpbusd_epi32(zero, ub, _mm512_loadu_si512(b[i].qs + 128 * h + 64));
            sumi = _mm512_dpwssd_epi32(sumi, pa, _mm512_shuffle_epi8(sc, pick_a));
            sumi = _mm512_dpwssd_epi32(sumi, pb, _mm512_shuffle_epi8(sc, pick_b));
        }
        /* the -32 offset: 32 * sum_g sc[g] * bsums[g] */
        const __m256i bias =
            _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        sumi = _mm512_sub_epi32(sumi, _mm512_inserti64x4(zero, _mm256_slli_epi32(bias, 5), 0));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm512_cvtepi32_ps(sumi),
                              acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

#endif /* x86 */
