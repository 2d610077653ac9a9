/*
 * bench_kernels.c - single-threaded matrix-vector throughput of the type kernels (kernels.h).
 *
 * For each weight type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL,
 * IQ4_XS) and each ISA level this CPU has, times y[r] = vec_dot(W[r], x) over an n_rows x n_cols
 * matrix (default 4096 x 4096), the decode-step hot loop, and prints GB/s of weight bytes read,
 * ns per row and ns per 256 weights. Two cases:
 *   hot:  the same matrix again and again (cache-resident if it fits the last-level cache);
 *   cold: rotating over enough copies to fill >= 256 MiB, so weights stream from DRAM, as in
 *         real decoding of a model larger than the cache.
 * The activation row is encoded once (its cost is per matrix, not per row). Reported times are
 * the best of several passes. Not a test: it checks nothing except that all variants agree
 * roughly: max|y - y_ref| / max|y_ref| against the scalar reference is printed.
 *
 * Types with a tiled product (gemm) also get a prompt-processing line: y = W . X^T for 32
 * activation rows, gemm called on 32-row blocks as the forward pass does, in ns per 256 weights
 * per activation row, against 32 vec_dot passes over the whole matrix. Types with an interleaved
 * layout (Q4_0, Q8_0: kernels.h; Q4_K, Q6_K: kernels/ref/repack_k.h; gemm_packed, what the forward
 * pass uses on AVX2) get one more line:
 * the packed product for the 32 rows, and for one row (decoding) hot and cold.
 * Weights of the types without a quantizer in this table are random blocks with sane scales
 * (the speed of a dot product does not depend on the values).
 *
 * Usage: bench_kernels [n_rows n_cols [TYPE,TYPE,...|all [hot]]]   (n_cols a multiple of 32; types
 * whose block does not divide it are skipped; "hot" skips the DRAM-streaming case)
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

typedef struct bench_type {
    mlxr_dtype t;
    const char *name;
    int block_n;
    size_t block_bytes;
} bench_type;

static const bench_type TYPES[] = {
    {MLXR_DTYPE_F32, "F32", 1, 4},
    {MLXR_DTYPE_F16, "F16", 1, 2},
    {MLXR_DTYPE_BF16, "BF16", 1, 2},
    {MLXR_DTYPE_Q8_0, "Q8_0", MLXR_QK8_0, sizeof(mlxr_block_q8_0)},
    {MLXR_DTYPE_Q4_0, "Q4_0", MLXR_QK4_0, sizeof(mlxr_block_q4_0)},
    {MLXR_DTYPE_Q4_1, "Q4_1", MLXR_QK4_1, sizeof(mlxr_block_q4_1)},
    {MLXR_DTYPE_Q5_0, "Q5_0", MLXR_QK5_0, sizeof(mlxr_block_q5_0)},
    {MLXR_DTYPE_Q5_1, "Q5_1", MLXR_QK5_1, sizeof(mlxr_block_q5_1)},
    {MLXR_DTYPE_Q2_K, "Q2_K", MLXR_QK_K, sizeof(mlxr_block_q2_k)},
    {MLXR_DTYPE_Q3_K, "Q3_K", MLXR_QK_K, sizeof(mlxr_block_q3_k)},
    {MLXR_DTYPE_Q4_K, "Q4_K", MLXR_QK_K, sizeof(mlxr_block_q4_k)},
    {MLXR_DTYPE_Q5_K, "Q5_K", MLXR_QK_K, sizeof(mlxr_block_q5_k)},
    {MLXR_DTYPE_Q6_K, "Q6_K", MLXR_QK_K, sizeof(mlxr_block_q6_k)},
    {MLXR_DTYPE_IQ4_NL, "IQ4_NL", MLXR_QK4_NL, sizeof(mlxr_block_iq4_nl)},
    {MLXR_DTYPE_IQ4_XS, "IQ4_XS", MLXR_QK_K, sizeof(mlxr_block_iq4_xs)},
};

/* Random encoded row with every f16 scale field set to a small positive value: the fields are
 * where blocks.h puts them (d first, except Q2_K/Q3_K/Q6_K, whose d (and dmin) come last). */
static void random_row(const bench_type *bt, char *row, int64_t n_cols, float (*rnd)(void)) {
    const int64_t nb = n_cols / bt->block_n;
    for (size_t i = 0; i < (size_t)nb * bt->block_bytes; i++)
        row[i] = (char)(int)(rnd() * 127.0f);
    const uint16_t h = 0x1c00; /* f16 0.00390625 */
    for (int64_t b = 0; b < nb; b++) {
        char *blk = row + (size_t)b * bt->block_bytes;
        size_t at[2] = {0, 2};
        if (bt->t == MLXR_DTYPE_Q2_K) at[0] = 80, at[1] = 82;
        if (bt->t == MLXR_DTYPE_Q3_K || bt->t == MLXR_DTYPE_Q6_K)
            at[0] = at[1] = bt->block_bytes - 2;
        memcpy(blk + at[0], &h, 2);
        if (bt->t != MLXR_DTYPE_Q5_0 && bt->t != MLXR_DTYPE_IQ4_NL && bt->t != MLXR_DTYPE_IQ4_XS)
            memcpy(blk + at[1], &h, 2);
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    const uint64_t r = rng_state * 2685821657736338717ull;
    return (float)((double)(r >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* One matrix-vector product: y[r] = W[r] . x over n_rows rows of row_bytes each. */
static void matvec(mlxr_vec_dot_fn dot, const char *w, size_t row_bytes, const void *x, float *y,
                   int64_t n_rows, int64_t n_cols) {
    for (int64_t r = 0; r < n_rows; r++)
        dot(n_cols, &y[r], w + (size_t)r * row_bytes, x);
}

/* Best time of one pass over `n_mats` matrices in turn (>= 3 rounds and >= 0.25 s). */
static double time_pass(mlxr_vec_dot_fn dot, char **mats, int n_mats, size_t row_bytes,
                        const void *x, float *y, int64_t n_rows, int64_t n_cols) {
    double best = 1e30, total = 0.0;
    int m = 0;
    matvec(dot, mats[0], row_bytes, x, y, n_rows, n_cols); /* warm up */
    for (int it = 0; it < 3 || total < 0.25; it++) {
        const double t0 = now_s();
        matvec(dot, mats[m], row_bytes, x, y, n_rows, n_cols);
        const double dt = now_s() - t0;
        m = (m + 1) % n_mats;
        total += dt;
        if (dt < best) best = dt;
        if (it > 1000) break;
    }
    return best;
}

/* Best time of y = W . X^T through the type's gemm (or nc vec_dot passes when gemm is NULL). */
static double time_gemm(const mlxr_type_kernels *tk, const char *w, size_t row_bytes, const char *x,
                        size_t x_bytes, float *y, int64_t n_rows, int64_t n_cols, int64_t nc,
                        int use_gemm) {
    double best = 1e30, total = 0.0;
    for (int it = 0; it < 3 || total < 0.25; it++) {
        const double t0 = now_s();
        if (use_gemm) { /* 32-row blocks, as the forward pass calls it (src/model/llama.c) */
            for (int64_t r = 0; r < n_rows; r += 32)
                tk->gemm(n_cols, n_rows - r < 32 ? n_rows - r : 32, nc, w + (size_t)r * row_bytes,
                         row_bytes, x, x_bytes, y + r, (size_t)n_rows);
        } else {
            for (int64_t j = 0; j < nc; j++)
                matvec(tk->vec_dot, w, row_bytes, x + (size_t)j * x_bytes, y + j * n_rows, n_rows,
                       n_cols);
        }
        const double dt = now_s() - t0;
        total += dt;
        if (dt < best) best = dt;
        if (it > 1000) break;
    }
    return best;
}

/* Product over the interleaved layout (kernels.h gemm_packed) in 64-row chunks, as the forward
 * pass calls it: nc activation rows (prompt), one row from cache (hot) and one row rotating over
 * repacked copies of all n_mats matrices (cold: decoding from DRAM). `tiled` is the plain tiled
 * product's time for the same nc rows. */
static void bench_packed(const mlxr_type_kernels *tk, char **mats, int n_mats, size_t row_bytes,
                         int64_t n_rows, int64_t n_cols, const char *x, size_t xb, int nc,
                         double tiled, const char *type, const char *isa) {
    const size_t mat_bytes = row_bytes * (size_t)n_rows;
    char **pm = xmalloc((size_t)n_mats * sizeof(char *));
    for (int m = 0; m < n_mats; m++) {
        pm[m] = xmalloc(mat_bytes);
        tk->repack(mats[m], pm[m], row_bytes, n_cols, n_rows);
    }
    float *y = xmalloc(sizeof(float) * (size_t)n_rows * (size_t)nc);
    double t_nc = 1e30, t_hot = 1e30, t_cold = 1e30;
    for (int it = 0; it < 5 || it < 3 * n_mats; it++) {
        for (int pass = 0; pass < 3; pass++) {
            if (pass < 2 && it >= 5) continue;
            const char *w = pass == 2 ? pm[it % n_mats] : pm[0];
            const int cols = pass == 0 ? nc : 1;
            const double t0 = now_s();
            for (int64_t r = 0; r < n_rows; r += 64)
                tk->gemm_packed(n_cols, n_rows - r < 64 ? n_rows - r : 64, cols,
                                w + (size_t)r * row_bytes, row_bytes, x, xb, y + r,
                                (size_t)n_rows);
            const double dt = now_s() - t0;
            double *best = pass == 0 ? &t_nc : pass == 1 ? &t_hot : &t_cold;
            if (dt < *best) *best = dt;
        }
    }
    const double w256 = (double)n_rows * (double)n_cols / 256.0;
    printf("%-6s %-16s packed x%d: %.2f ns/256w/row (%.2fx tiled); packed x1: %.2f ns/256w "
           "(%.2f GB/s hot, %.2f GB/s cold)\n",
           type, isa, nc, 1e9 * t_nc / (w256 * nc), tiled / t_nc, 1e9 * t_hot / w256,
           1e-9 * (double)mat_bytes / t_hot,
           n_mats > 1 ? 1e-9 * (double)mat_bytes / t_cold : NAN);
    for (int m = 0; m < n_mats; m++)
        free(pm[m]);
    free(pm);
    free(y);
}

static int selected(const char *list, const char *name) {
    if (!list) return 1;
    const size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int64_t n_rows = 4096, n_cols = 4096;
    const char *only = NULL;
    int hot_only = 0;
    if (argc >= 3) {
        n_rows = atoll(argv[1]);
        n_cols = atoll(argv[2]);
    }
    if (argc >= 4 && strcmp(argv[3], "all") != 0) only = argv[3];
    if (argc >= 5) hot_only = strcmp(argv[4], "hot") == 0;
    if (n_rows <= 0 || n_cols <= 0 || n_cols % 32 != 0) {
        fprintf(stderr, "usage: %s [n_rows n_cols [TYPES [hot]]]  (n_cols a multiple of 32)\n",
                argv[0]);
        return 1;
    }
    const mlxr_isa cpu = mlxr_cpu_isa();
    printf("matrix %lld x %lld, single thread, cpu isa %s\n", (long long)n_rows, (long long)n_cols,
           mlxr_isa_name(cpu));
    printf("%-6s %-16s %7s %9s %10s %11s %9s %10s %9s\n", "type", "isa", "MiB", "hot GB/s",
           "hot ns/row", "hot ns/256w", "cold GB/s", "cold ns/row", "max rdiff");

    mlxr_kernels ref;
    mlxr_kernels_init(&ref, MLXR_ISA_SCALAR);
    float *src = xmalloc((size_t)n_cols * sizeof(float));
    float *y = xmalloc((size_t)n_rows * sizeof(float));
    float *y_ref = xmalloc((size_t)n_rows * sizeof(float));

    for (size_t ti = 0; ti < sizeof(TYPES) / sizeof(TYPES[0]); ti++) {
        const bench_type *bt = &TYPES[ti];
        if (!selected(only, bt->name) || n_cols % bt->block_n != 0) continue;
        const size_t row_bytes = (size_t)(n_cols / bt->block_n) * bt->block_bytes;
        const size_t mat_bytes = row_bytes * (size_t)n_rows;
        int n_mats = hot_only ? 1 : (int)((256u << 20) / mat_bytes) + 1;
        if (n_mats > 64) n_mats = 64;
        char **mats = xmalloc((size_t)n_mats * sizeof(char *));
        for (int m = 0; m < n_mats; m++) {
            mats[m] = xmalloc(mat_bytes);
            for (int64_t r = 0; r < n_rows; r++) {
                char *row = mats[m] + (size_t)r * row_bytes;
                if (!ref.type[bt->t].from_float) {
                    random_row(bt, row, n_cols, rnd);
                    continue;
                }
                for (int64_t c = 0; c < n_cols; c++)
                    src[c] = rnd();
                ref.type[bt->t].from_float(src, row, n_cols);
            }
        }
        /* activation row in the weight type's vec_dot_type (all encodings fit 4 bytes/elem) */
        const mlxr_dtype xt = ref.type[bt->t].vec_dot_type;
        void *x = xmalloc((size_t)n_cols * sizeof(float));
        for (int64_t c = 0; c < n_cols; c++)
            src[c] = rnd();
        ref.type[xt].from_float(src, x, n_cols);
        matvec(ref.type[bt->t].vec_dot, mats[0], row_bytes, x, y_ref, n_rows, n_cols);

        for (int isa = MLXR_ISA_SCALAR; isa <= (int)cpu; isa++) {
            mlxr_kernels k;
            mlxr_kernels_init(&k, (mlxr_isa)isa);
            const mlxr_vec_dot_fn dot = k.type[bt->t].vec_dot;
            const double hot = time_pass(dot, mats, 1, row_bytes, x, y, n_rows, n_cols);
            const double cold =
                hot_only ? NAN : time_pass(dot, mats, n_mats, row_bytes, x, y, n_rows, n_cols);
            matvec(dot, mats[0], row_bytes, x, y, n_rows, n_cols);
            double maxdiff = 0.0, maxref = 1e-30;
            for (int64_t r = 0; r < n_rows; r++) {
                const double d = fabs((double)y[r] - (double)y_ref[r]);
                if (d > maxdiff) maxdiff = d;
                if (fabs((double)y_ref[r]) > maxref) maxref = fabs((double)y_ref[r]);
            }
            const double rdiff = maxdiff / maxref;
            const double per256 = 1e9 * hot / ((double)n_rows * (double)n_cols / 256.0);
            printf("%-6s %-16s %7.1f %9.2f %10.1f %11.2f %9.2f %10.1f %9.2g\n", bt->name,
                   mlxr_isa_name(k.isa), (double)mat_bytes / 1048576.0, 1e-9 * mat_bytes / hot,
                   1e9 * hot / (double)n_rows, per256, 1e-9 * mat_bytes / cold,
                   1e9 * cold / (double)n_rows, rdiff);
            fflush(stdout);
            if (isa > MLXR_ISA_SCALAR && k.type[bt->t].gemm && bt->block_n > 1) {
                enum { NC = 32 };
                const size_t xb = (size_t)n_cols * sizeof(float); /* >= any encoded row */
                char *xs = xmalloc(xb * NC);
                float *yy = xmalloc(sizeof(float) * (size_t)n_rows * NC);
                for (int j = 0; j < NC; j++) {
                    for (int64_t c = 0; c < n_cols; c++)
                        src[c] = rnd();
                    ref.type[xt].from_float(src, xs + (size_t)j * xb, n_cols);
                }
                const double tg = time_gemm(&k.type[bt->t], mats[0], row_bytes, xs, xb, yy, n_rows,
                                            n_cols, NC, 1);
                const double td = time_gemm(&k.type[bt->t], mats[0], row_bytes, xs, xb, yy, n_rows,
                                            n_cols, NC, 0);
                const double units = (double)n_rows * (double)n_cols / 256.0 * NC;
                printf("%-6s %-16s gemm x%d: %.2f ns/256w/row (tiled) vs %.2f (vec_dot), %.2fx\n",
                       bt->name, mlxr_isa_name(k.isa), NC, 1e9 * tg / units, 1e9 * td / units,
                       td / tg);
                if (k.type[bt->t].gemm_packed && k.type[bt->t].repack)
                    bench_packed(&k.type[bt->t], mats, hot_only ? 1 : n_mats, row_bytes, n_rows,
                                 n_cols, xs, xb, NC, tg, bt->name, mlxr_isa_name(k.isa));
                free(xs);
                free(yy);
            }
        }
        free(x);
        for (int m = 0; m < n_mats; m++)
            free(mats[m]);
        free(mats);
    }
    free(src);
    free(y);
    free(y_ref);
    return 0;
}
