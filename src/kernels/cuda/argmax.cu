/*
 * argmax.cu - see argmax.h. One 1024-thread block per row; (value, index) pairs reduced with
 * "larger value, then smaller index" so the first maximum wins as on the host.
 */
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/common.cuh"

__device__ __forceinline__ void better(float &v, int64_t &i, float v2, int64_t i2) {
    if (v2 > v || (v2 == v && i2 < i) || (v != v && v2 == v2)) {
        v = v2;
        i = i2;
    }
}

__global__ void argmax_kernel(const float *__restrict__ x, int64_t n, int32_t *__restrict__ out) {
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    pdl_launch_dependents();
    pdl_wait();
    const float *row = x + blockIdx.x * n;
    float v = NAN;
    int64_t idx = n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) better(v, idx, row[i], i);
    for (int o = 16; o > 0; o >>= 1)
        better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sv[warp] = v;
        si[warp] = idx;
    }
    __syncthreads();
    if (warp == 0) {
        const int nw = blockDim.x >> 5;
        v = lane < nw ? sv[lane] : NAN;
        idx = lane < nw ? si[lane] : n;
        for (int o = 16; o > 0; o >>= 1)
            better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
        if (lane == 0) out[blockIdx.x] = idx < n && v == v ? (int32_t)idx : 0;
    }
}

extern "C" cudaError_t mlxr_argmax_f32_cuda(const float *x, int32_t R, int64_t n, int32_t *out,
                                            cudaStream_t st) {
    if (R <= 0) return cudaSuccess;
    return mlxr_launch_pdl(argmax_kernel, dim3((unsigned)R), dim3(1024), 0, st, x, n, out);
}
