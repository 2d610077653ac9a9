/*
 * rope.cu - RoPE (see rope.h). A thread per (token, head, pair) of Q and K, so that a single
 * token's rotation is spread over the device instead of looping in one block.
 */
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kv_page.cuh"
#include "kernels/cuda/rope.h"

__global__ void rope_kernel(float *__restrict__ q, int64_t q_stride, int32_t n_head,
                            float *__restrict__ k, int64_t k_stride, int32_t n_head_kv,
                            int32_t head_dim, int32_t n_rot, const int32_t *__restrict__ pos,
                            float theta_scale) {
    const int t = blockIdx.y;
    const int half = n_rot / 2;
    const int n_pairs = (n_head + (k ? n_head_kv : 0)) * half;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_pairs) return;
    const int h = j / half, i = j % half;
    /* theta_i = pos * theta_scale^i by repeated multiplication, as the reference */
    float theta = (float)pos[t];
    for (int m = 0; m < i; m++) theta *= theta_scale;
    const float c = cosf(theta), s = sinf(theta);
    float *v = h < n_head ? q + t * q_stride + (int64_t)h * head_dim
                          : k + t * k_stride + (int64_t)(h - n_head) * head_dim;
    const float x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = x0 * c - x1 * s;
    v[2 * i + 1] = x0 * s + x1 * c;
}

extern "C" cudaError_t mlxr_rope_f32_cuda(float *q, int64_t q_stride, int32_t n_head, float *k,
                                          int64_t k_stride, int32_t n_head_kv, int32_t head_dim,
                                          int32_t n_rot, const int32_t *pos, int32_t T,
                                          float theta_scale, cudaStream_t st) {
    if (T <= 0 || n_rot <= 0) return cudaSuccess;
    if (T > 65535) return cudaErrorInvalidValue;
    const int n_pairs = (n_head + (k ? n_head_kv : 0)) * (n_rot / 2);
    const dim3 grid((unsigned)((n_pairs + 127) / 128), (unsigned)T);
    rope_kernel<<<grid, 128, 0, st>>>(q, q_stride, n_head, k, k_stride, n_head_kv, head_dim, n_rot, pos,
                                      theta_scale);
    return cudaGetLastError();
}

/* Thread j < n_head * n_rot/2: a pair of q (every pair of q's heads with a deferred norm scale,
 * which applies to all of q). Then a pair (d, d + 1) of every K/V head dimension: rotated if
 * d < n_rot, stored to both caches. */
__global__ void rope_kv_kernel(float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,
                               int64_t ld, int32_t n_head, int32_t n_head_kv, int32_t head_dim, int32_t n_rot,
                               const int32_t *__restrict__ pos, const int32_t *__restrict__ seq, float theta_scale,
                               __half *__restrict__ kc, __half *__restrict__ vc, const int32_t *__restrict__ table,
                               int32_t max_blocks, int32_t kv_dim, const mlxr_cuda_rms rms) {
    pdl_launch_dependents();
    pdl_wait(); /* q, k, v come from the product before */
    const int t = blockIdx.y;
    const int half = n_rot / 2, hd2 = head_dim / 2;
    const int qp = rms.ss ? hd2 : half; /* q pairs per head: the unrotated ones too when scaling */
    const int nq = n_head * qp, nkv = n_head_kv * hd2;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const bool live = j < nq + nkv; /* the warp stays whole for the scale's shuffles */
    int i = 0; /* pair index inside the head */
    float *qv = NULL;
    int64_t kofs = 0;
    float x0 = 0.0f, x1 = 0.0f, v0 = 0.0f, v1 = 0.0f;
    if (live) { /* loads first: they overlap the scale's sums */
        if (j < nq) {
            i = j % qp;
            qv = q + t * ld + (int64_t)(j / qp) * head_dim;
            x0 = qv[2 * i];
            x1 = qv[2 * i + 1];
        } else {
            const int h = (j - nq) / hd2;
            i = (j - nq) % hd2;
            kofs = (int64_t)h * head_dim;
            const float *kr = k + t * ld + kofs, *vr = v + t * ld + kofs;
            x0 = kr[2 * i];
            x1 = kr[2 * i + 1];
            v0 = vr[2 * i];
            v1 = vr[2 * i + 1];
        }
    }
    if (rms.ss) {
        const float sc = rms_scale_warp(&rms, threadIdx.x & 31);
        x0 *= sc, x1 *= sc, v0 *= sc, v1 *= sc;
    }
    if (!live) return;
    float c = 1.0f, s = 0.0f;
    if (i < half) {
        float theta = (float)pos[t];
        for (int m = 0; m < i; m++) theta *= theta_scale;
        c = cosf(theta);
        s = sinf(theta);
    }
    if (i < half) {
        const float r0 = x0 * c - x1 * s, r1 = x0 * s + x1 * c;
        x0 = r0;
        x1 = r1;
    }
    if (qv) {
        qv[2 * i] = x0;
        qv[2 * i + 1] = x1;
        return;
    }
    const int64_t off = kv_off(table, max_blocks, kv_dim, seq[t], pos[t]) + kofs + 2 * i;
    kc[off] = __float2half_rn(x0);
    kc[off + 1] = __float2half_rn(x1);
    vc[off] = __float2half_rn(v0);
    vc[off + 1] = __float2half_rn(v1);
}

extern "C" cudaError_t mlxr_rope_kv_store_cuda(float *q, const float *k, const float *v, int64_t ld, int32_t n_head,
                                               int32_t n_head_kv, int32_t head_dim, int32_t n_rot, const int32_t *pos,
                                               const int32_t *seq, int32_t T, float theta_scale,
                                               const mlxr_cuda_kv *kv, const mlxr_cuda_rms *rms, cudaStream_t st) {
    if (T <= 0) return cudaSuccess;
    if (T > 65535 || head_dim % 2 || n_rot % 2 || n_rot > head_dim) return cudaErrorInvalidValue;
    const mlxr_cuda_rms r = rms ? *rms : mlxr_cuda_rms{NULL, 0, 0.0f};
    if (r.ss && (T != 1 || r.n <= 0 || r.n % 32)) return cudaErrorInvalidValue;
    const int n = n_head * ((r.ss ? head_dim : n_rot) / 2) + n_head_kv * (head_dim / 2);
    const dim3 grid((unsigned)((n + 127) / 128), (unsigned)T);
    return mlxr_launch_pdl(rope_kv_kernel, grid, dim3(128), 0, st, q, k, v, ld, n_head, n_head_kv, head_dim, n_rot,
                           pos, seq, theta_scale, (__half *)kv->k, (__half *)kv->v, (const int32_t *)kv->table,
                           kv->max_blocks, kv->kv_dim, r);
}
