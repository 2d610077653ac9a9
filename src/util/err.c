/*
 * err.c - status names and the error-recording helper behind MLXR_FAIL.
 */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mlxr_status_str(mlxr_status s) {
    switch (s) {
    case MLXR_OK: return "ok";
    case MLXR_ERR_IO: return "I/O error";
    case MLXR_ERR_FORMAT: return "format error";
    case MLXR_ERR_NOMEM: return "out of memory";
    case MLXR_ERR_RANGE: return "out of range";
    case MLXR_ERR_INVALID: return "invalid argument";
    case MLXR_ERR_UNSUPPORTED: return "unsupported";
    case MLXR_ERR_NOT_FOUND: return "not found";
    case MLXR_ERR_CUDA: return "CUDA error";
    case MLXR_ERR_CANCELLED: return "cancelled";
    case MLXR_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

mlxr_status mlxr_err_set(mlxr_err *err, mlxr_status code, const char *file, int line,
                         const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
        err->file = file;
        err->line = line;
    }
    return code;
}

void mlxr_err_clear(mlxr_err *err) {
    if (!err) return;
    err->code = MLXR_OK;
    err->msg[0] = '\0';
    err->file = NULL;
    err->line = 0;
}

void mlxr_free(void *p) {
    free(p);
}
