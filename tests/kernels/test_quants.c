/*
 * test_quants.c - the kernels of the quantized types beyond Q8_0/Q4_0 (src/kernels/ref/quants.c
 * and their SIMD variants): Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS with
 * their activation types Q8_0, Q8_1 and Q8_K.
 *
 *  1. Reference dot products against math: for fresh random weight blocks (random bytes, random
 *     f16 scales of sane size) and random float activations quantized by the reference
 *     quantizer of the vec_dot_type, vec_dot_ref equals the double-precision dot of the
 *     dequantized rows within  (nb + 8) * FLT_EPSILON * M,  M = sum |x_i y_i| + sum |z_i y_i|,
 *     z the values the weight row decodes to with all quants zeroed (its offset/min part, which
 *     the dot products add as a separate term). Q8_1 activations carry s = f16(d32 * sum q), which
 *     differs from the decoded f16(d32) * sum q by f16 rounding, so Q4_1/Q5_1 get that
 *     difference times |m| on top (s itself is checked in 2).
 *  2. The activation quantizers: values within half a step of the input; Q8_K's scale and bsums
 *     consistent; and each ISA level's from_float byte-identical to the reference.
 *  3. Every ISA level's vec_dot (and gemm where set) equals the reference within
 *     (nb + 16) * FLT_EPSILON * M (float reordering only) for n = 1 block, several, odd counts.
 *     Levels this CPU lacks (e.g. AVX512_VNNI on an AVX2 machine) are printed as SKIPPED.
 * Seeds from test_seed() (MLXR_SEED reproduces a run). Rows end exactly at the end of their
 * allocation and start at varying (type-aligned) offsets, so ASan sees any overread.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>

#include "kernels/kernels.h"
#include "test.h"
#include "util/fp16.h"

typedef struct qtype {
    mlxr_dtype t;
    const char *name;
    int block_n;
    size_t block_bytes;
    int n_f16;           /* f16 scale fields per block (d, then m / dmin) */
    size_t f16_at[2];    /* their byte offsets */
    int has_min;         /* second field is a min that must be non-negative (K) or any (Q4_1) */
    mlxr_dtype dot_type; /* expected vec_dot_type */
} qtype;

#define F16_AT(T, F) offsetof(T, F)

static const qtype QTYPES[] = {
    {MLXR_DTYPE_Q4_1,
     "Q4_1",
     32,
     sizeof(mlxr_block_q4_1),
     2,
     {F16_AT(mlxr_block_q4_1, d), F16_AT(mlxr_block_q4_1, m)},
     1,
     MLXR_DTYPE_Q8_1},
    {MLXR_DTYPE_Q5_0,
     "Q5_0",
     32,
     sizeof(mlxr_block_q5_0),
     1,
     {F16_AT(mlxr_block_q5_0, d), 0},
     0,
     MLXR_DTYPE_Q8_0},
    {MLXR_DTYPE_Q5_1,
     "Q5_1",
     32,
     sizeof(mlxr_block_q5_1),
     2,
     {F16_AT(mlxr_block_q5_1, d), F16_AT(mlxr_block_q5_1, m)},
     1,
     MLXR_DTYPE_Q8_1},
    {MLXR_DTYPE_Q2_K,
     "Q2_K",
     256,
     sizeof(mlxr_block_q2_k),
     2,
     {F16_AT(mlxr_block_q2_k, d), F16_AT(mlxr_block_q2_k, dmin)},
     1,
     MLXR_DTYPE_Q8_K},
    {MLXR_DTYPE_Q3_K,
     "Q3_K",
     256,
     sizeof(mlxr_block_q3_k),
     1,
     {F16_AT(mlxr_block_q3_k, d), 0},
     0,
     MLXR_DTYPE_Q8_K},
    {MLXR_DTYPE_Q4_K,
     "Q4_K",
     256,
     sizeof(mlxr_block_q4_k),
     2,
     {F16_AT(mlxr_block_q4_k, d), F16_AT(mlxr_block_q4_k, dmin)},
     1,
     MLXR_DTYPE_Q8_K},
    {MLXR_DTYPE_Q5_K,
     "Q5_K",
     256,
     sizeof(mlxr_block_q5_k),
     2,
     {F16_AT(mlxr_block_q5_k, d), F16_AT(mlxr_block_q5_k, dmin)},
     1,
     MLXR_DTYPE_Q8_K},
    {MLXR_DTYPE_Q6_K,
     "Q6_K",
     256,
     sizeof(mlxr_block_q6_k),
     1,
     {F16_AT(mlxr_block_q6_k, d), 0},
     0,
     MLXR_DTYPE_Q8_K},
    {MLXR_DTYPE_IQ4_NL,
     "IQ4_NL",
     32,
     sizeof(mlxr_block_iq4_nl),
     1,
     {F16_AT(mlxr_block_iq4_nl, d), 0},
     0,
     MLXR_DTYPE_Q8_0},
    {MLXR_DTYPE_IQ4_XS,
     "IQ4_XS",
     256,
     sizeof(mlxr_block_iq4_xs),
     1,
     {F16_AT(mlxr_block_iq4_xs, d), 0},
     0,
     MLXR_DTYPE_Q8_K},
};
#define N_QTYPES (int)(sizeof QTYPES / sizeof QTYPES[0])

/* block counts: one, several, odd, and the 4-/2-block unroll edges */
static const int64_t NBLOCKS[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 33};

static uint64_t rng;

/* ---- buffers and random data ------------------------------------------------------------------
 */

typedef struct buf {
    char *base;
    void *p;
} buf;

/* `bytes` that end exactly at the end of the allocation and start `off` bytes into it. */
static void *buf_alloc(buf *b, size_t bytes, size_t off) {
    b->base = malloc(bytes + off + 1);
    if (!b->base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    b->p = b->base + off;
    return b->p;
}

static void buf_free(buf *b) {
    free(b->base);
}

static size_t act_block_bytes(mlxr_dtype t) {
    switch (t) {
    case MLXR_DTYPE_Q8_0:
        return sizeof(mlxr_block_q8_0);
    case MLXR_DTYPE_Q8_1:
        return sizeof(mlxr_block_q8_1);
    default:
        return sizeof(mlxr_block_q8_k);
    }
}

static int act_block_n(mlxr_dtype t) {
    return t == MLXR_DTYPE_Q8_K ? 256 : 32;
}

static size_t act_row_bytes(mlxr_dtype t, int64_t n) {
    return (size_t)(n / act_block_n(t)) * act_block_bytes(t);
}

/* f16 scale with magnitude in [2^-12, 2^-4), random sign unless `positive`. */
static uint16_t random_scale(int positive) {
    const float m = ldexpf(test_rng_f32(&rng, 1.0f, 2.0f), (int)(test_rng_u64(&rng) % 8) - 12);
    return mlxr_fp32_to_fp16(!positive && (test_rng_u64(&rng) & 1) ? -m : m);
}

/* A weight row: random bytes, then sane f16 scales (K-quant mins positive, as quantizers write). */
static void fill_weights(const qtype *q, void *row, int64_t n) {
    unsigned char *p = row;
    const int64_t nb = n / q->block_n;
    for (size_t i = 0; i < (size_t)nb * q->block_bytes; i++)
        p[i] = (unsigned char)test_rng_u64(&rng);
    for (int64_t b = 0; b < nb; b++) {
        for (int f = 0; f < q->n_f16; f++) {
            const uint16_t h = random_scale(f == 1 && q->block_n == 256);
            memcpy(p + (size_t)b * q->block_bytes + q->f16_at[f], &h, 2);
        }
    }
}

/* Random activations: mode 0 uniform [-1, 1); mode 1 each 32 scaled by 10^U(-3, 3); mode 2 with
 * zero runs (whole zero blocks) and outliers. */
static void fill_floats(float *x, int64_t n, int mode) {
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = test_rng_f32(&rng, -1.0f, 1.0f);
        if (mode == 1) {
            if (i % 32 == 0) scale = powf(10.0f, test_rng_f32(&rng, -3.0f, 3.0f));
            v *= scale;
        } else if (mode == 2) {
            if ((i / 256) % 3 == 1) v = 0.0f;
            if (test_rng_u64(&rng) % 64 == 0) v *= 50.0f;
        }
        x[i] = v;
    }
}

/* ---- bounds --------------------------------------------------------------------------------- */

/* The weight row decoded with every quant bit zeroed: its offset/min part (see the header). */
static void decode_zeroed(const mlxr_kernels *ref, const qtype *q, const void *row, int64_t n,
                          float *out) {
    const int64_t nb = n / q->block_n;
    unsigned char *z = calloc((size_t)nb, q->block_bytes);
    if (!z) exit(2);
    for (int64_t b = 0; b < nb; b++) {
        for (int f = 0; f < q->n_f16; f++) {
            const size_t at = (size_t)b * q->block_bytes + q->f16_at[f];
            memcpy(z + at, (const unsigned char *)row + at, 2);
        }
        if (q->t == MLXR_DTYPE_Q2_K || q->t == MLXR_DTYPE_Q4_K || q->t == MLXR_DTYPE_Q5_K ||
            q->t == MLXR_DTYPE_Q3_K || q->t == MLXR_DTYPE_Q6_K || q->t == MLXR_DTYPE_IQ4_XS) {
            /* keep the sub-block scales: they are not quants */
            size_t at = 0, len = 0;
            switch (q->t) {
            case MLXR_DTYPE_Q2_K:
                at = offsetof(mlxr_block_q2_k, scales), len = 16;
                break;
            case MLXR_DTYPE_Q3_K:
                at = offsetof(mlxr_block_q3_k, scales), len = 12;
                break;
            case MLXR_DTYPE_Q4_K:
                at = offsetof(mlxr_block_q4_k, scales), len = 12;
                break;
            case MLXR_DTYPE_Q5_K:
                at = offsetof(mlxr_block_q5_k, scales), len = 12;
                break;
            case MLXR_DTYPE_Q6_K:
                at = offsetof(mlxr_block_q6_k, scales), len = 16;
                break;
            default:
                at = offsetof(mlxr_block_iq4_xs, scales_h), len = 6;
                break;
            }
            memcpy(z + (size_t)b * q->block_bytes + at,
                   (const unsigned char *)row + (size_t)b * q->block_bytes + at, len);
        }
    }
    ref->type[q->t].to_float(z, out, n);
    free(z);
}

typedef struct dot_case {
    double exact; /* dot of the decoded rows, in double */
    double mag;   /* M of the header */
    double s_err; /* the Q8_1 allowance: sum |m| * |s - d * sum(q)| (s is rounded on its own) */
} dot_case;

static dot_case dot_math(const mlxr_kernels *ref, const qtype *q, const void *w, const void *a,
                         int64_t n) {
    float *xf = malloc(sizeof(float) * (size_t)n), *zf = malloc(sizeof(float) * (size_t)n);
    float *yf = malloc(sizeof(float) * (size_t)n);
    if (!xf || !zf || !yf) exit(2);
    ref->type[q->t].to_float(w, xf, n);
    decode_zeroed(ref, q, w, n, zf);
    ref->type[q->dot_type].to_float(a, yf, n);
    dot_case c = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        c.exact += (double)xf[i] * (double)yf[i];
        c.mag += fabs((double)xf[i] * (double)yf[i]) + fabs((double)zf[i] * (double)yf[i]);
    }
    if (q->dot_type == MLXR_DTYPE_Q8_1) {
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t m;
            memcpy(&m, (const unsigned char *)w + (size_t)b * q->block_bytes + q->f16_at[1], 2);
            const mlxr_block_q8_1 *yb = (const mlxr_block_q8_1 *)a + b;
            int sum = 0;
            for (int j = 0; j < 32; j++)
                sum += yb->qs[j];
            const double dsum = (double)mlxr_fp16_to_fp32(yb->d) * sum;
            c.s_err += fabs((double)mlxr_fp16_to_fp32(m)) * fabs(mlxr_fp16_to_fp32(yb->s) - dsum);
        }
    }
    free(xf);
    free(zf);
    free(yf);
    return c;
}

/* ---- 1 + 3: dot products ------------------------------------------------------------------- */

static void check_dots(const mlxr_kernels *ref, const qtype *q, int64_t nblocks, int mode) {
    const int64_t n = nblocks * q->block_n;
    const size_t wb = (size_t)nblocks * q->block_bytes, ab = act_row_bytes(q->dot_type, n);
    buf bw, ba, bx;
    void *w = buf_alloc(&bw, wb, 2 * (size_t)(test_rng_u64(&rng) % 4)); /* f16 aligned */
    void *a = buf_alloc(&ba, ab, 4 * (size_t)(test_rng_u64(&rng) % 4)); /* f32 aligned */
    float *x = buf_alloc(&bx, sizeof(float) * (size_t)n, 0);
    fill_weights(q, w, n);
    fill_floats(x, n, mode);
    ref->type[q->dot_type].from_float(x, a, n);

    float want = NAN;
    ref->type[q->t].vec_dot(n, &want, w, a);
    const dot_case c = dot_math(ref, q, w, a, n);
    const double tol = (double)(nblocks + 8) * FLT_EPSILON * c.mag + c.s_err;
    CHECK(fabs((double)want - c.exact) <= tol,
          "%s ref dot n=%" PRId64 " mode %d: %.9g, decoded rows give %.9g (tol %.3g)", q->name, n,
          mode, (double)want, c.exact, tol);

    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        float got = NAN;
        k.type[q->t].vec_dot(n, &got, w, a);
        const double ftol = (double)(nblocks + 16) * FLT_EPSILON * c.mag;
        CHECK(fabs((double)got - (double)want) <= ftol,
              "%s %s dot n=%" PRId64 " mode %d: %.9g vs ref %.9g (tol %.3g)", mlxr_isa_name(k.isa),
              q->name, n, mode, (double)got, (double)want, ftol);
    }
    buf_free(&bw);
    buf_free(&ba);
    buf_free(&bx);
}

/* ---- 3: tiled products --------------------------------------------------------------------- */

static void check_gemm(const mlxr_kernels *k, const mlxr_kernels *ref, const qtype *q, int64_t nr,
                       int64_t nc, int64_t nblocks) {
    const int64_t n = nblocks * q->block_n;
    const size_t ws = (size_t)nblocks * q->block_bytes + 6;
    const size_t xs = act_row_bytes(q->dot_type, n) + 12, ldy = (size_t)nr + 3; /* f32 aligned */
    uint8_t *w = malloc(ws * (size_t)nr), *x = malloc(xs * (size_t)nc);
    float *y = malloc(sizeof(float) * ldy * (size_t)nc), *xf = malloc(sizeof(float) * (size_t)n);
    if (!w || !x || !y || !xf) exit(2);
    for (int64_t i = 0; i < nr; i++)
        fill_weights(q, w + (size_t)i * ws, n);
    for (int64_t j = 0; j < nc; j++) {
        fill_floats(xf, n, (int)(j % 3));
        ref->type[q->dot_type].from_float(xf, x + (size_t)j * xs, n);
    }
    for (size_t i = 0; i < ldy * (size_t)nc; i++)
        y[i] = -12345.0f;
    k->type[q->t].gemm(n, nr, nc, w, ws, x, xs, y, ldy);
    int bad = 0;
    for (int64_t j = 0; j < nc; j++) {
        for (int64_t i = 0; i < (int64_t)ldy; i++) {
            const float got = y[(size_t)j * ldy + (size_t)i];
            if (i >= nr) {
                bad += got != -12345.0f;
                continue;
            }
            float want;
            ref->type[q->t].vec_dot(n, &want, w + (size_t)i * ws, x + (size_t)j * xs);
            const dot_case c = dot_math(ref, q, w + (size_t)i * ws, x + (size_t)j * xs, n);
            const double tol = (double)(nblocks + 16) * FLT_EPSILON * c.mag;
            if (!(fabs((double)got - (double)want) <= tol) && bad++ < 3)
                fprintf(stderr, "%s gemm %s %lldx%lld n=%lld at (%lld,%lld): %.9g vs %.9g\n",
                        mlxr_isa_name(k->isa), q->name, (long long)nr, (long long)nc, (long long)n,
                        (long long)i, (long long)j, (double)got, (double)want);
        }
    }
    CHECK(bad == 0, "%s gemm %s %" PRId64 "x%" PRId64 " n=%" PRId64 ": %d mismatches",
          mlxr_isa_name(k->isa), q->name, nr, nc, n, bad);
    free(w);
    free(x);
    free(y);
    free(xf);
}

static void check_gemms(const mlxr_kernels *ref) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {4, 2, 2}, {4, 3, 3},   {5, 3, 1},
                                        {8, 6, 4}, {3, 1, 2}, {17, 11, 3}, {9, 4, 5}};
    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        for (int t = 0; t < N_QTYPES; t++) {
            if (!k.type[QTYPES[t].t].gemm) continue;
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                check_gemm(&k, ref, &QTYPES[t], shapes[s][0], shapes[s][1], shapes[s][2]);
        }
    }
}

/* ---- 2: activation quantizers -------------------------------------------------------------- */

static void check_act_quant(const mlxr_kernels *ref, mlxr_dtype t, const char *name, int64_t n,
                            int mode) {
    const size_t ab = act_row_bytes(t, n);
    buf bx, ba, bb;
    float *x = buf_alloc(&bx, sizeof(float) * (size_t)n, 4 * (size_t)(test_rng_u64(&rng) % 3));
    unsigned char *a = buf_alloc(&ba, ab, 0), *b = buf_alloc(&bb, ab, 0);
    fill_floats(x, n, mode);
    if (n >= 512 && mode == 0) { /* edges: a block whose extreme is negative, one all equal */
        x[3] = -7.0f;
        for (int j = 256; j < 512; j++)
            x[j] = 0.25f;
    }
    ref->type[t].from_float(x, a, n);

    /* every value within half a step (plus the f16 rounding of Q8_0/Q8_1 scales) */
    float *y = malloc(sizeof(float) * (size_t)n);
    if (!y) exit(2);
    ref->type[t].to_float(a, y, n);
    const int bn = act_block_n(t);
    int bad = 0;
    for (int64_t blk = 0; blk < n / bn; blk++) {
        float amax = 0.0f;
        for (int j = 0; j < bn; j++)
            amax = fmaxf(amax, fabsf(x[blk * bn + j]));
        /* half a step, plus 127 times the error of the stored scale (f16 for Q8_0/Q8_1, where
         * it can be subnormal) */
        const double step = amax / 127.0;
        double dq;
        if (t == MLXR_DTYPE_Q8_K) {
            dq = fabs((double)((const mlxr_block_q8_k *)a + blk)->d);
        } else {
            uint16_t h;
            memcpy(&h, a + (size_t)blk * act_block_bytes(t), 2);
            dq = fabs((double)mlxr_fp16_to_fp32(h));
        }
        for (int j = 0; j < bn; j++) {
            const double err = fabs((double)y[blk * bn + j] - (double)x[blk * bn + j]);
            /* + the float roundings of scale * x (a value on a rounding tie may go either way)
             * and of the decoding d * q: an ulp or so of the value each */
            const double tol = 0.5 * step * (1 + 1e-6) + 127.0 * fabs(dq - step) +
                               2 * FLT_EPSILON * fabs((double)x[blk * bn + j]) + 1e-37;
            if (err > tol && bad++ < 3)
                fprintf(stderr, "%s quant [%lld]: %.9g -> %.9g\n", name, (long long)(blk * bn + j),
                        (double)x[blk * bn + j], (double)y[blk * bn + j]);
        }
        if (t == MLXR_DTYPE_Q8_K) {
            const mlxr_block_q8_k *qb = (const mlxr_block_q8_k *)a + blk;
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int j = 0; j < 16; j++)
                    s += qb->qs[g * 16 + j];
                bad += s != qb->bsums[g];
            }
            for (int j = 0; j < 256; j++)
                bad += qb->qs[j] == -128;
        } else if (t == MLXR_DTYPE_Q8_1) {
            const mlxr_block_q8_1 *qb = (const mlxr_block_q8_1 *)a + blk;
            int s = 0;
            for (int j = 0; j < 32; j++)
                s += qb->qs[j];
            const double want = (double)s * (amax / 127.0f);
            bad += fabs(mlxr_fp16_to_fp32(qb->s) - want) > fabs(want) * 1e-3 + 6e-8;
        }
    }
    CHECK(bad == 0, "%s quantization n=%" PRId64 " mode %d: %d bad values", name, n, mode, bad);
    free(y);

    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        memset(b, 0xA5, ab);
        k.type[t].from_float(x, b, n);
        CHECK(memcmp(a, b, ab) == 0, "%s %s from_float n=%" PRId64 " mode %d differs from ref",
              mlxr_isa_name(k.isa), name, n, mode);
    }
    buf_free(&bx);
    buf_free(&ba);
    buf_free(&bb);
}

/* A fixed Q8_K case, worked by hand: max -2 at index 5 gives iscale 63.5, d = 1/63.5. */
static void check_q8_k_expected(const mlxr_kernels *ref) {
    float x[256] = {0};
    x[0] = 1.0f;      /* 1 * 63.5 = 63.5 -> 64 (ties to even) */
    x[1] = 0.5f;      /* 31.75 -> 32 */
    x[5] = -2.0f;     /* -127 */
    x[17] = 0.01f;    /* 0.635 -> 1 */
    x[255] = -0.015f; /* -0.9525 -> -1 */
    mlxr_block_q8_k b;
    ref->type[MLXR_DTYPE_Q8_K].from_float(x, &b, 256);
    CHECK(b.d == 1.0f / (-127.0f / -2.0f), "Q8_K d = %g", (double)b.d);
    CHECK(b.qs[0] == 64 && b.qs[1] == 32 && b.qs[5] == -127 && b.qs[17] == 1 && b.qs[255] == -1,
          "Q8_K quants %d %d %d %d %d", b.qs[0], b.qs[1], b.qs[5], b.qs[17], b.qs[255]);
    CHECK(b.bsums[0] == 64 + 32 - 127 && b.bsums[1] == 1 && b.bsums[15] == -1, "Q8_K bsums");
    float z[256] = {0};
    memset(&b, 0x5A, sizeof b);
    ref->type[MLXR_DTYPE_Q8_K].from_float(z, &b, 256);
    int nz = b.d != 0.0f;
    for (int j = 0; j < 256; j++)
        nz += b.qs[j] != 0;
    for (int g = 0; g < 16; g++)
        nz += b.bsums[g] != 0;
    CHECK(nz == 0, "Q8_K of zeros is all zero");
}

static void check_dispatch(void) {
    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        for (int t = 0; t < N_QTYPES; t++) {
            const mlxr_type_kernels *tk = &k.type[QTYPES[t].t];
            CHECK(tk->vec_dot && tk->to_float && tk->vec_dot_type == QTYPES[t].dot_type,
                  "%s %s: vec_dot, to_float, vec_dot_type", mlxr_isa_name(k.isa), QTYPES[t].name);
        }
        const mlxr_dtype acts[] = {MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q8_1, MLXR_DTYPE_Q8_K};
        for (int i = 0; i < 3; i++)
            CHECK(k.type[acts[i]].from_float && k.type[acts[i]].to_float, "activation type %d", i);
    }
#if defined(__x86_64__) || defined(__i386__)
    if (mlxr_cpu_isa() >= MLXR_ISA_AVX512_VNNI) { /* so that check_dots tests them */
        mlxr_kernels k;
        mlxr_kernels_init(&k, MLXR_ISA_AVX512_VNNI);
        CHECK(k.type[MLXR_DTYPE_Q4_K].vec_dot == mlxr_vec_dot_q4_k_avx512vnni &&
                  k.type[MLXR_DTYPE_Q5_K].vec_dot == mlxr_vec_dot_q5_k_avx512vnni &&
                  k.type[MLXR_DTYPE_Q6_K].vec_dot == mlxr_vec_dot_q6_k_avx512vnni,
              "the avx512-vnni table holds the VNNI K-quant dot products");
    }
#endif
}

int main(void) {
    rng = test_seed();
    check_dispatch();
    mlxr_kernels ref;
    mlxr_kernels_init(&ref, MLXR_ISA_SCALAR);
    check_q8_k_expected(&ref);
    for (int mode = 0; mode < 3; mode++) {
        for (int64_t n = 256; n <= 256 * 9; n += 512) {
            check_act_quant(&ref, MLXR_DTYPE_Q8_K, "Q8_K", n, mode);
            check_act_quant(&ref, MLXR_DTYPE_Q8_1, "Q8_1", n, mode);
        }
        check_act_quant(&ref, MLXR_DTYPE_Q8_1, "Q8_1", 32, mode);
        check_act_quant(&ref, MLXR_DTYPE_Q8_1, "Q8_1", 96, mode);
    }
    for (int t = 0; t < N_QTYPES; t++)
        for (size_t s = 0; s < sizeof NBLOCKS / sizeof *NBLOCKS; s++)
            for (int mode = 0; mode < 3; mode++)
                check_dots(&ref, &QTYPES[t], NBLOCKS[s], mode);
    check_gemms(&ref);
    for (int isa = (int)mlxr_cpu_isa() + 1; isa <= MLXR_ISA_MAX; isa++)
        printf("SKIPPED %s: this CPU lacks it\n", mlxr_isa_name((mlxr_isa)isa));
    return test_finish("kernels_quants");
}
