/*
 * test_mlx_affine.c - MLX affine group quantization kernels (src/kernels/ref/mlx_affine.c and
 * src/kernels/cpu/mlx_affine_avx2.c):
 *  1. dequantization equals, bit for bit, fixed vectors computed by an independent Python
 *     implementation (scripts/gen_mlx_affine_vectors.py -> tests/data/mlx_affine_vectors.h);
 *  2. the float quantizer gives the codes, scales and biases of the same script's rendering of
 *     mx.quantize (codes may differ by one where a value sits within float rounding of a half);
 *  3. on fresh random rows (bits 4/8, group sizes 32/64/128, several lengths, f16 and bf16):
 *     dot_q8_ref equals the double dot of the dequantized row with the dequantized int8
 *     activation within (blocks + groups + 8) * FLT_EPSILON * M (M = sum of |s q a| + |b a|,
 *     blocks of 32 and groups: the sums a float error can accumulate over), every ISA's dot_q8
 *     equals dot_q8_ref within the same bound, dot_f32_ref equals the double dot of the decoded
 *     row with x, and the matrix-vector helper equals row-by-row dots;
 *  4. quantize -> dequantize is within half a step (|scale| / 2, plus the scale's f16/bf16
 *     rounding times the code) of the input inside the codes' range, 1.6 steps beyond it (MLX
 *     pins the larger-magnitude edge, which can pull the other end in by about a step);
 *  5. bad descriptors (bits 3, group 48, length not a multiple of the group) give a status.
 */
#include <float.h>
#include <math.h>

#include "../data/mlx_affine_vectors.h"
#include "kernels/mlx_affine.h"
#include "test.h"
#include "util/fp16.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static float half_val(int bf16, uint16_t h) {
    return bf16 ? mlxr_bf16_to_fp32(h) : mlxr_fp16_to_fp32(h);
}

static void test_vectors(void) {
    for (int c = 0; c < COUNT(mlx_deq_cases); c++) {
        int n = mlx_deq_cases[c].n;
        mlxr_mlx_row row = {mlx_deq_cases[c].bits, mlx_deq_cases[c].gs,
                            mlx_deq_cases[c].bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16,
                            n, mlx_deq_cases[c].w, mlx_deq_cases[c].s, mlx_deq_cases[c].b};
        CHECK(mlxr_mlx_affine_check(row.bits, row.group_size, n, row.scale_type, NULL) == MLXR_OK,
              "case %d", c);
        float *y = malloc(sizeof(float) * (size_t)n);
        mlxr_mlx_affine_dequant_ref(&row, y);
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (y[i] != mlx_deq_cases[c].y[i] && bad++ < 3)
                fprintf(stderr, "deq case %d [%d]: %.9g want %.9g\n", c, i, y[i],
                        mlx_deq_cases[c].y[i]);
        CHECK(bad == 0, "dequant case %d: %d mismatches", c, bad);
        free(y);
    }
    for (int c = 0; c < COUNT(mlx_quant_cases); c++) {
        int n = mlx_quant_cases[c].n, bits = mlx_quant_cases[c].bits, gs = mlx_quant_cases[c].gs;
        mlxr_mlx_scale_type st = mlx_quant_cases[c].bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
        int nw = n * bits / 32, ng = n / gs;
        uint32_t *w = malloc(sizeof(uint32_t) * (size_t)nw);
        uint16_t *s = malloc(2 * (size_t)ng), *b = malloc(2 * (size_t)ng);
        CHECK(mlxr_mlx_affine_quantize(mlx_quant_cases[c].x, n, bits, gs, st, w, s, b, NULL) ==
                  MLXR_OK,
              "quant case %d", c);
        int bad_sb = 0, bad_code = 0, off_by_one = 0;
        for (int g = 0; g < ng; g++)
            bad_sb += s[g] != mlx_quant_cases[c].s[g] || b[g] != mlx_quant_cases[c].b[g];
        int per = 32 / bits;
        for (int i = 0; i < n; i++) {
            int got = (int)(w[i / per] >> (i % per * bits)) & ((1 << bits) - 1);
            int want = (int)(mlx_quant_cases[c].w[i / per] >> (i % per * bits)) & ((1 << bits) - 1);
            if (got != want) {
                if (abs(got - want) == 1)
                    off_by_one++;
                else
                    bad_code++;
            }
        }
        CHECK(bad_sb == 0, "quant case %d: %d groups with other scale/bias", c, bad_sb);
        CHECK(bad_code == 0 && off_by_one <= n / 64, "quant case %d: %d codes off, %d by one", c,
              bad_code, off_by_one);
        free(w);
        free(s);
        free(b);
    }
}

/* A random row: random codes, scales and biases of sane size. Allocations end at the row's end. */
typedef struct rand_row {
    mlxr_mlx_row row;
    uint32_t *w;
    uint16_t *s, *b;
} rand_row;

static rand_row make_row(uint64_t *rng, int bits, int gs, int64_t n, int bf16) {
    rand_row r;
    int64_t nw = mlxr_mlx_row_words(bits, n), ng = n / gs;
    r.w = malloc(sizeof(uint32_t) * (size_t)nw);
    r.s = malloc(2 * (size_t)ng);
    r.b = malloc(2 * (size_t)ng);
    for (int64_t i = 0; i < nw; i++) r.w[i] = (uint32_t)test_rng_u64(rng);
    for (int64_t g = 0; g < ng; g++) {
        float s = test_rng_f32(rng, -0.05f, 0.05f), b = test_rng_f32(rng, -1.0f, 1.0f);
        r.s[g] = bf16 ? mlxr_fp32_to_bf16(s) : mlxr_fp32_to_fp16(s);
        r.b[g] = bf16 ? mlxr_fp32_to_bf16(b) : mlxr_fp32_to_fp16(b);
    }
    mlxr_mlx_row row = {bits, gs, bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16, n, r.w, r.s,
                        r.b};
    r.row = row;
    return r;
}

static void free_row(rand_row *r) {
    free(r->w);
    free(r->s);
    free(r->b);
}

static void test_dots(uint64_t *rng) {
    static const int bits_list[] = {4, 8}, gs_list[] = {32, 64, 128};
    static const int64_t mult[] = {1, 2, 3, 7, 32};
    mlxr_isa top = mlxr_cpu_isa();
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int mi = 0; mi < COUNT(mult); mi++)
                for (int bf16 = 0; bf16 < 2; bf16++) {
                    int bits = bits_list[bi], gs = gs_list[gi];
                    int64_t n = gs * mult[mi];
                    rand_row r = make_row(rng, bits, gs, n, bf16);
                    float *x = malloc(sizeof(float) * (size_t)n);
                    float *wd = malloc(sizeof(float) * (size_t)n);
                    mlxr_mlx_q8 *xq = malloc(sizeof(mlxr_mlx_q8) * (size_t)(n / 32));
                    for (int64_t i = 0; i < n; i++) x[i] = test_rng_f32(rng, -2.0f, 2.0f);
                    mlxr_mlx_q8_quantize_ref(x, xq, n);
                    mlxr_mlx_affine_dequant_ref(&r.row, wd);

                    double exact_q = 0, mag_q = 0, exact_f = 0, mag_f = 0;
                    int64_t ng = n / gs;
                    for (int64_t i = 0; i < n; i++) {
                        const mlxr_mlx_q8 *blk = &xq[i / 32];
                        double a = (double)blk->d * blk->qs[i % 32];
                        exact_q += (double)wd[i] * a;
                        /* the dot sums s*q*a and b*a separately: bound by both magnitudes */
                        float bb = half_val(bf16, r.b[i / gs]);
                        mag_q += fabs((double)wd[i] * a) + fabs((double)bb * a);
                        exact_f += (double)wd[i] * x[i];
                        mag_f += fabs((double)wd[i] * x[i]);
                        /* q = round(x * id): id = 1/d and the product each carry a float
                         * rounding (relative eps/2), so at a half step q may round either way
                         * by |x| * eps beyond d/2 (seen at MLXR_SEED=4766820734078440681) */
                        CHECK(fabs(a - x[i]) <= 0.5 * blk->d * (1 + 1e-5) + 2 * FLT_EPSILON * fabs(x[i]) + 1e-30,
                              "q8 step bits %d gs %d n %lld i %lld", bits, gs, (long long)n,
                              (long long)i);
                    }
                    double tol_q = (double)(n / 32 + ng + 8) * FLT_EPSILON * mag_q + 1e-30;
                    float ref = mlxr_mlx_affine_dot_q8_ref(&r.row, xq);
                    CHECK(fabs(ref - exact_q) <= tol_q,
                          "dot_q8_ref bits %d gs %d n %lld bf16 %d: %.9g vs %.9g", bits, gs,
                          (long long)n, bf16, ref, exact_q);
                    float f = mlxr_mlx_affine_dot_f32_ref(&r.row, x);
                    CHECK(fabs(f - exact_f) <= (double)(n + 8) * FLT_EPSILON * mag_f + 1e-30,
                          "dot_f32_ref bits %d gs %d n %lld: %.9g vs %.9g", bits, gs,
                          (long long)n, f, exact_f);
                    for (int isa = MLXR_ISA_SCALAR; isa <= (int)top; isa++) {
                        mlxr_mlx_affine_kernels k = mlxr_mlx_affine_kernels_for((mlxr_isa)isa);
                        float got = k.dot_q8(&r.row, xq);
                        CHECK(fabs(got - ref) <= tol_q,
                              "dot_q8 %s bits %d gs %d n %lld bf16 %d: %.9g vs ref %.9g",
                              mlxr_isa_name((mlxr_isa)isa), bits, gs, (long long)n, bf16, got,
                              ref);
                    }
                    free(x);
                    free(wd);
                    free(xq);
                    free_row(&r);
                }
}

static void test_matvec(uint64_t *rng) {
    const int rows = 5, cols = 256, gs = 64, bits = 4;
    int64_t nw = mlxr_mlx_row_words(bits, cols) * rows, ng = cols / gs * rows;
    uint32_t *w = malloc(sizeof(uint32_t) * (size_t)nw);
    uint16_t *s = malloc(2 * (size_t)ng), *b = malloc(2 * (size_t)ng);
    for (int64_t i = 0; i < nw; i++) w[i] = (uint32_t)test_rng_u64(rng);
    for (int64_t i = 0; i < ng; i++) {
        s[i] = mlxr_fp32_to_fp16(test_rng_f32(rng, -0.1f, 0.1f));
        b[i] = mlxr_fp32_to_fp16(test_rng_f32(rng, -1.0f, 1.0f));
    }
    float x[256], y[5];
    mlxr_mlx_q8 xq[256 / 32];
    for (int i = 0; i < cols; i++) x[i] = test_rng_f32(rng, -1.0f, 1.0f);
    mlxr_mlx_q8_quantize_ref(x, xq, cols);
    mlxr_mlx_matrix m = {bits, gs, MLXR_MLX_SCALE_F16, rows, cols, w, s, b};
    mlxr_mlx_affine_kernels k = mlxr_mlx_affine_kernels_for(mlxr_cpu_isa());
    mlxr_mlx_affine_matvec(&m, xq, y, k.dot_q8);
    for (int r = 0; r < rows; r++) {
        mlxr_mlx_row row = {bits, gs, MLXR_MLX_SCALE_F16, cols,
                            w + r * mlxr_mlx_row_words(bits, cols), s + r * (cols / gs),
                            b + r * (cols / gs)};
        CHECK(y[r] == k.dot_q8(&row, xq), "matvec row %d", r);
    }
    free(w);
    free(s);
    free(b);
}

static void test_roundtrip(uint64_t *rng) {
    static const int bits_list[] = {4, 8}, gs_list[] = {32, 64, 128};
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int bf16 = 0; bf16 < 2; bf16++) {
                int bits = bits_list[bi], gs = gs_list[gi];
                int64_t n = gs * 4;
                float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
                uint32_t *w = malloc(sizeof(uint32_t) * (size_t)mlxr_mlx_row_words(bits, n));
                uint16_t *s = malloc(2 * (size_t)(n / gs)), *b = malloc(2 * (size_t)(n / gs));
                for (int64_t i = 0; i < n; i++) x[i] = test_rng_f32(rng, -3.0f, 1.0f);
                for (int64_t i = 0; i < gs; i++) x[i] = 0.5f; /* a constant group */
                mlxr_mlx_scale_type st = bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
                CHECK(mlxr_mlx_affine_quantize(x, n, bits, gs, st, w, s, b, NULL) == MLXR_OK,
                      "quantize");
                mlxr_mlx_row row = {bits, gs, st, n, w, s, b};
                mlxr_mlx_affine_dequant_ref(&row, y);
                double hprec = bf16 ? 1.0 / 256 : 1.0 / 2048; /* relative rounding of s and b */
                int bad = 0;
                for (int64_t i = 0; i < n; i++) {
                    float sc = half_val(bf16, s[i / gs]), bi_ = half_val(bf16, b[i / gs]);
                    double q = ((1 << bits) - 1);
                    /* Inside the codes' range the error is half a step. Pinning the dominant
                     * edge moves the other end of the range by at most n_bins * |s| * 0.5 / |q0|
                     * with |q0| >= n_bins / 2 rounded, about one step: values beyond it are
                     * clamped, so up to 1.6 steps there. */
                    double r0 = bi_, r1 = bi_ + q * sc;
                    int inside = x[i] >= fmin(r0, r1) && x[i] <= fmax(r0, r1);
                    double tol = (inside ? 0.5 : 1.6) * fabs(sc) * (1 + hprec) +
                                 hprec * (fabs(sc) * q + fabs(bi_)) + 1e-6;
                    if (fabs((double)y[i] - x[i]) > tol && bad++ < 3)
                        fprintf(stderr, "roundtrip bits %d gs %d [%lld]: %g -> %g (tol %g)\n",
                                bits, gs, (long long)i, x[i], y[i], tol);
                }
                CHECK(bad == 0, "roundtrip bits %d gs %d bf16 %d: %d off", bits, gs, bf16, bad);
                /* the constant group dequantizes exactly (its edge is pinned) */
                CHECK(y[0] == 0.5f && y[gs - 1] == 0.5f, "constant group: %g", y[0]);
                free(x);
                free(y);
                free(w);
                free(s);
                free(b);
            }
}

static void test_bad(void) {
    mlxr_err e = {0};
    CHECK(mlxr_mlx_affine_check(3, 64, 128, MLXR_MLX_SCALE_F16, &e) == MLXR_ERR_UNSUPPORTED,
          "bits 3");
    CHECK(strstr(e.msg, "3 bits") != NULL, "message: %s", e.msg);
    CHECK(mlxr_mlx_affine_check(4, 48, 96, MLXR_MLX_SCALE_F16, NULL) == MLXR_ERR_UNSUPPORTED,
          "group 48");
    CHECK(mlxr_mlx_affine_check(4, 64, 96, MLXR_MLX_SCALE_F16, &e) == MLXR_ERR_INVALID, "n 96");
    CHECK(strstr(e.msg, "96") != NULL, "message: %s", e.msg);
    CHECK(mlxr_mlx_affine_check(4, 64, 0, MLXR_MLX_SCALE_F16, NULL) == MLXR_ERR_INVALID, "n 0");
    CHECK(mlxr_mlx_affine_check(8, 32, 64, 7, NULL) == MLXR_ERR_INVALID, "scale type");
    float x[96] = {0};
    uint32_t w[48];
    uint16_t s[4], b[4];
    CHECK(mlxr_mlx_affine_quantize(x, 96, 4, 64, MLXR_MLX_SCALE_F16, w, s, b, NULL) ==
              MLXR_ERR_INVALID,
          "quantize n 96");
    CHECK(mlxr_mlx_affine_quantize(x, 96, 3, 32, MLXR_MLX_SCALE_F16, w, s, b, NULL) ==
              MLXR_ERR_UNSUPPORTED,
          "quantize bits 3");
}

int main(void) {
    uint64_t rng = test_seed();
    test_vectors();
    test_dots(&rng);
    test_matvec(&rng);
    test_roundtrip(&rng);
    test_bad();
    return test_finish("test_mlx_affine");
}
