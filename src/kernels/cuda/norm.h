/*
 * norm.h - fused residual add + RMSNorm on the device (reference: mlxr_rmsnorm_f32_ref and
 * mlxr_add_f32_ref in kernels/ops.h), writing its rows as f32 or already encoded for the next
 * matrix product.
 */
#ifndef MLXR_KERNELS_CUDA_NORM_H
#define MLXR_KERNELS_CUDA_NORM_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "kernels/cuda/matvec.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * For r < R output rows, with s = rows ? rows[r] : r (rows: device array, NULL = identity):
 *   if dx: x[s] += dx[s]            (residual add, written back to x)
 *   out row r = x[s] / sqrt(mean(x[s]^2) + eps) * w      (f32, or encoded: see mlxr_cuda_out)
 * x, dx: [*][n] f32; w: [n] f32; out must not alias x. Output types F32, F16 and Q8_0 (n % 32 == 0);
 * any other is refused (cudaErrorInvalidValue). Sum of squares in double, as the reference. One
 * block per row. Returns the launch error (cudaSuccess on success).
 */
cudaError_t mlxr_add_rmsnorm_cuda(float *x, const float *dx, const float *w, const mlxr_cuda_out *out,
                                  const int32_t *rows, int32_t R, int64_t n, float eps, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
