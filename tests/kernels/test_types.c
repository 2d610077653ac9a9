/*
 * test_types.c - the type kernels (kernels.h: F32, F16, BF16, Q8_0, Q4_0) at every ISA level
 * this CPU has, against the scalar references, and the references against float math.
 *
 * Fast vs reference, for each level from SCALAR to mlxr_cpu_isa() (one dispatch table each; the
 * levels above what this CPU has, e.g. the AVX512_VNNI / AVX512_BF16 ones on an AVX2 machine, are
 * printed as SKIPPED):
 *   - from_float (conversion, quantization) and to_float: bit for bit, on random rows of several
 *     magnitude profiles and on edge values (zeros, ties, f16 subnormals and overflow, inf/NaN,
 *     huge and tiny quantization blocks);
 *   - vec_dot: |fast - ref| <= (n/32 + 16) * FLT_EPSILON * sum_i |x_i * y_i|, with x_i, y_i the
 *     decoded row values. That is a worst-case bound for float summation reordered over at least
 *     32 lanes (or 1 block per step for Q8_0/Q4_0) with an FMA or a float add per step, so it
 *     admits reordering only: a lost or doubled element or block breaks it by orders of magnitude.
 * Reference vs float math: Q8_0 and Q4_0 round trips stay within half a step (one step for Q4_0,
 * whose clamp at +7 costs a full step) plus the f16 rounding of the scale; the quantized dot
 * products equal the double-precision dot of the dequantized rows up to float summation.
 * Inputs are fresh random numbers from test_seed() (MLXR_SEED reproduces a run). Rows end exactly
 * at the end of their allocation and start misaligned, so ASan sees any overread of a tail.
 */
#include <float.h>
#include <math.h>

#include "kernels/kernels.h"
#include "test.h"
#include "util/fp16.h"

typedef struct type_info {
    mlxr_dtype t;
    const char *name;
    int block_n;        /* elements per block (1 for float types) */
    size_t block_bytes; /* bytes per block */
} type_info;

static const type_info TYPES[] = {
    {MLXR_DTYPE_F32, "F32", 1, 4},
    {MLXR_DTYPE_F16, "F16", 1, 2},
    {MLXR_DTYPE_BF16, "BF16", 1, 2},
    {MLXR_DTYPE_Q8_0, "Q8_0", MLXR_QK8_0, sizeof(mlxr_block_q8_0)},
    {MLXR_DTYPE_Q4_0, "Q4_0", MLXR_QK4_0, sizeof(mlxr_block_q4_0)},
};
#define N_TYPES (int)(sizeof(TYPES) / sizeof(TYPES[0]))

static const int64_t SIZES_FLOAT[] = {0, 1, 7, 16, 31, 32, 33, 64, 100, 256, 1000, 4096, 4097};
static const int64_t SIZES_QUANT[] = {32, 64, 96, 128, 160, 224, 256, 4096, 11008};

static uint64_t rng;

static const type_info *type_of(mlxr_dtype t) {
    for (int i = 0; i < N_TYPES; i++) {
        if (TYPES[i].t == t) return &TYPES[i];
    }
    return NULL;
}

static size_t row_bytes(const type_info *ti, int64_t n) {
    return (size_t)(n / ti->block_n) * ti->block_bytes;
}

/* A buffer of `bytes` that starts `off` bytes into its allocation and ends exactly at its end. */
typedef struct buf {
    char *base;
    void *p;
} buf;

static void *buf_alloc(buf *b, size_t bytes, size_t off) {
    b->base = malloc(bytes + off);
    if (!b->base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    b->p = b->base + off;
    return b->p;
}

static void buf_free(buf *b) {
    free(b->base);
    b->base = NULL;
    b->p = NULL;
}

/*
 * Random row of n floats. mode 0: uniform in [-1, 1); mode 1: each group of 32 scaled by
 * 10^U(-4, 4); mode 2: heavy-tailed (cubes, some x100 outliers) with exact zeros sprinkled in.
 */
static void fill_floats(float *x, int64_t n, int mode) {
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = test_rng_f32(&rng, -1.0f, 1.0f);
        if (mode == 1) {
            if (i % 32 == 0) scale = powf(10.0f, test_rng_f32(&rng, -4.0f, 4.0f));
            v *= scale;
        } else if (mode == 2) {
            v = v * v * v * 10.0f;
            uint64_t r = test_rng_u64(&rng) % 16;
            if (r == 0) v = 0.0f;
            if (r == 1) v *= 100.0f;
        }
        x[i] = v;
    }
}

/* A random finite f16 scale with magnitude in [2^-14, 2^2) (normal range), random sign. */
static uint16_t random_scale(void) {
    const float m = ldexpf(test_rng_f32(&rng, 1.0f, 2.0f), (int)(test_rng_u64(&rng) % 16) - 14);
    return mlxr_fp32_to_fp16(test_rng_u64(&rng) & 1 ? -m : m);
}

/* Random encoded bytes of a row of type ti: any bits for F16/BF16 (NaNs included), any quant
 * bytes with finite scales for Q8_0/Q4_0. */
static void fill_random_bytes(const type_info *ti, void *row, int64_t n) {
    unsigned char *p = row;
    const size_t nbytes = row_bytes(ti, n);
    for (size_t i = 0; i < nbytes; i++)
        p[i] = (unsigned char)test_rng_u64(&rng);
    if (ti->t == MLXR_DTYPE_F32) { /* keep floats finite so dots are meaningful */
        fill_floats(row, n, 0);
    } else if (ti->block_n > 1) {
        for (int64_t b = 0; b < n / ti->block_n; b++) {
            const uint16_t d = random_scale();
            memcpy(p + (size_t)b * ti->block_bytes, &d, 2);
        }
    }
}

/* ---- comparisons ---------------------------------------------------------------------------- */

/* Compare two encoded rows byte for byte; on mismatch print the first few with their element or
 * block index. `src` (may be NULL) is the float row they were encoded from. */
static void check_encoded(const char *label, const type_info *ti, const void *fast, const void *ref,
                          int64_t n, const float *src) {
    const size_t nbytes = row_bytes(ti, n);
    const unsigned char *a = fast, *b = ref;
    int bad = 0;
    for (size_t i = 0; i < nbytes; i++) {
        if (a[i] == b[i]) continue;
        if (++bad > 5) continue;
        const size_t blk = i / ti->block_bytes, byte = i % ti->block_bytes;
        if (ti->block_n == 1) {
            fprintf(stderr, "  %s %s n=%" PRId64 ": element %zu byte %zu: fast %02x ref %02x",
                    label, ti->name, n, blk, byte, a[i], b[i]);
            if (src) fprintf(stderr, " (x = %.9g)", (double)src[blk]);
        } else {
            fprintf(stderr, "  %s %s n=%" PRId64 ": block %zu byte %zu: fast %02x ref %02x", label,
                    ti->name, n, blk, byte, a[i], b[i]);
            if (src && byte >= 2 && ti->t == MLXR_DTYPE_Q8_0) {
                fprintf(stderr, " (x = %.9g)", (double)src[blk * 32 + byte - 2]);
            }
        }
        fputc('\n', stderr);
    }
    CHECK(bad == 0, "%s %s n=%" PRId64 ": %d bytes differ from the reference", label, ti->name, n,
          bad);
}

/* Compare two float rows bit for bit. `in` (may be NULL) is the encoded input. */
static void check_floats_exact(const char *label, const type_info *ti, const float *fast,
                               const float *ref, int64_t n, const void *in) {
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mlxr_f32_bits(fast[i]) == mlxr_f32_bits(ref[i])) continue;
        if (++bad > 5) continue;
        fprintf(stderr, "  %s %s n=%" PRId64 ": [%" PRId64 "] fast %.9g (%08x) ref %.9g (%08x)",
                label, ti->name, n, i, (double)fast[i], mlxr_f32_bits(fast[i]), (double)ref[i],
                mlxr_f32_bits(ref[i]));
        if (in && ti->block_bytes == 2) fprintf(stderr, " in %04x", ((const uint16_t *)in)[i]);
        fputc('\n', stderr);
    }
    CHECK(bad == 0, "%s %s n=%" PRId64 ": %d values differ from the reference", label, ti->name, n,
          bad);
}

/* sum_i |x_i * y_i| over the decoded rows, in double. */
static double abs_dot(const mlxr_kernels *ref, const type_info *tx, const void *x, const void *y,
                      int64_t n) {
    const mlxr_dtype ty = ref->type[tx->t].vec_dot_type;
    float *xf = malloc((size_t)(n ? n : 1) * sizeof(float));
    float *yf = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!xf || !yf) exit(2);
    ref->type[tx->t].to_float(x, xf, n);
    ref->type[ty].to_float(y, yf, n);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)xf[i] * (double)yf[i]);
    free(xf);
    free(yf);
    return s;
}

static void check_dot(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref,
                      const type_info *ti, const void *x, const void *y, int64_t n) {
    float fast = NAN, want = NAN;
    k->type[ti->t].vec_dot(n, &fast, x, y);
    ref->type[ti->t].vec_dot(n, &want, x, y);
    const double mag = abs_dot(ref, ti, x, y, n);
    const double tol = (double)(n / 32 + 16) * FLT_EPSILON * mag;
    const double err = fabs((double)fast - (double)want);
    CHECK(err <= tol, "%s vec_dot %s n=%" PRId64 ": fast %.9g ref %.9g |diff| %.3g > tol %.3g",
          label, ti->name, n, (double)fast, (double)want, err, tol);
}

/* ---- fast vs reference on random rows ------------------------------------------------------- */

static void check_type_random(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref,
                              const type_info *ti, int64_t n) {
    const mlxr_type_kernels *tk = &k->type[ti->t], *tr = &ref->type[ti->t];
    const type_info *tyi = type_of(tr->vec_dot_type);
    const size_t xb = row_bytes(ti, n), yb = row_bytes(tyi, n);
    const size_t off = ti->block_n == 1 ? ti->block_bytes : 2;
    buf bsrc, bsrc2, bfast, bref, by, bff, bfr;
    float *src = buf_alloc(&bsrc, (size_t)n * sizeof(float), 4);
    float *src2 = buf_alloc(&bsrc2, (size_t)n * sizeof(float), 4);
    void *efast = buf_alloc(&bfast, xb, off), *eref = buf_alloc(&bref, xb, off);
    void *ey = buf_alloc(&by, yb, tyi->block_n == 1 ? tyi->block_bytes : 2);
    float *ffast = buf_alloc(&bff, (size_t)n * sizeof(float), 4);
    float *fref = buf_alloc(&bfr, (size_t)n * sizeof(float), 4);

    for (int mode = 0; mode < 3; mode++) {
        fill_floats(src, n, mode);
        fill_floats(src2, n, (mode + 1) % 3);
        memset(efast, 0xAB, xb);
        tk->from_float(src, efast, n);
        tr->from_float(src, eref, n);
        check_encoded(label, ti, efast, eref, n, src);

        tk->to_float(eref, ffast, n);
        tr->to_float(eref, fref, n);
        check_floats_exact(label, ti, ffast, fref, n, eref);

        /* weight row from the reference encoder, activation row from the reference encoder of
         * the vec_dot_type (the fast one was shown to give the same bytes) */
        ref->type[tyi->t].from_float(src2, ey, n);
        check_dot(label, k, ref, ti, eref, ey, n);
    }
    /* arbitrary encoded bytes: NaN/inf halves, Q8_0 bytes of -128, every nibble */
    fill_random_bytes(ti, eref, n);
    tk->to_float(eref, ffast, n);
    tr->to_float(eref, fref, n);
    check_floats_exact(label, ti, ffast, fref, n, eref);
    if (ti->t != MLXR_DTYPE_F16 && ti->t != MLXR_DTYPE_BF16) { /* NaN-free for dots */
        fill_floats(src2, n, 1);
        ref->type[tyi->t].from_float(src2, ey, n);
        check_dot(label, k, ref, ti, eref, ey, n);
    }

    buf_free(&bsrc);
    buf_free(&bsrc2);
    buf_free(&bfast);
    buf_free(&bref);
    buf_free(&by);
    buf_free(&bff);
    buf_free(&bfr);
}

/* ---- fast vs reference on edge values ------------------------------------------------------- */

static float f32_from_bits(uint32_t u) {
    return mlxr_bits_f32(u);
}

/* Special floats for F16/BF16 encoding: zeros, ties, subnormals, overflow, inf, NaN. */
static int special_floats(float *x) {
    int n = 0;
    const uint32_t bits[] = {
        0x00000000, 0x80000000, 0x3f800000, 0x3f801000, /* 1 + 2^-11: f16 tie to even (down) */
        0x3f803000,                                     /* 1 + 3*2^-11: f16 tie to even (up) */
        0x3f808000, 0x3f818000,                         /* bf16 ties down / up */
        0x477fe000, 0x477fefff, 0x477ff000, 0x47800000, /* around the f16 max / overflow */
        0x7f7fffff, 0xff7fffff,                         /* +-FLT_MAX */
        0x7f800000, 0xff800000,                         /* +-inf */
        0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, /* quiet and signalling NaNs */
        0xff812345, 0x7fffffff,                         /* NaN payloads */
        0x33800000, 0x33000000, 0x33000001, 0x32ffffff, /* f16 subnormal min, ties near 2^-25 */
        0x33c00000, 0x34400000,                         /* 1.5 and 3 * 2^-24: ties */
        0x387fc000, 0x38800000, 0x387fe000,             /* f16 largest subnormal, min normal, tie */
        0x00000001, 0x80000001, 0x007fffff, 0x00800000, /* f32 subnormals, FLT_MIN */
        0xc2f70000, 0x3eaaaaab, 0x40490fdb,             /* -123.5, 1/3, pi */
    };
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
        x[n++] = f32_from_bits(bits[i]);
    return n;
}

static void check_f16_bf16_edges(const char *label, const mlxr_kernels *k,
                                 const mlxr_kernels *ref) {
    float x[64];
    const int n = special_floats(x);
    const mlxr_dtype ts[2] = {MLXR_DTYPE_F16, MLXR_DTYPE_BF16};
    for (int t = 0; t < 2; t++) {
        const type_info *ti = type_of(ts[t]);
        uint16_t a[64], b[64];
        k->type[ts[t]].from_float(x, a, n);
        ref->type[ts[t]].from_float(x, b, n);
        check_encoded(label, ti, a, b, n, x);
    }

    /* every f16 and bf16 bit pattern through to_float, in one row (tails included) */
    const int64_t nh = 65536 + 7;
    buf bh, bf1, bf2;
    uint16_t *h = buf_alloc(&bh, (size_t)nh * 2, 2);
    float *f1 = buf_alloc(&bf1, (size_t)nh * 4, 4), *f2 = buf_alloc(&bf2, (size_t)nh * 4, 4);
    for (int64_t i = 0; i < nh; i++)
        h[i] = (uint16_t)(i & 0xffff);
    for (int t = 0; t < 2; t++) {
        const type_info *ti = type_of(ts[t]);
        k->type[ts[t]].to_float(h, f1, nh);
        ref->type[ts[t]].to_float(h, f2, nh);
        check_floats_exact(label, ti, f1, f2, nh, h);
    }
    buf_free(&bh);

    /* random f32 bit patterns through from_float (every class: NaN, subnormal, ...) */
    const int64_t nr = 1 << 18;
    uint16_t *e1 = malloc((size_t)nr * 2), *e2 = malloc((size_t)nr * 2);
    float *r = malloc((size_t)nr * 4);
    if (!e1 || !e2 || !r) exit(2);
    for (int64_t i = 0; i < nr; i++)
        r[i] = f32_from_bits((uint32_t)test_rng_u64(&rng));
    /* half of them inside the f16 range (2^-27 .. 2^17), a quarter of those on exact f16 ties */
    for (int64_t i = 0; i < nr; i += 2) {
        const uint64_t u = test_rng_u64(&rng);
        uint32_t man = (uint32_t)(u >> 20) & 0x7fffff;
        if ((u & 3) == 0) man = (man & ~0x1fffu) | 0x1000u;
        const uint32_t e = 100 + (uint32_t)((u >> 8) % 45);
        r[i] = f32_from_bits((uint32_t)(u & 0x80000000u) | (e << 23) | man);
    }
    for (int t = 0; t < 2; t++) {
        const type_info *ti = type_of(ts[t]);
        k->type[ts[t]].from_float(r, e1, nr);
        ref->type[ts[t]].from_float(r, e2, nr);
        check_encoded(label, ti, e1, e2, nr, r);
    }
    free(e1);
    free(e2);
    free(r);
    buf_free(&bf1);
    buf_free(&bf2);
}

/*
 * Q8_0 blocks that probe the quantizer's corners. Returns the number of floats written (a
 * multiple of 32); the expected bytes of blocks 0..3 are checked by check_q8_0_expected.
 */
static int64_t q8_0_edge_row(float *x) {
    int64_t n = 0;
    float *b;
    /* 0: zeros; 1: negative zeros */
    for (int j = 0; j < 32; j++)
        x[n++] = 0.0f;
    for (int j = 0; j < 32; j++)
        x[n++] = -0.0f;
    /* 2: amax 127 so id = 1: every x is its own scaled value; k + 0.5 are exact ties */
    b = x + n;
    const float ties2[] = {127.0f, 0.5f,    -0.5f,   1.5f,  -1.5f, 2.5f,   -2.5f,       3.5f,
                           126.5f, -126.5f, -127.0f, 63.5f, 64.5f, -64.5f, 0.49999997f, 1.0f};
    for (int j = 0; j < 32; j++)
        b[j] = ties2[j % 16] * (j < 16 ? 1.0f : -1.0f);
    n += 32;
    /* 3: amax 63.5 so id = 2: scaled values x*2 */
    b = x + n;
    const float ties3[] = {63.5f, 1.25f, 0.75f, -0.25f, 0.25f, -1.75f, 31.75f, -31.25f};
    for (int j = 0; j < 32; j++)
        b[j] = ties3[j % 8];
    n += 32;
    /* 4: near FLT_MAX (scale overflows f16); 5: tiny normals (scale underflows f16) */
    for (int j = 0; j < 32; j++)
        x[n++] = test_rng_f32(&rng, -1.0f, 1.0f) * 3.0e38f;
    for (int j = 0; j < 32; j++)
        x[n++] = test_rng_f32(&rng, -1.0f, 1.0f) * 1.0e-30f;
    /* 6: f32 subnormals and 7: amax 1e-37 - 127/amax overflows to inf in both */
    for (int j = 0; j < 32; j++)
        x[n++] = test_rng_f32(&rng, -1.0f, 1.0f) * 1.0e-40f;
    for (int j = 0; j < 32; j++)
        x[n++] = (j == 5 ? 1.0e-37f : test_rng_f32(&rng, -1e-38f, 1e-38f));
    /* 8: a single nonzero value */
    for (int j = 0; j < 32; j++)
        x[n++] = j == 17 ? -3.25f : 0.0f;
    /* 9: scaled values landing near ties but not on them */
    b = x + n;
    for (int j = 0; j < 32; j++)
        b[j] = ((float)(j - 16) + 0.5f) * (1.0f + 1e-7f * (float)j);
    b[0] = 100.0f;
    n += 32;
    return n;
}

static void check_q8_0_expected(const mlxr_block_q8_0 *q) {
    int bad = 0;
    for (int blk = 0; blk < 2; blk++) {
        bad += q[blk].d != 0;
        for (int j = 0; j < 32; j++)
            bad += q[blk].qs[j] != 0;
    }
    CHECK(bad == 0, "Q8_0 zero blocks: d and all qs must be 0 (%d wrong)", bad);

    /* round half to even: 0.5->0 1.5->2 2.5->2 3.5->4 126.5->126 63.5->64 64.5->64 */
    const int8_t want2[] = {127, 0, 0, 2, -2, 2, -2, 4, 126, -126, -127, 64, 64, -64, 0, 1};
    const int8_t want3[] = {127, 2, 2, 0, 0, -4, 64, -62}; /* x*2: 2.5->2 1.5->2 -0.5->0 ... */
    bad = 0;
    for (int j = 0; j < 32; j++) {
        const int8_t w = (int8_t)(j < 16 ? want2[j % 16] : -want2[j % 16]);
        if (q[2].qs[j] != w) {
            bad++;
            fprintf(stderr, "  Q8_0 tie block: qs[%d] = %d, want %d\n", j, q[2].qs[j], w);
        }
        if (q[3].qs[j] != want3[j % 8]) {
            bad++;
            fprintf(stderr, "  Q8_0 id=2 block: qs[%d] = %d, want %d\n", j, q[3].qs[j],
                    want3[j % 8]);
        }
    }
    CHECK(bad == 0, "Q8_0 quantization must round half to even (%d wrong)", bad);
    CHECK(q[2].d == mlxr_fp32_to_fp16(1.0f), "Q8_0 d of amax 127 = %04x", q[2].d);
    CHECK(q[3].d == mlxr_fp32_to_fp16(0.5f), "Q8_0 d of amax 63.5 = %04x", q[3].d);
    CHECK(q[4].d == 0x7c00, "Q8_0 d of amax ~3e38 overflows f16: %04x", q[4].d);
    CHECK(q[5].d == 0 && q[6].d == 0 && q[7].d == 0, "Q8_0 tiny blocks have d = 0");
}

static void check_quant_edges(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref) {
    float x[320];
    const int64_t n = q8_0_edge_row(x);
    const mlxr_dtype ts[2] = {MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q4_0};
    for (int t = 0; t < 2; t++) {
        const type_info *ti = type_of(ts[t]);
        mlxr_block_q8_0 a[10], b[10]; /* Q8_0 blocks are the larger ones */
        k->type[ts[t]].from_float(x, a, n);
        ref->type[ts[t]].from_float(x, b, n);
        check_encoded(label, ti, a, b, n, x);
        if (ts[t] == MLXR_DTYPE_Q8_0) check_q8_0_expected(a);
    }
}

/* ---- references vs float math (scalar only) ------------------------------------------------- */

static void check_q4_0_expected(const mlxr_kernels *ref) {
    float x[64] = {0};
    x[3] = 4.0f; /* first of equal magnitudes: max = +4, d = -0.5 */
    x[10] = -4.0f;
    x[32 + 3] = -4.0f; /* here -4 comes first: d = +0.5 */
    x[32 + 20] = 4.0f;
    mlxr_block_q4_0 q[2];
    ref->type[MLXR_DTYPE_Q4_0].from_float(x, q, 64);
    CHECK(q[0].d == mlxr_fp32_to_fp16(-0.5f), "Q4_0 d = %04x, want -0.5", q[0].d);
    CHECK(q[1].d == mlxr_fp32_to_fp16(0.5f), "Q4_0 d = %04x, want 0.5", q[1].d);
    /* x*id + 8.5: +4 -> 0.5 -> 0; -4 -> 16.5 -> 16 -> clamped to 15; 0 -> 8 */
    CHECK((q[0].qs[3] & 0xF) == 0 && (q[0].qs[10] & 0xF) == 15 && q[0].qs[0] == 0x88,
          "Q4_0 block 0 nibbles %02x %02x %02x", q[0].qs[3], q[0].qs[10], q[0].qs[0]);
    CHECK((q[1].qs[3] & 0xF) == 0 && (q[1].qs[4] >> 4) == 15 && q[1].qs[5] == 0x88,
          "Q4_0 block 1 nibbles %02x %02x %02x", q[1].qs[3], q[1].qs[4], q[1].qs[5]);
    float z[32] = {0};
    ref->type[MLXR_DTYPE_Q4_0].from_float(z, q, 32);
    int ok = q[0].d == 0x8000; /* d = +0 / -8 = -0, as in llama.cpp */
    for (int j = 0; j < 16; j++)
        ok &= q[0].qs[j] == 0x88;
    CHECK(ok, "Q4_0 zero block: d = -0 (%04x) and every nibble 8", q[0].d);
}

static void check_fp16_expected(void) {
    const struct {
        uint32_t in;
        uint16_t f16, bf16;
    } cases[] = {
        {0x3f801000, 0x3c00, 0x3f80}, {0x3f803000, 0x3c02, 0x3f80}, {0x3f808000, 0x3c04, 0x3f80},
        {0x3f818000, 0x3c0c, 0x3f82}, {0x477fefff, 0x7bff, 0x4780}, {0x477ff000, 0x7c00, 0x4780},
        {0x33000000, 0x0000, 0x3300}, {0x33c00000, 0x0002, 0x33c0}, {0x7f800001, 0x7e00, 0x7fc0},
        {0xff800000, 0xfc00, 0xff80}, {0x7f7fffff, 0x7c00, 0x7f80}, {0x80000001, 0x8000, 0x8000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const float f = f32_from_bits(cases[i].in);
        uint16_t h, b;
        mlxr_from_float_f16_ref(&f, &h, 1);
        mlxr_from_float_bf16_ref(&f, &b, 1);
        CHECK(h == cases[i].f16, "f16(%08x) = %04x, want %04x", cases[i].in, h, cases[i].f16);
        CHECK(b == cases[i].bf16, "bf16(%08x) = %04x, want %04x", cases[i].in, b, cases[i].bf16);
    }
    /* every non-NaN half survives f16 -> f32 -> f16; NaNs come back quiet with their sign */
    int bad = 0;
    for (uint32_t u = 0; u < 65536; u++) {
        const uint16_t h = (uint16_t)u;
        float f;
        uint16_t back;
        mlxr_to_float_f16_ref(&h, &f, 1);
        mlxr_from_float_f16_ref(&f, &back, 1);
        const int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (back != (nan ? (uint16_t)(h | 0x200) : h)) bad++;
    }
    CHECK(bad == 0, "f16 round trip: %d halves changed", bad);
}

/* Per element |x - deq(q(x))| within the format's step (see the file comment). */
static void check_roundtrip(const mlxr_kernels *ref, mlxr_dtype t, const float *x, int64_t n) {
    const type_info *ti = type_of(t);
    void *q = malloc(row_bytes(ti, n));
    float *y = malloc((size_t)n * sizeof(float));
    if (!q || !y) exit(2);
    ref->type[t].from_float(x, q, n);
    ref->type[t].to_float(q, y, n);
    int bad = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        uint16_t dh16;
        memcpy(&dh16, (const char *)q + (size_t)b * ti->block_bytes, 2);
        const double dh = mlxr_fp16_to_fp32(dh16);
        double tol;
        if (t == MLXR_DTYPE_Q8_0) {
            const double d = (double)amax / 127.0;
            tol = 0.5 * d + 127.0 * fabs(d - dh) + 4.0 * FLT_EPSILON * amax;
        } else {
            const double d = (double)max / -8.0;
            tol = fabs(d) + 8.0 * fabs(d - dh) + 4.0 * FLT_EPSILON * amax;
        }
        for (int j = 0; j < 32; j++) {
            const double err = fabs((double)xb[j] - (double)y[b * 32 + j]);
            if (err <= tol) continue;
            if (++bad <= 5) {
                fprintf(stderr, "  %s round trip [%" PRId64 "]: x %.9g deq %.9g err %.3g > %.3g\n",
                        ti->name, b * 32 + j, (double)xb[j], (double)y[b * 32 + j], err, tol);
            }
        }
    }
    CHECK(bad == 0, "%s round trip n=%" PRId64 ": %d elements off by more than the step", ti->name,
          n, bad);
    free(q);
    free(y);
}

/* The quantized reference dots equal the exact dot of the dequantized rows up to float sums. */
static void check_dot_vs_dequant(const mlxr_kernels *ref, mlxr_dtype t, const float *x,
                                 const float *y, int64_t n) {
    const type_info *ti = type_of(t), *tq = type_of(MLXR_DTYPE_Q8_0);
    void *qx = malloc(row_bytes(ti, n)), *qy = malloc(row_bytes(tq, n));
    float *dx = malloc((size_t)n * 4), *dy = malloc((size_t)n * 4);
    if (!qx || !qy || !dx || !dy) exit(2);
    ref->type[t].from_float(x, qx, n);
    ref->type[MLXR_DTYPE_Q8_0].from_float(y, qy, n);
    ref->type[t].to_float(qx, dx, n);
    ref->type[MLXR_DTYPE_Q8_0].to_float(qy, dy, n);
    double exact = 0.0, mag = 0.0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)dx[i] * (double)dy[i];
        mag += fabs((double)dx[i] * (double)dy[i]);
    }
    float got;
    ref->type[t].vec_dot(n, &got, qx, qy);
    const double tol = (double)(n / 32 + 2) * FLT_EPSILON * mag;
    CHECK(fabs((double)got - exact) <= tol,
          "%s ref dot n=%" PRId64 ": %.9g vs dequantized %.9g (tol %.3g)", ti->name, n, (double)got,
          exact, tol);
    free(qx);
    free(qy);
    free(dx);
    free(dy);
}

static void check_refs_vs_math(const mlxr_kernels *ref) {
    check_fp16_expected();
    check_q4_0_expected(ref);
    for (size_t s = 0; s < sizeof(SIZES_QUANT) / sizeof(SIZES_QUANT[0]); s++) {
        const int64_t n = SIZES_QUANT[s];
        float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
        if (!x || !y) exit(2);
        for (int mode = 0; mode < 3; mode++) {
            fill_floats(x, n, mode);
            fill_floats(y, n, (mode + 2) % 3);
            check_roundtrip(ref, MLXR_DTYPE_Q8_0, x, n);
            check_roundtrip(ref, MLXR_DTYPE_Q4_0, x, n);
            check_dot_vs_dequant(ref, MLXR_DTYPE_Q8_0, x, y, n);
            check_dot_vs_dequant(ref, MLXR_DTYPE_Q4_0, x, y, n);
        }
        free(x);
        free(y);
    }
}

/* ---- dispatch ---------------------------------------------------------------------------------
 */

static void check_dispatch(void) {
    const mlxr_isa cpu = mlxr_cpu_isa();
    CHECK(cpu >= MLXR_ISA_SCALAR && cpu <= MLXR_ISA_MAX, "mlxr_cpu_isa() = %d", (int)cpu);
    printf("cpu isa: %s\n", mlxr_isa_name(cpu));
    CHECK(strcmp(mlxr_isa_name(MLXR_ISA_AVX2), "avx2") == 0, "isa name");
    CHECK(strcmp(mlxr_isa_name(MLXR_ISA_AVX512_VNNI), "avx512-vnni") == 0, "isa name");
    for (int isa = MLXR_ISA_SCALAR; isa <= MLXR_ISA_MAX; isa++)
        CHECK(strcmp(mlxr_isa_name((mlxr_isa)isa), "unknown") != 0, "level %d has a name", isa);
    for (int isa = 0; isa <= MLXR_ISA_MAX + 1; isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        int want = isa < (int)cpu ? isa : (int)cpu;
        if (want < MLXR_ISA_SCALAR) want = MLXR_ISA_SCALAR;
        CHECK((int)k.isa == want, "init(%d) chose %d, want %d", isa, (int)k.isa, want);
        for (int t = 0; t < MLXR_DTYPE_COUNT; t++) {
            const type_info *ti = type_of((mlxr_dtype)t);
            const mlxr_type_kernels *tk = &k.type[t];
            if (ti) {
                CHECK(tk->vec_dot && tk->from_float && tk->to_float, "%s kernels set", ti->name);
            } else if (!tk->to_float) { /* the other readable types: test_quants.c */
                CHECK(!tk->vec_dot && !tk->from_float && !tk->gemm, "type %d unset", t);
            }
        }
        CHECK(k.type[MLXR_DTYPE_Q4_0].vec_dot_type == MLXR_DTYPE_Q8_0, "Q4_0 dots with Q8_0");
        CHECK(k.type[MLXR_DTYPE_BF16].vec_dot_type == MLXR_DTYPE_BF16, "BF16 dots with BF16");
    }
    mlxr_kernels k;
    mlxr_kernels_init(&k, MLXR_ISA_SCALAR);
    CHECK(k.type[MLXR_DTYPE_Q8_0].vec_dot == mlxr_vec_dot_q8_0_ref &&
              k.type[MLXR_DTYPE_F16].to_float == mlxr_to_float_f16_ref,
          "the scalar table holds the references");
#if defined(__x86_64__) || defined(__i386__)
    /* the VNNI / BF16 levels really select their kernels (so the loop in main tests them) */
    if (cpu >= MLXR_ISA_AVX512_VNNI) {
        mlxr_kernels_init(&k, MLXR_ISA_AVX512_VNNI);
        CHECK(k.type[MLXR_DTYPE_Q8_0].vec_dot == mlxr_vec_dot_q8_0_avx512vnni &&
                  k.type[MLXR_DTYPE_Q4_0].vec_dot == mlxr_vec_dot_q4_0_avx512vnni &&
                  k.type[MLXR_DTYPE_BF16].vec_dot == mlxr_vec_dot_bf16_avx512,
              "the avx512-vnni table holds the VNNI dot products");
    }
    if (cpu >= MLXR_ISA_AVX512_BF16) {
        mlxr_kernels_init(&k, MLXR_ISA_AVX512_BF16);
        CHECK(k.type[MLXR_DTYPE_BF16].vec_dot == mlxr_vec_dot_bf16_avx512bf16 &&
                  k.type[MLXR_DTYPE_Q8_0].vec_dot == mlxr_vec_dot_q8_0_avx512vnni,
              "the avx512-vnni-bf16 table holds the BF16 dot product");
    }
#endif
}

/* ---- tiled products: every (row, column) of gemm against the reference dot ------------------ */

static void check_gemm(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref,
                       const type_info *ti, int64_t nr, int64_t nc, int64_t n) {
    const mlxr_dtype xt = ref->type[ti->t].vec_dot_type;
    const type_info *tq = type_of(xt);
    const size_t ws = row_bytes(ti, n) + 6, xs = row_bytes(tq, n) + 10; /* padded strides */
    const size_t ldy = (size_t)nr + 3;
    uint8_t *w = malloc(ws * (size_t)nr), *x = malloc(xs * (size_t)nc);
    float *y = malloc(sizeof(float) * ldy * (size_t)nc), *xf = malloc(sizeof(float) * (size_t)n);
    if (!w || !x || !y || !xf) exit(2);
    for (int64_t i = 0; i < nr; i++) {
        if (ti->block_n > 1) { /* any quant bytes (Q8_0 -128 included), finite scales */
            fill_random_bytes(ti, w + (size_t)i * ws, n);
        } else { /* finite values: a NaN would compare as "not different" */
            fill_floats(xf, n, 0);
            ref->type[ti->t].from_float(xf, w + (size_t)i * ws, n);
        }
    }
    for (int64_t j = 0; j < nc; j++) {
        fill_floats(xf, n, 0);
        ref->type[xt].from_float(xf, x + (size_t)j * xs, n);
    }
    for (size_t i = 0; i < ldy * (size_t)nc; i++) y[i] = -12345.0f; /* sentinel */
    k->type[ti->t].gemm(n, nr, nc, w, ws, x, xs, y, ldy);
    int bad = 0;
    for (int64_t j = 0; j < nc; j++) {
        for (int64_t i = 0; i < (int64_t)ldy; i++) {
            const float got = y[(size_t)j * ldy + (size_t)i];
            if (i >= nr) {
                bad += got != -12345.0f; /* past the tile: untouched */
                continue;
            }
            float want;
            ref->type[ti->t].vec_dot(n, &want, w + (size_t)i * ws, x + (size_t)j * xs);
            const double tol = (double)(n / 32 + 16) * FLT_EPSILON *
                               abs_dot(ref, ti, w + (size_t)i * ws, x + (size_t)j * xs, n);
            if (fabs((double)got - (double)want) > tol && bad++ < 3)
                fprintf(stderr, "%s gemm %s %lldx%lld n=%lld at (%lld,%lld): %.9g vs %.9g\n", label,
                        ti->name, (long long)nr, (long long)nc, (long long)n, (long long)i,
                        (long long)j, (double)got, (double)want);
        }
    }
    CHECK(bad == 0, "%s gemm %s %" PRId64 "x%" PRId64 " n=%" PRId64 ": %d mismatches", label,
          ti->name, nr, nc, n, bad);
    free(w);
    free(x);
    free(y);
    free(xf);
}

/* ---- four-row decode products: each of the 4 outputs against the reference dot ------------- */

static void check_dot4(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref,
                       const type_info *ti, int64_t n) {
    const mlxr_dtype xt = ref->type[ti->t].vec_dot_type;
    const size_t ws = row_bytes(ti, n) + 6; /* a padded stride */
    uint8_t *w = malloc(ws * 4), *x = malloc(row_bytes(type_of(xt), n) + 1);
    float *xf = malloc(sizeof(float) * (size_t)(n + 1));
    if (!w || !x || !xf) exit(2);
    for (int i = 0; i < 4; i++) {
        fill_floats(xf, n, 0);
        ref->type[ti->t].from_float(xf, w + (size_t)i * ws, n);
    }
    fill_floats(xf, n, 0);
    ref->type[xt].from_float(xf, x, n);
    float y[5] = {-1.0f, -1.0f, -1.0f, -1.0f, -12345.0f}; /* y[4]: a sentinel */
    k->type[ti->t].vec_dot4(n, y, w, ws, x);
    int bad = y[4] != -12345.0f;
    for (int i = 0; i < 4; i++) {
        float want;
        ref->type[ti->t].vec_dot(n, &want, w + (size_t)i * ws, x);
        const double tol =
            (double)(n / 8 + 16) * FLT_EPSILON * abs_dot(ref, ti, w + (size_t)i * ws, x, n);
        if (fabs((double)y[i] - (double)want) > tol && bad++ < 3)
            fprintf(stderr, "%s dot4 %s n=%lld row %d: %.9g vs %.9g\n", label, ti->name,
                    (long long)n, i, (double)y[i], (double)want);
    }
    CHECK(bad == 0, "%s dot4 %s n=%" PRId64 ": %d mismatches", label, ti->name, n, bad);
    free(w);
    free(x);
    free(xf);
}

static void check_dot4s(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref) {
    for (int t = 0; t < N_TYPES; t++) {
        const type_info *ti = &TYPES[t];
        if (!k->type[ti->t].vec_dot4) continue;
        for (size_t s = 0; s < sizeof(SIZES_FLOAT) / sizeof(SIZES_FLOAT[0]); s++)
            check_dot4(label, k, ref, ti, SIZES_FLOAT[s]);
    }
}

/* vec_dot4n against vec_dot4 column by column: bitwise equal (its contract), nothing written past
 * the four outputs of a column (sentinels in the padded output rows). */
static void check_dot4n(const char *label, const mlxr_kernels *k, const type_info *ti, int64_t n,
                        int64_t nc) {
    const mlxr_type_kernels *tk = &k->type[ti->t];
    const mlxr_dtype xt = tk->vec_dot_type;
    const size_t ws = row_bytes(ti, n) + 6, xs = row_bytes(type_of(xt), n) + 10, lds = 6;
    uint8_t *w = malloc(ws * 4), *x = malloc(xs * (size_t)nc);
    float *xf = malloc(sizeof(float) * (size_t)(n + 1)),
          *y = malloc(sizeof(float) * lds * (size_t)nc);
    if (!w || !x || !xf || !y) exit(2);
    for (int i = 0; i < 4; i++) {
        fill_floats(xf, n, 0);
        tk->from_float(xf, w + (size_t)i * ws, n);
    }
    for (int64_t c = 0; c < nc; c++) {
        fill_floats(xf, n, 0);
        k->type[xt].from_float(xf, x + (size_t)c * xs, n);
    }
    for (size_t i = 0; i < lds * (size_t)nc; i++) y[i] = -12345.0f;
    tk->vec_dot4n(n, nc, y, lds, w, ws, x, xs);
    int bad = 0;
    for (int64_t c = 0; c < nc; c++) {
        float want[4];
        tk->vec_dot4(n, want, w, ws, x + (size_t)c * xs);
        bad += memcmp(want, y + (size_t)c * lds, sizeof want) != 0;
        bad += y[(size_t)c * lds + 4] != -12345.0f || y[(size_t)c * lds + 5] != -12345.0f;
    }
    CHECK(bad == 0, "%s dot4n %s n=%" PRId64 " nc=%" PRId64 ": %d columns differ from vec_dot4",
          label, ti->name, n, nc, bad);
    free(w);
    free(x);
    free(xf);
    free(y);
}

static void check_dot4ns(const char *label, const mlxr_kernels *k) {
    static const int64_t ncs[] = {1, 2, 3, 8};
    for (int t = 0; t < N_TYPES; t++) {
        const type_info *ti = &TYPES[t];
        if (!k->type[ti->t].vec_dot4n) continue;
        CHECK(k->type[ti->t].vec_dot4 != NULL, "%s %s: vec_dot4n without vec_dot4", label,
              ti->name);
        for (size_t s = 0; s < sizeof(SIZES_FLOAT) / sizeof(SIZES_FLOAT[0]); s++)
            for (size_t c = 0; c < sizeof ncs / sizeof *ncs; c++)
                check_dot4n(label, k, ti, SIZES_FLOAT[s], ncs[c]);
    }
}

static void check_gemms(const char *label, const mlxr_kernels *k, const mlxr_kernels *ref) {
    /* n are multiples of 32 (quantized blocks); F16 also gets tails: 33, 7 */
    static const int64_t shapes[][3] = {{1, 1, 32},  {4, 2, 64},    {4, 3, 96},  {5, 3, 256},
                                        {8, 6, 128}, {13, 7, 4096}, {3, 1, 32}, {17, 11, 160},
                                        {4, 3, 33},  {9, 4, 7}};
    for (int t = 0; t < N_TYPES; t++) {
        const type_info *ti = &TYPES[t];
        if (!k->type[ti->t].gemm) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            if (shapes[s][2] % ti->block_n == 0)
                check_gemm(label, k, ref, ti, shapes[s][0], shapes[s][1], shapes[s][2]);
    }
}

int main(void) {
    rng = test_seed();
    check_dispatch();

    mlxr_kernels ref;
    mlxr_kernels_init(&ref, MLXR_ISA_SCALAR);
    check_refs_vs_math(&ref);

    for (int isa = MLXR_ISA_SCALAR; isa <= (int)mlxr_cpu_isa(); isa++) {
        mlxr_kernels k;
        mlxr_kernels_init(&k, (mlxr_isa)isa);
        const char *label = mlxr_isa_name(k.isa);
        printf("checking %s\n", label);
        for (int t = 0; t < N_TYPES; t++) {
            const type_info *ti = &TYPES[t];
            const int64_t *sizes = ti->block_n == 1 ? SIZES_FLOAT : SIZES_QUANT;
            const size_t ns = ti->block_n == 1 ? sizeof(SIZES_FLOAT) / sizeof(SIZES_FLOAT[0])
                                               : sizeof(SIZES_QUANT) / sizeof(SIZES_QUANT[0]);
            for (size_t s = 0; s < ns; s++)
                check_type_random(label, &k, &ref, ti, sizes[s]);
        }
        check_f16_bf16_edges(label, &k, &ref);
        check_quant_edges(label, &k, &ref);
        check_gemms(label, &k, &ref);
        check_dot4s(label, &k, &ref);
        check_dot4ns(label, &k);
    }
    for (int isa = (int)mlxr_cpu_isa() + 1; isa <= MLXR_ISA_MAX; isa++)
        printf("SKIPPED %s: this CPU lacks it\n", mlxr_isa_name((mlxr_isa)isa));
    return test_finish("kernels_types");
}
