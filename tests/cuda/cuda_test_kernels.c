/*
 * cuda_test_kernels.c - every CUDA kernel against the scalar CPU reference on fresh random inputs
 * (seed printed; MLXR_SEED reproduces). Exits 77 (ctest: skipped) when no CUDA device is present.
 *
 * Tolerances, and why:
 *   - activation encodings (Q8_0, its f16 form, F16), embedding lookup (every weight type,
 *     K-quants included), KV store (f16 rounding), argmax: exact (same arithmetic, same
 *     rounding: byte/bit equality).
 *   - matrix products on CUDA cores (decode, batches of up to 32): |y - ref| <= 1e-5 * sum_i
 *     |w_i x_i| + 1e-6 against the CPU path's encode + vec_dot_ref. The integer block sums are
 *     exact; only the order of the f32 additions differs (the reference adds float dot products
 *     in double for F16/F32, the device in f32).
 *   - the prefill GEMM (tensor cores, weights dequantized to f16): 2e-5 * sum_i |w_i x_i| + 1e-6
 *     against sum f16(w_i) * f16(x_i) in double, w_i the reference dequantization and x_i the
 *     CPU encoding's values (f32 sums in the tensor cores' order).
 *   - RMSNorm, softmax, SwiGLU: relative 2e-6 (one or two ulp: double sums in another order,
 *     device expf within 2 ulp of glibc's); their Q8_0 outputs: the reference quantization
 *     of the reference values, a quant one step off allowed for 1 in 1000 (values on a rounding
 *     boundary).
 *   - fused gate|up + SwiGLU (decode): bit-identical to the product followed by SwiGLU, and within
 *     the product's tolerance propagated through silu(g) * u of the CPU reference.
 *   - the decode chain on one stream with programmatic dependent launch: bit-identical to the
 *     same launches with a sync after each.
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
#include "format/dtype.h"
#include "kernels/kernels.h"
#include "kernels/mlx_affine.h"
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

/* Q8_0 (int8 + f32 scales) and F16_Q8_0 (f16(d * q)) against the reference quantizer, F16
 * against mlxr_fp32_to_fp16. */
static void test_quantize(void) {
    const int64_t n = 4096;
    const int32_t T = 3;
    float *x = rand_f32(n * T, -3, 3);
    for (int i = 0; i < 32; i++) x[64 + i] = 0.0f;        /* an all-zero Q8_0 block: scale 0 */
    for (int i = 0; i < 32; i++) x[128 + i] = 1e-3f * i;  /* a tiny block */
    x[200] = -7.5f;                                        /* a half-way value's block */
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

    /* F16 conversion: round to nearest even like mlxr_fp32_to_fp16 */
    synced(mlxr_encode_cuda(MLXR_CUDA_ENC_F16, dx, n, T, dq, NULL, 0), "to f16");
    to_host(h, dq, (size_t)(n * T) * 2);
    bad = 0;
    for (int64_t i = 0; i < n * T; i++) bad += h[i] != mlxr_fp32_to_fp16(x[i]);
    CHECK(bad == 0, "F16 conversion: %d values differ", bad);
    fprintf(stderr, "  encode Q8_0 / F16_Q8_0 / F16: exact over %lld values\n", (long long)(n * T));
    cudaFree(dx);
    cudaFree(dq);
    cudaFree(dd);
    free(x);
    free(q);
    free(d);
    free(h);
    free(ref);
}

/* ---- matrix products and embedding ------------------------------------------------------------ */

static bool is_kquant(mlxr_dtype t) {
    return t == MLXR_DTYPE_Q4_K || t == MLXR_DTYPE_Q5_K || t == MLXR_DTYPE_Q6_K;
}

/* The activation encoding the device's CUDA-core products take for `type` weights (matvec.h):
 * Q8_0 for the quantized types (K-quants included, where the CPU engine takes Q8_K). */
static mlxr_dtype ref_act_type(mlxr_dtype type) {
    return type == MLXR_DTYPE_Q8_0 || type == MLXR_DTYPE_Q4_0 || is_kquant(type) ? MLXR_DTYPE_Q8_0 : type;
}

static size_t row_bytes_of(mlxr_dtype type, int64_t ne0) {
    switch (type) {
    case MLXR_DTYPE_Q8_0: return (size_t)ne0 / 32 * 34;
    case MLXR_DTYPE_Q4_0: return (size_t)ne0 / 32 * 18;
    case MLXR_DTYPE_Q4_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q4_k);
    case MLXR_DTYPE_Q5_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q5_k);
    case MLXR_DTYPE_Q6_K: return (size_t)ne0 / 256 * sizeof(mlxr_block_q6_k);
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
    case MLXR_DTYPE_F16: return mlxr_to_float_f16_ref;
    default: return mlxr_to_float_f32_ref;
    }
}

/* The CPU reference product of one weight row with an encoded activation row (xenc, decoded in
 * xdec), and in *mag the sum of |w_i x_i| that scales its tolerance (wd: ne0 floats of scratch). */
static float ref_row_dot(mlxr_dtype type, const uint8_t *row, int64_t ne0, const void *xenc, const float *xdec,
                         float *wd, double *mag) {
    float y;
    dec_of(type)(row, wd, ne0);
    *mag = 0;
    double k = 0;
    for (int64_t i = 0; i < ne0; i++) {
        *mag += fabs((double)wd[i] * xdec[i]);
        k += (double)wd[i] * xdec[i];
    }
    if (is_kquant(type)) /* no CPU dot of K-quants with Q8_0 rows: the dequantized values, in double */
        y = (float)k;
    else
        dot_of(type)(ne0, &y, row, xenc);
    return y;
}

static float f16r(float v) {
    return mlxr_fp16_to_fp32(mlxr_fp32_to_fp16(v));
}

/*
 * y = w . x for T rows through mlxr_matmul_cuda (bm = 0) or the GEMM with a forced tile (bm 64 or
 * 128), against the CPU reference for the path taken:
 *   - integer / CUDA-core paths (encodings Q8_0, F16, F32): the CPU engine's own encode +
 *     vec_dot_ref on the GGUF rows; for K-quants (Q8_0 activations, which no CPU dot takes) the
 *     reference dequantized weights times the dequantized Q8_0 activations, in double;
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
                                  : MLXR_CUDA_ENC_F16_Q8_0)
                               : mlxr_cuda_act_enc(&m, T);
    const bool mmq = !bm && mlxr_mmq_supported_cuda(type, ne0, T);
    const bool gemm = bm || (!mmq && T > MLXR_CUDA_GEMM_MIN_T && mlxr_gemm_supported_cuda(type, ne0));
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
    const mlxr_dtype vt = ref_act_type(type);
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
            } else if (is_kquant(type)) { /* see ref_row_dot */
                for (int64_t i = 0; i < ne0; i++) ref += (double)wr[i] * xd[i];
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
            (long long)ne0, T, bm == 64 ? "gemm 64" : bm == 128 ? "gemm 128" : gemm ? "gemm" : mmq ? "mmq" : "cuda cores",
            worst);

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
        for (int rows = 2; rows <= 8; rows *= 2) { /* every decode block shape (2, 4, 8 rows) */
            mlxr_matvec_rows_cuda(rows);
            test_matmul_case(t, 256, 37, 1, 0);      /* rows not a multiple of the tile */
            test_matmul_case(t, 4096 + k, 64, 1, 0); /* row length not a multiple of 512 */
        }
        mlxr_matvec_rows_cuda(0);
        test_matmul_case(t, 1024, 50, 7, 0);         /* batched CUDA-core path, tokens not a multiple of 8 */
        test_matmul_case(t, 1024, 50, 13, 0);        /* batched CUDA-core path, two token tiles */
        test_matmul_case(t, 1024, 50, 32, 0);        /* the largest batch on CUDA cores */
        test_matmul_case(t, 4096 + k, 37, 2, 0);     /* two tokens; a partial last quad (mmq) */
        test_matmul_case(t, 3 * k, 33, 9, 0);        /* fewer blocks than warps, 3 row tiles */
        test_matmul_case(t, 11008, 40, 24, 0);       /* a long row (Wdown's), three token tiles */
        test_matmul_case(t, 1024 + k, 35, 57, 0);    /* mmq: two block rows of tokens, the second partial */
        test_matmul_case(t, 1024, 50, 64, 0);        /* the largest batch of mmq */
        test_matmul_case(t, 1024, 50, 40, 0);        /* prefill path, one partial tile */
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

/*
 * The fused gate|up + SwiGLU decode product (mlxr_matmul_swiglu_cuda) on a [2n][ne0] matrix:
 *   - bit-identical to mlxr_matmul_cuda into a [2n] row followed by mlxr_swiglu_cuda (both checked
 *     against the CPU reference by test_matmul and test_softmax_swiglu), for every output type
 *     and every decode block shape, twice in a row (the group counters reset themselves);
 *   - its f32 output against the CPU reference silu(g) * u of the engine's encode + vec_dot_ref
 *     sums g, u: each sum is within 1e-5 of its sum |w x| (G, U; see test_matmul_case) and
 *     |silu'| <= 1.1, so |h - ref| <= 2e-5 (|u| G + (|g| + 1) U) + 1e-6.
 */
static void test_matmul_swiglu_case(mlxr_dtype type, int64_t ne0, int64_t n) {
    const char *tn = mlxr_dtype_name(type);
    float *w = rand_f32(ne0 * 2 * n, -1, 1), *x = rand_f32(ne0, -2, 2);
    size_t rb;
    uint8_t *rows = make_rows(type, w, ne0, 2 * n, &rb);
    mlxr_cuda_mat m;
    mlxr_err err = {0};
    if (mlxr_cuda_mat_upload(&m, type, rows, ne0, 2 * n, rb, &err) != MLXR_OK) {
        CHECK(false, "upload %s: %s", tn, err.msg);
        free(w), free(x), free(rows);
        return;
    }
    const mlxr_cuda_enc e = mlxr_cuda_act_enc(&m, 1);
    float *dx = dev_from(x, (size_t)ne0 * 4);
    void *dq = dev_from(NULL, (size_t)ne0 * 2);
    float *dd = dev_from(NULL, (size_t)(ne0 / 32 + 1) * 4);
    synced(mlxr_encode_cuda(e, dx, ne0, 1, dq, dd, 0), "encode");
    const void *xin = e == MLXR_CUDA_ENC_F32 ? (const void *)dx : dq;
    float *dgu = dev_from(NULL, (size_t)(2 * n) * 4), *dy = dev_from(NULL, (size_t)n * 4);
    float *dy2 = dev_from(NULL, (size_t)n * 4);
    void *oq = dev_from(NULL, (size_t)n * 2), *oq2 = dev_from(NULL, (size_t)n * 2);
    float *od = dev_from(NULL, (size_t)(n / 32) * 4), *od2 = dev_from(NULL, (size_t)(n / 32) * 4);
    uint8_t *h1 = malloc((size_t)n * 4), *h2 = malloc((size_t)n * 4);
    const mlxr_dtype outs[3] = {MLXR_DTYPE_F32, MLXR_DTYPE_F16, MLXR_DTYPE_Q8_0};
    int bad = 0, runs = 0;
    for (int rows_pb = 2; rows_pb <= 8; rows_pb *= 2) {
        mlxr_matvec_rows_cuda(rows_pb);
        for (int k = 0; k < 3; k++) {
            const mlxr_dtype ot = outs[k];
            if (!mlxr_matmul_swiglu_supported_cuda(&m, 1, ot)) continue;
            const mlxr_cuda_out o1 = {ot, dy, oq, od}, o2 = {ot, dy2, oq2, od2};
            synced(mlxr_matmul_cuda(&m, xin, dd, 1, dgu, 2 * n, 0), "gate|up");
            synced(mlxr_swiglu_cuda(dgu, dgu + n, 2 * n, n, 1, &o1, NULL, 0), "swiglu");
            for (int rep = 0; rep < 2; rep++) {
                cudaMemset(dy2, 0, (size_t)n * 4);
                cudaMemset(oq2, 0, (size_t)n * 2);
                synced(mlxr_matmul_swiglu_cuda(&m, xin, dd, &o2, 0), "gate|up + swiglu");
                runs++;
                const size_t qbytes = ot == MLXR_DTYPE_F16 ? (size_t)n * 2 : (size_t)n;
                if (ot == MLXR_DTYPE_F32) {
                    to_host(h1, dy, (size_t)n * 4);
                    to_host(h2, dy2, (size_t)n * 4);
                    bad += memcmp(h1, h2, (size_t)n * 4) != 0;
                }
                if (ot != MLXR_DTYPE_F32) {
                    to_host(h1, oq, qbytes);
                    to_host(h2, oq2, qbytes);
                    bad += memcmp(h1, h2, qbytes) != 0;
                }
                if (ot == MLXR_DTYPE_Q8_0) {
                    const size_t nd = (size_t)(n / 32) * 4;
                    to_host(h1, od, nd);
                    to_host(h2, od2, nd);
                    bad += memcmp(h1, h2, nd) != 0;
                }
                if (bad) {
                    CHECK(false, "gate|up + swiglu %s -> %s, %d rows per block, launch %d: not product + swiglu",
                          tn, mlxr_dtype_name(ot), rows_pb, rep);
                    break;
                }
            }
        }
    }
    mlxr_matvec_rows_cuda(0);
    CHECK(!mlxr_matmul_swiglu_supported_cuda(&m, 1, MLXR_DTYPE_Q8_K), "gate|up + swiglu %s: no Q8_K output", tn);
    /* f32 output against the CPU reference */
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, dy2, NULL, NULL};
    synced(mlxr_matmul_swiglu_cuda(&m, xin, dd, &of, 0), "gate|up + swiglu f32");
    float *y = malloc((size_t)n * 4);
    to_host(y, dy2, (size_t)n * 4);
    const mlxr_dtype vt = ref_act_type(type);
    size_t xrb;
    uint8_t *xenc = make_rows(vt, x, ne0, 1, &xrb);
    float *wd = malloc((size_t)ne0 * 4), *xd = malloc((size_t)ne0 * 4);
    dec_of(vt)(xenc, xd, ne0);
    double worst = 0;
    int rbad = 0;
    for (int64_t j = 0; j < n; j++) {
        double mg, mu;
        const float gs = ref_row_dot(type, rows + (size_t)j * rb, ne0, xenc, xd, wd, &mg);
        float us = ref_row_dot(type, rows + (size_t)(n + j) * rb, ne0, xenc, xd, wd, &mu);
        float href = gs;
        mlxr_swiglu_f32_ref(&href, &us, 1);
        const double tol = 2e-5 * (fabs((double)us) * mg + (fabs((double)gs) + 1.0) * mu) + 1e-6;
        const double d = fabs((double)y[j] - href);
        worst = fmax(worst, d / tol);
        if (d > tol && rbad++ < 3)
            CHECK(false, "gate|up + swiglu %s output %lld: %.7g vs ref %.7g", tn, (long long)j, (double)y[j],
                  (double)href);
    }
    fprintf(stderr,
            "  gate|up + swiglu %-4s %lld x %lld: %d fused launches identical to product + swiglu; "
            "vs CPU ref %.2f of tolerance\n",
            tn, (long long)(2 * n), (long long)ne0, runs, worst);
    mlxr_cuda_mat_free(&m);
    void *dbufs[] = {dx, dq, dd, dgu, dy, dy2, oq, oq2, od, od2};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
    free(w), free(x), free(rows), free(h1), free(h2), free(y), free(xenc), free(wd), free(xd);
}

static void test_matmul_swiglu(void) {
    test_matmul_swiglu_case(MLXR_DTYPE_Q4_0, 4096, 512);
    test_matmul_swiglu_case(MLXR_DTYPE_Q8_0, 1024, 256 + 32);
    test_matmul_swiglu_case(MLXR_DTYPE_F16, 1024, 264);
    test_matmul_swiglu_case(MLXR_DTYPE_F32, 512, 256);
    test_matmul_swiglu_case(MLXR_DTYPE_Q4_K, 2048, 512);
    test_matmul_swiglu_case(MLXR_DTYPE_Q6_K, 1024, 256);
    mlxr_err err = {0};
    mlxr_cuda_mat m;
    float *w = rand_f32(256 * 100, -1, 1);
    size_t rb;
    uint8_t *rows = make_rows(MLXR_DTYPE_Q8_0, w, 256, 100, &rb);
    if (mlxr_cuda_mat_upload(&m, MLXR_DTYPE_Q8_0, rows, 256, 100, rb, &err) == MLXR_OK) {
        CHECK(!mlxr_matmul_swiglu_supported_cuda(&m, 1, MLXR_DTYPE_Q8_0), "n = 50 is not whole Q8_0 groups");
        CHECK(!mlxr_matmul_swiglu_supported_cuda(&m, 2, MLXR_DTYPE_F32), "decode only");
        mlxr_cuda_mat_free(&m);
    }
    free(w);
    free(rows);
}

/*
 * The FFN half of a decode step, 6 times over, on a non-blocking stream with no host syncs (so
 * with programmatic dependent launch the kernels overlap their neighbours as in the CUDA graph):
 * add+RMSNorm -> Q8_0, fused gate|up + SwiGLU -> Q8_0, down product; the same with a stream sync
 * after every launch must give bit-identical x.
 */
static void test_pdl_chain(void) {
    const int64_t n = 1024, F = 2048;
    const int steps = 6;
    float *wg = rand_f32(n * 2 * F, -1, 1), *wdn = rand_f32(F * n, -1, 1), *x = rand_f32(n, -2, 2);
    float *g = rand_f32(n, 0.5f, 1.5f);
    size_t rb1, rb2;
    uint8_t *r1 = make_rows(MLXR_DTYPE_Q4_0, wg, n, 2 * F, &rb1), *r2 = make_rows(MLXR_DTYPE_Q4_0, wdn, F, n, &rb2);
    mlxr_cuda_mat mgu, mdn;
    mlxr_err err = {0};
    if (mlxr_cuda_mat_upload(&mgu, MLXR_DTYPE_Q4_0, r1, n, 2 * F, rb1, &err) != MLXR_OK ||
        mlxr_cuda_mat_upload(&mdn, MLXR_DTYPE_Q4_0, r2, F, n, rb2, &err) != MLXR_OK) {
        CHECK(false, "upload: %s", err.msg);
        return;
    }
    cudaStream_t st;
    cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    float *dg = dev_from(g, (size_t)n * 4), *dxx = dev_from(NULL, (size_t)n * 4), *ddx = dev_from(NULL, (size_t)n * 4);
    float *dxn = dev_from(NULL, (size_t)n * 4), *dh = dev_from(NULL, (size_t)F * 4);
    void *xq = dev_from(NULL, (size_t)n), *hq = dev_from(NULL, (size_t)F);
    float *xd = dev_from(NULL, (size_t)n / 32 * 4), *hd = dev_from(NULL, (size_t)F / 32 * 4);
    float *res[2];
    for (int mode = 0; mode < 2; mode++) {
        cudaMemcpy(dxx, x, (size_t)n * 4, cudaMemcpyHostToDevice);
        cudaError_t e = cudaSuccess;
        const mlxr_cuda_out ox = {MLXR_DTYPE_Q8_0, dxn, xq, xd}, oh = {MLXR_DTYPE_Q8_0, dh, hq, hd};
        for (int s = 0; s < steps && e == cudaSuccess; s++) {
            e = mlxr_add_rmsnorm_cuda(dxx, s ? ddx : NULL, dg, &ox, NULL, 1, n, 1e-5f, st);
            if (mode && e == cudaSuccess) e = cudaStreamSynchronize(st);
            if (e == cudaSuccess) e = mlxr_matmul_swiglu_cuda(&mgu, xq, xd, &oh, st);
            if (mode && e == cudaSuccess) e = cudaStreamSynchronize(st);
            if (e == cudaSuccess) e = mlxr_matmul_cuda(&mdn, hq, hd, 1, ddx, n, st);
            if (mode && e == cudaSuccess) e = cudaStreamSynchronize(st);
        }
        if (e == cudaSuccess) e = cudaStreamSynchronize(st);
        CHECK(e == cudaSuccess, "decode chain (mode %d): %s", mode, cudaGetErrorString(e));
        res[mode] = malloc((size_t)n * 8);
        to_host(res[mode], dxx, (size_t)n * 4);
        to_host(res[mode] + n, ddx, (size_t)n * 4);
    }
    CHECK(!memcmp(res[0], res[1], (size_t)n * 8), "decode chain without syncs differs from the synced one");
    fprintf(stderr, "  decode chain (rmsnorm, gate|up + swiglu, down) x %d on one stream, PDL %s: as synced\n",
            steps, mlxr_cuda_pdl_enabled() ? "on" : "off");
    cudaStreamDestroy(st);
    mlxr_cuda_mat_free(&mgu);
    mlxr_cuda_mat_free(&mdn);
    void *dbufs[] = {dg, dxx, ddx, dxn, dh, xq, hq, xd, hd};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
    free(wg), free(wdn), free(x), free(g), free(r1), free(r2), free(res[0]), free(res[1]);
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

/* RMSNorm and SwiGLU store through put_block32 (F32, F16, Q8_0 only): any other output type,
 * Q8_K (the CPU engine's K-quant activations) included, is refused rather than written as f32. */
static void test_out_types_refused(void) {
    const int64_t n = 256;
    float *dx = dev_from(NULL, (size_t)n * 4), *dg = dev_from(NULL, (size_t)n * 4);
    float *dgu = dev_from(NULL, (size_t)(2 * n) * 4), *dy = dev_from(NULL, (size_t)n * 4);
    float *dd = dev_from(NULL, (size_t)(n / 32) * 4);
    int8_t *dq = dev_from(NULL, (size_t)n);
    const mlxr_dtype bad[2] = {MLXR_DTYPE_Q8_K, MLXR_DTYPE_Q4_0};
    for (int k = 0; k < 2; k++) {
        const mlxr_cuda_out o = {bad[k], dy, dq, dd};
        const char *tn = mlxr_dtype_name(bad[k]);
        CHECK(mlxr_add_rmsnorm_cuda(dx, NULL, dg, &o, NULL, 1, n, 1e-5f, 0) == cudaErrorInvalidValue,
              "rmsnorm -> %s refused", tn);
        CHECK(mlxr_swiglu_cuda(dgu, dgu + n, 2 * n, n, 1, &o, NULL, 0) == cudaErrorInvalidValue,
              "swiglu -> %s refused", tn);
    }
    synced(cudaSuccess, "after the refused launches");
    void *dbufs[] = {dx, dg, dgu, dy, dd, dq};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
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
/* A paged cache (attention.h) for n_seq sequences of n_ctx positions: the pool's blocks are handed
 * out in a random order, so a sequence's consecutive positions sit in scattered blocks, and the
 * host references address rows through the same table. */
typedef struct pages {
    int32_t *table, *dtable; /* host, device: [n_seq][max_blocks] */
    int32_t max_blocks;
} pages;

/* Pool rows of pages_new(n_seq, n_ctx): whole blocks, so more than n_seq * n_ctx when n_ctx is
 * not a multiple of the block (a cache sized n_seq * n_ctx rows would be read past its end). */
static int64_t pages_rows(int32_t n_seq, int32_t n_ctx) {
    return (int64_t)n_seq * ((n_ctx + MLXR_CUDA_KV_BLOCK - 1) / MLXR_CUDA_KV_BLOCK) * MLXR_CUDA_KV_BLOCK;
}

static pages pages_new(int32_t n_seq, int32_t n_ctx) {
    pages pg;
    pg.max_blocks = (n_ctx + MLXR_CUDA_KV_BLOCK - 1) / MLXR_CUDA_KV_BLOCK;
    const int32_t n = n_seq * pg.max_blocks;
    pg.table = malloc((size_t)n * 4);
    for (int32_t i = 0; i < n; i++) pg.table[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        const int32_t j = (int32_t)(test_rng_u64(&rng) % (uint64_t)(i + 1)), x = pg.table[i];
        pg.table[i] = pg.table[j];
        pg.table[j] = x;
    }
    pg.dtable = dev_from(pg.table, (size_t)n * 4);
    return pg;
}

static void pages_free(pages *pg) {
    free(pg->table);
    cudaFree(pg->dtable);
}

/* Element offset of (s, p) in a layer's K or V rows of kv_dim values. */
static int64_t page_off(const pages *pg, int32_t s, int32_t p, int32_t kv_dim) {
    return ((int64_t)pg->table[s * pg->max_blocks + p / MLXR_CUDA_KV_BLOCK] * MLXR_CUDA_KV_BLOCK +
            p % MLXR_CUDA_KV_BLOCK) * kv_dim;
}

/* The reference attention of one query head in double: softmax(f16(q) . K / sqrt(hd)) V over
 * positions 0..pos of sequence s, K/V of KV head kvh read through the paged table; o: hd values,
 * sc: pos + 1 scratch. */
static void att_ref(const pages *pg, const uint16_t *kc, const uint16_t *vc, int32_t kv_dim, int32_t hd,
                    int kvh, const float *qh, int32_t s, int32_t pos, double *sc, double *o) {
    const uint16_t *kb = kc + kvh * hd, *vb = vc + kvh * hd; /* + page_off of each position */
    double mx = -INFINITY, sum = 0;
    for (int p = 0; p <= pos; p++) {
        double dot = 0;
        for (int d = 0; d < hd; d++)
            dot += (double)mlxr_fp16_to_fp32(mlxr_fp32_to_fp16(qh[d])) * mlxr_fp16_to_fp32(kb[page_off(pg, s, p, kv_dim) + d]);
        sc[p] = dot / sqrt((double)hd);
        mx = fmax(mx, sc[p]);
    }
    for (int p = 0; p <= pos; p++) sum += sc[p] = exp(sc[p] - mx);
    for (int d = 0; d < hd; d++) {
        double v = 0;
        for (int p = 0; p <= pos; p++) v += sc[p] * mlxr_fp16_to_fp32(vb[page_off(pg, s, p, kv_dim) + d]);
        o[d] = v / sum;
    }
}

/* With `scaled` (one token): the deferred RMSNorm scale of a decode step (mlxr_cuda_rms), from
 * integer partial sums, whose double sum is exact in any order: the reference scales q, k, v. */
static void rope_kv_case(int32_t T, const int32_t *pos, const int32_t *seq, bool scaled) {
    const int32_t n_head = 8, n_kv = 2, hd = 64, n_rot = 32, n_ctx = 64, n_seq = 2;
    const int32_t qd = n_head * hd, kvd = n_kv * hd, W = qd + 2 * kvd;
    float *qkv = rand_f32((int64_t)T * W, -2, 2);
    float parts[8], sc = 1.0f;
    double sum = 0;
    for (int i = 0; i < 8; i++) sum += parts[i] = (float)(1 + (test_rng_u64(&rng) % 500));
    if (scaled) sc = 1.0f / sqrtf((float)(sum / 256.0) + 1e-5f);
    float *dparts = dev_from(parts, sizeof parts);
    const mlxr_cuda_rms rms = {dparts, 256, 1e-5f};
    float *dqkv = dev_from(qkv, (size_t)T * W * 4);
    int32_t *dp = dev_from(pos, (size_t)T * 4), *ds = dev_from(seq, (size_t)T * 4);
    const int64_t cache_n = pages_rows(n_seq, n_ctx) * kvd;
    void *dk = dev_from(NULL, (size_t)cache_n * 2), *dv = dev_from(NULL, (size_t)cache_n * 2);
    cudaMemset(dk, 0, (size_t)cache_n * 2);
    cudaMemset(dv, 0, (size_t)cache_n * 2);
    pages pg = pages_new(n_seq, n_ctx);
    mlxr_cuda_kv kv = {dk, dv, pg.dtable, pg.max_blocks, kvd};
    const float ts = powf(10000.0f, -2.0f / (float)n_rot);
    synced(mlxr_rope_kv_store_cuda(dqkv, dqkv + qd, dqkv + qd + kvd, W, n_head, n_kv, hd, n_rot, dp, ds, T, ts, &kv,
                                   scaled ? &rms : NULL, 0),
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
        float *orig = malloc((size_t)W * 4);
        memcpy(orig, q, (size_t)W * 4);
        if (scaled)
            for (int i = 0; i < W; i++) q[i] *= sc;
        mlxr_rope_f32_ref(q, n_head, hd, n_rot, pos[t], 10000.0f, cs);
        mlxr_rope_f32_ref(k, n_kv, hd, n_rot, pos[t], 10000.0f, cs);
        for (int i = 0; i < qd; i++) worst = fmax(worst, fabs((double)q[i] - out[t * W + i]));
        for (int i = 0; i < 2 * kvd; i++) /* k and v rows themselves are left unchanged */
            bad += out[t * W + qd + i] != orig[qd + i] && i >= kvd;
        free(orig);
        const int64_t o = page_off(&pg, seq[t], pos[t], kvd);
        for (int i = 0; i < kvd; i++) {
            const float kr = mlxr_fp16_to_fp32(kc[o + i]);
            worst = fmax(worst, fabs((double)kr - k[i]) - fabs((double)k[i]) / 1024.0);
            bad += vc[o + i] != mlxr_fp32_to_fp16(v[i]);
        }
    }
    CHECK(worst <= 2e-5, "rope+kv%s: max |d| beyond f16 rounding %.2e", scaled ? " scaled" : "", worst);
    CHECK(bad == 0, "rope+kv%s: %d V cache values (or V rows) differ", scaled ? " scaled" : "", bad);
    fprintf(stderr, "  rope + kv store fused%s: max |d| %.2e (beyond one f16 step for K)\n",
            scaled ? ", norm scale deferred" : "", worst);
    cudaFree(dparts);
    pages_free(&pg);
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

static void test_rope_kv(void) {
    const int32_t pos[3] = {0, 5, 63}, seq[3] = {1, 0, 1}, pos1[1] = {37}, seq1[1] = {1};
    rope_kv_case(3, pos, seq, false);
    rope_kv_case(1, pos1, seq1, true);
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
    synced(mlxr_swiglu_cuda(dg, dg + F, 2 * F, F, 2, &of, NULL, 0), "swiglu");
    synced(mlxr_swiglu_cuda(dg, dg + F, 2 * F, F, 2, &oq, NULL, 0), "swiglu q8_0");
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
    const int64_t cache_n = pages_rows(n_seq, n_ctx) * kv_dim;
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
    pages pg = pages_new(n_seq, n_ctx);
    mlxr_cuda_kv kv = {dk, dv, pg.dtable, pg.max_blocks, kv_dim};
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
            const int64_t o = page_off(&pg, seq[t], pos[t], kv_dim) + i;
            kc[o] = mlxr_fp32_to_fp16(kn[t * kv_dim + i]);
            vc[o] = mlxr_fp32_to_fp16(vn[t * kv_dim + i]);
        }
    uint16_t *kc2 = malloc((size_t)cache_n * 2);
    to_host(kc2, dk, (size_t)cache_n * 2);
    CHECK(!memcmp(kc, kc2, (size_t)cache_n * 2), "K cache after store differs");
    to_host(kc2, dv, (size_t)cache_n * 2);
    CHECK(!memcmp(vc, kc2, (size_t)cache_n * 2), "V cache after store differs");
    double worst = 0;
    double *sc = malloc((size_t)n_ctx * sizeof *sc), *ro = malloc((size_t)hd * sizeof *ro);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            att_ref(&pg, kc, vc, kv_dim, hd, h / (n_head / n_kv), q + ((int64_t)t * n_head + h) * hd, seq[t], pos[t],
                    sc, ro);
            for (int d = 0; d < hd; d++) worst = fmax(worst, fabs(ro[d] - out[((int64_t)t * n_head + h) * hd + d]));
        }
    CHECK(worst <= 2e-5, "attention %d/%d heads, head_dim %d, n_ctx %d: max |d| %.2e", n_head, n_kv, hd,
          n_ctx, worst);
    fprintf(stderr, "  attention heads %2d/%-2d head_dim %3d n_ctx %4d: max |d| %.2e\n", n_head, n_kv, hd,
            n_ctx, worst);
    pages_free(&pg);
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
    free(ro);
}

/* The tensor-core prefill attention: T queries of sequence 1 (of 2) at positions p0.., in order or
 * shuffled, against softmax(f16(q).K) V in double; tolerance 2e-5 absolute on values of size ~1 as
 * for the split kernel (f32 probabilities), 1e-3 for the f16 output (its rounding: 2^-11). */
static void test_attention_prefill_case(int32_t n_head, int32_t n_kv, int32_t hd, int32_t n_ctx, int32_t T,
                                        int32_t p0, bool shuffle) {
    const int32_t kv_dim = n_kv * hd, n_seq = 2;
    const int64_t cache_n = pages_rows(n_seq, n_ctx) * kv_dim;
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
    pages pg = pages_new(n_seq, n_ctx);
    const mlxr_cuda_kv kv = {dk, dv, pg.dtable, pg.max_blocks, kv_dim};
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
    double *sc = malloc((size_t)n_ctx * sizeof *sc), *ro = malloc((size_t)hd * sizeof *ro);
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < n_head; h++) {
            att_ref(&pg, kc, vc, kv_dim, hd, h / (n_head / n_kv), q + (int64_t)t * w + (int64_t)h * hd, seq[t], pos[t],
                    sc, ro);
            for (int d = 0; d < hd; d++) {
                const int64_t i = (int64_t)t * w + (int64_t)h * hd + d;
                worst = fmax(worst, fabs(ro[d] - out[i]));
                worsth = fmax(worsth, fabs(ro[d] - mlxr_fp16_to_fp32(outh[i])));
            }
        }
    CHECK(worst <= 2e-5 && worsth <= 1e-3,
          "prefill attention %d/%d heads, head_dim %d, T %d from %d%s: max |d| %.2e (f16 out %.2e)", n_head, n_kv, hd,
          T, p0, shuffle ? " shuffled" : "", worst, worsth);
    fprintf(stderr, "  prefill attention heads %2d/%-2d head_dim %3d T %3d from %4d%s: max |d| %.2e (f16 out %.2e)\n",
            n_head, n_kv, hd, T, p0, shuffle ? " shuffled" : "", worst, worsth);
    pages_free(&pg);
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
    free(ro);
}

static void test_attention(void) {
    test_attention_case(4, 4, 64, 512);   /* MHA */
    test_attention_case(8, 2, 64, 512);   /* GQA, 4 query heads per KV head */
    test_attention_case(32, 8, 128, 1024); /* Llama-3-like group of 4, head_dim 128 */
    test_attention_case(8, 1, 128, 256);  /* MQA: one K/V read serves 8 heads */
    test_attention_case(8, 2, 64, 3000);  /* 47 splits over 16 blocks: a block takes up to 3 */
    test_attention_prefill_case(4, 4, 128, 512, 200, 0, false);   /* MHA, a prompt from 0, partial tile */
    test_attention_prefill_case(8, 2, 64, 512, 77, 300, false);   /* GQA, a continuation of a cached prefix */
    test_attention_prefill_case(8, 4, 128, 1024, 130, 513, true); /* positions in any order */
    test_attention_prefill_case(4, 1, 64, 256, 9, 0, false);      /* MQA, one warp's worth of queries */
}

/* ---- MLX affine weight types ------------------------------------------------------------------ */

/*
 * One MLX case: ne1 random rows quantized with mlxr_mlx_affine_quantize (the mx.quantize
 * reference; bits, group gs, f16 or bf16 scales), converted to the native blocks with
 * mlxr_mlx_row_to_blocks, uploaded, and multiplied by T random activation rows through
 * mlxr_matmul_cuda (bm = 0: the path it picks for T) or the GEMM with a forced tile (bm 64/128).
 * Reference, in double: the MLX arrays' reference dequantization (mlxr_mlx_affine_dequant_ref) .
 * the activations as the device encoding holds them: Q8_0-dequantized (mlxr_quantize_q8_0_ref +
 * mlxr_dequantize_q8_0_ref) on CUDA cores; on tensor cores f16 of both. Bound: tol * M with
 * M = sum_i (|s q_i| + |b|) |a_i| (the bias term can cancel the code term, so the bound counts
 * both), tol 1e-5 on CUDA cores and 2e-5 on tensor cores as test_matmul_case. `tiny` (bf16 types
 * only): random codes with scales and biases below f16's range, which the CUDA-core products keep
 * (the GEMM's f16 weights flush them, as its reference does).
 * Also: device bytes = host row bytes, and the embedding lookup of 4 rows bit-exact.
 */
static void test_mlx_matmul_case(int bits, int gs, int bf16, int64_t ne0, int64_t ne1, int32_t T, int bm,
                                 bool tiny) {
    const mlxr_mlx_scale_type sct = bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
    const mlxr_dtype type = mlxr_mlx_dtype(bits, gs, sct);
    const char *tn = mlxr_dtype_name(type) ? mlxr_dtype_name(type) : "?";
    const int64_t wpr = ne0 * bits / 32, gpr = ne0 / gs; /* words and groups per row */
    uint32_t *wq = malloc((size_t)(wpr * ne1) * 4);
    uint16_t *sc = malloc((size_t)(gpr * ne1) * 2), *bi = malloc((size_t)(gpr * ne1) * 2);
    float *w = rand_f32(ne0 * ne1, -1, 1);
    mlxr_err err = {0};
    mlxr_status st = MLXR_OK;
    if (tiny) { /* random codes; bf16 scales and biases of 2^-40 .. 2^-20 (f16 would flush them) */
        for (int64_t i = 0; i < wpr * ne1; i++) wq[i] = (uint32_t)test_rng_u64(&rng);
        for (int64_t g = 0; g < gpr * ne1; g++) {
            const int ex = -40 + (int)(test_rng_u64(&rng) % 21);
            sc[g] = mlxr_fp32_to_bf16(ldexpf(test_rng_f32(&rng, 0.5f, 1.0f), ex));
            bi[g] = mlxr_fp32_to_bf16(ldexpf(test_rng_f32(&rng, -8.0f, 8.0f), ex));
        }
    }
    for (int64_t r = 0; r < ne1 && st == MLXR_OK && !tiny; r++)
        st = mlxr_mlx_affine_quantize(w + r * ne0, ne0, bits, gs, sct, wq + r * wpr, sc + r * gpr, bi + r * gpr,
                                      &err);
    CHECK(st == MLXR_OK, "mlx quantize %s: %s", tn, err.msg);
    const mlxr_mlx_matrix mm = {bits, gs, sct, ne1, ne0, wq, sc, bi};
    const size_t rb = mlxr_dtype_row_size(type, ne0);
    uint8_t *rows = malloc(rb * (size_t)ne1);
    float *wd = malloc((size_t)(ne0 * ne1) * 4);
    double *wm = malloc((size_t)(ne0 * ne1) * sizeof *wm); /* |s q| + |b| per weight */
    for (int64_t r = 0; r < ne1; r++) {
        const mlxr_mlx_row row = mlxr_mlx_matrix_row(&mm, r);
        mlxr_mlx_row_to_blocks(&row, rows + (size_t)r * rb);
        mlxr_mlx_affine_dequant_ref(&row, wd + r * ne0);
        for (int64_t i = 0; i < ne0; i++) {
            const uint16_t s = row.scales[i / gs], b = row.biases[i / gs];
            const double fs = bf16 ? mlxr_bf16_to_fp32(s) : mlxr_fp16_to_fp32(s);
            const double fb = bf16 ? mlxr_bf16_to_fp32(b) : mlxr_fp16_to_fp32(b);
            const uint32_t q = (row.w[i / (32 / bits)] >> (i % (32 / bits) * bits)) & ((1u << bits) - 1);
            wm[r * ne0 + i] = fabs(fs * q) + fabs(fb);
        }
    }
    mlxr_cuda_mat m;
    st = mlxr_cuda_mat_upload(&m, type, rows, ne0, ne1, rb, &err);
    CHECK(st == MLXR_OK, "upload %s %lld x %lld: %s", tn, (long long)ne1, (long long)ne0, err.msg);
    if (st != MLXR_OK) {
        free(wq), free(sc), free(bi), free(w), free(rows), free(wd), free(wm);
        return;
    }
    CHECK(mlxr_cuda_mat_bytes(&m) == rb * (size_t)ne1, "%s: device bytes %zu != host bytes %zu", tn,
          mlxr_cuda_mat_bytes(&m), rb * (size_t)ne1);
    const bool gemm = bm || T > MLXR_CUDA_GEMM_MIN_T;
    CHECK(mlxr_gemm_supported_cuda(type, ne0), "%s: GEMM must take rows of %lld", tn, (long long)ne0);
    const mlxr_cuda_enc want = gemm ? MLXR_CUDA_ENC_F16_Q8_0 : MLXR_CUDA_ENC_Q8_0;
    const mlxr_cuda_enc e = bm ? MLXR_CUDA_ENC_F16_Q8_0 : mlxr_cuda_act_enc(&m, T);
    CHECK(e == want, "%s T=%d: activation encoding %d, want %d", tn, T, (int)e, (int)want);

    float *x = rand_f32(ne0 * T, -2, 2);
    float *dx = dev_from(x, (size_t)(ne0 * T) * 4);
    void *dq = dev_from(NULL, (size_t)(ne0 * T) * 2);
    float *dd = dev_from(NULL, (size_t)(ne0 * T / 32 + 1) * 4);
    float *dy = dev_from(NULL, (size_t)(ne1 * T) * 4);
    synced(mlxr_encode_cuda(want, dx, ne0, T, dq, dd, 0), "encode");
    if (bm)
        synced(mlxr_gemm_tile_cuda(&m, dq, T, dy, ne1, bm, 0), "mlx gemm");
    else
        synced(mlxr_matmul_cuda(&m, dq, dd, T, dy, ne1, 0), "mlx matmul");
    float *y = malloc((size_t)(ne1 * T) * 4);
    to_host(y, dy, (size_t)(ne1 * T) * 4);

    mlxr_block_q8_0 *xb = malloc((size_t)(ne0 / 32) * sizeof *xb);
    float *xd = malloc((size_t)ne0 * 4), *wg = malloc((size_t)(ne0 * ne1) * 4);
    for (int64_t i = 0; i < ne0 * ne1; i++) wg[i] = gemm ? f16r(wd[i]) : wd[i]; /* the weights as used */
    const double tol_rel = gemm ? 2e-5 : 1e-5;
    double worst = 0;
    int bad = 0;
    for (int32_t t = 0; t < T; t++) {
        mlxr_quantize_q8_0_ref(x + (int64_t)t * ne0, xb, ne0);
        mlxr_dequantize_q8_0_ref(xb, xd, ne0);
        if (gemm)
            for (int64_t i = 0; i < ne0; i++) xd[i] = f16r(xd[i]);
        for (int64_t r = 0; r < ne1; r++) {
            const float *wr = wg + r * ne0;
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < ne0; i++) {
                ref += (double)wr[i] * xd[i];
                mag += wm[r * ne0 + i] * fabs((double)xd[i]);
            }
            const double d = fabs((double)y[t * ne1 + r] - ref), tol = tol_rel * mag + 1e-30;
            if (d / (mag + 1e-30) > worst) worst = d / (mag + 1e-30);
            if (!(d <= tol) && bad++ < 5)
                CHECK(d <= tol, "mlx matmul %s %lldx%lld T=%d bm=%d row %lld tok %d: %.9g vs ref %.9g (M %.3g)", tn,
                      (long long)ne1, (long long)ne0, T, bm, (long long)r, t, (double)y[t * ne1 + r], ref, mag);
        }
    }
    CHECK(bad == 0, "mlx matmul %s %lldx%lld T=%d bm=%d: %d outputs out of tolerance", tn, (long long)ne1,
          (long long)ne0, T, bm, bad);
    fprintf(stderr, "  matmul %-16s %4lld x %-5lld T=%-3d %-10s%s max |d| / M = %.2e\n", tn, (long long)ne1,
            (long long)ne0, T, bm == 64 ? "gemm 64" : bm == 128 ? "gemm 128" : gemm ? "gemm" : "cuda cores",
            tiny ? " tiny" : "", worst);

    /* embedding lookup: the reference dequantization bit for bit */
    int32_t tok[4] = {0, (int32_t)(ne1 - 1), (int32_t)(ne1 / 2), 0};
    int32_t *dt = dev_from(tok, sizeof tok);
    float *de = dev_from(NULL, (size_t)(4 * ne0) * 4), *em = malloc((size_t)(4 * ne0) * 4);
    synced(mlxr_embed_cuda(&m, dt, 4, de, 0), "mlx embed");
    to_host(em, de, (size_t)(4 * ne0) * 4);
    int ebad = 0;
    for (int k = 0; k < 4; k++) {
        const float *want_row = wd + (int64_t)tok[k] * ne0, *got = em + k * ne0;
        if (memcmp(want_row, got, (size_t)ne0 * 4) == 0) continue;
        for (int64_t i = 0; i < ne0; i++)
            if (memcmp(&want_row[i], &got[i], 4) && ebad++ < 3)
                fprintf(stderr, "    embed %s row %d [%lld]: %.9g vs ref %.9g\n", tn, tok[k], (long long)i,
                        (double)got[i], (double)want_row[i]);
    }
    CHECK(ebad == 0, "embedding %s: %d values differ from the reference dequantization", tn, ebad);

    mlxr_cuda_mat_free(&m);
    void *dbufs[] = {dx, dq, dd, dy, dt, de};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
    free(wq), free(sc), free(bi), free(w), free(rows), free(wd), free(wm), free(x), free(y), free(xb), free(xd);
    free(wg), free(em);
}

/* The fused gate|up + SwiGLU decode product on an MLX matrix: bit-identical to the product
 * followed by mlxr_swiglu_cuda (f32 output), every decode block shape. */
static void test_mlx_swiglu_case(int bits, int gs, int bf16, int64_t ne0, int64_t n) {
    const mlxr_mlx_scale_type sct = bf16 ? MLXR_MLX_SCALE_BF16 : MLXR_MLX_SCALE_F16;
    const mlxr_dtype type = mlxr_mlx_dtype(bits, gs, sct);
    const char *tn = mlxr_dtype_name(type) ? mlxr_dtype_name(type) : "?";
    const int64_t ne1 = 2 * n, wpr = ne0 * bits / 32, gpr = ne0 / gs;
    uint32_t *wq = malloc((size_t)(wpr * ne1) * 4);
    uint16_t *sc = malloc((size_t)(gpr * ne1) * 2), *bi = malloc((size_t)(gpr * ne1) * 2);
    float *w = rand_f32(ne0 * ne1, -1, 1), *x = rand_f32(ne0, -2, 2);
    mlxr_err err = {0};
    for (int64_t r = 0; r < ne1; r++)
        (void)mlxr_mlx_affine_quantize(w + r * ne0, ne0, bits, gs, sct, wq + r * wpr, sc + r * gpr, bi + r * gpr,
                                       &err);
    const mlxr_mlx_matrix mm = {bits, gs, sct, ne1, ne0, wq, sc, bi};
    const size_t rb = mlxr_dtype_row_size(type, ne0);
    uint8_t *rows = malloc(rb * (size_t)ne1);
    for (int64_t r = 0; r < ne1; r++) {
        const mlxr_mlx_row row = mlxr_mlx_matrix_row(&mm, r);
        mlxr_mlx_row_to_blocks(&row, rows + (size_t)r * rb);
    }
    mlxr_cuda_mat m;
    if (mlxr_cuda_mat_upload(&m, type, rows, ne0, ne1, rb, &err) != MLXR_OK) {
        CHECK(false, "upload %s: %s", tn, err.msg);
        free(wq), free(sc), free(bi), free(w), free(x), free(rows);
        return;
    }
    float *dx = dev_from(x, (size_t)ne0 * 4);
    void *dq = dev_from(NULL, (size_t)ne0 * 2);
    float *dd = dev_from(NULL, (size_t)(ne0 / 32 + 1) * 4);
    float *dgu = dev_from(NULL, (size_t)ne1 * 4), *dy = dev_from(NULL, (size_t)n * 4);
    float *dy2 = dev_from(NULL, (size_t)n * 4);
    float *h1 = malloc((size_t)n * 4), *h2 = malloc((size_t)n * 4);
    synced(mlxr_encode_cuda(mlxr_cuda_act_enc(&m, 1), dx, ne0, 1, dq, dd, 0), "encode");
    CHECK(mlxr_matmul_swiglu_supported_cuda(&m, 1, MLXR_DTYPE_F32), "%s: fused SwiGLU must take it", tn);
    int bad = 0;
    for (int rows_pb = 2; rows_pb <= 8; rows_pb *= 2) {
        mlxr_matvec_rows_cuda(rows_pb);
        const mlxr_cuda_out o1 = {MLXR_DTYPE_F32, dy, NULL, NULL}, o2 = {MLXR_DTYPE_F32, dy2, NULL, NULL};
        synced(mlxr_matmul_cuda(&m, dq, dd, 1, dgu, ne1, 0), "mlx gate|up");
        synced(mlxr_swiglu_cuda(dgu, dgu + n, ne1, n, 1, &o1, NULL, 0), "swiglu");
        synced(mlxr_matmul_swiglu_cuda(&m, dq, dd, &o2, 0), "mlx gate|up + swiglu");
        to_host(h1, dy, (size_t)n * 4);
        to_host(h2, dy2, (size_t)n * 4);
        bad += memcmp(h1, h2, (size_t)n * 4) != 0;
    }
    mlxr_matvec_rows_cuda(0);
    CHECK(bad == 0, "gate|up + swiglu %s: %d of 3 block shapes differ from product + swiglu", tn, bad);
    fprintf(stderr, "  gate|up + swiglu %s %lld x %lld: fused = product + swiglu for 2/4/8 rows per block\n", tn,
            (long long)ne1, (long long)ne0);
    mlxr_cuda_mat_free(&m);
    void *dbufs[] = {dx, dq, dd, dgu, dy, dy2};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
    free(wq), free(sc), free(bi), free(w), free(x), free(rows), free(h1), free(h2);
}

static void test_mlx_matmul(void) {
    static const int bits_of[2] = {4, 8}, gs_of[3] = {32, 64, 128};
    for (int bi = 0; bi < 2; bi++)
        for (int gi = 0; gi < 3; gi++)
            for (int bf16 = 0; bf16 < 2; bf16++) {
                const int bits = bits_of[bi], gs = gs_of[gi];
                for (int rows = 2; rows <= 8; rows *= 2) { /* every decode block shape */
                    mlxr_matvec_rows_cuda(rows);
                    test_mlx_matmul_case(bits, gs, bf16, 4096 + gs, 37, 1, 0, false);
                }
                mlxr_matvec_rows_cuda(0);
                test_mlx_matmul_case(bits, gs, bf16, 256, 37, 1, 0, false);
                if (bf16) test_mlx_matmul_case(bits, gs, bf16, 1024, 37, 1, 0, true);
                test_mlx_matmul_case(bits, gs, bf16, 1024, 50, 3, 0, false);
                test_mlx_matmul_case(bits, gs, bf16, 1024, 50, 8, 0, false);
                test_mlx_matmul_case(bits, gs, bf16, 1024, 50, 32, 0, false);
                test_mlx_matmul_case(bits, gs, bf16, gs, 70, 20, 0, false); /* one group per row */
                test_mlx_matmul_case(bits, gs, bf16, 1024, 50, 40, 0, false);
                /* both tiles, an odd number of groups (gs 32: a zero-filled last half step) */
                test_mlx_matmul_case(bits, gs, bf16, (int64_t)gs * 19, 131, 129, 64, false);
                test_mlx_matmul_case(bits, gs, bf16, (int64_t)gs * 19, 131, 129, 128, false);
                if (bf16) test_mlx_matmul_case(bits, gs, bf16, 1024, 50, 40, 0, true);
            }
    test_mlx_swiglu_case(4, 64, 0, 2048, 256);
    test_mlx_swiglu_case(8, 32, 1, 1024, 264);
    const mlxr_dtype q4g64 = mlxr_mlx_dtype(4, 64, MLXR_MLX_SCALE_F16);
    const mlxr_dtype q8g128 = mlxr_mlx_dtype(8, 128, MLXR_MLX_SCALE_BF16);
    CHECK(mlxr_cuda_mat_supported(q4g64, 4096) && !mlxr_cuda_mat_supported(q4g64, 96) &&
              !mlxr_cuda_mat_supported(q8g128, 64) && !mlxr_gemm_supported_cuda(q8g128, 192),
          "MLX rows must be whole groups");
    mlxr_err err = {0};
    mlxr_cuda_mat m;
    CHECK(mlxr_cuda_mat_upload(&m, q4g64, "", 96, 1, 60, &err) == MLXR_ERR_UNSUPPORTED,
          "MLX_Q4_G64 row of 96 must be unsupported");
    CHECK(!mlxr_cuda_mat_supported(MLXR_DTYPE_MLX_A8, 4096), "MLX_A8 is an activation type");
}

/*
 * The RMSNorm split across the decode ops around it (matvec.h): mlxr_matmul_resid_cuda adds
 * w1 . a to the residual x, writes the 32-row partial sums of squares and x * g encoded for w2:
 *   - the new residual against the CPU reference product, within the product's tolerance;
 *   - the partial sums against the device's own new residual (double sums), the encoded x * g
 *     against the reference encoding of the same values (Q8_0: one step off at a rounding tie);
 *   - w2's product of x * g times the scale from the sums agrees with the unfused path (the
 *     RMSNorm kernel, then the product) within the activation quantization, and SwiGLU with the
 *     deferred scale (mlxr_cuda_rms) equals SwiGLU of the scaled values.
 */
static void test_matmul_resid_case(mlxr_dtype type, int64_t ne0, int64_t ne1, mlxr_dtype type2, int64_t ne2) {
    const char *tn = mlxr_dtype_name(type), *tn2 = mlxr_dtype_name(type2);
    float *w = rand_f32(ne0 * ne1, -1, 1), *a = rand_f32(ne0, -2, 2), *x0 = rand_f32(ne1, -4, 4);
    float *gn = rand_f32(ne1, 0.5f, 1.5f), *w2 = rand_f32(ne1 * ne2, -1, 1);
    size_t rb, rb2;
    uint8_t *rows = make_rows(type, w, ne0, ne1, &rb), *rows2 = make_rows(type2, w2, ne1, ne2, &rb2);
    mlxr_cuda_mat m, m2;
    mlxr_err err = {0};
    if (mlxr_cuda_mat_upload(&m, type, rows, ne0, ne1, rb, &err) != MLXR_OK ||
        mlxr_cuda_mat_upload(&m2, type2, rows2, ne1, ne2, rb2, &err) != MLXR_OK) {
        CHECK(false, "upload %s / %s: %s", tn, tn2, err.msg);
        return;
    }
    const mlxr_cuda_enc e = mlxr_cuda_act_enc(&m, 1), e2 = mlxr_cuda_act_enc(&m2, 1);
    const mlxr_dtype ot = mlxr_cuda_enc_direct(e2); /* what resid writes for w2 */
    CHECK(mlxr_matmul_resid_supported_cuda(&m, ot), "resid %s -> %s supported", tn, mlxr_dtype_name(ot));
    float *da = dev_from(a, (size_t)ne0 * 4), *dd = dev_from(NULL, (size_t)(ne0 / 32 + 1) * 4);
    void *dq = dev_from(NULL, (size_t)ne0 * 2);
    synced(mlxr_encode_cuda(e, da, ne0, 1, dq, dd, 0), "encode");
    const void *ain = e == MLXR_CUDA_ENC_F32 ? (const void *)da : dq;
    float *dx = dev_from(x0, (size_t)ne1 * 4), *dg = dev_from(gn, (size_t)ne1 * 4);
    float *dss = dev_from(NULL, (size_t)(ne1 / 32) * 4), *dy = dev_from(NULL, (size_t)ne1 * 4);
    void *oq = dev_from(NULL, (size_t)ne1 * 2);
    float *od = dev_from(NULL, (size_t)(ne1 / 32 + 1) * 4);
    const mlxr_cuda_out out = {ot, dy, oq, od};
    synced(mlxr_matmul_resid_cuda(&m, ain, dd, dx, dg, dss, &out, 0), "matmul + residual");
    float *xn = malloc((size_t)ne1 * 4), *ss = malloc((size_t)(ne1 / 32) * 4), *u = malloc((size_t)ne1 * 4);
    to_host(xn, dx, (size_t)ne1 * 4);
    to_host(ss, dss, (size_t)(ne1 / 32) * 4);
    /* the residual against the CPU reference product */
    const mlxr_dtype vt = ref_act_type(type);
    size_t xrb;
    uint8_t *aenc = make_rows(vt, a, ne0, 1, &xrb);
    float *wd = malloc((size_t)ne0 * 4), *ad = malloc((size_t)ne0 * 4);
    dec_of(vt)(aenc, ad, ne0);
    int bad = 0;
    double worst = 0;
    for (int64_t r = 0; r < ne1; r++) {
        double mag;
        const float yr = ref_row_dot(type, rows + (size_t)r * rb, ne0, aenc, ad, wd, &mag);
        const double tol = 2e-5 * mag + 1e-5 * fabs((double)x0[r]) + 1e-6;
        const double d = fabs((double)xn[r] - ((double)x0[r] + yr));
        worst = fmax(worst, d / tol);
        if (d > tol && bad++ < 3)
            CHECK(false, "resid %s row %lld: %.7g vs %.7g + %.7g", tn, (long long)r, (double)xn[r], (double)x0[r],
                  (double)yr);
    }
    for (int64_t b = 0; b < ne1 / 32; b++) {
        double s2 = 0;
        for (int j = 0; j < 32; j++) s2 += (double)xn[b * 32 + j] * xn[b * 32 + j];
        if (fabs(s2 - ss[b]) > 1e-5 * s2 + 1e-12 && bad++ < 3)
            CHECK(false, "resid %s sum of squares %lld: %.9g vs %.9g", tn, (long long)b, (double)ss[b], s2);
    }
    for (int64_t r = 0; r < ne1; r++) u[r] = xn[r] * gn[r];
    int steps = 0;
    if (ot == MLXR_DTYPE_Q8_0) {
        int8_t *q = malloc((size_t)ne1);
        float *d = malloc((size_t)(ne1 / 32) * 4);
        to_host(q, oq, (size_t)ne1);
        to_host(d, od, (size_t)(ne1 / 32) * 4);
        const int b2 = cmp_q8_0(q, d, u, ne1, &steps);
        CHECK(b2 == 0, "resid %s -> Q8_0: %d quants or scales off", tn, b2);
        free(q), free(d);
    } else {
        float *v = malloc((size_t)ne1 * 4);
        if (ot == MLXR_DTYPE_F16) {
            uint16_t *hq = malloc((size_t)ne1 * 2);
            to_host(hq, oq, (size_t)ne1 * 2);
            for (int64_t r = 0; r < ne1; r++) v[r] = mlxr_fp16_to_fp32(hq[r]), u[r] = f16r(u[r]);
            free(hq);
        } else {
            to_host(v, dy, (size_t)ne1 * 4);
        }
        CHECK(memcmp(v, u, (size_t)ne1 * 4) == 0, "resid %s -> %s: x * g not exact", tn, mlxr_dtype_name(ot));
        free(v);
    }
    /* the deferred scale: the product of x * g times it is the unfused path (the RMSNorm
     * kernel, then encode and product) within the activation quantization */
    const float eps = 1e-5f;
    double sum = 0;
    for (int64_t b = 0; b < ne1 / 32; b++) sum += (double)ss[b];
    const float sc = 1.0f / sqrtf((float)(sum / (double)ne1) + eps);
    const void *uin = ot == MLXR_DTYPE_F32 ? (const void *)dy : oq;
    float *dy2 = dev_from(NULL, (size_t)ne2 * 4), *dy3 = dev_from(NULL, (size_t)ne2 * 4);
    synced(mlxr_matmul_cuda(&m2, uin, od, 1, dy2, ne2, 0), "matmul of x * g");
    float *y2 = malloc((size_t)ne2 * 4), *y3 = malloc((size_t)ne2 * 4);
    to_host(y2, dy2, (size_t)ne2 * 4);
    float *dxn = dev_from(NULL, (size_t)ne1 * 4);
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, dxn, NULL, NULL};
    synced(mlxr_add_rmsnorm_cuda(dx, NULL, dg, &of, NULL, 1, ne1, eps, 0), "rmsnorm");
    void *q2 = dev_from(NULL, (size_t)ne1 * 2);
    float *d2 = dev_from(NULL, (size_t)(ne1 / 32 + 1) * 4);
    synced(mlxr_encode_cuda(e2, dxn, ne1, 1, q2, d2, 0), "encode normed");
    synced(mlxr_matmul_cuda(&m2, e2 == MLXR_CUDA_ENC_F32 ? (const void *)dxn : q2, d2, 1, dy3, ne2, 0), "matmul");
    to_host(y3, dy3, (size_t)ne2 * 4);
    for (int64_t r = 0; r < ne2; r++) y2[r] *= sc;
    const double rel = rel_err(y2, y3, ne2);
    const double rtol = ot == MLXR_DTYPE_Q8_0 ? 2e-2 : ot == MLXR_DTYPE_F16 ? 2e-3 : 1e-5;
    CHECK(rel <= rtol, "scaled %s product vs rmsnorm + product: rel err %.3g > %.3g", tn2, rel, rtol);
    /* SwiGLU with the scale: as SwiGLU of the scaled halves (the sums here are exact in double,
     * so the device's scale is this one) */
    const int64_t h = ne2 / 2;
    const mlxr_cuda_rms rms = {dss, ne1, eps};
    float *dh = dev_from(NULL, (size_t)h * 4), *hy = malloc((size_t)h * 4);
    const mlxr_cuda_out oh = {MLXR_DTYPE_F32, dh, NULL, NULL};
    synced(mlxr_swiglu_cuda(dy2, dy2 + h, 2 * h, h, 1, &oh, &rms, 0), "swiglu with the norm scale");
    to_host(hy, dh, (size_t)h * 4);
    to_host(y3, dy2, (size_t)ne2 * 4);
    for (int64_t r = 0; r < ne2; r++) y3[r] *= sc;
    mlxr_swiglu_f32_ref(y3, y3 + h, h);
    const double srel = rel_err(hy, y3, h);
    CHECK(srel <= 1e-6, "swiglu with the norm scale: rel err %.3g", srel);
    fprintf(stderr,
            "  resid %-4s %lld x %lld -> %-4s: residual %.2f of tolerance, %d quant steps; then %s x scale vs "
            "unfused rel %.2e, swiglu with scale rel %.1e\n",
            tn, (long long)ne1, (long long)ne0, mlxr_dtype_name(ot), worst, steps, tn2, rel, srel);
    mlxr_cuda_mat_free(&m);
    mlxr_cuda_mat_free(&m2);
    void *dbufs[] = {da, dd, dq, dx, dg, dss, dy, oq, od, dy2, dy3, dxn, q2, d2, dh};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) cudaFree(dbufs[i]);
    free(w), free(a), free(x0), free(gn), free(w2), free(rows), free(rows2), free(xn), free(ss), free(u);
    free(aenc), free(wd), free(ad), free(y2), free(y3), free(hy);
}

static void test_matmul_resid(void) {
    if (!mlxr_cuda_sm90()) { /* thread block clusters */
        fprintf(stderr, "  resid: SKIPPED (needs an sm_90 device)\n");
        return;
    }
    test_matmul_resid_case(MLXR_DTYPE_Q4_0, 4096, 4096, MLXR_DTYPE_Q4_0, 22016);
    test_matmul_resid_case(MLXR_DTYPE_Q4_0, 11008, 4096, MLXR_DTYPE_Q8_0, 300);
    test_matmul_resid_case(MLXR_DTYPE_Q8_0, 1024, 288, MLXR_DTYPE_F16, 100);
    test_matmul_resid_case(MLXR_DTYPE_Q4_K, 2048, 512, MLXR_DTYPE_F32, 64);
    test_matmul_resid_case(MLXR_DTYPE_Q6_K, 768, 32, MLXR_DTYPE_Q4_0, 34);
    test_matmul_resid_case(MLXR_DTYPE_F16, 520, 256, MLXR_DTYPE_Q8_0, 50);
    mlxr_cuda_mat m = {MLXR_DTYPE_Q4_0, 64, 48, NULL, NULL, NULL};
    CHECK(!mlxr_matmul_resid_supported_cuda(&m, MLXR_DTYPE_Q8_0), "48 rows are not whole 32-row groups");
    m.ne1 = 64;
    CHECK(!mlxr_matmul_resid_supported_cuda(&m, MLXR_DTYPE_Q8_K), "no Q8_K output");
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
    mlxr_cuda_mat m = {MLXR_DTYPE_Q2_K, 256, 1, NULL, NULL, NULL};
    CHECK(mlxr_matmul_cuda(&m, NULL, NULL, 1, NULL, 256, 0) == cudaErrorInvalidValue, "bad type rejected");
}

/* MLXR_TEST_ONLY=name[,name...]: run only the test functions whose names contain one of them (for
 * compute-sanitizer runs of one area; unset: all). */
static bool wanted(const char *fn) {
    const char *only = getenv("MLXR_TEST_ONLY");
    if (!only || !*only) return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (*tok && strstr(fn, tok)) return true;
    return false;
}
#define RUN(f)                                                                                    \
    do {                                                                                          \
        if (wanted(#f)) f();                                                                      \
    } while (0)

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
    RUN(test_quantize);
    RUN(test_matmul);
    RUN(test_mlx_matmul);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_rope_kv);
    RUN(test_softmax_swiglu);
    RUN(test_out_types_refused);
    RUN(test_matmul_swiglu);
    RUN(test_matmul_resid);
    RUN(test_pdl_chain);
    RUN(test_argmax);
    RUN(test_attention);
    RUN(test_errors);
    return test_finish("cuda_test_kernels");
}
