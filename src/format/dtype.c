/*
 * dtype.c - the table of tensor element types (layouts from GGML's ggml-common.h, which GGUF
 * files follow byte for byte).
 */
#include "format/dtype.h"

#define QK_K 256

static const mlxr_dtype_traits TRAITS[MLXR_DTYPE_COUNT] = {
    [MLXR_DTYPE_F32] = {"F32", 1, 4},
    [MLXR_DTYPE_F16] = {"F16", 1, 2},
    [MLXR_DTYPE_Q4_0] = {"Q4_0", 32, 2 + 16},
    [MLXR_DTYPE_Q4_1] = {"Q4_1", 32, 4 + 16},
    [MLXR_DTYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [MLXR_DTYPE_Q5_1] = {"Q5_1", 32, 4 + 4 + 16},
    [MLXR_DTYPE_Q8_0] = {"Q8_0", 32, 2 + 32},
    [MLXR_DTYPE_Q8_1] = {"Q8_1", 32, 4 + 32},
    [MLXR_DTYPE_Q2_K] = {"Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 4},
    [MLXR_DTYPE_Q3_K] = {"Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2},
    [MLXR_DTYPE_Q4_K] = {"Q4_K", QK_K, 4 + 12 + QK_K / 2},
    [MLXR_DTYPE_Q5_K] = {"Q5_K", QK_K, 4 + 12 + QK_K / 8 + QK_K / 2},
    [MLXR_DTYPE_Q6_K] = {"Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
    [MLXR_DTYPE_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
    [MLXR_DTYPE_IQ2_XXS] = {"IQ2_XXS", QK_K, 2 + QK_K / 8 * 2},
    [MLXR_DTYPE_IQ2_XS] = {"IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32},
    [MLXR_DTYPE_IQ3_XXS] = {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8},
    [MLXR_DTYPE_IQ1_S] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16},
    [MLXR_DTYPE_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},
    [MLXR_DTYPE_IQ3_S] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4},
    [MLXR_DTYPE_IQ2_S] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16},
    [MLXR_DTYPE_IQ4_XS] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64},
    [MLXR_DTYPE_I8] = {"I8", 1, 1},
    [MLXR_DTYPE_I16] = {"I16", 1, 2},
    [MLXR_DTYPE_I32] = {"I32", 1, 4},
    [MLXR_DTYPE_I64] = {"I64", 1, 8},
    [MLXR_DTYPE_F64] = {"F64", 1, 8},
    [MLXR_DTYPE_IQ1_M] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    [MLXR_DTYPE_BF16] = {"BF16", 1, 2},
    [MLXR_DTYPE_TQ1_0] = {"TQ1_0", QK_K, 2 + QK_K / 64 + (QK_K - 4 * QK_K / 64) / 5},
    [MLXR_DTYPE_TQ2_0] = {"TQ2_0", QK_K, 2 + QK_K / 4},
};

/* The internal types (dtype.h); MLX affine blocks are {f16|bf16 scale, bias; group*bits/8 bytes
 * of codes} per group (kernels/mlx_affine.h). */
#define MLX_T(bits, gs, sfx) {"MLX_Q" #bits "_G" #gs sfx, gs, 4 + gs * bits / 8}
static const mlxr_dtype_traits INTERNAL[MLXR_DTYPE_TABLE_SIZE - MLXR_DTYPE_INTERNAL_FIRST] = {
    [0] = {"MLX_A8", 32, 4 + 4 + 32},
    [1] = MLX_T(4, 32, ""),      [2] = MLX_T(4, 32, "_BF16"),
    [3] = MLX_T(4, 64, ""),      [4] = MLX_T(4, 64, "_BF16"),
    [5] = MLX_T(4, 128, ""),     [6] = MLX_T(4, 128, "_BF16"),
    [7] = MLX_T(8, 32, ""),      [8] = MLX_T(8, 32, "_BF16"),
    [9] = MLX_T(8, 64, ""),      [10] = MLX_T(8, 64, "_BF16"),
    [11] = MLX_T(8, 128, ""),    [12] = MLX_T(8, 128, "_BF16"),
};
#undef MLX_T

const mlxr_dtype_traits *mlxr_dtype_get(int64_t t) {
    if (t < 0 || t >= MLXR_DTYPE_COUNT || TRAITS[t].name == NULL) return NULL;
    return &TRAITS[t];
}

bool mlxr_dtype_is_internal(int64_t t) {
    return t >= MLXR_DTYPE_INTERNAL_FIRST && t < MLXR_DTYPE_TABLE_SIZE &&
           INTERNAL[t - MLXR_DTYPE_INTERNAL_FIRST].name != NULL;
}

const mlxr_dtype_traits *mlxr_dtype_traits_of(int64_t t) {
    if (mlxr_dtype_is_internal(t)) return &INTERNAL[t - MLXR_DTYPE_INTERNAL_FIRST];
    return mlxr_dtype_get(t);
}

const char *mlxr_dtype_name(mlxr_dtype t) {
    const mlxr_dtype_traits *tr = mlxr_dtype_traits_of(t);
    return tr ? tr->name : NULL;
}

size_t mlxr_dtype_row_size(mlxr_dtype t, int64_t n) {
    const mlxr_dtype_traits *tr = mlxr_dtype_traits_of(t);
    if (!tr || n < 0 || n % tr->blck_size != 0) return 0;
    return (size_t)(n / tr->blck_size) * (size_t)tr->type_size;
}
