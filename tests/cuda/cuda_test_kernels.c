/*
 * cuda_test_kernels.c - every CUDA kernel against the scalar CPU reference on fresh random inputs
 * (seed printed; MLXR_SEED reproduces). Exits 77 (ctest: skipped) when no CUDA device is present.
 *
 * Tolerances, and why:
 *   - activation encodings (Q8_0, Q8_K and their f16 forms), embedding lookup (every weight type,
 *     K-quants included), KV store (f16 rounding), argmax: exact (same arithmetic, same
 *     rounding: byte/bit equality).
 *   - matrix products on CUDA cores (decode, batches of up to 8): |y - ref| <= 1e-5 * sum_i
 *     |w_i x_i| + 1e-6 against the CPU path's encode + vec_dot_ref. The integer block sums are
 *     exact; only the order of the f32 additions differs (the reference adds float dot products
 *     in double for F16/F32, the device in f32).
 *   - the prefill GEMM (tensor cores, weights dequantized to f16): 2e-5 * sum_i |w_i x_i| + 1e-6
 *     against sum f16(w_i) * f16(x_i) in double, w_i the reference dequantization and x_i the
 *     CPU encoding's values (f32 sums in the tensor cores' order).
 *   - RMSNorm, softmax, SwiGLU: relative 2e-6 (one or two ulp: double sums in another order,
 *     device expf within 2 ulp of glibc's).
 *   - RoPE: absolute 2e-5 on values of size ~1 (cosf/sinf of angles up to ~4000 rad, 2 ulp).
 *   - attention (split and prefill kernels): absolute 2e-5 against a double-precision reference of
 *     softmax(f16(q).K) V.
 */
#include "test.h"

#include <cuda_runtime_api.h>
#include <math.h>

#include "kernels/cuda/act.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "util/fp16.h"

static uint64_t rng;

static void *dev_from(const void *h, size_t n) {
    void *d = NULL;
    if (cudaMalloc(&d, n ? n : 1) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc(%zu) failed\n", n);
        exit(1);
    }
    if (h) cudaMemcpy(d, h, n, cudaMemcpyHostToDevice);
    return d;
}

static void to_host(void *h, const void *d, size_t n) {
    cudaError_t e = cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "cudaMemcpy back: %s", cudaGetErrorString(e));
}

static float *rand_f32(int64_t n, float lo, float hi) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = test_rng_f32(&rng, lo, hi);
    return x;
}

static void synced(cudaError_t launch, const char *what) {
    cudaError_t e = launch == cudaSuccess ? cudaDeviceSynchronize() : launch;
    CHECK(e == cudaSuccess, "%s: %s", what, cudaGetErrorString(e));
}

/* ---- activation encodings: byte-identical to the reference ---------------------------------- */

/* Q8_0 / Q8_K (int8 + f32 scales) and their F16_* forms (f16(d * q)) against the reference
 * quantizers, F16 against mlxr_fp32_to_fp16. */
static void test_quantize(void) {
    const int64_t n = 4096;
    const int32_t T = 3;
    float *x = rand_f32(n * T, -3, 3);
    for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;        /* an all-zero Q8_0 block: scale 0 */
    for (int i = 0; i < 32; i++) x[128 + i] = 1e-3f * i;  /* a tiny block */
    x[200] = -7.5f;                                        /* a half-way value's block */
    for (int i = 0; i < 256; i++) x[512 + i] = 0.0f;      /* an all-zero Q8_K block */
    x[1024 + 3] = 2.9f;                                    /* Q8_K ties: the first of +-max wins */
    x[1024 + 100] = -2.9f;
    x[1280 + 7] = -2.95f;
    x[1280 + 200] = 2.95f;
    float *dx = dev_from(x, (size_t)(n * T) * 4);
    int8_t *dq = dev_from(NULL, (size_t)(n * T) * 2);
    float *dd = dev_from(NULL, (size_t)(n * T / 32) * 4);
    int8_t *q = malloc((size_t)(n * T));
    float *d = malloc((size_t)(n * T / 32) * 4);
    uint16_t *h = malloc((size_t)(n * T) * 2);

    synced(mlxr_encode_cuda(MLXR_CUDA_ENC_Q8_0, dx, n, T, dq, dd, 0), "quantize Q8_0");
    to_host(q, dq, (size_t)(n * T));
    to_host(d, dd, (size_t)(n * T / 32) * 4);
    mlxr_block_q8_0 *ref = malloc((size_t)(n * T / 32) * sizeof *ref);
    mlxr_quantize_q8_0_ref(x, ref, n * T);
    int bad = 0;
    for (int64_t b = 0; b < n * T / 32; b++)
        if (mlxr_fp16_to_fp32(ref[b].d) != d[b] || memcmp(ref[b].qs, q + b * 32, 32)) bad++;
    CHECK(bad == 0, "Q8_0 quantization: %d of %lld blocks differ from mlxr_quantize_q8_0_ref", bad,
          (long long)(n * T / 32));
    synced(mlxr_encode_cuda(MLXR_CUDA_ENC_F16_Q8_0, dx, n, T, dq, NULL, 0), "F16_Q8_0");
    to_host(h, dq, (size_t)(n * T) * 2);
    bad = 0;
    for (int64_t i = 0; i < n * T; i++)
        bad += h[i] != mlxr_fp32_to_fp16(mlxr_fp16_to_fp32(ref[i / 32].d) * (float)ref[i / 32].qs[i % 32]);
    CHECK(bad == 0, "F16_Q8_0 encoding: %d values differ from f16(d * q)", bad);

    synced(mlxr_encode_cuda(MLXR_CUDA_ENC_Q8_K, dx, n, T, dq, dd, 0), "quantize Q8_K");
    to_host(q, dq, (size_t)(n * T));
    to_host(d, dd, (size_t)(n * T / 256) * 4);
    mlxr_block_q8_k *rk = malloc((size_t)(n * T / 256) * sizeof *rk);
    mlxr_quantize_q8_k_ref(x, rk, n * T);
    bad = 0;
    for (int64_t b = 0; b < n * T / 256; b++)
        if (rk[b].d != d[b] || memcmp(rk[b].qs, q + b * 256, 256)) bad++;
    CHECK(bad == 0, "Q8_K quantization: %d of %lld blocks differ from mlxr_quantize_q8_k_ref", bad,
          (long long)(n * T / 256));
    synced(mlxr_encode_cuda(MLXR_CUDA_ENC_F16_Q8_K, dx, n, T, dq, NULL, 0), "F16_Q8_K");
    to_host(h, dq, (size_t)(n * T) * 2);
    bad = 0;
    for (int64_t i = 0; i < n * T; i++)
        bad += h[i] != mlxr_fp32_to_fp16(rk[i / 256].d * (float)rk[i / 256].qs[i % 256]);
    CHECK(bad == 0, "F16_Q8_K encoding: %d values differ from f16(d * q)", bad);

    /* F16 conversion: round to nearest even like mlxr_fp32_to_fp16 */
    synced(mlxr_encode_cuda(MLXR_CUDA_ENC_F16, dx, n, T, dq, NULL, 0), "to f16");
    to_host(h, dq, (size_t)(n * T) * 2);
    bad = 0;
    for (int64_t i = 0; i < n * T; i++) bad += h[i] != mlxr_fp32_to_fp16(x[i]);
    CHECK(bad == 0, "F16 conversion: %d values differ", bad);
    CHECK(mlxr_encode_cuda(MLXR_CUDA_ENC_Q8_K, dx, 4096 + 32, 1, dq, dd, 0) == cudaErrorInvalidValue,
          "Q8_K encoding of a row that is not whole super-blocks is refused");
    fprintf(stderr, "  encode Q8_0 / F16_Q8_0 / Q8_K / F16_Q8_K / F16: exact over %lld values\n", (long long)(n * T));
    cudaFree(dx);
    cudaFree(dq);
    cudaFree(dd);
    free(x);
    free(q);
    free(d);
    free(h);
    free(ref);
    free(rk);
}

/* ---- matrix products and embedding ------------------------------------------------------------ */

static bool is_kquant(mlxr_dtype t) {
    return t == MLXR_DTYPE_Q4_K || t == MLXR_DTYPE_Q5_K || t == MLXR_DTYPE_Q6_K;
}

static size_t row_bytes_of(mlxr_dtype type, int64_t ne0) {
    switch (type) {
    case MLXR_DTYPE_Q8_0: return (size_t)ne0 / 32 * 34;
    case MLXR_DTYPE_Q4_0: return (size_t)ne0 / 32 * 18;
    case MLXR_DTYPE_Q4_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q4_k);
    case MLXR_DTYPE_Q5_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q5_k);
    case MLXR_DTYPE_Q6_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q6_k);
    case MLXR_DTYPE_Q8_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q8_k);
    case MLXR_DTYPE_F16: return (size_t)ne0 * 2;
    default: return (size_t)ne0 * 4;
    }
}

static uint16_t rand_scale(float lo, float hi) {
    return mlxr_fp32_to_fp16(test_rng_f32(&rng, lo, hi));
}

/* GGUF-format rows of `type`: Q8_0/Q4_0/F16/F32 from the random floats w; K-quants as random bytes
 * (every bit pattern of quants and packed scales) with finite random f16 scales. */
static void *make_rows(mlxr_dtype type, const float *w, int64_t ne0, int64_t ne1, size_t *row_bytes) {
    const size_t rb = row_bytes_of(type, ne0);
    uint8_t *out = malloc(rb * (size_t)ne1);
    for (int64_t r = 0; r < ne1; r++) {
        const float *src = w + r * ne0;
        void *dst = out + (size_t)r * rb;
        switch (type) {
        case MLXR_DTYPE_Q8_0: mlxr_quantize_q8_0_ref(src, dst, ne0); break;
        case MLXR_DTYPE_Q4_0: mlxr_quantize_q4_0_ref(src, dst, ne0); break;
        case MLXR_DTYPE_Q8_K: mlxr_quantize_q8_k_ref(src, dst, ne0); break;
        case MLXR_DTYPE_F16: mlxr_from_float_f16_ref(src, dst, ne0); break;
        case MLXR_DTYPE_F32: memcpy(dst, src, (size_t)ne0 * 4); break;
        default: {
            uint8_t *b = dst;
            for (size_t i = 0; i < rb; i++) b[i] = (uint8_t)test_rng_u64(&rng);
            for (int64_t k = 0; k < ne0 / 256; k++) {
                if (type == MLXR_DTYPE_Q4_K) {
                    mlxr_block_q4_k *q = (mlxr_block_q4_k *)dst + k;
                    q->d = rand_scale(1e-3f, 1e-2f);
                    q->dmin = rand_scale(1e-3f, 1e-2f);
                } else if (type == MLXR_DTYPE_Q5_K) {
                    mlxr_block_q5_k *q = (mlxr_block_q5_k *)dst + k;
                    q->d = rand_scale(1e-3f, 1e-2f);
                    q->dmin = rand_scale(1e-3f, 1e-2f);
                } else {
                    ((mlxr_block_q6_k *)dst + k)->d = rand_scale(1e-4f, 1e-3f);
                }
            }
        }
        }
    }
    *row_bytes = rb;
    return out;
}

static mlxr_vec_dot_fn dot_of(mlxr_dtype t) {
    switch (t) {
    case MLXR_DTYPE_Q8_0: return mlxr_vec_dot_q8_0_ref;
    case MLXR_DTYPE_Q4_0: return mlxr_vec_dot_q4_0_ref;
    case MLXR_DTYPE_Q4_K: return mlxr_vec_dot_q4_k_ref;
    case MLXR_DTYPE_Q5_K: return mlxr_vec_dot_q5_k_ref;
    case MLXR_DTYPE_Q6_K: return mlxr_vec_dot_q6_k_ref;
    case MLXR_DTYPE_F16: return mlxr_vec_dot_f16_ref;
    default: return mlxr_vec_dot_f32_ref;
    }
}

static mlxr_to_float_fn dec_of(mlxr_dtype t) {
    switch (t) {
    case MLXR_DTYPE_Q8_0: return mlxr_dequantize_q8_0_ref;
    case MLXR_DTYPE_Q4_0: return mlxr_dequantize_q4_0_ref;
    case MLXR_DTYPE_Q4_K: return mlxr_dequantize_q4_k_ref;
    case MLXR_DTYPE_Q5_K: return mlxr_dequantize_q5_k_ref;
    case MLXR_DTYPE_Q6_K: return mlxr_dequantize_q6_k_ref;
    case MLXR_DTYPE_Q8_K: return mlxr_dequantize_q8_k_ref;
    case MLXR_DTYPE_F16: return mlxr_to_float_f16_ref;
    default: return mlxr_to_float_f32_ref;
    }
}

static float f16r(float v) {
    return mlxr_fp16_to_fp32(mlxr_fp32_to_fp16(v));
}

/*
 * y = w . x for T rows through mlxr_matmul_cuda (bm = 0) or the GEMM with a forced tile (bm 64 or
 * 128), against the CPU reference for the path taken:
 *   - integer / CUDA-core paths (encodings Q8_0, Q8_K, F16, F32): the CPU engine's own encode +
 *     vec_dot_ref on the GGUF rows;
 *   - the tensor-core GEMM (F16_* encodings): sum of f16(dequantized weight) * f16(dequantized
 *     encoded activation) in double, from the reference dequantizers and quantizers.
 * Both: |y - ref| <= tol * sum_i |w_i x_i| + 1e-6, tol 1e-5 (2e-5 on tensor cores: f32 sums in
 * the tensor cores' order).
 */
static void test_matmul_case(mlxr_dtype type, int64_t ne0, int64_t ne1, int32_t T, int bm) {
    const char *tn = mlxr_dtype_name(type);
    float *w = rand_f32(ne0 * ne1, -1, 1);
    float *x = rand_f32(ne0 * T, -2, 2);
    size_t rb;
    uint8_t *rows = make_rows(type, w, ne0, ne1, &rb);
    mlxr_cuda_mat m;
    mlxr_err err = {0};
    mlxr_status st = mlxr_cuda_mat_upload(&m, type, rows, ne0, ne1, rb, &err);
    CHECK(st == MLXR_OK, "upload %s: %s", tn, err.msg);
    if (st != MLXR_OK) {
        free(w);
        free(x);
        free(rows);
        return;
    }
    CHECK(mlxr_cuda_mat_bytes(&m) == rb * (size_t)ne1, "%s: device bytes %zu != GGUF bytes %zu", tn,
          mlxr_cuda_mat_bytes(&m), rb * (size_t)ne1);
    const mlxr_cuda_enc e = bm ? (type == MLXR_DTYPE_F16 ? MLXR_CUDA_ENC_F16
                                  : is_kquant(type)     ? MLXR_CUDA_ENC_F16_Q8_K : MLXR_CUDA_ENC_F16_Q8_0)
                               : mlxr_cuda_act_enc(&m, T);
    const bool gemm = bm || (T > 8 && mlxr_gemm_supported_cuda(type, ne0));
    float *dx = dev_from(x, (size_t)(ne0 * T) * 4);
    void *dq = dev_from(NULL, (size_t)(ne0 * T) * 2);
    float *dd = dev_from(NULL, (size_t)(ne0 * T / 32 + 1) * 4);
    float *dy = dev_from(NULL, (size_t)(ne1 * T) * 4);
    synced(mlxr_encode_cuda(e, dx, ne0, T, dq, dd, 0), "encode");
    if (bm)
        synced(mlxr_gemm_tile_cuda(&m, dq, T, dy, ne1, bm, 0), "gemm");
    else
        synced(mlxr_matmul_cuda(&m, e == MLXR_CUDA_ENC_F32 ? (void *)dx : dq, dd, T, dy, ne1, 0), "matmul");
    float *y = malloc((size_t)(ne1 * T) * 4);
    to_host(y, dy, (size_t)(ne1 * T) * 4);

    /* the CPU engine's activation encoding of x */
    const mlxr_dtype vt = type == MLXR_DTYPE_Q8_0 || type == MLXR_DTYPE_Q4_0 ? MLXR_DTYPE_Q8_0
                        : is_kquant(type) ? MLXR_DTYPE_Q8_K : type;
    size_t xrb;
    uint8_t *xenc = make_rows(vt, x, ne0, T, &xrb);
    const mlxr_vec_dot_fn dot = dot_of(type);
    const mlxr_to_float_fn wdec = dec_of(type), xdec = dec_of(vt);
    float *wd = malloc((size_t)(ne0 * ne1) * 4), *xd = malloc((size_t)ne0 * 4);
    for (int64_t r = 0; r < ne1; r++) wdec(rows + (size_t)r * rb, wd + r * ne0, ne0);
    const double tol_rel = gemm ? 2e-5 : 1e-5;
    double worst = 0;
    int bad = 0;
    for (int32_t t = 0; t < T; t++) {
        xdec(xenc + (size_t)t * xrb, xd, ne0);
        for (int64_t r = 0; r < ne1; r++) {
            const float *wr = wd + r * ne0;
            double ref = 0, mag = 0;
            if (gemm) {
                for (int64_t i = 0; i < ne0; i++) ref += (double)f16r(wr[i]) * f16r(xd[i]);
            } else {
                float s;
                dot(ne0, &s, rows + (size_t)r * rb, xenc + (size_t)t * xrb);
                ref = s;
            }
            for (int64_t i = 0; i < ne0; i++) mag += fabs((double)wr[i] * xd[i]);
            const double d = fabs((double)y[t * ne1 + r] - ref), tol = tol_rel * mag + 1e-6;
            if (d / (mag + 1e-30) > worst) worst = d / (mag + 1e-30);
            if (d > tol && bad++ < 5)
                CHECK(d <= tol, "matmul %s %lldx%lld T=%d bm=%d row %lld tok %d: %.7g vs ref %.7g", tn,
                      (long long)ne1, (long long)ne0, T, bm, (long long)r, t, (double)y[t * ne1 + r], ref);
        }
    }
    CHECK(bad == 0, "matmul %s: %d outputs out of tolerance", tn, bad);
    fprintf(stderr, "  matmul %-4s %5lld x %-5lld T=%-3d %-9s max |d| / sum|w x| = %.2e\n", tn, (long long)ne1,
            (long long)ne0, T, bm == 64 ? "gemm 64" : bm == 128 ? "gemm 128" : gemm ? "gemm" : "cuda cores", worst);

    /* embedding lookup of a few rows: exact dequantization */
    int32_t tok[4] = {0, (int32_t)(ne1 - 1), (int32_t)(ne1 / 2), 0};
    int32_t *dt = dev_from(tok, sizeof tok);
    float *de = dev_from(NULL, (size_t)(4 * ne0) * 4), *em = malloc((size_t)(4 * ne0) * 4);
    synced(mlxr_embed_cuda(&m, dt, 4, de, 0), "embed");
    to_host(em, de, (size_t)(4 * ne0) * 4);
    int ebad = 0;
    for (int k = 0; k < 4; k++) ebad += memcmp(wd + (int64_t)tok[k] * ne0, em + k * ne0, (size_t)ne0 * 4) != 0;
    CHECK(ebad == 0, "embedding %s: %d of 4 rows differ from the reference dequantization", tn, ebad);

    mlxr_cuda_mat_free(&m);
    cudaFree(dx);
    cudaFree(dq);
    cudaFree(dd);
    cudaFree(dy);
    cudaFree(dt);
    cudaFree(de);
    free(w);
    free(x);
    free(rows);
    free(y);
    free(xenc);
    free(wd);
    free(xd);
    free(em);
}

static void test_matmul(void) {
    const mlxr_dtype types[] = {MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q4_0, MLXR_DTYPE_F16, MLXR_DTYPE_F32,
                                MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q5_K, MLXR_DTYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const mlxr_dtype t = types[i];
        const int64_t k = is_kquant(t) ? 256 : 32; /* the block size */
        test_matmul_case(t, 256, 37, 1, 0);          /* rows not a multiple of the tile */
        test_matmul_case(t, 4096 + k, 64, 1, 0);     /* row length not a multiple of 512 */
        test_matmul_case(t, 1024, 50, 7, 0);         /* batched CUDA-core path, tokens not a multiple of 8 */
        test_matmul_case(t, 1024, 50, 13, 0);        /* prefill path, one partial tile */
        test_matmul_case(t, 4096, 200, 70, 0);       /* several row tiles, partial at both ends */
        test_matmul_case(t, k, 70, 20, 0);           /* a single block per row */
        test_matmul_case(t, 1024, 72, 300, 0);       /* several token tiles, partial last tile */
        if (t == MLXR_DTYPE_F16) test_matmul_case(t, 1040, 50, 13, 0); /* rows of 32k + 16: CUDA cores */
        if (t != MLXR_DTYPE_F32) {
            /* both GEMM tiles directly: odd row counts, a row length of an odd number of 32s (a
             * zero-filled last half step) where the type allows it, 1..2 token tiles */
            test_matmul_case(t, k == 32 ? 32 * 37 : 256 * 3, 131, 129, 64);
            test_matmul_case(t, k == 32 ? 32 * 37 : 256 * 3, 131, 129, 128);
            test_matmul_case(t, 512, 200, 9, 128);
        }
    }
    mlxr_err err = {0};
    mlxr_cuda_mat m;
    CHECK(mlxr_cuda_mat_upload(&m, MLXR_DTYPE_Q2_K, "", 256, 1, 84, &err) == MLXR_ERR_UNSUPPORTED,
          "Q2_K upload must be unsupported");
    CHECK(mlxr_cuda_mat_upload(&m, MLXR_DTYPE_Q8_0, "", 48, 1, 34, &err) == MLXR_ERR_UNSUPPORTED,
          "Q8_0 row of 48 must be unsupported");
    CHECK(mlxr_cuda_mat_upload(&m, MLXR_DTYPE_Q4_K, "", 128, 1, 72, &err) == MLXR_ERR_UNSUPPORTED,
          "Q4_K row of 128 must be unsupported");
}

/* ---- float ops ------------------------------------------------------------------------------- */

static double rel_err(const float *a, const float *b, int64_t n) {
    double w = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)b[i]));
    for (int64_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return mx > 0 ? w / mx : w;
}

/* Dequantized device Q8_0 rows vs the reference quantization of ref: equal bytes, except that a
 * value within one ulp of a rounding boundary may land one quant step away (*n_step counts them). */
static int cmp_q8_0(const int8_t *q, const float *d, const float *ref, int64_t n, int *n_step) {
    mlxr_block_q8_0 *rb = malloc((size_t)(n / 32) * sizeof *rb);
    mlxr_quantize_q8_0_ref(ref, rb, n);
    int bad = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const float rd = mlxr_fp16_to_fp32(rb[b].d);
        if (fabsf(rd - d[b]) > 1e-6f * fabsf(rd)) bad++;
        for (int j = 0; j < 32; j++) {
            const int diff = abs((int)rb[b].qs[j] - (int)q[b * 32 + j]);
            if (diff > 1) bad++;
            *n_step += diff == 1;
        }
    }
    free(rb);
    return bad;
}

static void test_rmsnorm(void) {
    const int64_t n = 4096 + 32;
    const int32_t T = 5;
    float *x = rand_f32(n * T, -4, 4), *dx = rand_f32(n * T, -1, 1), *g = rand_f32(n, 0.5f, 1.5f);
    float *ddx = dev_from(dx, (size_t)(n * T) * 4), *dg = dev_from(g, (size_t)n * 4);
    float *dx0 = dev_from(x, (size_t)(n * T) * 4), *dy = dev_from(NULL, (size_t)(n * T) * 4);
    int8_t *dq = dev_from(NULL, (size_t)(n * T));
    float *dd = dev_from(NULL, (size_t)(n * T / 32) * 4);
    /* rows 4, 1 only, through the gather list, with the residual add; f32 output */
    int32_t rows[2] = {4, 1};
    int32_t *drows = dev_from(rows, sizeof rows);
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, dy, NULL, NULL}, oq = {MLXR_DTYPE_Q8_0, NULL, dq, dd};
    synced(mlxr_add_rmsnorm_cuda(dx0, ddx, dg, &of, drows, 2, n, 1e-5f, 0), "add_rmsnorm");
    /* then all rows, no add, Q8_0 output (x already holds the sums for rows 4 and 1) */
    synced(mlxr_add_rmsnorm_cuda(dx0, NULL, dg, &oq, NULL, T, n, 1e-5f, 0), "rmsnorm q8_0");
    float *y = malloc((size_t)(2 * n) * 4), *xs = malloc((size_t)(n * T) * 4), *dh = malloc((size_t)(n * T / 32) * 4);
    int8_t *qh = malloc((size_t)(n * T));
    to_host(y, dy, (size_t)(2 * n) * 4);
    to_host(xs, dx0, (size_t)(n * T) * 4);
    to_host(qh, dq, (size_t)(n * T));
    to_host(dh, dd, (size_t)(n * T / 32) * 4);
    double worst = 0;
    float *ref = malloc((size_t)n * 4);
    for (int r = 0; r < 2; r++) {
        float *xr = x + rows[r] * n;
        mlxr_add_f32_ref(xr, dx + rows[r] * n, n);
        CHECK(!memcmp(xr, xs + rows[r] * n, (size_t)n * 4), "residual add row %d differs", rows[r]);
        mlxr_rmsnorm_f32_ref(xr, g, ref, n, 1e-5f);
        worst = fmax(worst, rel_err(y + r * n, ref, n));
    }
    CHECK(!memcmp(x, xs, (size_t)n * 4), "row 0 (not in the list) must be unchanged");
    CHECK(worst <= 2e-6, "rmsnorm rel err %.2e", worst);
    int bad = 0, steps = 0;
    for (int t = 0; t < T; t++) {
        mlxr_rmsnorm_f32_ref(x + t * n, g, ref, n, 1e-5f);
        bad += cmp_q8_0(qh + t * n, dh + t * (n / 32), ref, n, &steps);
    }
    CHECK(bad == 0 && steps <= n * T / 1000, "rmsnorm -> Q8_0: %d bad values, %d one-step differences", bad, steps);
    fprintf(stderr, "  add+rmsnorm: rel err %.2e; fused Q8_0 output: %d of %lld quants one step off\n", worst,
            steps, (long long)(n * T));
    cudaFree(ddx);
    cudaFree(dg);
    cudaFree(dx0);
    cudaFree(dy);
    cudaFree(dq);
    cudaFree(dd);
    cudaFree(drows);
    free(x);
    free(dx);
    free(g);
    free(y);
    free(xs);
    free(dh);
    free(qh);
    free(ref);
}

static void test_rope(void) {
    const int32_t n_head = 8, n_kv = 2, hd = 128, T = 4;
    const int32_t n_rots[2] = {128, 64}; /* full and partial rotation */
    for (int k = 0; k < 2; k++) {
        const int32_t n_rot = n_rots[k];
        int32_t pos[4] = {0, 1, 517, 4000};
        float *q = rand_f32((int64_t)T * n_head * hd, -2, 2), *kk = rand_f32((int64_t)T * n_kv * hd, -2, 2);
        float *dq = dev_from(q, (size_t)T * n_head * hd * 4), *dk = dev_from(kk, (size_t)T * n_kv * hd * 4);
        int32_t *dp = dev_from(pos, sizeof pos);
        const float base = 10000.0f, ts = powf(base, -2.0f / (float)n_rot);
        synced(mlxr_rope_f32_cuda(dq, n_head * hd, n_head, dk, n_kv * hd, n_kv, hd, n_rot, dp, T, ts, 0), "rope");
        float *q2 = malloc((size_t)T * n_head * hd * 4), *k2 = malloc((size_t)T * n_kv * hd * 4);
        to_host(q2, dq, (size_t)T * n_head * hd * 4);
        to_host(k2, dk, (size_t)T * n_kv * hd * 4);
        float cs[128];
        double worst = 0;
        for (int t = 0; t < T; t++) {
            mlxr_rope_f32_ref(q + t * n_head * hd, n_head, hd, n_rot, pos[t], base, cs);
            mlxr_rope_f32_ref(kk + t * n_kv * hd, n_kv, hd, n_rot, pos[t], base, cs);
        }
        for (int64_t i = 0; i < (int64_t)T * n_head * hd; i++) worst = fmax(worst, fabs((double)q[i] - q2[i]));
        for (int64_t i = 0; i < (int64_t)T * n_kv * hd; i++) worst = fmax(worst, fabs((double)kk[i] - k2[i]));
        CHECK(worst <= 2e-5, "rope n_rot %d: max |d| %.2e", n_rot, worst);
        fprintf(stderr, "  rope n_rot %d: max |d| %.2e\n", n_rot, worst);
        cudaFree(dq);
        cudaFree(dk);
        cudaFree(dp);
        free(q);
        free(kk);
        free(q2);
        free(k2);
    }
}

/* RoPE + KV store fused, on rows laid out as one Q|K|V product: q vs the reference rotation,
 * the cache vs the f16 of the reference-rotated k (within one f16 step of rounding) and of v. */
static void test_rope_kv(void) {
    const int32_t n_head = 8, n_kv = 2, hd = 64, n_rot = 32, T = 3, n_ctx = 64, n_seq = 2;
    const int32_t qd = n_head * hd, kvd = n_kv * hd, W = qd + 2 * kvd;
    int32_t pos[3] = {0, 5, 63}, seq[3] = {1, 0, 1};
    float *qkv = rand_f32((int64_t)T * W, -2, 2);
    float *dqkv = dev_from(qkv, (size_t)T * W * 4);
    int32_t *dp = dev_from(pos, sizeof pos), *ds = dev_from(seq, sizeof seq);
    const int64_t cache_n = (int64_t)n_seq * n_ctx * kvd;
    void *dk = dev_from(NULL, (size_t)cache_n * 2), *dv = dev_from(NULL, (size_t)cache_n * 2);
    cudaMemset(dk, 0, (size_t)cache_n * 2);
    cudaMemset(dv, 0, (size_t)cache_n * 2);
    mlxr_cuda_kv kv = {dk, dv, (int64_t)n_ctx * kvd, kvd};
    const float ts = powf(10000.0f, -2.0f / (float)n_rot);
    synced(mlxr_rope_kv_store_cuda(dqkv, dqkv + qd, dqkv + qd + kvd, W, n_head, n_kv, hd, n_rot, dp, ds, T, ts, &kv, 0),
           "rope + kv store");
    float *out = malloc((size_t)T * W * 4);
    uint16_t *kc = malloc((size_t)cache_n * 2), *vc = malloc((size_t)cache_n * 2);
    to_host(out, dqkv, (size_t)T * W * 4);
    to_host(kc, dk, (size_t)cache_n * 2);
    to_host(vc, dv, (size_t)cache_n * 2);
    float cs[64];
    double worst = 0;
    int bad = 0;
    for (int t = 0; t < T; t++) {
        float *q = qkv + t * W, *k = q + qd, *v = k + kvd;
        mlxr_rope_f32_ref(q, n_head, hd, n_rot, pos[t], 10000.0f, cs);
        mlxr_rope_f32_ref(k, n_kv, hd, n_rot, pos[t], 10000.0f, cs);
        for (int i = 0; i < qd; i++) worst = fmax(worst, fabs((double)q[i] - out[t * W + i]));
        for (int i = 0; i < 2 * kvd; i++) /* k and v rows themselves are left unchanged */
            bad += out[t * W + qd + i] != qkv[t * W + qd + i] && i >= kvd;
        const int64_t o = ((int64_t)seq[t] * n_ctx + pos[t]) * kvd;
        for (int i = 0; i < kvd; i++) {
            const float kr = mlxr_fp16_to_fp32(kc[o + i]);
            worst = fmax(worst, fabs((double)kr - k[i]) - fabs((double)k[i]) / 1024.0);
            bad += vc[o + i] != mlxr_fp32_to_fp16(v[i]);
        }
    }
    CHECK(worst <= 2e-5, "rope+kv: max |d| beyond f16 rounding %.2e", worst);
    CHECK(bad == 0, "rope+kv: %d V cache values (or V rows) differ", bad);
    fprintf(stderr, "  rope + kv store fused: max |d| %.2e (beyond one f16 step for K)\n", worst);
    cudaFree(dqkv);
    cudaFree(dp);
    cudaFree(ds);
    cudaFree(dk);
    cudaFree(dv);
    free(qkv);
    free(out);
    free(kc);
    free(vc);
}

static void test_softmax_swiglu(void) {
    const int64_t n = 32000;
    const int32_t R = 3;
    float *x = rand_f32(n * R, -20, 20);
    float *dxx = dev_from(x, (size_t)(n * R) * 4);
    synced(mlxr_softmax_f32_cuda(dxx, R, n, 0.125f, 0), "softmax");
    float *y = malloc((size_t)(n * R) * 4);
    to_host(y, dxx, (size_t)(n * R) * 4);
    double worst = 0;
    for (int r = 0; r < R; r++) {
        mlxr_softmax_f32_ref(x + r * n, n, 0.125f);
        for (int64_t i = 0; i < n; i++) {
            const double ref = x[r * n + i], d = fabs(y[r * n + i] - ref);
            worst = fmax(worst, d / fmax(fabs(ref), 1e-30));
            if (d > 2e-6 * fabs(ref) + 1e-37) {
                CHECK(false, "softmax row %d [%lld]: %.9g vs %.9g", r, (long long)i, (double)y[r * n + i], ref);
                break;
            }
        }
    }
    fprintf(stderr, "  softmax: max rel err %.2e\n", worst);
    /* SwiGLU over the two halves of a [2][2F] gate|up product, f32 and Q8_0 outputs */
    const int64_t F = 11008;
    float *gu = rand_f32(2 * 2 * F, -30, 30);
    float *dg = dev_from(gu, (size_t)(4 * F) * 4), *du = dev_from(NULL, (size_t)(2 * F) * 4);
    int8_t *dq = dev_from(NULL, (size_t)(2 * F));
    float *dd = dev_from(NULL, (size_t)(2 * F / 32) * 4);
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, du, NULL, NULL}, oq = {MLXR_DTYPE_Q8_0, NULL, dq, dd};
    synced(mlxr_swiglu_cuda(dg, dg + F, 2 * F, F, 2, &of, 0), "swiglu");
    synced(mlxr_swiglu_cuda(dg, dg + F, 2 * F, F, 2, &oq, 0), "swiglu q8_0");
    to_host(y, du, (size_t)(2 * F) * 4);
    int8_t *qh = malloc((size_t)(2 * F));
    float *dh = malloc((size_t)(2 * F / 32) * 4), *g = malloc((size_t)(2 * F) * 4);
    to_host(qh, dq, (size_t)(2 * F));
    to_host(dh, dd, (size_t)(2 * F / 32) * 4);
    worst = 0;
    int bad = 0, steps = 0;
    for (int t = 0; t < 2; t++) {
        memcpy(g + t * F, gu + t * 2 * F, (size_t)F * 4);
        mlxr_swiglu_f32_ref(g + t * F, gu + t * 2 * F + F, F);
        bad += cmp_q8_0(qh + t * F, dh + t * (F / 32), g + t * F, F, &steps);
    }
    for (int64_t i = 0; i < 2 * F; i++) {
        const double d = fabs((double)y[i] - g[i]);
        worst = fmax(worst, d / fmax(fabs((double)g[i]), 1e-30));
        if (d > 2e-6 * fabs((double)g[i]) + 1e-37) {
            CHECK(false, "swiglu [%lld]: %.9g vs %.9g", (long long)i, (double)y[i], (double)g[i]);
            break;
        }
    }
    CHECK(bad == 0 && steps <= 2 * F / 1000, "swiglu -> Q8_0: %d bad values, %d one-step differences", bad, steps);
    cudaFree(dq);
    cudaFree(dd);
    free(qh);
    free(dh);
    free(gu);
    fprintf(stderr, "  swiglu: max rel err %.2e; fused Q8_0 output: %d of %lld quants one step off\n", worst, steps,
            (long long)(2 * F));
    cudaFree(dxx);
    cudaFree(dg);
    cudaFree(du);
    free(x);
    free(y);
    free(g);
}

static void test_argmax(void) {
    const int64_t n = 32000;
    const int32_t R = 4;
    float *x = rand_f32(n * R, -5, 5);
    x[0 * n + 100] = 9.0f;                          /* row 0: one clear max */
    x[1 * n + 31999] = 9.0f;                        /* row 1: max at the end */
    x[2 * n + 7] = 9.0f, x[2 * n + 20000] = 9.0f;   /* row 2: a tie: the first wins */
    x[3 * n + 5] = NAN, x[3 * n + 12345] = 8.0f;    /* row 3: NaN never wins */
    float *dxx = dev_from(x, (size_t)(n * R) * 4);
    int32_t *dout = dev_from(NULL, (size_t)R * 4), out[4];
    synced(mlxr_argmax_f32_cuda(dxx, R, n, dout, 0), "argmax");
    to_host(out, dout, sizeof out);
    const int32_t want[4] = {100, 31999, 7, 12345};
    for (int r = 0; r < R; r++) CHECK(out[r] == want[r], "argmax row %d: %d, want %d", r, out[r], want[r]);
    cudaFree(dxx);
    cudaFree(dout);
    free(x);
}

/* ---- KV store + attention ---------------------------------------------------------------------- */

static void test_attention_case(int32_t n_head, int32_t n_kv, int32_t hd, int32_t n_ctx) {
    const int32_t kv_dim = n_kv * hd, n_seq = 2, T = 5;
    const int32_t pos[5] = {0, 127, 128, n_ctx - 1, 300 % n_ctx};
    const int32_t seq[5] = {0, 1, 0, 1, 0};
    const int64_t seq_stride = (int64_t)n_ctx * kv_dim, cache_n = n_seq * seq_stride;
    /* random cache contents (positions below each query's), then the batch's own K/V stored */
    uint16_t *kc = malloc((size_t)cache_n * 2), *vc = malloc((size_t)cache_n * 2);
    for (int64_t i = 0; i < cache_n; i++) {
        kc[i] = mlxr_fp32_to_fp16(test_rng_f32(&rng, -1, 1));
        vc[i] = mlxr_fp32_to_fp16(test_rng_f32(&rng, -1, 1));
    }
    float *kn = rand_f32((int64_t)T * kv_dim, -1, 1), *vn = rand_f32((int64_t)T * kv_dim, -1, 1);
    float *q = rand_f32((int64_t)T * n_head * hd, -1, 1);
    void *dk = dev_from(kc, (size_t)cache_n * 2), *dv = dev_from(vc, (size_t)cache_n * 2);
    float *dkn = dev_from(kn, (size_t)T * kv_dim * 4), *dvn = dev_from(vn, (size_t)T * kv_dim * 4);
    float *dq = dev_from(q, (size_t)T * n_head * hd * 4);
    int32_t *dp = dev_from(pos, sizeof pos), *ds = dev_from(seq, sizeof seq);
    mlxr_cuda_kv kv = {dk, dv, seq_stride, kv_dim};
    mlxr_cuda_att_shape sh = {n_head, n_kv, hd, (n_ctx + MLXR_CUDA_ATT_SPLIT - 1) / MLXR_CUDA_ATT_SPLIT};
    const size_t parts = (size_t)T * n_head * sh.n_split;
    float *po = dev_from(NULL, parts * hd * 4), *pml = dev_from(NULL, parts * 2 * 4);
    float *dout = dev_from(NULL, (size_t)T * n_head * hd * 4);
    synced(mlxr_kv_store_cuda(&kv, dkn, dvn, kv_dim, dp, ds, T, 0), "kv store");
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, dout, NULL, NULL};
    synced(mlxr_attention_cuda(&kv, &sh, dq, (int64_t)n_head * hd, dp, ds, T, po, pml, &of, 0), "attention");
    float *out = malloc((size_t)T * n_head * hd * 4);
    to_host(out, dout, (size_t)T * n_head * hd * 4);
    if (hd % 32 == 0) { /* the same, encoded to Q8_0 for the next product: the f32 result's quantization */
        const int64_t w = (int64_t)n_head * hd;
        int8_t *dq8 = dev_from(NULL, (size_t)(T * w));
        float *dd8 = dev_from(NULL, (size_t)(T * w / 32) * 4);
        const mlxr_cuda_out o8 = {MLXR_DTYPE_Q8_0, NULL, dq8, dd8};
        synced(mlxr_attention_cuda(&kv, &sh, dq, w, dp, ds, T, po, pml, &o8, 0), "attention q8_0");
        int8_t *q8 = malloc((size_t)(T * w));
        float *d8 = malloc((size_t)(T * w / 32) * 4);
        to_host(q8, dq8, (size_t)(T * w));
        to_host(d8, dd8, (size_t)(T * w / 32) * 4);
        int steps = 0;
        const int bad = cmp_q8_0(q8, d8, out, T * w, &steps);
        CHECK(bad == 0 && steps == 0, "attention -> Q8_0: %d bad, %d one-step differences", bad, steps);
        cudaFree(dq8);
        cudaFree(dd8);
        free(q8);
        free(d8);
    }
    /* the host cache gets the same stores; check the device's bytes equal them */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < kv_dim; i++) {
            const int64_t o = seq[t] * seq_stride + (int64_t)pos[t] * kv_dim + i;
            kc[o] = mlxr_fp32_to_fp16(kn[t * kv_dim + i]);
            vc[o] = mlxr_fp32_to_fp16(vn[t * kv_dim + i]);
        }
    uint16_t *kc2 = malloc((size_t)cache_n * 2);
    to_host(kc2, dk, (size_t)cache_n * 2);
    CHECK(!memcmp(kc, kc2, (size_t)cache_n * 2), "K cache after store differs");
    to_host(kc2, dv, (size_t)cache_n * 2);
    CHECK(!memcmp(vc, kc2, (size_t)cache_n * 2), "V cache after store differs");
    double worst = 0;
    double *sc = malloc((size_t)n_ctx * sizeof *sc);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            const int kvh = h / (n_head / n_kv);
            const float *qh = q + ((int64_t)t * n_head + h) * hd;
            const uint16_t *kb = kc + seq[t] * seq_stride + kvh * hd, *vb = vc + seq[t] * seq_stride + kvh * hd;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p <= pos[t]; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)mlxr_fp16_to_fp32(mlxr_fp32_to_fp16(qh[d])) * mlxr_fp16_to_fp32(kb[(int64_t)p * kv_dim + d]);
                sc[p] = s / sqrt((double)hd);
                mx = fmax(mx, sc[p]);
            }
            for (int p = 0; p <= pos[t]; p++) sum += sc[p] = exp(sc[p] - mx);
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int p = 0; p <= pos[t]; p++) o += sc[p] * mlxr_fp16_to_fp32(vb[(int64_t)p * kv_dim + d]);
                o /= sum;
                worst = fmax(worst, fabs(o - out[((int64_t)t * n_head + h) * hd + d]));
            }
        }
    CHECK(worst <= 2e-5, "attention %d/%d heads, head_dim %d, n_ctx %d: max |d| %.2e", n_head, n_kv, hd,
          n_ctx, worst);
    fprintf(stderr, "  attention heads %2d/%-2d head_dim %3d n_ctx %4d: max |d| %.2e\n", n_head, n_kv, hd,
            n_ctx, worst);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dkn);
    cudaFree(dvn);
    cudaFree(dq);
    cudaFree(dp);
    cudaFree(ds);
    cudaFree(po);
    cudaFree(pml);
    cudaFree(dout);
    free(kc);
    free(vc);
    free(kc2);
    free(kn);
    free(vn);
    free(q);
    free(out);
    free(sc);
}

/* The tensor-core prefill attention: T queries of sequence 1 (of 2) at positions p0.., in order or
 * shuffled, against softmax(f16(q).K) V in double; tolerance 2e-5 absolute on values of size ~1 as
 * for the split kernel (f32 probabilities), 1e-3 for the f16 output (its rounding: 2^-11). */
static void test_attention_prefill_case(int32_t n_head, int32_t n_kv, int32_t hd, int32_t n_ctx, int32_t T,
                                        int32_t p0, bool shuffle) {
    const int32_t kv_dim = n_kv * hd, n_seq = 2;
    const int64_t seq_stride = (int64_t)n_ctx * kv_dim, cache_n = n_seq * seq_stride;
    uint16_t *kc = malloc((size_t)cache_n * 2), *vc = malloc((size_t)cache_n * 2);
    for (int64_t i = 0; i < cache_n; i++) {
        kc[i] = mlxr_fp32_to_fp16(test_rng_f32(&rng, -1, 1));
        vc[i] = mlxr_fp32_to_fp16(test_rng_f32(&rng, -1, 1));
    }
    int32_t *pos = malloc((size_t)T * 4), *seq = malloc((size_t)T * 4);
    for (int32_t t = 0; t < T; t++) {
        pos[t] = p0 + t;
        seq[t] = 1;
    }
    for (int32_t t = T - 1; shuffle && t > 0; t--) {
        const int32_t j = (int32_t)(test_rng_u64(&rng) % (uint64_t)(t + 1)), x = pos[t];
        pos[t] = pos[j];
        pos[j] = x;
    }
    const int64_t w = (int64_t)n_head * hd;
    float *q = rand_f32((int64_t)T * w, -2, 2);
    void *dk = dev_from(kc, (size_t)cache_n * 2), *dv = dev_from(vc, (size_t)cache_n * 2);
    float *dq = dev_from(q, (size_t)(T * w) * 4), *dout = dev_from(NULL, (size_t)(T * w) * 4);
    int32_t *dp = dev_from(pos, (size_t)T * 4), *ds = dev_from(seq, (size_t)T * 4);
    uint16_t *dh = dev_from(NULL, (size_t)(T * w) * 2);
    const mlxr_cuda_kv kv = {dk, dv, seq_stride, kv_dim};
    const mlxr_cuda_att_shape sh = {n_head, n_kv, hd, (n_ctx + MLXR_CUDA_ATT_SPLIT - 1) / MLXR_CUDA_ATT_SPLIT};
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, dout, NULL, NULL}, oh = {MLXR_DTYPE_F16, NULL, dh, NULL};
    CHECK(mlxr_attention_prefill_supported_cuda(&sh, MLXR_DTYPE_F32), "prefill attention supports head_dim %d", hd);
    synced(mlxr_attention_prefill_cuda(&kv, &sh, dq, w, dp, ds, T, &of, 0), "prefill attention");
    synced(mlxr_attention_prefill_cuda(&kv, &sh, dq, w, dp, ds, T, &oh, 0), "prefill attention f16");
    float *out = malloc((size_t)(T * w) * 4);
    uint16_t *outh = malloc((size_t)(T * w) * 2);
    to_host(out, dout, (size_t)(T * w) * 4);
    to_host(outh, dh, (size_t)(T * w) * 2);
    double worst = 0, worsth = 0;
    double *sc = malloc((size_t)n_ctx * sizeof *sc);
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_head; h++) {
            const int kvh = h / (n_head / n_kv);
            const float *qh = q + (int64_t)t * w + (int64_t)h * hd;
            const uint16_t *kb = kc + seq[t] * seq_stride + kvh * hd, *vb = vc + seq[t] * seq_stride + kvh * hd;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p <= pos[t]; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)mlxr_fp16_to_fp32(mlxr_fp32_to_fp16(qh[d])) * mlxr_fp16_to_fp32(kb[(int64_t)p * kv_dim + d]);
                sc[p] = s / sqrt((double)hd);
                mx = fmax(mx, sc[p]);
            }
            for (int p = 0; p <= pos[t]; p++) sum += sc[p] = exp(sc[p] - mx);
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int p = 0; p <= pos[t]; p++) o += sc[p] * mlxr_fp16_to_fp32(vb[(int64_t)p * kv_dim + d]);
                o /= sum;
                const int64_t i = (int64_t)t * w + (int64_t)h * hd + d;
                worst = fmax(worst, fabs(o - out[i]));
                worsth = fmax(worsth, fabs(o - mlxr_fp16_to_fp32(outh[i])));
            }
        }
    CHECK(worst <= 2e-5 && worsth <= 1e-3,
          "prefill attention %d/%d heads, head_dim %d, T %d from %d%s: max |d| %.2e (f16 out %.2e)", n_head, n_kv, hd,
          T, p0, shuffle ? " shuffled" : "", worst, worsth);
    fprintf(stderr, "  prefill attention heads %2d/%-2d head_dim %3d T %3d from %4d%s: max |d| %.2e (f16 out %.2e)\n",
            n_head, n_kv, hd, T, p0, shuffle ? " shuffled" : "", worst, worsth);
    void *dbufs[] = {dk, dv, dq, dout, dp, ds, dh};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
    free(kc);
    free(vc);
    free(pos);
    free(seq);
    free(q);
    free(out);
    free(outh);
    free(sc);
}

static void test_attention(void) {
    test_attention_case(4, 4, 64, 512);   /* MHA */
    test_attention_case(8, 2, 64, 512);   /* GQA, 4 query heads per KV head */
    test_attention_case(32, 8, 128, 1024); /* Llama-3-like group of 4, head_dim 128 */
    test_attention_case(8, 1, 128, 256);  /* MQA: one K/V read serves 8 heads */
    test_attention_prefill_case(4, 4, 128, 512, 200, 0, false);   /* MHA, a prompt from 0, partial tile */
    test_attention_prefill_case(8, 2, 64, 512, 77, 300, false);   /* GQA, a continuation of a cached prefix */
    test_attention_prefill_case(8, 4, 128, 1024, 130, 513, true); /* positions in any order */
    test_attention_prefill_case(4, 1, 64, 256, 9, 0, false);      /* MQA, one warp's worth of queries */
}

static void test_errors(void) {
    mlxr_err err = {0};
    mlxr_status st = mlxr_cuda_status(cudaErrorInvalidValue, &err, "probe", __FILE__, __LINE__);
    CHECK(st == MLXR_ERR_CUDA && strstr(err.msg, "probe") && strlen(err.msg) > 8,
          "CUDA error becomes MLXR_ERR_CUDA with a message: '%s'", err.msg);
    void *p = NULL;
    st = mlxr_cuda_status(cudaMalloc(&p, (size_t)1 << 62), &err, "cudaMalloc(4 EiB)", __FILE__, __LINE__);
    CHECK(st == MLXR_ERR_NOMEM, "huge cudaMalloc: status %d (%s)", (int)st, err.msg);
    cudaGetLastError();
    mlxr_cuda_mat m = {MLXR_DTYPE_Q2_K, 256, 1, NULL, NULL};
    CHECK(mlxr_matmul_cuda(&m, NULL, NULL, 1, NULL, 256, 0) == cudaErrorInvalidValue, "bad type rejected");
}

int main(void) {
    const int32_t n_dev = mlxr_gpu_count();
    if (n_dev < 1) {
        printf("cuda_test_kernels: SKIP: no CUDA device\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    fprintf(stderr, "device 0: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
            prop.multiProcessorCount);
    rng = test_seed();
    test_quantize();
    test_matmul();
    test_rmsnorm();
    test_rope();
    test_rope_kv();
    test_softmax_swiglu();
    test_argmax();
    test_attention();
    test_errors();
    return test_finish("cuda_test_kernels");
}
