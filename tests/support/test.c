/*
 * test.c - shared helpers for the test executables (see test.h).
 */
#include "test.h"

#include "mlxr.h"

#include <time.h>

int test_n_pass, test_n_fail;

int test_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_n_pass, test_n_fail);
    return test_n_fail ? 1 : 0;
}

uint64_t test_seed(void) {
    const char *s = getenv("MLXR_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)clock();
    if (seed == 0) seed = 1;
    fprintf(stderr, "seed: MLXR_SEED=%" PRIu64 "\n", seed);
    return seed;
}

uint64_t test_rng_u64(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}

float test_rng_f32(uint64_t *state, float lo, float hi) {
    double u = (double)(test_rng_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

const char *test_data_dir(void) {
    const char *e = getenv("MLXR_TESTDATA");
    return e && *e ? e : MLXR_TESTDATA_DEFAULT;
}

char *test_data_path(const char *rel) {
    const char *d = test_data_dir();
    size_t n = strlen(d) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", d, rel);
    return p;
}

char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int32_t test_gpu_layers(void) {
    const char *s = getenv("MLXR_TEST_NGL");
    if (!s || !*s) return 0;
    if (mlxr_gpu_count() < 1) {
        fprintf(stderr, "SKIP: MLXR_TEST_NGL=%s but no CUDA device\n", s);
        exit(77);
    }
    return (int32_t)strtol(s, NULL, 10);
}
