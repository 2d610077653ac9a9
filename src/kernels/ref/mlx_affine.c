/*
 * mlx_affine.c - reference kernels of MLX affine group quantization (layout and numerics in
 * kernels/mlx_affine.h): checks, dequantization, dot products, the int8 activation quantizer,
 * the float quantizer that mirrors mx.quantize, a matrix-vector loop and the variant table.
 */
#include "kernels/mlx_affine.h"

#include <math.h>

#include "util/err.h"
#include "util/fp16.h"

mlxr_status mlxr_mlx_affine_check(int bits, int group_size, int64_t n, int scale_type,
                                  mlxr_err *err) {
    if (bits != 4 && bits != 8)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "mlx affine: %d bits not supported (4 or 8)",
                         bits);
    if (group_size != 32 && group_size != 64 && group_size != 128)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "mlx affine: group size %d not supported (32, 64 or 128)", group_size);
    if (n <= 0 || n % group_size != 0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "mlx affine: row length %lld is not a positive multiple of the group "
                         "size %d",
                         (long long)n, group_size);
    if (scale_type != MLXR_MLX_SCALE_F16 && scale_type != MLXR_MLX_SCALE_BF16)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "mlx affine: unknown scale type %d", scale_type);
    return MLXR_OK;
}

mlxr_mlx_row mlxr_mlx_matrix_row(const mlxr_mlx_matrix *m, int64_t r) {
    mlxr_mlx_row row = {
        .bits = m->bits,
        .group_size = m->group_size,
        .scale_type = m->scale_type,
        .n = m->cols,
        .w = m->w + r * mlxr_mlx_row_words(m->bits, m->cols),
        .scales = m->scales + r * (m->cols / m->group_size),
        .biases = m->biases + r * (m->cols / m->group_size),
    };
    return row;
}

static float half_to_f32(mlxr_mlx_scale_type t, uint16_t h) {
    return t == MLXR_MLX_SCALE_BF16 ? mlxr_bf16_to_fp32(h) : mlxr_fp16_to_fp32(h);
}

static uint16_t f32_to_half(mlxr_mlx_scale_type t, float f) {
    return t == MLXR_MLX_SCALE_BF16 ? mlxr_fp32_to_bf16(f) : mlxr_fp32_to_fp16(f);
}

/* Code i of a row: word i / (32/bits), shifted by (i % (32/bits)) * bits. */
static inline uint32_t code_at(const mlxr_mlx_row *row, int64_t i) {
    int per = 32 / row->bits;
    uint32_t word = row->w[i / per];
    return (word >> ((i % per) * row->bits)) & ((1u << row->bits) - 1);
}

void mlxr_mlx_affine_dequant_ref(const mlxr_mlx_row *row, float *y) {
    for (int64_t i = 0; i < row->n; i++) {
        int64_t g = i / row->group_size;
        float s = half_to_f32(row->scale_type, row->scales[g]);
        float b = half_to_f32(row->scale_type, row->biases[g]);
        y[i] = s * (float)code_at(row, i) + b;
    }
}

float mlxr_mlx_affine_dot_f32_ref(const mlxr_mlx_row *row, const float *x) {
    float sum = 0.0f;
    for (int64_t i = 0; i < row->n; i++) {
        int64_t g = i / row->group_size;
        float s = half_to_f32(row->scale_type, row->scales[g]);
        float b = half_to_f32(row->scale_type, row->biases[g]);
        sum += (s * (float)code_at(row, i) + b) * x[i];
    }
    return sum;
}

void mlxr_mlx_q8_quantize_ref(const float *x, mlxr_mlx_q8 *y, int64_t n) {
    for (int64_t b = 0; b < n / MLXR_MLX_QK; b++) {
        const float *xb = x + b * MLXR_MLX_QK;
        float amax = 0.0f;
        for (int i = 0; i < MLXR_MLX_QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < MLXR_MLX_QK; i++) {
            /* |xb[i] * id| <= 127 up to rounding of id; clamp keeps -128 out. */
            float v = nearbyintf(xb[i] * id);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            y[b].qs[i] = (int8_t)v;
            sum += y[b].qs[i];
        }
        y[b].d = d;
        y[b].sum = sum;
    }
}

/* The reference fast dot: exact integer sums per 32-block, then the formula of the header. */
float mlxr_mlx_affine_dot_q8_ref(const mlxr_mlx_row *row, const mlxr_mlx_q8 *x) {
    int gs = row->group_size;
    int blocks_per_group = gs / MLXR_MLX_QK;
    float total = 0.0f;
    for (int64_t g = 0; g < row->n / gs; g++) {
        float s = half_to_f32(row->scale_type, row->scales[g]);
        float b = half_to_f32(row->scale_type, row->biases[g]);
        float qx = 0.0f, sx = 0.0f;
        for (int k = 0; k < blocks_per_group; k++) {
            const mlxr_mlx_q8 *xb = &x[g * blocks_per_group + k];
            int64_t base = g * gs + (int64_t)k * MLXR_MLX_QK;
            int32_t isum = 0;
            for (int i = 0; i < MLXR_MLX_QK; i++)
                isum += (int32_t)code_at(row, base + i) * xb->qs[i];
            qx += xb->d * (float)isum;
            sx += xb->d * (float)xb->sum;
        }
        total += s * qx + b * sx;
    }
    return total;
}

void mlxr_mlx_affine_matvec(const mlxr_mlx_matrix *m, const mlxr_mlx_q8 *x, float *y,
                            mlxr_mlx_dot_q8_fn dot) {
    for (int64_t r = 0; r < m->rows; r++) {
        mlxr_mlx_row row = mlxr_mlx_matrix_row(m, r);
        y[r] = dot(&row, x);
    }
}

mlxr_status mlxr_mlx_affine_quantize(const float *x, int64_t n, int bits, int group_size,
                                     mlxr_mlx_scale_type scale_type, uint32_t *w,
                                     uint16_t *scales, uint16_t *biases, mlxr_err *err) {
    mlxr_status st = mlxr_mlx_affine_check(bits, group_size, n, (int)scale_type, err);
    if (st != MLXR_OK) return st;
    const float n_bins = (float)((1 << bits) - 1);
    const int per = 32 / bits;
    for (int64_t i = 0; i < mlxr_mlx_row_words(bits, n); i++) w[i] = 0;
    for (int64_t g = 0; g < n / group_size; g++) {
        const float *xg = x + g * group_size;
        float lo = xg[0], hi = xg[0];
        for (int i = 1; i < group_size; i++) {
            lo = fminf(lo, xg[i]);
            hi = fmaxf(hi, xg[i]);
        }
        float scale = fmaxf((hi - lo) / n_bins, 1e-7f);
        /* Pin the edge of larger magnitude to an exact code so it dequantizes exactly (zero
         * stays exact too when it is that edge's code 0). */
        int low_edge = fabsf(lo) > fabsf(hi);
        if (!low_edge) scale = -scale;
        float edge = low_edge ? lo : hi;
        float q0 = roundf(edge / scale);
        float bias = 0.0f;
        if (q0 != 0.0f) {
            scale = edge / q0;
            bias = edge;
        }
        for (int i = 0; i < group_size; i++) {
            float q = roundf((xg[i] - bias) / scale);
            q = fminf(fmaxf(q, 0.0f), n_bins);
            int64_t idx = g * group_size + i;
            w[idx / per] |= (uint32_t)q << ((idx % per) * bits);
        }
        scales[g] = f32_to_half(scale_type, scale);
        biases[g] = f32_to_half(scale_type, bias);
    }
    return MLXR_OK;
}

mlxr_mlx_affine_kernels mlxr_mlx_affine_kernels_for(mlxr_isa isa) {
    mlxr_mlx_affine_kernels k = {
        .dot_q8 = mlxr_mlx_affine_dot_q8_ref,
        .dequant = mlxr_mlx_affine_dequant_ref,
        .dot_f32 = mlxr_mlx_affine_dot_f32_ref,
    };
#if defined(__x86_64__) || defined(__i386__)
    if (isa >= MLXR_ISA_AVX2) k.dot_q8 = mlxr_mlx_affine_dot_q8_avx2;
#else
    (void)isa;
#endif
    return k;
}
