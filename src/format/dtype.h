/*
 * dtype.h - block layout of every tensor element type: elements per block and bytes per block.
 * The GGUF reader uses it to validate tensor sizes; kernels use it to walk rows.
 */
#ifndef MLXR_FORMAT_DTYPE_H
#define MLXR_FORMAT_DTYPE_H

#include "mlxr.h"

typedef struct mlxr_dtype_traits {
    const char *name;  /* NULL: not a known type */
    int32_t blck_size; /* elements per block */
    int32_t type_size; /* bytes per block */
} mlxr_dtype_traits;

/* Traits of type `t`, or NULL when `t` is not a type a GGUF file may hold (t is any integer from
 * a file). The internal types below are NULL here, so the GGUF reader and writer refuse them. */
const mlxr_dtype_traits *mlxr_dtype_get(int64_t t);

/*
 * Internal types: layouts mlxr makes at load time, never read from or written to a GGUF file.
 * Their numbers start far above GGML's ids (which GGUF files store and which are still being
 * added, 39 being MXFP4 today), so they can never be taken for a file's type.
 *   MLX_A8: activation blocks of MLX affine products (mlxr_mlx_q8: f32 d, i32 sum, i8 qs[32])
 *   MLX_Q<bits>_G<group>[_BF16]: MLX affine weights (kernels/mlx_affine.h has the block layout),
 *     scales and biases in f16, or bf16 for the _BF16 types (kept as the source file has them)
 * Their numbers, in mlx_affine.h's order: 65 + 2 * (3 * (bits == 8) + log2(group / 32)) + bf16.
 */
#define MLXR_DTYPE_INTERNAL_FIRST 64
#define MLXR_DTYPE_MLX_A8 ((mlxr_dtype)64)
#define MLXR_DTYPE_MLX_FIRST 65 /* 12 weight types: MLX_Q4_G32 .. MLX_Q8_G128_BF16 */
#define MLXR_DTYPE_MLX_COUNT 12
/* Entries of a table indexed by any type, internal ones included (kernels.h's type table). */
#define MLXR_DTYPE_TABLE_SIZE (MLXR_DTYPE_MLX_FIRST + MLXR_DTYPE_MLX_COUNT)

/* Traits of any type, GGUF or internal; NULL when t is neither. */
const mlxr_dtype_traits *mlxr_dtype_traits_of(int64_t t);
/* Whether t is one of the internal types (never in a GGUF file). */
bool mlxr_dtype_is_internal(int64_t t);

/* Bytes of a row of `n` elements of type t (GGUF or internal); 0 if n is not a multiple of the
 * block size or t is unknown. */
size_t mlxr_dtype_row_size(mlxr_dtype t, int64_t n);

#endif
