/*
 * bench_cuda.c - mlxr-bench-cuda: CUDA backend throughput (speed only; correctness is in
 * tests/cuda/).
 *
 *   mlxr-bench-cuda [MODEL.gguf ...]
 *   mlxr-bench-cuda --quantize IN.gguf OUT.gguf PRESET   (mlxr quantize, for GPU hosts without the CLI)
 *
 * 1. Device-to-device copy bandwidth (cudaMemcpy of 1 GiB, bytes read + written): the roofline.
 * 2. Matrix products of a Llama-7B decode step (Wo 4096 x 4096, Wq|Wk|Wv 12288 x 4096,
 *    Wgate|Wup 22016 x 4096, Wdown 4096 x 11008, Wout 32000 x 4096) for Q8_0, Q4_0, F16, Q4_K
 *    and Q6_K weights, 1 token (decode), 8 tokens (dp4a batch) and 64 tokens (tensor-core GEMM)
 *    per launch, cycling through copies of the matrix so the weights come from HBM, not L2:
 *    effective bandwidth = weight bytes (+ activations) / kernel time, as a fraction of the copy
 *    bandwidth.
 * 2a. The prefill GEMM (T = 512) on the products of a 7B layer, per weight type, in TFLOPS.
 * 2b. The other ops of a decode step, timed alone at 7B shapes.
 * (MLXR_BENCH_ONLY=models skips 1a-2b, =matvec or =ops runs only that table; MLXR_CUDA_PDL=0,
 * MLXR_CUDA_FUSED_SWIGLU=1 and MLXR_CUDA_MV_ROWS=2|4|8 switch the decode-step optimizations for
 * A/B runs.)
 * 3. For each MODEL (whole model on the GPU): pp512 (one batch of 512 tokens) and tg128 (128
 *    single-token steps after it, each a CUDA graph replay, logits copied back every step), in
 *    tokens/s, against the decode roofline: weight bytes / copy bandwidth.
 * Times are CUDA-event (kernels) or wall-clock (whole model) medians/means over repeats after
 * warm-up; the weights are random bytes with valid scales (speed does not depend on values).
 */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/act.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"
#include "mlxr.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}

static double copy_bw(void) {
    const size_t n = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, n));
    CK(cudaMalloc(&b, n));
    CK(cudaMemset(a, 1, n));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    const int reps = 10;
    cudaEventRecord(e0, 0);
    for (int i = 0; i < reps; i++) cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0);
    cudaEventRecord(e1, 0);
    CK(cudaEventSynchronize(e1));
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * n * reps / (ms * 1e-3) / 1e9;
}

/* GGUF rows of random content with sane scales: block size, bytes, offsets of the f16 scales. */
static void *random_rows(mlxr_dtype t, int64_t ne0, int64_t ne1, size_t *rb) {
    int qk = 32, bs = 0, s0 = 0, s1 = -1;
    switch (t) {
    case MLXR_DTYPE_Q8_0: bs = 34; break;
    case MLXR_DTYPE_Q4_0: bs = 18; break;
    case MLXR_DTYPE_Q4_K: qk = 256, bs = 144, s1 = 2; break;
    case MLXR_DTYPE_Q5_K: qk = 256, bs = 176, s1 = 2; break;
    case MLXR_DTYPE_Q6_K: qk = 256, bs = 210, s0 = 208; break;
    default: break;
    }
    *rb = bs ? (size_t)(ne0 / qk) * (size_t)bs : (size_t)ne0 * 2;
    uint8_t *p = malloc(*rb * (size_t)ne1);
    uint16_t *h = (uint16_t *)p;
    if (!bs) {
        for (size_t i = 0; i < (size_t)(ne0 * ne1); i++) h[i] = (uint16_t)((rnd() & 0x83FF) | 0x2000);
        return p;
    }
    for (size_t i = 0; i < *rb * (size_t)ne1; i++) p[i] = (uint8_t)rnd();
    for (size_t b = 0; b < (size_t)(ne0 / qk * ne1); b++) {
        memcpy(p + b * (size_t)bs + s0, &(uint16_t){0x2000}, 2);
        if (s1 >= 0) memcpy(p + b * (size_t)bs + s1, &(uint16_t){0x2000}, 2);
    }
    return p;
}

/* Mean time of `reps` runs of fn after `warm` runs (CUDA events on stream 0). */
typedef void (*op_fn)(void *);
static double time_op(op_fn fn, void *arg, int warm, int reps) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < warm; i++) fn(arg);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < reps; i++) fn(arg);
    cudaEventRecord(e1, 0);
    CK(cudaEventSynchronize(e1));
    CK(cudaGetLastError());
    float ms;
    cudaEventElapsedTime(&ms, e0, e1);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return ms * 1e-3 / reps;
}

/* Several copies of one matrix, cycled, so that the weights come from HBM and not from the 50 MB
 * L2 (a decode step reads each weight once). */
typedef struct mv_arg {
    mlxr_cuda_mat m[64];
    int n, next, T;
    int swiglu; /* 0: the product; 1: product + mlxr_swiglu_cuda; 2: the fused gate|up + SwiGLU */
    mlxr_cuda_enc enc;
    mlxr_cuda_out out; /* SwiGLU's output, in the down product's encoding */
    float *x, *xd, *y;
    void *xq;
} mv_arg;

static void mv_op(void *p) {
    mv_arg *a = p;
    const mlxr_cuda_mat *m = &a->m[a->next];
    a->next = (a->next + 1) % a->n;
    const void *x = a->enc == MLXR_CUDA_ENC_F32 ? (void *)a->x : a->xq;
    if (a->swiglu == 2) {
        mlxr_matmul_swiglu_cuda(m, x, a->xd, &a->out, 0);
        return;
    }
    mlxr_matmul_cuda(m, x, a->xd, a->T, a->y, m->ne1, 0);
    if (a->swiglu == 1) mlxr_swiglu_cuda(a->y, a->y + m->ne1 / 2, m->ne1, m->ne1 / 2, 1, &a->out, NULL, 0);
}

static void bench_matvec(double bw) {
    const int64_t shapes[5][2] = {{4096, 4096}, {4096, 12288}, {4096, 22016}, {11008, 4096}, {4096, 32000}};
    const char *what[5] = {"Wo", "Wq|Wk|Wv", "Wgate|Wup", "Wdown", "Wout"};
    const mlxr_dtype types[5] = {MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q4_0, MLXR_DTYPE_F16, MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K};
    static mv_arg a;
    CK(cudaMalloc((void **)&a.x, 64 * 22016 * 4));
    CK(cudaMemset(a.x, 0, 64 * 22016 * 4));
    CK(cudaMalloc(&a.xq, 64 * 22016 * 2));
    CK(cudaMalloc((void **)&a.xd, 64 * 22016 / 32 * 4));
    CK(cudaMalloc((void **)&a.y, 64 * 32000 * 4));
    void *oq;
    float *od, *oy;
    CK(cudaMalloc(&oq, 11008 * 2));
    CK(cudaMalloc((void **)&od, 11008 / 32 * 4));
    CK(cudaMalloc((void **)&oy, 11008 * 4));
    printf("PDL %s; decode rows per block: default unless marked R=\n", mlxr_cuda_pdl_enabled() ? "on" : "off");
    printf("| matvec | type | matrix (7B) | rows x cols | tokens | us/call | GB/s | of copy bw |\n|---|---|---|---|---|---|---|---|\n");
    for (int ti = 0; ti < 5; ti++) {
        double sum_b = 0, sum_t = 0, sum_br[3] = {0}, sum_tr[3] = {0};
        for (int si = 0; si < 5; si++) {
            const int64_t ne0 = shapes[si][0], ne1 = shapes[si][1];
            size_t rb;
            void *rows = random_rows(types[ti], ne0, ne1, &rb);
            mlxr_err err = {0};
            const size_t bytes1 = rb * (size_t)ne1;
            a.n = (int)((512u << 20) / bytes1) + 1;
            if (a.n > 64) a.n = 64;
            for (int k = 0; k < a.n; k++)
                if (mlxr_cuda_mat_upload(&a.m[k], types[ti], rows, ne0, ne1, rb, &err) != MLXR_OK) {
                    fprintf(stderr, "upload: %s\n", err.msg);
                    exit(1);
                }
            free(rows);
            a.next = 0;
            /* decode at the default shape and at 2, 4, 8 rows per block; batches of 8 and 32 (int8
             * tensor cores for Q4_0/Q8_0, else dp4a); 64 (the f16 tensor-core GEMM) */
            const int Ts[7] = {1, 1, 1, 1, 8, 32, 64}, Rs[7] = {0, 2, 4, 8, 0, 0, 0};
            for (int ti2 = 0; ti2 < 7; ti2++) {
                const int T = Ts[ti2];
                a.T = T;
                a.swiglu = 0;
                mlxr_matvec_rows_cuda(Rs[ti2]);
                /* the activations are encoded once per shape: in a decode step the encoding is
                 * fused into the RMSNorm / SwiGLU before the product (timed in the op table) */
                a.enc = mlxr_cuda_act_enc(&a.m[0], T);
                CK(mlxr_encode_cuda(a.enc, a.x, ne0, T, a.xq, a.xd, 0));
                const double t = time_op(mv_op, &a, 100, 400);
                const double bytes = (double)bytes1 + (double)T * ne0 * 5 + (double)T * ne1 * 4;
                if (T == 1 && !Rs[ti2]) {
                    sum_b += bytes;
                    sum_t += t;
                } else if (T == 1) {
                    sum_br[Rs[ti2] / 4] += bytes;
                    sum_tr[Rs[ti2] / 4] += t;
                }
                char tok[16];
                snprintf(tok, sizeof tok, Rs[ti2] ? "%d R=%d" : "%d", T, Rs[ti2]);
                printf("| matvec | %s | %s | %lld x %lld | %s | %.1f | %.0f | %.0f%% |\n", mlxr_dtype_name(types[ti]),
                       what[si], (long long)ne1, (long long)ne0, tok, t * 1e6, bytes / t / 1e9,
                       100.0 * bytes / t / 1e9 / bw);
            }
            mlxr_matvec_rows_cuda(0);
            if (si == 2) { /* gate|up: the product + SwiGLU, separate and fused, default shape */
                a.T = 1;
                a.enc = mlxr_cuda_act_enc(&a.m[0], 1);
                CK(mlxr_encode_cuda(a.enc, a.x, ne0, 1, a.xq, a.xd, 0));
                const mlxr_dtype ot = types[ti] == MLXR_DTYPE_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_Q8_0;
                a.out = (mlxr_cuda_out){ot, oy, oq, od};
                for (a.swiglu = 1; a.swiglu <= 2; a.swiglu++) {
                    const double t = time_op(mv_op, &a, 100, 400);
                    printf("| matvec | %s | %s + swiglu -> %s, %s | %lld x %lld | 1 | %.1f | %.0f | %.0f%% |\n",
                           mlxr_dtype_name(types[ti]), what[si], mlxr_dtype_name(ot),
                           a.swiglu == 2 ? "fused" : "2 launches",
                           (long long)ne1, (long long)ne0, t * 1e6, bytes1 / t / 1e9, 100.0 * bytes1 / t / 1e9 / bw);
                }
                a.swiglu = 0;
            }
            for (int k = 0; k < a.n; k++) mlxr_cuda_mat_free(&a.m[k]);
        }
        printf("| matvec-summary | %s | the 5 decode products of a 7B layer + output | | 1 | %.1f | %.0f | %.0f%% |\n",
               mlxr_dtype_name(types[ti]), sum_t * 1e6, sum_b / sum_t / 1e9, 100.0 * sum_b / sum_t / 1e9 / bw);
        for (int r = 0; r < 3; r++)
            printf("| matvec-summary | %s | the same, %d rows per block | | 1 R=%d | %.1f | %.0f | %.0f%% |\n",
                   mlxr_dtype_name(types[ti]), 2 << r, 2 << r, sum_tr[r] * 1e6, sum_br[r] / sum_tr[r] / 1e9,
                   100.0 * sum_br[r] / sum_tr[r] / 1e9 / bw);
    }
    cudaFree(oq);
    cudaFree(od);
    cudaFree(oy);
    cudaFree(a.x);
    cudaFree(a.xq);
    cudaFree(a.xd);
    cudaFree(a.y);
}

/* The other ops of one decode step at Llama-7B shapes (one token, n_embd 4096, 32 heads of 128,
 * n_ff 11008, vocab 32000), each timed alone. */
typedef struct ops_arg {
    int which, n_ctx;
    float *x, *dx, *w, *qkv, *att, *gu, *po, *pml, *xd, *logits;
    void *xq, *kc, *vc;
    int32_t *pos, *seq, *out;
    mlxr_cuda_mat emb;
} ops_arg;

/* The block table of one sequence whose n_ctx positions fill the pool in order (made once per
 * n_ctx, kept for the run): the paged cache laid out like a contiguous one. */
static const int32_t *identity_table(int n_ctx) {
    static const int32_t *tab[4];
    static int ctx_of[4];
    for (int i = 0; i < 4; i++)
        if (tab[i] && ctx_of[i] == n_ctx) return tab[i];
    const int nb = (n_ctx + MLXR_CUDA_KV_BLOCK - 1) / MLXR_CUDA_KV_BLOCK;
    int32_t *h = malloc((size_t)nb * 4), *d = NULL;
    for (int i = 0; i < nb; i++) h[i] = i;
    CK(cudaMalloc((void **)&d, (size_t)nb * 4));
    CK(cudaMemcpy(d, h, (size_t)nb * 4, cudaMemcpyHostToDevice));
    free(h);
    for (int i = 0; i < 4; i++)
        if (!tab[i]) {
            tab[i] = d;
            ctx_of[i] = n_ctx;
            break;
        }
    return d;
}

static void ops_op(void *p) {
    ops_arg *a = p;
    const mlxr_cuda_out oq = {MLXR_DTYPE_Q8_0, NULL, a->xq, a->xd};
    const mlxr_cuda_kv kv = {a->kc, a->vc, identity_table(a->n_ctx), (a->n_ctx + 31) / 32, 4096};
    const mlxr_cuda_att_shape sh = {32, 32, 128, (a->n_ctx + MLXR_CUDA_ATT_SPLIT - 1) / MLXR_CUDA_ATT_SPLIT};
    switch (a->which) {
    case 0: mlxr_add_rmsnorm_cuda(a->x, a->dx, a->w, &oq, NULL, 1, 4096, 1e-5f, 0); break;
    case 1:
        mlxr_rope_kv_store_cuda(a->qkv, a->qkv + 4096, a->qkv + 8192, 12288, 32, 32, 128, 128, a->pos, a->seq, 1, 0.93f,
                                &kv, NULL, 0);
        break;
    case 2: mlxr_kv_store_cuda(&kv, a->qkv + 4096, a->qkv + 8192, 12288, a->pos, a->seq, 1, 0); break;
    case 3: mlxr_attention_cuda(&kv, &sh, a->qkv, 12288, a->pos, a->seq, 1, a->po, a->pml, &oq, 0); break;
    case 4: mlxr_encode_cuda(MLXR_CUDA_ENC_Q8_0, a->att, 4096, 1, a->xq, a->xd, 0); break;
    case 5: mlxr_swiglu_cuda(a->gu, a->gu + 11008, 22016, 11008, 1, &oq, NULL, 0); break;
    case 6: mlxr_embed_cuda(&a->emb, a->seq, 1, a->x, 0); break;
    case 7: mlxr_argmax_f32_cuda(a->logits, 1, 32000, a->out, 0); break;
    }
}

static void bench_ops(void) {
    static ops_arg a;
    const int n_ctx_max = 4096;
    CK(cudaMalloc((void **)&a.x, 4096 * 4));
    CK(cudaMalloc((void **)&a.dx, 4096 * 4));
    CK(cudaMalloc((void **)&a.w, 4096 * 4));
    CK(cudaMalloc((void **)&a.qkv, 12288 * 4));
    CK(cudaMalloc((void **)&a.att, 4096 * 4));
    CK(cudaMalloc((void **)&a.gu, 22016 * 4));
    CK(cudaMalloc((void **)&a.po, (size_t)32 * 32 * 128 * 4));
    CK(cudaMalloc((void **)&a.pml, 32 * 32 * 2 * 4));
    CK(cudaMalloc((void **)&a.xd, 11008 / 32 * 4));
    CK(cudaMalloc(&a.xq, 11008));
    CK(cudaMalloc((void **)&a.logits, 32000 * 4));
    CK(cudaMalloc(&a.kc, (size_t)n_ctx_max * 4096 * 2));
    CK(cudaMalloc(&a.vc, (size_t)n_ctx_max * 4096 * 2));
    CK(cudaMalloc((void **)&a.pos, 4));
    CK(cudaMalloc((void **)&a.seq, 4));
    CK(cudaMalloc((void **)&a.out, 4));
    CK(cudaMemset(a.x, 0, 4096 * 4));
    CK(cudaMemset(a.dx, 0, 4096 * 4));
    CK(cudaMemset(a.w, 0, 4096 * 4));
    CK(cudaMemset(a.qkv, 0, 12288 * 4));
    CK(cudaMemset(a.att, 0, 4096 * 4));
    CK(cudaMemset(a.gu, 0, 22016 * 4));
    CK(cudaMemset(a.logits, 0, 32000 * 4));
    CK(cudaMemset(a.kc, 0, (size_t)n_ctx_max * 4096 * 2));
    CK(cudaMemset(a.vc, 0, (size_t)n_ctx_max * 4096 * 2));
    CK(cudaMemset(a.seq, 0, 4));
    size_t rb;
    void *rows = random_rows(MLXR_DTYPE_Q4_0, 4096, 32000, &rb);
    mlxr_err err = {0};
    if (mlxr_cuda_mat_upload(&a.emb, MLXR_DTYPE_Q4_0, rows, 4096, 32000, rb, &err) != MLXR_OK) exit(1);
    free(rows);
    const char *names[8] = {"add+rmsnorm->Q8_0 (4096)", "rope q+k + kv store, fused (as used)", "kv store alone (2 x 4096 f16)",
                            "attention->Q8_0 (as used)", "encode Q8_0 (4096) (no longer used)", "swiglu->Q8_0 (11008)", "embed Q4_0 row",
                            "argmax (32000)"};
    printf("| op | 7B shapes, 1 token | us/call |\n|---|---|---|\n");
    for (int w = 0; w < 8; w++) {
        a.which = w;
        const int ctxs[3] = {1024, 4096, 0};
        for (int ci = 0; ci < (w == 3 ? 2 : 1); ci++) {
            a.n_ctx = ctxs[ci];
            const int32_t p = w == 3 ? (ci == 0 ? 600 : 3000) : 600;
            CK(cudaMemcpy(a.pos, &p, 4, cudaMemcpyHostToDevice));
            const double t = time_op(ops_op, &a, 50, 200);
            if (w == 3)
                printf("| op | %s, position %d of n_ctx %d (%.0f GB/s of K+V) | %.1f |\n", names[w], p, a.n_ctx,
                       2.0 * (p + 1) * 4096 * 2 / t / 1e9, t * 1e6);
            else
                printf("| op | %s | %.1f |\n", names[w], t * 1e6);
        }
    }
    mlxr_cuda_mat_free(&a.emb);
    void *bufs[] = {a.x, a.dx, a.w, a.qkv, a.att, a.gu, a.po, a.pml, a.xd, a.xq, a.logits, a.kc, a.vc, a.pos, a.seq, a.out};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]);
}

/* Prefill products of one 7B layer at T = 512 (tensor-core GEMM, weights dequantized per tile),
 * in TFLOPS (2 ne0 ne1 T / time); the layer sum bounds pp512 from above (32 layers). */
typedef struct gemm_arg {
    mlxr_cuda_mat m;
    const void *x;
    float *y;
    int T;
} gemm_arg;

static void gemm_op(void *p) {
    gemm_arg *a = p;
    mlxr_gemm_cuda(&a->m, a->x, a->T, a->y, a->m.ne1, 0);
}

static void bench_gemm(void) {
    const int64_t shapes[4][2] = {{4096, 4096}, {4096, 12288}, {4096, 22016}, {11008, 4096}};
    const char *what[4] = {"Wo", "Wq|Wk|Wv", "Wgate|Wup", "Wdown"};
    const mlxr_dtype types[5] = {MLXR_DTYPE_F16, MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K};
    static gemm_arg a;
    const int T = 512;
    void *x;
    CK(cudaMalloc(&x, (size_t)T * 11008 * 2));
    CK(cudaMemset(x, 0, (size_t)T * 11008 * 2));
    CK(cudaMalloc((void **)&a.y, (size_t)T * 22016 * 4));
    a.x = x;
    a.T = T;
    printf("| gemm | type | matrix (7B) | rows x cols | tokens | us/call | TFLOPS |\n|---|---|---|---|---|---|---|\n");
    for (int ti = 0; ti < 5; ti++) {
        double sum_t = 0;
        for (int si = 0; si < 4; si++) {
            const int64_t ne0 = shapes[si][0], ne1 = shapes[si][1];
            size_t rb;
            void *rows = random_rows(types[ti], ne0, ne1, &rb);
            mlxr_err err = {0};
            if (mlxr_cuda_mat_upload(&a.m, types[ti], rows, ne0, ne1, rb, &err) != MLXR_OK) {
                fprintf(stderr, "upload: %s\n", err.msg);
                exit(1);
            }
            free(rows);
            const double t = time_op(gemm_op, &a, 5, 20);
            sum_t += t;
            printf("| gemm | %s | %s | %lld x %lld | %d | %.1f | %.0f |\n", mlxr_dtype_name(types[ti]), what[si],
                   (long long)ne1, (long long)ne0, T, t * 1e6, 2.0 * ne0 * ne1 * T / t / 1e12);
            mlxr_cuda_mat_free(&a.m);
        }
        printf("| gemm-summary | %s | one 7B layer's products, T=%d | | | %.1f | %.0f (pp512 bound %.0f tok/s) |\n",
               mlxr_dtype_name(types[ti]), T, sum_t * 1e6, 2.0 * 4096 * (4096 + 12288 + 22016 + 11008) * T / sum_t / 1e12,
               T / (32 * sum_t));
    }
    cudaFree(x);
    cudaFree(a.y);
}

/* Attention of a 512-token prompt (positions 0..511, one sequence) at 7B shapes (32 heads of 128):
 * the split kernel in 64-query chunks (as used before) against the tensor-core prefill kernel. */
typedef struct attp_arg {
    mlxr_cuda_kv kv;
    mlxr_cuda_att_shape sh;
    float *q, *out, *po, *pml;
    int32_t *pos, *seq;
    int prefill;
} attp_arg;

static void attp_op(void *p) {
    attp_arg *a = p;
    const mlxr_cuda_out of = {MLXR_DTYPE_F32, a->out, NULL, NULL};
    if (a->prefill) {
        mlxr_attention_prefill_cuda(&a->kv, &a->sh, a->q, 12288, a->pos, a->seq, 512, &of, 0);
        return;
    }
    for (int t0 = 0; t0 < 512; t0 += 64) {
        const mlxr_cuda_out oc = {MLXR_DTYPE_F32, a->out + (size_t)t0 * 4096, NULL, NULL};
        mlxr_attention_cuda(&a->kv, &a->sh, a->q + (size_t)t0 * 12288, 12288, a->pos + t0, a->seq + t0, 64, a->po,
                            a->pml, &oc, 0);
    }
}

static void bench_attention_prefill(void) {
    static attp_arg a;
    const int n_ctx = 1024;
    a.sh = (mlxr_cuda_att_shape){32, 32, 128, n_ctx / MLXR_CUDA_ATT_SPLIT};
    void *kc, *vc;
    CK(cudaMalloc(&kc, (size_t)n_ctx * 4096 * 2));
    CK(cudaMalloc(&vc, (size_t)n_ctx * 4096 * 2));
    CK(cudaMemset(kc, 0, (size_t)n_ctx * 4096 * 2));
    CK(cudaMemset(vc, 0, (size_t)n_ctx * 4096 * 2));
    a.kv = (mlxr_cuda_kv){kc, vc, identity_table(n_ctx), n_ctx / 32, 4096};
    CK(cudaMalloc((void **)&a.q, (size_t)512 * 12288 * 4));
    CK(cudaMemset(a.q, 0, (size_t)512 * 12288 * 4));
    CK(cudaMalloc((void **)&a.out, (size_t)512 * 4096 * 4));
    CK(cudaMalloc((void **)&a.po, (size_t)64 * 32 * a.sh.n_split * 128 * 4));
    CK(cudaMalloc((void **)&a.pml, (size_t)64 * 32 * a.sh.n_split * 2 * 4));
    int32_t pos[512], seq[512] = {0};
    for (int i = 0; i < 512; i++) pos[i] = i;
    CK(cudaMalloc((void **)&a.pos, sizeof pos));
    CK(cudaMalloc((void **)&a.seq, sizeof seq));
    CK(cudaMemcpy(a.pos, pos, sizeof pos, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(a.seq, seq, sizeof seq, cudaMemcpyHostToDevice));
    for (a.prefill = 0; a.prefill < 2; a.prefill++)
        printf("| op | attention of a 512-token prompt, one 7B layer, %s | %.1f |\n",
               a.prefill ? "tensor-core prefill kernel (as used)" : "split kernel in 64-query chunks",
               time_op(attp_op, &a, 3, 10) * 1e6);
    void *bufs[] = {kc, vc, a.q, a.out, a.po, a.pml, a.pos, a.seq};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]);
}

/* Warnings of the library on stderr: a failed CUDA graph capture (the backend then falls back to
 * plain launches, slower) must not pass unnoticed in a benchmark. */
static void log_warn(mlxr_log_level level, const char *msg, void *user) {
    (void)user;
    if (level >= MLXR_LOG_WARN) fprintf(stderr, "mlxr: %s\n", msg);
}

static void bench_model(const char *path, double bw) {
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    double t0 = now_s();
    const mlxr_load_opts lo = {log_warn, NULL, false, true};
    if (mlxr_model_load(path, &lo, &m, &err) != MLXR_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return;
    }
    const mlxr_model_info *h = mlxr_model_get_info(m);
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = 1024;
    co.n_batch = 512;
    co.n_threads = 4;
    co.n_gpu_layers = -1;
    mlxr_context *c = NULL;
    if (mlxr_context_new(m, &co, &c, &err) != MLXR_OK) {
        fprintf(stderr, "%s: GPU context: %s\n", path, err.msg);
        mlxr_model_free(m);
        return;
    }
    const double t_load = now_s() - t0;
    int32_t ids[512], pos[512], seq[512] = {0};
    for (int i = 0; i < 512; i++) {
        ids[i] = (int32_t)(rnd() % (uint32_t)h->n_vocab);
        pos[i] = i;
    }
    double pp = 0, tg = 0;
    for (int rep = 0; rep < 3; rep++) { /* rep 0 warms up (graph capture, first launches) */
        mlxr_kv_clear(c, 0);
        mlxr_batch b = {512, ids, pos, seq, NULL};
        double a = now_s();
        if (mlxr_decode(c, &b, &err) != MLXR_OK) {
            fprintf(stderr, "pp: %s\n", err.msg);
            break;
        }
        const double t_pp = now_s() - a;
        a = now_s();
        int32_t tok = 1;
        for (int i = 0; i < 128; i++) {
            int32_t p = 512 + i, s0 = 0;
            mlxr_batch one = {1, &tok, &p, &s0, NULL};
            if (mlxr_decode(c, &one, &err) != MLXR_OK) {
                fprintf(stderr, "tg: %s\n", err.msg);
                break;
            }
            const float *lg = mlxr_get_logits(c, 0);
            tok = 0;
            for (int v = 1; v < h->n_vocab; v++)
                if (lg[v] > lg[tok]) tok = v;
        }
        const double t_tg = now_s() - a;
        if (rep > 0) {
            pp += 512 / t_pp / 2;
            tg += 128 / t_tg / 2;
        }
    }
    const double roof = bw * 1e9 / (double)h->n_bytes;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    printf("| model | %s | %.2f GB weights, %d layers, n_embd %d | load+upload %.1f s | pp512 %.0f tok/s | tg128 %.1f tok/s | roofline %.0f tok/s (%.0f%%) | PDL %s, fused swiglu %s |\n",
           base, h->n_bytes / 1e9, h->n_layer, h->n_embd, t_load, pp, tg, roof,
           100.0 * tg / roof, mlxr_cuda_pdl_enabled() ? "on" : "off",
           mlxr_cuda_fused_swiglu_enabled() ? "on" : "off");
    mlxr_context_free(c);
    mlxr_model_free(m);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--quantize")) { /* for gpu-check.sh where the CLI is not built */
        mlxr_quantize_opts qo = mlxr_quantize_default_opts();
        qo.preset = argv[4];
        mlxr_err err = {0};
        if (mlxr_model_quantize(argv[2], argv[3], &qo, &err) != MLXR_OK) {
            fprintf(stderr, "quantize: %s\n", err.msg);
            return 1;
        }
        return 0;
    }
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        printf("mlxr-bench-cuda: no CUDA device\n");
        return 0;
    }
    struct cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    const double bw = copy_bw();
    printf("| device | %s | %d SMs | %.0f GB | copy bw %.0f GB/s (read+write) |\n", p.name, p.multiProcessorCount,
           p.totalGlobalMem / 1e9, bw);
    const char *only = getenv("MLXR_BENCH_ONLY"); /* "models": skip the kernel tables; "matvec": only that one */
    if (!only || !strcmp(only, "matvec")) bench_matvec(bw);
    if (!only || !strcmp(only, "ops")) bench_ops();
    if (!only) {
        bench_gemm();
        bench_attention_prefill();
    }
    for (int i = 1; i < argc; i++) bench_model(argv[i], bw);
    return 0;
}
