/*
 * mlx.cuh - the MLX affine weight types on the device (CUDA only): their parameters, and the
 * decoding of a group's scale/bias word, shared by the products (matvec.cu), the prefill GEMM
 * (gemm.cu) and the embedding lookup (embed.cu).
 *
 * Host layout (kernels/mlx_affine.h): per group of gs weights a block { u16 scale; u16 bias;
 * u8 qs[gs * bits / 8] }, scale and bias in f16 (bf16 for the _BF16 types). On the device the
 * upload splits it like the GGUF blocks (matvec.h): q = the code bytes [ne1][ne0 * bits / 8]
 * (each row 16-byte aligned: ne0 is a multiple of 32), d = the 4 header bytes [ne1][ne0 / gs],
 * read as one little-endian u32 per group: scale in the low half, bias in the high half.
 * Codes per 32-weight piece p of a group (16 * bits / 4 bytes from 4 * bits * p):
 *   4 bits: byte j (< 16) = q[32p + j] | q[32p + 16 + j] << 4   (Q4_0's nibble order)
 *   8 bits: byte j = q[32p + j]
 * x = scale * q + bias, computed as one f32 product then one f32 sum (the reference's
 * operations, so the embedding lookup is bit-exact).
 */
#ifndef MLXR_KERNELS_CUDA_MLX_CUH
#define MLXR_KERNELS_CUDA_MLX_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#include "mlxr.h"

extern "C" {
#include "format/dtype.h"
}

/* The parameters of an MLX weight type (numbering of format/dtype.h:
 * MLX_FIRST + 2 * (3 * (bits == 8) + log2(group / 32)) + bf16). */
struct mlx_par {
    int bits, gs, lg; /* code bits, group size, log2(group size) */
    bool bf16;
};

/* Parameters of t; false when t is no MLX weight type (or its traits disagree with the
 * numbering: then the device refuses the type rather than misread it). */
static inline bool mlx_par_of(mlxr_dtype t, mlx_par *p) {
    const int i = (int)t - MLXR_DTYPE_MLX_FIRST;
    if (i < 0 || i >= MLXR_DTYPE_MLX_COUNT) return false;
    p->bits = i / 6 ? 8 : 4;
    p->lg = 5 + i / 2 % 3;
    p->gs = 1 << p->lg;
    p->bf16 = i % 2 != 0;
    const mlxr_dtype_traits *tr = mlxr_dtype_traits_of((int64_t)t);
    return tr && tr->blck_size == p->gs && tr->type_size == 4 + p->gs * p->bits / 8;
}

static inline bool mlx_is_type(mlxr_dtype t) {
    mlx_par p;
    return mlx_par_of(t, &p);
}

/* The kernels' packed form: log2(gs) | bf16 << 8. */
static inline int mlx_aux(const mlx_par &p) {
    return p.lg | (p.bf16 ? 1 << 8 : 0);
}

__device__ __forceinline__ float mlx_half(unsigned h, bool bf16) {
    return bf16 ? __uint_as_float(h << 16) : __half2float(__ushort_as_half((unsigned short)h));
}

/* Scale and bias of a group from its header word. */
__device__ __forceinline__ void mlx_sb(unsigned hw, bool bf16, float &s, float &b) {
    s = mlx_half(hw & 0xFFFFu, bf16);
    b = mlx_half(hw >> 16, bf16);
}

/* scale * q + bias with the reference's two roundings (no fused multiply-add). */
__device__ __forceinline__ float mlx_val(float s, float b, int q) {
    return __fadd_rn(__fmul_rn(s, (float)q), b);
}

/* Code i (< gs) of a group whose code bytes start at qs. */
__device__ __forceinline__ int mlx_code(const uint8_t *qs, int bits, int i) {
    if (bits == 8) return qs[i];
    const uint8_t byte = qs[16 * (i / 32) + i % 16];
    return i % 32 < 16 ? byte & 0x0F : byte >> 4;
}

#endif
