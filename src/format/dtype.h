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

/* Traits of type `t`, or NULL when `t` is not a known type (t is any integer from a file). */
const mlxr_dtype_traits *mlxr_dtype_get(int64_t t);

/* Bytes of a row of `n` elements of type t; 0 if n is not a multiple of the block size or t is
 * unknown. */
size_t mlxr_dtype_row_size(mlxr_dtype t, int64_t n);

#endif
