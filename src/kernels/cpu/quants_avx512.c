/*
 * quants_avx512.c - AVX-512 (F/BW/DQ/VL) variants of the most used K-quant dot products, Q4_K,
 * Q5_K and Q6_K against Q8_K (see ref/quants.c for the definition, quants_avx2.c for the scheme).
 *
 * Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c; only called when
 * dispatch.c found AVX-512 F/BW/DQ/VL and OS-enabled ZMM state. No VNNI, so any AVX-512 server
 * CPU runs it. The logic is quants_avx2.c's with 64 values per register instead of 32:
 *   - unsigned weight quants x signed activation bytes with vpmaddubsw (int16 pair sums, no
 *     saturation: |pair| <= 2 * 63 * 128), then vpmaddwd with the sub-block scales (int32);
 *   - each 128-bit lane of a product register covers 16 values, so one 64-value register spans
 *     two (Q4_K/Q5_K: 32-value sub-blocks) or four (Q6_K: 16-value groups) scales, and the scale
 *     register holds the right int16 scale in each 128-bit lane (a vpshufb of the scales copied
 *     into every lane, with a per-lane mask);
 *   - Q4_K/Q5_K mins and the -32 of Q6_K go through the activation's bsums, once per super-block.
 * Per super-block the integer sums are exact; only float accumulation order differs from the
 * reference. The AVX2 variants of the other quantized types stay in use on AVX-512 machines.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/simd_avx512.h"

static inline float hsum512(__m512 v) {
    return _mm512_reduce_add_ps(v);
}

/*
 * Q4_K / Q5_K: the 32 bytes of chunk j (64 values: sub-block 2j in the low nibbles, 2j+1 in the
 * high) loaded into both halves, the high half shifted by 4: the register holds the 64 values in
 * element order, against 64 contiguous activation bytes. Q5_K ORs in bit 2j (low half) or 2j+1
 * (high half) of qh, shifted to bit 4.
 */
static inline __m512i k_sumi(const uint8_t *qs, const uint8_t *qh, const int8_t *q8, __m128i sc8) {
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
        const __m512i p = _mm512_maddubs_epi16(u, _mm512_loadu_si512(q8 + 64 * j));
        const __m512i s = _mm512_shuffle_epi8(sc, pick16(2 * j, 2 * j, 2 * j + 1, 2 * j + 1));
        sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(p, s));
    }
    return sumi;
}

static void dot_k4(int64_t n, float *s, const void *x, size_t bytes, size_t off_scales,
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
        const __m512i sumi =
            k_sumi(blk + off_qs, off_qh ? blk + off_qh : NULL, b[i].qs, _mm256_castsi256_si128(sm));
        const float d = _cvtsh_ss(d16) * b[i].d, dmin = _cvtsh_ss(m16) * b[i].d;
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), accm);
    }
    *s = hsum512(acc) - hsum128(accm);
}

void mlxr_vec_dot_q4_k_avx512(int64_t n, float *s, const void *x, const void *y) {
    dot_k4(n, s, x, sizeof(mlxr_block_q4_k), offsetof(mlxr_block_q4_k, scales), 0,
           offsetof(mlxr_block_q4_k, qs), y);
}

void mlxr_vec_dot_q5_k_avx512(int64_t n, float *s, const void *x, const void *y) {
    dot_k4(n, s, x, sizeof(mlxr_block_q5_k), offsetof(mlxr_block_q5_k, scales),
           offsetof(mlxr_block_q5_k, qh), offsetof(mlxr_block_q5_k, qs), y);
}

/*
 * Q6_K: per 128-value half, A = values 0..63 (u0 | u1 of quants_avx2.c: low nibbles of ql[0..63]
 * and bit pairs 0-1 / 2-3 of qh) and B = values 64..127 (high nibbles, bit pairs 4-5 / 6-7); each
 * 128-bit lane of A or B is one 16-value scale group.
 */
void mlxr_vec_dot_q6_k_avx512(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q6_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
    const __m512i sh_a = _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2);
    const __m512i sh_b = _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6);
    const __m512i pick_a = pick16(0, 1, 2, 3), pick_b = pick16(4, 5, 6, 7);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m512i sumi = _mm512_setzero_si512();
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
            const __m512i pa = _mm512_maddubs_epi16(ua, _mm512_loadu_si512(b[i].qs + 128 * h));
            const __m512i pb = _mm512_maddubs_epi16(ub, _mm512_loadu_si512(b[i].qs + 128 * h + 64));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pa, _mm512_shuffle_epi8(sc, pick_a)));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pb, _mm512_shuffle_epi8(sc, pick_b)));
        }
        /* the -32 offset: 32 * sum_g sc[g] * bsums[g] */
        const __m256i bias =
            _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)b[i].bsums));
        sumi = _mm512_sub_epi32(
            sumi, _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_slli_epi32(bias, 5), 0));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm512_cvtepi32_ps(sumi),
                              acc);
    }
    *s = hsum512(acc);
}

#endif /* x86 */
