/*
 * types_avx2.c - AVX2 + FMA + F16C variants of the type kernels (see kernels.h, ref/types.c).
 *
 * Compiled with -mavx2 -mfma -mf16c; only called when dispatch.c found those features and the
 * OS-enabled YMM state. Each function has the signature and meaning of its _ref twin:
 *   - conversions and quantization give the same bits as the reference (F16C rounds to nearest
 *     even like fp16.h; to_float re-marks signalling NaNs, which vcvtph2ps would quieten);
 *   - dot products may differ from the reference by float reordering only: float rows are
 *     multiplied with FMA into 4 x 8 float lanes; quantized rows follow llama.cpp's x86 scheme
 *     (ggml-cpu-quants.c): exact per-block int32 lane sums, then acc += d_x*d_y * lanes, with
 *     the scales of 4 blocks converted together (see scales4 in simd_avx2.h, which holds the
 *     helpers and the tiled-product driver this file shares with quants_avx2.c).
 *
 * The Q8_0 int8 products use the "sign trick": maddubs multiplies unsigned by signed bytes, so we
 * feed it |x| and y*sign(x). That is exact as long as y != -128 (sign() cannot negate -128), which
 * holds for every Q8_0 activation block our quantizers produce with a nonzero scale (ref/types.c
 * says why); x may be any byte.
 */
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/simd_avx2.h"
#include "util/fp16.h"

/*
 * BF16 dots skip the widening shuffle: a bf16 is the top half of an f32, so of 16 bf16 values
 * loaded as 8 dwords, shifting each dword left by 16 gives the even-indexed values as f32 and
 * masking off its low half gives the odd-indexed ones. x and y split the same way, so
 * dot(x, y) = dot(even x, even y) + dot(odd x, odd y).
 */
static inline __m256 bf16_even(__m256i v) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static inline __m256 bf16_odd(__m256i v) {
    return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

static inline __m256i load_u16x16(const uint16_t *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline __m256 load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* ---- float dot products ------------------------------------------------------------------- */

/*
 * The three float-type dot products share one shape: 4 independent accumulators over 32
 * elements per step (hides FMA latency), then 8 at a time, then a scalar tail added in double.
 */
#define DOT_FLOAT_BODY(LOAD, SCALAR)                                                               \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                 \
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();                                 \
    int64_t i = 0;                                                                                 \
    for (; i + 32 <= n; i += 32) {                                                                 \
        acc0 = _mm256_fmadd_ps(LOAD(a + i), LOAD(b + i), acc0);                                    \
        acc1 = _mm256_fmadd_ps(LOAD(a + i + 8), LOAD(b + i + 8), acc1);                            \
        acc2 = _mm256_fmadd_ps(LOAD(a + i + 16), LOAD(b + i + 16), acc2);                          \
        acc3 = _mm256_fmadd_ps(LOAD(a + i + 24), LOAD(b + i + 24), acc3);                          \
    }                                                                                              \
    for (; i + 8 <= n; i += 8)                                                                     \
        acc0 = _mm256_fmadd_ps(LOAD(a + i), LOAD(b + i), acc0);                                    \
    acc0 = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));                    \
    double sum = (double)hsum_ps(acc0);                                                            \
    for (; i < n; i++)                                                                             \
        sum += (double)(SCALAR(a[i]) * SCALAR(b[i]));                                              \
    *s = (float)sum;

#define IDENT(v) (v)

void mlxr_vec_dot_f32_avx2(int64_t n, float *s, const void *x, const void *y) {
    const float *a = x, *b = y;
    DOT_FLOAT_BODY(_mm256_loadu_ps, IDENT)
}

void mlxr_vec_dot_f16_avx2(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    DOT_FLOAT_BODY(load_f16, mlxr_fp16_to_fp32)
}

/*
 * Four F16 rows against one activation row, decoding's F16 product (llama.c). Measured on a
 * 2-thread AVX2 EPYC VM streaming a 1 GiB matrix: 7-10 % more GB/s than vec_dot row by row (four
 * sequential streams of 16 bytes per step, one activation conversion for the four rows); 32-byte
 * steps with two accumulators per row measured no gain. One accumulator per row (four chains
 * hide the FMA latency), the tail added in double as in vec_dot.
 */
void mlxr_vec_dot4_f16_avx2(int64_t n, float *s, const void *w, size_t w_stride, const void *y) {
    const uint16_t *a0 = w, *a1 = (const uint16_t *)((const uint8_t *)w + w_stride);
    const uint16_t *a2 = (const uint16_t *)((const uint8_t *)w + 2 * w_stride);
    const uint16_t *a3 = (const uint16_t *)((const uint8_t *)w + 3 * w_stride);
    const uint16_t *b = y;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = load_f16(b + i);
        acc0 = _mm256_fmadd_ps(load_f16(a0 + i), x, acc0);
        acc1 = _mm256_fmadd_ps(load_f16(a1 + i), x, acc1);
        acc2 = _mm256_fmadd_ps(load_f16(a2 + i), x, acc2);
        acc3 = _mm256_fmadd_ps(load_f16(a3 + i), x, acc3);
    }
    double sum[4] = {(double)hsum_ps(acc0), (double)hsum_ps(acc1), (double)hsum_ps(acc2),
                     (double)hsum_ps(acc3)};
    const uint16_t *rows[4] = {a0, a1, a2, a3};
    for (int r = 0; r < 4; r++) {
        for (int64_t k = i; k < n; k++)
            sum[r] += (double)(mlxr_fp16_to_fp32(rows[r][k]) * mlxr_fp16_to_fp32(b[k]));
        s[r] = (float)sum[r];
    }
}

/*
 * vec_dot4 for KC (2 or 3) activation rows at a time: each of the 4 KC accumulators is one
 * (row, column) chain of the same FMAs in the same order as vec_dot4's (the activations converted
 * to f32 first, 256 values at a time, which is exact), so every output is bitwise vec_dot4's,
 * while each of the four rows is loaded and converted once for the KC columns (12 accumulators and
 * 4 rows fill the 16 ymm registers at KC = 3).
 */
static inline __attribute__((always_inline)) void dot4_cols(const int KC, int64_t n, float *s,
                                                           size_t lds, const uint16_t *const a[4],
                                                           const void *y, size_t y_stride) {
    enum { PIECE = 256 };
    const int64_t nm = n / 8 * 8;
    float xf[3][PIECE] __attribute__((aligned(32)));
    const uint16_t *b[3];
    __m256 acc[3][4];
    for (int k = 0; k < KC; k++) {
        b[k] = (const uint16_t *)((const uint8_t *)y + (size_t)k * y_stride);
        for (int r = 0; r < 4; r++) acc[k][r] = _mm256_setzero_ps();
    }
    for (int64_t i0 = 0; i0 < nm; i0 += PIECE) {
        const int64_t len = nm - i0 < PIECE ? nm - i0 : PIECE;
        for (int k = 0; k < KC; k++)
            for (int64_t i = 0; i < len; i += 8)
                _mm256_store_ps(xf[k] + i, load_f16(b[k] + i0 + i));
        for (int64_t i = 0; i < len; i += 8) {
            const __m256 w0 = load_f16(a[0] + i0 + i), w1 = load_f16(a[1] + i0 + i);
            const __m256 w2 = load_f16(a[2] + i0 + i), w3 = load_f16(a[3] + i0 + i);
            for (int k = 0; k < KC; k++) {
                const __m256 x = _mm256_load_ps(xf[k] + i);
                acc[k][0] = _mm256_fmadd_ps(w0, x, acc[k][0]);
                acc[k][1] = _mm256_fmadd_ps(w1, x, acc[k][1]);
                acc[k][2] = _mm256_fmadd_ps(w2, x, acc[k][2]);
                acc[k][3] = _mm256_fmadd_ps(w3, x, acc[k][3]);
            }
        }
    }
    for (int k = 0; k < KC; k++)
        for (int r = 0; r < 4; r++) {
            double sum = (double)hsum_ps(acc[k][r]);
            for (int64_t i = nm; i < n; i++)
                sum += (double)(mlxr_fp16_to_fp32(a[r][i]) * mlxr_fp16_to_fp32(b[k][i]));
            s[(size_t)k * lds + (size_t)r] = (float)sum;
        }
}

/* Columns in threes (a last two together, a last one through vec_dot4 itself): see dot4_cols. */
void mlxr_vec_dot4n_f16_avx2(int64_t n, int64_t nc, float *s, size_t lds, const void *w,
                             size_t w_stride, const void *y, size_t y_stride) {
    const uint16_t *a[4];
    for (int r = 0; r < 4; r++)
        a[r] = (const uint16_t *)((const uint8_t *)w + (size_t)r * w_stride);
    int64_t c = 0;
    for (; c + 3 <= nc; c += 3)
        dot4_cols(3, n, s + (size_t)c * lds, lds, a, (const uint8_t *)y + (size_t)c * y_stride,
                  y_stride);
    if (nc - c == 2)
        dot4_cols(2, n, s + (size_t)c * lds, lds, a, (const uint8_t *)y + (size_t)c * y_stride,
                  y_stride);
    else if (nc - c == 1)
        mlxr_vec_dot4_f16_avx2(n, s + (size_t)c * lds, w, w_stride,
                               (const uint8_t *)y + (size_t)c * y_stride);
}

void mlxr_vec_dot_bf16_avx2(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i x0 = load_u16x16(a + i), y0 = load_u16x16(b + i);
        const __m256i x1 = load_u16x16(a + i + 16), y1 = load_u16x16(b + i + 16);
        acc0 = _mm256_fmadd_ps(bf16_even(x0), bf16_even(y0), acc0);
        acc1 = _mm256_fmadd_ps(bf16_odd(x0), bf16_odd(y0), acc1);
        acc2 = _mm256_fmadd_ps(bf16_even(x1), bf16_even(y1), acc2);
        acc3 = _mm256_fmadd_ps(bf16_odd(x1), bf16_odd(y1), acc3);
    }
    for (; i + 16 <= n; i += 16) {
        const __m256i x0 = load_u16x16(a + i), y0 = load_u16x16(b + i);
        acc0 = _mm256_fmadd_ps(bf16_even(x0), bf16_even(y0), acc0);
        acc1 = _mm256_fmadd_ps(bf16_odd(x0), bf16_odd(y0), acc1);
    }
    acc0 = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    double sum = (double)hsum_ps(acc0);
    for (; i < n; i++)
        sum += (double)(mlxr_bf16_to_fp32(a[i]) * mlxr_bf16_to_fp32(b[i]));
    *s = (float)sum;
}

#undef DOT_FLOAT_BODY
#undef IDENT

/* ---- F16 conversions ---------------------------------------------------------------------- */

void mlxr_from_float_f16_avx2(const float *x, void *y, int64_t n) {
    uint16_t *h = y;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i h0 = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        const __m128i h1 = _mm256_cvtps_ph(_mm256_loadu_ps(x + i + 8), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(h + i), h0);
        _mm_storeu_si128((__m128i *)(h + i + 8), h1);
    }
    for (; i + 8 <= n; i += 8) {
        const __m128i h0 = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(h + i), h0);
    }
    for (; i < n; i++)
        h[i] = mlxr_fp32_to_fp16(x[i]);
}

/* 8 halves to floats, bit-exact with mlxr_fp16_to_fp32: vcvtph2ps sets the quiet bit of a
 * signalling NaN (exponent all ones, mantissa in 0x001..0x1ff); the reference keeps it clear. */
static inline __m256 f16_to_f32_exact(const uint16_t *p) {
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    const __m256 f = _mm256_cvtph_ps(h);
    const __m256i a = _mm256_and_si256(_mm256_cvtepu16_epi32(h), _mm256_set1_epi32(0x7fff));
    const __m256i snan = _mm256_and_si256(_mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7c00)),
                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7e00), a));
    const __m256i quiet = _mm256_and_si256(snan, _mm256_set1_epi32(0x00400000));
    return _mm256_andnot_ps(_mm256_castsi256_ps(quiet), f);
}

void mlxr_to_float_f16_avx2(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(y + i, f16_to_f32_exact(h + i));
        _mm256_storeu_ps(y + i + 8, f16_to_f32_exact(h + i + 8));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, f16_to_f32_exact(h + i));
    for (; i < n; i++)
        y[i] = mlxr_fp16_to_fp32(h[i]);
}

/* ---- Q8_0 quantization -------------------------------------------------------------------- */

/* vroundps immediate: to nearest, ties to even (a compile-time constant, as it must be). */
#define ROUND_EVEN (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* Largest lane. */
static inline float hmax_ps(__m256 v) {
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

void mlxr_quantize_q8_0_avx2(const float *x, void *y, int64_t n) {
    mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    /* packs interleaves 128-bit lanes; this puts the 4-byte groups back in element order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK8_0;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
        __m256 v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1));
        m = _mm256_max_ps(m, _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        const float amax = hmax_ps(m);
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);

        const __m256 mul = _mm256_set1_ps(id);
        v0 = _mm256_round_ps(_mm256_mul_ps(v0, mul), ROUND_EVEN);
        v1 = _mm256_round_ps(_mm256_mul_ps(v1, mul), ROUND_EVEN);
        v2 = _mm256_round_ps(_mm256_mul_ps(v2, mul), ROUND_EVEN);
        v3 = _mm256_round_ps(_mm256_mul_ps(v3, mul), ROUND_EVEN);
        /* cvtps2dq then two saturating packs: int32 -> int16 -> int8 */
        const __m256i p01 = _mm256_packs_epi32(_mm256_cvtps_epi32(v0), _mm256_cvtps_epi32(v1));
        const __m256i p23 = _mm256_packs_epi32(_mm256_cvtps_epi32(v2), _mm256_cvtps_epi32(v3));
        const __m256i q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), order);
        _mm256_storeu_si256((__m256i *)b[i].qs, q);
    }
}

/* ---- quantized dot products --------------------------------------------------------------- */

/* Sums of 4 adjacent products x[k]*y[k] as 8 float lanes (exact: |lane| < 2^24); y != -128. */
static inline __m256 mul_sum_i8_quads(__m256i x, __m256i y) {
    const __m256i ax = _mm256_sign_epi8(x, x);        /* |x|; -128 reads as 128 unsigned */
    const __m256i sy = _mm256_sign_epi8(y, x);        /* y * sign(x) */
    const __m256i p16 = _mm256_maddubs_epi16(ax, sy); /* |pair sum| <= 2*128*127: no saturation */
    const __m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return _mm256_cvtepi32_ps(p32);
}

/* Sums of 4 adjacent products (u[k] - 8) * y[k] as 8 float lanes, for nibbles u in [0, 15]: the
 * offset is taken off after the unsigned multiply, (u - 8)*y = u*y - 8*y, both exact in int16
 * (|pair| <= 2*15*128 and 2*8*128), so any y byte works here, -128 included. */
static inline __m256 mul_sum_q4_quads(__m256i u, __m256i y) {
    const __m256i uy = _mm256_maddubs_epi16(u, y);
    const __m256i oy = _mm256_maddubs_epi16(_mm256_set1_epi8(8), y);
    const __m256i p32 = _mm256_madd_epi16(_mm256_sub_epi16(uy, oy), _mm256_set1_epi16(1));
    return _mm256_cvtepi32_ps(p32);
}

void mlxr_vec_dot_q8_0_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q8_0 *a = x, *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    const __m256i k0 = _mm256_set1_epi32(0), k1 = _mm256_set1_epi32(1);
    const __m256i k2 = _mm256_set1_epi32(2), k3 = _mm256_set1_epi32(3);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m128 d = SCALES4(a, b, i);
        const __m256 q0 = mul_sum_i8_quads(load_i8x32(a[i].qs), load_i8x32(b[i].qs));
        const __m256 q1 = mul_sum_i8_quads(load_i8x32(a[i + 1].qs), load_i8x32(b[i + 1].qs));
        const __m256 q2 = mul_sum_i8_quads(load_i8x32(a[i + 2].qs), load_i8x32(b[i + 2].qs));
        const __m256 q3 = mul_sum_i8_quads(load_i8x32(a[i + 3].qs), load_i8x32(b[i + 3].qs));
        acc0 = _mm256_fmadd_ps(lane(d, k0), q0, acc0);
        acc1 = _mm256_fmadd_ps(lane(d, k1), q1, acc1);
        acc0 = _mm256_fmadd_ps(lane(d, k2), q2, acc0);
        acc1 = _mm256_fmadd_ps(lane(d, k3), q3, acc1);
    }
    for (; i < nb; i++) {
        const __m256 q = mul_sum_i8_quads(load_i8x32(a[i].qs), load_i8x32(b[i].qs));
        acc0 = _mm256_fmadd_ps(scale1(a[i].d, b[i].d), q, acc0);
    }
    *s = hsum_ps(_mm256_add_ps(acc0, acc1));
}

void mlxr_vec_dot_q4_0_avx2(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_0 *a = x;
    const mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK4_0;
    const __m256i k0 = _mm256_set1_epi32(0), k1 = _mm256_set1_epi32(1);
    const __m256i k2 = _mm256_set1_epi32(2), k3 = _mm256_set1_epi32(3);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m128 d = SCALES4(a, b, i);
        const __m256 q0 = mul_sum_q4_quads(unpack_q4_0(a[i].qs), load_i8x32(b[i].qs));
        const __m256 q1 = mul_sum_q4_quads(unpack_q4_0(a[i + 1].qs), load_i8x32(b[i + 1].qs));
        const __m256 q2 = mul_sum_q4_quads(unpack_q4_0(a[i + 2].qs), load_i8x32(b[i + 2].qs));
        const __m256 q3 = mul_sum_q4_quads(unpack_q4_0(a[i + 3].qs), load_i8x32(b[i + 3].qs));
        acc0 = _mm256_fmadd_ps(lane(d, k0), q0, acc0);
        acc1 = _mm256_fmadd_ps(lane(d, k1), q1, acc1);
        acc0 = _mm256_fmadd_ps(lane(d, k2), q2, acc0);
        acc1 = _mm256_fmadd_ps(lane(d, k3), q3, acc1);
    }
    for (; i < nb; i++) {
        const __m256 q = mul_sum_q4_quads(unpack_q4_0(a[i].qs), load_i8x32(b[i].qs));
        acc0 = _mm256_fmadd_ps(scale1(a[i].d, b[i].d), q, acc0);
    }
    *s = hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- tiled products (prompt processing) ------------------------------------------------------
 *
 * An R x C micro-tile: R weight rows against C activation rows, R*C accumulators of 8 float lanes
 * (Q8_0 4 x 2, Q4_0 4 x 3: measured best on an AVX2 EPYC; the Q8_0 pair needs one more register).
 * Per 32-element block each weight block is loaded (and, for Q8_0, made absolute) once for both
 * activation rows, and each activation block once for all 4 weight rows. Edges fall back to the
 * single dot product. Per block the arithmetic is that of the dot products above, so results
 * differ from them by float reordering only.
 */
typedef __m256 (*pair_fn)(__m256i wq, __m256i wa, __m256i xq);

/* Q8_0: wa = |w| (precomputed), the sign moves onto x. */
static inline __m256 pair_q8_0(__m256i wq, __m256i wa, __m256i xq) {
    const __m256i p16 = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xq, wq));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/* Q4_0: wq = unpacked nibbles in [0, 15]; (u - 8) * x = u*x - 8*x. */
static inline __m256 pair_q4_0(__m256i wq, __m256i wa, __m256i xq) {
    (void)wa;
    const __m256i uy = _mm256_maddubs_epi16(wq, xq);
    const __m256i oy = _mm256_maddubs_epi16(_mm256_set1_epi8(8), xq);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_sub_epi16(uy, oy), _mm256_set1_epi16(1)));
}

/* Weight block i of a row: quants as 32 bytes, and its f16 scale. */
static inline __m256i wq_q8_0(const void *row, int64_t i, uint16_t *d) {
    const mlxr_block_q8_0 *b = (const mlxr_block_q8_0 *)row + i;
    *d = b->d;
    return load_i8x32(b->qs);
}

static inline __m256i wq_q4_0(const void *row, int64_t i, uint16_t *d) {
    const mlxr_block_q4_0 *b = (const mlxr_block_q4_0 *)row + i;
    *d = b->d;
    return unpack_q4_0(b->qs);
}

#define GEMM_TILE(NAME, WQ, PAIR, ABS, TILE_R, TILE_C)                                             \
    static void NAME(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs,         \
                     float *y, size_t ldy) {                                                       \
        const int64_t nb = n / MLXR_QK8_0;                                                         \
        __m256 acc[TILE_R][TILE_C];                                                                \
        for (int r = 0; r < TILE_R; r++)                                                           \
            for (int c = 0; c < TILE_C; c++) acc[r][c] = _mm256_setzero_ps();                      \
        for (int64_t i = 0; i < nb; i++) {                                                         \
            __m256i xq[TILE_C];                                                                    \
            float dx[TILE_C];                                                                      \
            for (int c = 0; c < TILE_C; c++) {                                                     \
                const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)c * xs) + i;     \
                xq[c] = load_i8x32(xb->qs);                                                        \
                dx[c] = _cvtsh_ss(xb->d);                                                          \
            }                                                                                      \
            for (int r = 0; r < TILE_R; r++) {                                                     \
                uint16_t d16;                                                                      \
                const __m256i wq = WQ(w + (size_t)r * ws, i, &d16);                                \
                const __m256i wa = ABS(wq);                                                        \
                const float dw = _cvtsh_ss(d16);                                                   \
                for (int c = 0; c < TILE_C; c++)                                                   \
                    acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[c]), PAIR(wq, wa, xq[c]),   \
                                                acc[r][c]);                                        \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < TILE_R; r++)                                                           \
            for (int c = 0; c < TILE_C; c++) y[(size_t)c * ldy + (size_t)r] = hsum_ps(acc[r][c]);  \
    }

static inline __m256i abs_i8(__m256i v) {
    return _mm256_sign_epi8(v, v);
}

static inline __m256i no_abs(__m256i v) {
    return v;
}

GEMM_TILE(tile_q8_0, wq_q8_0, pair_q8_0, abs_i8, 4, 2)
GEMM_TILE(tile_q4_0, wq_q4_0, pair_q4_0, no_abs, 4, 3)

/* Tiles: see GEMM_TILE and tile_f16; the driver is shared with quants_avx2.c (simd_avx2.h). */
void mlxr_gemm_tiled_avx2(tile_fn tile, int R, int C, mlxr_vec_dot_fn dot, int64_t n, int64_t nr,
                          int64_t nc, const void *w, size_t ws, const void *x, size_t xs, float *y,
                          size_t ldy) {
    const uint8_t *W = w, *X = x;
    const int64_t nr4 = nr - nr % R, nc2 = nc - nc % C;
    for (int64_t j = 0; j < nc2; j += C)
        for (int64_t i = 0; i < nr4; i += R)
            tile(n, W + (size_t)i * ws, ws, X + (size_t)j * xs, xs, y + (size_t)j * ldy + (size_t)i,
                 ldy);
    /* edges: the rows past the last full tile for every column, the columns past the last tile */
    for (int64_t j = 0; j < nc; j++) {
        const int64_t i0 = j < nc2 ? nr4 : 0;
        for (int64_t i = i0; i < nr; i++)
            dot(n, &y[(size_t)j * ldy + (size_t)i], W + (size_t)i * ws, X + (size_t)j * xs);
    }
}

void mlxr_gemm_q8_0_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_tiled_avx2(tile_q8_0, 4, 2, mlxr_vec_dot_q8_0_avx2, n, nr, nc, w, w_stride, x,
                         x_stride, y, ldy);
}

void mlxr_gemm_q4_0_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                         const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_tiled_avx2(tile_q4_0, 4, 3, mlxr_vec_dot_q4_0_avx2, n, nr, nc, w, w_stride, x,
                         x_stride, y, ldy);
}

/*
 * F16 x F16 tile: 4 weight rows x 3 activation rows, 8 elements per step, each converted once and
 * used 3 (weights) or 4 (activations) times; the tail past a multiple of 8 goes element by element
 * in double like the dot product's tail.
 */
static void tile_f16(int64_t n, const uint8_t *w, size_t ws, const uint8_t *x, size_t xs, float *y,
                     size_t ldy) {
    enum { R = 4, C = 3 };
    __m256 acc[R][C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 xv[C];
        for (int c = 0; c < C; c++) xv[c] = load_f16((const uint16_t *)(x + (size_t)c * xs) + k);
        for (int r = 0; r < R; r++) {
            const __m256 wv = load_f16((const uint16_t *)(w + (size_t)r * ws) + k);
            for (int c = 0; c < C; c++) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < R; r++) {
        const uint16_t *wr = (const uint16_t *)(w + (size_t)r * ws);
        for (int c = 0; c < C; c++) {
            const uint16_t *xr = (const uint16_t *)(x + (size_t)c * xs);
            double sum = (double)hsum_ps(acc[r][c]);
            for (int64_t i = k; i < n; i++)
                sum += (double)(mlxr_fp16_to_fp32(wr[i]) * mlxr_fp16_to_fp32(xr[i]));
            y[(size_t)c * ldy + (size_t)r] = (float)sum;
        }
    }
}

void mlxr_gemm_f16_avx2(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_tiled_avx2(tile_f16, 4, 3, mlxr_vec_dot_f16_avx2, n, nr, nc, w, w_stride, x,
                         x_stride, y, ldy);
}

#endif /* x86 */
