/*
 * rope.h - RoPE on the device, "normal" mode (adjacent pairs), as mlxr_rope_f32_ref.
 */
#ifndef MLXR_KERNELS_CUDA_ROPE_H
#define MLXR_KERNELS_CUDA_ROPE_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "kernels/cuda/attention.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * For each of T tokens t (position pos[t], device array): rotate the first n_rot dimensions of
 * each head of q[t] ([n_head][head_dim], row stride q_stride floats) and of k[t] ([n_head_kv]
 * [head_dim], stride k_stride; k may be NULL). theta_scale = powf(freq_base, -2/n_rot), computed
 * by the caller on the host so the angles equal the reference's: theta_i is built by i repeated
 * float multiplications, as the reference does.
 */
cudaError_t mlxr_rope_f32_cuda(float *q, int64_t q_stride, int32_t n_head, float *k,
                               int64_t k_stride, int32_t n_head_kv, int32_t head_dim, int32_t n_rot,
                               const int32_t *pos, int32_t T, float theta_scale, cudaStream_t st);

/*
 * RoPE and KV store fused for one layer of a batch: q rotated in place as above; k rotated and
 * written as f16 into the cache at (seq[t], pos[t]) together with v (k itself is left as it was).
 * q, k, v rows are ld floats apart (they may be the three parts of one Q|K|V product row). Equal
 * to mlxr_rope_f32_cuda followed by mlxr_kv_store_cuda, in one launch.
 */
cudaError_t mlxr_rope_kv_store_cuda(float *q, const float *k, const float *v, int64_t ld, int32_t n_head,
                                    int32_t n_head_kv, int32_t head_dim, int32_t n_rot, const int32_t *pos,
                                    const int32_t *seq, int32_t T, float theta_scale, const mlxr_cuda_kv *kv,
                                    const mlxr_cuda_rms *rms, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
