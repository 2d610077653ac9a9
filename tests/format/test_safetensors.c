/*
 * test_safetensors.c - the safetensors reader (src/format/safetensors.c): hand-built files, valid
 * and broken (truncated at every length, offsets out of range / overlapping / reversed, sizes that
 * disagree with dtype and shape, huge header lengths, non-object and invalid JSON, bad metadata),
 * and the real model file of testdata/models/pydoc-7M/hf, checked against its config.json.
 */
#include <stdio.h>
#include <string.h>

#include "format/safetensors.h"
#include "test.h"

/* A file image: 8-byte length, header, then `data_size` bytes of data (byte i = i & 0xff). */
static uint8_t *build(const char *header, size_t data_size, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_size;
    uint8_t *buf = malloc(*size ? *size : 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    for (size_t i = 0; i < data_size; i++) buf[8 + n + i] = (uint8_t)i;
    return buf;
}

/* Open an exact-size copy (so ASan sees overreads); returns the status and frees everything. */
static mlxr_status try_open(const uint8_t *buf, size_t size, mlxr_err *err) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, buf, size);
    mlxr_st *st = NULL;
    err->msg[0] = '\0';
    mlxr_status s = mlxr_st_open_mem(copy, size, &st, err);
    CHECK((s == MLXR_OK) == (st != NULL), "handle iff ok");
    if (s != MLXR_OK) CHECK(err->msg[0] != '\0', "failure without a message");
    mlxr_st_close(st);
    free(copy);
    return s;
}

static mlxr_status open_header(const char *header, size_t data_size, mlxr_err *err) {
    size_t size;
    uint8_t *buf = build(header, data_size, &size);
    mlxr_status s = try_open(buf, size, err);
    free(buf);
    return s;
}

#define VALID_HEADER                                                                               \
    "{\"__metadata__\":{\"format\":\"mlx\",\"note\":\"x\"},"                                    \
    "\"b.scales\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[24,36]},"             \
    "\"a.weight\":{\"dtype\":\"U32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"               \
    "\"c\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]},"                         \
    "\"empty\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[40,40]}}"

static void test_valid(void) {
    size_t size;
    uint8_t *buf = build(VALID_HEADER, 40, &size);
    mlxr_st *st = NULL;
    mlxr_err err;
    CHECK(mlxr_st_open_mem(buf, size, &st, &err) == MLXR_OK, "open: %s", err.msg);
    if (!st) {
        free(buf);
        return;
    }
    CHECK(mlxr_st_n_tensors(st) == 4, "n %lld", (long long)mlxr_st_n_tensors(st));
    const mlxr_st_tensor *a = mlxr_st_find(st, "a.weight"), *b = mlxr_st_find(st, "b.scales"),
                         *c = mlxr_st_find(st, "c"), *e = mlxr_st_find(st, "empty");
    CHECK(a && b && c && e, "lookups");
    CHECK(mlxr_st_find(st, "zzz") == NULL && mlxr_st_find(st, "__metadata__") == NULL, "misses");
    if (a && b && c && e) {
        CHECK(a->dtype == MLXR_ST_U32 && a->n_dims == 2 && a->shape[0] == 2 && a->shape[1] == 3,
              "a shape");
        CHECK(a->nbytes == 24 && a->n_elements == 6 && a->data == buf + 8 + strlen(VALID_HEADER),
              "a data");
        CHECK(b->dtype == MLXR_ST_BF16 && b->offset == 24 && b->nbytes == 12, "b");
        CHECK(((const uint8_t *)b->data)[0] == 24, "b first byte");
        CHECK(c->n_dims == 0 && c->n_elements == 1 && c->nbytes == 4, "scalar");
        CHECK(e->n_elements == 0 && e->nbytes == 0, "empty");
    }
    CHECK(mlxr_st_tensor_at(st, 0) == a && mlxr_st_tensor_at(st, 4) == NULL, "offset order");
    CHECK(mlxr_st_tensor_at(st, -1) == NULL, "negative index");
    const mlxr_st_tensor *g = NULL;
    CHECK(mlxr_st_get(st, "nope", &g, &err) == MLXR_ERR_NOT_FOUND && strstr(err.msg, "nope"),
          "get missing: %s", err.msg);
    const char *fmt = mlxr_st_metadata(st, "format");
    CHECK(fmt && strcmp(fmt, "mlx") == 0, "metadata format");
    CHECK(mlxr_st_metadata(st, "missing") == NULL && mlxr_st_n_metadata(st) == 2, "metadata n");
    const char *k, *v;
    CHECK(mlxr_st_metadata_at(st, 1, &k, &v) && strcmp(k, "note") == 0 && strcmp(v, "x") == 0,
          "metadata_at");
    CHECK(!mlxr_st_metadata_at(st, 2, &k, &v), "metadata_at end");
    CHECK(strcmp(mlxr_st_dtype_name(MLXR_ST_BF16), "BF16") == 0 &&
              mlxr_st_dtype_size(MLXR_ST_F64) == 8 && mlxr_st_dtype_name(MLXR_ST_DTYPE_COUNT) == NULL,
          "dtype names");
    mlxr_st_close(st);

    /* every shorter file fails: the header length, the JSON or the last tensor's data is cut */
    int bad = 0;
    mlxr_err e2;
    for (size_t len = 0; len < size; len++)
        if (try_open(buf, len, &e2) == MLXR_OK) bad++;
    CHECK(bad == 0, "%d truncations opened", bad);
    CHECK(try_open(buf, size, &e2) == MLXR_OK, "full file");
    free(buf);
    /* no tensors at all is a valid (empty) file */
    CHECK(open_header("{}", 0, &e2) == MLXR_OK, "empty object: %s", e2.msg);
    /* writers pad the header with spaces so the data starts 8-aligned */
    CHECK(open_header("{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}     ", 2,
                      &e2) == MLXR_OK,
          "space padding: %s", e2.msg);
}

static void expect_format(const char *header, size_t data_size, const char *needle) {
    mlxr_err err;
    mlxr_status s = open_header(header, data_size, &err);
    CHECK(s == MLXR_ERR_FORMAT, "status %d for %s", (int)s, header);
    CHECK(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

static void test_broken(void) {
    expect_format("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "'t'");
    expect_format("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "'t'");
    expect_format("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                  "needs 12");
    expect_format("{\"t\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'t'");
    expect_format("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, "overlap");
    expect_format("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                  8, "overlap");
    expect_format("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, "dim 0");
    expect_format("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "dim");
    expect_format("{\"t\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype");
    expect_format("{\"t\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype");
    expect_format("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
                  "data_offsets");
    expect_format("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", 1,
                  "data_offsets");
    expect_format("{\"t\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}", 1, "shape");
    expect_format("{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                  1, "shape");
    expect_format("{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,8]}}",
                  8, "overflow");
    expect_format("{\"t\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],"
                  "\"data_offsets\":[0,8]}}",
                  8, "overflow");
    expect_format("{\"t\":[1,2]}", 0, "'t' is not an object");
    expect_format("[]", 0, "not a JSON object");
    expect_format("3", 0, "header JSON");
    expect_format("{\"a\":1", 0, "header JSON");
    expect_format("{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                  1, "header JSON");
    expect_format("{\"__metadata__\":{\"k\":1}}", 0, "'k'");
    expect_format("{\"__metadata__\":[]}", 0, "__metadata__");

    /* header lengths that do not fit: 2^63, 2^64-1, one past the file, over the limit */
    static const uint64_t lens[] = {1ull << 63, ~0ull, 3, MLXR_ST_MAX_HEADER + 1ull};
    for (int i = 0; i < 4; i++) {
        uint8_t buf[10] = {0};
        for (int j = 0; j < 8; j++) buf[j] = (uint8_t)(lens[i] >> (8 * j));
        buf[8] = '{';
        buf[9] = '}';
        mlxr_err err;
        CHECK(try_open(buf, sizeof buf, &err) == MLXR_ERR_FORMAT && strstr(err.msg, "header"),
              "header length %llu: %s", (unsigned long long)lens[i], err.msg);
    }
    mlxr_st *st = (mlxr_st *)1;
    mlxr_err err;
    CHECK(mlxr_st_open("/nonexistent/model.safetensors", &st, &err) == MLXR_ERR_IO && st == NULL,
          "missing file");
}

static void test_real(void) {
    char *path = test_data_path("models/pydoc-7M/hf/model.safetensors");
    mlxr_st *st = NULL;
    mlxr_err err;
    mlxr_status s = mlxr_st_open(path, &st, &err);
    CHECK(s == MLXR_OK, "open %s: %s", path, err.msg);
    free(path);
    if (s != MLXR_OK) return;
    /* config.json: hidden 256, intermediate 768, 6 layers, vocab 4096, 4 heads / 2 KV heads of
     * 64, untied embeddings, dtype float16 */
    CHECK(mlxr_st_n_tensors(st) == 2 + 6 * 9 + 1, "n %lld", (long long)mlxr_st_n_tensors(st));
    const char *fmt = mlxr_st_metadata(st, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0, "format");
    struct {
        const char *name;
        int64_t d0, d1;
    } want[] = {
        {"lm_head.weight", 4096, 256},
        {"model.embed_tokens.weight", 4096, 256},
        {"model.norm.weight", 256, -1},
        {"model.layers.0.self_attn.q_proj.weight", 256, 256},
        {"model.layers.5.self_attn.k_proj.weight", 128, 256},
        {"model.layers.3.self_attn.v_proj.weight", 128, 256},
        {"model.layers.2.self_attn.o_proj.weight", 256, 256},
        {"model.layers.4.mlp.gate_proj.weight", 768, 256},
        {"model.layers.1.mlp.up_proj.weight", 768, 256},
        {"model.layers.0.mlp.down_proj.weight", 256, 768},
        {"model.layers.5.input_layernorm.weight", 256, -1},
        {"model.layers.5.post_attention_layernorm.weight", 256, -1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const mlxr_st_tensor *t = mlxr_st_find(st, want[i].name);
        CHECK(t != NULL, "%s missing", want[i].name);
        if (!t) continue;
        int dims = want[i].d1 < 0 ? 1 : 2;
        CHECK(t->dtype == MLXR_ST_F16 && t->n_dims == dims && t->shape[0] == want[i].d0 &&
                  (dims == 1 || t->shape[1] == want[i].d1),
              "%s shape", want[i].name);
    }
    size_t total = 0;
    for (int64_t i = 0; i < mlxr_st_n_tensors(st); i++) total += mlxr_st_tensor_at(st, i)->nbytes;
    CHECK(total > 0 && mlxr_st_find(st, "model.layers.6.mlp.up_proj.weight") == NULL, "bytes");
    mlxr_st_close(st);
}

int main(void) {
    test_valid();
    test_broken();
    test_real();
    return test_finish("test_safetensors");
}
