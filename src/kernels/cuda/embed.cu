/*
 * embed.cu - embedding lookup: dequantize the rows of the token ids (see matvec.h for the
 * device layout). One block per token.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kquants.cuh"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/mlx.cuh"

/* Value i of row `row` of a K-quant matrix (device layout), as the reference dequantizes it. */
static __device__ float kq_value(mlxr_dtype type, const uint8_t *q, const uint8_t *m, int64_t ne0, int64_t row, int64_t i) {
    const int64_t nb = ne0 / MLXR_CUDA_QK_K, b = row * nb + i / MLXR_CUDA_QK_K;
    const int j = (int)(i % MLXR_CUDA_QK_K);
    if (type == MLXR_DTYPE_Q6_K) {
        const uint8_t *hd = m + b * kq_mbytes(MLXR_DTYPE_Q6_K);
        const float d = __half2float(__ushort_as_half(*reinterpret_cast<const unsigned short *>(hd + 16)));
        return kq_val6(d, (int8_t)hd[j / 16], kq_q6(q + b * kq_qbytes(MLXR_DTYPE_Q6_K), j));
    }
    const kq_head h = kq_head_of(*reinterpret_cast<const uint4 *>(m + b * 16));
    int sc, mn;
    kq_scale_min(h.s0, h.s1, h.s2, j / 32, sc, mn);
    const uint8_t *blk = q + b * kq_qbytes(type);
    const uint8_t *qs = blk + (type == MLXR_DTYPE_Q5_K ? 32 : 0);
    int v = (qs[32 * (j / 64) + j % 32] >> ((j % 64) >= 32 ? 4 : 0)) & 0x0F;
    if (type == MLXR_DTYPE_Q5_K) v |= ((blk[j % 32] >> (j / 32)) & 1) << 4;
    return kq_val45(__fmul_rn(h.d, (float)sc), __fmul_rn(h.dmin, (float)mn), v);
}

/* mlx: bits << 16 | mlx_aux for an MLX affine type, else 0. */
__global__ void embed_kernel(mlxr_dtype type, const void *__restrict__ q, const __half *__restrict__ d,
                             int64_t ne0, const int32_t *__restrict__ tok, float *__restrict__ x, int mlx) {
    pdl_launch_dependents(); /* the RMSNorm after it may start launching (it waits for this) */
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
        } else if (type == MLXR_DTYPE_Q4_K || type == MLXR_DTYPE_Q5_K || type == MLXR_DTYPE_Q6_K) {
            v = kq_value(type, (const uint8_t *)q, (const uint8_t *)d, ne0, row, i);
        } else if (mlx) {
            const int bits = mlx >> 16, lg = mlx & 0xFF;
            const int64_t g = (row * ne0 + i) >> lg; /* the row's groups are consecutive */
            float s, b;
            mlx_sb(reinterpret_cast<const unsigned *>(d)[g], (mlx >> 8) & 1, s, b);
            const uint8_t *qs = (const uint8_t *)q + (g << lg) / 8 * bits;
            v = mlx_val(s, b, mlx_code(qs, bits, (int)(i & ((1 << lg) - 1))));
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
    mlx_par p;
    const int mlx = mlx_par_of(w->type, &p) ? p.bits << 16 | mlx_aux(p) : 0;
    embed_kernel<<<T, 256, 0, st>>>(w->type, w->q, (const __half *)w->d, w->ne0, tok, x, mlx);
    return cudaGetLastError();
}
