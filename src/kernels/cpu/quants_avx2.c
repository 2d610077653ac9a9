/*
 * quants_avx2.c - AVX2 + FMA + F16C variants of the quantized kernels of ref/quants.c: the dot
 * products of Q4_1, Q5_0, Q5_1, IQ4_NL (32-value blocks) and Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
 * IQ4_XS (256-value super-blocks), the activation quantizers Q8_1 and Q8_K, and tiled products
 * (prompt processing) for Q4_K, Q5_K and Q6_K.
 *
 * Each has the meaning of its _ref twin: quantizers give the same bytes; dot products give the
 * same exact integer sums per (sub-)block, and differ from the reference by float reordering only.
 * The integer work is maddubs (unsigned weight quant x signed activation byte -> int16 pair sums)
 * then madd with the sub-block scales (-> int32), one float FMA per block or super-block:
 *   - weight quants are kept unsigned ([0, 2^bits)); the offset of the signed types (-4 for Q3_K,
 *     -32 for Q6_K, -16 for Q5_0) is subtracted once per super-block through the activation's
 *     bsums (sum of each 16 quants) for the K-quants, or with a second maddubs for Q5_0;
 *   - no int16 pair sum can saturate: |pair| <= 2 * 63 * 128 for the widest (Q6_K) quants;
 *   - the non-linear IQ4 values are signed, so those use the sign trick (maddubs(|w|, a*sign(w))),
 *     exact because activations never hold -128 (Q8_K never; Q8_0 only with a zero scale, see
 *     ref/types.c).
 * The int32 sums per super-block stay below 2^31 (at most 256 * 63 * 127 * 127 for Q6_K).
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/simd_avx2.h"
#include "util/fp16.h"

/* vroundps immediate: to nearest, ties to even. */
#define ROUND_EVEN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

static inline __m256i ones16(void) {
    return _mm256_set1_epi16(1);
}

/* Pair sums of u*y (u unsigned bytes, y signed) widened to 8 int32 lanes of quad sums. */
static inline __m256i dot_u8_i8(__m256i u, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), ones16());
}

/* The same for signed x (|x| <= 127) and y != -128: the sign trick. */
static inline __m256i dot_i8_i8(__m256i x, __m256i y) {
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* Bit k of the 32-bit word at p as byte k: 0xFF where set, 0x00 where clear. */
static inline __m256i bits_to_bytes(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    /* byte k of each 8 has every bit but bit k set: OR gives all ones iff bit k was set */
    const __m256i sel = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    return _mm256_cmpeq_epi8(_mm256_or_si256(bytes, sel), _mm256_set1_epi64x(-1));
}

/* The 32 5-bit quants of a Q5 block, unsigned in [0, 31]. */
static inline __m256i unpack_q5(const uint8_t *qs, const uint8_t *qh) {
    const __m256i hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_q4_0(qs), hi);
}

/* The IQ4 level table in both 128-bit halves, for vpshufb lookups. */
static inline __m256i iq4_table(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mlxr_kvalues_iq4nl));
}

/* ---- activation quantizers ------------------------------------------------------------------- */

static inline float hmax_ps(__m256 v) {
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline int32_t hsum_epi32(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(1, 0, 3, 2)));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(r);
}

/* 32 rounded values (4 x 8 int32, element order) to 32 saturated int8 at q. */
static inline void store_i8x32(int8_t *q, __m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    /* packs interleaves 128-bit lanes; the permute puts the 4-byte groups back in order */
    const __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256((__m256i *)q,
                        _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order));
}

void mlxr_quantize_q8_1_avx2(const float *x, void *y, int64_t n) {
    mlxr_block_q8_1 *b = y;
    const int64_t nb = n / MLXR_QK8_1;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK8_1;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
        __m256 v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float amax = hmax_ps(m);
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        const __m256 mul = _mm256_set1_ps(id);
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), ROUND_EVEN));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), ROUND_EVEN));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), ROUND_EVEN));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), ROUND_EVEN));
        store_i8x32(b[i].qs, i0, i1, i2, i3);
        /* the sum of the stored (saturated) bytes, as the reference sums them */
        const __m256i q = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const int32_t sum =
            hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), ones16()));
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        b[i].s = (uint16_t)_cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
    }
}

void mlxr_quantize_q8_k_avx2(const float *x, void *y, int64_t n) {
    mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < MLXR_QK_K; j += 8)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + j)));
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        /* the first value of largest magnitude keeps its sign (the reference's strict > scan) */
        const __m256 am = _mm256_set1_ps(amax);
        int first = 0;
        for (int j = 0; j < MLXR_QK_K; j += 8) {
            const int hit = _mm256_movemask_ps(
                _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(v + j)), am, _CMP_EQ_OQ));
            if (hit) {
                first = j + __builtin_ctz((unsigned)hit);
                break;
            }
        }
        const float iscale = -127.0f / v[first];
        const __m256 mul = _mm256_set1_ps(iscale);
        for (int j = 0; j < MLXR_QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_cvtps_epi32(_mm256_round_ps(
                    _mm256_mul_ps(_mm256_loadu_ps(v + j + 8 * k), mul), ROUND_EVEN));
            store_i8x32(b[i].qs + j, q[0], q[1], q[2], q[3]);
        }
        /* bsums from the stored bytes: pair sums, then pairs of pairs, ... per 16 */
        for (int j = 0; j < MLXR_QK_K; j += 64) {
            const __m256i q0 = _mm256_loadu_si256((const __m256i *)(b[i].qs + j));
            const __m256i q1 = _mm256_loadu_si256((const __m256i *)(b[i].qs + j + 32));
            const __m256i s0 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q0), ones16());
            const __m256i s1 =
                _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q1), ones16());
            /* s0 lanes: quads 0..3 (group A) | 4..7 (group B); hadd twice sums each 4 */
            __m256i h = _mm256_hadd_epi32(s0, s1); /* A01 A23 C01 C23 | B01 B23 D01 D23 */
            h = _mm256_hadd_epi32(h, h);           /* A C A C | B D B D */
            const int32_t ga = _mm256_extract_epi32(h, 0), gc = _mm256_extract_epi32(h, 1);
            const int32_t gb = _mm256_extract_epi32(h, 4), gd = _mm256_extract_epi32(h, 5);
            b[i].bsums[j / 16 + 0] = (int16_t)ga;
            b[i].bsums[j / 16 + 1] = (int16_t)gb;
            b[i].bsums[j / 16 + 2] = (int16_t)gc;
            b[i].bsums[j / 16 + 3] = (int16_t)gd;
        }
        b[i].d = 1.0f / iscale;
    }
}

/* ---- 32-value blocks --------------------------------------------------------------------------
 */

/*
 * One shape for the four types: 4 blocks per step with their scale products packed (SCALES4,
 * simd_avx2.h), an int32 quad-sum vector per block, one FMA each into two accumulators. QUANTS(a,
 * b, i) gives block i's int32 vector. DOT32_MIN adds the offset term of Q4_1/Q5_1 (m * s per
 * block, 4 blocks per FMA); DOT32_NOMIN is the same loop without it.
 */
#define DOT32_MIN(WT, AT, QUANTS)                                                                  \
    const WT *a = x;                                                                               \
    const AT *b = y;                                                                               \
    const int64_t nb = n / 32;                                                                     \
    const __m256i k0 = _mm256_set1_epi32(0), k1 = _mm256_set1_epi32(1);                            \
    const __m256i k2 = _mm256_set1_epi32(2), k3 = _mm256_set1_epi32(3);                            \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                 \
    __m128 accm = _mm_setzero_ps();                                                                \
    int64_t i = 0;                                                                                 \
    for (; i + 4 <= nb; i += 4) {                                                                  \
        const __m128 d = SCALES4(a, b, i);                                                         \
        const __m256 q0 = _mm256_cvtepi32_ps(QUANTS(a, b, i));                                     \
        const __m256 q1 = _mm256_cvtepi32_ps(QUANTS(a, b, i + 1));                                 \
        const __m256 q2 = _mm256_cvtepi32_ps(QUANTS(a, b, i + 2));                                 \
        const __m256 q3 = _mm256_cvtepi32_ps(QUANTS(a, b, i + 3));                                 \
        acc0 = _mm256_fmadd_ps(lane(d, k0), q0, acc0);                                             \
        acc1 = _mm256_fmadd_ps(lane(d, k1), q1, acc1);                                             \
        acc0 = _mm256_fmadd_ps(lane(d, k2), q2, acc0);                                             \
        acc1 = _mm256_fmadd_ps(lane(d, k3), q3, acc1);                                             \
        accm = _mm_fmadd_ps(f16x4(a[i].m, a[i + 1].m, a[i + 2].m, a[i + 3].m),                     \
                            f16x4(b[i].s, b[i + 1].s, b[i + 2].s, b[i + 3].s), accm);              \
    }                                                                                              \
    float summ = 0.0f;                                                                             \
    for (; i < nb; i++) {                                                                          \
        acc0 = _mm256_fmadd_ps(scale1(a[i].d, b[i].d), _mm256_cvtepi32_ps(QUANTS(a, b, i)), acc0); \
        summ += _cvtsh_ss(a[i].m) * _cvtsh_ss(b[i].s);                                             \
    }                                                                                              \
    *s = hsum_ps(_mm256_add_ps(acc0, acc1)) + (hsum_ps128(accm) + summ);

#define QUANTS_Q4_1(a, b, i) dot_u8_i8(unpack_q4_0(a[i].qs), load_i8x32(b[i].qs))
#define QUANTS_Q5_1(a, b, i) dot_u8_i8(unpack_q5(a[i].qs, a[i].qh), load_i8x32(b[i].qs))
#define QUANTS_IQ4_NL(a, b, i)                                                                     \
    dot_i8_i8(_mm256_shuffle_epi8(iq4_table(), unpack_q4_0(a[i].qs)), load_i8x32(b[i].qs))

/* Q5_0: (u - 16) * y = u*y - 16*y, both exact in int16 pair sums, any y byte. */
static inline __m256i quants_q5_0(const mlxr_block_q5_0 *a, const mlxr_block_q8_0 *b) {
    const __m256i y = load_i8x32(b->qs);
    const __m256i uy = _mm256_maddubs_epi16(unpack_q5(a->qs, a->qh), y);
    const __m256i oy = _mm256_maddubs_epi16(_mm256_set1_epi8(16), y);
    return _mm256_madd_epi16(_mm256_sub_epi16(uy, oy), ones16());
}
#define QUANTS_Q5_0(a, b, i) quants_q5_0(&a[i], &b[i])

void mlxr_vec_dot_q4_1_avx2(int64_t n, float *s, const void *x, const void *y) {
    DOT32_MIN(mlxr_block_q4_1, mlxr_block_q8_1, QUANTS_Q4_1)
}

void mlxr_vec_dot_q5_1_avx2(int64_t n, float *s, const void *x, const void *y) {
    DOT32_MIN(mlxr_block_q5_1, mlxr_block_q8_1, QUANTS_Q5_1)
}

#define DOT32_NOMIN(WT, QUANTS)                                                                    \
    const WT *a = x;                                                                               \
    const mlxr_block_q8_0 *b = y;                                                                  \
    const int64_t nb = n / 32;                                                                     \
    const __m256i k0 = _mm256_set1_epi32(0), k1 = _mm256_set1_epi32(1);                            \
    const __m256i k2 = _mm256_set1_epi32(2), k3 = _mm256_set1_epi32(3);                            \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                 \
    int64_t i = 0;                                                                                 \
    for (; i + 4 <= nb; i += 4) {                                                                  \
        const __m128 d = SCALES4(a, b, i);                                                         \
        const __m256 q0 = _mm256_cvtepi32_ps(QUANTS(a, b, i));                                     \
        const __m256 q1 = _mm256_cvtepi32_ps(QUANTS(a, b, i + 1));                                 \
        const __m256 q2 = _mm256_cvtepi32_ps(QUANTS(a, b, i + 2));                                 \
        const __m256 q3 = _mm256_cvtepi32_ps(QUANTS(a, b, i + 3));                                 \
        acc0 = _mm256_fmadd_ps(lane(d, k0), q0, acc0);                                             \
        acc1 = _mm256_fmadd_ps(lane(d, k1), q1, acc1);                                             \
        acc0 = _mm256_fmadd_ps(lane(d, k2), q2, acc0);                                             \
        acc1 = _mm256_fmadd_ps(lane(d, k3), q3, acc1);                                             \
    }                                                                                              \
    for (; i < nb; i++)                                                                            \
        acc0 = _mm256_fmadd_ps(scale1(a[i].d, b[i].d), _mm256_cvtepi32_ps(QUANTS(a, b, i)), acc0); \
    *s = hsum_ps(_mm256_add_ps(acc0, acc1));

void mlxr_vec_dot_q5_0_avx2(int64_t n, float *s, const void *x, const void *y) {
    DOT32_NOMIN(mlxr_block_q5_0, QUANTS_Q5_0)
}

void mlxr_vec_dot_iq4_nl_avx2(int64_t n, float *s, const void *x, const void *y) {
    DOT32_NOMIN(mlxr_block_iq4_nl, QUANTS_IQ4_NL)
}

/* ---- super-block helpers ----------------------------------------------------------------------
 */

/* int16 lane g (0..7) of a 128-bit vector broadcast to all 16 lanes of a 256-bit one, given the
 * vector already in both halves: a vpshufb with a constant mask. */
static inline __m256i bcast16(__m256i v2, int g) {
    return _mm256_shuffle_epi8(v2, _mm256_set1_epi16((short)((2 * g + 1) << 8 | 2 * g)));
}

/* int16 lanes g (low half) and g + 1 (high half): the scales of a 32-value vector that spans two
 * 16-value groups, from 8 int16 scales in both halves. */
static inline __m256i bcast16_pair(__m256i v2, int g) {
    const short lo = (short)((2 * g + 1) << 8 | 2 * g),
                hi = (short)((2 * g + 3) << 8 | (2 * g + 2));
    return _mm256_shuffle_epi8(
        v2, _mm256_setr_epi16(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi));
}

/* 128-bit half h of v in both halves (immediates must be constants, so both are spelled out). */
static inline __m256i half_twice(__m256i v, int h) {
    return h ? _mm256_permute4x64_epi64(v, 0xEE) : _mm256_permute4x64_epi64(v, 0x44);
}

/* The 8 scales and 8 mins of a Q4_K/Q5_K header as bytes 0..7 and 8..15: with a = bytes 0..7 and
 * b = bytes 8..11, scale/min g < 4 are the low 6 bits of a's bytes, g >= 4 the nibbles of b plus
 * a's top 2 bits (the reference's k4_scale_min, 8 at a time in two 64-bit words). */
static inline __m128i k4_scales_mins(const uint8_t *q) {
    uint64_t a;
    uint32_t b;
    memcpy(&a, q, 8);
    memcpy(&b, q + 8, 4);
    const uint64_t lo = a & 0x3f3f3f3f3f3f3f3full; /* s0..s3 | m0..m3 */
    const uint64_t hi = ((uint64_t)((b >> 4) & 0x0f0f0f0fu) << 32 | (b & 0x0f0f0f0fu)) |
                        ((a >> 6) & 0x0303030303030303ull) << 4; /* s4..s7 | m4..m7 */
    const uint64_t scales = (lo & 0xffffffffull) | hi << 32;
    const uint64_t mins = lo >> 32 | (hi & 0xffffffff00000000ull);
    return _mm_set_epi64x((long long)mins, (long long)scales);
}

/* Sum over the 8 sub-blocks of min[g] * (bsums[2g] + bsums[2g+1]) as 4 int32 lanes. */
static inline __m128i k4_min_sums(__m256i sm16, const int16_t *bsums) {
    const __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
    const __m128i pairs =
        _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
    return _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), pairs);
}

/* Sum over the 16 groups of sc[g] * bsums[g] (sc as 16 int16 lanes) as 8 int32 lanes. */
static inline __m256i group_bsums(__m256i sc16, const int16_t *bsums) {
    return _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)bsums));
}

/* ---- Q4_K / Q5_K -------------------------------------------------------------------------- */

/* Integer part of one Q4_K super-block: sum over sub-blocks of sc[g] * dot(q, q8), 8 lanes. */
static inline __m256i q4_k_sumi(const uint8_t *qs, const int8_t *q8, __m256i sc2) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
        const __m256i lo = _mm256_and_si256(bits, m4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        const __m256i pl = _mm256_maddubs_epi16(lo, load_i8x32(q8 + 64 * j));
        const __m256i ph = _mm256_maddubs_epi16(hi, load_i8x32(q8 + 64 * j + 32));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pl, bcast16(sc2, 2 * j)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(ph, bcast16(sc2, 2 * j + 1)));
    }
    return sumi;
}

void mlxr_vec_dot_q4_k_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    __m128 accm[2] = {_mm_setzero_ps(), _mm_setzero_ps()};
    int64_t i = 0;
    /* two super-blocks per step: independent chains for the out-of-order core */
    for (; i + 2 <= nb; i += 2) {
        for (int u = 0; u < 2; u++) {
            const __m256i sm = _mm256_cvtepu8_epi16(k4_scales_mins(a[i + u].scales));
            const __m128i mins = k4_min_sums(sm, b[i + u].bsums);
            const __m256i sc2 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
            const __m256i sumi = q4_k_sumi(a[i + u].qs, b[i + u].qs, sc2);
            const float d = _cvtsh_ss(a[i + u].d) * b[i + u].d;
            const float dmin = _cvtsh_ss(a[i + u].dmin) * b[i + u].d;
            acc[u] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[u]);
            accm[u] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), accm[u]);
        }
    }
    for (; i < nb; i++) {
        const __m256i sm = _mm256_cvtepu8_epi16(k4_scales_mins(a[i].scales));
        const __m128i mins = k4_min_sums(sm, b[i].bsums);
        const __m256i sc2 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
        const __m256i sumi = q4_k_sumi(a[i].qs, b[i].qs, sc2);
        const float d = _cvtsh_ss(a[i].d) * b[i].d, dmin = _cvtsh_ss(a[i].dmin) * b[i].d;
        acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[0]);
        accm[0] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), accm[0]);
    }
    *s = hsum_ps(_mm256_add_ps(acc[0], acc[1])) - hsum_ps128(_mm_add_ps(accm[0], accm[1]));
}

void mlxr_vec_dot_q5_k_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q5_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i sm = _mm256_cvtepu8_epi16(k4_scales_mins(a[i].scales));
        const __m128i mins = k4_min_sums(sm, b[i].bsums);
        const __m256i sc2 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
        const int8_t *q8 = b[i].qs;
        /* fifth bits: value 32k + l has bit k of qh[l]; shifted down 2 per 64 values */
        __m256i hb = _mm256_loadu_si256((const __m256i *)a[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * j));
            const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(hb, one), 4);
            const __m256i hh =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4);
            hb = _mm256_srli_epi16(hb, 2);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
            const __m256i hi =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
            const __m256i pl = _mm256_maddubs_epi16(lo, load_i8x32(q8 + 64 * j));
            const __m256i ph = _mm256_maddubs_epi16(hi, load_i8x32(q8 + 64 * j + 32));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(pl, bcast16(sc2, 2 * j)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(ph, bcast16(sc2, 2 * j + 1)));
        }
        const float d = _cvtsh_ss(a[i].d) * b[i].d, dmin = _cvtsh_ss(a[i].dmin) * b[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins), accm);
    }
    *s = hsum_ps(acc) - hsum_ps128(accm);
}

/* ---- Q6_K --------------------------------------------------------------------------------- */

/*
 * Integer part of one Q6_K super-block with the quants unsigned (q + 32 in [0, 63]); the -32 is
 * taken off with the bsums: sum sc*(u-32)*y = sum sc*u*y - 32 * sum_g sc[g]*bsums[g].
 * Per 128-value half: ql0 = ql[0..31], ql1 = ql[32..63], qh[0..31]; the 32-value vector k takes
 * nibble k/2 of ql(k%2) and bits 2k, 2k+1 of qh, and spans scale groups 8h + 2k, 8h + 2k + 1.
 */
static inline __m256i q6_k_sumi(const mlxr_block_q6_k *w, const int8_t *q8, const int16_t *bsums) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w->scales));
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
        const __m256i sch = half_twice(sc16, h); /* half h twice */
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(w->qh + 32 * h));
        const __m256i u0 = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                           _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
        const __m256i u1 =
            _mm256_or_si256(_mm256_and_si256(ql1, m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
        const __m256i u2 =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
        const __m256i u3 =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
        const int8_t *q = q8 + 128 * h;
        const __m256i p0 = _mm256_maddubs_epi16(u0, load_i8x32(q));
        const __m256i p1 = _mm256_maddubs_epi16(u1, load_i8x32(q + 32));
        const __m256i p2 = _mm256_maddubs_epi16(u2, load_i8x32(q + 64));
        const __m256i p3 = _mm256_maddubs_epi16(u3, load_i8x32(q + 96));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, bcast16_pair(sch, 0)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, bcast16_pair(sch, 2)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p2, bcast16_pair(sch, 4)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p3, bcast16_pair(sch, 6)));
    }
    return _mm256_sub_epi32(sumi, _mm256_slli_epi32(group_bsums(sc16, bsums), 5));
}

void mlxr_vec_dot_q6_k_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q6_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m256i s0 = q6_k_sumi(&a[i], b[i].qs, b[i].bsums);
        const __m256i s1 = q6_k_sumi(&a[i + 1], b[i + 1].qs, b[i + 1].bsums);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm256_cvtepi32_ps(s0),
                               acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i + 1].d) * b[i + 1].d),
                               _mm256_cvtepi32_ps(s1), acc1);
    }
    for (; i < nb; i++) {
        const __m256i s0 = q6_k_sumi(&a[i], b[i].qs, b[i].bsums);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm256_cvtepi32_ps(s0),
                               acc0);
    }
    *s = hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- Q3_K --------------------------------------------------------------------------------- */

/* The 16 scales of a Q3_K header, minus 32, as int8. */
static inline __m128i q3_k_scales(const uint8_t *q) {
    uint32_t u[4];
    memcpy(u, q, 12);
    const uint32_t m1 = 0x03030303, m2 = 0x0f0f0f0f, t = u[2];
    u[2] = ((u[0] >> 4) & m2) | (((t >> 4) & m1) << 4);
    u[3] = ((u[1] >> 4) & m2) | (((t >> 6) & m1) << 4);
    u[0] = (u[0] & m2) | (((t >> 0) & m1) << 4);
    u[1] = (u[1] & m2) | (((t >> 2) & m1) << 4);
    return _mm_sub_epi8(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]),
                        _mm_set1_epi8(32));
}

void mlxr_vec_dot_q3_k_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q3_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* unsigned u = low 2 bits + 4 * hmask bit in [0, 7]; value = u - 4 */
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3_k_scales(a[i].scales));
        const __m256i hm = _mm256_loadu_si256((const __m256i *)a[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i sch = half_twice(sc16, h);
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const int bit = 4 * h + k;
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * k), m2);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, bit), one);
                const __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
                const __m256i p = _mm256_maddubs_epi16(u, load_i8x32(b[i].qs + 128 * h + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, bcast16_pair(sch, 2 * k)));
            }
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(group_bsums(sc16, b[i].bsums), 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    *s = hsum_ps(acc);
}

/* ---- Q2_K --------------------------------------------------------------------------------- */

void mlxr_vec_dot_q2_k_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q2_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m256i m2 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)a[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(raw, m4));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i sch = half_twice(sc16, h);
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            for (int k = 0; k < 4; k++) {
                const __m256i u = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * k), m2);
                const __m256i p = _mm256_maddubs_epi16(u, load_i8x32(b[i].qs + 128 * h + 32 * k));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, bcast16_pair(sch, 2 * k)));
            }
        }
        const float dall = b[i].d * _cvtsh_ss(a[i].d), dmin = b[i].d * _cvtsh_ss(a[i].dmin);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dall), _mm256_cvtepi32_ps(sumi), acc);
        accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin),
                               _mm256_cvtepi32_ps(group_bsums(mn16, b[i].bsums)), accm);
    }
    *s = hsum_ps(acc) - hsum_ps(accm);
}

/* ---- IQ4_XS ------------------------------------------------------------------------------- */

/* The 8 sub-block scales of an IQ4_XS block minus 32, as int16: 4 bits from scales_l (bits 4g..
 * 4g+3 of it read as a little-endian word) and 2 from scales_h (bits 2g, 2g+1). */
static inline __m128i iq4_xs_scales(const mlxr_block_iq4_xs *b) {
    uint32_t sl;
    memcpy(&sl, b->scales_l, 4);
    const __m256i lo =
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl),
                                           _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                         _mm256_set1_epi32(0x0F));
    const __m256i hi =
        _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(b->scales_h),
                                           _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                         _mm256_set1_epi32(3));
    const __m256i v =
        _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    return _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

void mlxr_vec_dot_iq4_xs_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_iq4_xs *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    const __m256i table = iq4_table();
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i sc2 = _mm256_broadcastsi128_si256(iq4_xs_scales(&a[i]));
        __m256i sumi = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
            const __m256i v = _mm256_shuffle_epi8(table, unpack_q4_0(a[i].qs + 16 * g));
            const __m256i y8 = load_i8x32(b[i].qs + 32 * g);
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(y8, v));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, bcast16(sc2, g)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(a[i].d) * b[i].d), _mm256_cvtepi32_ps(sumi),
                              acc);
    }
    *s = hsum_ps(acc);
}

/* ---- tiled products: 1 weight row x 4 activation rows ----------------------------------------
 *
 * Prompt processing multiplies each weight row with many activation rows. These tiles unpack a
 * super-block of one weight row (quants, scales) once and use it for 4 activation rows, keeping 4
 * int32 sums and 4 float accumulators in registers; activation blocks come from L1. The per-block
 * arithmetic is that of the dot products above, so the results differ by float reordering only.
 */
enum { TILE_C = 4 };

/* Q4_K and Q5_K (blocks of `bytes`, quants at off_qs, Q5_K's fifth bits at off_qh, 0 for Q4_K;
 * d, dmin and the scales sit at the same offsets in both). */
static inline void tile_k4(int64_t n, const uint8_t *w, const uint8_t *x, size_t xs, float *y,
                           size_t ldy, size_t bytes, size_t off_qh, size_t off_qs) {
    const int64_t nb = n / MLXR_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc[TILE_C];
    for (int c = 0; c < TILE_C; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * bytes;
        const __m256i sm =
            _mm256_cvtepu8_epi16(k4_scales_mins(blk + offsetof(mlxr_block_q4_k, scales)));
        const __m256i sc2 = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
        const mlxr_block_q8_k *b[TILE_C];
        __m256i sumi[TILE_C];
        for (int c = 0; c < TILE_C; c++) {
            b[c] = (const mlxr_block_q8_k *)(x + (size_t)c * xs) + i;
            sumi[c] = _mm256_setzero_si256();
        }
        __m256i hb =
            off_qh ? _mm256_loadu_si256((const __m256i *)(blk + off_qh)) : _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(blk + off_qs + 32 * j));
            __m256i lo = _mm256_and_si256(bits, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            if (off_qh) { /* as in mlxr_vec_dot_q5_k_avx2 */
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
                hi = _mm256_or_si256(
                    hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
                hb = _mm256_srli_epi16(hb, 2);
            }
            const __m256i sl = bcast16(sc2, 2 * j), sh = bcast16(sc2, 2 * j + 1);
            for (int c = 0; c < TILE_C; c++) {
                const __m256i pl = _mm256_maddubs_epi16(lo, load_i8x32(b[c]->qs + 64 * j));
                const __m256i ph = _mm256_maddubs_epi16(hi, load_i8x32(b[c]->qs + 64 * j + 32));
                sumi[c] = _mm256_add_epi32(sumi[c], _mm256_add_epi32(_mm256_madd_epi16(pl, sl),
                                                                     _mm256_madd_epi16(ph, sh)));
            }
        }
        uint16_t d16, m16;
        memcpy(&d16, blk + offsetof(mlxr_block_q4_k, d), 2);
        memcpy(&m16, blk + offsetof(mlxr_block_q4_k, dmin), 2);
        const float dw = _cvtsh_ss(d16), mw = _cvtsh_ss(m16);
        for (int c = 0; c < TILE_C; c++) {
            /* the min term rides in lanes 0..3 of the same accumulator */
            const __m256i mins =
                _mm256_set_m128i(_mm_setzero_si128(), k4_min_sums(sm, b[c]->bsums));
            acc[c] =
                _mm256_fmadd_ps(_mm256_set1_ps(dw * b[c]->d), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
            acc[c] =
                _mm256_fnmadd_ps(_mm256_set1_ps(mw * b[c]->d), _mm256_cvtepi32_ps(mins), acc[c]);
        }
    }
    for (int c = 0; c < TILE_C; c++)
        y[(size_t)c * ldy] = hsum_ps(acc[c]);
}

_Static_assert(offsetof(mlxr_block_q4_k, scales) == offsetof(mlxr_block_q5_k, scales) &&
                   offsetof(mlxr_block_q4_k, dmin) == offsetof(mlxr_block_q5_k, dmin),
               "Q4_K and Q5_K headers agree");

static void tile_q4_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, float *y,
                      size_t ldy) {
    (void)ws;
    tile_k4(n, w, x, xs, y, ldy, sizeof(mlxr_block_q4_k), 0, offsetof(mlxr_block_q4_k, qs));
}

static void tile_q5_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, float *y,
                      size_t ldy) {
    (void)ws;
    tile_k4(n, w, x, xs, y, ldy, sizeof(mlxr_block_q5_k), offsetof(mlxr_block_q5_k, qh),
            offsetof(mlxr_block_q5_k, qs));
}

static void tile_q6_k(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, float *y,
                      size_t ldy) {
    (void)ws;
    const mlxr_block_q6_k *a = (const mlxr_block_q6_k *)w;
    const int64_t nb = n / MLXR_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    __m256 acc[TILE_C];
    for (int c = 0; c < TILE_C; c++)
        acc[c] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        const mlxr_block_q8_k *b[TILE_C];
        __m256i sumi[TILE_C];
        for (int c = 0; c < TILE_C; c++) {
            b[c] = (const mlxr_block_q8_k *)(x + (size_t)c * xs) + i;
            sumi[c] = _mm256_slli_epi32(group_bsums(sc16, b[c]->bsums), 5); /* subtracted below */
            sumi[c] = _mm256_sub_epi32(_mm256_setzero_si256(), sumi[c]);
        }
        for (int h = 0; h < 2; h++) {
            const __m256i sch = half_twice(sc16, h);
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            for (int k = 0; k < 4; k++) {
                const __m256i l = k % 2 ? ql1 : ql0;
                const __m256i nib = _mm256_and_si256(k < 2 ? l : _mm256_srli_epi16(l, 4), m4);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), m2);
                const __m256i u = _mm256_or_si256(nib, _mm256_slli_epi16(hb, 4));
                const __m256i sc = bcast16_pair(sch, 2 * k);
                for (int c = 0; c < TILE_C; c++) {
                    const __m256i p =
                        _mm256_maddubs_epi16(u, load_i8x32(b[c]->qs + 128 * h + 32 * k));
                    sumi[c] = _mm256_add_epi32(sumi[c], _mm256_madd_epi16(p, sc));
                }
            }
        }
        const float dw = _cvtsh_ss(a[i].d);
        for (int c = 0; c < TILE_C; c++)
            acc[c] =
                _mm256_fmadd_ps(_mm256_set1_ps(dw * b[c]->d), _mm256_cvtepi32_ps(sumi[c]), acc[c]);
    }
    for (int c = 0; c < TILE_C; c++)
        y[(size_t)c * ldy] = hsum_ps(acc[c]);
}

void mlxr_gemm_q4_k_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_tiled_avx2(tile_q4_k, 1, TILE_C, mlxr_vec_dot_q4_k_avx2, n, nr, nc, w, w_stride, x,
                         x_stride, y, ldy);
}

void mlxr_gemm_q5_k_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_tiled_avx2(tile_q5_k, 1, TILE_C, mlxr_vec_dot_q5_k_avx2, n, nr, nc, w, w_stride, x,
                         x_stride, y, ldy);
}

void mlxr_gemm_q6_k_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_tiled_avx2(tile_q6_k, 1, TILE_C, mlxr_vec_dot_q6_k_avx2, n, nr, nc, w, w_stride, x,
                         x_stride, y, ldy);
}

#endif /* x86 */
