/*
 * safetensors.h - reader of Hugging Face safetensors files (also what MLX models ship).
 *
 * File layout (all of it untrusted):
 *   u64 n (little-endian)   length of the header
 *   n bytes                 UTF-8 JSON object: tensor name -> {"dtype": "F16", "shape": [..],
 *                           "data_offsets": [begin, end]}, plus an optional "__metadata__"
 *                           object of string -> string
 *   data                    the byte buffer; offsets are relative to its start (8 + n)
 * Every tensor's end - begin must equal product(shape) * dtype size, lie inside the buffer and
 * overlap no other tensor; shape [] is a scalar (1 element). Tensor data is little-endian and
 * not necessarily aligned (8 + n need not be a multiple of anything): read it with memcpy or
 * check the alignment first.
 */
#ifndef MLXR_FORMAT_SAFETENSORS_H
#define MLXR_FORMAT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mlxr.h"

typedef enum mlxr_st_dtype {
    MLXR_ST_BOOL,
    MLXR_ST_U8,
    MLXR_ST_I8,
    MLXR_ST_F8_E4M3,
    MLXR_ST_F8_E5M2,
    MLXR_ST_I16,
    MLXR_ST_U16,
    MLXR_ST_F16,
    MLXR_ST_BF16,
    MLXR_ST_I32,
    MLXR_ST_U32,
    MLXR_ST_F32,
    MLXR_ST_I64,
    MLXR_ST_U64,
    MLXR_ST_F64,
    MLXR_ST_DTYPE_COUNT
} mlxr_st_dtype;

#define MLXR_ST_MAX_DIMS 8
/* The largest header accepted (the format's own readers use 100 MB). */
#define MLXR_ST_MAX_HEADER (100u * 1024 * 1024)

typedef struct mlxr_st_tensor {
    const char *name; /* NUL-terminated, owned by the file handle */
    mlxr_st_dtype dtype;
    int n_dims;
    int64_t shape[MLXR_ST_MAX_DIMS]; /* outermost first, as in the file */
    int64_t n_elements;
    const void *data; /* inside the mapping; see alignment note above */
    size_t nbytes;
    size_t offset; /* of data, from the start of the data buffer */
} mlxr_st_tensor;

typedef struct mlxr_st mlxr_st;

/* Map and parse `path`. Errors: MLXR_ERR_IO (open/map), MLXR_ERR_FORMAT (anything malformed; the
 * message names the tensor), MLXR_ERR_NOMEM. */
mlxr_status mlxr_st_open(const char *path, mlxr_st **out, mlxr_err *err);
/* Parse a buffer the caller keeps alive until mlxr_st_close. */
mlxr_status mlxr_st_open_mem(const void *data, size_t size, mlxr_st **out, mlxr_err *err);
/* Close; NULL does nothing. */
void mlxr_st_close(mlxr_st *st);

int64_t mlxr_st_n_tensors(const mlxr_st *st);
/* Tensors in file order of their data (ascending offset); NULL when i is out of range. */
const mlxr_st_tensor *mlxr_st_tensor_at(const mlxr_st *st, int64_t i);
/* Tensor by name, or NULL. */
const mlxr_st_tensor *mlxr_st_find(const mlxr_st *st, const char *name);
/* Like mlxr_st_find, but MLXR_ERR_NOT_FOUND naming the tensor when missing. */
mlxr_status mlxr_st_get(const mlxr_st *st, const char *name, const mlxr_st_tensor **out,
                        mlxr_err *err);
/* "__metadata__" entry `key`, or NULL (no metadata, or no such key). */
const char *mlxr_st_metadata(const mlxr_st *st, const char *key);
int64_t mlxr_st_n_metadata(const mlxr_st *st);
/* Key/value pair i of the metadata (file order); false when i is out of range. */
bool mlxr_st_metadata_at(const mlxr_st *st, int64_t i, const char **key, const char **value);

/* "F16", ... ; NULL for values out of range. Bytes per element (0 out of range). */
const char *mlxr_st_dtype_name(mlxr_st_dtype t);
size_t mlxr_st_dtype_size(mlxr_st_dtype t);

#endif
