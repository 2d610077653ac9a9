/*
 * backend_cuda.h - the Llama forward pass on one CUDA device (issue 7, first part).
 *
 * Design: model structure vs backend ops.
 *   - The model structure (which weights, in which order, with which shapes) lives in the
 *     backend's forward function, src/model/backend_cuda.c, written against a small set of
 *     device ops in src/kernels/cuda/ (embed, add+rmsnorm, encode+matmul, rope, kv store,
 *     attention, swiglu, argmax). Those ops take device pointers, sizes and a stream; they know
 *     no model, no context and no file format, exactly like the CPU kernels (kernels.h).
 *   - The KV cache is the context's paged pool (src/kv/kv.h): the host keeps the bookkeeping
 *     (block tables, reference counts, prefix hashes, LRU eviction) and the device keeps the
 *     rows, F16, numbered like the host's blocks; each pass copies the block tables to the device
 *     and the store/attention kernels address rows through them (kernels/cuda/attention.h). So
 *     prefix sharing, truncation (speculative decoding), preemption and eviction work unchanged;
 *     a copy on write is a device-to-device copy of one block's rows (the pool's copy_rows hook).
 *     The pool, hence device KV memory, is sized by kv_mem_bytes (the context's budget).
 *   - Batching is per-entry: every op takes T batch rows with per-row (token, position,
 *     sequence) arrays in device memory, so a scheduler that mixes prefill and decode rows of
 *     many sequences calls the same forward function. Single-token steps are captured once in
 *     a CUDA graph (their shapes never change; positions and tables are read from device memory).
 *     With batch_invariant (and speculative verification), a batch runs row by row as decode
 *     steps, so each row's logits are exactly those of decoding it alone.
 *   - Numerics follow the CPU engine: activations encoded in the weight type's vec_dot_type
 *     (Q8_0 for Q8_0/Q4_0, Q8_K for the K-quants; prefill batches hold those encodings' values
 *     in f16 for the tensor-core GEMM), F16 KV cache, Q rounded to F16 for Q.K (see
 *     kernels/cuda/matvec.h, gemm.h and attention.h).
 *
 * Lifecycle: mlxr_context_new calls mlxr_cuda_context_new when opts.n_gpu_layers != 0 (weights
 * uploaded once, in their stored format); mlxr_decode validates the batch as for the CPU and then
 * calls mlxr_cuda_forward instead of mlxr_llama_forward; logits land in c->logits as usual.
 * Without CUDA in the build these functions report MLXR_ERR_UNSUPPORTED.
 */
#ifndef MLXR_MODEL_BACKEND_CUDA_H
#define MLXR_MODEL_BACKEND_CUDA_H

#include "mlxr.h"

typedef struct mlxr_context mlxr_context;
typedef struct mlxr_cuda_ctx mlxr_cuda_ctx;

/* Upload c->m to device 0 and allocate the KV cache and scratch there; sets c->gpu.
 * n_gpu_layers: < 0 or >= n_layer means the whole model (partial offload is not supported). */
mlxr_status mlxr_cuda_context_new(mlxr_context *c, int32_t n_gpu_layers, mlxr_err *err);

/* Free c->gpu (NULL does nothing). */
void mlxr_cuda_context_free(mlxr_context *c);

/* The forward pass of a batch mlxr_decode validated; fills c->logits rows per c->logit_row. */
mlxr_status mlxr_cuda_forward(mlxr_context *c, const mlxr_batch *b, mlxr_err *err);

#endif
