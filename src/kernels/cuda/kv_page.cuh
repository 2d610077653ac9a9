/*
 * kv_page.cuh - where a sequence's position lives in the paged device KV pool (attention.h).
 */
#ifndef MLXR_KERNELS_CUDA_KV_PAGE_CUH
#define MLXR_KERNELS_CUDA_KV_PAGE_CUH

#include <stdint.h>

#include "kernels/cuda/attention.h"

/* Element offset of row (s, p) in one layer's K or V: pool row times kv_dim. */
__device__ __forceinline__ int64_t kv_off(const int32_t *__restrict__ table, int32_t max_blocks,
                                          int32_t kv_dim, int32_t s, int32_t p) {
    const int64_t row = (int64_t)__ldg(table + (int64_t)s * max_blocks + p / MLXR_CUDA_KV_BLOCK) * MLXR_CUDA_KV_BLOCK +
                        p % MLXR_CUDA_KV_BLOCK;
    return row * kv_dim;
}

#endif
