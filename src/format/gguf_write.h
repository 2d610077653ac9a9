/*
 * gguf_write.h - a small writer of GGUF version 3 files (the layout in gguf.h), for tests,
 * benchmarks and converters.
 *
 * Use: collect metadata with mlxr_gguf_writer_add_* and tensors with mlxr_gguf_writer_add_tensor
 * (data in memory) or mlxr_gguf_writer_add_tensor_fn (rows produced on demand by a callback, so
 * a multi-gigabyte tensor never has to be held in memory); then mlxr_gguf_writer_write_file
 * writes the header, the tensor infos, zero padding to general.alignment and the tensor data in
 * the order the tensors were added, each padded to the alignment.
 *
 * Invariants: keys and tensor names are unique; every tensor's ne[0] is a multiple of its type's
 * block size and its byte size fits size_t; the alignment is a power of two. Each add either
 * succeeds or leaves the writer as it was. general.alignment is written as uint32 32 unless the
 * caller added it (with mlxr_gguf_writer_add_u32, a power of two); tensor names are limited to
 * 63 bytes, as GGML's GGML_MAX_NAME requires, so that llama.cpp reads the files too.
 *
 * Not supported: nested arrays, big-endian hosts (tensor data is copied as the host stores it).
 * A writer is not thread-safe; separate writers are independent.
 */
#ifndef MLXR_FORMAT_GGUF_WRITE_H
#define MLXR_FORMAT_GGUF_WRITE_H

#include "format/gguf.h"
#include "mlxr.h"

typedef struct mlxr_gguf_writer mlxr_gguf_writer;

/*
 * Produce rows [row0, row0 + n_rows) of a tensor into `dst` (n_rows * row_size bytes, where a row
 * is ne[0] elements encoded in the tensor's type and rows are numbered over ne[1] * ne[2] * ne[3]
 * in file order). Called during mlxr_gguf_writer_write_file, for each tensor's rows in increasing
 * order, each row exactly once (never for a tensor of zero bytes). `dst` is borrowed for the call.
 * Return MLXR_OK, or an error (recorded in `err`) that aborts the write.
 */
typedef mlxr_status (*mlxr_gguf_fill_fn)(void *user, void *dst, int64_t row0, int64_t n_rows,
                                         mlxr_err *err);

/* A new, empty writer, or NULL when out of memory. Free with mlxr_gguf_writer_free. */
mlxr_gguf_writer *mlxr_gguf_writer_new(void);
/* Free the writer and the copies it holds. NULL does nothing. */
void mlxr_gguf_writer_free(mlxr_gguf_writer *w);

/*
 * Metadata. `key` (NUL-terminated, 1..65535 bytes) and string values are copied. Errors:
 * MLXR_ERR_INVALID for an empty, too long or duplicate key (the message names it) or a bad
 * general.alignment, MLXR_ERR_NOMEM.
 */
mlxr_status mlxr_gguf_writer_add_u8(mlxr_gguf_writer *w, const char *key, uint8_t v, mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_i8(mlxr_gguf_writer *w, const char *key, int8_t v, mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_u16(mlxr_gguf_writer *w, const char *key, uint16_t v,
                                     mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_i16(mlxr_gguf_writer *w, const char *key, int16_t v,
                                     mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_u32(mlxr_gguf_writer *w, const char *key, uint32_t v,
                                     mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_i32(mlxr_gguf_writer *w, const char *key, int32_t v,
                                     mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_u64(mlxr_gguf_writer *w, const char *key, uint64_t v,
                                     mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_i64(mlxr_gguf_writer *w, const char *key, int64_t v,
                                     mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_f32(mlxr_gguf_writer *w, const char *key, float v, mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_f64(mlxr_gguf_writer *w, const char *key, double v, mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_bool(mlxr_gguf_writer *w, const char *key, bool v, mlxr_err *err);
/* A string value: `v` NUL-terminated (use _add_str_n for bytes that may include NUL). */
mlxr_status mlxr_gguf_writer_add_str(mlxr_gguf_writer *w, const char *key, const char *v,
                                     mlxr_err *err);
/* A string value of `len` bytes at `v` (any bytes; v may be NULL when len is 0). */
mlxr_status mlxr_gguf_writer_add_str_n(mlxr_gguf_writer *w, const char *key, const char *v,
                                       size_t len, mlxr_err *err);

/*
 * An array of `n` fixed-size scalars of type `elem` (any type but STRING and ARRAY) read from
 * `v`, stored as the host stores that C type (uint8_t, int8_t, ..., float, double, bool).
 * Bool elements are written as 0 or 1. MLXR_ERR_INVALID for a STRING, ARRAY or unknown elem.
 */
mlxr_status mlxr_gguf_writer_add_arr(mlxr_gguf_writer *w, const char *key, mlxr_gguf_type elem,
                                     const void *v, size_t n, mlxr_err *err);
/* Shorthands: arrays of float and of int32_t. */
mlxr_status mlxr_gguf_writer_add_arr_f32(mlxr_gguf_writer *w, const char *key, const float *v,
                                         size_t n, mlxr_err *err);
mlxr_status mlxr_gguf_writer_add_arr_i32(mlxr_gguf_writer *w, const char *key, const int32_t *v,
                                         size_t n, mlxr_err *err);
/* An array of `n` NUL-terminated strings (each borrowed for the call; NULL is refused). */
mlxr_status mlxr_gguf_writer_add_arr_str(mlxr_gguf_writer *w, const char *key, const char *const *v,
                                         size_t n, mlxr_err *err);

/*
 * A tensor with `n_dims` (1..4) dimensions ne[0..n_dims-1] (ne[0] fastest, each >= 0, ne[0] a
 * multiple of the block size of `type`), whose bytes are at `data` (borrowed until the last
 * mlxr_gguf_writer_write_file or mlxr_gguf_writer_free; may be NULL for an empty tensor).
 * `name` (1..63 bytes) is copied. Errors: MLXR_ERR_INVALID for a duplicate or bad name, a bad
 * n_dims, dimension or type (the message names the tensor); MLXR_ERR_RANGE when the byte size
 * overflows; MLXR_ERR_NOMEM.
 */
mlxr_status mlxr_gguf_writer_add_tensor(mlxr_gguf_writer *w, const char *name, uint32_t n_dims,
                                        const int64_t *ne, mlxr_dtype type, const void *data,
                                        mlxr_err *err);
/* As mlxr_gguf_writer_add_tensor, with the data produced row by row by `fill(user, ...)` at
 * write time (`user` borrowed until then). */
mlxr_status mlxr_gguf_writer_add_tensor_fn(mlxr_gguf_writer *w, const char *name, uint32_t n_dims,
                                           const int64_t *ne, mlxr_dtype type,
                                           mlxr_gguf_fill_fn fill, void *user, mlxr_err *err);

/* Counts so far, and the exact size in bytes of the file write_file would write now
 * (MLXR_ERR_RANGE if it overflows). */
int64_t mlxr_gguf_writer_n_kv(const mlxr_gguf_writer *w);
int64_t mlxr_gguf_writer_n_tensors(const mlxr_gguf_writer *w);
mlxr_status mlxr_gguf_writer_file_size(const mlxr_gguf_writer *w, uint64_t *out, mlxr_err *err);

/*
 * Write the file at `path` (borrowed; created or truncated). Data is streamed through a bounded
 * buffer (a few MiB, or one row if a row is larger). On any failure - I/O (MLXR_ERR_IO with the
 * path and errno text), out of memory, or an error from a fill callback, returned unchanged - the
 * partial file is removed. The writer is unchanged and may write again.
 */
mlxr_status mlxr_gguf_writer_write_file(const mlxr_gguf_writer *w, const char *path, mlxr_err *err);

#endif
