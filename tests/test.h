/*
 * test.h - a minimal test harness: CHECK records a failure and goes on; TEST_MAIN_END prints the
 * closing "N passed, N failed" line and returns non-zero on any failure. Random inputs come from
 * test_rng seeded by test_seed(), which prints the seed (set MLXR_SEED to reproduce a run).
 */
#ifndef MLXR_TEST_H
#define MLXR_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int test_n_pass, test_n_fail;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (cond) {                                                                               \
            test_n_pass++;                                                                        \
        } else {                                                                                  \
            test_n_fail++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
        }                                                                                         \
    } while (0)

/* Print the closing line and return the exit status for main. */
int test_finish(const char *name);

/* Seed for this run: MLXR_SEED if set, else time-based; printed to stderr. */
uint64_t test_seed(void);
/* xorshift64* generator. */
uint64_t test_rng_u64(uint64_t *state);
/* Uniform float in [lo, hi). */
float test_rng_f32(uint64_t *state, float lo, float hi);

/* MLXR_TEST_NGL (set by CMake's cuda_* copies of the engine, KV and speculative tests): the
 * n_gpu_layers every context of the test takes; 0 when unset. Exits 77 (CTest's skip) when it is
 * set and the machine has no CUDA device. */
int32_t test_gpu_layers(void);

/* The shared test data folder: $MLXR_TESTDATA, else the build-time default. */
const char *test_data_dir(void);
/* Join test_data_dir() and a relative path into a static-lifetime string (malloc'ed). */
char *test_data_path(const char *rel);
/* Read a whole file; returns malloc'ed bytes (NUL-terminated beyond *len) or NULL. */
char *test_read_file(const char *path, size_t *len);

#endif
