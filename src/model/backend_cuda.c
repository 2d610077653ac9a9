/*
 * backend_cuda.c - the Llama forward pass on a CUDA device (see backend_cuda.h for the design).
 *
 * Per layer, on the context's stream, for the T rows of the batch:
 *   xn = rmsnorm(x (+= dx)) * g1;  q, k, v = W{q,k,v} . xn;  rope(q, k) and cache <- k, v
 *   att = attention(q, cache);  dx = Wo . att
 *   xn = rmsnorm(x += dx) * g2;  dx = Wdown . (silu(Wgate . xn) * (Wup . xn))
 * then xn = rmsnorm(x += dx) * g_out for the rows that want logits, and logits = Wout . xn.
 * Each residual add is fused into the next RMSNorm. Single-token batches (decode) replay a CUDA
 * graph captured on first use: its inputs (token, position, sequence) are copied from pinned host
 * memory by the graph itself, and the logits come back into pinned memory. Decode batches of up
 * to GRAPH_MAX_T rows (every row wants logits) replay a graph per shape (rows, one sequence or
 * several): the pass depends on nothing else of the batch on the host side, so a graph captured
 * once serves every later batch of that shape; the few most recently used shapes are kept.
 */
#include "model/backend_cuda.h"
#include "model/model.h"
#include "util/err.h"

#ifndef MLXR_HAVE_CUDA

int32_t mlxr_gpu_count(void) {
    return 0;
}

mlxr_status mlxr_cuda_context_new(mlxr_context *c, int32_t n_gpu_layers, mlxr_err *err) {
    (void)c;
    (void)n_gpu_layers;
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                     "n_gpu_layers is set but this build has no CUDA backend (configure with -DMLXR_CUDA=ON)");
}

void mlxr_cuda_context_free(mlxr_context *c) {
    (void)c;
}

mlxr_status mlxr_cuda_forward(mlxr_context *c, const mlxr_batch *b, mlxr_err *err) {
    (void)c;
    (void)b;
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "this build has no CUDA backend");
}

#else

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/act.h"
#include "kernels/cuda/argmax.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/cuda_err.h"
#include "kernels/cuda/matvec.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"

/*
 * Matrices that read the same input are concatenated by rows on upload when their types agree
 * (Q|K|V: [qdim + 2 kv_dim] rows; gate|up: [2 n_ff] rows): one launch instead of three or two,
 * and a grid large enough to fill the device even for the small K/V matrices.
 */
typedef struct gpu_layer {
    mlxr_cuda_mat wqkv[3];    /* Q|K|V when their types agree (n_qkv = 1), else runs of one type */
    int n_qkv;
    mlxr_cuda_mat wgu[2];     /* gate|up when their types agree (n_gu = 1), else gate, up */
    int n_gu;
    mlxr_cuda_mat wo, w_down;
    float *attn_norm, *ffn_norm; /* device [n_embd] */
} gpu_layer;

/* Queries per attention launch: bounds the split scratch (part_o) at ATT_TOKENS x n_head x
 * n_split x head_dim floats whatever n_batch is. */
#define ATT_TOKENS 64

/* Batches of more than this many rows of one sequence take the tensor-core prefill attention. */
#define ATT_PREFILL_MIN_T 8

/* Batched steps replayed from CUDA graphs: up to this many rows (their logits come back through
 * pinned memory of GRAPH_MAX_T rows), and up to GRAPH_SHAPES shapes kept at once. */
#define GRAPH_MAX_T 32
#define GRAPH_SHAPES 8

typedef struct batch_graph {
    int32_t T, R;
    bool one_seq;
    cudaGraphExec_t exec; /* NULL: slot free */
    uint64_t used;        /* last use, for replacing the least recently used shape */
} batch_graph;

struct mlxr_cuda_ctx {
    cudaStream_t st;
    int32_t n_layer, B; /* B: rows of scratch (n_batch) */
    gpu_layer *L;
    mlxr_cuda_mat tok_embd, output;
    bool output_tied;
    float *out_norm;
    void *k_cache, *v_cache;   /* f16 [n_layer][pool rows][kv_dim]: the paged pool's rows (kv.h) */
    int64_t layer_elems;       /* pool rows * kv_dim */
    int32_t *d_table;          /* device copy of the pool's block tables [n_seq][max_blocks] */
    int32_t *h_table;          /* pinned staging copy of them */
    int32_t max_blocks;
    size_t table_bytes;
    bool copy_failed;          /* a block copy (copy on write) failed: the cache is not to be trusted */
    mlxr_cuda_att_shape ash;
    float theta_scale;
    int32_t qdim, kv_dim, W, E, F, V; /* W = qdim + 2 kv_dim: a row of Q|K|V */
    /* device scratch (B rows each) */
    float *x, *xn, *dx, *qkv, *att, *gu, *hb, *logits, *part_o, *part_ml;
    void *xq;                  /* encoded activations: up to 2 bytes per element */
    float *xd;                 /* Q8_0 activation scales */
    /* decode with the norms fused into the products (fused_norm): the residual producers (Wo,
     * Wdown) write the next product's input to xq2/xd2 (one row, up to 4 bytes per element) and
     * the partial sums of squares of the new residual to ss ([2 n_layer + 1][E / 32], one slot
     * per norm) */
    bool fused_norm;
    void *xq2;
    float *xd2, *ss;
    float eps;
    int32_t *d_in;             /* [4][B]: token, pos, seq, logit source rows */
    int32_t *h_in;             /* pinned copy of d_in */
    float *h_logits;           /* pinned [V]: the graph's output */
    cudaGraphExec_t graph;
    bool graph_failed;
    batch_graph bg[GRAPH_SHAPES];
    uint64_t bg_clock;
    bool bg_failed;            /* a batched capture failed: batches run as plain launches */
    float *h_blogits;          /* pinned [GRAPH_MAX_T][V]: the batched graphs' logits (lazily) */
    bool one_seq;              /* the batch being enqueued has a single sequence */
};

/*
 * MLXR_CUDA_PROFILE=1: time every op of the passes that are not graph replays (the graph is then
 * not used) by synchronizing after it, and print the totals per op and shape to stderr when the
 * context is freed. A diagnostic for "where does a step go" on machines without Nsight; it
 * serializes the stream, so the totals overstate small kernels by their launch latency.
 */
#define PROF_MAX 64
typedef struct prof_ent {
    const char *name;
    int64_t rows, T;
    double s;
    long n;
} prof_ent;
static prof_ent prof_tab[PROF_MAX];
static int prof_n = -1; /* -1: not decided yet; 0: off or empty */
static double prof_t0;

static bool prof_on(void) {
    if (prof_n < 0) {
        const char *v = getenv("MLXR_CUDA_PROFILE");
        prof_n = v && *v && strcmp(v, "0") ? 0 : -2;
    }
    return prof_n >= 0;
}

static double prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void prof_mark(cudaStream_t st, const char *name, int64_t rows, int64_t T) {
    cudaStreamSynchronize(st);
    const double t = prof_now(), dt = t - prof_t0;
    prof_t0 = t;
    if (!name) return;
    int i = 0;
    while (i < prof_n && !(prof_tab[i].name == name && prof_tab[i].rows == rows && prof_tab[i].T == T)) i++;
    if (i == prof_n) {
        if (prof_n == PROF_MAX) return;
        prof_tab[prof_n++] = (prof_ent){name, rows, T, 0, 0};
    }
    prof_tab[i].s += dt;
    prof_tab[i].n++;
}

static void prof_print(void) {
    if (prof_n <= 0) return;
    fprintf(stderr, "CUDA op profile (synchronized after each op):\n%-22s %8s %6s %8s %10s %9s\n", "op", "rows", "T",
            "calls", "total ms", "us/call");
    for (int i = 0; i < prof_n; i++)
        fprintf(stderr, "%-22s %8lld %6lld %8ld %10.2f %9.1f\n", prof_tab[i].name, (long long)prof_tab[i].rows,
                (long long)prof_tab[i].T, prof_tab[i].n, 1e3 * prof_tab[i].s, 1e6 * prof_tab[i].s / (double)prof_tab[i].n);
    prof_n = 0;
}

int32_t mlxr_gpu_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

#define TRY(call)                                                                                 \
    do {                                                                                          \
        mlxr_status st_ = (call);                                                                 \
        if (st_ != MLXR_OK) return st_;                                                           \
    } while (0)

static mlxr_status dev_alloc(void **p, size_t n, mlxr_err *err, const char *what) {
    mlxr_status st = mlxr_cuda_status(cudaMalloc(p, n ? n : 1), err, what, __FILE__, __LINE__);
    if (st == MLXR_OK) st = mlxr_cuda_status(cudaMemset(*p, 0, n ? n : 1), err, what, __FILE__, __LINE__);
    return st;
}

static mlxr_status unsupported(const mlxr_weight *w, mlxr_err *err) {
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                     "CUDA backend: tensor '%s' of type %s (%lld x %lld) has no device kernel", w->name,
                     mlxr_dtype_name(w->type) ? mlxr_dtype_name(w->type) : "?", (long long)w->ne1,
                     (long long)w->ne0);
}

/* Upload n tensors with the same input: each run of consecutive tensors whose types and row
 * lengths agree as one row-concatenated matrix (*n_out = the number of runs, 1 when all agree). */
static mlxr_status upload_group(mlxr_cuda_mat *d, int *n_out, const mlxr_weight *const *w, int n, mlxr_err *err) {
    for (int i = 0; i < n; i++)
        if (!mlxr_cuda_mat_supported(w[i]->type, w[i]->ne0)) return unsupported(w[i], err);
    /* each run of consecutive matrices of one type and row length becomes one matrix: Q4_K_M's
     * layers with a Q6_K V keep Q|K in one launch */
    *n_out = 0;
    for (int i = 0, j; i < n; i = j) {
        int64_t rows = 0;
        for (j = i; j < n && w[j]->type == w[i]->type && w[j]->ne0 == w[i]->ne0; j++) rows += w[j]->ne1;
        mlxr_cuda_mat *m = &d[(*n_out)++];
        TRY(mlxr_cuda_mat_alloc(m, w[i]->type, w[i]->ne0, rows, err));
        for (int64_t k = i, r0 = 0; k < j; r0 += w[k]->ne1, k++)
            TRY(mlxr_cuda_mat_set_rows(m, r0, w[k]->data, w[k]->ne1, w[k]->row_bytes, err));
    }
    return MLXR_OK;
}

static mlxr_status upload_mat(mlxr_cuda_mat *d, const mlxr_weight *w, mlxr_err *err) {
    int n = 0;
    return upload_group(d, &n, &w, 1, err);
}

static mlxr_status upload_vec(float **d, const mlxr_weight *w, int64_t n, mlxr_err *err) {
    if (w->type != MLXR_DTYPE_F32 || w->ne0 != n)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "CUDA backend: norm '%s' must be F32 [%lld]", w->name,
                         (long long)n);
    TRY(dev_alloc((void **)d, (size_t)n * 4, err, "cudaMalloc(norm)"));
    return mlxr_cuda_status(cudaMemcpy(*d, w->data, (size_t)n * 4, cudaMemcpyHostToDevice), err,
                            "cudaMemcpy(norm)", __FILE__, __LINE__);
}

static mlxr_status check_shapes(const mlxr_model_info *h, mlxr_err *err) {
    if (h->n_head <= 0 || h->n_head_kv <= 0 || h->n_head % h->n_head_kv)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "CUDA backend: %d heads / %d KV heads", h->n_head,
                         h->n_head_kv);
    if (h->head_dim % 8 || h->head_dim > 1024 || h->n_rot % 2 || h->n_rot > h->head_dim)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "CUDA backend: head_dim %d must be a multiple of 8 (<= 1024) and n_rot %d even <= head_dim",
                         h->head_dim, h->n_rot);
    return MLXR_OK;
}

/* Whether decode steps can run with the norms fused into the products (see fused_norm). */
static bool fused_norm_ok(const mlxr_cuda_ctx *g) {
    if (!mlxr_cuda_fused_norm_enabled() || mlxr_cuda_fused_swiglu_enabled()) return false;
    if (g->E % 32 || g->E > 32 * MLXR_CUDA_RMS_PARTS) return false;
    for (int32_t il = 0; il < g->n_layer; il++) {
        const gpu_layer *L = &g->L[il];
        if (!mlxr_matmul_resid_supported_cuda(&L->wo, MLXR_DTYPE_F32) ||
            !mlxr_matmul_resid_supported_cuda(&L->w_down, MLXR_DTYPE_F32))
            return false;
        /* only when every reader takes Q8_0 (Q8_0, Q4_0, K-quant and MLX weights), where it
         * measured faster on an H100 (7B tg128: Q4_0 429 -> 465, Q8_0 287 -> 302 tok/s). F16
         * readers: the clustered 4-row producers cost more than the norm saves: 186.7 -> 183.4. */
        for (int i = 0; i < L->n_qkv; i++)
            if (mlxr_cuda_act_enc(&L->wqkv[i], 1) != MLXR_CUDA_ENC_Q8_0) return false;
        for (int i = 0; i < L->n_gu; i++)
            if (mlxr_cuda_act_enc(&L->wgu[i], 1) != MLXR_CUDA_ENC_Q8_0) return false;
    }
    return true;
}

static mlxr_status ctx_init(mlxr_context *c, mlxr_cuda_ctx *g, mlxr_err *err) {
    const mlxr_model *m = c->m;
    const mlxr_model_info *h = &m->info;
    TRY(check_shapes(h, err));
    if (c->n_batch > 65535)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "CUDA backend: n_batch %d > 65535", c->n_batch);
    int n_dev = 0;
    mlxr_status st = mlxr_cuda_status(cudaGetDeviceCount(&n_dev), err, "cudaGetDeviceCount", __FILE__, __LINE__);
    if (st != MLXR_OK) {
        cudaGetLastError();
        return st;
    }
    if (n_dev < 1) return MLXR_FAIL(err, MLXR_ERR_CUDA, "CUDA backend: no CUDA device");
    MLXR_CUDA_TRY(err, cudaSetDevice(0));
    MLXR_CUDA_TRY(err, cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking));

    g->n_layer = h->n_layer;
    g->B = c->n_batch;
    g->E = h->n_embd;
    g->F = h->n_ff;
    g->V = h->n_vocab;
    g->kv_dim = c->kv_dim;
    g->qdim = h->n_head * h->head_dim;
    g->W = g->qdim + 2 * g->kv_dim;
    g->ash.n_head = h->n_head;
    g->ash.n_head_kv = h->n_head_kv;
    g->ash.head_dim = h->head_dim;
    g->ash.n_split = (c->n_ctx + MLXR_CUDA_ATT_SPLIT - 1) / MLXR_CUDA_ATT_SPLIT;
    g->theta_scale = powf(h->rope_freq_base, -2.0f / (float)h->n_rot);
    int smem_max = 0;
    MLXR_CUDA_TRY(err, cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    if (mlxr_attention_smem_cuda(&g->ash) > (size_t)smem_max)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "CUDA backend: attention needs %zu bytes of shared memory per block, device has %d",
                         mlxr_attention_smem_cuda(&g->ash), smem_max);

    /* weights, in their stored types */
    g->L = calloc((size_t)h->n_layer, sizeof *g->L);
    if (!g->L) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    TRY(upload_mat(&g->tok_embd, &m->tok_embd, err));
    g->output_tied = m->output.data == m->tok_embd.data;
    if (g->output_tied)
        g->output = g->tok_embd;
    else
        TRY(upload_mat(&g->output, &m->output, err));
    TRY(upload_vec(&g->out_norm, &m->output_norm, g->E, err));
    for (int32_t il = 0; il < h->n_layer; il++) {
        const mlxr_layer *L = &m->layers[il];
        gpu_layer *D = &g->L[il];
        const mlxr_weight *qkv[3] = {&L->wq, &L->wk, &L->wv}, *gu[2] = {&L->w_gate, &L->w_up};
        if (L->wq.ne1 != g->qdim || L->wk.ne1 != g->kv_dim || L->wv.ne1 != g->kv_dim || L->w_gate.ne1 != g->F ||
            L->w_up.ne1 != g->F)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, "CUDA backend: layer %d: unexpected Q/K/V or FFN shapes", il);
        TRY(upload_group(D->wqkv, &D->n_qkv, qkv, 3, err));
        TRY(upload_group(D->wgu, &D->n_gu, gu, 2, err));
        TRY(upload_mat(&D->wo, &L->wo, err));
        TRY(upload_mat(&D->w_down, &L->w_down, err));
        TRY(upload_vec(&D->attn_norm, &L->attn_norm, g->E, err));
        TRY(upload_vec(&D->ffn_norm, &L->ffn_norm, g->E, err));
    }

    /* KV cache: the rows of the context's paged pool (F16), the pool's own block numbering; its
     * size is the pool's, i.e. kv_mem_bytes (or every sequence's full context by default) */
    const mlxr_kv_pool *P = &c->kv;
    g->layer_elems = (int64_t)P->n_block * MLXR_CUDA_KV_BLOCK * g->kv_dim;
    const size_t kv_bytes = (size_t)g->layer_elems * (size_t)h->n_layer * 2;
    TRY(dev_alloc(&g->k_cache, kv_bytes, err, "cudaMalloc(K cache)"));
    TRY(dev_alloc(&g->v_cache, kv_bytes, err, "cudaMalloc(V cache)"));
    g->max_blocks = P->max_blocks;
    g->table_bytes = (size_t)P->n_seq * (size_t)P->max_blocks * 4;
    TRY(dev_alloc((void **)&g->d_table, g->table_bytes, err, "cudaMalloc(block tables)"));
    MLXR_CUDA_TRY(err, cudaMallocHost((void **)&g->h_table, g->table_bytes));
    const size_t B = (size_t)g->B;
    size_t wide = (size_t)g->E;
    if ((size_t)g->F > wide) wide = (size_t)g->F;
    if ((size_t)g->qdim > wide) wide = (size_t)g->qdim;
    const size_t parts = (B < ATT_TOKENS ? B : ATT_TOKENS) * (size_t)h->n_head * (size_t)g->ash.n_split;
    TRY(dev_alloc((void **)&g->x, B * g->E * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->xn, B * wide * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->dx, B * g->E * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->qkv, B * g->W * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->att, B * g->qdim * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->gu, B * 2 * g->F * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->hb, B * g->F * 4, err, "cudaMalloc(scratch)"));
    TRY(dev_alloc((void **)&g->logits, B * g->V * 4, err, "cudaMalloc(logits)"));
    TRY(dev_alloc((void **)&g->part_o, parts * h->head_dim * 4, err, "cudaMalloc(attention splits)"));
    TRY(dev_alloc((void **)&g->part_ml, parts * 2 * 4, err, "cudaMalloc(attention splits)"));
    TRY(dev_alloc(&g->xq, B * wide * 2, err, "cudaMalloc(activations)"));
    TRY(dev_alloc((void **)&g->xd, B * (wide / 32 + 1) * 4, err, "cudaMalloc(activations)"));
    TRY(dev_alloc((void **)&g->d_in, 4 * B * 4, err, "cudaMalloc(batch)"));
    TRY(dev_alloc(&g->xq2, (size_t)g->E * 4, err, "cudaMalloc(activations)"));
    TRY(dev_alloc((void **)&g->xd2, ((size_t)g->E / 32 + 1) * 4, err, "cudaMalloc(activations)"));
    TRY(dev_alloc((void **)&g->ss, (2 * (size_t)h->n_layer + 1) * ((size_t)g->E / 32 + 1) * 4, err,
                  "cudaMalloc(norm sums)"));
    g->eps = h->rms_eps;
    g->fused_norm = fused_norm_ok(g);
    MLXR_CUDA_TRY(err, cudaMallocHost((void **)&g->h_in, 4 * B * 4));
    MLXR_CUDA_TRY(err, cudaMallocHost((void **)&g->h_logits, (size_t)g->V * 4));
    return MLXR_OK;
}

static void ctx_release(mlxr_cuda_ctx *g) {
    prof_print();
    if (g->L)
        for (int32_t il = 0; il < g->n_layer; il++) {
            gpu_layer *D = &g->L[il];
            for (int i = 0; i < 3; i++) mlxr_cuda_mat_free(&D->wqkv[i]);
            for (int i = 0; i < 2; i++) mlxr_cuda_mat_free(&D->wgu[i]);
            mlxr_cuda_mat_free(&D->wo);
            mlxr_cuda_mat_free(&D->w_down);
            cudaFree(D->attn_norm);
            cudaFree(D->ffn_norm);
        }
    free(g->L);
    if (!g->output_tied) mlxr_cuda_mat_free(&g->output);
    mlxr_cuda_mat_free(&g->tok_embd);
    void *bufs[] = {g->out_norm, g->k_cache, g->v_cache, g->d_table, g->x, g->xn, g->dx, g->qkv, g->att, g->gu,
                    g->hb, g->logits, g->part_o, g->part_ml, g->xq, g->xd, g->d_in, g->xq2, g->xd2, g->ss};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) cudaFree(bufs[i]);
    cudaFreeHost(g->h_in);
    cudaFreeHost(g->h_table);
    cudaFreeHost(g->h_logits);
    cudaFreeHost(g->h_blogits);
    if (g->graph) cudaGraphExecDestroy(g->graph);
    for (int i = 0; i < GRAPH_SHAPES; i++)
        if (g->bg[i].exec) cudaGraphExecDestroy(g->bg[i].exec);
    if (g->st) cudaStreamDestroy(g->st);
    free(g);
}

/* The pool copies block `from` into `to` (copy on write when a sequence is cut inside a shared
 * block): every layer's K and V rows of the block, device to device, in stream order. */
static void copy_rows(void *user, int32_t to, int32_t from) {
    mlxr_cuda_ctx *g = user;
    const size_t blk = (size_t)MLXR_CUDA_KV_BLOCK * (size_t)g->kv_dim * 2, pitch = (size_t)g->layer_elems * 2;
    for (int i = 0; i < 2; i++) {
        uint8_t *base = i ? g->v_cache : g->k_cache;
        if (cudaMemcpy2DAsync(base + (size_t)to * blk, pitch, base + (size_t)from * blk, pitch, blk,
                              (size_t)g->n_layer, cudaMemcpyDeviceToDevice, g->st) != cudaSuccess)
            g->copy_failed = true;
    }
}

mlxr_status mlxr_cuda_context_new(mlxr_context *c, int32_t n_gpu_layers, mlxr_err *err) {
    if (n_gpu_layers > 0 && n_gpu_layers < c->m->info.n_layer)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "CUDA backend: partial offload (%d of %d layers) is not supported; use -1",
                         n_gpu_layers, c->m->info.n_layer);
    mlxr_cuda_ctx *g = calloc(1, sizeof *g);
    if (!g) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for the CUDA context");
    mlxr_status st = ctx_init(c, g, err);
    if (st != MLXR_OK) {
        ctx_release(g);
        return st;
    }
    c->gpu = g;
    c->kv.copy_rows = copy_rows;
    c->kv.copy_user = g;
    return MLXR_OK;
}

void mlxr_cuda_context_free(mlxr_context *c) {
    if (!c || !c->gpu) return;
    ctx_release(c->gpu);
    c->gpu = NULL;
}

/* ---- the pass --------------------------------------------------------------------------------- */

#define LAUNCH_ROWS(err, call, name, rows, T)                                                     \
    do {                                                                                          \
        mlxr_status st_ = mlxr_cuda_status((call), (err), name, __FILE__, __LINE__);              \
        if (st_ != MLXR_OK) return st_;                                                           \
        if (prof_n >= 0) prof_mark(g->st, name, rows, T);                                         \
    } while (0)
#define LAUNCH(err, call, name) LAUNCH_ROWS(err, call, name, 0, T)

/* What the rows of an op's output hold for the products that read them: `out` (the op writes f32
 * rows, or encodes them directly when every reader takes the same directly-writable encoding),
 * and `have`, the encoding already in out.q (-1: none yet; set by the first product that
 * encodes, so that readers sharing an encoding encode once). */
typedef struct act_in {
    mlxr_cuda_out out;
    int have;
} act_in;

/* The input for n matrices reading the same T rows (f32 rows at f32). */
static act_in act_for(mlxr_cuda_ctx *g, const mlxr_cuda_mat *w, int n, int32_t T, float *f32) {
    const mlxr_cuda_enc e = mlxr_cuda_act_enc(&w[0], T);
    mlxr_dtype d = mlxr_cuda_enc_direct(e);
    for (int i = 1; i < n; i++)
        if (mlxr_cuda_act_enc(&w[i], T) != e) d = MLXR_DTYPE_F32;
    const int have = d == MLXR_DTYPE_Q8_0 ? MLXR_CUDA_ENC_Q8_0
                   : d == MLXR_DTYPE_F16  ? MLXR_CUDA_ENC_F16
                                          : -1;
    return (act_in){{d, f32, g->xq, g->xd}, have};
}

/* *x = w's input for T rows as `in` holds it, encoded first (into in->out.q/d) if w needs an
 * encoding that `in` does not have yet. */
static mlxr_status input_for(mlxr_cuda_ctx *g, const mlxr_cuda_mat *w, act_in *in, int32_t T, const void **x,
                             mlxr_err *err) {
    const mlxr_cuda_enc e = mlxr_cuda_act_enc(w, T);
    if (e != MLXR_CUDA_ENC_F32 && in->have != (int)e) {
        if (in->out.type != MLXR_DTYPE_F32)
            return MLXR_FAIL(err, MLXR_ERR_INTERNAL, "CUDA backend: activations held encoded, needed as %d", (int)e);
        LAUNCH_ROWS(err, mlxr_encode_cuda(e, in->out.y, w->ne0, T, in->out.q, in->out.d, g->st), "encode activations",
                    w->ne0, T);
        in->have = (int)e;
    }
    *x = e == MLXR_CUDA_ENC_F32 ? (const void *)in->out.y : in->out.q;
    return MLXR_OK;
}

/* y (row stride ldy) = w . x for T rows, x as `in` holds it (encoded here first if needed); or,
 * with swiglu set, the fused gate|up + SwiGLU product of one row into *swiglu (y unused). */
static mlxr_status matmul(mlxr_cuda_ctx *g, const mlxr_cuda_mat *w, act_in *in, int32_t T, float *y, int64_t ldy,
                          const mlxr_cuda_out *swiglu, mlxr_err *err) {
    const void *x = NULL;
    TRY(input_for(g, w, in, T, &x, err));
    if (swiglu)
        LAUNCH_ROWS(err, mlxr_matmul_swiglu_cuda(w, x, in->out.d, swiglu, g->st), "matmul + swiglu", w->ne1, T);
    else
        LAUNCH_ROWS(err, mlxr_matmul_cuda(w, x, in->out.d, T, y, ldy, g->st), "matmul", w->ne1, T);
    return MLXR_OK;
}

/* The input of the n matrices at w when a residual producer writes it (fused_norm): Q8_0, the
 * only encoding fused_norm_ok admits for them, in xq2/xd2. */
static act_in fused_in(mlxr_cuda_ctx *g, const mlxr_cuda_mat *w, int n) {
    act_in a = act_for(g, w, n, 1, NULL);
    a.out.q = g->xq2;
    a.out.d = g->xd2;
    return a;
}

/* x += w . in (decode), and `next` = the next norm's input x * gn, its partial sums in ss. */
static mlxr_status matmul_resid(mlxr_cuda_ctx *g, const mlxr_cuda_mat *w, act_in *in, const float *gn, float *ss,
                                const act_in *next, mlxr_err *err) {
    const int32_t T = 1;
    const void *x = NULL;
    TRY(input_for(g, w, in, T, &x, err));
    LAUNCH_ROWS(err, mlxr_matmul_resid_cuda(w, x, in->out.d, g->x, gn, ss, &next->out, g->st), "matmul + residual",
                w->ne1, T);
    return MLXR_OK;
}

/* Enqueue the whole pass for T rows (inputs already in d_in), R logit rows into g->logits. */
static mlxr_status enqueue(mlxr_context *c, mlxr_cuda_ctx *g, int32_t T, int32_t R, mlxr_err *err) {
    const mlxr_model_info *h = &c->m->info;
    const int32_t *tok = g->d_in, *pos = g->d_in + g->B, *seq = g->d_in + 2 * g->B;
    const int32_t *rows = g->d_in + 3 * g->B;
    const float eps = h->rms_eps;
    const int32_t W = g->W, F = g->F;
    /* a decode step splits each RMSNorm but the first and the last across the ops around it
     * (matvec.h): Wo and Wdown add to x and write the next product's input x * g with the partial
     * sums of squares; RoPE + KV store and SwiGLU apply the norm's scale; no norm launch */
    const bool fn = T == 1 && g->fused_norm;
    const int64_t nss = g->E / 32 + 1;
    act_in nin = {{MLXR_DTYPE_F32, NULL, NULL, NULL}, -1}; /* fn: the input Wdown wrote */
    LAUNCH(err, mlxr_embed_cuda(&g->tok_embd, tok, T, g->x, g->st), "embed");
    for (int32_t il = 0; il < g->n_layer; il++) {
        const gpu_layer *L = &g->L[il];
        /* attention block; the previous layer's FFN output is added to x here */
        act_in in;
        mlxr_cuda_rms rms = {NULL, g->E, g->eps};
        if (fn && il > 0) {
            in = nin;
            rms.ss = g->ss + (2 * il) * nss;
        } else {
            in = act_for(g, L->wqkv, L->n_qkv, T, g->xn);
            LAUNCH(err,
                   mlxr_add_rmsnorm_cuda(g->x, il ? g->dx : NULL, L->attn_norm, &in.out, NULL, T, g->E, eps, g->st),
                   "rmsnorm");
        }
        for (int i = 0, r0 = 0; i < L->n_qkv; r0 += (int)L->wqkv[i].ne1, i++)
            TRY(matmul(g, &L->wqkv[i], &in, T, g->qkv + r0, W, NULL, err));
        float *q = g->qkv, *k = g->qkv + g->qdim, *v = k + g->kv_dim;
        const mlxr_cuda_kv kv = {(uint16_t *)g->k_cache + il * g->layer_elems,
                                 (uint16_t *)g->v_cache + il * g->layer_elems, g->d_table, g->max_blocks, g->kv_dim};
        LAUNCH(err, mlxr_rope_kv_store_cuda(q, k, v, W, h->n_head, h->n_head_kv, h->head_dim, h->n_rot, pos, seq, T,
                                            g->theta_scale, &kv, &rms, g->st),
               "rope + kv store");
        /* attention output straight in Wo's encoding when the rows split into whole Q8_0 blocks */
        act_in att_in = act_for(g, &L->wo, 1, T, g->att);
        if (att_in.out.type == MLXR_DTYPE_Q8_0 && h->head_dim % 32)
            att_in = (act_in){{MLXR_DTYPE_F32, g->att, g->xq, g->xd}, -1};
        const mlxr_cuda_out att_out = att_in.out;
        if (g->one_seq && T > ATT_PREFILL_MIN_T && mlxr_attention_prefill_supported_cuda(&g->ash, att_out.type)) {
            LAUNCH(err, mlxr_attention_prefill_cuda(&kv, &g->ash, q, W, pos, seq, T, &att_out, g->st), "attention");
        } else {
            for (int32_t t0 = 0; t0 < T; t0 += ATT_TOKENS) { /* bounded split scratch for long batches */
                const size_t o = (size_t)t0 * g->qdim;
                const mlxr_cuda_out chunk = {att_out.type, g->att + o,
                                             (uint8_t *)g->xq + o * (att_out.type == MLXR_DTYPE_F16 ? 2 : 1),
                                             g->xd + o / 32};
                LAUNCH(err, mlxr_attention_cuda(&kv, &g->ash, q + (size_t)t0 * W, W, pos + t0, seq + t0,
                                                T - t0 < ATT_TOKENS ? T - t0 : ATT_TOKENS, g->part_o, g->part_ml,
                                                &chunk, g->st),
                       "attention");
            }
        }
        /* FFN block */
        if (fn) {
            float *ss = g->ss + (2 * il + 1) * nss;
            in = fused_in(g, L->wgu, L->n_gu);
            rms.ss = ss;
            TRY(matmul_resid(g, &L->wo, &att_in, L->ffn_norm, ss, &in, err));
        } else { /* rms.ss is NULL here: set only when fn */
            TRY(matmul(g, &L->wo, &att_in, T, g->dx, g->E, NULL, err));
            in = act_for(g, L->wgu, L->n_gu, T, g->xn);
            LAUNCH(err, mlxr_add_rmsnorm_cuda(g->x, g->dx, L->ffn_norm, &in.out, NULL, T, g->E, eps, g->st),
                   "rmsnorm");
        }
        act_in act = act_for(g, &L->w_down, 1, T, g->hb);
        if (L->n_gu == 1 && mlxr_cuda_fused_swiglu_enabled() &&
            mlxr_matmul_swiglu_supported_cuda(&L->wgu[0], T, act.out.type)) {
            /* gate|up + SwiGLU in one launch (decode); its encoded output goes to the gate|up scratch,
             * free here, because its input in xq/xd is still being read while it writes */
            act.out.q = g->gu;
            act.out.d = g->gu + F;
            TRY(matmul(g, &L->wgu[0], &in, T, NULL, 0, &act.out, err));
        } else {
            for (int i = 0, r0 = 0; i < L->n_gu; r0 += (int)L->wgu[i].ne1, i++)
                TRY(matmul(g, &L->wgu[i], &in, T, g->gu + r0, 2 * F, NULL, err));
            LAUNCH(err, mlxr_swiglu_cuda(g->gu, g->gu + F, 2 * F, F, T, &act.out, &rms, g->st), "swiglu");
        }
        if (fn && il + 1 < g->n_layer) {
            nin = fused_in(g, g->L[il + 1].wqkv, g->L[il + 1].n_qkv);
            TRY(matmul_resid(g, &L->w_down, &act, g->L[il + 1].attn_norm, g->ss + (2 * il + 2) * nss, &nin, err));
        } else {
            TRY(matmul(g, &L->w_down, &act, T, g->dx, g->E, NULL, err));
        }
    }
    /* last residual add + output norm, only for the rows that want logits */
    act_in in = act_for(g, &g->output, 1, R, g->xn);
    LAUNCH(err, mlxr_add_rmsnorm_cuda(g->x, g->dx, g->out_norm, &in.out, rows, R, g->E, eps, g->st), "rmsnorm");
    return matmul(g, &g->output, &in, R, g->logits, g->V, NULL, err);
}

/* Capture one pass of T rows (R of them wanting logits) into *exec: inputs in, pass, logits out
 * into `h_out` (pinned). */
static mlxr_status capture_pass(mlxr_context *c, mlxr_cuda_ctx *g, int32_t T, int32_t R, float *h_out,
                                cudaGraphExec_t *exec, mlxr_err *err) {
    const size_t in_bytes = 4 * (size_t)g->B * 4;
    *exec = NULL;
    MLXR_CUDA_TRY(err, cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal));
    mlxr_status st = mlxr_cuda_status(cudaMemcpyAsync(g->d_in, g->h_in, in_bytes, cudaMemcpyHostToDevice, g->st),
                                      err, "cudaMemcpyAsync(batch)", __FILE__, __LINE__);
    if (st == MLXR_OK)
        st = mlxr_cuda_status(cudaMemcpyAsync(g->d_table, g->h_table, g->table_bytes, cudaMemcpyHostToDevice, g->st),
                              err, "cudaMemcpyAsync(block tables)", __FILE__, __LINE__);
    if (st == MLXR_OK) st = enqueue(c, g, T, R, err);
    if (st == MLXR_OK && R > 0)
        st = mlxr_cuda_status(
            cudaMemcpyAsync(h_out, g->logits, (size_t)R * g->V * 4, cudaMemcpyDeviceToHost, g->st), err,
            "cudaMemcpyAsync(logits)", __FILE__, __LINE__);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(g->st, &graph);
    if (st == MLXR_OK) st = mlxr_cuda_status(e, err, "cudaStreamEndCapture", __FILE__, __LINE__);
    if (st == MLXR_OK)
        st = mlxr_cuda_status(cudaGraphInstantiate(exec, graph, 0), err, "cudaGraphInstantiate", __FILE__, __LINE__);
    if (graph) cudaGraphDestroy(graph);
    if (st != MLXR_OK) {
        *exec = NULL;
        cudaGetLastError();
    }
    return st;
}

static void warn_plain(mlxr_context *c, const mlxr_err *err) {
    if (!c->m->log) return;
    char msg[MLXR_ERR_MSG_MAX + 64];
    snprintf(msg, sizeof msg, "CUDA graph capture failed (%s); using plain launches", err ? err->msg : "?");
    c->m->log(MLXR_LOG_WARN, msg, c->m->log_user);
}

/* The graph of a batch of T rows, R logit rows (g->one_seq as the batch has it): the cached one
 * of that shape, or a new capture in the least recently used slot. NULL when capturing fails
 * (g->bg_failed is then set; err is cleared). */
static cudaGraphExec_t batch_graph_for(mlxr_context *c, mlxr_cuda_ctx *g, int32_t T, int32_t R, mlxr_err *err) {
    batch_graph *slot = &g->bg[0];
    for (int i = 0; i < GRAPH_SHAPES; i++) {
        batch_graph *b = &g->bg[i];
        if (b->exec && b->T == T && b->R == R && b->one_seq == g->one_seq) {
            b->used = ++g->bg_clock;
            return b->exec;
        }
        if (!b->exec || (slot->exec && b->used < slot->used)) slot = b;
    }
    mlxr_status st = MLXR_OK;
    if (!g->h_blogits)
        st = mlxr_cuda_status(cudaMallocHost((void **)&g->h_blogits, (size_t)GRAPH_MAX_T * g->V * 4), err,
                              "cudaMallocHost(batch logits)", __FILE__, __LINE__);
    if (slot->exec) {
        cudaGraphExecDestroy(slot->exec);
        slot->exec = NULL;
    }
    if (st == MLXR_OK) st = capture_pass(c, g, T, R, g->h_blogits, &slot->exec, err);
    if (st != MLXR_OK) {
        g->bg_failed = true;
        warn_plain(c, err);
        mlxr_err_clear(err);
        return NULL;
    }
    *slot = (batch_graph){T, R, g->one_seq, slot->exec, ++g->bg_clock};
    return slot->exec;
}

/* One single-token step (a decode step): the captured graph when it works, else plain launches.
 * The row's inputs are in h_in row 0 and the tables in h_table; logits go to `logits` (n_vocab
 * floats) when it is not NULL. */
static mlxr_status step_one(mlxr_context *c, mlxr_cuda_ctx *g, float *logits, mlxr_err *err) {
    g->one_seq = true;
    g->h_in[3 * g->B] = 0;
    if (prof_on()) g->graph_failed = true; /* profiled passes run op by op */
    if (!g->graph_failed && !g->graph && capture_pass(c, g, 1, 1, g->h_logits, &g->graph, err) != MLXR_OK) {
        g->graph_failed = true; /* fall back to plain launches from now on */
        warn_plain(c, err);
        mlxr_err_clear(err);
    }
    if (g->graph) {
        MLXR_CUDA_TRY(err, cudaGraphLaunch(g->graph, g->st));
        MLXR_CUDA_TRY(err, cudaStreamSynchronize(g->st));
        if (logits) memcpy(logits, g->h_logits, (size_t)g->V * 4);
        return MLXR_OK;
    }
    MLXR_CUDA_TRY(err, cudaMemcpyAsync(g->d_in, g->h_in, 4 * (size_t)g->B * 4, cudaMemcpyHostToDevice, g->st));
    MLXR_CUDA_TRY(err, cudaMemcpyAsync(g->d_table, g->h_table, g->table_bytes, cudaMemcpyHostToDevice, g->st));
    if (prof_on()) prof_mark(g->st, NULL, 0, 0);
    TRY(enqueue(c, g, 1, 1, err));
    MLXR_CUDA_TRY(err, cudaMemcpyAsync(g->h_logits, g->logits, (size_t)g->V * 4, cudaMemcpyDeviceToHost, g->st));
    MLXR_CUDA_TRY(err, cudaStreamSynchronize(g->st));
    if (logits) memcpy(logits, g->h_logits, (size_t)g->V * 4);
    return MLXR_OK;
}

mlxr_status mlxr_cuda_forward(mlxr_context *c, const mlxr_batch *b, mlxr_err *err) {
    mlxr_cuda_ctx *g = c->gpu;
    const int32_t T = b->n, B = g->B;
    if (g->copy_failed)
        return MLXR_FAIL(err, MLXR_ERR_CUDA, "CUDA backend: a KV block copy failed earlier; the cache is unusable");
    MLXR_CUDA_TRY(err, cudaSetDevice(0));
    /* the block tables as the pool holds them now (mlxr_decode grew the sequences already) */
    memcpy(g->h_table, c->kv.table, g->table_bytes);
    if (T == 1 || c->batch_invariant) {
        /* Single tokens, and batch_invariant batches row by row: each row then runs exactly the
         * decode step's kernels, whatever else is in the batch (rows of one sequence come in
         * position order, so running them one after the other is the causal computation). */
        for (int32_t i = 0; i < T; i++) {
            g->h_in[0] = b->token[i];
            g->h_in[B] = b->pos[i];
            g->h_in[2 * B] = b->seq[i];
            const int32_t r = c->logit_row[i];
            TRY(step_one(c, g, r >= 0 ? c->logits + (size_t)r * g->V : NULL, err));
        }
        return MLXR_OK;
    }
    int32_t R = 0;
    g->one_seq = true;
    for (int32_t i = 0; i < T; i++) {
        g->one_seq = g->one_seq && b->seq[i] == b->seq[0];
        g->h_in[i] = b->token[i];
        g->h_in[B + i] = b->pos[i];
        g->h_in[2 * B + i] = b->seq[i];
        if (c->logit_row[i] >= 0) g->h_in[3 * B + c->logit_row[i]] = i;
        if (c->logit_row[i] >= 0) R++;
    }
    cudaGraphExec_t ge = NULL;
    /* decode batches only (every row wants logits): their shapes repeat step after step, while
     * prompt chunks come in every length and a capture (a few ms) would cost more than it saves */
    if (T <= GRAPH_MAX_T && R == T && !g->bg_failed && !prof_on() && mlxr_cuda_batch_graphs_enabled())
        ge = batch_graph_for(c, g, T, R, err);
    if (ge) {
        MLXR_CUDA_TRY(err, cudaGraphLaunch(ge, g->st));
        MLXR_CUDA_TRY(err, cudaStreamSynchronize(g->st));
        if (R > 0) memcpy(c->logits, g->h_blogits, (size_t)R * g->V * 4);
        return MLXR_OK;
    }
    MLXR_CUDA_TRY(err, cudaMemcpyAsync(g->d_in, g->h_in, 4 * (size_t)B * 4, cudaMemcpyHostToDevice, g->st));
    MLXR_CUDA_TRY(err, cudaMemcpyAsync(g->d_table, g->h_table, g->table_bytes, cudaMemcpyHostToDevice, g->st));
    if (prof_on()) prof_mark(g->st, NULL, 0, 0);
    TRY(enqueue(c, g, T, R, err));
    if (R > 0)
        MLXR_CUDA_TRY(err, cudaMemcpyAsync(c->logits, g->logits, (size_t)R * g->V * 4, cudaMemcpyDeviceToHost, g->st));
    MLXR_CUDA_TRY(err, cudaStreamSynchronize(g->st));
    return MLXR_OK;
}

#endif /* MLXR_HAVE_CUDA */
