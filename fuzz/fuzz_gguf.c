/*
 * fuzz_gguf.c - libFuzzer harness for the GGUF reader. Opens the input with mlxr_gguf_open_mem
 * (libFuzzer hands over an exact-size buffer, so ASan sees any read past its end); if it opens,
 * reads every metadata value through the accessors (nested arrays too), looks every key and
 * tensor up by name, calls each typed getter, and touches the first and last byte of every
 * tensor's data. A broken invariant traps, so the fuzzer reports it as a crash.
 *
 * Run: scripts/fuzz.sh [SECONDS]  (seeds: fuzz/seeds/gguf/, made by scripts/make_gguf_seeds.py)
 */
#include "format/gguf.h"

#include <stdio.h>
#include <string.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static volatile uint64_t sink; /* keeps the reads from being optimised away */

static const uint8_t *g_base;
static size_t g_size;

/* [p, p + n) lies inside the input. */
static bool inside(const void *p, uint64_t n) {
    const uint8_t *q = p;
    return q >= g_base && q <= g_base + g_size && n <= (uint64_t)(g_base + g_size - q);
}

static void touch(const void *p, uint64_t n) {
    const uint8_t *q = p;
    REQUIRE(inside(p, n));
    if (n) sink += q[0] + q[n - 1];
}

static void walk_array(const mlxr_gguf_value *a, int depth) {
    REQUIRE(a->type == MLXR_GGUF_ARRAY && depth <= 8);
    REQUIRE((int)a->v.arr.type >= 0 && (int)a->v.arr.type < MLXR_GGUF_TYPE_COUNT);
    touch(a->v.arr.data, a->v.arr.nbytes);
    for (uint64_t i = 0; i < a->v.arr.n; i++) {
        switch (a->v.arr.type) {
        case MLXR_GGUF_STRING: {
            mlxr_gguf_str s = mlxr_gguf_arr_str(a, i);
            REQUIRE((const uint8_t *)s.data >= a->v.arr.data);
            REQUIRE((const uint8_t *)s.data + s.len <= a->v.arr.data + a->v.arr.nbytes);
            touch(s.data, s.len);
            break;
        }
        case MLXR_GGUF_ARRAY: {
            mlxr_gguf_value k = mlxr_gguf_arr_nested(a, i);
            REQUIRE(k.v.arr.data >= a->v.arr.data);
            REQUIRE(k.v.arr.data + k.v.arr.nbytes <= a->v.arr.data + a->v.arr.nbytes);
            walk_array(&k, depth + 1);
            break;
        }
        case MLXR_GGUF_FLOAT32:
            sink += (uint64_t)(mlxr_gguf_arr_f32(a, i) > 0);
            break;
        case MLXR_GGUF_INT32:
            sink += (uint64_t)mlxr_gguf_arr_i32(a, i);
            break;
        default:
            break; /* other fixed-size elements: covered by touch() above */
        }
    }
}

/* Every typed getter on one key: any status is fine, nothing may crash. */
static void try_getters(const mlxr_gguf *g, const char *key) {
    mlxr_err err;
    uint32_t u;
    int32_t i;
    float f;
    bool b;
    mlxr_gguf_str s;
    const mlxr_gguf_value *a;
    sink += mlxr_gguf_get_u32(g, key, &u, &err) + mlxr_gguf_get_i32(g, key, &i, &err);
    sink += mlxr_gguf_get_f32(g, key, &f, &err) + mlxr_gguf_get_bool(g, key, &b, &err);
    if (mlxr_gguf_get_str(g, key, &s, &err) == MLXR_OK) touch(s.data, s.len);
    for (int t = 0; t < MLXR_GGUF_TYPE_COUNT; t++)
        if (mlxr_gguf_get_arr(g, key, (mlxr_gguf_type)t, &a, &err) == MLXR_OK)
            REQUIRE(a->v.arr.type == (mlxr_gguf_type)t);
}

static void walk_kvs(const mlxr_gguf *g) {
    static char key[65536];
    for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
        const mlxr_gguf_kv *kv = mlxr_gguf_kv_at(g, i);
        REQUIRE(kv && kv->key.len > 0 && kv->key.len < sizeof key);
        touch(kv->key.data, kv->key.len);
        memcpy(key, kv->key.data, kv->key.len);
        key[kv->key.len] = '\0';
        REQUIRE(mlxr_gguf_find(g, key) == &kv->value);
        try_getters(g, key);
        sink += (uint64_t)mlxr_gguf_type_name(kv->value.type)[0];
        if (kv->value.type == MLXR_GGUF_STRING) touch(kv->value.v.str.data, kv->value.v.str.len);
        if (kv->value.type == MLXR_GGUF_ARRAY) walk_array(&kv->value, 1);
    }
    REQUIRE(mlxr_gguf_kv_at(g, mlxr_gguf_n_kv(g)) == NULL);
}

static void walk_tensors(const mlxr_gguf *g) {
    char name[256];
    uint32_t align = mlxr_gguf_alignment(g);
    uint64_t data_offset = mlxr_gguf_data_offset(g);
    REQUIRE(align != 0 && (align & (align - 1)) == 0 && data_offset % align == 0);
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
        const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
        REQUIRE(t && t->name.len > 0 && t->name.len < sizeof name);
        REQUIRE(t->n_dims >= 1 && t->n_dims <= 4 && t->offset % align == 0);
        for (int d = 0; d < 4; d++)
            REQUIRE(t->ne[d] >= 0);
        REQUIRE(mlxr_dtype_name(t->type) != NULL);
        memcpy(name, t->name.data, t->name.len);
        name[t->name.len] = '\0';
        REQUIRE(mlxr_gguf_find_tensor(g, name) == t);
        REQUIRE((const uint8_t *)t->data == g_base + data_offset + t->offset);
        touch(t->data, t->nbytes);
    }
    REQUIRE(mlxr_gguf_tensor_at(g, mlxr_gguf_n_tensors(g)) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxr_gguf *g = NULL;
    mlxr_err err;
    err.msg[0] = '\0';
    g_base = data;
    g_size = size;
    if (mlxr_gguf_open_mem(data, size, &g, &err) != MLXR_OK) {
        REQUIRE(g == NULL && err.msg[0] != '\0'); /* every failure explains itself */
        return 0;
    }
    REQUIRE(mlxr_gguf_file_size(g) == size);
    REQUIRE(mlxr_gguf_version(g) == 2 || mlxr_gguf_version(g) == 3);
    walk_kvs(g);
    walk_tensors(g);
    mlxr_gguf_close(g);
    return 0;
}
