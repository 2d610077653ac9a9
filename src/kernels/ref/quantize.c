/*
 * quantize.c - weight quantizers of Q4_1, Q5_0, Q5_1, Q8_0 (model-file rounding), Q2_K..Q6_K,
 * IQ4_NL and IQ4_XS (see kernels/quantize.h).
 *
 * The algorithms are llama.cpp's reference quantizers (ggml-quants.c), used by llama-quantize when
 * no importance matrix is given; the float operations are written in the same order so that the
 * bytes agree with llama-quantize's (FMA contraction is off in ISO C builds, as in ggml-base):
 *   - Q4_1/Q5_1: per block of 32, min and max give d = (max - min) / (2^bits - 1), m = min,
 *     q = trunc((x - min) / d + 0.5). Q5_0 (like Q4_0): the signed value of largest magnitude
 *     gives d = max / -16, q = min(31, trunc(x / d + 16.5)).
 *   - Q2_K/Q4_K/Q5_K (asymmetric, scale and min per sub-block): make_qkx2 searches scale and min
 *     of each sub-block minimising a weighted error over nstep candidate scales; the sub-block
 *     scales and mins are then quantized (4 bits for Q2_K, 6 bits for Q4_K/Q5_K) against the
 *     super-block's largest, and the values re-quantized with the rounded scales.
 *   - Q3_K (symmetric, 16 sub-blocks): make_q3 starts from scale max/-4 and moves single values
 *     to the level that increases sumlx^2/suml2 (the x^2-weighted least-squares fit).
 *   - Q6_K: make_qx (rmse_type 1) tries 19 scales around max/-32 and keeps the best weighted fit.
 *   - IQ4_NL/IQ4_XS: values come from the 16-entry non-linear grid; a scale search over 15
 *     candidates keeps the best x^2-weighted fit (llama.cpp's ntry = 7); IQ4_XS then quantizes
 *     its 8 sub-block scales to 6 bits.
 * References: ggml-quants.c (ggerganov/llama.cpp), the K-quants PR #1684, IQ4_NL PR #5590.
 */
#include "kernels/quantize.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "format/dtype.h"
#include "kernels/blocks.h"
#include "util/fp16.h"

#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even: llama.cpp's nearest_int (the 1.5*2^23 trick) for |v| < 2^22.
 * Out-of-range values saturate and NaN gives 0, so no float->int conversion is undefined. */
static int nearest_int(float v) {
    if (!(v == v)) return 0;
    if (v > 4194303.f) return 4194303;
    if (v < -4194303.f) return -4194303;
    return (int)nearbyintf(v);
}

/* (int)trunc(v) clamped to [0, hi]; the casts of llama.cpp's quantizers for in-range values. */
static uint8_t trunc_clamp(float v, int hi) {
    if (!(v >= 0.0f)) return 0;
    if (v >= (float)hi) return (uint8_t)hi;
    return (uint8_t)v;
}

static int imin(int a, int b) {
    return a < b ? a : b;
}
static int imax(int a, int b) {
    return a > b ? a : b;
}

/* ---- 32-element block types -------------------------------------------------------------------
 */

void mlxr_quantize_q4_1_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q4_1 *b = y;
    for (int64_t i = 0; i < n / MLXR_QK4_1; i++, x += MLXR_QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < MLXR_QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mlxr_fp32_to_fp16(d);
        b[i].m = mlxr_fp32_to_fp16(min);
        for (int j = 0; j < MLXR_QK4_1 / 2; j++) {
            const uint8_t lo = trunc_clamp((x[j] - min) * id + 0.5f, 15);
            const uint8_t hi = trunc_clamp((x[j + MLXR_QK4_1 / 2] - min) * id + 0.5f, 15);
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* The 5th bits of 32 values go to qh: bit j for value j (j < 16) and bit j + 16 for value j + 16.
 */
static void pack_q5(const uint8_t *q, uint8_t *qs, uint8_t qh[4]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    for (int k = 0; k < 4; k++)
        qh[k] = (uint8_t)(h >> (8 * k)); /* little-endian, as GGUF stores it */
}

void mlxr_quantize_q5_0_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q5_0 *b = y;
    for (int64_t i = 0; i < n / MLXR_QK5_0; i++, x += MLXR_QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MLXR_QK5_0; j++) {
            if (amax < fabsf(x[j])) { /* strict: the first of equal magnitudes wins */
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mlxr_fp32_to_fp16(d);
        uint8_t q[MLXR_QK5_0];
        for (int j = 0; j < MLXR_QK5_0; j++)
            q[j] = trunc_clamp(x[j] * id + 16.5f, 31);
        pack_q5(q, b[i].qs, b[i].qh);
    }
}

void mlxr_quantize_q5_1_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q5_1 *b = y;
    for (int64_t i = 0; i < n / MLXR_QK5_1; i++, x += MLXR_QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < MLXR_QK5_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mlxr_fp32_to_fp16(d);
        b[i].m = mlxr_fp32_to_fp16(min);
        uint8_t q[MLXR_QK5_1];
        for (int j = 0; j < MLXR_QK5_1; j++)
            q[j] = trunc_clamp((x[j] - min) * id + 0.5f, 31);
        pack_q5(q, b[i].qs, b[i].qh);
    }
}

void mlxr_quantize_q8_0_weight_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q8_0 *b = y;
    for (int64_t i = 0; i < n / MLXR_QK8_0; i++, x += MLXR_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < MLXR_QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mlxr_fp32_to_fp16(d);
        for (int j = 0; j < MLXR_QK8_0; j++) {
            const float v = roundf(x[j] * id); /* |v| <= 127 for finite rows */
            b[i].qs[j] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v == v ? (int)v : 0);
        }
    }
}

/* ---- scale searches (ggml-quants.c: make_qx_quants, make_q3_quants, make_qkx2_quants) ----------
 */

/*
 * Symmetric fit of n values to levels -nmax..nmax-1 with one scale, weighted by x^2 (rmse_type 1):
 * try iscale = -(nmax + 0.1 * is) / max for is = -9..9 and keep the least-squares scale with the
 * best sumlx^2 / suml2. L receives level + nmax. Returns the scale (0 for an all-zero group).
 */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/*
 * Q3_K's sub-block fit: levels -nmax..nmax-1 from scale max/-nmax, then up to 5 passes that move
 * one value at a time to the level its own least-squares scale prefers, when that improves the
 * x^2-weighted fit. L receives level + nmax.
 */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
 * Asymmetric fit x ~ scale * l - the_min, l in 0..nmax, weighted by `weights`: start from the
 * min/max range, then for nstep + 1 candidate scales (rmin + rdelta * is + nmax) / (max - min)
 * solve the weighted least-squares scale and min for the rounded levels and keep the one with the
 * least error (absolute if use_mad, else squared). *the_min receives the (non-negative) min.
 */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            const float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* ---- K-quants ----------------------------------------------------------------------------------
 */

/* Pack 256 2-bit levels as Q2_K/Q3_K store them: byte l of each 32-byte group of a 128-value half
 * holds values l, l + 32, l + 64, l + 96 in bit pairs 0, 2, 4, 6. */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < MLXR_QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
}

void mlxr_quantize_q2_k_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q2_k *b = y;
    uint8_t L[MLXR_QK_K], Laux[16];
    float weights[16], mins[MLXR_QK_K / 16], scales[MLXR_QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / MLXR_QK_K; i++, x += MLXR_QK_K) {
        float max_scale = 0, max_min = 0; /* the min is subtracted, so scales are >= 0 */
        for (int j = 0; j < MLXR_QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < MLXR_QK_K / 16; ++j)
                b[i].scales[j] = (uint8_t)imin(15, nearest_int(iscale * scales[j]));
            b[i].d = mlxr_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(b[i].scales, 0, sizeof b[i].scales);
            b[i].d = mlxr_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < MLXR_QK_K / 16; ++j)
                b[i].scales[j] |= (uint8_t)(imin(15, nearest_int(iscale * mins[j])) << 4);
            b[i].dmin = mlxr_fp32_to_fp16(max_min / q4scale);
        } else {
            b[i].dmin = mlxr_fp32_to_fp16(0.f);
        }
        for (int j = 0; j < MLXR_QK_K / 16; ++j) {
            const float d = mlxr_fp16_to_fp32(b[i].d) * (b[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = mlxr_fp16_to_fp32(b[i].dmin) * (b[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, nearest_int((x[16 * j + ii] + dm) / d)));
        }
        pack_2bit(L, b[i].qs);
    }
}

void mlxr_quantize_q3_k_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q3_k *b = y;
    int8_t L[MLXR_QK_K];
    float scales[MLXR_QK_K / 16];
    for (int64_t i = 0; i < n / MLXR_QK_K; i++, x += MLXR_QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < MLXR_QK_K / 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        /* 16 6-bit scales (offset 32): low nibbles in scales[0..7] (two per byte, j and j + 8),
         * high bit pairs in scales[8..11] (byte 8 + j % 4, bits 2 * (j / 4)) */
        memset(b[i].scales, 0, sizeof b[i].scales);
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < MLXR_QK_K / 16; ++j) {
                const int l = imax(-32, imin(31, nearest_int(iscale * scales[j]))) + 32;
                if (j < 8)
                    b[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    b[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                b[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            b[i].d = mlxr_fp32_to_fp16(1 / iscale);
        } else {
            b[i].d = mlxr_fp32_to_fp16(0.f);
        }
        for (int j = 0; j < MLXR_QK_K / 16; ++j) {
            int sc = j < 8 ? b[i].scales[j] & 0xF : b[i].scales[j - 8] >> 4;
            sc = (sc | (((b[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            const float d = mlxr_fp16_to_fp32(b[i].d) * sc;
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, nearest_int(x[16 * j + ii] / d))) + 4);
        }
        /* the high bit of level j goes to hmask[j % 32], bit j / 32 */
        memset(b[i].hmask, 0, sizeof b[i].hmask);
        uint8_t low[MLXR_QK_K];
        for (int j = 0; j < MLXR_QK_K; ++j) {
            if (L[j] > 3) b[i].hmask[j % 32] |= (uint8_t)(1 << (j / 32));
            low[j] = (uint8_t)(L[j] & 3);
        }
        pack_2bit(low, b[i].qs);
    }
}

/* Q4_K/Q5_K scale bytes: 8 6-bit scales and 8 6-bit mins in 12 bytes (get_scale_min_k4 inverse). */
static void pack_scale_min_k4(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/*
 * The shared part of Q4_K and Q5_K: fit each 32-value sub-block (levels 0..nmax), quantize the
 * scales and mins to 6 bits, write d, dmin and the 12 scale bytes, and re-quantize the values
 * with the rounded scales into L (256 levels). rmin/rdelta/nstep: the scale search's range.
 */
static void quantize_k_asym(const float *x, int nmax, float rmin, int nstep, uint16_t *d_out,
                            uint16_t *dmin_out, uint8_t *scale_bytes, uint8_t *L) {
    uint8_t Laux[32], ls[8], lm[8];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, 0);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        ls[j] = (uint8_t)imin(63, nearest_int(inv_scale * scales[j]));
        lm[j] = (uint8_t)imin(63, nearest_int(inv_min * mins[j]));
    }
    memset(scale_bytes, 0, MLXR_K_SCALE_SIZE);
    pack_scale_min_k4(ls, lm, scale_bytes);
    *d_out = mlxr_fp32_to_fp16(max_scale / 63.f);
    *dmin_out = mlxr_fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, scale_bytes, &sc, &m);
        const float d = mlxr_fp16_to_fp32(*d_out) * sc;
        if (!d) continue;
        const float dm = mlxr_fp16_to_fp32(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + ii] + dm) / d)));
    }
}

void mlxr_quantize_q4_k_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q4_k *b = y;
    uint8_t L[MLXR_QK_K];
    for (int64_t i = 0; i < n / MLXR_QK_K; i++, x += MLXR_QK_K) {
        quantize_k_asym(x, 15, -1.f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
        /* each 64 values: low nibbles hold values 0..31, high nibbles 32..63 */
        uint8_t *q = b[i].qs;
        for (int j = 0; j < MLXR_QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void mlxr_quantize_q5_k_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q5_k *b = y;
    uint8_t L[MLXR_QK_K];
    for (int64_t i = 0; i < n / MLXR_QK_K; i++, x += MLXR_QK_K) {
        quantize_k_asym(x, 31, -0.5f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        /* as Q4_K, plus the 5th bits: value n + j (n a multiple of 64) sets bit 2 * (n / 64) of
         * qh[j], value n + j + 32 bit 2 * (n / 64) + 1 */
        memset(b[i].qh, 0, sizeof b[i].qh);
        uint8_t *ql = b[i].qs;
        uint8_t m1 = 1, m2 = 2;
        for (int nn = 0; nn < MLXR_QK_K; nn += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[nn + j], l2 = L[nn + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    b[i].qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    b[i].qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

void mlxr_quantize_q6_k_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q6_k *b = y;
    int8_t L[MLXR_QK_K];
    float scales[MLXR_QK_K / 16];
    for (int64_t i = 0; i < n / MLXR_QK_K; i++, x += MLXR_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < MLXR_QK_K / 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        b[i].d = mlxr_fp32_to_fp16(1 / iscale);
        for (int ib = 0; ib < MLXR_QK_K / 16; ++ib)
            b[i].scales[ib] = (int8_t)imax(-128, imin(127, nearest_int(iscale * scales[ib])));
        for (int j = 0; j < MLXR_QK_K / 16; ++j) {
            const float d = mlxr_fp16_to_fp32(b[i].d) * b[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] =
                    (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + ii] / d))) + 32);
        }
        /* per 128 values: ql[l] = low nibbles of values l and l + 64, ql[l + 32] of l + 32 and
         * l + 96; qh[l] = the high bit pairs of l, l + 32, l + 64, l + 96 */
        uint8_t *ql = b[i].ql, *qh = b[i].qh;
        for (int j = 0; j < MLXR_QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

/* ---- IQ4_NL / IQ4_XS ----------------------------------------------------------------------------
 */

/* Index of the grid value nearest to v (the sorted 16-entry kvalues; ties go to the upper one). */
static int best_index_iq4(float v) {
    const int8_t *val = mlxr_kvalues_iq4nl;
    if (v <= val[0]) return 0;
    if (v >= val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        const int mav = (ml + mu) / 2;
        if (v < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return v - val[mu - 1] < val[mu] - v ? mu - 1 : mu;
}

#define IQ4_NTRY 7

/*
 * Fit one 32-value block to d * kvalues[L]: start from d = max / 127 (the value of largest
 * magnitude on the grid's end), then try iscale = (itry - 127) / max for itry = -7..7, keeping the
 * x^2-weighted least-squares scale with the best sumqx^2 / sumq2. Returns d (0 for all zeros; L
 * is then left for the caller to fill).
 */
static float iq4_block_scale(const float *xb, uint8_t *Lb) {
    const int8_t *values = mlxr_kvalues_iq4nl;
    float weight[32], amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
        weight[j] = xb[j] * xb[j];
        if (fabsf(xb[j]) > amax) {
            amax = fabsf(xb[j]);
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS) return 0;
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
        const int l = best_index_iq4(id * xb[j]);
        Lb[j] = (uint8_t)l;
        const float q = values[l];
        sumqx += weight[j] * q * xb[j];
        sumq2 += weight[j] * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -IQ4_NTRY; itry <= IQ4_NTRY; ++itry) {
        id = (itry + values[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const float q = values[best_index_iq4(id * xb[j])];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    return d;
}

/* 32 grid indices -> 16 bytes: low nibbles values 0..15, high nibbles 16..31. */
static void pack_iq4(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < 16; ++j)
        qs[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

void mlxr_quantize_iq4_nl_ref(const float *x, void *y, int64_t n) {
    mlxr_block_iq4_nl *b = y;
    uint8_t L[32];
    for (int64_t i = 0; i < n / MLXR_QK4_NL; i++, x += MLXR_QK4_NL) {
        const float d = iq4_block_scale(x, L);
        b[i].d = mlxr_fp32_to_fp16(d);
        const float id = d ? 1 / d : 0;
        for (int j = 0; j < 32; ++j)
            L[j] = (uint8_t)best_index_iq4(id * x[j]);
        pack_iq4(L, b[i].qs);
    }
}

void mlxr_quantize_iq4_xs_ref(const float *x, void *y, int64_t n) {
    mlxr_block_iq4_xs *b = y;
    uint8_t L[32];
    float scales[8];
    for (int64_t i = 0; i < n / MLXR_QK_K; i++, x += MLXR_QK_K) {
        float max_scale = 0, amax_scale = 0;
        for (int ib = 0; ib < 8; ++ib) {
            scales[ib] = iq4_block_scale(x + 32 * ib, L);
            if (fabsf(scales[ib]) > amax_scale) {
                amax_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        /* 8 6-bit sub-block scales (offset 32) against d = max_scale / -32: low nibbles in
         * scales_l (two per byte), high bit pairs in scales_h (bits 2 * ib) */
        const float d = -max_scale / 32;
        b[i].d = mlxr_fp32_to_fp16(d);
        b[i].scales_h = 0;
        memset(b[i].scales_l, 0, sizeof b[i].scales_l);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < 8; ++ib) {
            int l = imax(-32, imin(31, nearest_int(id * scales[ib])));
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j)
                L[j] = (uint8_t)best_index_iq4(idl * x[32 * ib + j]);
            pack_iq4(L, b[i].qs + 16 * ib);
            l += 32;
            if (ib % 2 == 0)
                b[i].scales_l[ib / 2] = (uint8_t)(l & 0xF);
            else
                b[i].scales_l[ib / 2] |= (uint8_t)((l & 0xF) << 4);
            b[i].scales_h |= (uint16_t)((l >> 4) << (2 * ib));
        }
    }
}

/* ---- dispatch ----------------------------------------------------------------------------------
 */

mlxr_from_float_fn mlxr_quantize_fn(mlxr_dtype t) {
    switch (t) {
    case MLXR_DTYPE_F32:
        return mlxr_from_float_f32_ref;
    case MLXR_DTYPE_F16:
        return mlxr_from_float_f16_ref;
    case MLXR_DTYPE_BF16:
        return mlxr_from_float_bf16_ref;
    case MLXR_DTYPE_Q4_0:
        return mlxr_quantize_q4_0_ref;
    case MLXR_DTYPE_Q4_1:
        return mlxr_quantize_q4_1_ref;
    case MLXR_DTYPE_Q5_0:
        return mlxr_quantize_q5_0_ref;
    case MLXR_DTYPE_Q5_1:
        return mlxr_quantize_q5_1_ref;
    case MLXR_DTYPE_Q8_0:
        return mlxr_quantize_q8_0_weight_ref;
    case MLXR_DTYPE_Q2_K:
        return mlxr_quantize_q2_k_ref;
    case MLXR_DTYPE_Q3_K:
        return mlxr_quantize_q3_k_ref;
    case MLXR_DTYPE_Q4_K:
        return mlxr_quantize_q4_k_ref;
    case MLXR_DTYPE_Q5_K:
        return mlxr_quantize_q5_k_ref;
    case MLXR_DTYPE_Q6_K:
        return mlxr_quantize_q6_k_ref;
    case MLXR_DTYPE_IQ4_NL:
        return mlxr_quantize_iq4_nl_ref;
    case MLXR_DTYPE_IQ4_XS:
        return mlxr_quantize_iq4_xs_ref;
    default:
        return NULL;
    }
}

mlxr_status mlxr_quantize_row(mlxr_dtype t, const float *x, void *y, int64_t n) {
    const mlxr_from_float_fn fn = mlxr_quantize_fn(t);
    if (!fn) return MLXR_ERR_UNSUPPORTED;
    const mlxr_dtype_traits *tr = mlxr_dtype_get(t);
    if (!tr || n < 0 || n % tr->blck_size != 0) return MLXR_ERR_INVALID;
    fn(x, y, n);
    return MLXR_OK;
}
