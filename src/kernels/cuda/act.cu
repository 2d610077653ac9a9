/*
 * act.cu - SwiGLU and softmax (see act.h).
 */
#include "kernels/cuda/act.h"
#include "kernels/cuda/common.cuh"

/* One warp per 32-element block of one row. */
__global__ void swiglu_kernel(const float *__restrict__ g, const float *__restrict__ u, int64_t ld, int64_t n,
                              const mlxr_cuda_out out, const mlxr_cuda_rms rms) {
    pdl_launch_dependents();
    pdl_wait();
    const int lane = threadIdx.x & 31;
    const int64_t b = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5), t = blockIdx.y;
    if (b * 32 >= n) return; /* the whole warp */
    const int64_t i = b * 32 + lane;
    const bool valid = i < n;
    float a = 0.0f, w = 0.0f, v = 0.0f;
    if (valid) { /* loaded before the scale's sums, so the two memory round trips overlap */
        a = g[t * ld + i];
        w = u[t * ld + i];
    }
    if (rms.ss) {
        const float sc = rms_scale_warp(&rms, lane);
        a *= sc;
        w *= sc;
    }
    if (valid) v = a / (1.0f + expf(-a)) * w;
    put_block32(out, n, t, b, lane, v, valid);
}

extern "C" cudaError_t mlxr_swiglu_cuda(const float *g, const float *u, int64_t ld, int64_t n, int32_t T,
                                        const mlxr_cuda_out *out, const mlxr_cuda_rms *rms, cudaStream_t st) {
    if (n <= 0 || T <= 0) return cudaSuccess;
    const mlxr_cuda_rms r = rms ? *rms : mlxr_cuda_rms{NULL, 0, 0.0f};
    if (r.ss && (T != 1 || r.n <= 0 || r.n % 32)) return cudaErrorInvalidValue;
    if (!put_block32_ok(*out, n) || T > 65535) return cudaErrorInvalidValue;
    const int64_t nb = (n + 31) / 32;
    const dim3 grid((unsigned)((nb + 7) / 8), (unsigned)T);
    return mlxr_launch_pdl(swiglu_kernel, grid, dim3(256), 0, st, g, u, ld, n, *out, r);
}

__global__ void softmax_kernel(float *__restrict__ x, int64_t n, float scale) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    float *row = x + blockIdx.x * n;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = row[i] * scale;
        row[i] = v;
        mx = fmaxf(mx, v);
    }
    mx = block_max(mx, shf);
    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float e = expf(row[i] - mx);
        row[i] = e;
        sum += (double)e;
    }
    sum = block_sum_d(sum, shd);
    const float inv = (float)(1.0 / sum);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) row[i] *= inv;
}

extern "C" cudaError_t mlxr_softmax_f32_cuda(float *x, int32_t R, int64_t n, float scale,
                                             cudaStream_t st) {
    if (R <= 0 || n <= 0) return cudaSuccess;
    softmax_kernel<<<R, 256, 0, st>>>(x, n, scale);
    return cudaGetLastError();
}
