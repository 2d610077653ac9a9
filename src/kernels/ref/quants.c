/*
 * quants.c - reference (scalar) kernels of the GGUF quantized types beyond Q8_0/Q4_0: the
 * dequantizers (to_float) of Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS; the activation
 * quantizers Q8_1 and Q8_K; and the dot product of each weight type with its vec_dot_type:
 *
 *   Q4_1, Q5_1            . Q8_1   (the activation block carries s = d * sum(qs) for the offset m)
 *   Q5_0, IQ4_NL          . Q8_0
 *   Q2_K..Q6_K, IQ4_XS    . Q8_K   (256 values, f32 scale, sums of every 16 quants)
 *
 * Block layouts: blocks.h. The element order and the float operations of the dequantizers are
 * those of ggml-quants.c's dequantize_row_* (checked bit for bit against the shared vectors in
 * test_quant_vectors.c): each value is one float multiply (and subtract/add of a min), never a
 * fused multiply-add, so this file must not be compiled with FMA contraction into those lines
 * (plain ISO C11 without -mfma gives that).
 *
 * Activation quantizers follow llama.cpp's CPU backend on x86, because model outputs are compared
 * with llama.cpp's:
 *   - Q8_1 is Q8_0 (ref/types.c: d = amax/127, q = round-half-even(x * 127/amax)) plus
 *     s = f16(d * sum(q)) with d the f32 scale before its f16 rounding, as ggml's AVX2 path does;
 *   - Q8_K is ggml's quantize_row_q8_K_ref (the x86 build uses it too): the signed value of largest
 *     magnitude (the first on ties) gives iscale = -127/max, q = min(127,
 * round-half-even(iscale*x)), d = 1/iscale (f32), bsums the sums of each 16 quants; an all-zero
 * block gets d = 0 and zeros. So a Q8_K activation never holds -128, which the SIMD dot products
 * rely on.
 *
 * The dot products compute, per block, the exact integer sum of (weight quant * activation
 * quant * integer sub-block scale), and add it times the product of the float scales to a float
 * accumulator (plus the min / offset term as its own integer sum for the types that have one).
 * That is ggml's generic vec_dot with its integer sums exact; the fast variants differ from this
 * only by float reordering. The weight rows may hold any bytes.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

#include "util/fp16.h"

/* The dequantizers must round after every multiply (see above). GCC does not contract in ISO C
 * mode; clang does by default when the target has FMA (e.g. -march=native), so say it. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static float h2f(uint16_t h) {
    return mlxr_fp16_to_fp32(h);
}

/* ---- activation quantizers ------------------------------------------------------------------- */

void mlxr_quantize_q8_1_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q8_1 *b = y;
    const int64_t nb = n / MLXR_QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        /* the Q8_0 quantizer gives the same quants and scale; only d's f32 value is recomputed */
        mlxr_block_q8_0 q;
        const float *v = x + i * MLXR_QK8_1;
        mlxr_quantize_q8_0_ref(v, &q, MLXR_QK8_0);
        float amax = 0.0f;
        for (int j = 0; j < MLXR_QK8_1; j++)
            if (fabsf(v[j]) > amax) amax = fabsf(v[j]);
        const float d = amax / 127.0f;
        int32_t sum = 0;
        for (int j = 0; j < MLXR_QK8_1; j++) {
            b[i].qs[j] = q.qs[j];
            sum += q.qs[j];
        }
        b[i].d = q.d;
        b[i].s = mlxr_fp32_to_fp16(d * (float)sum);
    }
}

void mlxr_dequantize_q8_1_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q8_1 *b = x;
    const int64_t nb = n / MLXR_QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < MLXR_QK8_1; j++)
            y[i * MLXR_QK8_1 + j] = (float)b[i].qs[j] * d;
    }
}

/* ggml's nearest_int: round half to even through the float adder, exact for |v| <= 2^22, which
 * holds here (|v| <= 127 for finite input); other input gives some int, never undefined behaviour.
 */
static int nearest_int(float v) {
    const float f = v + 12582912.0f; /* 1.5 * 2^23 */
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void mlxr_quantize_q8_k_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MLXR_QK_K; j++) {
            if (fabsf(v[j]) > amax) { /* strict: the first of equal magnitudes wins */
                amax = fabsf(v[j]);
                max = v[j];
            }
        }
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < MLXR_QK_K; j++) {
            const int q = nearest_int(iscale * v[j]);
            b[i].qs[j] = (int8_t)(q < 127 ? (q > -128 ? q : -128) : 127);
        }
        for (int g = 0; g < MLXR_QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += b[i].qs[g * 16 + j];
            b[i].bsums[g] = (int16_t)sum;
        }
        b[i].d = 1.0f / iscale;
    }
}

void mlxr_dequantize_q8_k_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q8_k *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < MLXR_QK_K; j++)
            y[i * MLXR_QK_K + j] = b[i].d * (float)b[i].qs[j];
}

/* ---- Q4_1 -------------------------------------------------------------------------------------
 */

void mlxr_dequantize_q4_1_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q4_1 *b = x;
    const int64_t nb = n / MLXR_QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        float *out = y + i * MLXR_QK4_1;
        for (int j = 0; j < 16; j++) {
            out[j] = (float)(b[i].qs[j] & 0x0F) * d + m;
            out[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

void mlxr_vec_dot_q4_1_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_1 *a = x;
    const mlxr_block_q8_1 *b = y;
    const int64_t nb = n / MLXR_QK4_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (a[i].qs[j] & 0x0F) * b[i].qs[j];
            sumi += (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        }
        sum += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi + h2f(a[i].m) * h2f(b[i].s);
    }
    *s = sum;
}

/* ---- Q5_0 / Q5_1 ------------------------------------------------------------------------------
 */

/* The 5-bit value j (0..31) of a Q5 block: low nibble j or high nibble j-16 of qs, bit j of qh. */
static int q5_value(const uint8_t *qs, const uint8_t *qh4, int j) {
    uint32_t qh;
    memcpy(&qh, qh4, 4); /* little-endian, as GGUF stores it */
    const int lo = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
    return lo | (int)(((qh >> j) & 1u) << 4);
}

void mlxr_dequantize_q5_0_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q5_0 *b = x;
    const int64_t nb = n / MLXR_QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < MLXR_QK5_0; j++)
            y[i * MLXR_QK5_0 + j] = (float)(q5_value(b[i].qs, b[i].qh, j) - 16) * d;
    }
}

void mlxr_vec_dot_q5_0_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q5_0 *a = x;
    const mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK5_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < MLXR_QK5_0; j++)
            sumi += (q5_value(a[i].qs, a[i].qh, j) - 16) * b[i].qs[j];
        sum += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi;
    }
    *s = sum;
}

void mlxr_dequantize_q5_1_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q5_1 *b = x;
    const int64_t nb = n / MLXR_QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        for (int j = 0; j < MLXR_QK5_1; j++)
            y[i * MLXR_QK5_1 + j] = (float)q5_value(b[i].qs, b[i].qh, j) * d + m;
    }
}

void mlxr_vec_dot_q5_1_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q5_1 *a = x;
    const mlxr_block_q8_1 *b = y;
    const int64_t nb = n / MLXR_QK5_1;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < MLXR_QK5_1; j++)
            sumi += q5_value(a[i].qs, a[i].qh, j) * b[i].qs[j];
        sum += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi + h2f(a[i].m) * h2f(b[i].s);
    }
    *s = sum;
}

/* ---- IQ4_NL -----------------------------------------------------------------------------------
 */

void mlxr_dequantize_iq4_nl_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_iq4_nl *b = x;
    const int64_t nb = n / MLXR_QK4_NL;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        float *out = y + i * MLXR_QK4_NL;
        for (int j = 0; j < 16; j++) {
            out[j] = d * (float)mlxr_kvalues_iq4nl[b[i].qs[j] & 0x0F];
            out[j + 16] = d * (float)mlxr_kvalues_iq4nl[b[i].qs[j] >> 4];
        }
    }
}

void mlxr_vec_dot_iq4_nl_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_iq4_nl *a = x;
    const mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK4_NL;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += mlxr_kvalues_iq4nl[a[i].qs[j] & 0x0F] * b[i].qs[j];
            sumi += mlxr_kvalues_iq4nl[a[i].qs[j] >> 4] * b[i].qs[j + 16];
        }
        sum += (h2f(a[i].d) * h2f(b[i].d)) * (float)sumi;
    }
    *s = sum;
}

/* ---- K-quant scale unpacking ------------------------------------------------------------------
 */

static void k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q3_K: scale j (0..15) minus 32; low 4 bits in nibble j/8 of byte j%8, high 2 bits in bits
 * 2*(j/4) of byte 8 + j%4. */
static int q3_k_scale(int j, const uint8_t *q) {
    const int lo = j < 8 ? (q[j] & 0x0F) : (q[j - 8] >> 4);
    const int hi = (q[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- Q2_K -------------------------------------------------------------------------------------
 */

/* The 2-bit value j (0..255) of a Q2_K block: 128-value halves, each 4 shifts of 32 bytes. */
static int q2_k_value(const mlxr_block_q2_k *b, int j) {
    const int half = j / 128, r = j % 128, shift = 2 * (r / 32), l = r % 32;
    return (b->qs[half * 32 + l] >> shift) & 3;
}

void mlxr_dequantize_q2_k_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q2_k *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        for (int g = 0; g < 16; g++) { /* group g of 16 values has scales[g] */
            const uint8_t sc = b[i].scales[g];
            const float dl = d * (float)(sc & 0x0F), ml = dmin * (float)(sc >> 4);
            for (int l = 0; l < 16; l++)
                y[i * MLXR_QK_K + g * 16 + l] = dl * (float)q2_k_value(&b[i], g * 16 + l) - ml;
        }
    }
}

void mlxr_vec_dot_q2_k_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q2_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0, summs = 0;
        for (int g = 0; g < 16; g++) {
            int32_t s16 = 0;
            for (int l = 0; l < 16; l++)
                s16 += q2_k_value(&a[i], g * 16 + l) * b[i].qs[g * 16 + l];
            isum += (a[i].scales[g] & 0x0F) * s16;
            summs += (a[i].scales[g] >> 4) * b[i].bsums[g];
        }
        const float dall = b[i].d * h2f(a[i].d), dmin = b[i].d * h2f(a[i].dmin);
        sum += dall * (float)isum - dmin * (float)summs;
    }
    *s = sum;
}

/* ---- Q3_K -------------------------------------------------------------------------------------
 */

/* The signed 3-bit value j of a Q3_K block: 2 low bits as in Q2_K, minus 4 when its hmask bit
 * (bit j/32 of hmask[j%32]) is clear. */
static int q3_k_value(const mlxr_block_q3_k *b, int j) {
    const int half = j / 128, r = j % 128, shift = 2 * (r / 32), l = r % 32;
    const int lo = (b->qs[half * 32 + l] >> shift) & 3;
    return lo - ((b->hmask[l] >> (j / 32)) & 1 ? 0 : 4);
}

void mlxr_dequantize_q3_k_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q3_k *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int g = 0; g < 16; g++) {
            const float dl = d * (float)q3_k_scale(g, b[i].scales);
            for (int l = 0; l < 16; l++)
                y[i * MLXR_QK_K + g * 16 + l] = dl * (float)q3_k_value(&b[i], g * 16 + l);
        }
    }
}

void mlxr_vec_dot_q3_k_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q3_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t s16 = 0;
            for (int l = 0; l < 16; l++)
                s16 += q3_k_value(&a[i], g * 16 + l) * b[i].qs[g * 16 + l];
            isum += q3_k_scale(g, a[i].scales) * s16;
        }
        sum += (h2f(a[i].d) * b[i].d) * (float)isum;
    }
    *s = sum;
}

/* ---- Q4_K / Q5_K ------------------------------------------------------------------------------
 */

/* Value j of a Q4_K/Q5_K block: 64-value chunks of 32 bytes, low nibbles first; Q5_K's fifth bit
 * is bit (j/32) of qh[j%32]. */
static int q4_k_value(const uint8_t *qs, int j) {
    const int chunk = j / 64, r = j % 64;
    const uint8_t v = qs[chunk * 32 + r % 32];
    return r < 32 ? (v & 0x0F) : (v >> 4);
}

static int q5_k_value(const mlxr_block_q5_k *b, int j) {
    return q4_k_value(b->qs, j) | (((b->qh[j % 32] >> (j / 32)) & 1) << 4);
}

void mlxr_dequantize_q4_k_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q4_k *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        for (int g = 0; g < 8; g++) { /* sub-block g of 32 values */
            uint8_t sc, m;
            k4_scale_min(g, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                y[i * MLXR_QK_K + g * 32 + l] = d1 * (float)q4_k_value(b[i].qs, g * 32 + l) - m1;
        }
    }
}

void mlxr_vec_dot_q4_k_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0, summs = 0;
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            k4_scale_min(g, a[i].scales, &sc, &m);
            int32_t s32 = 0;
            for (int l = 0; l < 32; l++)
                s32 += q4_k_value(a[i].qs, g * 32 + l) * b[i].qs[g * 32 + l];
            isum += sc * s32;
            summs += m * (b[i].bsums[2 * g] + b[i].bsums[2 * g + 1]);
        }
        const float d = h2f(a[i].d) * b[i].d, dmin = h2f(a[i].dmin) * b[i].d;
        sum += d * (float)isum - dmin * (float)summs;
    }
    *s = sum;
}

void mlxr_dequantize_q5_k_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q5_k *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            k4_scale_min(g, b[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++)
                y[i * MLXR_QK_K + g * 32 + l] = d1 * (float)q5_k_value(&b[i], g * 32 + l) - m1;
        }
    }
}

void mlxr_vec_dot_q5_k_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q5_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0, summs = 0;
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            k4_scale_min(g, a[i].scales, &sc, &m);
            int32_t s32 = 0;
            for (int l = 0; l < 32; l++)
                s32 += q5_k_value(&a[i], g * 32 + l) * b[i].qs[g * 32 + l];
            isum += sc * s32;
            summs += m * (b[i].bsums[2 * g] + b[i].bsums[2 * g + 1]);
        }
        const float d = h2f(a[i].d) * b[i].d, dmin = h2f(a[i].dmin) * b[i].d;
        sum += d * (float)isum - dmin * (float)summs;
    }
    *s = sum;
}

/* ---- Q6_K -------------------------------------------------------------------------------------
 */

/* The signed 6-bit value j of a Q6_K block: 128-value halves; within one, value 32*k + l takes
 * nibble (k/2) of ql[64*half + 32*(k%2) + l] and bits 2k..2k+1 of qh[32*half + l]. */
static int q6_k_value(const mlxr_block_q6_k *b, int j) {
    const int half = j / 128, r = j % 128, k = r / 32, l = r % 32;
    const uint8_t ql = b->ql[64 * half + 32 * (k % 2) + l];
    const int lo = k < 2 ? (ql & 0x0F) : (ql >> 4);
    const int hi = (b->qh[32 * half + l] >> (2 * k)) & 3;
    return (lo | (hi << 4)) - 32;
}

void mlxr_dequantize_q6_k_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q6_k *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int j = 0; j < MLXR_QK_K; j++) /* ggml: d * sc * q, left to right */
            y[i * MLXR_QK_K + j] = d * (float)b[i].scales[j / 16] * (float)q6_k_value(&b[i], j);
    }
}

void mlxr_vec_dot_q6_k_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q6_k *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0;
        for (int g = 0; g < 16; g++) {
            int32_t s16 = 0;
            for (int l = 0; l < 16; l++)
                s16 += q6_k_value(&a[i], g * 16 + l) * b[i].qs[g * 16 + l];
            isum += a[i].scales[g] * s16;
        }
        sum += (h2f(a[i].d) * b[i].d) * (float)isum;
    }
    *s = sum;
}

/* ---- IQ4_XS -----------------------------------------------------------------------------------
 */

/* IQ4_XS: scale of sub-block g (0..7) minus 32; 4 bits in scales_l, 2 in scales_h. */
static int iq4_xs_scale(const mlxr_block_iq4_xs *b, int g) {
    const int lo = (b->scales_l[g / 2] >> (4 * (g % 2))) & 0x0F;
    const int hi = (b->scales_h >> (2 * g)) & 3;
    return (lo | (hi << 4)) - 32;
}

void mlxr_dequantize_iq4_xs_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_iq4_xs *b = x;
    const int64_t nb = n / MLXR_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int g = 0; g < 8; g++) {
            const float dl = d * (float)iq4_xs_scale(&b[i], g);
            const uint8_t *qs = b[i].qs + 16 * g;
            float *out = y + i * MLXR_QK_K + 32 * g;
            for (int j = 0; j < 16; j++) {
                out[j] = dl * (float)mlxr_kvalues_iq4nl[qs[j] & 0x0F];
                out[j + 16] = dl * (float)mlxr_kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

void mlxr_vec_dot_iq4_xs_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_iq4_xs *a = x;
    const mlxr_block_q8_k *b = y;
    const int64_t nb = n / MLXR_QK_K;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t isum = 0;
        for (int g = 0; g < 8; g++) {
            const uint8_t *qs = a[i].qs + 16 * g;
            const int8_t *q8 = b[i].qs + 32 * g;
            int32_t s32 = 0;
            for (int j = 0; j < 16; j++) {
                s32 += mlxr_kvalues_iq4nl[qs[j] & 0x0F] * q8[j];
                s32 += mlxr_kvalues_iq4nl[qs[j] >> 4] * q8[j + 16];
            }
            isum += iq4_xs_scale(&a[i], g) * s32;
        }
        sum += (h2f(a[i].d) * b[i].d) * (float)isum;
    }
    *s = sum;
}

/* ---- tiled products: vec_dot for every (row, column), as in types.c -------------------------- */

void mlxr_gemm_q4_k_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q4_k_ref, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

void mlxr_gemm_q6_k_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q6_k_ref, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}
