/*
 * cuda_err.cu - see cuda_err.h.
 */
#include "kernels/cuda/cuda_err.h"

#include <stdlib.h>
#include <string.h>

extern "C" {
#include "util/err.h"
}

/* The current device's compute capability major version, 0 when there is none. */
static int cc_major(void) {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return major;
}

extern "C" bool mlxr_cuda_sm90(void) {
    static const bool yes = cc_major() >= 9;
    return yes;
}

extern "C" bool mlxr_cuda_sm80(void) {
    static const bool yes = cc_major() >= 8;
    return yes;
}

static bool pdl_probe(void) {
    const char *e = getenv("MLXR_CUDA_PDL");
    if (e && !strcmp(e, "0")) return false;
    return mlxr_cuda_sm90();
}

extern "C" bool mlxr_cuda_pdl_enabled(void) {
    static const bool on = pdl_probe(); /* thread-safe initialization (C++11) */
    return on;
}

extern "C" mlxr_status mlxr_cuda_status(cudaError_t e, mlxr_err *err, const char *what,
                                        const char *file, int line) {
    if (e == cudaSuccess) return MLXR_OK;
    const mlxr_status code = e == cudaErrorMemoryAllocation ? MLXR_ERR_NOMEM : MLXR_ERR_CUDA;
    return mlxr_err_set(err, code, file, line, "%s: %s (%s)", what, cudaGetErrorString(e),
                        cudaGetErrorName(e));
}

extern "C" mlxr_status mlxr_cuda_launch_status(mlxr_err *err, const char *kernel, const char *file,
                                               int line) {
    return mlxr_cuda_status(cudaGetLastError(), err, kernel, file, line);
}

extern "C" bool mlxr_cuda_fused_swiglu_enabled(void) {
    static const bool on = [] {
        const char *e = getenv("MLXR_CUDA_FUSED_SWIGLU");
        return e && !strcmp(e, "1");
    }();
    return on;
}

extern "C" bool mlxr_cuda_fused_norm_enabled(void) {
    static const bool on = [] {
        const char *e = getenv("MLXR_CUDA_FUSED_NORM");
        return !(e && !strcmp(e, "0"));
    }();
    return on;
}

extern "C" bool mlxr_cuda_batch_graphs_enabled(void) {
    static const bool on = [] {
        const char *e = getenv("MLXR_CUDA_BATCH_GRAPHS");
        return !(e && !strcmp(e, "0"));
    }();
    return on;
}
