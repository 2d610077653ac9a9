/*
 * encode.cu - activation encoding before a matrix product (mlxr_encode_cuda, see matvec.h).
 *
 * Q8_0 kinds: one warp per 32-value block, the reference's quantizer (common.cuh put_block32).
 * F16_Q8_0 stores f16(d * q) instead of q and d: the values the integer path multiplies,
 * for the tensor-core GEMM.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/matvec.h"

#define QK 32

/* One warp per 32-value block; F16_OUT: f16(d * q) into xq as f16. */
template <bool F16_OUT>
__global__ void encode_q8_0_kernel(const float *__restrict__ x, int64_t n_blocks,
                                   void *__restrict__ xq, float *__restrict__ xd) {
    pdl_launch_dependents();
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t b = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5);
    if (b >= n_blocks) return;
    const float v = x[b * QK + lane];
    if (!F16_OUT) {
        const mlxr_cuda_out o = {MLXR_DTYPE_Q8_0, NULL, xq, xd};
        put_block32(o, 32, b, 0, lane, v, true);
        return;
    }
    const float amax = warp_max(fabsf(v));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const float d = __half2float(__float2half_rn(amax / 127.0f));
    const int8_t q = round_sat_i8(v * id);
    ((__half *)xq)[b * QK + lane] = __float2half_rn(__fmul_rn(d, (float)q));
}

__global__ void to_f16_kernel(const float *__restrict__ x, int64_t n, __half *__restrict__ y) {
    pdl_launch_dependents();
    pdl_wait();
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __float2half_rn(x[i]);
}

extern "C" cudaError_t mlxr_encode_cuda(mlxr_cuda_enc e, const float *x, int64_t n, int32_t T,
                                        void *xq, float *xd, cudaStream_t st) {
    if (T <= 0 || n <= 0) return cudaSuccess;
    const int64_t total = n * T;
    switch (e) {
    case MLXR_CUDA_ENC_F32: return cudaSuccess;
    case MLXR_CUDA_ENC_F16: {
        int64_t blocks = (total + 255) / 256;
        if (blocks > 65535) blocks = 65535;
        return mlxr_launch_pdl(to_f16_kernel, dim3((unsigned)blocks), dim3(256), 0, st, x, total, (__half *)xq);
    }
    case MLXR_CUDA_ENC_Q8_0:
    case MLXR_CUDA_ENC_F16_Q8_0: {
        if (n % QK) return cudaErrorInvalidValue;
        const int64_t nb = total / QK;
        const dim3 grid((unsigned)((nb + 7) / 8));
        if (e == MLXR_CUDA_ENC_Q8_0)
            return mlxr_launch_pdl(encode_q8_0_kernel<false>, grid, dim3(256), 0, st, x, nb, xq, xd);
        return mlxr_launch_pdl(encode_q8_0_kernel<true>, grid, dim3(256), 0, st, x, nb, xq, xd);
    }
    default: return cudaErrorInvalidValue;
    }
}
