/*
 * test_gguf_write.c - the GGUF writer checked through the reader: files with every metadata type,
 * arrays, in-memory and streamed tensors of several types and ranks (one streamed tensor spans
 * several fill chunks, one tensor is empty) and a custom alignment are written to a temporary file,
 * opened with mlxr_gguf_open and compared value by value and byte by byte. Then every argument
 * the writer must refuse, leaving the writer unchanged; a failing fill callback and an unwritable
 * path, which must leave no file behind; streamed tensors of zero bytes, which must not call fill.
 */
#include "format/dtype.h"
#include "format/gguf.h"
#include "format/gguf_write.h"
#include "test.h"
#include "util/err.h"

#include <math.h>
#include <unistd.h>

/* A fresh temporary file name (the file exists, empty); caller frees and unlinks. */
static char *temp_path(void) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/mlxr-gguf-write-XXXXXX", dir);
    int fd = mkstemp(p);
    if (fd < 0) {
        free(p);
        return NULL;
    }
    close(fd);
    return p;
}

static bool str_eq(mlxr_gguf_str s, const char *want, size_t len) {
    return s.len == len && (len == 0 || memcmp(s.data, want, len) == 0);
}

/* ---- streamed tensor: rows are a pure function of (seed, row) so the test can check them ----- */

typedef struct fill_state {
    uint64_t seed;
    size_t row_size;
    int64_t next_row; /* rows must come in order, each once */
    int64_t n_calls;
    int64_t fail_at; /* row at which to return an error; -1 never */
    bool order_ok;
} fill_state;

static void row_bytes(uint64_t seed, int64_t row, uint8_t *dst, size_t n) {
    uint64_t s = seed ^ ((uint64_t)row * 0x9e3779b97f4a7c15ull) ^ 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (uint8_t)(test_rng_u64(&s) >> 56);
}

static mlxr_status fill_rows(void *user, void *dst, int64_t row0, int64_t n_rows, mlxr_err *err) {
    fill_state *fs = user;
    fs->n_calls++;
    if (row0 != fs->next_row || n_rows < 1) fs->order_ok = false;
    for (int64_t r = 0; r < n_rows; r++) {
        if (row0 + r == fs->fail_at)
            return MLXR_FAIL(err, MLXR_ERR_CANCELLED, "stop at row %" PRId64, row0 + r);
        row_bytes(fs->seed, row0 + r, (uint8_t *)dst + (size_t)r * fs->row_size, fs->row_size);
    }
    fs->next_row = row0 + n_rows;
    return MLXR_OK;
}

/* ---- the round trip ---------------------------------------------------------------------------
 */

#define N_VEC 5

static const char *const STRS[] = {"", "a", "\xe2\x96\x81hello", "<0x0A>", "x y z"};
static const char BIN_STR[] = {'a', 0, 'b', (char)0xff};

static void add_all_kv(mlxr_gguf_writer *w, mlxr_err *err) {
    static const uint8_t u8v[N_VEC] = {0, 1, 127, 128, 255};
    static const int8_t i8v[N_VEC] = {-128, -1, 0, 1, 127};
    static const uint16_t u16v[N_VEC] = {0, 1, 256, 32768, 65535};
    static const int16_t i16v[N_VEC] = {-32768, -1, 0, 1, 32767};
    static const uint32_t u32v[N_VEC] = {0, 1, 65536, 2147483648u, 4294967295u};
    static const int32_t i32v[N_VEC] = {INT32_MIN, -1, 0, 1, INT32_MAX};
    static const uint64_t u64v[N_VEC] = {0, 1, 1ull << 32, 1ull << 63, UINT64_MAX};
    static const int64_t i64v[N_VEC] = {INT64_MIN, -1, 0, 1, INT64_MAX};
    static const float f32v[N_VEC] = {0.0f, -1.5f, 3.25e-7f, 1e30f, -0.0f};
    static const double f64v[N_VEC] = {0.0, -1.5, 1e-300, 1e300, 3.141592653589793};
    static const bool bv[N_VEC] = {true, false, false, true, true};
    struct {
        mlxr_gguf_type t;
        const void *v;
        const char *key;
    } arrs[] = {
        {MLXR_GGUF_UINT8, u8v, "arr.u8"},     {MLXR_GGUF_INT8, i8v, "arr.i8"},
        {MLXR_GGUF_UINT16, u16v, "arr.u16"},  {MLXR_GGUF_INT16, i16v, "arr.i16"},
        {MLXR_GGUF_UINT32, u32v, "arr.u32"},  {MLXR_GGUF_INT32, i32v, "arr.i32"},
        {MLXR_GGUF_UINT64, u64v, "arr.u64"},  {MLXR_GGUF_INT64, i64v, "arr.i64"},
        {MLXR_GGUF_FLOAT32, f32v, "arr.f32"}, {MLXR_GGUF_FLOAT64, f64v, "arr.f64"},
        {MLXR_GGUF_BOOL, bv, "arr.bool"},
    };
    CHECK(mlxr_gguf_writer_add_u8(w, "s.u8", 200, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_i8(w, "s.i8", -100, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_u16(w, "s.u16", 60000, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_i16(w, "s.i16", -30000, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_u32(w, "s.u32", 4000000000u, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_i32(w, "s.i32", -2000000000, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_u64(w, "s.u64", UINT64_MAX - 5, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_i64(w, "s.i64", INT64_MIN + 7, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_f32(w, "s.f32", 1e-5f, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_f64(w, "s.f64", -2.5e-200, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_bool(w, "s.true", true, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_bool(w, "s.false", false, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_str(w, "s.str", "llama", err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_str(w, "s.empty", "", err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_str_n(w, "s.bin", BIN_STR, sizeof BIN_STR, err) == MLXR_OK, "%s",
          err->msg);
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++)
        CHECK(mlxr_gguf_writer_add_arr(w, arrs[i].key, arrs[i].t, arrs[i].v, N_VEC, err) == MLXR_OK,
              "%s: %s", arrs[i].key, err->msg);
    CHECK(mlxr_gguf_writer_add_arr_f32(w, "arr.f32b", f32v, 3, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_arr_i32(w, "arr.i32b", i32v, 3, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_arr_i32(w, "arr.empty", NULL, 0, err) == MLXR_OK, "%s", err->msg);
    CHECK(mlxr_gguf_writer_add_arr_str(w, "arr.str", STRS, 5, err) == MLXR_OK, "%s", err->msg);
}

static void check_all_kv(const mlxr_gguf *g) {
    mlxr_err err = {0};
    const mlxr_gguf_value *v;
    struct {
        const char *key;
        mlxr_gguf_type t;
    } types[] = {
        {"s.u8", MLXR_GGUF_UINT8},    {"s.i8", MLXR_GGUF_INT8},
        {"s.u16", MLXR_GGUF_UINT16},  {"s.i16", MLXR_GGUF_INT16},
        {"s.u32", MLXR_GGUF_UINT32},  {"s.i32", MLXR_GGUF_INT32},
        {"s.u64", MLXR_GGUF_UINT64},  {"s.i64", MLXR_GGUF_INT64},
        {"s.f32", MLXR_GGUF_FLOAT32}, {"s.f64", MLXR_GGUF_FLOAT64},
        {"s.true", MLXR_GGUF_BOOL},   {"s.str", MLXR_GGUF_STRING},
        {"s.bin", MLXR_GGUF_STRING},  {"arr.u8", MLXR_GGUF_ARRAY},
        {"arr.str", MLXR_GGUF_ARRAY}, {"general.alignment", MLXR_GGUF_UINT32},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        v = mlxr_gguf_find(g, types[i].key);
        CHECK(v && v->type == types[i].t, "key %s: type %s", types[i].key,
              v ? mlxr_gguf_type_name(v->type) : "missing");
    }
    if ((v = mlxr_gguf_find(g, "s.u8"))) CHECK(v->v.u64 == 200, "u8 %" PRIu64, v->v.u64);
    if ((v = mlxr_gguf_find(g, "s.i8"))) CHECK(v->v.i64 == -100, "i8 %" PRId64, v->v.i64);
    if ((v = mlxr_gguf_find(g, "s.u16"))) CHECK(v->v.u64 == 60000, "u16 %" PRIu64, v->v.u64);
    if ((v = mlxr_gguf_find(g, "s.i16"))) CHECK(v->v.i64 == -30000, "i16 %" PRId64, v->v.i64);
    if ((v = mlxr_gguf_find(g, "s.u64")))
        CHECK(v->v.u64 == UINT64_MAX - 5, "u64 %" PRIu64, v->v.u64);
    if ((v = mlxr_gguf_find(g, "s.i64")))
        CHECK(v->v.i64 == INT64_MIN + 7, "i64 %" PRId64, v->v.i64);
    if ((v = mlxr_gguf_find(g, "s.f64"))) CHECK(v->v.f64 == -2.5e-200, "f64 %g", v->v.f64);

    uint32_t u32 = 0;
    int32_t i32 = 0;
    float f32 = 0;
    bool b = false;
    mlxr_gguf_str s = {0};
    CHECK(mlxr_gguf_get_u32(g, "s.u32", &u32, &err) == MLXR_OK && u32 == 4000000000u, "u32 %u",
          u32);
    CHECK(mlxr_gguf_get_i32(g, "s.i32", &i32, &err) == MLXR_OK && i32 == -2000000000, "i32 %d",
          i32);
    CHECK(mlxr_gguf_get_f32(g, "s.f32", &f32, &err) == MLXR_OK && f32 == 1e-5f, "f32 %g", f32);
    CHECK(mlxr_gguf_get_bool(g, "s.true", &b, &err) == MLXR_OK && b, "true");
    CHECK(mlxr_gguf_get_bool(g, "s.false", &b, &err) == MLXR_OK && !b, "false");
    CHECK(mlxr_gguf_get_str(g, "s.str", &s, &err) == MLXR_OK && str_eq(s, "llama", 5), "str");
    CHECK(mlxr_gguf_get_str(g, "s.empty", &s, &err) == MLXR_OK && s.len == 0, "empty str");
    CHECK(mlxr_gguf_get_str(g, "s.bin", &s, &err) == MLXR_OK && str_eq(s, BIN_STR, sizeof BIN_STR),
          "binary str");

    /* arrays: element types, counts and every element's bytes (little-endian host) */
    static const struct {
        const char *key;
        mlxr_gguf_type t;
        size_t esize;
    } arrs[] = {
        {"arr.u8", MLXR_GGUF_UINT8, 1},    {"arr.i8", MLXR_GGUF_INT8, 1},
        {"arr.u16", MLXR_GGUF_UINT16, 2},  {"arr.i16", MLXR_GGUF_INT16, 2},
        {"arr.u32", MLXR_GGUF_UINT32, 4},  {"arr.i32", MLXR_GGUF_INT32, 4},
        {"arr.u64", MLXR_GGUF_UINT64, 8},  {"arr.i64", MLXR_GGUF_INT64, 8},
        {"arr.f32", MLXR_GGUF_FLOAT32, 4}, {"arr.f64", MLXR_GGUF_FLOAT64, 8},
        {"arr.bool", MLXR_GGUF_BOOL, 1},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        const mlxr_gguf_value *a = NULL;
        mlxr_status st = mlxr_gguf_get_arr(g, arrs[i].key, arrs[i].t, &a, &err);
        CHECK(st == MLXR_OK && a->v.arr.n == N_VEC && a->v.arr.nbytes == N_VEC * arrs[i].esize,
              "%s: %s", arrs[i].key, err.msg);
    }
    const mlxr_gguf_value *a = NULL;
    if (mlxr_gguf_get_arr(g, "arr.i64", MLXR_GGUF_INT64, &a, &err) == MLXR_OK) {
        int64_t x;
        memcpy(&x, a->v.arr.data, 8);
        CHECK(x == INT64_MIN, "arr.i64[0] %" PRId64, x);
        memcpy(&x, a->v.arr.data + 32, 8);
        CHECK(x == INT64_MAX, "arr.i64[4] %" PRId64, x);
    }
    if (mlxr_gguf_get_arr(g, "arr.f64", MLXR_GGUF_FLOAT64, &a, &err) == MLXR_OK) {
        double x;
        memcpy(&x, a->v.arr.data + 32, 8);
        CHECK(x == 3.141592653589793, "arr.f64[4] %.17g", x);
    }
    if (mlxr_gguf_get_arr(g, "arr.bool", MLXR_GGUF_BOOL, &a, &err) == MLXR_OK)
        CHECK(memcmp(a->v.arr.data, "\1\0\0\1\1", 5) == 0, "arr.bool bytes");
    if (mlxr_gguf_get_arr(g, "arr.f32", MLXR_GGUF_FLOAT32, &a, &err) == MLXR_OK) {
        CHECK(mlxr_gguf_arr_f32(a, 1) == -1.5f && mlxr_gguf_arr_f32(a, 2) == 3.25e-7f &&
                  signbit(mlxr_gguf_arr_f32(a, 4)),
              "arr.f32 values");
    }
    if (mlxr_gguf_get_arr(g, "arr.i32", MLXR_GGUF_INT32, &a, &err) == MLXR_OK)
        CHECK(mlxr_gguf_arr_i32(a, 0) == INT32_MIN && mlxr_gguf_arr_i32(a, 4) == INT32_MAX,
              "arr.i32 values");
    if (mlxr_gguf_get_arr(g, "arr.f32b", MLXR_GGUF_FLOAT32, &a, &err) == MLXR_OK)
        CHECK(a->v.arr.n == 3 && mlxr_gguf_arr_f32(a, 1) == -1.5f, "arr.f32b");
    else
        CHECK(false, "arr.f32b: %s", err.msg);
    if (mlxr_gguf_get_arr(g, "arr.i32b", MLXR_GGUF_INT32, &a, &err) == MLXR_OK)
        CHECK(a->v.arr.n == 3 && mlxr_gguf_arr_i32(a, 2) == 0, "arr.i32b");
    else
        CHECK(false, "arr.i32b: %s", err.msg);
    if (mlxr_gguf_get_arr(g, "arr.empty", MLXR_GGUF_INT32, &a, &err) == MLXR_OK)
        CHECK(a->v.arr.n == 0, "arr.empty has %" PRIu64, a->v.arr.n);
    else
        CHECK(false, "arr.empty: %s", err.msg);
    if (mlxr_gguf_get_arr(g, "arr.str", MLXR_GGUF_STRING, &a, &err) == MLXR_OK) {
        CHECK(a->v.arr.n == 5, "arr.str has %" PRIu64, a->v.arr.n);
        for (uint64_t i = 0; i < a->v.arr.n && i < 5; i++)
            CHECK(str_eq(mlxr_gguf_arr_str(a, i), STRS[i], strlen(STRS[i])), "arr.str[%" PRIu64 "]",
                  i);
    } else {
        CHECK(false, "arr.str: %s", err.msg);
    }
}

/* The tensors of the round trip: in memory unless `fs` is given. */
typedef struct ttensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[4];
    mlxr_dtype type;
    uint8_t *data; /* NULL: streamed with fill_rows */
    size_t nbytes;
    fill_state fs;
} ttensor;

static void make_tensors(ttensor *t, int n, uint64_t *rng) {
    const ttensor spec[] = {
        {"token_embd.weight", 2, {64, 3, 1, 1}, MLXR_DTYPE_F16, NULL, 0, {0}},
        {"blk.0.attn_norm.weight", 1, {7, 1, 1, 1}, MLXR_DTYPE_F32, NULL, 0, {0}},
        {"empty", 1, {0, 1, 1, 1}, MLXR_DTYPE_F32, NULL, 0, {0}},
        /* 4352-byte rows x 1000: about 4.2 MB, more than one fill chunk */
        {"streamed.q8_0", 2, {4096, 1000, 1, 1}, MLXR_DTYPE_Q8_0, NULL, 0, {0}},
        {"q4_0.4d", 4, {32, 2, 3, 2}, MLXR_DTYPE_Q4_0, NULL, 0, {0}},
        {"streamed.i32", 3, {5, 4, 3, 1}, MLXR_DTYPE_I32, NULL, 0, {0}},
        {"a_name_of_sixty_three_bytes_.............................weight",
         1,
         {3, 1, 1, 1},
         MLXR_DTYPE_I8,
         NULL,
         0,
         {0}},
    };
    for (int i = 0; i < n; i++) {
        t[i] = spec[i];
        int64_t rows = t[i].ne[1] * t[i].ne[2] * t[i].ne[3];
        size_t row_size = mlxr_dtype_row_size(t[i].type, t[i].ne[0]);
        t[i].nbytes = row_size * (size_t)rows;
        if (strncmp(t[i].name, "streamed", 8) == 0) {
            t[i].fs = (fill_state){
                .seed = test_rng_u64(rng), .row_size = row_size, .fail_at = -1, .order_ok = true};
        } else {
            t[i].data = malloc(t[i].nbytes + 1);
            for (size_t k = 0; k < t[i].nbytes; k++)
                t[i].data[k] = (uint8_t)test_rng_u64(rng);
            if (t[i].type == MLXR_DTYPE_F32) /* real floats, not NaN patterns: compare as bytes */
                for (size_t k = 0; k < t[i].nbytes / 4; k++) {
                    float f = test_rng_f32(rng, -1, 1);
                    memcpy(t[i].data + 4 * k, &f, 4);
                }
        }
    }
}

static void check_tensor(const mlxr_gguf *g, ttensor *t, uint32_t alignment) {
    const mlxr_gguf_tensor *r = mlxr_gguf_find_tensor(g, t->name);
    CHECK(r != NULL, "tensor %s missing", t->name);
    if (!r) return;
    CHECK(r->n_dims == t->n_dims && r->type == t->type, "%s: n_dims %u type %d", t->name, r->n_dims,
          (int)r->type);
    for (int d = 0; d < 4; d++)
        CHECK(r->ne[d] == t->ne[d], "%s: ne[%d] %" PRId64 " want %" PRId64, t->name, d, r->ne[d],
              t->ne[d]);
    CHECK(r->nbytes == t->nbytes, "%s: %zu bytes, want %zu", t->name, r->nbytes, t->nbytes);
    CHECK(r->offset % alignment == 0, "%s: offset %" PRIu64 " unaligned", t->name, r->offset);
    CHECK(((uint64_t)mlxr_gguf_data_offset(g) + r->offset) % alignment == 0, "%s: file offset",
          t->name);
    if (r->nbytes != t->nbytes) return;
    if (t->data) {
        CHECK(t->nbytes == 0 || memcmp(r->data, t->data, t->nbytes) == 0, "%s: data differs",
              t->name);
        return;
    }
    size_t rs = t->fs.row_size;
    uint8_t *row = malloc(rs ? rs : 1);
    int64_t bad = -1;
    for (int64_t i = 0; i < t->ne[1] * t->ne[2] * t->ne[3] && bad < 0; i++) {
        row_bytes(t->fs.seed, i, row, rs);
        if (memcmp((const uint8_t *)r->data + (size_t)i * rs, row, rs) != 0) bad = i;
    }
    CHECK(bad < 0, "%s: streamed row %" PRId64 " differs", t->name, bad);
    CHECK(t->fs.order_ok, "%s: fill rows out of order", t->name);
    free(row);
}

/* Write, read back and compare; alignment 0 = the default (32, added by the writer). */
static void round_trip(uint64_t *rng, uint32_t alignment) {
    mlxr_err err = {0};
    enum { N_T = 7 };
    ttensor t[N_T];
    make_tensors(t, N_T, rng);
    mlxr_gguf_writer *w = mlxr_gguf_writer_new();
    CHECK(w != NULL, "writer_new");
    if (!w) return;
    add_all_kv(w, &err);
    for (int i = 0; i < N_T; i++) {
        mlxr_status st = t[i].data || t[i].nbytes == 0
                             ? mlxr_gguf_writer_add_tensor(w, t[i].name, t[i].n_dims, t[i].ne,
                                                           t[i].type, t[i].data, &err)
                             : mlxr_gguf_writer_add_tensor_fn(w, t[i].name, t[i].n_dims, t[i].ne,
                                                              t[i].type, fill_rows, &t[i].fs, &err);
        CHECK(st == MLXR_OK, "add %s: %s", t[i].name, err.msg);
    }
    /* set after the tensors on purpose: offsets are assigned at write time */
    if (alignment)
        CHECK(mlxr_gguf_writer_add_u32(w, "general.alignment", alignment, &err) == MLXR_OK, "%s",
              err.msg);
    int64_t n_kv = mlxr_gguf_writer_n_kv(w) + (alignment ? 0 : 1);
    uint64_t want_size = 0;
    CHECK(mlxr_gguf_writer_file_size(w, &want_size, &err) == MLXR_OK, "%s", err.msg);

    char *path = temp_path();
    CHECK(path != NULL, "mkstemp");
    if (!path) goto done;
    mlxr_status st = mlxr_gguf_writer_write_file(w, path, &err);
    CHECK(st == MLXR_OK, "write_file: %s", err.msg);
    for (int i = 0; i < N_T; i++)
        if (!t[i].data && t[i].nbytes)
            CHECK(t[i].fs.next_row == t[i].ne[1] * t[i].ne[2] * t[i].ne[3], "%s: rows filled",
                  t[i].name);
    CHECK(t[3].fs.n_calls >= 2, "streamed.q8_0 in %" PRId64 " fill calls, expected >= 2",
          t[3].fs.n_calls);

    mlxr_gguf *g = NULL;
    st = mlxr_gguf_open(path, &g, &err);
    CHECK(st == MLXR_OK, "open: %s", err.msg);
    if (st == MLXR_OK) {
        uint32_t align = alignment ? alignment : 32;
        CHECK(mlxr_gguf_version(g) == 3, "version %u", mlxr_gguf_version(g));
        CHECK(mlxr_gguf_alignment(g) == align, "alignment %u", mlxr_gguf_alignment(g));
        CHECK(mlxr_gguf_data_offset(g) % align == 0, "data offset %" PRIu64,
              mlxr_gguf_data_offset(g));
        CHECK(mlxr_gguf_file_size(g) == want_size, "file %zu bytes, writer said %" PRIu64,
              mlxr_gguf_file_size(g), want_size);
        CHECK(mlxr_gguf_n_kv(g) == n_kv, "n_kv %" PRId64 " want %" PRId64, mlxr_gguf_n_kv(g), n_kv);
        CHECK(mlxr_gguf_n_tensors(g) == N_T, "n_tensors %" PRId64, mlxr_gguf_n_tensors(g));
        /* kv and tensors come back in the order they were added */
        const mlxr_gguf_kv *k0 = mlxr_gguf_kv_at(g, 0);
        CHECK(k0 && str_eq(k0->key, "s.u8", 4), "first key");
        for (int i = 0; i < N_T && i < mlxr_gguf_n_tensors(g); i++)
            CHECK(str_eq(mlxr_gguf_tensor_at(g, i)->name, t[i].name, strlen(t[i].name)),
                  "tensor %d is not %s", i, t[i].name);
        check_all_kv(g);
        for (int i = 0; i < N_T; i++)
            check_tensor(g, &t[i], align);
        mlxr_gguf_close(g);
    }
    unlink(path);
    free(path);
done:
    mlxr_gguf_writer_free(w);
    for (int i = 0; i < N_T; i++)
        free(t[i].data);
}

/* ---- refusals -----------------------------------------------------------------------------------
 */

static void test_refusals(void) {
    mlxr_err err = {0};
    mlxr_gguf_writer *w = mlxr_gguf_writer_new();
    if (!w) return;
    float data[64] = {0};
    int64_t ne[4] = {32, 2, 1, 1};
    CHECK(mlxr_gguf_writer_add_u32(w, "k", 1, &err) == MLXR_OK, "%s", err.msg);
    CHECK(mlxr_gguf_writer_add_tensor(w, "t", 2, ne, MLXR_DTYPE_F32, data, &err) == MLXR_OK, "%s",
          err.msg);
    uint64_t size0 = 0, size1 = 1;
    CHECK(mlxr_gguf_writer_file_size(w, &size0, &err) == MLXR_OK, "%s", err.msg);

    /* metadata */
    CHECK(mlxr_gguf_writer_add_i32(w, "k", 2, &err) == MLXR_ERR_INVALID, "duplicate key");
    CHECK(strstr(err.msg, "'k'") != NULL, "message names the key: %s", err.msg);
    CHECK(mlxr_gguf_writer_add_str(w, "k", "x", &err) == MLXR_ERR_INVALID, "dup key, other type");
    CHECK(mlxr_gguf_writer_add_bool(w, "", true, &err) == MLXR_ERR_INVALID, "empty key");
    CHECK(mlxr_gguf_writer_add_bool(w, NULL, true, &err) == MLXR_ERR_INVALID, "NULL key");
    CHECK(mlxr_gguf_writer_add_str(w, "s", NULL, &err) == MLXR_ERR_INVALID, "NULL string");
    CHECK(mlxr_gguf_writer_add_arr(w, "a", MLXR_GGUF_STRING, data, 1, &err) == MLXR_ERR_INVALID,
          "array of strings through add_arr");
    CHECK(mlxr_gguf_writer_add_arr(w, "a", MLXR_GGUF_ARRAY, data, 1, &err) == MLXR_ERR_INVALID,
          "nested array");
    CHECK(mlxr_gguf_writer_add_arr(w, "a", (mlxr_gguf_type)99, data, 1, &err) == MLXR_ERR_INVALID,
          "unknown element type");
    CHECK(mlxr_gguf_writer_add_arr(w, "a", MLXR_GGUF_UINT8, NULL, 3, &err) == MLXR_ERR_INVALID,
          "NULL array");
    CHECK(mlxr_gguf_writer_add_arr(w, "a", MLXR_GGUF_UINT64, data, SIZE_MAX / 4, &err) ==
              MLXR_ERR_RANGE,
          "array size overflow");
    const char *strs[] = {"x", NULL};
    CHECK(mlxr_gguf_writer_add_arr_str(w, "a", strs, 2, &err) == MLXR_ERR_INVALID,
          "NULL string element");
    CHECK(mlxr_gguf_writer_add_u32(w, "general.alignment", 48, &err) == MLXR_ERR_INVALID,
          "alignment not a power of two");
    CHECK(mlxr_gguf_writer_add_u32(w, "general.alignment", 0, &err) == MLXR_ERR_INVALID,
          "alignment 0");
    CHECK(mlxr_gguf_writer_add_u64(w, "general.alignment", 64, &err) == MLXR_ERR_INVALID,
          "alignment as uint64");

    /* tensors */
    CHECK(mlxr_gguf_writer_add_tensor(w, "t", 2, ne, MLXR_DTYPE_F32, data, &err) ==
              MLXR_ERR_INVALID,
          "duplicate tensor");
    CHECK(mlxr_gguf_writer_add_tensor(w, "", 2, ne, MLXR_DTYPE_F32, data, &err) == MLXR_ERR_INVALID,
          "empty name");
    char long_name[65];
    memset(long_name, 'n', 64);
    long_name[64] = 0;
    CHECK(mlxr_gguf_writer_add_tensor(w, long_name, 2, ne, MLXR_DTYPE_F32, data, &err) ==
              MLXR_ERR_INVALID,
          "64-byte name");
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 0, ne, MLXR_DTYPE_F32, data, &err) ==
              MLXR_ERR_INVALID,
          "0 dims");
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 5, ne, MLXR_DTYPE_F32, data, &err) ==
              MLXR_ERR_INVALID,
          "5 dims");
    int64_t bad_blk[2] = {33, 1}, neg[2] = {32, -1}, huge[4] = {1 << 30, 1 << 30, 1 << 30, 64};
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 2, bad_blk, MLXR_DTYPE_Q8_0, data, &err) ==
              MLXR_ERR_INVALID,
          "ne[0] not a multiple of the block");
    CHECK(strstr(err.msg, "'u'") != NULL, "message names the tensor: %s", err.msg);
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 2, neg, MLXR_DTYPE_F32, data, &err) ==
              MLXR_ERR_INVALID,
          "negative ne");
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 1, ne, (mlxr_dtype)4, data, &err) == MLXR_ERR_INVALID,
          "unknown type 4");
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 1, ne, (mlxr_dtype)-1, data, &err) ==
              MLXR_ERR_INVALID,
          "type -1");
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 4, huge, MLXR_DTYPE_F32, data, &err) ==
              MLXR_ERR_RANGE,
          "element count overflow");
    CHECK(mlxr_gguf_writer_add_tensor(w, "u", 2, ne, MLXR_DTYPE_F32, NULL, &err) ==
              MLXR_ERR_INVALID,
          "no data");
    CHECK(mlxr_gguf_writer_add_tensor_fn(w, "u", 2, ne, MLXR_DTYPE_F32, NULL, NULL, &err) ==
              MLXR_ERR_INVALID,
          "no fill function");

    /* nothing changed */
    CHECK(mlxr_gguf_writer_n_kv(w) == 1 && mlxr_gguf_writer_n_tensors(w) == 1,
          "refusals changed the writer: %" PRId64 " kv, %" PRId64 " tensors",
          mlxr_gguf_writer_n_kv(w), mlxr_gguf_writer_n_tensors(w));
    CHECK(mlxr_gguf_writer_file_size(w, &size1, &err) == MLXR_OK && size1 == size0,
          "file size changed: %" PRIu64 " -> %" PRIu64, size0, size1);
    CHECK(mlxr_gguf_writer_write_file(w, "/nonexistent-dir-mlxr/x.gguf", &err) == MLXR_ERR_IO,
          "unwritable path");
    CHECK(strstr(err.msg, "/nonexistent-dir-mlxr/x.gguf") != NULL, "message names the path: %s",
          err.msg);
    mlxr_gguf_writer_free(w);
    mlxr_gguf_writer_free(NULL);
}

/* A fill callback's error aborts the write, comes back unchanged and removes the partial file. */
static void test_fill_failure(void) {
    mlxr_err err = {0};
    mlxr_gguf_writer *w = mlxr_gguf_writer_new();
    if (!w) return;
    int64_t ne[2] = {1024, 3000}; /* 4 KiB rows: the failing row is in the third chunk */
    fill_state fs = {.seed = 5, .row_size = 4096, .fail_at = 2500, .order_ok = true};
    CHECK(mlxr_gguf_writer_add_tensor_fn(w, "big", 2, ne, MLXR_DTYPE_F32, fill_rows, &fs, &err) ==
              MLXR_OK,
          "%s", err.msg);
    char *path = temp_path();
    if (path) {
        mlxr_status st = mlxr_gguf_writer_write_file(w, path, &err);
        CHECK(st == MLXR_ERR_CANCELLED, "fill error came back as %s", mlxr_status_str(st));
        CHECK(strstr(err.msg, "row 2500") != NULL, "fill's message kept: %s", err.msg);
        CHECK(access(path, F_OK) != 0, "partial file left behind");
        /* and the same writer writes fine afterwards */
        fs = (fill_state){.seed = 5, .row_size = 4096, .fail_at = -1, .order_ok = true};
        CHECK(mlxr_gguf_writer_write_file(w, path, &err) == MLXR_OK, "rewrite: %s", err.msg);
        mlxr_gguf *g = NULL;
        CHECK(mlxr_gguf_open(path, &g, &err) == MLXR_OK, "reopen: %s", err.msg);
        mlxr_gguf_close(g);
        unlink(path);
        free(path);
    }
    mlxr_gguf_writer_free(w);
}

/* Streamed tensors of zero bytes never call their fill function, however many rows they have. */
static void test_empty_streamed(void) {
    mlxr_err err = {0};
    mlxr_gguf_writer *w = mlxr_gguf_writer_new();
    if (!w) return;
    int64_t no_rows[2] = {32, 0}, no_cols[2] = {0, 1000000000};
    fill_state fs = {.seed = 1, .row_size = 0, .fail_at = 0, .order_ok = true};
    CHECK(mlxr_gguf_writer_add_tensor_fn(w, "no_rows", 2, no_rows, MLXR_DTYPE_Q8_0, fill_rows, &fs,
                                         &err) == MLXR_OK,
          "%s", err.msg);
    CHECK(mlxr_gguf_writer_add_tensor_fn(w, "no_cols", 2, no_cols, MLXR_DTYPE_F32, fill_rows, &fs,
                                         &err) == MLXR_OK,
          "%s", err.msg);
    char *path = temp_path();
    if (path) {
        CHECK(mlxr_gguf_writer_write_file(w, path, &err) == MLXR_OK, "write: %s", err.msg);
        CHECK(fs.n_calls == 0, "fill called %" PRId64 " times", fs.n_calls);
        mlxr_gguf *g = NULL;
        CHECK(mlxr_gguf_open(path, &g, &err) == MLXR_OK, "open: %s", err.msg);
        if (g) {
            const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(g, "no_cols");
            CHECK(t && t->ne[1] == 1000000000 && t->nbytes == 0, "no_cols read back");
        }
        mlxr_gguf_close(g);
        unlink(path);
        free(path);
    }
    mlxr_gguf_writer_free(w);
}

int main(void) {
    uint64_t rng = test_seed();
    round_trip(&rng, 0);
    round_trip(&rng, 64);
    round_trip(&rng, 1);
    test_refusals();
    test_fill_failure();
    test_empty_streamed();
    return test_finish("test_gguf_write");
}
