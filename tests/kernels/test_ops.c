/*
 * test_ops.c - the float reference ops (RMSNorm, RoPE, softmax, SwiGLU, add) against the same
 * math computed independently in double precision, on fresh random inputs of awkward sizes.
 */
#include "test.h"

#include <math.h>

#include "kernels/ops.h"

static uint64_t rng;

static void fill(float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = test_rng_f32(&rng, lo, hi);
}

static void test_rmsnorm(int64_t n) {
    float *x = malloc(n * 4), *w = malloc(n * 4), *y = malloc(n * 4);
    fill(x, n, -3, 3);
    fill(w, n, 0.5f, 1.5f);
    mlxr_rmsnorm_f32_ref(x, w, y, n, 1e-5f);
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + 1e-5);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double ref = x[i] * sc * w[i];
        if (fabs(y[i] - ref) > 1e-5 * (fabs(ref) + 1e-3) && bad++ < 3)
            fprintf(stderr, "rmsnorm n=%lld i=%lld: %g vs %g\n", (long long)n, (long long)i, y[i], ref);
    }
    CHECK(bad == 0, "rmsnorm n=%lld: %d mismatches (rel 1e-5)", (long long)n, bad);
    /* in place gives the same */
    mlxr_rmsnorm_f32_ref(x, w, x, n, 1e-5f);
    CHECK(!memcmp(x, y, n * 4), "rmsnorm in place differs, n=%lld", (long long)n);
    free(x);
    free(w);
    free(y);
}

static void test_rope(int64_t n_head, int64_t hd, int64_t n_rot, int32_t pos, float base) {
    int64_t n = n_head * hd;
    float *x = malloc(n * 4), *x0 = malloc(n * 4), cs[512];
    fill(x, n, -2, 2);
    memcpy(x0, x, n * 4);
    mlxr_rope_f32_ref(x, n_head, hd, n_rot, pos, base, cs);
    int bad = 0;
    for (int64_t h = 0; h < n_head; h++) {
        for (int64_t i = 0; i < hd; i += 2) {
            double a = x0[h * hd + i], b = x0[h * hd + i + 1], ra = a, rb = b;
            if (i < n_rot) {
                double th = pos * pow(base, -(double)i / n_rot);
                ra = a * cos(th) - b * sin(th);
                rb = a * sin(th) + b * cos(th);
            }
            /* the reference builds angles by repeated float products, as GGML: allow their
             * rounding (relative 1e-6 per step of the angle) */
            double tol = 2e-6 * (1 + fabs((double)pos)) * (fabs(a) + fabs(b)) + 1e-6;
            if ((fabs(x[h * hd + i] - ra) > tol || fabs(x[h * hd + i + 1] - rb) > tol) && bad++ < 3)
                fprintf(stderr, "rope pos %d h %lld i %lld: (%g,%g) vs (%g,%g)\n", pos, (long long)h,
                        (long long)i, x[h * hd + i], x[h * hd + i + 1], ra, rb);
        }
    }
    CHECK(bad == 0, "rope n_head %lld hd %lld n_rot %lld pos %d: %d mismatches", (long long)n_head,
          (long long)hd, (long long)n_rot, pos, bad);
    free(x);
    free(x0);
}

static void test_softmax(int64_t n) {
    float *x = malloc(n * 4);
    double *d = malloc(n * sizeof *d);
    fill(x, n, -20, 20);
    for (int64_t i = 0; i < n; i++) d[i] = x[i] * 0.125;
    mlxr_softmax_f32_ref(x, n, 0.125f);
    double mx = -INFINITY, sum = 0, tot = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, d[i]);
    for (int64_t i = 0; i < n; i++) sum += exp(d[i] - mx);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double ref = exp(d[i] - mx) / sum;
        tot += x[i];
        if (fabs(x[i] - ref) > 1e-6 * ref + 1e-9 && bad++ < 3)
            fprintf(stderr, "softmax n=%lld i=%lld: %g vs %g\n", (long long)n, (long long)i, x[i], ref);
    }
    CHECK(bad == 0 && fabs(tot - 1) < 1e-5, "softmax n=%lld: %d mismatches, sum %g", (long long)n,
          bad, tot);
    free(x);
    free(d);
}

static void test_swiglu_add(int64_t n) {
    float *g = malloc(n * 4), *u = malloc(n * 4), *g0 = malloc(n * 4);
    fill(g, n, -10, 10);
    fill(u, n, -3, 3);
    memcpy(g0, g, n * 4);
    mlxr_swiglu_f32_ref(g, u, n);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double ref = g0[i] / (1 + exp(-(double)g0[i])) * u[i];
        if (fabs(g[i] - ref) > 1e-6 * fabs(ref) + 1e-7) bad++;
    }
    CHECK(bad == 0, "swiglu n=%lld: %d mismatches", (long long)n, bad);
    memcpy(g, g0, n * 4);
    mlxr_add_f32_ref(g, u, n);
    bad = 0;
    for (int64_t i = 0; i < n; i++) bad += g[i] != g0[i] + u[i];
    CHECK(bad == 0, "add n=%lld: %d mismatches", (long long)n, bad);
    free(g);
    free(u);
    free(g0);
}

int main(void) {
    rng = test_seed();
    const int64_t sizes[] = {1, 2, 7, 31, 64, 256, 1000, 4097};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        test_rmsnorm(sizes[i]);
        test_softmax(sizes[i]);
        test_swiglu_add(sizes[i]);
    }
    test_rope(1, 2, 2, 0, 10000.f);
    test_rope(4, 64, 64, 1, 10000.f);
    test_rope(8, 8, 8, 17, 10000.f);
    test_rope(2, 4, 4, 511, 10000.f);
    test_rope(3, 64, 32, 100, 500000.f); /* partial rotation: dims past n_rot unchanged */
    test_rope(32, 128, 128, 4000, 10000.f);
    return test_finish("kernels_ops");
}
