/*
 * argmax.h - greedy sampling on the device: the index of each row's largest value.
 */
#ifndef MLXR_KERNELS_CUDA_ARGMAX_H
#define MLXR_KERNELS_CUDA_ARGMAX_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[r] = the smallest i with x[r][i] = max over the row (n floats; NaN never wins; a row of
 * NaN gives 0), for R rows. Same choice as a host loop that keeps the first maximum. */
cudaError_t mlxr_argmax_f32_cuda(const float *x, int32_t R, int64_t n, int32_t *out,
                                 cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
