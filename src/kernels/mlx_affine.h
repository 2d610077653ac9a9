/*
 * mlx_affine.h - MLX "affine" group quantization (mlx-community models, mx.quantize mode
 * "affine"): kernels on one row, a matrix-vector helper, and a float quantizer for tests/tools.
 *
 * Layout of a quantized [rows, cols] matrix as MLX stores it (three safetensors tensors):
 *   <name>.weight  uint32 [rows, cols * bits / 32]  each word packs 32/bits codes along the input
 *                                                    dimension, the first code in the lowest bits
 *   <name>.scales  f16|bf16 [rows, cols / group_size]
 *   <name>.biases  f16|bf16 [rows, cols / group_size]
 *   x[r][i] = scale[r][g] * q[r][i] + bias[r][g],  g = i / group_size,  q unsigned in [0, 2^bits).
 * Supported here: bits 4 or 8, group_size 32, 64 or 128.
 *
 * Fast dot products take the activation quantized to int8 in blocks of 32 (mlxr_mlx_q8: a float
 * scale, the int sum of the block's quants, 32 quants). For one weight group with scale s, bias b:
 *   sum_i (s*q_i + b) * (d_k * a_i) = s * sum_k d_k * (sum_{i in k} q_i a_i) + b * sum_k d_k * S_k
 * with S_k = sum of block k's activation quants. The inner sums are exact integers, so the result
 * is the dot of the dequantized weight row with the dequantized int8 activation up to float
 * rounding of a handful of terms per group; its distance from the F32 dot is the activation's
 * int8 rounding only (at most d_k / 2 per element, d_k = max|x| / 127 over the block).
 *
 * Native layout (the weight types MLX_Q<bits>_G<group>[_BF16] of format/dtype.h), made at load
 * from the three arrays by mlxr_mlx_row_to_blocks: one block per group of gs weights,
 *   { u16 scale; u16 bias; u8 qs[gs * bits / 8]; }   (4 + gs * bits / 8 bytes, 2-byte aligned)
 * scale and bias in f16, or in bf16 for the _BF16 types: the source file's values, unchanged (a
 * bf16 value need not fit f16), so the bytes per weight are MLX's own (4-bit group 64: 4.5 bits).
 * Codes, per 32-weight piece p of the group (bytes [4 * bits * p, 4 * bits * (p + 1)) of qs):
 *   4 bits: byte j (j < 16) = q[32p + j] | q[32p + 16 + j] << 4   (GGML Q4_0/Q4_1's nibble
 *           order, not MLX's: one AND gives weights 0..15 of the piece in order, one shift
 *           16..31, with no interleave in the dot product's inner loop)
 *   8 bits: byte j = q[32p + j]   (MLX's order)
 * x[i] = scale * q[i] + bias. The activation type of their products is MLX_A8 (mlxr_mlx_q8
 * blocks): vec_dot, gemm and to_float sit in the kernel table (kernels.h) like any GGUF type's,
 * with the arithmetic of mlxr_mlx_affine_dot_q8_ref.
 */
#ifndef MLXR_KERNELS_MLX_AFFINE_H
#define MLXR_KERNELS_MLX_AFFINE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "mlxr.h"

typedef enum mlxr_mlx_scale_type {
    MLXR_MLX_SCALE_F16 = 1,
    MLXR_MLX_SCALE_BF16 = 2,
} mlxr_mlx_scale_type;

/* One quantized row of n elements (borrowed pointers). */
typedef struct mlxr_mlx_row {
    int bits;                       /* 4 or 8 */
    int group_size;                 /* 32, 64 or 128 */
    mlxr_mlx_scale_type scale_type; /* encoding of scales and biases */
    int64_t n;                      /* elements; a multiple of group_size */
    const uint32_t *w;              /* n * bits / 32 packed words */
    const uint16_t *scales;         /* n / group_size */
    const uint16_t *biases;         /* n / group_size */
} mlxr_mlx_row;

/* A [rows, cols] matrix: row r is at w + r * cols*bits/32 words, scales/biases + r * cols/gs. */
typedef struct mlxr_mlx_matrix {
    int bits, group_size;
    mlxr_mlx_scale_type scale_type;
    int64_t rows, cols;
    const uint32_t *w;
    const uint16_t *scales, *biases;
} mlxr_mlx_matrix;

#define MLXR_MLX_QK 32
/* Activation block: a = d * qs[i]; sum = sum of qs (exact). 40 bytes. */
typedef struct mlxr_mlx_q8 {
    float d;
    int32_t sum;
    int8_t qs[MLXR_MLX_QK];
} mlxr_mlx_q8;

/* Check bits / group_size / n (n > 0, a multiple of group_size) and the scale type.
 * Errors: MLXR_ERR_UNSUPPORTED for bits or group sizes other than the supported ones,
 * MLXR_ERR_INVALID for n or scale type. */
mlxr_status mlxr_mlx_affine_check(int bits, int group_size, int64_t n, int scale_type,
                                  mlxr_err *err);
/* Row r of matrix m (no checks beyond r < rows being the caller's job). */
mlxr_mlx_row mlxr_mlx_matrix_row(const mlxr_mlx_matrix *m, int64_t r);

/* Words / scale entries of a row of n elements (n already checked). */
static inline int64_t mlxr_mlx_row_words(int bits, int64_t n) { return n * bits / 32; }

/* Decode row (already checked) to n floats: y[i] = s * q + b with s, b decoded to float. */
void mlxr_mlx_affine_dequant_ref(const mlxr_mlx_row *row, float *y);
/* Dot of the row with n floats (reference: decode each element, float sum in order). */
float mlxr_mlx_affine_dot_f32_ref(const mlxr_mlx_row *row, const float *x);

/* Quantize n floats (n multiple of 32) into n / 32 activation blocks: d = max|x| / 127,
 * qs = round-to-nearest-even(x / d), exactly as Q8_0 does but with a float scale. */
void mlxr_mlx_q8_quantize_ref(const float *x, mlxr_mlx_q8 *y, int64_t n);

/* Dot of the row with its quantized activation (n / 32 blocks). */
typedef float (*mlxr_mlx_dot_q8_fn)(const mlxr_mlx_row *row, const mlxr_mlx_q8 *x);
float mlxr_mlx_affine_dot_q8_ref(const mlxr_mlx_row *row, const mlxr_mlx_q8 *x);
float mlxr_mlx_affine_dot_q8_avx2(const mlxr_mlx_row *row, const mlxr_mlx_q8 *x);

typedef struct mlxr_mlx_affine_kernels {
    mlxr_mlx_dot_q8_fn dot_q8;
    void (*dequant)(const mlxr_mlx_row *row, float *y);
    float (*dot_f32)(const mlxr_mlx_row *row, const float *x);
} mlxr_mlx_affine_kernels;

/* The best variants up to `isa` (the caller clamps isa to the CPU, as mlxr_cpu_isa does). */
mlxr_mlx_affine_kernels mlxr_mlx_affine_kernels_for(mlxr_isa isa);

/* y[r] = dot(row r, x) for r < m->rows, x being cols / 32 activation blocks. The matrix must have
 * passed mlxr_mlx_affine_check(bits, group_size, cols, ...). */
void mlxr_mlx_affine_matvec(const mlxr_mlx_matrix *m, const mlxr_mlx_q8 *x, float *y,
                            mlxr_mlx_dot_q8_fn dot);

/*
 * Quantize n floats (one row) as mx.quantize(mode="affine") does, per group of group_size:
 *   scale = max((max - min) / (2^bits - 1), 1e-7); the edge of larger magnitude (min if
 *   |min| > |max|, else max, with the scale negated) is pinned: q0 = round(edge / scale);
 *   if q0 != 0: scale = edge / q0, bias = edge; else bias = 0;
 *   q = clamp(round((x - bias) / scale), 0, 2^bits - 1)   (round: halves away from zero)
 * all in float32, codes from the unrounded scale/bias; the stored scale/bias are then rounded to
 * scale_type. w gets n * bits / 32 words, scales/biases n / group_size entries.
 */
mlxr_status mlxr_mlx_affine_quantize(const float *x, int64_t n, int bits, int group_size,
                                     mlxr_mlx_scale_type scale_type, uint32_t *w,
                                     uint16_t *scales, uint16_t *biases, mlxr_err *err);

/* ---- native layout (ref/mlx_types.c, cpu/mlx_types_avx2.c) ----------------------------- */

/* The weight type of (bits, group_size, scale_type), or MLXR_DTYPE_COUNT when unsupported. */
mlxr_dtype mlxr_mlx_dtype(int bits, int group_size, mlxr_mlx_scale_type scale_type);
/* The parameters of an MLX weight type; false when t is none. Any pointer may be NULL. */
bool mlxr_mlx_dtype_params(mlxr_dtype t, int *bits, int *group_size,
                           mlxr_mlx_scale_type *scale_type);
/* Row `row` (checked) in the native layout of its type: mlxr_dtype_row_size(type, row->n) bytes
 * at dst (any alignment). */
void mlxr_mlx_row_to_blocks(const mlxr_mlx_row *row, void *dst);

/* The AVX2 entries of the MLX types (vec_dot, gemm, the MLX_A8 encoder) into t (indexed by
 * dtype); called by mlxr_kernels_init_mlx at level AVX2 and up. */
void mlxr_mlx_types_avx2(mlxr_type_kernels *t);

#endif
