/*
 * gguf_write.c - the GGUF v3 writer declared in gguf_write.h.
 *
 * Metadata is encoded as it is added, into one growing byte buffer (`meta`) that write_file
 * copies out verbatim; the writer keeps the keys only to refuse duplicates. Tensors are kept as
 * descriptions (name, shape, type, sizes, and a data pointer or a fill callback); their offsets
 * in the data section are assigned at write time, each rounded up to the alignment, so the
 * alignment may be set after the tensors. All integers are encoded little-endian byte by byte,
 * independent of the host.
 *
 * File written (see gguf.h):
 *   "GGUF" | u32 3 | u64 n_tensors | u64 n_kv | kv... [+ general.alignment] | tensor infos...
 *   | zeros to the alignment | tensor 0 data | zeros to the alignment | tensor 1 data | ...
 */
#include "format/gguf_write.h"
#include "format/dtype.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_VERSION 3
#define DEFAULT_ALIGNMENT 32
#define MAX_KEY_LEN 65535
#define MAX_NAME_LEN 63               /* GGML_MAX_NAME - 1: llama.cpp refuses longer names */
#define CHUNK_BYTES ((size_t)4 << 20) /* tensor data goes through a buffer of about this size */
#define ALIGNMENT_KEY "general.alignment"

/* A growing byte buffer. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

/* One tensor to write: its info, and where its data comes from. */
typedef struct wtensor {
    char *name;      /* owned copy */
    uint32_t n_dims; /* 1..4 */
    int64_t ne[4];   /* unused dims are 1 */
    mlxr_dtype type;
    size_t row_size;  /* bytes of one row of ne[0] elements */
    int64_t n_rows;   /* ne[1] * ne[2] * ne[3] */
    size_t nbytes;    /* row_size * n_rows */
    const void *data; /* borrowed, or NULL when fill is set */
    mlxr_gguf_fill_fn fill;
    void *user;
} wtensor;

struct mlxr_gguf_writer {
    bytes meta;  /* the encoded kv entries, in the order added */
    char **keys; /* [n_kv] owned copies, to refuse duplicates */
    size_t n_kv, cap_kv;
    wtensor *tensors; /* [n_tensors] */
    size_t n_tensors, cap_tensors;
    uint32_t alignment;   /* general.alignment: DEFAULT_ALIGNMENT unless added */
    bool alignment_added; /* general.alignment is among the kv entries */
};

/* ---- encoding ------------------------------------------------------------------------------- */

/* Make room for `n` more bytes. */
static bool reserve(bytes *b, size_t n) {
    size_t need;
    if (!mlxr_add_ok(b->n, n, &need)) return false;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (!mlxr_mul_ok(cap, 2, &cap)) return false;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

/* The put_* helpers write into space already reserved. */
static void put_raw(bytes *b, const void *src, size_t n) {
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(bytes *b, uint64_t v, int n_bytes) {
    for (int i = 0; i < n_bytes; i++)
        b->p[b->n++] = (uint8_t)(v >> (8 * i));
}

static void put_str(bytes *b, const char *s, size_t len) {
    put_le(b, len, 8);
    put_raw(b, s, len);
}

/* Encoded size of one scalar of type t; 0 for STRING, ARRAY and unknown types. */
static size_t scalar_size(mlxr_gguf_type t) {
    switch (t) {
    case MLXR_GGUF_UINT8:
    case MLXR_GGUF_INT8:
    case MLXR_GGUF_BOOL:
        return 1;
    case MLXR_GGUF_UINT16:
    case MLXR_GGUF_INT16:
        return 2;
    case MLXR_GGUF_UINT32:
    case MLXR_GGUF_INT32:
    case MLXR_GGUF_FLOAT32:
        return 4;
    case MLXR_GGUF_UINT64:
    case MLXR_GGUF_INT64:
    case MLXR_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* Encode element i of a host array of type t (scalar_size(t) > 0) as little-endian bytes. */
static void put_scalar_elem(bytes *b, mlxr_gguf_type t, const void *v, size_t i) {
    size_t sz = scalar_size(t);
    const uint8_t *src = (const uint8_t *)v + i * sz;
    uint64_t u = 0;
    if (t == MLXR_GGUF_BOOL) {
        u = src[0] != 0; /* the byte, not a bool load: any non-zero byte is written as 1 */
    } else if (sz == 1) {
        u = src[0];
    } else if (sz == 2) {
        uint16_t x;
        memcpy(&x, src, 2);
        u = x;
    } else if (sz == 4) {
        uint32_t x; /* float bits too */
        memcpy(&x, src, 4);
        u = x;
    } else {
        memcpy(&u, src, 8); /* double bits too */
    }
    put_le(b, u, (int)sz);
}

static void put_kv_head(bytes *b, const char *key, size_t key_len, mlxr_gguf_type t) {
    put_str(b, key, key_len);
    put_le(b, (uint64_t)t, 4);
}

/* ---- keys ------------------------------------------------------------------------------------ */

static mlxr_status check_key(const mlxr_gguf_writer *w, const char *key, size_t *len,
                             mlxr_err *err) {
    if (!w || !key) return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL writer or key");
    size_t n = strlen(key);
    if (n == 0 || n > MAX_KEY_LEN)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: key of %zu bytes, expected 1..%d", n,
                         MAX_KEY_LEN);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: duplicate key '%s'", key);
    *len = n;
    return MLXR_OK;
}

/*
 * Start an entry of key `key` and type `t` whose value takes `value_bytes` after the type tag:
 * check the key, keep a copy of it, reserve the space and encode the key and type. The caller
 * then encodes the value with put_*, which cannot fail: after MLXR_OK nothing can.
 */
static mlxr_status begin_kv(mlxr_gguf_writer *w, const char *key, mlxr_gguf_type t,
                            size_t value_bytes, mlxr_err *err) {
    size_t key_len = 0, need;
    mlxr_status st = check_key(w, key, &key_len, err);
    if (st != MLXR_OK) return st;
    if (strcmp(key, ALIGNMENT_KEY) == 0 && t != MLXR_GGUF_UINT32)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: %s must be a uint32", ALIGNMENT_KEY);
    if (!mlxr_add_ok(8 + 4, key_len, &need) || !mlxr_add_ok(need, value_bytes, &need))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: value of key '%s' too large", key);
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "gguf writer: out of memory for keys");
        w->keys = k;
        w->cap_kv = cap;
    }
    char *copy = malloc(key_len + 1);
    if (!copy || !reserve(&w->meta, need)) {
        free(copy);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "gguf writer: out of memory for key '%s'", key);
    }
    memcpy(copy, key, key_len + 1);
    w->keys[w->n_kv++] = copy;
    put_kv_head(&w->meta, key, key_len, t);
    return MLXR_OK;
}

/* One scalar entry; the value is at `v` as the host stores its C type. */
static mlxr_status add_scalar(mlxr_gguf_writer *w, const char *key, mlxr_gguf_type t, const void *v,
                              mlxr_err *err) {
    mlxr_status st = begin_kv(w, key, t, scalar_size(t), err);
    if (st != MLXR_OK) return st;
    put_scalar_elem(&w->meta, t, v, 0);
    return MLXR_OK;
}

mlxr_status mlxr_gguf_writer_add_u8(mlxr_gguf_writer *w, const char *key, uint8_t v,
                                    mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_UINT8, &v, err);
}
mlxr_status mlxr_gguf_writer_add_i8(mlxr_gguf_writer *w, const char *key, int8_t v, mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_INT8, &v, err);
}
mlxr_status mlxr_gguf_writer_add_u16(mlxr_gguf_writer *w, const char *key, uint16_t v,
                                     mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_UINT16, &v, err);
}
mlxr_status mlxr_gguf_writer_add_i16(mlxr_gguf_writer *w, const char *key, int16_t v,
                                     mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_INT16, &v, err);
}
mlxr_status mlxr_gguf_writer_add_u32(mlxr_gguf_writer *w, const char *key, uint32_t v,
                                     mlxr_err *err) {
    bool is_alignment = key && strcmp(key, ALIGNMENT_KEY) == 0;
    if (is_alignment && (v == 0 || (v & (v - 1)) != 0))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: %s %" PRIu32 " is not a power of two",
                         ALIGNMENT_KEY, v);
    mlxr_status st = add_scalar(w, key, MLXR_GGUF_UINT32, &v, err);
    if (st == MLXR_OK && is_alignment) {
        w->alignment = v;
        w->alignment_added = true;
    }
    return st;
}
mlxr_status mlxr_gguf_writer_add_i32(mlxr_gguf_writer *w, const char *key, int32_t v,
                                     mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_INT32, &v, err);
}
mlxr_status mlxr_gguf_writer_add_u64(mlxr_gguf_writer *w, const char *key, uint64_t v,
                                     mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_UINT64, &v, err);
}
mlxr_status mlxr_gguf_writer_add_i64(mlxr_gguf_writer *w, const char *key, int64_t v,
                                     mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_INT64, &v, err);
}
mlxr_status mlxr_gguf_writer_add_f32(mlxr_gguf_writer *w, const char *key, float v, mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_FLOAT32, &v, err);
}
mlxr_status mlxr_gguf_writer_add_f64(mlxr_gguf_writer *w, const char *key, double v,
                                     mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_FLOAT64, &v, err);
}
mlxr_status mlxr_gguf_writer_add_bool(mlxr_gguf_writer *w, const char *key, bool v, mlxr_err *err) {
    return add_scalar(w, key, MLXR_GGUF_BOOL, &v, err);
}

mlxr_status mlxr_gguf_writer_add_str_n(mlxr_gguf_writer *w, const char *key, const char *v,
                                       size_t len, mlxr_err *err) {
    if (!v && len)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL string for key '%s'",
                         key ? key : "(null)");
    size_t value_bytes;
    if (!mlxr_add_ok(len, 8, &value_bytes))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: string for key '%s' too large", key);
    mlxr_status st = begin_kv(w, key, MLXR_GGUF_STRING, value_bytes, err);
    if (st != MLXR_OK) return st;
    put_str(&w->meta, v, len);
    return MLXR_OK;
}

mlxr_status mlxr_gguf_writer_add_str(mlxr_gguf_writer *w, const char *key, const char *v,
                                     mlxr_err *err) {
    if (!v)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL string for key '%s'",
                         key ? key : "(null)");
    return mlxr_gguf_writer_add_str_n(w, key, v, strlen(v), err);
}

mlxr_status mlxr_gguf_writer_add_arr(mlxr_gguf_writer *w, const char *key, mlxr_gguf_type elem,
                                     const void *v, size_t n, mlxr_err *err) {
    const char *k = key ? key : "(null)";
    size_t esize = scalar_size(elem);
    if (esize == 0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "gguf writer: key '%s': array element type %d is not a fixed-size scalar",
                         k, (int)elem);
    if (!v && n) return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL array for key '%s'", k);
    size_t body;
    if (!mlxr_mul_ok(n, esize, &body) || !mlxr_add_ok(body, 4 + 8, &body))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: array of %zu for key '%s' too large", n,
                         k);
    mlxr_status st = begin_kv(w, key, MLXR_GGUF_ARRAY, body, err);
    if (st != MLXR_OK) return st;
    put_le(&w->meta, (uint64_t)elem, 4);
    put_le(&w->meta, (uint64_t)n, 8);
    for (size_t i = 0; i < n; i++)
        put_scalar_elem(&w->meta, elem, v, i);
    return MLXR_OK;
}

mlxr_status mlxr_gguf_writer_add_arr_f32(mlxr_gguf_writer *w, const char *key, const float *v,
                                         size_t n, mlxr_err *err) {
    return mlxr_gguf_writer_add_arr(w, key, MLXR_GGUF_FLOAT32, v, n, err);
}

mlxr_status mlxr_gguf_writer_add_arr_i32(mlxr_gguf_writer *w, const char *key, const int32_t *v,
                                         size_t n, mlxr_err *err) {
    return mlxr_gguf_writer_add_arr(w, key, MLXR_GGUF_INT32, v, n, err);
}

mlxr_status mlxr_gguf_writer_add_arr_str(mlxr_gguf_writer *w, const char *key, const char *const *v,
                                         size_t n, mlxr_err *err) {
    const char *k = key ? key : "(null)";
    if (!v && n) return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL array for key '%s'", k);
    size_t body = 4 + 8;
    for (size_t i = 0; i < n; i++) {
        if (!v[i])
            return MLXR_FAIL(err, MLXR_ERR_INVALID,
                             "gguf writer: key '%s': string element %zu is NULL", k, i);
        if (!mlxr_add_ok(body, 8, &body) || !mlxr_add_ok(body, strlen(v[i]), &body))
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: array for key '%s' too large", k);
    }
    mlxr_status st = begin_kv(w, key, MLXR_GGUF_ARRAY, body, err);
    if (st != MLXR_OK) return st;
    put_le(&w->meta, (uint64_t)MLXR_GGUF_STRING, 4);
    put_le(&w->meta, (uint64_t)n, 8);
    for (size_t i = 0; i < n; i++)
        put_str(&w->meta, v[i], strlen(v[i]));
    return MLXR_OK;
}

/* ---- tensors --------------------------------------------------------------------------------- */

static mlxr_status add_tensor(mlxr_gguf_writer *w, const char *name, uint32_t n_dims,
                              const int64_t *ne, mlxr_dtype type, const void *data,
                              mlxr_gguf_fill_fn fill, void *user, mlxr_err *err) {
    if (!w || !name || (n_dims && !ne))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL writer, name or shape");
    size_t len = strlen(name);
    if (len == 0 || len > MAX_NAME_LEN)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "gguf writer: tensor name '%.80s' has %zu bytes, expected 1..%d", name,
                         len, MAX_NAME_LEN);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: duplicate tensor '%s'", name);
    if (n_dims < 1 || n_dims > 4)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "gguf writer: tensor '%s' has %" PRIu32 " dimensions, expected 1..4", name,
                         n_dims);
    const mlxr_dtype_traits *tr = mlxr_dtype_get(type);
    if (!tr && mlxr_dtype_is_internal(type))
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "gguf writer: tensor '%s' has type %s, which is internal to mlxr (a load-time "
                         "layout) and cannot be written to a GGUF file",
                         name, mlxr_dtype_name(type) ? mlxr_dtype_name(type) : "?");
    if (!tr)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: tensor '%s' has unknown type %d",
                         name, (int)type);

    wtensor t = {.n_dims = n_dims,
                 .ne = {1, 1, 1, 1},
                 .type = type,
                 .data = data,
                 .fill = fill,
                 .user = user};
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return MLXR_FAIL(err, MLXR_ERR_INVALID,
                             "gguf writer: tensor '%s' has ne[%" PRIu32 "] = %" PRId64
                             ", expected >= 0",
                             name, d, ne[d]);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % tr->blck_size != 0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "gguf writer: tensor '%s': ne[0] = %" PRId64
                         " is not a multiple of the %s block size %" PRId32,
                         name, t.ne[0], tr->name, tr->blck_size);
    /* rows and bytes, with overflow checks (the product of all ne must fit int64 too) */
    size_t rows = 1, elems;
    for (int d = 1; d < 4; d++)
        if (!mlxr_mul_ok(rows, (size_t)t.ne[d], &rows))
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: tensor '%s': too many rows", name);
    if (!mlxr_mul_ok(rows, (size_t)t.ne[0], &elems) || elems > (size_t)INT64_MAX)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: tensor '%s': too many elements", name);
    t.row_size = (size_t)(t.ne[0] / tr->blck_size) * (size_t)tr->type_size;
    t.n_rows = (int64_t)rows;
    if (!mlxr_mul_ok(t.row_size, rows, &t.nbytes))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: tensor '%s': byte size overflows",
                         name);
    if (!fill && !data && t.nbytes)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: tensor '%s' has no data", name);

    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        wtensor *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "gguf writer: out of memory for tensors");
        w->tensors = p;
        w->cap_tensors = cap;
    }
    t.name = malloc(len + 1);
    if (!t.name) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "gguf writer: out of memory");
    memcpy(t.name, name, len + 1);
    w->tensors[w->n_tensors++] = t;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_writer_add_tensor(mlxr_gguf_writer *w, const char *name, uint32_t n_dims,
                                        const int64_t *ne, mlxr_dtype type, const void *data,
                                        mlxr_err *err) {
    return add_tensor(w, name, n_dims, ne, type, data, NULL, NULL, err);
}

mlxr_status mlxr_gguf_writer_add_tensor_fn(mlxr_gguf_writer *w, const char *name, uint32_t n_dims,
                                           const int64_t *ne, mlxr_dtype type,
                                           mlxr_gguf_fill_fn fill, void *user, mlxr_err *err) {
    if (!fill)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: tensor '%s': NULL fill function",
                         name ? name : "(null)");
    return add_tensor(w, name, n_dims, ne, type, NULL, fill, user, err);
}

/* ---- layout ---------------------------------------------------------------------------------- */

static size_t pad_to(size_t n, size_t align) {
    return (align - n % align) % align;
}

/* Bytes of the tensor info of t: name, n_dims, ne, type, offset. */
static size_t tensor_info_size(const wtensor *t) {
    return 8 + strlen(t->name) + 4 + 8 * (size_t)t->n_dims + 4 + 8;
}

/* Bytes of the auto-added general.alignment entry: key, type, u32 value. */
static size_t alignment_kv_size(void) {
    return 8 + strlen(ALIGNMENT_KEY) + 4 + 4;
}

/* Size of everything before the data section (unpadded), and of the padded data section. */
static mlxr_status layout(const mlxr_gguf_writer *w, size_t *header, size_t *data, mlxr_err *err) {
    size_t h = 4 + 4 + 8 + 8 + w->meta.n + (w->alignment_added ? 0 : alignment_kv_size());
    size_t d = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (!mlxr_add_ok(h, tensor_info_size(t), &h) || !mlxr_add_ok(d, t->nbytes, &d) ||
            !mlxr_add_ok(d, pad_to(t->nbytes, w->alignment), &d))
            return MLXR_FAIL(err, MLXR_ERR_RANGE,
                             "gguf writer: file size overflows at tensor "
                             "'%s'",
                             t->name);
    }
    *header = h;
    *data = d;
    return MLXR_OK;
}

int64_t mlxr_gguf_writer_n_kv(const mlxr_gguf_writer *w) {
    return w ? (int64_t)w->n_kv : 0;
}

int64_t mlxr_gguf_writer_n_tensors(const mlxr_gguf_writer *w) {
    return w ? (int64_t)w->n_tensors : 0;
}

mlxr_status mlxr_gguf_writer_file_size(const mlxr_gguf_writer *w, uint64_t *out, mlxr_err *err) {
    if (!w || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL argument");
    size_t h, d, total;
    mlxr_status st = layout(w, &h, &d, err);
    if (st != MLXR_OK) return st;
    if (!mlxr_add_ok(h, pad_to(h, w->alignment), &total) || !mlxr_add_ok(total, d, &total))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "gguf writer: file size overflows");
    *out = (uint64_t)total;
    return MLXR_OK;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

/* Output state: the file, its path for messages, and the bytes written so far. */
typedef struct sink {
    FILE *f;
    const char *path;
    uint64_t pos;
} sink;

static mlxr_status out(sink *s, const void *p, size_t n, mlxr_err *err) {
    if (n && fwrite(p, 1, n, s->f) != n)
        return MLXR_FAIL(err, MLXR_ERR_IO,
                         "gguf writer: write to '%s' failed at offset %" PRIu64 ": %s", s->path,
                         s->pos, strerror(errno));
    s->pos += n;
    return MLXR_OK;
}

static mlxr_status out_zeros(sink *s, size_t n, mlxr_err *err) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        mlxr_status st = out(s, zeros, k, err);
        if (st != MLXR_OK) return st;
        n -= k;
    }
    return MLXR_OK;
}

/* Header, kv entries and tensor infos, encoded into one buffer (`h` bytes, from layout). */
static mlxr_status encode_header(const mlxr_gguf_writer *w, size_t h, bytes *b, mlxr_err *err) {
    if (!reserve(b, h))
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "gguf writer: out of memory for a %zu-byte header",
                         h);
    put_raw(b, "GGUF", 4);
    put_le(b, GGUF_VERSION, 4);
    put_le(b, (uint64_t)w->n_tensors, 8);
    put_le(b, (uint64_t)w->n_kv + (w->alignment_added ? 0 : 1), 8);
    put_raw(b, w->meta.p, w->meta.n);
    if (!w->alignment_added) {
        put_kv_head(b, ALIGNMENT_KEY, strlen(ALIGNMENT_KEY), MLXR_GGUF_UINT32);
        put_le(b, w->alignment, 4);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        put_str(b, t->name, strlen(t->name));
        put_le(b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_le(b, (uint64_t)t->ne[d], 8);
        put_le(b, (uint64_t)t->type, 4);
        put_le(b, offset, 8);
        offset += t->nbytes + pad_to(t->nbytes, w->alignment); /* fits: checked by layout */
    }
    return MLXR_OK;
}

/* One tensor's data: straight from memory, or row chunks from its fill callback via `chunk`. */
static mlxr_status write_tensor(sink *s, const wtensor *t, uint8_t *chunk, size_t chunk_rows,
                                mlxr_err *err) {
    if (!t->fill || t->nbytes == 0) return out(s, t->data, t->nbytes, err); /* 0 bytes: no fill */
    for (int64_t r = 0; r < t->n_rows; r += (int64_t)chunk_rows) {
        int64_t n = t->n_rows - r < (int64_t)chunk_rows ? t->n_rows - r : (int64_t)chunk_rows;
        mlxr_status st = t->fill(t->user, chunk, r, n, err);
        if (st != MLXR_OK) return st;
        st = out(s, chunk, (size_t)n * t->row_size, err);
        if (st != MLXR_OK) return st;
    }
    return MLXR_OK;
}

/* Rows per fill call for t: as many as fit CHUNK_BYTES, at least one. */
static size_t rows_per_chunk(const wtensor *t) {
    size_t rows = t->row_size ? CHUNK_BYTES / t->row_size : 1;
    if (rows == 0) rows = 1;
    return (int64_t)rows > t->n_rows ? (size_t)t->n_rows : rows;
}

static mlxr_status write_all(const mlxr_gguf_writer *w, sink *s, mlxr_err *err) {
    size_t h, d;
    bytes head = {0};
    uint8_t *chunk = NULL;
    mlxr_status st = layout(w, &h, &d, err);
    if (st != MLXR_OK) goto done;
    st = encode_header(w, h, &head, err);
    if (st != MLXR_OK) goto done;
    st = out(s, head.p, head.n, err);
    if (st == MLXR_OK) st = out_zeros(s, pad_to(head.n, w->alignment), err);
    if (st != MLXR_OK) goto done;

    size_t chunk_bytes = 0; /* the largest fill chunk any tensor needs (fits: <= its nbytes) */
    for (size_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].fill &&
            rows_per_chunk(&w->tensors[i]) * w->tensors[i].row_size > chunk_bytes)
            chunk_bytes = rows_per_chunk(&w->tensors[i]) * w->tensors[i].row_size;
    if (chunk_bytes && !(chunk = malloc(chunk_bytes))) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "gguf writer: out of memory for a %zu-byte buffer",
                       chunk_bytes);
        goto done;
    }
    for (size_t i = 0; i < w->n_tensors && st == MLXR_OK; i++) {
        const wtensor *t = &w->tensors[i];
        st = write_tensor(s, t, chunk, t->fill ? rows_per_chunk(t) : 0, err);
        if (st == MLXR_OK) st = out_zeros(s, pad_to(t->nbytes, w->alignment), err);
    }
done:
    free(chunk);
    free(head.p);
    return st;
}

mlxr_status mlxr_gguf_writer_write_file(const mlxr_gguf_writer *w, const char *path,
                                        mlxr_err *err) {
    if (!w || !path) return MLXR_FAIL(err, MLXR_ERR_INVALID, "gguf writer: NULL writer or path");
    sink s = {.f = fopen(path, "wb"), .path = path};
    if (!s.f)
        return MLXR_FAIL(err, MLXR_ERR_IO, "gguf writer: cannot create '%s': %s", path,
                         strerror(errno));
    mlxr_status st = write_all(w, &s, err);
    if (fclose(s.f) != 0 && st == MLXR_OK)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "gguf writer: closing '%s' failed: %s", path,
                       strerror(errno));
    if (st != MLXR_OK) remove(path);
    return st;
}

/* ---- lifetime ----------------------------------------------------------------------------------
 */

mlxr_gguf_writer *mlxr_gguf_writer_new(void) {
    mlxr_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->alignment = DEFAULT_ALIGNMENT;
    return w;
}

void mlxr_gguf_writer_free(mlxr_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->meta.p);
    free(w);
}
