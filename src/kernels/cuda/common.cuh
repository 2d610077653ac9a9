/*
 * common.cuh - device helpers shared by the kernels (CUDA only, not for C callers): warp and
 * block reductions, and the launch shape conventions.
 *
 * No kernel here uses fast-math intrinsics: expf/cosf/sinf/sqrtf and divisions are the IEEE-
 * accurate versions, so results stay close to the scalar references in src/kernels/ref/.
 */
#ifndef MLXR_KERNELS_CUDA_COMMON_CUH
#define MLXR_KERNELS_CUDA_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/matvec.h"

#define MLXR_WARP 32

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
 * `sh` is shared scratch of 32 doubles. */
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double t = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(t);
}

__device__ __forceinline__ float block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(t);
}

/* The reference's round_sat_i8: round half to even, saturate; out-of-range and NaN give -128. */
__device__ __forceinline__ int8_t round_sat_i8(float v) {
    if (!(v > -2147483648.0f && v < 2147483648.0f)) return -128;
    const float r = rintf(v);
    if (r > 127.0f) return 127;
    if (r < -128.0f) return -128;
    return (int8_t)r;
}

/*
 * The whole warp holds block b (elements 32b..32b+31) of row t of an n-wide result, lane j the
 * element 32b + j (valid: j inside the row; invalid lanes hold 0). Store it as `o` says; Q8_0
 * quantization is the reference's (mlxr_quantize_q8_0_ref), byte for byte, and needs n % 32 == 0.
 */
__device__ __forceinline__ void put_block32(const mlxr_cuda_out &o, int64_t n, int64_t t, int64_t b,
                                            int lane, float v, bool valid) {
    const int64_t i = t * n + b * 32 + lane;
    if (o.type == MLXR_DTYPE_Q8_0) {
        const float amax = warp_max(fabsf(v));
        const float dv = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        ((int8_t *)o.q)[i] = round_sat_i8(v * id);
        if (lane == 0) o.d[t * (n / 32) + b] = __half2float(__float2half_rn(dv));
    } else if (valid) {
        if (o.type == MLXR_DTYPE_F16)
            ((__half *)o.q)[i] = __float2half_rn(v);
        else
            o.y[i] = v;
    }
}

#endif
