/*
 * cuda_err.h - CUDA runtime errors as mlxr statuses: a failed call becomes MLXR_ERR_CUDA with the
 * runtime's own message and the call that failed, never an abort. Callable from C and CUDA.
 */
#ifndef MLXR_KERNELS_CUDA_ERR_H
#define MLXR_KERNELS_CUDA_ERR_H

#include <cuda_runtime_api.h>

#include "mlxr.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MLXR_OK for cudaSuccess; else fill err with "<what>: <cudaGetErrorString> (<name>)" and
 * return MLXR_ERR_CUDA (MLXR_ERR_NOMEM for cudaErrorMemoryAllocation). */
mlxr_status mlxr_cuda_status(cudaError_t e, mlxr_err *err, const char *what, const char *file,
                             int line);

/* Whether the current device is sm_90 or newer (thread block clusters, PDL). Decided once. */
bool mlxr_cuda_sm90(void);
/* Whether the current device is sm_80 or newer (int8 mma.sync, cp.async). Decided once. */
bool mlxr_cuda_sm80(void);

/* Whether kernels of src/kernels/cuda/ are launched with programmatic dependent launch (see
 * common.cuh): the current device is sm_90 or newer and MLXR_CUDA_PDL is not "0" (a switch for
 * comparing timings). Decided once per process. */
bool mlxr_cuda_pdl_enabled(void);

/* Whether the decode step runs gate|up + SwiGLU as one launch (mlxr_matmul_swiglu_cuda): only
 * with MLXR_CUDA_FUSED_SWIGLU=1. Off by default: on an H100 the fused form measured slower than
 * the product + SwiGLU pair (7B Q4_0 gate|up: 27.9 vs 21.2 us; tg128 343.6 vs 372.5 tok/s; its
 * per-block threadfence + atomic outweighs the launch it saves). */
bool mlxr_cuda_fused_swiglu_enabled(void);

/* Whether the decode step splits each RMSNorm across the products around it
 * (mlxr_matmul_resid_cuda / mlxr_matmul_rms_cuda, matvec.h) instead of launching it: true
 * unless MLXR_CUDA_FUSED_NORM is "0" (for A/B timings and as a fallback). */
bool mlxr_cuda_fused_norm_enabled(void);

/* Whether batched passes of up to 32 rows replay CUDA graphs cached per shape (backend_cuda.c):
 * true unless MLXR_CUDA_BATCH_GRAPHS is "0" (for A/B timings). */
bool mlxr_cuda_batch_graphs_enabled(void);

/* The error of the last kernel launch (launch-configuration errors show up here). */
mlxr_status mlxr_cuda_launch_status(mlxr_err *err, const char *kernel, const char *file, int line);

#ifdef __cplusplus
}
#endif

/* Evaluate a runtime call; on failure record it and return the status from the caller. */
#define MLXR_CUDA_TRY(err, call)                                                                  \
    do {                                                                                          \
        mlxr_status st_ = mlxr_cuda_status((call), (err), #call, __FILE__, __LINE__);             \
        if (st_ != MLXR_OK) return st_;                                                           \
    } while (0)

/* After a <<<>>> launch: return the launch error, if any, from the caller. */
#define MLXR_CUDA_LAUNCHED(err, name)                                                             \
    do {                                                                                          \
        mlxr_status st_ = mlxr_cuda_launch_status((err), (name), __FILE__, __LINE__);             \
        if (st_ != MLXR_OK) return st_;                                                           \
    } while (0)

#endif
