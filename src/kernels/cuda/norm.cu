/*
 * norm.cu - fused residual add + RMSNorm (see norm.h).
 *
 * One block of up to 1024 threads per row; warp w owns the 32-element blocks w, w + nw, ... of
 * the row. The first pass loads (and adds) them into registers and sums the squares; the second
 * scales them and stores or encodes each block with one warp-wide step. Holding the row in
 * registers keeps a decode step's single row from being latency-bound on serial reloads (rows
 * longer than 32 * NB_REG * warps fall back to reloading from L1/L2).
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/norm.h"

#define NB_REG 8

__global__ void __launch_bounds__(1024)
    add_rmsnorm_kernel(float *__restrict__ x, const float *__restrict__ dx, const float *__restrict__ w,
                       const mlxr_cuda_out out, const int32_t *__restrict__ rows, int64_t n, float eps) {
    __shared__ double sh[32];
    pdl_launch_dependents();
    pdl_wait();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int r = blockIdx.x;
    const int64_t s = rows ? rows[r] : r;
    float *xr = x + s * n;
    const float *dr = dx ? dx + s * n : NULL;
    const int64_t nb = (n + 31) / 32;
    float xv[NB_REG], wv[NB_REG];
    double sum = 0.0;
#pragma unroll
    for (int k = 0; k < NB_REG; k++) {
        const int64_t i = (warp + (int64_t)k * nw) * 32 + lane;
        float v = 0.0f, g = 0.0f;
        if (i < n) {
            v = xr[i];
            g = w[i];
            if (dr) {
                v += dr[i];
                xr[i] = v;
            }
        }
        xv[k] = v;
        wv[k] = g;
        sum += (double)(v * v);
    }
    for (int64_t b = (int64_t)NB_REG * nw + warp; b < nb; b += nw) {
        const int64_t i = b * 32 + lane;
        if (i >= n) continue;
        float v = xr[i];
        if (dr) {
            v += dr[i];
            xr[i] = v;
        }
        sum += (double)(v * v);
    }
    sum = block_sum_d(sum, sh); /* its barriers also make the x writes visible to the block */
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
#pragma unroll
    for (int k = 0; k < NB_REG; k++) {
        const int64_t b = warp + (int64_t)k * nw, i = b * 32 + lane;
        if (b < nb) put_block32(out, n, r, b, lane, (xv[k] * scale) * wv[k], i < n);
    }
    for (int64_t b = (int64_t)NB_REG * nw + warp; b < nb; b += nw) {
        const int64_t i = b * 32 + lane;
        const bool valid = i < n;
        put_block32(out, n, r, b, lane, valid ? (xr[i] * scale) * w[i] : 0.0f, valid);
    }
}

extern "C" cudaError_t mlxr_add_rmsnorm_cuda(float *x, const float *dx, const float *w, const mlxr_cuda_out *out,
                                             const int32_t *rows, int32_t R, int64_t n, float eps,
                                             cudaStream_t st) {
    if (R <= 0) return cudaSuccess;
    if (!put_block32_ok(*out, n)) return cudaErrorInvalidValue;
    const int64_t nb = (n + 31) / 32;
    const int threads = nb >= 32 ? 1024 : (int)nb * 32;
    return mlxr_launch_pdl(add_rmsnorm_kernel, dim3((unsigned)R), dim3((unsigned)threads), 0, st, x, dx, w, *out, rows,
                           n, eps);
}
