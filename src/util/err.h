/*
 * err.h - recording errors: one macro sets the caller's mlxr_err with file:line and returns.
 *
 * Usage: if (bad) return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tensor '%s' past end", name);
 * `err` may be NULL (the message is then dropped, the code still returned).
 */
#ifndef MLXR_UTIL_ERR_H
#define MLXR_UTIL_ERR_H

#include "mlxr.h"

#if defined(__GNUC__)
#define MLXR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MLXR_PRINTF(a, b)
#endif

/* Fill `err` (if non-NULL) and return `code`. */
mlxr_status mlxr_err_set(mlxr_err *err, mlxr_status code, const char *file, int line,
                         const char *fmt, ...) MLXR_PRINTF(5, 6);

#define MLXR_FAIL(err, code, ...) mlxr_err_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Clear an error record (code MLXR_OK, empty message). NULL does nothing. */
void mlxr_err_clear(mlxr_err *err);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool mlxr_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool mlxr_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
