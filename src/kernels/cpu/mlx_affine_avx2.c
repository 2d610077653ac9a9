/*
 * mlx_affine_avx2.c - AVX2 dot product of an MLX affine row (4 or 8 bits) with int8 activation
 * blocks; the meaning of mlxr_mlx_affine_dot_q8_ref (kernels/mlx_affine.h).
 *
 * Per 32-value block the integer sum q . a is exact, as in the reference:
 *   4 bits: the 16 bytes of a block hold codes 2j (low nibble) and 2j+1 (high nibble); the
 *     nibbles are split and interleaved back into order, then maddubs (unsigned code x signed
 *     activation) gives int16 pair sums of at most 2 * 15 * 127, no saturation;
 *   8 bits: codes reach 255 and 2 * 255 * 127 would saturate maddubs, so both sides are widened
 *     to int16 and multiplied with madd (int32 pair sums).
 * Only the float part differs from the reference: each block's 8 lane sums are converted and
 * scaled by s_g * d_k into one 8-lane accumulator for the whole row (one horizontal sum at the
 * end), and the bias terms b_g * sum_k d_k * S_k are summed apart (float reordering only).
 */
#include "kernels/mlx_affine.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "kernels/cpu/simd_avx2.h"
#include "util/fp16.h"

/* int32 x8 partial sums of one block of 32 codes (4-bit) times activations. */
static inline __m256i block_dot4(const uint32_t *w, const int8_t *a) {
    __m128i bytes = _mm_loadu_si128((const __m128i *)w);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m128i lo = _mm_and_si128(bytes, m4);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), m4);
    __m256i q = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
    __m256i av = _mm256_loadu_si256((const __m256i *)a);
    __m256i p16 = _mm256_maddubs_epi16(q, av);
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

static inline __m256i block_dot8(const uint32_t *w, const int8_t *a) {
    const __m128i *wp = (const __m128i *)w;
    const __m128i *ap = (const __m128i *)a;
    __m256i q0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(wp));
    __m256i q1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(wp + 1));
    __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(ap));
    __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(ap + 1));
    return _mm256_add_epi32(_mm256_madd_epi16(q0, a0), _mm256_madd_epi16(q1, a1));
}

/* One row; `bits` is a constant in each caller, so the branch on it folds away. */
static inline float dot_row(const mlxr_mlx_row *row, const mlxr_mlx_q8 *x, const int bits) {
    const int gs = row->group_size;
    const int bpg = gs / MLXR_MLX_QK;
    const int bf16 = row->scale_type == MLXR_MLX_SCALE_BF16;
    const uint32_t *w = row->w;
    __m256 acc = _mm256_setzero_ps(); /* sum over blocks of (s_g * d_k) * (q . a)_k, 8 lanes */
    float bias_sum = 0.0f;            /* sum over groups of b_g * sum_k d_k * S_k */
    for (int64_t g = 0; g < row->n / gs; g++) {
        float s, b;
        if (bf16) {
            s = mlxr_bf16_to_fp32(row->scales[g]);
            b = mlxr_bf16_to_fp32(row->biases[g]);
        } else {
            s = _cvtsh_ss(row->scales[g]);
            b = _cvtsh_ss(row->biases[g]);
        }
        float sx = 0.0f;
        for (int k = 0; k < bpg; k++, x++, w += bits) { /* a block is `bits` words */
            __m256i isum = bits == 4 ? block_dot4(w, x->qs) : block_dot8(w, x->qs);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(s * x->d), _mm256_cvtepi32_ps(isum), acc);
            sx += x->d * (float)x->sum;
        }
        bias_sum += b * sx;
    }
    return hsum_ps(acc) + bias_sum;
}

float mlxr_mlx_affine_dot_q8_avx2(const mlxr_mlx_row *row, const mlxr_mlx_q8 *x) {
    return row->bits == 4 ? dot_row(row, x, 4) : dot_row(row, x, 8);
}

#endif
