/*
 * types.c - reference (scalar) kernels of the tensor element types F32, F16, BF16, Q8_0, Q4_0:
 * conversion from and to float, quantization, dequantization, and the row dot products that
 * matrix-vector products are built from. See kernels.h for the signatures and block layouts.
 *
 * These loops are the definition of correct for the fast variants in src/kernels/cpu/. The
 * numerics follow llama.cpp (ggml-quants.c and ggml-cpu/ggml-cpu-quants.c are the layout spec),
 * because model outputs are compared with llama.cpp's:
 *   - F16/BF16 conversions round to nearest even (src/util/fp16.h); the F16C instructions agree.
 *   - Q8_0 quantization is llama.cpp's x86 activation path, not its portable _ref: per block of 32,
 *     amax = max|x|, d = amax / 127, id = 127 / amax (0 when amax is 0), q = round-half-even(x*id),
 *     and the scale is stored as f16(d). The SIMD quantizers produce the same bytes.
 *   - Q4_0 quantization is llama.cpp's quantize_row_q4_0_ref: the signed value of largest
 *     magnitude (the first one on ties) gives d = max / -8, and q = min(15, trunc(x/d + 8.5)).
 *   - Quantized dot products add exact per-block integer sums times the f32 product of the two
 *     f16 scales, accumulating in float; float dot products accumulate float products in double
 *     (GGML's ggml_float), so this reference is the more accurate side of any comparison.
 *
 * Invariants: n is a multiple of 32 for Q8_0/Q4_0 (any n >= 0 for the float types); inputs to the
 * quantizers are finite (non-finite input gives unspecified bytes, never undefined behaviour).
 * A Q8_0 activation row (the `y` of a dot product) holds -128 only in blocks whose scale is 0
 * (amax below ~4e-37, where 127/amax overflows), so those bytes never reach the result; the SIMD
 * dot products rely on that (see types_avx2.c). Weight rows may hold any byte.
 */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

#include "util/fp16.h"

/* ---- F32 ------------------------------------------------------------------------------------ */

void mlxr_vec_dot_f32_ref(int64_t n, float *s, const void *x, const void *y) {
    const float *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(a[i] * b[i]);
    *s = (float)sum;
}

void mlxr_from_float_f32_ref(const float *x, void *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

void mlxr_to_float_f32_ref(const void *x, float *y, int64_t n) {
    memcpy(y, x, (size_t)n * sizeof(float));
}

/* ---- F16 ------------------------------------------------------------------------------------ */

void mlxr_vec_dot_f16_ref(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(mlxr_fp16_to_fp32(a[i]) * mlxr_fp16_to_fp32(b[i]));
    }
    *s = (float)sum;
}

void mlxr_from_float_f16_ref(const float *x, void *y, int64_t n) {
    uint16_t *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = mlxr_fp32_to_fp16(x[i]);
}

void mlxr_to_float_f16_ref(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = mlxr_fp16_to_fp32(h[i]);
}

/* ---- BF16 ----------------------------------------------------------------------------------- */

void mlxr_vec_dot_bf16_ref(int64_t n, float *s, const void *x, const void *y) {
    const uint16_t *a = x, *b = y;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(mlxr_bf16_to_fp32(a[i]) * mlxr_bf16_to_fp32(b[i]));
    }
    *s = (float)sum;
}

void mlxr_from_float_bf16_ref(const float *x, void *y, int64_t n) {
    uint16_t *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = mlxr_fp32_to_bf16(x[i]);
}

void mlxr_to_float_bf16_ref(const void *x, float *y, int64_t n) {
    const uint16_t *h = x;
    for (int64_t i = 0; i < n; i++)
        y[i] = mlxr_bf16_to_fp32(h[i]);
}

/* ---- Q8_0 ----------------------------------------------------------------------------------- */

/*
 * Round v half-to-even and saturate to int8 the way the x86 sequence cvtps2dq + packssdw +
 * packsswb does: values outside the int32 range and NaN become INT32_MIN, hence -128. For finite
 * input rows |v| <= 127 always holds; the odd cases only arise when amax is so small that 127/amax
 * overflows to infinity, and then the SIMD quantizers and this one still agree byte for byte.
 */
static int8_t round_sat_i8(float v) {
    if (!(v > -2147483648.0f && v < 2147483648.0f)) return -128;
    const float r = nearbyintf(v); /* default rounding mode: to nearest, ties to even */
    if (r > 127.0f) return 127;
    if (r < -128.0f) return -128;
    return (int8_t)r;
}

void mlxr_quantize_q8_0_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < MLXR_QK8_0; j++) {
            if (fabsf(v[j]) > amax) amax = fabsf(v[j]);
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = mlxr_fp32_to_fp16(d);
        for (int j = 0; j < MLXR_QK8_0; j++)
            b[i].qs[j] = round_sat_i8(v[j] * id);
    }
}

void mlxr_dequantize_q8_0_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q8_0 *b = x;
    const int64_t nb = n / MLXR_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = mlxr_fp16_to_fp32(b[i].d);
        for (int j = 0; j < MLXR_QK8_0; j++)
            y[i * MLXR_QK8_0 + j] = (float)b[i].qs[j] * d;
    }
}

void mlxr_vec_dot_q8_0_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q8_0 *a = x, *b = y;
    const int64_t nb = n / MLXR_QK8_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < MLXR_QK8_0; j++)
            sumi += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        sum += (float)sumi * (mlxr_fp16_to_fp32(a[i].d) * mlxr_fp16_to_fp32(b[i].d));
    }
    *s = sum;
}

/* ---- Q4_0 ----------------------------------------------------------------------------------- */

/* min(15, trunc(v)) for v = x/d + 8.5, which lies in [0, 16.5] for finite rows; anything else
 * (only reachable when 1/d overflows) is clamped instead of hitting an undefined float->int cast.
 */
static uint8_t nibble_q4_0(float v) {
    if (!(v >= 0.0f)) return 0;
    if (v >= 15.0f) return 15;
    return (uint8_t)v;
}

void mlxr_quantize_q4_0_ref(const float *x, void *y, int64_t n) {
    mlxr_block_q4_0 *b = y;
    const int64_t nb = n / MLXR_QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float *v = x + i * MLXR_QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MLXR_QK4_0; j++) {
            if (amax < fabsf(v[j])) { /* strict: the first of equal magnitudes wins */
                amax = fabsf(v[j]);
                max = v[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mlxr_fp32_to_fp16(d);
        for (int j = 0; j < MLXR_QK4_0 / 2; j++) {
            const uint8_t lo = nibble_q4_0(v[j] * id + 8.5f);
            const uint8_t hi = nibble_q4_0(v[j + MLXR_QK4_0 / 2] * id + 8.5f);
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void mlxr_dequantize_q4_0_ref(const void *x, float *y, int64_t n) {
    const mlxr_block_q4_0 *b = x;
    const int64_t nb = n / MLXR_QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = mlxr_fp16_to_fp32(b[i].d);
        float *out = y + i * MLXR_QK4_0;
        for (int j = 0; j < MLXR_QK4_0 / 2; j++) {
            out[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            out[j + MLXR_QK4_0 / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void mlxr_vec_dot_q4_0_ref(int64_t n, float *s, const void *x, const void *y) {
    const mlxr_block_q4_0 *a = x;
    const mlxr_block_q8_0 *b = y;
    const int64_t nb = n / MLXR_QK4_0;
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < MLXR_QK4_0 / 2; j++) {
            sumi += ((a[i].qs[j] & 0x0F) - 8) * (int32_t)b[i].qs[j];
            sumi += ((a[i].qs[j] >> 4) - 8) * (int32_t)b[i].qs[j + MLXR_QK4_0 / 2];
        }
        sum += (float)sumi * (mlxr_fp16_to_fp32(a[i].d) * mlxr_fp16_to_fp32(b[i].d));
    }
    *s = sum;
}

/* ---- tiled products: the definition is "vec_dot for every (row, column)" ------------------- */

void mlxr_gemm_by_dots_ref(mlxr_vec_dot_fn dot, int64_t n, int64_t nr, int64_t nc, const void *w,
                           size_t w_stride, const void *x, size_t x_stride, float *y, size_t ldy) {
    for (int64_t j = 0; j < nc; j++)
        for (int64_t i = 0; i < nr; i++)
            dot(n, &y[(size_t)j * ldy + (size_t)i], (const uint8_t *)w + (size_t)i * w_stride,
                (const uint8_t *)x + (size_t)j * x_stride);
}

void mlxr_gemm_q8_0_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q8_0_ref, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

void mlxr_gemm_q4_0_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                        const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_q4_0_ref, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}

void mlxr_gemm_f16_ref(int64_t n, int64_t nr, int64_t nc, const void *w, size_t w_stride,
                       const void *x, size_t x_stride, float *y, size_t ldy) {
    mlxr_gemm_by_dots_ref(mlxr_vec_dot_f16_ref, n, nr, nc, w, w_stride, x, x_stride, y, ldy);
}
