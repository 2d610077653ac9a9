/*
 * gguf.c - reader for GGUF files, versions 2 and 3. The file is untrusted: every count, length,
 * type, dimension and offset is checked against the bytes that are really there, and against
 * overflow, before it is used; bad input gives MLXR_ERR_FORMAT with a message, never a crash.
 *
 * Layout (little-endian; "offset" below means bytes from the start of the file):
 *   0    "GGUF"                        magic
 *   4    u32 version                   2 or 3 (version 1 used 32-bit counts and is refused)
 *   8    u64 n_tensors
 *   16   u64 n_kv
 *   24   n_kv x kv                     { str key | u32 value_type | value }
 *        n_tensors x tensor info       { str name | u32 n_dims | u64 ne[n_dims] | u32 type |
 *                                        u64 offset }
 *        padding                       to a multiple of general.alignment (default 32)
 *        data section                  tensor offsets count from its start
 *   str   = u64 len | len bytes (no NUL)
 *   value = u8 | i8 | u16 | i16 | u32 | i32 | f32 | bool (one byte) | str | u64 | i64 | f64 | array
 *   array = u32 elem_type | u64 n | n values of elem_type (arrays may hold arrays)
 *
 * Checks, in file order:
 *   - magic "GGUF"; version 2 or 3 (a byte-swapped version is named as big-endian)
 *   - every read stays inside the buffer; each count (n_kv, n_tensors, array length) is checked
 *     against the bytes left divided by the smallest encoding of one item BEFORE anything is
 *     allocated, so a count of 2^60 fails at once
 *   - keys: 1..MAX_KEY_LEN bytes, no NUL byte, unique; value types known; bools are 0 or 1;
 *     arrays nest at most MAX_DEPTH deep (string values may hold any bytes)
 *   - general.alignment, when present: uint32, a non-zero power of two
 *   - tensor infos: name 1..MAX_NAME_LEN bytes, no NUL, unique; n_dims 1..4; every ne >= 0 and
 *     the product of the non-zero ones fits int64; type known to mlxr_dtype_get; ne[0] a
 *     multiple of the type's block size; byte size fits size_t; offset a multiple of the alignment
 *   - data section = end of the tensor infos rounded up to the alignment; every tensor's
 *     [offset, offset + nbytes) lies inside the file (a file without tensors, like the
 *     vocab-only ones, may end before the padding)
 *
 * Ownership: the reader points into the caller's buffer (or its own mmap). It owns the kv and
 * tensor arrays, two hash indexes over names, and a block list holding the offsets tables of
 * string/array arrays (and, for arrays of arrays, each element's own value), so that every
 * accessor is O(1) and nested arrays keep working tables.
 */
#include "format/gguf.h"
#include "format/dtype.h"
#include "util/err.h"
#include "util/file.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8       /* deepest array nesting accepted (an array is depth 1) */
#define MAX_KEY_LEN 65535 /* the GGUF spec's limit for keys */
#define MAX_NAME_LEN 255  /* GGML itself keeps names under 64 bytes; leave headroom */
#define DEFAULT_ALIGNMENT 32
#define MIN_KV_BYTES 14     /* key length 8 + 1 key byte + type 4 + a 1-byte value */
#define MIN_TENSOR_BYTES 33 /* name len 8 + 1 name byte + n_dims 4 + ne 8 + type 4 + off 8 */
#define MIN_ARRAY_BYTES 12  /* element type 4 + count 8 */
#define MIN_STR_BYTES 8     /* length 8 */
#define BLOCK_WORDS 8192    /* default size of an offsets block, in uint64_t */

/* Fixed encoded size of each scalar value type; 0 for the variable-size STRING and ARRAY. */
static const uint8_t SCALAR_SIZE[MLXR_GGUF_TYPE_COUNT] = {
    [MLXR_GGUF_UINT8] = 1,  [MLXR_GGUF_INT8] = 1,  [MLXR_GGUF_UINT16] = 2,  [MLXR_GGUF_INT16] = 2,
    [MLXR_GGUF_UINT32] = 4, [MLXR_GGUF_INT32] = 4, [MLXR_GGUF_FLOAT32] = 4, [MLXR_GGUF_BOOL] = 1,
    [MLXR_GGUF_UINT64] = 8, [MLXR_GGUF_INT64] = 8, [MLXR_GGUF_FLOAT64] = 8,
};

/* Arrays of arrays keep their elements' values in uint64_t storage right after the offsets. */
_Static_assert(sizeof(mlxr_gguf_value) % sizeof(uint64_t) == 0, "value size in words");
_Static_assert(_Alignof(mlxr_gguf_value) <= _Alignof(uint64_t), "value alignment");

/* One chunk of reader-owned storage for offsets tables; chunks never move once allocated. */
typedef struct block {
    struct block *next;
    size_t used, cap; /* in uint64_t words */
    uint64_t mem[];
} block;

/* Open-addressing hash index from a name to its position; slot holds index + 1, 0 = empty. */
typedef struct name_index {
    uint32_t *slot; /* [mask + 1] */
    size_t mask;
} name_index;

struct mlxr_gguf {
    mlxr_mmap map;       /* the mapped file (mlxr_gguf_open only; zeroed for _open_mem) */
    const uint8_t *base; /* the file's bytes [size], borrowed */
    size_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;      /* file offset of the data section */
    int64_t n_kv, n_tensors;   /* entries filled so far while parsing; all of them after */
    mlxr_gguf_kv *kv;          /* [n_kv] */
    mlxr_gguf_tensor *tensors; /* [n_tensors] */
    name_index kv_index, tensor_index;
    block *blocks;
};

/* Parser state: a read position in the file and a description of what is being read. */
typedef struct parser {
    mlxr_gguf *g;
    const uint8_t *p; /* == g->base */
    size_t size, pos;
    mlxr_err *err;
    char where[200]; /* "header", "key 'general.name'", "tensor 3 'output.weight'" */
} parser;

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        mlxr_status st_ = (expr);                                                                  \
        if (st_ != MLXR_OK) return st_;                                                            \
    } while (0)

/* ---- little-endian decoding (independent of the host's byte order) ------------------------ */

static uint32_t rd32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t rd64(const uint8_t *b) {
    return (uint64_t)rd32(b) | (uint64_t)rd32(b + 4) << 32;
}

static float f32_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double f64_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- bounded reads ------------------------------------------------------------------------- */

static size_t left(const parser *ps) {
    return ps->size - ps->pos;
}

/* Fail unless `n` more bytes are there; `what` names the field. */
static mlxr_status need(parser *ps, size_t n, const char *what) {
    if (n <= left(ps)) return MLXR_OK;
    return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                     "%s: file truncated at offset %zu: %s needs %zu bytes, %zu left (file is "
                     "%zu bytes)",
                     ps->where, ps->pos, what, n, left(ps), ps->size);
}

static mlxr_status read_u32(parser *ps, uint32_t *v, const char *what) {
    TRY(need(ps, 4, what));
    *v = rd32(ps->p + ps->pos);
    ps->pos += 4;
    return MLXR_OK;
}

static mlxr_status read_u64(parser *ps, uint64_t *v, const char *what) {
    TRY(need(ps, 8, what));
    *v = rd64(ps->p + ps->pos);
    ps->pos += 8;
    return MLXR_OK;
}

/* A string of at most `max_len` bytes (any bytes) that must fit in the file. */
static mlxr_status read_str(parser *ps, mlxr_gguf_str *s, uint64_t max_len, const char *what) {
    size_t at = ps->pos;
    uint64_t len;
    TRY(read_u64(ps, &len, what));
    if (len > max_len)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: %s at offset %zu has length %" PRIu64 ", limit is %" PRIu64,
                         ps->where, what, at, len, max_len);
    if (len > left(ps))
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: %s at offset %zu has length %" PRIu64 " but only %zu bytes are left",
                         ps->where, what, at, len, left(ps));
    s->data = (const char *)ps->p + ps->pos;
    s->len = len;
    ps->pos += (size_t)len;
    return MLXR_OK;
}

/* A key or tensor name: 1..max_len bytes, no NUL (so it compares with C strings). */
static mlxr_status read_name(parser *ps, mlxr_gguf_str *s, uint64_t max_len, const char *what) {
    size_t at = ps->pos;
    TRY(read_str(ps, s, max_len, what));
    if (s->len == 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT, "%s: empty %s at offset %zu", ps->where, what,
                         at);
    if (memchr(s->data, 0, (size_t)s->len))
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT, "%s: %s at offset %zu contains a NUL byte",
                         ps->where, what, at);
    return MLXR_OK;
}

/* ---- reader-owned storage for offsets tables ----------------------------------------------- */

/* `words` zeroed uint64_t that stay put until close, or NULL when out of memory. */
static uint64_t *alloc_words(mlxr_gguf *g, size_t words) {
    block *b = g->blocks;
    if (!b || b->cap - b->used < words) {
        size_t cap = words > BLOCK_WORDS ? words : BLOCK_WORDS, bytes;
        if (!mlxr_mul_ok(cap, sizeof(uint64_t), &bytes) ||
            !mlxr_add_ok(bytes, sizeof(block), &bytes))
            return NULL;
        b = calloc(1, bytes);
        if (!b) return NULL;
        b->cap = cap;
        b->next = g->blocks;
        g->blocks = b;
    }
    uint64_t *p = b->mem + b->used;
    b->used += words;
    return p;
}

/* ---- name indexes -------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static bool str_eq(const mlxr_gguf_str *a, const char *s, size_t n) {
    return a->len == n && memcmp(a->data, s, n) == 0;
}

/* Room for n names at load factor <= 1/2. n is already bounded by the file size. */
static mlxr_status index_init(name_index *ix, uint64_t n, mlxr_err *err) {
    if (n >= UINT32_MAX)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%" PRIu64 " names: too many to index", n);
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    if (!ix->slot)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory indexing %" PRIu64 " names", n);
    ix->mask = cap - 1;
    return MLXR_OK;
}

/* The position of name `s` (n bytes) in names[], or -1; *hole receives the empty slot where it
 * would go. Entries of names[] are `stride` bytes apart and each starts with its mlxr_gguf_str,
 * as mlxr_gguf_kv and mlxr_gguf_tensor do. */
static int64_t index_find(const name_index *ix, const void *names, size_t stride, const char *s,
                          size_t n, size_t *hole) {
    if (!ix->slot) return -1;
    for (size_t h = (size_t)hash_bytes(s, n) & ix->mask;; h = (h + 1) & ix->mask) {
        uint32_t v = ix->slot[h];
        if (v == 0) {
            *hole = h;
            return -1;
        }
        const mlxr_gguf_str *name = (const void *)((const char *)names + (v - 1) * stride);
        if (str_eq(name, s, n)) return v - 1;
    }
}

/* Add entry i of names[] unless its name is there already; returns the earlier entry or -1. */
static int64_t index_add(name_index *ix, const void *names, size_t stride, int64_t i) {
    const mlxr_gguf_str *name = (const void *)((const char *)names + (size_t)i * stride);
    size_t hole = 0;
    int64_t dup = index_find(ix, names, stride, name->data, (size_t)name->len, &hole);
    if (dup < 0) ix->slot[hole] = (uint32_t)i + 1;
    return dup;
}

/* ---- metadata values ----------------------------------------------------------------------- */

static bool is_unsigned(mlxr_gguf_type t) {
    return t == MLXR_GGUF_UINT8 || t == MLXR_GGUF_UINT16 || t == MLXR_GGUF_UINT32 ||
           t == MLXR_GGUF_UINT64;
}

static bool is_signed(mlxr_gguf_type t) {
    return t == MLXR_GGUF_INT8 || t == MLXR_GGUF_INT16 || t == MLXR_GGUF_INT32 ||
           t == MLXR_GGUF_INT64;
}

static mlxr_status parse_array(parser *ps, int depth, mlxr_gguf_value *out);

/* The low `bytes` bytes of u as a two's-complement number. */
static int64_t sign_extend(uint64_t u, size_t bytes) {
    uint64_t m = 1ull << (8 * bytes - 1);
    return (int64_t)((u ^ m) - m);
}

/* A fixed-size value at the read position (already known to fit). */
static mlxr_status parse_scalar(parser *ps, mlxr_gguf_type type, mlxr_gguf_value *out) {
    size_t size = SCALAR_SIZE[type];
    uint64_t u = 0;
    for (size_t i = 0; i < size; i++)
        u |= (uint64_t)ps->p[ps->pos + i] << (8 * i);
    if (type == MLXR_GGUF_BOOL && u > 1)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT, "%s: bool at offset %zu is %u, expected 0 or 1",
                         ps->where, ps->pos, (unsigned)u);
    if (type == MLXR_GGUF_BOOL)
        out->v.b = u != 0;
    else if (type == MLXR_GGUF_FLOAT32)
        out->v.f64 = f32_bits((uint32_t)u);
    else if (type == MLXR_GGUF_FLOAT64)
        out->v.f64 = f64_bits(u);
    else if (is_signed(type))
        out->v.i64 = sign_extend(u, size);
    else
        out->v.u64 = u;
    ps->pos += size;
    return MLXR_OK;
}

/* A value of a known `type`; `depth` is the number of arrays around it. */
static mlxr_status parse_value(parser *ps, mlxr_gguf_type type, int depth, mlxr_gguf_value *out) {
    out->type = type;
    if (type == MLXR_GGUF_STRING) return read_str(ps, &out->v.str, UINT64_MAX, "string value");
    if (type == MLXR_GGUF_ARRAY) return parse_array(ps, depth + 1, out);
    TRY(need(ps, SCALAR_SIZE[type], mlxr_gguf_type_name(type)));
    return parse_scalar(ps, type, out);
}

/* Elements of a fixed-size type: one bounds check for all; bools are checked one by one. */
static mlxr_status parse_fixed_elems(parser *ps, mlxr_gguf_value *out) {
    size_t n = (size_t)out->v.arr.n, esize = SCALAR_SIZE[out->v.arr.type];
    out->v.arr.nbytes = (uint64_t)(n * esize); /* n * esize <= left(ps): checked by caller */
    if (out->v.arr.type == MLXR_GGUF_BOOL) {
        const uint8_t *b = out->v.arr.data;
        for (size_t i = 0; i < n; i++)
            if (b[i] > 1)
                return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                                 "%s: bool element %zu at offset %zu is %u, expected 0 or 1",
                                 ps->where, i, ps->pos + i, b[i]);
    }
    ps->pos += n * esize;
    return MLXR_OK;
}

/* Elements of variable size (strings, arrays): record each one's offset from arr.data. For
 * arrays of arrays the table is followed by one parsed mlxr_gguf_value per element. */
static mlxr_status parse_var_elems(parser *ps, int depth, mlxr_gguf_value *out) {
    size_t n = (size_t)out->v.arr.n, start = ps->pos, words = n;
    bool nested = out->v.arr.type == MLXR_GGUF_ARRAY;
    if (n == 0) return MLXR_OK;
    /* n <= bytes left / 8, so neither product overflows; sizeof(value) is a multiple of 8 */
    if (nested) words += n * (sizeof(mlxr_gguf_value) / sizeof(uint64_t));
    uint64_t *offs = alloc_words(ps->g, words);
    if (!offs)
        return MLXR_FAIL(ps->err, MLXR_ERR_NOMEM, "%s: out of memory for an array of %zu elements",
                         ps->where, n);
    mlxr_gguf_value *kids = nested ? (mlxr_gguf_value *)(void *)(offs + n) : NULL;
    for (size_t i = 0; i < n; i++) {
        offs[i] = ps->pos - start;
        if (nested) {
            TRY(parse_array(ps, depth + 1, &kids[i]));
        } else {
            mlxr_gguf_str s;
            TRY(read_str(ps, &s, UINT64_MAX, "string element"));
        }
    }
    out->v.arr.offsets = offs;
    out->v.arr.nbytes = ps->pos - start;
    return MLXR_OK;
}

/* The body of an array (element type, count, elements); `depth` counts this array. */
static mlxr_status parse_array(parser *ps, int depth, mlxr_gguf_value *out) {
    size_t at = ps->pos;
    if (depth > MAX_DEPTH)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: arrays nested more than %d deep at offset %zu", ps->where, MAX_DEPTH,
                         at);
    uint32_t et;
    uint64_t n;
    TRY(read_u32(ps, &et, "array element type"));
    if (et >= MLXR_GGUF_TYPE_COUNT)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: unknown array element type %" PRIu32 " at offset %zu", ps->where, et,
                         at);
    TRY(read_u64(ps, &n, "array length"));
    size_t min = et == MLXR_GGUF_STRING  ? MIN_STR_BYTES
                 : et == MLXR_GGUF_ARRAY ? MIN_ARRAY_BYTES
                                         : SCALAR_SIZE[et];
    if (n > left(ps) / min)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: array at offset %zu claims %" PRIu64 " elements of type %s (at least "
                         "%zu bytes each) but only %zu bytes are left",
                         ps->where, at, n, mlxr_gguf_type_name(et), min, left(ps));
    out->type = MLXR_GGUF_ARRAY;
    out->v.arr.type = (mlxr_gguf_type)et;
    out->v.arr.n = n;
    out->v.arr.data = ps->p + ps->pos;
    out->v.arr.nbytes = 0;
    out->v.arr.offsets = NULL;
    if (SCALAR_SIZE[et]) return parse_fixed_elems(ps, out);
    return parse_var_elems(ps, depth, out);
}

/* ---- header and key/value pairs ------------------------------------------------------------ */

static mlxr_status parse_header(parser *ps, uint64_t *n_tensors, uint64_t *n_kv) {
    snprintf(ps->where, sizeof ps->where, "header");
    if (ps->size < 4 || memcmp(ps->p, "GGUF", 4) != 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "not a GGUF file: the first 4 bytes are not \"GGUF\" (file is %zu bytes)",
                         ps->size);
    ps->pos = 4;
    uint32_t v;
    TRY(read_u32(ps, &v, "version"));
    if (v == 1)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "GGUF version 1 is not supported (only versions 2 and 3); convert the "
                         "file again with a current llama.cpp");
    if (v != 2 && v != 3) {
        bool swapped = (v & 0xffff) == 0 && (v >> 24) <= 3 && (v >> 24) != 0;
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "GGUF version %" PRIu32 " is not supported (only versions 2 and 3)%s", v,
                         swapped ? "; this looks like a big-endian file" : "");
    }
    ps->g->version = v;
    TRY(read_u64(ps, n_tensors, "n_tensors"));
    TRY(read_u64(ps, n_kv, "n_kv"));
    return MLXR_OK;
}

/* Describe a name for messages: its first bytes, enough to recognise it. */
static void set_where(parser *ps, const char *kind, int64_t i, const mlxr_gguf_str *name) {
    if (name)
        snprintf(ps->where, sizeof ps->where, "%s '%.*s'", kind,
                 (int)(name->len < 150 ? name->len : 150), name->data);
    else
        snprintf(ps->where, sizeof ps->where, "%s %" PRId64, kind, i);
}

static mlxr_status parse_kv(parser *ps, int64_t i) {
    mlxr_gguf *g = ps->g;
    mlxr_gguf_kv *kv = &g->kv[i];
    set_where(ps, "key", i, NULL);
    TRY(read_name(ps, &kv->key, MAX_KEY_LEN, "key"));
    set_where(ps, "key", i, &kv->key);
    int64_t dup = index_add(&g->kv_index, g->kv, sizeof *kv, i);
    if (dup >= 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "duplicate key '%.*s' (entries %" PRId64 " and %" PRId64 ")",
                         (int)kv->key.len, kv->key.data, dup, i);
    size_t at = ps->pos;
    uint32_t type;
    TRY(read_u32(ps, &type, "value type"));
    if (type >= MLXR_GGUF_TYPE_COUNT)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: unknown value type %" PRIu32 " at offset %zu", ps->where, type, at);
    return parse_value(ps, (mlxr_gguf_type)type, 0, &kv->value);
}

static mlxr_status parse_kvs(parser *ps, uint64_t n_kv) {
    mlxr_gguf *g = ps->g;
    if (n_kv > left(ps) / MIN_KV_BYTES)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "header: n_kv is %" PRIu64 " but only %zu bytes follow the header (a "
                         "key/value pair takes at least %d)",
                         n_kv, left(ps), MIN_KV_BYTES);
    if (n_kv == 0) return MLXR_OK;
    g->kv = calloc((size_t)n_kv, sizeof *g->kv);
    if (!g->kv)
        return MLXR_FAIL(ps->err, MLXR_ERR_NOMEM, "out of memory for %" PRIu64 " keys", n_kv);
    TRY(index_init(&g->kv_index, n_kv, ps->err));
    for (g->n_kv = 0; g->n_kv < (int64_t)n_kv; g->n_kv++)
        TRY(parse_kv(ps, g->n_kv));
    return MLXR_OK;
}

static mlxr_status read_alignment(parser *ps) {
    const mlxr_gguf_value *v = mlxr_gguf_find(ps->g, "general.alignment");
    ps->g->alignment = DEFAULT_ALIGNMENT;
    if (!v) return MLXR_OK;
    if (v->type != MLXR_GGUF_UINT32)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "key 'general.alignment' has type %s, expected uint32",
                         mlxr_gguf_type_name(v->type));
    uint64_t a = v->v.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "key 'general.alignment' is %" PRIu64 ", expected a power of two", a);
    ps->g->alignment = (uint32_t)a;
    return MLXR_OK;
}

/* ---- tensor infos -------------------------------------------------------------------------- */

static mlxr_status read_dims(parser *ps, mlxr_gguf_tensor *t) {
    size_t at = ps->pos;
    TRY(read_u32(ps, &t->n_dims, "n_dims"));
    if (t->n_dims < 1 || t->n_dims > 4)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: n_dims is %" PRIu32 " at offset %zu, expected 1 to 4", ps->where,
                         t->n_dims, at);
    int64_t count = 1;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        TRY(read_u64(ps, &ne, "dimension"));
        if (ne > INT64_MAX)
            return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                             "%s: ne[%" PRIu32 "] is %" PRIu64 " (negative as int64)", ps->where, d,
                             ne);
        t->ne[d] = (int64_t)ne;
        /* zeros are skipped so that no partial product of the dims can overflow either */
        if (ne != 0 && __builtin_mul_overflow(count, t->ne[d], &count))
            return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                             "%s: element count overflows int64 (ne = %" PRId64 " x %" PRId64
                             " x %" PRId64 " x %" PRId64 ")",
                             ps->where, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    }
    return MLXR_OK;
}

/* Type, block-size multiple and byte size; the element count is known to fit int64. */
static mlxr_status read_type(parser *ps, mlxr_gguf_tensor *t) {
    uint32_t type;
    TRY(read_u32(ps, &type, "tensor type"));
    const mlxr_dtype_traits *tr = mlxr_dtype_get(type);
    if (!tr)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT, "%s has unknown type %" PRIu32, ps->where, type);
    t->type = (mlxr_dtype)type;
    if (t->ne[0] % tr->blck_size != 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: ne[0] = %" PRId64 " is not a multiple of the %s block size %d",
                         ps->where, t->ne[0], tr->name, (int)tr->blck_size);
    size_t nbytes = (size_t)(t->ne[0] / tr->blck_size);
    bool ok = mlxr_mul_ok(nbytes, (size_t)tr->type_size, &nbytes);
    for (int d = 1; d < 4 && ok; d++)
        ok = mlxr_mul_ok(nbytes, (size_t)t->ne[d], &nbytes);
    if (!ok)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT, "%s: byte size overflows size_t", ps->where);
    t->nbytes = nbytes;
    return MLXR_OK;
}

static mlxr_status parse_tensor_info(parser *ps, int64_t i) {
    mlxr_gguf *g = ps->g;
    mlxr_gguf_tensor *t = &g->tensors[i];
    set_where(ps, "tensor", i, NULL);
    TRY(read_name(ps, &t->name, MAX_NAME_LEN, "tensor name"));
    set_where(ps, "tensor", i, &t->name);
    int64_t dup = index_add(&g->tensor_index, g->tensors, sizeof *t, i);
    if (dup >= 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "duplicate tensor name '%.*s' (tensors %" PRId64 " and %" PRId64 ")",
                         (int)t->name.len, t->name.data, dup, i);
    TRY(read_dims(ps, t));
    TRY(read_type(ps, t));
    size_t at = ps->pos;
    TRY(read_u64(ps, &t->offset, "tensor offset"));
    if (t->offset % g->alignment != 0)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "%s: offset %" PRIu64 " (at file offset %zu) is not a multiple of the "
                         "alignment %" PRIu32,
                         ps->where, t->offset, at, g->alignment);
    return MLXR_OK;
}

static mlxr_status parse_tensor_infos(parser *ps, uint64_t n) {
    mlxr_gguf *g = ps->g;
    if (n > left(ps) / MIN_TENSOR_BYTES)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "header: n_tensors is %" PRIu64 " but only %zu bytes follow the "
                         "metadata (a tensor info takes at least %d)",
                         n, left(ps), MIN_TENSOR_BYTES);
    if (n == 0) return MLXR_OK;
    g->tensors = calloc((size_t)n, sizeof *g->tensors);
    if (!g->tensors)
        return MLXR_FAIL(ps->err, MLXR_ERR_NOMEM, "out of memory for %" PRIu64 " tensors", n);
    TRY(index_init(&g->tensor_index, n, ps->err));
    for (g->n_tensors = 0; g->n_tensors < (int64_t)n; g->n_tensors++)
        TRY(parse_tensor_info(ps, g->n_tensors));
    return MLXR_OK;
}

/* Place the data section after the infos and check that every tensor lies inside the file. */
static mlxr_status place_tensors(parser *ps) {
    mlxr_gguf *g = ps->g;
    uint64_t a = g->alignment;
    g->data_offset = ((uint64_t)ps->pos + a - 1) / a * a; /* pos < 2^63, a <= 2^31 */
    if (g->n_tensors == 0) return MLXR_OK; /* vocab-only files may end before the padding */
    if (g->data_offset > ps->size)
        return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                         "the data section starts at offset %" PRIu64 ", past the end of the file "
                         "(%zu bytes)",
                         g->data_offset, ps->size);
    size_t room = ps->size - (size_t)g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        mlxr_gguf_tensor *t = &g->tensors[i];
        if (t->offset > room) /* data_offset + offset might not even fit uint64 */
            return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                             "tensor '%.*s' starts past end of file (data section at %" PRIu64
                             " + offset %" PRIu64 " > %zu)",
                             (int)t->name.len, t->name.data, g->data_offset, t->offset, ps->size);
        if (t->nbytes > room - (size_t)t->offset)
            return MLXR_FAIL(ps->err, MLXR_ERR_FORMAT,
                             "tensor '%.*s' extends past end of file (offset %" PRIu64 " + size "
                             "%zu > %zu)",
                             (int)t->name.len, t->name.data, g->data_offset + t->offset, t->nbytes,
                             ps->size);
        t->data = ps->p + g->data_offset + t->offset;
    }
    return MLXR_OK;
}

/* ---- open and close ------------------------------------------------------------------------ */

static mlxr_status parse(mlxr_gguf *g, mlxr_err *err) {
    parser ps = {.g = g, .p = g->base, .size = g->size, .err = err};
    uint64_t n_tensors, n_kv;
    TRY(parse_header(&ps, &n_tensors, &n_kv));
    TRY(parse_kvs(&ps, n_kv));
    TRY(read_alignment(&ps));
    TRY(parse_tensor_infos(&ps, n_tensors));
    return place_tensors(&ps);
}

mlxr_status mlxr_gguf_open_mem(const void *data, size_t size, mlxr_gguf **out, mlxr_err *err) {
    *out = NULL;
    if (!data && size)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "mlxr_gguf_open_mem: NULL data of %zu bytes", size);
    mlxr_gguf *g = calloc(1, sizeof *g);
    if (!g) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory opening a GGUF file");
    g->base = data;
    g->size = size;
    mlxr_status st = parse(g, err);
    if (st != MLXR_OK) goto fail;
    *out = g;
    return MLXR_OK;
fail:
    mlxr_gguf_close(g);
    return st;
}

mlxr_status mlxr_gguf_open(const char *path, mlxr_gguf **out, mlxr_err *err) {
    *out = NULL;
    mlxr_mmap map;
    mlxr_status st = mlxr_file_map(path, &map, err);
    if (st != MLXR_OK) return st;
    st = mlxr_gguf_open_mem(map.data, map.size, out, err);
    if (st != MLXR_OK) goto fail;
    (*out)->map = map;
    return MLXR_OK;
fail:
    mlxr_file_unmap(&map);
    if (err) { /* name the file, keeping file:line of the check that fired */
        char msg[MLXR_ERR_MSG_MAX];
        const char *file = err->file;
        int line = err->line;
        snprintf(msg, sizeof msg, "%s", err->msg);
        mlxr_err_set(err, st, file, line, "%s: %s", path, msg);
    }
    return st;
}

void mlxr_gguf_close(mlxr_gguf *g) {
    if (!g) return;
    for (block *b = g->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(g->tensor_index.slot);
    free(g->kv_index.slot);
    free(g->tensors);
    free(g->kv);
    mlxr_file_unmap(&g->map);
    free(g);
}

/* ---- queries ------------------------------------------------------------------------------- */

uint32_t mlxr_gguf_version(const mlxr_gguf *g) {
    return g->version;
}

uint32_t mlxr_gguf_alignment(const mlxr_gguf *g) {
    return g->alignment;
}

uint64_t mlxr_gguf_data_offset(const mlxr_gguf *g) {
    return g->data_offset;
}

size_t mlxr_gguf_file_size(const mlxr_gguf *g) {
    return g->size;
}

int64_t mlxr_gguf_n_kv(const mlxr_gguf *g) {
    return g->n_kv;
}

const mlxr_gguf_kv *mlxr_gguf_kv_at(const mlxr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const mlxr_gguf_value *mlxr_gguf_find(const mlxr_gguf *g, const char *key) {
    size_t hole;
    int64_t i = index_find(&g->kv_index, g->kv, sizeof *g->kv, key, strlen(key), &hole);
    return i >= 0 ? &g->kv[i].value : NULL;
}

int64_t mlxr_gguf_n_tensors(const mlxr_gguf *g) {
    return g->n_tensors;
}

const mlxr_gguf_tensor *mlxr_gguf_tensor_at(const mlxr_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const mlxr_gguf_tensor *mlxr_gguf_find_tensor(const mlxr_gguf *g, const char *name) {
    size_t hole;
    int64_t i =
        index_find(&g->tensor_index, g->tensors, sizeof *g->tensors, name, strlen(name), &hole);
    return i >= 0 ? &g->tensors[i] : NULL;
}

size_t mlxr_gguf_scalar_size(mlxr_gguf_type t) {
    return (unsigned)t < MLXR_GGUF_TYPE_COUNT ? SCALAR_SIZE[t] : 0;
}

const char *mlxr_gguf_type_name(mlxr_gguf_type t) {
    static const char *const NAMES[MLXR_GGUF_TYPE_COUNT] = {
        "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
        "bool",  "string", "array",  "uint64", "int64",  "float64",
    };
    return (unsigned)t < MLXR_GGUF_TYPE_COUNT ? NAMES[t] : "?";
}

/* ---- typed getters ------------------------------------------------------------------------- */

static mlxr_status lookup(const mlxr_gguf *g, const char *key, const mlxr_gguf_value **v,
                          mlxr_err *err) {
    *v = mlxr_gguf_find(g, key);
    if (!*v) return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND, "key '%s' not found", key);
    return MLXR_OK;
}

/* Any integer value under `key` that lies in [lo, hi]. */
static mlxr_status get_int(const mlxr_gguf *g, const char *key, int64_t lo, uint64_t hi,
                           int64_t *out, mlxr_err *err) {
    const mlxr_gguf_value *v;
    TRY(lookup(g, key, &v, err));
    if (is_unsigned(v->type)) {
        if (v->v.u64 > hi)
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "key '%s' is %" PRIu64 ", more than %" PRIu64,
                             key, v->v.u64, hi);
        *out = (int64_t)v->v.u64; /* hi <= UINT32_MAX here */
        return MLXR_OK;
    }
    if (!is_signed(v->type))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "key '%s' has type %s, expected an integer", key,
                         mlxr_gguf_type_name(v->type));
    if (v->v.i64 < lo || (v->v.i64 > 0 && (uint64_t)v->v.i64 > hi))
        return MLXR_FAIL(err, MLXR_ERR_RANGE,
                         "key '%s' is %" PRId64 ", outside [%" PRId64 ", %" PRIu64 "]", key,
                         v->v.i64, lo, hi);
    *out = v->v.i64;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_get_u32(const mlxr_gguf *g, const char *key, uint32_t *out, mlxr_err *err) {
    int64_t v;
    TRY(get_int(g, key, 0, UINT32_MAX, &v, err));
    *out = (uint32_t)v;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_get_i32(const mlxr_gguf *g, const char *key, int32_t *out, mlxr_err *err) {
    int64_t v;
    TRY(get_int(g, key, INT32_MIN, INT32_MAX, &v, err));
    *out = (int32_t)v;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_get_f32(const mlxr_gguf *g, const char *key, float *out, mlxr_err *err) {
    const mlxr_gguf_value *v;
    TRY(lookup(g, key, &v, err));
    if (v->type != MLXR_GGUF_FLOAT32 && v->type != MLXR_GGUF_FLOAT64)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "key '%s' has type %s, expected a float", key,
                         mlxr_gguf_type_name(v->type));
    /* converting a finite double beyond FLT_MAX to float is undefined behaviour */
    if (isfinite(v->v.f64) && fabs(v->v.f64) > FLT_MAX)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "key '%s' is %g, outside the float range", key,
                         v->v.f64);
    *out = (float)v->v.f64;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_get_bool(const mlxr_gguf *g, const char *key, bool *out, mlxr_err *err) {
    const mlxr_gguf_value *v;
    TRY(lookup(g, key, &v, err));
    if (v->type != MLXR_GGUF_BOOL)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "key '%s' has type %s, expected bool", key,
                         mlxr_gguf_type_name(v->type));
    *out = v->v.b;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_get_str(const mlxr_gguf *g, const char *key, mlxr_gguf_str *out,
                              mlxr_err *err) {
    const mlxr_gguf_value *v;
    TRY(lookup(g, key, &v, err));
    if (v->type != MLXR_GGUF_STRING)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "key '%s' has type %s, expected string", key,
                         mlxr_gguf_type_name(v->type));
    *out = v->v.str;
    return MLXR_OK;
}

mlxr_status mlxr_gguf_get_arr(const mlxr_gguf *g, const char *key, mlxr_gguf_type elem,
                              const mlxr_gguf_value **out, mlxr_err *err) {
    const mlxr_gguf_value *v;
    TRY(lookup(g, key, &v, err));
    if (v->type != MLXR_GGUF_ARRAY)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "key '%s' has type %s, expected an array of %s", key,
                         mlxr_gguf_type_name(v->type), mlxr_gguf_type_name(elem));
    if (v->v.arr.type != elem)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "key '%s' is an array of %s, expected %s", key,
                         mlxr_gguf_type_name(v->v.arr.type), mlxr_gguf_type_name(elem));
    *out = v;
    return MLXR_OK;
}

/* ---- array elements ------------------------------------------------------------------------ */

mlxr_gguf_str mlxr_gguf_arr_str(const mlxr_gguf_value *arr, uint64_t i) {
    const uint8_t *p = arr->v.arr.data + arr->v.arr.offsets[i];
    return (mlxr_gguf_str){.data = (const char *)p + 8, .len = rd64(p)};
}

float mlxr_gguf_arr_f32(const mlxr_gguf_value *arr, uint64_t i) {
    return f32_bits(rd32(arr->v.arr.data + 4 * i));
}

int32_t mlxr_gguf_arr_i32(const mlxr_gguf_value *arr, uint64_t i) {
    return (int32_t)rd32(arr->v.arr.data + 4 * i);
}

mlxr_gguf_value mlxr_gguf_arr_nested(const mlxr_gguf_value *arr, uint64_t i) {
    /* parse_var_elems stores the parsed elements right after the n offsets */
    const mlxr_gguf_value *kids = (const void *)(arr->v.arr.offsets + arr->v.arr.n);
    return kids[i];
}
