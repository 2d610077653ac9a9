/*
 * mlx_types_avx2.c - AVX2 kernels of the native MLX affine weight types (layout in
 * kernels/mlx_affine.h): the dot product with MLX_A8 activation blocks, a tiled product for
 * prompt batches, and the MLX_A8 encoder.
 *
 * Per 32-weight piece the integer sum q . a is exact, as in the reference:
 *   4 bits: the piece's 16 bytes hold weights j (low nibble) and 16 + j (high nibble), so one AND
 *     and one shift give the 32 codes in order; maddubs (unsigned code x signed activation) makes
 *     int16 pair sums of at most 2 * 15 * 127, no saturation;
 *   8 bits: codes reach 255 and 2 * 255 * 127 would saturate maddubs, so both sides are widened
 *     to int16 and multiplied with madd (int32 pair sums).
 * Only the float part differs from the reference: each piece's 8 lane sums are converted and
 * scaled by s_g * d_k into one 8-lane accumulator for the whole row (one horizontal sum at the
 * end), and the bias terms b_g * sum_k d_k * S_k are summed apart (float reordering only).
 * The tiled product decodes each piece of a weight row once for 4 activation rows and sums each
 * group's activation term once per 4 activation rows (not once per weight row), and otherwise
 * does, for each output, exactly the vec_dot's operations in the same order: its outputs equal the
 * vec_dot's bit for bit (batch invariant), only cheaper (1.4x to 1.9x per output here).
 * The encoder is mlxr_mlx_q8_quantize_ref bit for bit (max |x|, one division, x * (1 / d) rounded
 * to nearest even, clamped to +-127).
 */
#include "kernels/mlx_affine.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/simd_avx2.h"
#include "util/fp16.h"

/* Scale and bias of the block at b. */
static inline void block_sb(const uint8_t *b, const int bf16, float *s, float *bias) {
    uint16_t u[2];
    memcpy(u, b, 4);
    if (bf16) {
        *s = mlxr_bf16_to_fp32(u[0]);
        *bias = mlxr_bf16_to_fp32(u[1]);
    } else {
        *s = _cvtsh_ss(u[0]);
        *bias = _cvtsh_ss(u[1]);
    }
}

/* A piece's weights decoded once: 32 u8 codes (4 bits) or two int16 halves (8 bits). */
typedef struct piece {
    __m256i q, q1;
} piece;

static inline piece load_piece(const uint8_t *qs, const int bits) {
    piece p;
    if (bits == 4) {
        const __m128i b = _mm_loadu_si128((const __m128i *)qs);
        p.q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
        p.q1 = p.q;
    } else {
        p.q = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)qs));
        p.q1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16)));
    }
    return p;
}

/* int32 x8 partial sums of q . a over one piece. */
static inline __m256i piece_dot(piece p, const int8_t *a, const int bits) {
    if (bits == 4) {
        const __m256i p16 = _mm256_maddubs_epi16(p.q, _mm256_loadu_si256((const __m256i *)a));
        return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    }
    const __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a));
    const __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(p.q, a0), _mm256_madd_epi16(p.q1, a1));
}

/* The running sums of one (weight row, activation row) pair. */
typedef struct acc {
    __m256 v;   /* sum over pieces of (s_g * d_k) * (q . a)_k, 8 lanes */
    float bias; /* sum over groups of b_g * sx_g */
    float sx;   /* this group's sum_k d_k * S_k */
} acc;

static inline void acc_piece(acc *c, piece p, const mlxr_mlx_q8 *a, float s, const int bits) {
    const __m256i isum = piece_dot(p, a->qs, bits);
    c->v = _mm256_fmadd_ps(_mm256_set1_ps(s * a->d), _mm256_cvtepi32_ps(isum), c->v);
    c->sx += a->d * (float)a->sum;
}

/* The bits, group size and scale type are constants in each instantiation below. */
static inline float dot(const uint8_t *w, const mlxr_mlx_q8 *a, int64_t n, const int bits,
                        const int gs, const int bf16) {
    acc c = {_mm256_setzero_ps(), 0.0f, 0.0f};
    for (int64_t g = 0; g < n / gs; g++, w += 4 + gs * bits / 8) {
        float s, b;
        block_sb(w, bf16, &s, &b);
        c.sx = 0.0f;
        for (int k = 0; k < gs / MLXR_MLX_QK; k++, a++)
            acc_piece(&c, load_piece(w + 4 + k * 4 * bits, bits), a, s, bits);
        c.bias += b * c.sx;
    }
    return hsum_ps(c.v) + c.bias;
}

/* Columns of a tile of the tiled product, and the most groups of a row whose activation terms a
 * tile keeps (longer rows, beyond any model's, take the vec_dot path). */
#define COLS 4
#define MAX_GROUPS 1024

/* y[j * ldy + i] = dot(w row i, x row j), by tiles of COLS activation rows: each group's
 * activation term sx (sum_k d_k * S_k, the same for every weight row) is summed once per tile,
 * then each weight row passes with each piece decoded once for the COLS columns. Per output, the
 * vec_dot's operations in the vec_dot's order, so the outputs equal it bit for bit. The last
 * nc % COLS columns take the vec_dot itself. */
static inline void gemm(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy, const int bits,
                        const int gs, const int bf16) {
    const int64_t ng = n / gs, nc4 = ng <= MAX_GROUPS ? nc / COLS * COLS : 0;
    const size_t bsz = 4 + (size_t)gs * (size_t)bits / 8;
    float sx[COLS][MAX_GROUPS];
    for (int64_t j = 0; j < nc4; j += COLS) {
        const mlxr_mlx_q8 *a0[COLS];
        for (int t = 0; t < COLS; t++) {
            a0[t] = (const mlxr_mlx_q8 *)((const uint8_t *)x + (size_t)(j + t) * x_stride);
            const mlxr_mlx_q8 *a = a0[t];
            for (int64_t g = 0; g < ng; g++) {
                float v = 0.0f;
                for (int k = 0; k < gs / MLXR_MLX_QK; k++, a++)
                    v += a->d * (float)a->sum;
                sx[t][g] = v;
            }
        }
        for (int64_t i = 0; i < nr; i++) {
            const uint8_t *wb = (const uint8_t *)w + (size_t)i * w_stride;
            const mlxr_mlx_q8 *a[COLS];
            __m256 v[COLS];
            float bias[COLS];
            for (int t = 0; t < COLS; t++) {
                a[t] = a0[t];
                v[t] = _mm256_setzero_ps();
                bias[t] = 0.0f;
            }
            for (int64_t g = 0; g < ng; g++, wb += bsz) {
                float s, b;
                block_sb(wb, bf16, &s, &b);
                for (int k = 0; k < gs / MLXR_MLX_QK; k++) {
                    const piece p = load_piece(wb + 4 + k * 4 * bits, bits);
                    for (int t = 0; t < COLS; t++) {
                        const __m256i isum = piece_dot(p, a[t]->qs, bits);
                        v[t] = _mm256_fmadd_ps(_mm256_set1_ps(s * a[t]->d),
                                               _mm256_cvtepi32_ps(isum), v[t]);
                        a[t]++;
                    }
                }
                for (int t = 0; t < COLS; t++)
                    bias[t] += b * sx[t][g];
            }
            for (int t = 0; t < COLS; t++)
                y[(size_t)(j + t) * ldy + (size_t)i] = hsum_ps(v[t]) + bias[t];
        }
    }
    for (int64_t j = nc4; j < nc; j++)
        for (int64_t i = 0; i < nr; i++)
            y[(size_t)j * ldy + (size_t)i] =
                dot((const uint8_t *)w + (size_t)i * w_stride,
                    (const mlxr_mlx_q8 *)((const uint8_t *)x + (size_t)j * x_stride), n, bits, gs,
                    bf16);
}

#define MLX_AVX2(bits, gs, bf16, sfx)                                                              \
    static void vec_dot_##sfx(int64_t n, float *s, const void *x, const void *y) {                 \
        *s = dot(x, y, n, bits, gs, bf16);                                                         \
    }                                                                                              \
    static void gemm_##sfx(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,      \
                           const void *x, size_t x_stride, float *y, size_t ldy) {                 \
        gemm(n, nr, nc, w, w_stride, x, x_stride, y, ldy, bits, gs, bf16);                         \
    }
MLX_AVX2(4, 32, 0, q4_g32)
MLX_AVX2(4, 32, 1, q4_g32_bf16)
MLX_AVX2(4, 64, 0, q4_g64)
MLX_AVX2(4, 64, 1, q4_g64_bf16)
MLX_AVX2(4, 128, 0, q4_g128)
MLX_AVX2(4, 128, 1, q4_g128_bf16)
MLX_AVX2(8, 32, 0, q8_g32)
MLX_AVX2(8, 32, 1, q8_g32_bf16)
MLX_AVX2(8, 64, 0, q8_g64)
MLX_AVX2(8, 64, 1, q8_g64_bf16)
MLX_AVX2(8, 128, 0, q8_g128)
MLX_AVX2(8, 128, 1, q8_g128_bf16)
#undef MLX_AVX2

/* In type order (format/dtype.h). */
static const struct {
    mlxr_vec_dot_fn vec_dot;
    mlxr_gemm_fn gemm;
} AVX2[MLXR_DTYPE_MLX_COUNT] = {
    {vec_dot_q4_g32, gemm_q4_g32},   {vec_dot_q4_g32_bf16, gemm_q4_g32_bf16},
    {vec_dot_q4_g64, gemm_q4_g64},   {vec_dot_q4_g64_bf16, gemm_q4_g64_bf16},
    {vec_dot_q4_g128, gemm_q4_g128}, {vec_dot_q4_g128_bf16, gemm_q4_g128_bf16},
    {vec_dot_q8_g32, gemm_q8_g32},   {vec_dot_q8_g32_bf16, gemm_q8_g32_bf16},
    {vec_dot_q8_g64, gemm_q8_g64},   {vec_dot_q8_g64_bf16, gemm_q8_g64_bf16},
    {vec_dot_q8_g128, gemm_q8_g128}, {vec_dot_q8_g128_bf16, gemm_q8_g128_bf16},
};

/* ---- MLX_A8 encoder ---------------------------------------------------------------------------
 */

static void a8_encode(const float *x, void *y, int64_t n) {
    mlxr_mlx_q8 *out = y;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / MLXR_MLX_QK; b++, x += MLXR_MLX_QK) {
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float d = _mm_cvtss_f32(m4) / 127.0f;
        const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
        const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
        __m256i q[4], sum = _mm256_setzero_si256();
        for (int i = 0; i < 4; i++) {
            __m256 r = _mm256_round_ps(_mm256_mul_ps(v[i], id),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
            sum = _mm256_add_epi32(sum, q[i]);
        }
        /* int32 -> int8: the packs interleave 128-bit lanes; the permute puts them back */
        __m256i p =
            _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].qs, p);
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(1, 0, 3, 2)));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
        out[b].d = d;
        out[b].sum = _mm_cvtsi128_si32(s4);
    }
}

void mlxr_mlx_types_avx2(mlxr_type_kernels *t) {
    t[MLXR_DTYPE_MLX_A8].from_float = a8_encode;
    for (int i = 0; i < MLXR_DTYPE_MLX_COUNT; i++) {
        t[MLXR_DTYPE_MLX_FIRST + i].vec_dot = AVX2[i].vec_dot;
        t[MLXR_DTYPE_MLX_FIRST + i].gemm = AVX2[i].gemm;
    }
}

#endif
