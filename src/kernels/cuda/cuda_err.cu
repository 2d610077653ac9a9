/*
 * cuda_err.cu - see cuda_err.h.
 */
#include "kernels/cuda/cuda_err.h"

extern "C" {
#include "util/err.h"
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
