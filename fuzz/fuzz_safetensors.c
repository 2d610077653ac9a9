/*
 * fuzz_safetensors.c - libFuzzer harness for the safetensors reader. Opens the input with
 * mlxr_st_open_mem (libFuzzer hands over an exact-size buffer, so ASan sees any read past its
 * end); if it opens, checks every tensor's invariants (data inside the input, size equal to
 * elements * dtype size, no overlap with the previous tensor in offset order), looks each one up
 * by name, walks the metadata, and touches the first and last byte of each tensor. A broken
 * invariant traps, so the fuzzer reports it as a crash.
 *
 * Run: scripts/fuzz.sh [SECONDS] safetensors  (seeds: fuzz/seeds/safetensors/)
 */
#include "format/safetensors.h"

#include <string.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static volatile uint64_t sink; /* keeps the reads from being optimised away */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mlxr_st *st = NULL;
    mlxr_err err;
    err.msg[0] = '\0';
    if (mlxr_st_open_mem(data, size, &st, &err) != MLXR_OK) {
        REQUIRE(st == NULL && err.msg[0] != '\0'); /* every failure explains itself */
        return 0;
    }
    const uint8_t *end = data + size;
    const mlxr_st_tensor *prev = NULL;
    for (int64_t i = 0; i < mlxr_st_n_tensors(st); i++) {
        const mlxr_st_tensor *t = mlxr_st_tensor_at(st, i);
        REQUIRE(t && mlxr_st_dtype_name(t->dtype) != NULL);
        REQUIRE(t->n_dims >= 0 && t->n_dims <= MLXR_ST_MAX_DIMS && t->n_elements >= 0);
        int64_t count = 1;
        for (int d = 0; d < t->n_dims; d++) {
            REQUIRE(t->shape[d] >= 0);
            count *= t->shape[d]; /* no overflow: the reader checked the product */
        }
        REQUIRE(count == t->n_elements);
        REQUIRE((uint64_t)count * mlxr_st_dtype_size(t->dtype) == t->nbytes);
        const uint8_t *p = t->data;
        REQUIRE(p >= data + 8 && p <= end && t->nbytes <= (size_t)(end - p));
        if (t->nbytes) sink += p[0] + p[t->nbytes - 1];
        if (prev && prev->nbytes && t->nbytes)
            REQUIRE(prev->offset + prev->nbytes <= t->offset);
        if (t->nbytes) prev = t;
        REQUIRE(mlxr_st_find(st, t->name) == t);
    }
    REQUIRE(mlxr_st_tensor_at(st, mlxr_st_n_tensors(st)) == NULL);
    const char *k, *v;
    for (int64_t i = 0; i < mlxr_st_n_metadata(st); i++) {
        REQUIRE(mlxr_st_metadata_at(st, i, &k, &v) && k && v);
        REQUIRE(mlxr_st_metadata(st, k) == v);
        sink += strlen(v);
    }
    mlxr_st_close(st);
    return 0;
}
