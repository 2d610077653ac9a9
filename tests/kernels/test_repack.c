/*
 * test_repack.c - the interleaved layouts Q4_0x8 / Q8_0x8 (kernels.h, ref/repack.c) and Q4_Kx8
 * (ref/repack_k.h) and the products over them.
 *
 *   - reference packed product == plain reference (gemm by mlxr_vec_dot_*_ref) bit for bit, for
 *     row counts with and without a partial last group: this checks the repacking and the
 *     layout's definition;
 *   - every compiled fast packed product (gemm_packed at each ISA level this CPU has) against the
 *     reference within |fast - ref| <= (n/32 + 16) * FLT_EPSILON * M, M = sum_i |w_i * x_i|
 *     (+ sum_i |z_i * x_i| for Q4_K, z the min part: see abs_dot) (float reordering only, as
 *     test_types.c's and test_quants.c's bounds);
 *   - batch invariance: each output of a fast product equals, bit for bit, the same output computed
 *     alone (one activation row, one group of rows), as the forward pass relies on.
 * Weights are random bytes (any quant byte, -128 included) with random finite f16 scales (d, and
 * dmin for Q4_K); activations come from the type's activation quantizer (Q8_0, Q8_K) of random
 * floats, as in the forward pass. Sizes are odd: blocks per row across the fast kernels' K chunks,
 * rows not a multiple of 8, 1..9 activation rows. Seed printed; MLXR_SEED reproduces it. Buffers
 * end exactly at their allocation (ASan).
 */
#include <float.h>
#include <math.h>

#include "kernels/kernels.h"
#include "kernels/ref/repack_k.h"
#include "test.h"
#include "util/fp16.h"

static uint64_t rng;

typedef struct ptype {
    mlxr_dtype t;
    const char *name;
    int64_t block_n;    /* elements per block */
    size_t block_bytes; /* weight bytes per block */
    size_t act_bytes;   /* activation bytes per block (Q8_0 or Q8_K) */
    mlxr_vec_dot_fn dot_ref;
    mlxr_to_float_fn dequant;
    mlxr_gemm_fn gemm_ref;
    mlxr_from_float_fn act_quant;
    mlxr_to_float_fn act_dequant;
    int64_t sizes[6];      /* row lengths tested */
    mlxr_repack_fn repack; /* the layout's repacking (also set in the table on some ISA levels) */
    size_t scale2_at;      /* offset of another f16 scale (Q4_K dmin, Q6_K d), 0 if none */
} ptype;

static const ptype TYPES[] = {
    {MLXR_DTYPE_Q4_0,
     "Q4_0",
     32,
     sizeof(mlxr_block_q4_0),
     sizeof(mlxr_block_q8_0),
     mlxr_vec_dot_q4_0_ref,
     mlxr_dequantize_q4_0_ref,
     mlxr_gemm_q4_0x8_ref,
     mlxr_quantize_q8_0_ref,
     mlxr_dequantize_q8_0_ref,
     {32, 96, 2048, 2080, 4128, 32 * 131},
     mlxr_repack_q4_0x8,
     0},
    {MLXR_DTYPE_Q8_0,
     "Q8_0",
     32,
     sizeof(mlxr_block_q8_0),
     sizeof(mlxr_block_q8_0),
     mlxr_vec_dot_q8_0_ref,
     mlxr_dequantize_q8_0_ref,
     mlxr_gemm_q8_0x8_ref,
     mlxr_quantize_q8_0_ref,
     mlxr_dequantize_q8_0_ref,
     {32, 96, 2048, 2080, 4128, 32 * 131},
     mlxr_repack_q8_0x8,
     0},
    /* row lengths across the fast kernel's 8- and 64-super-block chunks */
    {MLXR_DTYPE_Q4_K,
     "Q4_K",
     256,
     sizeof(mlxr_block_q4_k),
     sizeof(mlxr_block_q8_k),
     mlxr_vec_dot_q4_k_ref,
     mlxr_dequantize_q4_k_ref,
     mlxr_gemm_q4_kx8_ref,
     mlxr_quantize_q8_k_ref,
     mlxr_dequantize_q8_k_ref,
     {256, 768, 2048, 2304, 256 * 65, 256 * 131},
     mlxr_repack_q4_kx8,
     offsetof(mlxr_block_q4_k, dmin)},
    {MLXR_DTYPE_Q6_K,
     "Q6_K",
     256,
     sizeof(mlxr_block_q6_k),
     sizeof(mlxr_block_q8_k),
     mlxr_vec_dot_q6_k_ref,
     mlxr_dequantize_q6_k_ref,
     mlxr_gemm_q6_kx8_ref,
     mlxr_quantize_q8_k_ref,
     mlxr_dequantize_q8_k_ref,
     {256, 768, 2048, 2304, 256 * 65, 256 * 131},
     mlxr_repack_q6_kx8,
     offsetof(mlxr_block_q6_k, d)},
};

static void *xalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Random finite f16 scale, magnitude in [2^-14, 2^2), random sign. */
static uint16_t random_scale(void) {
    const float m = ldexpf(test_rng_f32(&rng, 1.0f, 2.0f), (int)(test_rng_u64(&rng) % 16) - 14);
    return mlxr_fp32_to_fp16(test_rng_u64(&rng) & 1 ? -m : m);
}

/* Random bytes with a random finite f16 scale d (first in the block). */
static void random_weights(const ptype *pt, uint8_t *w, int64_t n, int64_t nr) {
    const int64_t nb = n / pt->block_n;
    for (int64_t b = 0; b < nb * nr; b++) {
        uint8_t *blk = w + (size_t)b * pt->block_bytes;
        for (size_t i = 0; i < pt->block_bytes; i++)
            blk[i] = (uint8_t)test_rng_u64(&rng);
        const uint16_t d = random_scale();
        memcpy(blk, &d, 2);
        if (pt->scale2_at) {
            const uint16_t d2 = random_scale();
            memcpy(blk + pt->scale2_at, &d2, 2);
        }
    }
}

/* Activation rows: the type's activation encoding of random floats; one row in four has blocks of
 * extreme values. */
static void random_acts(const ptype *pt, uint8_t *x, size_t xs, int64_t n, int64_t nc) {
    float *f = xalloc((size_t)n * sizeof(float));
    for (int64_t j = 0; j < nc; j++) {
        const int extreme = test_rng_u64(&rng) % 4 == 0;
        for (int64_t i = 0; i < n; i++) {
            float v = test_rng_f32(&rng, -1.0f, 1.0f);
            if (extreme) v = (v < 0.0f ? -1.0f : 1.0f) * (i % 7 == 0 ? 0.5f : 1.0f);
            f[i] = v;
        }
        pt->act_quant(f, x + (size_t)j * xs, n);
    }
    free(f);
}

/* M = sum_i |w_i x_i| of one plain weight row and one activation row, in double; for a type with
 * mins also + sum_i |z_i x_i|, z the row decoded with its quants zeroed (the min part, which the
 * products add as a separate term: test_quants.c's bound). */
static double abs_dot(const ptype *pt, const void *wrow, const void *xrow, int64_t n, float *wf,
                      float *xf) {
    pt->dequant(wrow, wf, n);
    pt->act_dequant(xrow, xf, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)wf[i] * (double)xf[i]);
    if (pt->t == MLXR_DTYPE_Q4_K) {
        const int64_t nb = n / MLXR_QK_K;
        mlxr_block_q4_k *z = xalloc((size_t)nb * sizeof *z);
        memcpy(z, wrow, (size_t)nb * sizeof *z);
        for (int64_t b = 0; b < nb; b++)
            memset(z[b].qs, 0, sizeof z[b].qs);
        pt->dequant(z, wf, n);
        for (int64_t i = 0; i < n; i++)
            s += fabs((double)wf[i] * (double)xf[i]);
        free(z);
    }
    return s;
}

static void test_case(const ptype *pt, int64_t n, int64_t nr, int64_t nc) {
    const size_t rb = (size_t)(n / pt->block_n) * pt->block_bytes;
    const size_t xs = (size_t)(n / pt->block_n) * pt->act_bytes;
    uint8_t *w = xalloc(rb * (size_t)nr), *wp = xalloc(rb * (size_t)nr);
    uint8_t *x = xalloc(xs * (size_t)nc);
    float *y_plain = xalloc(sizeof(float) * (size_t)(nr * nc));
    float *y_ref = xalloc(sizeof(float) * (size_t)(nr * nc));
    float *y_fast = xalloc(sizeof(float) * (size_t)(nr * nc));
    float *y_one = xalloc(sizeof(float) * 8);
    float *wf = xalloc(sizeof(float) * (size_t)n), *xf = xalloc(sizeof(float) * (size_t)n);
    random_weights(pt, w, n, nr);
    random_acts(pt, x, xs, n, nc);

    pt->repack(w, wp, rb, n, nr);
    mlxr_gemm_by_dots_ref(pt->dot_ref, n, nr, nc, w, rb, x, xs, y_plain, (size_t)nr);
    pt->gemm_ref(n, nr, nc, wp, rb, x, xs, y_ref, (size_t)nr);
    int bad = 0;
    for (int64_t i = 0; i < nr * nc; i++)
        if (memcmp(&y_ref[i], &y_plain[i], sizeof(float)) != 0 && ++bad <= 3)
            fprintf(stderr, "  %s n=%lld nr=%lld nc=%lld: out %lld packed ref %.9g plain %.9g\n",
                    pt->name, (long long)n, (long long)nr, (long long)nc, (long long)i,
                    (double)y_ref[i], (double)y_plain[i]);
    CHECK(bad == 0, "%s packed reference == plain reference (%d differ)", pt->name, bad);

    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        const mlxr_gemm_fn g = k.type[pt->t].gemm_packed;
        if (!g) continue;
        CHECK(k.type[pt->t].repack == pt->repack, "%s %s product is over this layout", pt->name,
              mlxr_isa_name(k.isa));
        g(n, nr, nc, wp, rb, x, xs, y_fast, (size_t)nr);
        int far = 0, variant = 0;
        for (int64_t j = 0; j < nc; j++) {
            for (int64_t r = 0; r < nr; r++) {
                const size_t o = (size_t)(j * nr + r);
                const double tol = (double)(n / 32 + 16) * FLT_EPSILON *
                                   abs_dot(pt, w + (size_t)r * rb, x + (size_t)j * xs, n, wf, xf);
                const double d = fabs((double)y_fast[o] - (double)y_ref[o]);
                if (!(d <= tol) && ++far <= 3)
                    fprintf(stderr,
                            "  %s %s n=%lld nr=%lld nc=%lld row %lld col %lld: %.9g vs ref "
                            "%.9g (tol %.3g)\n",
                            pt->name, mlxr_isa_name(k.isa), (long long)n, (long long)nr,
                            (long long)nc, (long long)r, (long long)j, (double)y_fast[o],
                            (double)y_ref[o], tol);
            }
            /* each group (or the plain tail) alone against this one activation row */
            for (int64_t r0 = 0; r0 < nr; r0 += 8) {
                const int64_t cnt = nr - r0 < 8 ? nr - r0 : 8;
                g(n, cnt, 1, wp + (size_t)r0 * rb, rb, x + (size_t)j * xs, xs, y_one, 8);
                for (int64_t r = 0; r < cnt; r++)
                    if (memcmp(&y_one[r], &y_fast[(size_t)(j * nr + r0 + r)], sizeof(float)) != 0)
                        variant++;
            }
        }
        CHECK(far == 0, "%s %s packed product within reordering of the reference (%d far)",
              pt->name, mlxr_isa_name(k.isa), far);
        CHECK(variant == 0,
              "%s %s packed product is batch invariant (%d differ) n=%lld nr=%lld "
              "nc=%lld",
              pt->name, mlxr_isa_name(k.isa), variant, (long long)n, (long long)nr, (long long)nc);
    }
    free(w);
    free(wp);
    free(x);
    free(y_plain);
    free(y_ref);
    free(y_fast);
    free(y_one);
    free(wf);
    free(xf);
}

int main(void) {
    rng = test_seed();
    static const int64_t NRS[] = {1, 7, 8, 9, 16, 23, 40};
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++) {
        const ptype *pt = &TYPES[t];
        for (size_t a = 0; a < sizeof pt->sizes / sizeof *pt->sizes; a++) {
            for (size_t b = 0; b < sizeof NRS / sizeof *NRS; b++) {
                /* 1..9 activation rows: every tile width and a tile plus a remainder */
                const int64_t nc = 1 + (int64_t)(test_rng_u64(&rng) % 9);
                test_case(pt, pt->sizes[a], NRS[b], nc);
            }
        }
        test_case(pt, 5 * pt->block_n, 24, 4);
        test_case(pt, 5 * pt->block_n, 24, 5);
    }
    return test_finish("test_repack");
}
