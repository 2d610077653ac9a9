/*
 * embed.cu - embedding lookup: dequantize the rows of the token ids (see matvec.h for the
 * device layout). One block per token.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/matvec.h"

__global__ void embed_kernel(mlxr_dtype type, const void *__restrict__ q, const __half *__restrict__ d,
                             int64_t ne0, const int32_t *__restrict__ tok, float *__restrict__ x) {
    const int64_t row = tok[blockIdx.x];
    float *out = x + blockIdx.x * ne0;
    const int64_t nb = ne0 / 32;
    for (int64_t i = threadIdx.x; i < ne0; i += blockDim.x) {
        float v;
        if (type == MLXR_DTYPE_Q8_0) {
            v = (float)((const int8_t *)q)[row * ne0 + i] * __half2float(d[row * nb + i / 32]);
        } else if (type == MLXR_DTYPE_Q4_0) {
            const int64_t b = i / 32, j = i % 32;
            const uint8_t byte = ((const uint8_t *)q)[row * (ne0 / 2) + b * 16 + (j & 15)];
            const int nib = j < 16 ? (byte & 0x0F) : (byte >> 4);
            v = (float)(nib - 8) * __half2float(d[row * nb + b]);
        } else if (type == MLXR_DTYPE_F16) {
            v = __half2float(((const __half *)q)[row * ne0 + i]);
        } else {
            v = ((const float *)q)[row * ne0 + i];
        }
        out[i] = v;
    }
}

extern "C" cudaError_t mlxr_embed_cuda(const mlxr_cuda_mat *w, const int32_t *tok, int32_t T, float *x,
                                       cudaStream_t st) {
    if (T <= 0) return cudaSuccess;
    embed_kernel<<<T, 256, 0, st>>>(w->type, w->q, (const __half *)w->d, w->ne0, tok, x);
    return cudaGetLastError();
}
