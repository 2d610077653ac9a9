/*
 * act.h - element-wise and row ops on the device: SwiGLU and softmax (references:
 * mlxr_swiglu_f32_ref, mlxr_softmax_f32_ref in kernels/ops.h).
 */
#ifndef MLXR_KERNELS_CUDA_ACT_H
#define MLXR_KERNELS_CUDA_ACT_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "kernels/cuda/matvec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For T rows t and i < n: out[t][i] = silu(g[t * ld + i]) * u[t * ld + i], stored as f32 or
 * encoded for the next product (see mlxr_cuda_out: F32, F16 or Q8_0 with n % 32 == 0, else
 * cudaErrorInvalidValue; out rows are n wide). g and u may be the two halves of one [T][2n]
 * gate|up product (ld = 2n, u = g + n). With rms (T = 1, decode with the norms fused: matvec.h),
 * g and u are first multiplied by its scale. */
cudaError_t mlxr_swiglu_cuda(const float *g, const float *u, int64_t ld, int64_t n, int32_t T,
                             const mlxr_cuda_out *out, const mlxr_cuda_rms *rms, cudaStream_t st);

/* In place, each of R rows of n floats (row stride n): x = softmax(x * scale); the sum of the
 * exponentials in double, as the reference. */
cudaError_t mlxr_softmax_f32_cuda(float *x, int32_t R, int64_t n, float scale, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
