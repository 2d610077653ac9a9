/*
 * gemm.h - the prefill matrix product on tensor cores: y = W . X for batches of activation rows,
 * W in its device layout (matvec.h: F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, MLX affine), X as f16 rows (the
 * F16 / F16_Q8_0 encodings of mlxr_encode_cuda). Called by mlxr_matmul_cuda for
 * batches of more than 8 rows; a kernel-level entry of its own for the tests and the benchmark.
 */
#ifndef MLXR_KERNELS_CUDA_GEMM_H
#define MLXR_KERNELS_CUDA_GEMM_H

#include <cuda_runtime_api.h>

#include "kernels/cuda/matvec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when mlxr_gemm_cuda takes matrices of this type and row length (ne0 % 32 == 0 and, for
 * K-quants, % 256 == 0; for the MLX types, a multiple of the group size). */
bool mlxr_gemm_supported_cuda(mlxr_dtype type, int64_t ne0);

/* y[t][r] (row t at y + t * ldy) = row r of w . x[t] for t < T, r < w->ne1; x: device f16 [T][ne0].
 * The weight tile is dequantized to f16 (one rounding of the reference's f32 value), products on
 * tensor cores with f32 accumulation. Asynchronous on `st`; launch errors are returned. */
cudaError_t mlxr_gemm_cuda(const mlxr_cuda_mat *w, const void *x, int32_t T, float *y, int64_t ldy,
                           cudaStream_t st);

/* The same with the weight-row tile forced: bm 64 or 128 (0: chosen from the shape, as above).
 * For the tests (both tile shapes on small matrices) and the benchmark. */
cudaError_t mlxr_gemm_tile_cuda(const mlxr_cuda_mat *w, const void *x, int32_t T, float *y,
                                int64_t ldy, int bm, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
