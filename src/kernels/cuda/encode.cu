/*
 * encode.cu - activation encoding before a matrix product (mlxr_encode_cuda, see matvec.h).
 *
 * Q8_0 kinds: one warp per 32-value block, the reference's quantizer (common.cuh put_block32).
 * Q8_K kinds: one warp per 256-value super-block, lane j holding values j, j + 32, ..., j + 224:
 * mlxr_quantize_q8_k_ref's arithmetic, step by step: the signed value of largest magnitude (the
 * first on ties: the lowest index wins the warp reduction), iscale = -127 / max, q = min(127,
 * round-half-even(iscale * x)), d = 1 / iscale, all IEEE f32 operations without contraction.
 * The F16_* kinds store f16(d * q) instead of q and d: the values the integer path multiplies,
 * for the tensor-core GEMM.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/matvec.h"

#define QK 32
#define QKK 256

/* One warp per 32-value block; F16_OUT: f16(d * q) into xq as f16. */
template <bool F16_OUT>
__global__ void encode_q8_0_kernel(const float *__restrict__ x, int64_t n_blocks,
                                   void *__restrict__ xq, float *__restrict__ xd) {
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

template <bool F16_OUT>
__global__ void encode_q8_k_kernel(const float *__restrict__ x, int64_t n_blocks,
                                   void *__restrict__ xq, float *__restrict__ xd) {
    const int lane = threadIdx.x & 31;
    const int64_t b = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5);
    if (b >= n_blocks) return;
    const float *v = x + b * QKK;
    float vals[8];
    float amax = 0.0f, mx = 0.0f;
    int idx = QKK;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        vals[i] = v[lane + 32 * i];
        if (fabsf(vals[i]) > amax) { /* ascending index within the lane: strict keeps the first */
            amax = fabsf(vals[i]);
            mx = vals[i];
            idx = lane + 32 * i;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float a2 = __shfl_xor_sync(0xffffffffu, amax, o),
                    m2 = __shfl_xor_sync(0xffffffffu, mx, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (a2 > amax || (a2 == amax && i2 < idx)) {
            amax = a2;
            mx = m2;
            idx = i2;
        }
    }
    if (amax == 0.0f) { /* an all-zero block: d = 0, q = 0 */
#pragma unroll
        for (int i = 0; i < 8; i++) {
            if (F16_OUT)
                ((__half *)xq)[b * QKK + lane + 32 * i] = __float2half_rn(0.0f);
            else
                ((int8_t *)xq)[b * QKK + lane + 32 * i] = 0;
        }
        if (!F16_OUT && lane == 0) xd[b] = 0.0f;
        return;
    }
    const float iscale = __fdiv_rn(-127.0f, mx);
    const float d = __fdiv_rn(1.0f, iscale);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        int q = __float2int_rn(__fmul_rn(iscale, vals[i]));
        q = q < 127 ? (q > -128 ? q : -128) : 127;
        if (F16_OUT)
            ((__half *)xq)[b * QKK + lane + 32 * i] = __float2half_rn(__fmul_rn(d, (float)q));
        else
            ((int8_t *)xq)[b * QKK + lane + 32 * i] = (int8_t)q;
    }
    if (!F16_OUT && lane == 0) xd[b] = d;
}

__global__ void to_f16_kernel(const float *__restrict__ x, int64_t n, __half *__restrict__ y) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __float2half_rn(x[i]);
}

extern "C" cudaError_t mlxr_encode_cuda(mlxr_cuda_enc e, const float *x, int64_t n, int32_t T,
                                        void *xq, float *xd, cudaStream_t st) {
    if (T <= 0 || n <= 0) return cudaSuccess;
    const int64_t total = n * T;
    switch (e) {
    case MLXR_CUDA_ENC_F32:
        return cudaSuccess;
    case MLXR_CUDA_ENC_F16: {
        int64_t blocks = (total + 255) / 256;
        if (blocks > 65535) blocks = 65535;
        to_f16_kernel<<<(unsigned)blocks, 256, 0, st>>>(x, total, (__half *)xq);
        break;
    }
    case MLXR_CUDA_ENC_Q8_0:
    case MLXR_CUDA_ENC_F16_Q8_0: {
        if (n % QK) return cudaErrorInvalidValue;
        const int64_t nb = total / QK;
        if (e == MLXR_CUDA_ENC_Q8_0)
            encode_q8_0_kernel<false><<<(unsigned)((nb + 7) / 8), 256, 0, st>>>(x, nb, xq, xd);
        else
            encode_q8_0_kernel<true><<<(unsigned)((nb + 7) / 8), 256, 0, st>>>(x, nb, xq, xd);
        break;
    }
    case MLXR_CUDA_ENC_Q8_K:
    case MLXR_CUDA_ENC_F16_Q8_K: {
        if (n % QKK) return cudaErrorInvalidValue;
        const int64_t nb = total / QKK;
        if (e == MLXR_CUDA_ENC_Q8_K)
            encode_q8_k_kernel<false><<<(unsigned)((nb + 3) / 4), 128, 0, st>>>(x, nb, xq, xd);
        else
            encode_q8_k_kernel<true><<<(unsigned)((nb + 3) / 4), 128, 0, st>>>(x, nb, xq, xd);
        break;
    }
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
