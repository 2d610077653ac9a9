/*
 * safetensors.c - the safetensors reader (format in safetensors.h). The whole header is parsed
 * and checked at open: afterwards every tensor's data pointer and size are known to lie inside
 * the file and to agree with its dtype and shape, so callers trust them without re-checking.
 */
#include "format/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/file.h"

struct mlxr_st {
    mlxr_mmap map; /* zeroed for open_mem */
    const uint8_t *base;
    size_t size;
    json_t *root;           /* owns the name and metadata strings */
    json_t *meta;           /* borrowed from root, or NULL */
    mlxr_st_tensor *tensor; /* sorted by offset */
    int64_t n_tensor;
    const mlxr_st_tensor **by_name; /* sorted by name, for lookups */
};

static const struct {
    const char *name;
    size_t size;
} dtypes[MLXR_ST_DTYPE_COUNT] = {
    [MLXR_ST_BOOL] = {"BOOL", 1},   [MLXR_ST_U8] = {"U8", 1},
    [MLXR_ST_I8] = {"I8", 1},       [MLXR_ST_F8_E4M3] = {"F8_E4M3", 1},
    [MLXR_ST_F8_E5M2] = {"F8_E5M2", 1}, [MLXR_ST_I16] = {"I16", 2},
    [MLXR_ST_U16] = {"U16", 2},     [MLXR_ST_F16] = {"F16", 2},
    [MLXR_ST_BF16] = {"BF16", 2},   [MLXR_ST_I32] = {"I32", 4},
    [MLXR_ST_U32] = {"U32", 4},     [MLXR_ST_F32] = {"F32", 4},
    [MLXR_ST_I64] = {"I64", 8},     [MLXR_ST_U64] = {"U64", 8},
    [MLXR_ST_F64] = {"F64", 8},
};

const char *mlxr_st_dtype_name(mlxr_st_dtype t) {
    return (unsigned)t < MLXR_ST_DTYPE_COUNT ? dtypes[t].name : NULL;
}

size_t mlxr_st_dtype_size(mlxr_st_dtype t) {
    return (unsigned)t < MLXR_ST_DTYPE_COUNT ? dtypes[t].size : 0;
}

static bool dtype_parse(const char *s, mlxr_st_dtype *out) {
    for (int t = 0; t < MLXR_ST_DTYPE_COUNT; t++)
        if (strcmp(s, dtypes[t].name) == 0) {
            *out = (mlxr_st_dtype)t;
            return true;
        }
    return false;
}

/* A JSON integer in [0, limit], as size_t. */
static bool json_index(const json_t *v, size_t limit, size_t *out) {
    if (!json_is_integer(v)) return false;
    json_int_t i = json_integer_value(v);
    if (i < 0 || (unsigned long long)i > limit) return false;
    *out = (size_t)i;
    return true;
}

/* Parse one tensor entry into *t; data_size is the length of the data buffer. */
static mlxr_status parse_tensor(const char *name, const json_t *v, size_t data_size,
                                mlxr_st_tensor *t, mlxr_err *err) {
    if (!json_is_object(v))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: tensor '%s' is not an object", name);
    const json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
                 *jo = json_object_get(v, "data_offsets");
    if (!json_is_string(jd) || !dtype_parse(json_string_value(jd), &t->dtype))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: tensor '%s' has no known dtype",
                         name);
    if (!json_is_array(js) || json_array_size(js) > MLXR_ST_MAX_DIMS)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "safetensors: tensor '%s' shape is not an array of at most %d dims",
                         name, MLXR_ST_MAX_DIMS);
    t->n_dims = (int)json_array_size(js);
    size_t count = 1;
    for (int d = 0; d < t->n_dims; d++) {
        size_t dim;
        if (!json_index(json_array_get(js, (size_t)d), (size_t)INT64_MAX, &dim))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             "safetensors: tensor '%s' dim %d is not a non-negative integer",
                             name, d);
        t->shape[d] = (int64_t)dim;
        if (!mlxr_mul_ok(count, dim, &count) || count > (size_t)INT64_MAX)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: tensor '%s' shape overflows",
                             name);
    }
    t->n_elements = (int64_t)count;
    size_t nbytes;
    if (!mlxr_mul_ok(count, dtypes[t->dtype].size, &nbytes))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: tensor '%s' size overflows", name);
    size_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_index(json_array_get(jo, 0), SIZE_MAX, &begin) ||
        !json_index(json_array_get(jo, 1), SIZE_MAX, &end))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "safetensors: tensor '%s' data_offsets is not [begin, end]", name);
    if (begin > end || end > data_size)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "safetensors: tensor '%s' data [%zu, %zu) outside the %zu-byte buffer",
                         name, begin, end, data_size);
    if (end - begin != nbytes)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "safetensors: tensor '%s' holds %zu bytes, its %s shape needs %zu", name,
                         end - begin, dtypes[t->dtype].name, nbytes);
    t->name = name;
    t->offset = begin;
    t->nbytes = nbytes;
    return MLXR_OK;
}

static int by_offset(const void *a, const void *b) {
    const mlxr_st_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const mlxr_st_tensor *const *)a)->name,
                  (*(const mlxr_st_tensor *const *)b)->name);
}

static mlxr_status parse_metadata(mlxr_st *st, json_t *meta, mlxr_err *err) {
    if (!json_is_object(meta))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: __metadata__ is not an object");
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             "safetensors: __metadata__ value of '%s' is not a string", k);
    }
    st->meta = meta;
    return MLXR_OK;
}

static mlxr_status parse(mlxr_st *st, mlxr_err *err) {
    if (st->size < 8)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "safetensors: %zu-byte file is shorter than its 8-byte header length",
                         st->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->base[i];
    if (n > MLXR_ST_MAX_HEADER || n > st->size - 8)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "safetensors: header of %llu bytes does not fit the %zu-byte file "
                         "(limit %u)",
                         (unsigned long long)n, st->size, MLXR_ST_MAX_HEADER);
    json_error_t je;
    st->root = json_loadb((const char *)st->base + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!st->root)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: header JSON: %s (line %d col %d)",
                         je.text, je.line, je.column);
    if (!json_is_object(st->root))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "safetensors: header is not a JSON object");
    size_t data_size = st->size - 8 - (size_t)n;
    const uint8_t *data = st->base + 8 + n;
    size_t count = json_object_size(st->root);
    st->tensor = calloc(count ? count : 1, sizeof *st->tensor);
    st->by_name = calloc(count ? count : 1, sizeof *st->by_name);
    if (!st->tensor || !st->by_name)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "safetensors: %zu tensors", count);
    const char *key;
    json_t *v;
    json_object_foreach(st->root, key, v) {
        mlxr_status s;
        if (strcmp(key, "__metadata__") == 0) {
            s = parse_metadata(st, v, err);
        } else {
            s = parse_tensor(key, v, data_size, &st->tensor[st->n_tensor], err);
            if (s == MLXR_OK) st->n_tensor++;
        }
        if (s != MLXR_OK) return s;
    }
    qsort(st->tensor, (size_t)st->n_tensor, sizeof *st->tensor, by_offset);
    for (int64_t i = 0; i < st->n_tensor; i++) {
        mlxr_st_tensor *t = &st->tensor[i];
        /* sorted by offset: overlap means the next one starts before this one ends (empty
         * tensors occupy nothing and may sit anywhere in the buffer) */
        if (i > 0 && t->nbytes > 0) {
            const mlxr_st_tensor *p = &st->tensor[i - 1];
            if (p->nbytes > 0 && t->offset < p->offset + p->nbytes)
                return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                                 "safetensors: tensors '%s' and '%s' overlap", p->name, t->name);
        }
        t->data = data + t->offset;
        st->by_name[i] = t;
    }
    qsort(st->by_name, (size_t)st->n_tensor, sizeof *st->by_name, by_name);
    return MLXR_OK;
}

mlxr_status mlxr_st_open_mem(const void *data, size_t size, mlxr_st **out, mlxr_err *err) {
    *out = NULL;
    mlxr_st *st = calloc(1, sizeof *st);
    if (!st) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "safetensors: out of memory");
    st->base = data;
    st->size = size;
    mlxr_status s = parse(st, err);
    if (s != MLXR_OK) {
        mlxr_st_close(st);
        return s;
    }
    *out = st;
    return MLXR_OK;
}

mlxr_status mlxr_st_open(const char *path, mlxr_st **out, mlxr_err *err) {
    *out = NULL;
    mlxr_mmap map = {0};
    mlxr_status s = mlxr_file_map(path, &map, err);
    if (s != MLXR_OK) return s;
    s = mlxr_st_open_mem(map.data, map.size, out, err);
    if (s != MLXR_OK) {
        mlxr_file_unmap(&map);
        return s;
    }
    (*out)->map = map;
    return MLXR_OK;
}

void mlxr_st_close(mlxr_st *st) {
    if (!st) return;
    free(st->tensor);
    free(st->by_name);
    json_decref(st->root);
    mlxr_file_unmap(&st->map);
    free(st);
}

int64_t mlxr_st_n_tensors(const mlxr_st *st) { return st->n_tensor; }

const mlxr_st_tensor *mlxr_st_tensor_at(const mlxr_st *st, int64_t i) {
    return i >= 0 && i < st->n_tensor ? &st->tensor[i] : NULL;
}

const mlxr_st_tensor *mlxr_st_find(const mlxr_st *st, const char *name) {
    mlxr_st_tensor key = {.name = name};
    const mlxr_st_tensor *kp = &key;
    const mlxr_st_tensor *const *hit =
        bsearch(&kp, st->by_name, (size_t)st->n_tensor, sizeof *st->by_name, by_name);
    return hit ? *hit : NULL;
}

mlxr_status mlxr_st_get(const mlxr_st *st, const char *name, const mlxr_st_tensor **out,
                        mlxr_err *err) {
    *out = mlxr_st_find(st, name);
    if (!*out)
        return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND, "safetensors: no tensor '%s'", name);
    return MLXR_OK;
}

const char *mlxr_st_metadata(const mlxr_st *st, const char *key) {
    return st->meta ? json_string_value(json_object_get(st->meta, key)) : NULL;
}

int64_t mlxr_st_n_metadata(const mlxr_st *st) {
    return st->meta ? (int64_t)json_object_size(st->meta) : 0;
}

bool mlxr_st_metadata_at(const mlxr_st *st, int64_t i, const char **key, const char **value) {
    if (!st->meta || i < 0) return false;
    int64_t j = 0;
    const char *k;
    json_t *v;
    json_object_foreach(st->meta, k, v) {
        if (j++ == i) {
            *key = k;
            *value = json_string_value(v);
            return true;
        }
    }
    return false;
}
