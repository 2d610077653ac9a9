/*
 * test_mlx_types.c - the native MLX affine weight types (src/kernels/ref/mlx_types.c,
 * src/kernels/cpu/mlx_types_avx2.c; layout in kernels/mlx_affine.h, numbers in format/dtype.h):
 *  1. the type table: 12 weight types and MLX_A8, names, bytes per row equal to the MLX arrays'
 *     (codes + f16/bf16 scale and bias per group), never a GGUF type (mlxr_dtype_get is NULL,
 *     the GGUF writer refuses them), (bits, group, scale type) <-> type both ways;
 *  2. on fresh random matrices (odd row counts, every bits x group size x f16/bf16 scale,
 *     scales with exponents that f16 cannot hold for the bf16 types): rows converted with
 *     mlxr_mlx_row_to_blocks decode, through the kernel table's to_float at every ISA level, bit
 *     for bit to mlxr_mlx_affine_dequant_ref of the source arrays; the scalar vec_dot equals
 *     mlxr_mlx_affine_dot_q8_ref on the source arrays bit for bit; every level's vec_dot equals
 *     the double dot of the dequantized row and int8 activation within
 *     (blocks + groups + 8) * FLT_EPSILON * M (M = sum of |s q a| + |b a|), as
 *     test_mlx_affine.c's bound; every level's gemm (any number of activation rows, strided)
 *     equals that level's vec_dot bit for bit (batch invariant), rows of over 1024 groups too;
 *  3. the MLX_A8 encoder of every level equals mlxr_mlx_q8_quantize_ref bit for bit (random
 *     rows, an all-zero block, one huge and one tiny block).
 */
#include <float.h>
#include <math.h>

#include "format/dtype.h"
#include "format/gguf_write.h"
#include "kernels/mlx_affine.h"
#include "test.h"
#include "util/fp16.h"

static const int BITS[] = {4, 8}, GROUPS[] = {32, 64, 128};

static void test_table(void) {
    int seen = 0;
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int bf = 0; bf < 2; bf++) {
                const int bits = BITS[bi], gs = GROUPS[gi];
                const mlxr_mlx_scale_type st = bf ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
                const mlxr_dtype t = mlxr_mlx_dtype(bits, gs, st);
                int b2 = 0, g2 = 0;
                mlxr_mlx_scale_type s2 = 0;
                CHECK(mlxr_mlx_dtype_params(t, &b2, &g2, &s2) && b2 == bits && g2 == gs && s2 == st,
                      "params of type %d", (int)t);
                char want[32];
                snprintf(want, sizeof want, "MLX_Q%d_G%d%s", bits, gs, bf ? "_BF16" : "");
                const char *name = mlxr_dtype_name(t);
                CHECK(name && !strcmp(name, want), "type %d named %s, want %s", (int)t,
                      name ? name : "(null)", want);
                CHECK(mlxr_dtype_get(t) == NULL && mlxr_dtype_is_internal(t),
                      "%s must not be a GGUF type", want);
                const int64_t n = 3 * 128;
                /* MLX's arrays: n * bits / 32 words + n / gs scales + n / gs biases */
                const size_t mlx_bytes = (size_t)(n * bits / 32 * 4 + n / gs * 2 * 2);
                CHECK(mlxr_dtype_row_size(t, n) == mlx_bytes, "%s: %zu bytes a row, MLX %zu", want,
                      mlxr_dtype_row_size(t, n), mlx_bytes);
                CHECK(mlxr_dtype_row_size(t, n + 16) == 0, "%s: partial group", want);
                seen |= 1 << (t - MLXR_DTYPE_MLX_FIRST);
            }
    CHECK(seen == (1 << MLXR_DTYPE_MLX_COUNT) - 1, "12 distinct types: %x", seen);
    CHECK(mlxr_mlx_dtype(3, 64, MLXR_MLX_SCALE_F16) == MLXR_DTYPE_COUNT, "bits 3");
    CHECK(mlxr_mlx_dtype(4, 48, MLXR_MLX_SCALE_F16) == MLXR_DTYPE_COUNT, "group 48");
    CHECK(!mlxr_mlx_dtype_params(MLXR_DTYPE_Q4_1, NULL, NULL, NULL), "Q4_1 is no MLX type");
    const mlxr_dtype_traits *a8 = mlxr_dtype_traits_of(MLXR_DTYPE_MLX_A8);
    CHECK(a8 && a8->blck_size == 32 && a8->type_size == (int)sizeof(mlxr_mlx_q8) &&
              !mlxr_dtype_get(MLXR_DTYPE_MLX_A8),
          "MLX_A8 traits");
    CHECK(!mlxr_dtype_is_internal(MLXR_DTYPE_Q8_0) && !mlxr_dtype_is_internal(39) &&
              !mlxr_dtype_traits_of(MLXR_DTYPE_TABLE_SIZE),
          "internal range");
    /* a GGUF file can never hold one */
    mlxr_gguf_writer *w = mlxr_gguf_writer_new();
    uint8_t data[36] = {0};
    const int64_t ne[2] = {32, 1};
    mlxr_err err = {0};
    CHECK(w && mlxr_gguf_writer_add_tensor(w, "x.weight", 2, ne,
                                           mlxr_mlx_dtype(4, 32, MLXR_MLX_SCALE_F16), data,
                                           &err) == MLXR_ERR_INVALID,
          "gguf writer took an internal type");
    CHECK(strstr(err.msg, "internal to mlxr") != NULL, "writer message: %s", err.msg);
    fprintf(stderr, "  gguf writer, MLX_Q4_G32 tensor -> %s\n", err.msg);
    mlxr_gguf_writer_free(w);
}

/* A random f16/bf16 value: uniform mantissa, exponent 2^[lo, hi] (bf16 reaches below f16). */
static uint16_t rand_half(uint64_t *rng, int bf16, int lo, int hi) {
    float v = test_rng_f32(rng, -1.0f, 1.0f) *
              ldexpf(1.0f, lo + (int)(test_rng_u64(rng) % (uint64_t)(hi - lo + 1)));
    return bf16 ? mlxr_fp32_to_bf16(v) : mlxr_fp32_to_fp16(v);
}

/* rows x n source arrays, their native copy, and activations. */
typedef struct case_data {
    mlxr_mlx_matrix mm;
    uint32_t *w;
    uint16_t *s, *b;
    uint8_t *native;
    size_t row_bytes;
} case_data;

static case_data make_case(uint64_t *rng, int bits, int gs, int bf16, int64_t rows, int64_t n) {
    case_data c;
    const int64_t nw = rows * n * bits / 32, ng = rows * n / gs;
    c.w = malloc(sizeof *c.w * (size_t)nw);
    c.s = malloc(sizeof *c.s * (size_t)ng);
    c.b = malloc(sizeof *c.b * (size_t)ng);
    for (int64_t i = 0; i < nw; i++)
        c.w[i] = (uint32_t)test_rng_u64(rng);
    for (int64_t g = 0; g < ng; g++) {
        /* bf16: exponents f16 cannot hold (down to 2^-40); f16: its whole normal range's low end */
        c.s[g] = rand_half(rng, bf16, bf16 ? -40 : -14, -3);
        c.b[g] = rand_half(rng, bf16, bf16 ? -40 : -14, 0);
    }
    const mlxr_mlx_matrix mm = {
        bits, gs, bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16, rows, n, c.w, c.s, c.b};
    c.mm = mm;
    const mlxr_dtype t = mlxr_mlx_dtype(bits, gs, mm.scale_type);
    c.row_bytes = mlxr_dtype_row_size(t, n);
    c.native = malloc(c.row_bytes * (size_t)rows);
    for (int64_t r = 0; r < rows; r++) {
        const mlxr_mlx_row row = mlxr_mlx_matrix_row(&mm, r);
        mlxr_mlx_row_to_blocks(&row, c.native + (size_t)r * c.row_bytes);
    }
    return c;
}

static void free_case(case_data *c) {
    free(c->w);
    free(c->s);
    free(c->b);
    free(c->native);
}

static float half_val(int bf16, uint16_t h) {
    return bf16 ? mlxr_bf16_to_fp32(h) : mlxr_fp16_to_fp32(h);
}

static void test_kernels(uint64_t *rng) {
    static const int64_t mult[] = {1, 3, 8};
    const mlxr_isa top = mlxr_cpu_isa();
    mlxr_kernels *ks = malloc(sizeof *ks * (size_t)(top + 1));
    for (int isa = MLXR_ISA_SCALAR; isa <= (int)top; isa++)
        mlxr_kernels_init(&ks[isa], isa);
    const int64_t rows = 7, NC = 11; /* odd rows; activation rows: 2 full tiles of 4 and 3 more */
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int mi = 0; mi < 3; mi++)
                for (int bf16 = 0; bf16 < 2; bf16++) {
                    const int bits = BITS[bi], gs = GROUPS[gi];
                    const int64_t n = 128 * mult[mi];
                    const mlxr_dtype t =
                        mlxr_mlx_dtype(bits, gs, bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16);
                    char what[80];
                    snprintf(what, sizeof what, "%s n %lld", mlxr_dtype_name(t), (long long)n);
                    case_data c = make_case(rng, bits, gs, bf16, rows, n);
                    /* activations, one row padded by a block (x_stride != row size) */
                    const size_t xs = (size_t)(n / 32 + 1) * sizeof(mlxr_mlx_q8);
                    mlxr_mlx_q8 *xq = calloc((size_t)NC, xs);
                    float *x = malloc(sizeof *x * (size_t)n);
                    for (int64_t j = 0; j < NC; j++) {
                        const float range = j == 2 ? 1e4f : 2.0f;
                        for (int64_t i = 0; i < n; i++)
                            x[i] = test_rng_f32(rng, -range, range);
                        if (j == 1) memset(x, 0, 32 * sizeof *x); /* a zero block */
                        mlxr_mlx_q8_quantize_ref(x, (mlxr_mlx_q8 *)((uint8_t *)xq + (size_t)j * xs),
                                                 n);
                    }
                    float *a = malloc(sizeof *a * (size_t)n), *d = malloc(sizeof *d * (size_t)n);
                    /* per (row, column): the reference value and its tolerance */
                    float *ref = malloc(sizeof *ref * (size_t)(rows * NC));
                    double *tol = malloc(sizeof *tol * (size_t)(rows * NC));
                    int64_t bad_deq = 0, bad_ref = 0;
                    for (int64_t r = 0; r < rows; r++) {
                        const mlxr_mlx_row row = mlxr_mlx_matrix_row(&c.mm, r);
                        const uint8_t *nr = c.native + (size_t)r * c.row_bytes;
                        mlxr_mlx_affine_dequant_ref(&row, a);
                        for (int isa = MLXR_ISA_SCALAR; isa <= (int)top; isa++) {
                            ks[isa].type[t].to_float(nr, d, n);
                            bad_deq += memcmp(a, d, sizeof *a * (size_t)n) != 0;
                        }
                        for (int64_t j = 0; j < NC; j++) {
                            const mlxr_mlx_q8 *xj =
                                (const mlxr_mlx_q8 *)((uint8_t *)xq + (size_t)j * xs);
                            const float want = mlxr_mlx_affine_dot_q8_ref(&row, xj);
                            float got;
                            ks[MLXR_ISA_SCALAR].type[t].vec_dot(n, &got, nr, xj);
                            bad_ref += memcmp(&got, &want, 4) != 0;
                            double mag = 0;
                            for (int64_t i = 0; i < n; i++) {
                                const double ai = (double)xj[i / 32].d * xj[i / 32].qs[i % 32];
                                mag += fabs((double)a[i] * ai) +
                                       fabs((double)half_val(bf16, row.biases[i / gs]) * ai);
                            }
                            ref[r * NC + j] = want;
                            tol[r * NC + j] =
                                (double)(n / 32 + n / gs + 8) * FLT_EPSILON * mag + 1e-30;
                        }
                    }
                    CHECK(bad_deq == 0, "%s: %lld rows decode differently from the MLX arrays",
                          what, (long long)bad_deq);
                    CHECK(bad_ref == 0, "%s: %lld scalar dots differ from dot_q8_ref", what,
                          (long long)bad_ref);
                    for (int isa = MLXR_ISA_SCALAR; isa <= (int)top; isa++) {
                        const mlxr_type_kernels *tk = &ks[isa].type[t];
                        CHECK(tk->vec_dot_type == MLXR_DTYPE_MLX_A8, "%s vec_dot_type", what);
                        float dots[7 * 11];
                        int64_t bad = 0;
                        for (int64_t r = 0; r < rows; r++)
                            for (int64_t j = 0; j < NC; j++) {
                                tk->vec_dot(n, &dots[r * NC + j],
                                            c.native + (size_t)r * c.row_bytes,
                                            (uint8_t *)xq + (size_t)j * xs);
                                if (fabs((double)dots[r * NC + j] - ref[r * NC + j]) >
                                        tol[r * NC + j] &&
                                    bad++ < 3)
                                    fprintf(stderr, "%s %s row %lld col %lld: %.9g vs ref %.9g\n",
                                            what, mlxr_isa_name(isa), (long long)r, (long long)j,
                                            dots[r * NC + j], ref[r * NC + j]);
                            }
                        CHECK(bad == 0, "%s %s: %lld dots off the reference", what,
                              mlxr_isa_name(isa), (long long)bad);
                        if (!tk->gemm) continue;
                        /* every column count up to NC, output strided (ldy = rows + 2) */
                        for (int64_t nc = 1; nc <= NC; nc++) {
                            const size_t ldy = (size_t)rows + 2;
                            float y[13 * 11];
                            for (size_t i = 0; i < sizeof y / sizeof *y; i++)
                                y[i] = NAN;
                            tk->gemm(n, rows, nc, c.native, c.row_bytes, xq, xs, y, ldy);
                            int64_t diff = 0;
                            for (int64_t j = 0; j < nc; j++)
                                for (int64_t r = 0; r < rows; r++)
                                    diff += memcmp(&y[(size_t)j * ldy + (size_t)r],
                                                   &dots[r * NC + j], 4) != 0;
                            CHECK(diff == 0, "%s %s gemm nc %lld: %lld outputs differ from vec_dot",
                                  what, mlxr_isa_name(isa), (long long)nc, (long long)diff);
                        }
                    }
                    free(ref);
                    free(tol);
                    free(a);
                    free(d);
                    free(x);
                    free(xq);
                    free_case(&c);
                }
    free(ks);
}

/* Rows longer than the tiled product keeps activation terms for (1024 groups) take its vec_dot
 * path: still equal to the vec_dot bit for bit. */
static void test_long_rows(uint64_t *rng) {
    const mlxr_isa top = mlxr_cpu_isa();
    const int64_t rows = 3, NC = 5, n = 32 * 1025;
    for (int bi = 0; bi < 2; bi++) {
        case_data c = make_case(rng, BITS[bi], 32, 0, rows, n);
        const mlxr_dtype t = mlxr_mlx_dtype(BITS[bi], 32, MLXR_MLX_SCALE_F16);
        const size_t xs = (size_t)(n / 32) * sizeof(mlxr_mlx_q8);
        mlxr_mlx_q8 *xq = malloc((size_t)NC * xs);
        float *x = malloc(sizeof *x * (size_t)n);
        for (int64_t j = 0; j < NC; j++) {
            for (int64_t i = 0; i < n; i++)
                x[i] = test_rng_f32(rng, -1.0f, 1.0f);
            mlxr_mlx_q8_quantize_ref(x, (mlxr_mlx_q8 *)((uint8_t *)xq + (size_t)j * xs), n);
        }
        for (int isa = MLXR_ISA_SCALAR; isa <= (int)top; isa++) {
            mlxr_kernels k;
            mlxr_kernels_init(&k, isa);
            if (!k.type[t].gemm) continue;
            float y[3 * 5];
            k.type[t].gemm(n, rows, NC, c.native, c.row_bytes, xq, xs, y, (size_t)rows);
            int64_t diff = 0;
            for (int64_t j = 0; j < NC; j++)
                for (int64_t r = 0; r < rows; r++) {
                    float d;
                    k.type[t].vec_dot(n, &d, c.native + (size_t)r * c.row_bytes,
                                      (uint8_t *)xq + (size_t)j * xs);
                    diff += memcmp(&d, &y[j * rows + r], 4) != 0;
                }
            CHECK(diff == 0, "%s %s, rows of %lld: %lld gemm outputs differ from vec_dot",
                  mlxr_dtype_name(t), mlxr_isa_name(isa), (long long)n, (long long)diff);
        }
        free(x);
        free(xq);
        free_case(&c);
    }
}

static void test_encoder(uint64_t *rng) {
    const mlxr_isa top = mlxr_cpu_isa();
    const int64_t n = 32 * 9;
    float *x = malloc(sizeof *x * (size_t)n);
    mlxr_mlx_q8 *want = malloc(sizeof *want * (size_t)(n / 32)),
                *got = malloc(sizeof *got * (size_t)(n / 32));
    for (int rep = 0; rep < 20; rep++) {
        for (int64_t i = 0; i < n; i++)
            x[i] = test_rng_f32(rng, -3.0f, 3.0f);
        memset(x + 32, 0, 32 * sizeof *x); /* zero block */
        for (int i = 64; i < 96; i++)
            x[i] *= 1e30f; /* huge */
        for (int i = 96; i < 128; i++)
            x[i] *= 1e-30f; /* tiny */
        for (int i = 128; i < 160; i++)
            x[i] = (float)(i % 7) - 3.0f; /* exact halves */
        x[170] = 127.5f / 127.0f * 3.0f;
        mlxr_mlx_q8_quantize_ref(x, want, n);
        for (int isa = MLXR_ISA_SCALAR; isa <= (int)top; isa++) {
            mlxr_kernels k;
            mlxr_kernels_init(&k, isa);
            memset(got, 0x55, sizeof *got * (size_t)(n / 32));
            k.type[MLXR_DTYPE_MLX_A8].from_float(x, got, n);
            CHECK(memcmp(got, want, sizeof *got * (size_t)(n / 32)) == 0,
                  "MLX_A8 encoder %s differs from mlxr_mlx_q8_quantize_ref", mlxr_isa_name(isa));
        }
    }
    free(x);
    free(want);
    free(got);
}

int main(void) {
    uint64_t rng = test_seed();
    test_table();
    test_kernels(&rng);
    test_long_rows(&rng);
    test_encoder(&rng);
    return test_finish("test_mlx_types");
}
