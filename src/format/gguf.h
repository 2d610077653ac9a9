/*
 * gguf.h - reader for GGUF files, versions 2 and 3 (untrusted input: every field is checked).
 *
 * Layout (little-endian):
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 * A string is u64 length + bytes (not NUL-terminated). An array is u32 elem_type + u64 n + n
 * values; arrays may nest.
 *
 * Strings, arrays and tensor data returned by this module point into the mapped file and stay
 * valid until mlxr_gguf_close. Limits: keys 1..65535 bytes, tensor names 1..255 bytes (no NUL),
 * arrays nested at most 8 deep, tensors of 1..4 dimensions.
 */
#ifndef MLXR_FORMAT_GGUF_H
#define MLXR_FORMAT_GGUF_H

#include "mlxr.h"

typedef enum mlxr_gguf_type {
    MLXR_GGUF_UINT8 = 0,
    MLXR_GGUF_INT8 = 1,
    MLXR_GGUF_UINT16 = 2,
    MLXR_GGUF_INT16 = 3,
    MLXR_GGUF_UINT32 = 4,
    MLXR_GGUF_INT32 = 5,
    MLXR_GGUF_FLOAT32 = 6,
    MLXR_GGUF_BOOL = 7,
    MLXR_GGUF_STRING = 8,
    MLXR_GGUF_ARRAY = 9,
    MLXR_GGUF_UINT64 = 10,
    MLXR_GGUF_INT64 = 11,
    MLXR_GGUF_FLOAT64 = 12,
    MLXR_GGUF_TYPE_COUNT
} mlxr_gguf_type;

/* A string inside the file: `len` bytes at `data`, not NUL-terminated. */
typedef struct mlxr_gguf_str {
    const char *data;
    uint64_t len;
} mlxr_gguf_str;

/* One metadata value. For arrays, `arr.data` points at the first element's bytes in the file,
 * `arr.n` is the element count and `arr.type` the element type; string and nested-array
 * elements are variable-sized, so read them with mlxr_gguf_arr_* below. */
typedef struct mlxr_gguf_value {
    mlxr_gguf_type type;
    union {
        uint64_t u64; /* UINT8/16/32/64 */
        int64_t i64;  /* INT8/16/32/64 */
        double f64;   /* FLOAT32/64 */
        bool b;
        mlxr_gguf_str str;
        struct {
            mlxr_gguf_type type;
            uint64_t n;
            const uint8_t *data;
            uint64_t nbytes; /* bytes of all elements (validated) */
            const uint64_t *offsets; /* for STRING/ARRAY elements: byte offset of each element
                                        from data (n entries); NULL for fixed-size elements
                                        or n == 0. Reader-owned: only values produced by the
                                        reader can be passed to mlxr_gguf_arr_* */
        } arr;
    } v;
} mlxr_gguf_value;

typedef struct mlxr_gguf_kv {
    mlxr_gguf_str key;
    mlxr_gguf_value value;
} mlxr_gguf_kv;

typedef struct mlxr_gguf_tensor {
    mlxr_gguf_str name;
    uint32_t n_dims;     /* 1..4 */
    int64_t ne[4];       /* elements per dimension, ne[0] fastest; unused dims are 1 */
    mlxr_dtype type;
    uint64_t offset;     /* from the start of the data section */
    size_t nbytes;       /* validated: fits in the file */
    const void *data;    /* into the map */
} mlxr_gguf_tensor;

typedef struct mlxr_gguf mlxr_gguf;

/* Open and validate a file (mmap). *out owned by the caller: mlxr_gguf_close. */
mlxr_status mlxr_gguf_open(const char *path, mlxr_gguf **out, mlxr_err *err);
/* Parse `size` bytes at `data` (borrowed until close; for tests and fuzzing). */
mlxr_status mlxr_gguf_open_mem(const void *data, size_t size, mlxr_gguf **out, mlxr_err *err);
void mlxr_gguf_close(mlxr_gguf *g);

uint32_t mlxr_gguf_version(const mlxr_gguf *g);
uint32_t mlxr_gguf_alignment(const mlxr_gguf *g);
uint64_t mlxr_gguf_data_offset(const mlxr_gguf *g); /* file offset of the data section */
size_t mlxr_gguf_file_size(const mlxr_gguf *g);

int64_t mlxr_gguf_n_kv(const mlxr_gguf *g);
const mlxr_gguf_kv *mlxr_gguf_kv_at(const mlxr_gguf *g, int64_t i);
/* The value under `key` (NUL-terminated), or NULL. */
const mlxr_gguf_value *mlxr_gguf_find(const mlxr_gguf *g, const char *key);

int64_t mlxr_gguf_n_tensors(const mlxr_gguf *g);
const mlxr_gguf_tensor *mlxr_gguf_tensor_at(const mlxr_gguf *g, int64_t i);
const mlxr_gguf_tensor *mlxr_gguf_find_tensor(const mlxr_gguf *g, const char *name);

/* Static name of a value type ("uint32", "string", "array"), or "?" */
const char *mlxr_gguf_type_name(mlxr_gguf_type t);

/* Encoded size in bytes of one scalar of type t; 0 for STRING, ARRAY and unknown types. */
size_t mlxr_gguf_scalar_size(mlxr_gguf_type t);

/*
 * Typed getters. Each returns MLXR_ERR_NOT_FOUND if the key is absent, MLXR_ERR_FORMAT if the
 * value has the wrong type, MLXR_ERR_RANGE if it does not fit the output type; the message names
 * the key. Integer getters accept any integer type whose value fits; f32 accepts float types.
 */
mlxr_status mlxr_gguf_get_u32(const mlxr_gguf *g, const char *key, uint32_t *out, mlxr_err *err);
mlxr_status mlxr_gguf_get_i32(const mlxr_gguf *g, const char *key, int32_t *out, mlxr_err *err);
mlxr_status mlxr_gguf_get_f32(const mlxr_gguf *g, const char *key, float *out, mlxr_err *err);
mlxr_status mlxr_gguf_get_bool(const mlxr_gguf *g, const char *key, bool *out, mlxr_err *err);
mlxr_status mlxr_gguf_get_str(const mlxr_gguf *g, const char *key, mlxr_gguf_str *out,
                              mlxr_err *err);
/* An array under `key` whose elements have type `elem` (checked). */
mlxr_status mlxr_gguf_get_arr(const mlxr_gguf *g, const char *key, mlxr_gguf_type elem,
                              const mlxr_gguf_value **out, mlxr_err *err);

/* Element i of an array value (i < n checked by the caller; these assert nothing). */
mlxr_gguf_str mlxr_gguf_arr_str(const mlxr_gguf_value *arr, uint64_t i);
float mlxr_gguf_arr_f32(const mlxr_gguf_value *arr, uint64_t i);   /* FLOAT32 elements */
int32_t mlxr_gguf_arr_i32(const mlxr_gguf_value *arr, uint64_t i); /* INT32 elements */
/* Element i of an ARRAY-of-ARRAY as a value (type ARRAY) - for nested arrays. */
mlxr_gguf_value mlxr_gguf_arr_nested(const mlxr_gguf_value *arr, uint64_t i);

#endif
