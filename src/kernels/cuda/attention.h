/*
 * attention.h - causal grouped-query attention of a batch of queries over an F16 KV cache on the
 * device, by flash-decoding.
 *
 * KV addressing (mlxr_cuda_kv): the paged pool of src/kv/kv.h, on the device. K and V of one
 * layer are each [n_block * 32][kv_dim] halves (rows, V not transposed); sequence s's position p
 * is pool row  table[s * max_blocks + p / 32] * 32 + p % 32  (kv_page.cuh), the host pool's own
 * block numbering, so prefix sharing, copy on write and eviction need no device-side bookkeeping
 * beyond copying block rows.
 *
 * Algorithm: query t (position pos[t], sequence seq[t]) attends to positions 0..pos[t]. Those are
 * cut into splits of MLXR_CUDA_ATT_SPLIT positions; block (kv head h, split s, query t) computes,
 * for all n_head/n_head_kv query heads of group h at once (one read of each K/V row serves the
 * whole group), the split's scores, their max m, l = sum exp(score - m) and o = sum exp(score - m)
 * V; a second kernel combines the splits with a log-sum-exp rescaling:
 *   out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s,  M = max_s m_s.
 * Splits past a query's position exit at once, so the grid (and a captured CUDA graph) can be
 * sized for n_ctx and still serve every position. Q is rounded to F16 before Q.K (as the CPU path
 * does with an F16 cache); scores and probabilities stay f32.
 */
#ifndef MLXR_KERNELS_CUDA_ATTENTION_H
#define MLXR_KERNELS_CUDA_ATTENTION_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda/matvec.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MLXR_CUDA_KV_BLOCK 32 /* positions per pool block (MLXR_KV_BLOCK) */
#define MLXR_CUDA_ATT_SPLIT 64 /* positions per split: more splits = more blocks at short contexts */

typedef struct mlxr_cuda_kv {
    void *k, *v;          /* device, f16: this layer's pool rows */
    const int32_t *table; /* device [n_seq][max_blocks]: the pool block of each 32 positions */
    int32_t max_blocks;   /* table entries per sequence */
    int32_t kv_dim;       /* n_head_kv * head_dim */
} mlxr_cuda_kv;

typedef struct mlxr_cuda_att_shape {
    int32_t n_head, n_head_kv, head_dim;
    int32_t n_split;    /* splits launched per query: ceil(n_ctx / MLXR_CUDA_ATT_SPLIT) */
} mlxr_cuda_att_shape;

/* Shared memory per block of the split kernel; the caller checks it against the device limit. */
size_t mlxr_attention_smem_cuda(const mlxr_cuda_att_shape *sh);

/* Write T rows of k, v (f32, kv_dim values per row, rows ld floats apart) as f16 into the cache
 * at (seq[t], pos[t]). */
cudaError_t mlxr_kv_store_cuda(const mlxr_cuda_kv *kv, const float *k, const float *v, int64_t ld,
                               const int32_t *pos, const int32_t *seq, int32_t T, cudaStream_t st);

/*
 * out [T][n_head * head_dim] = attention of q (after RoPE; row t at q + t * q_ld, heads
 * contiguous) over the cache, scale 1/sqrt(head_dim), as f32 or encoded for the next product
 * (mlxr_cuda_out; Q8_0 needs head_dim % 32 == 0). part_o: device scratch of
 * T * n_head * n_split * head_dim floats; part_ml: of T * n_head * n_split * 2 floats. pos/seq:
 * device arrays. head_dim must be a multiple of 8 and at most 1024.
 */
cudaError_t mlxr_attention_cuda(const mlxr_cuda_kv *kv, const mlxr_cuda_att_shape *sh,
                                const float *q, int64_t q_ld, const int32_t *pos, const int32_t *seq,
                                int32_t T, float *part_o, float *part_ml, const mlxr_cuda_out *out,
                                cudaStream_t st);

/*
 * Causal attention of a prefill batch on tensor cores (attention_prefill.cu): the same result as
 * mlxr_attention_cuda (out F32 or F16 only) for T queries that ALL belong to sequence seq[0] (the
 * caller checks), each over cache positions 0..pos[t] of that sequence (f32 probabilities, as
 * mlxr_attention_cuda). No scratch. Supported shapes:
 * mlxr_attention_prefill_supported_cuda (head_dim 64 or 128).
 */
bool mlxr_attention_prefill_supported_cuda(const mlxr_cuda_att_shape *sh, mlxr_dtype out_type);
cudaError_t mlxr_attention_prefill_cuda(const mlxr_cuda_kv *kv, const mlxr_cuda_att_shape *sh,
                                        const float *q, int64_t q_ld, const int32_t *pos, const int32_t *seq,
                                        int32_t T, const mlxr_cuda_out *out, cudaStream_t st);

#ifdef __cplusplus
}
#endif
#endif
