/*
 * llama.c - the Llama forward pass over a batch of (token, position, sequence) entries.
 *
 * Per layer:  x += Wo . attn(rope(Wq . n1), rope(Wk . n1), Wv . n1),  n1 = rmsnorm(x) * g1
 *             x += Wdown . (silu(Wgate . n2) * (Wup . n2)),           n2 = rmsnorm(x) * g2
 * then logits = Wout . (rmsnorm(x) * g_out) for the entries that asked for them.
 *
 * Numerics follow llama.cpp's CPU path so that outputs match its references: activations are
 * encoded to the weight type's vec_dot_type before each matrix product (F16 for F16 weights,
 * Q8_0 blocks for Q8_0/Q4_0); with an F16 KV cache, K and V are stored as F16, Q is rounded to
 * F16 for Q.K, and the softmax probabilities to F16 for P.V.
 *
 * The batch was validated by mlxr_decode, so nothing here can fail. Work is split across the
 * context's thread pool: matrix products by chunks of output rows, attention (attention.c) by
 * heads, both handed out dynamically; row-wise steps (RMSNorm + encoding) by rows. Steps that
 * need no meeting of the threads in between run in one pass: RMSNorm with the encoding of its
 * output, the Q/K/V products, gate/up with SwiGLU and the down input's encoding, and each
 * residual add with the product it adds. None of this changes a number: every output row is
 * computed by the same operations whichever thread or pass computes it.
 */
#include "format/dtype.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "util/fp16.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* ---- matrix products ------------------------------------------------------------------- */

/*
 * One parallel pass of up to three products that read the same encoded input (Q, K, V; gate,
 * up), so the threads meet once instead of once per weight. Rows are handed out in chunks of
 * CHUNK_ROWS: each thread owns a contiguous range of chunks and takes them in order (one
 * sequential stream of weights per thread), then takes what is left of the others' ranges, so a
 * thread that the OS descheduled (a loaded machine) does not hold the others up. Every output
 * row is one independent product and chunk boundaries do not depend on the thread count, so
 * neither the fusion nor the hand-out changes a number.
 * Epilogues run on a chunk's rows right after its products, without a meeting: SwiGLU of y[0]
 * with y[1] (a chunk then covers the same rows of both) followed by encoding the result for the
 * next product (chunks then start at block boundaries of that encoding), or the residual add.
 */
typedef struct matmul_job {
    const mlxr_context *c;
    int n_w;
    const mlxr_weight *w[3]; /* [ne1][ne0], one vec_dot_type */
    float *y[3];             /* [T][w->ne1] */
    const void *xq;          /* [T] rows of ne0 elements in that vec_dot_type, stride c->xq_row */
    int32_t T;
    int64_t chunk;           /* rows per chunk; set by matmul_run */
    bool swiglu;             /* y[0] = silu(y[0]) * y[1] (same shape) */
    mlxr_from_float_fn enc;  /* if set: encode the chunk's rows of y[0] into xq_out */
    int64_t enc_blk;         /* elements per block of enc's type */
    size_t enc_bytes;        /* bytes per block of enc's type */
    void *xq_out;            /* stride c->xq_row */
    float *add_to;           /* if set: add_to[t][r] += y[0][t][r] (residual, ne1 == n_embd) */
    int64_t total;           /* chunks in all; set by matmul_run */
} matmul_job;

/* Weight rows per tile: a tile stays in cache while every token of the batch passes over it. */
#define TILE_ROWS 16
/* With a tiled kernel: rows x tokens per call (~64 KiB of Q8_0 weights, 32 activation rows). */
#define GEMM_ROWS 32
#define GEMM_COLS 32
/* Rows per chunk handed to a thread (a multiple of GEMM_ROWS and of every tile height; ~72 KiB of
 * Q4_K rows of 2048: long sequential reads, and enough chunks to balance). */
#define CHUNK_ROWS 64

static void matmul_rows(const matmul_job *j, const mlxr_weight *w, float *yw, int64_t r0,
                        int64_t r1) {
    const mlxr_type_kernels *tk = &j->c->kern.type[w->type];
    const int64_t N = w->ne1;
    const uint8_t *wd = w->data;
    const size_t xs = j->c->xq_row;
    if (w->packed && tk->gemm_packed) {
        /* the interleaved copy (model.c): the whole chunk (r0 is a multiple of 8, as every chunk
         * start is) against every token in one call, which walks K in cache-sized pieces so each
         * piece of the chunk's weights is read from memory once; batch invariant, so for single
         * tokens too */
        const uint8_t *wp = (const uint8_t *)w->packed + (size_t)r0 * w->row_bytes;
        tk->gemm_packed(w->ne0, r1 - r0, j->T, wp, w->row_bytes, j->xq, xs, yw + (size_t)r0,
                        (size_t)N);
        return;
    }
    if (tk->gemm && j->T > 1 && !j->c->batch_invariant) {
        for (int64_t rt = r0; rt < r1; rt += GEMM_ROWS) {
            const int64_t nr = rt + GEMM_ROWS < r1 ? GEMM_ROWS : r1 - rt;
            for (int32_t t = 0; t < j->T; t += GEMM_COLS) {
                const int64_t nc = t + GEMM_COLS < j->T ? GEMM_COLS : j->T - t;
                tk->gemm(w->ne0, nr, nc, wd + (size_t)rt * w->row_bytes, w->row_bytes,
                         (const uint8_t *)j->xq + (size_t)t * xs, xs,
                         yw + (size_t)t * (size_t)N + (size_t)rt, (size_t)N);
            }
        }
        return;
    }
    for (int64_t rt = r0; rt < r1; rt += TILE_ROWS) {
        const int64_t rend = rt + TILE_ROWS < r1 ? rt + TILE_ROWS : r1;
        for (int32_t t = 0; t < j->T; t++) {
            const void *x = (const uint8_t *)j->xq + (size_t)t * xs;
            float *y = yw + (size_t)t * (size_t)N;
            /* tiles start at multiples of 4, so a row takes the same kernel whatever T is */
            mlxr_dot_rows(tk, w->ne0, rend - rt, wd + (size_t)rt * w->row_bytes, w->row_bytes, x,
                          &y[rt]);
        }
    }
}

/* The epilogues of y[0]'s rows [r0, r1). */
static void epilogue(const matmul_job *j, int64_t r0, int64_t r1) {
    const int64_t N = j->w[0]->ne1;
    for (int32_t t = 0; t < j->T; t++) {
        float *y = j->y[0] + (size_t)t * (size_t)N;
        if (j->swiglu) mlxr_swiglu_f32_ref(y + r0, j->y[1] + (size_t)t * (size_t)N + r0, r1 - r0);
        if (j->enc)
            j->enc(y + r0,
                   (uint8_t *)j->xq_out + (size_t)t * j->c->xq_row +
                       (size_t)(r0 / j->enc_blk) * j->enc_bytes,
                   r1 - r0);
        if (j->add_to) mlxr_add_f32_ref(j->add_to + (size_t)t * (size_t)N + r0, y + r0, r1 - r0);
    }
}

static int64_t n_chunks(const matmul_job *j, int i) {
    return (j->w[i]->ne1 + j->chunk - 1) / j->chunk;
}

/* Chunk k of the job's rows (numbered over the weights in order, or over y[0]'s rows with SwiGLU,
 * where a chunk covers the same rows of every weight). */
static void run_chunk(const matmul_job *j, int64_t k) {
    int i = 0;
    if (!j->swiglu)
        for (; i < j->n_w && k >= n_chunks(j, i); i++)
            k -= n_chunks(j, i);
    const int64_t N = j->w[i]->ne1, r0 = k * j->chunk;
    const int64_t r1 = r0 + j->chunk < N ? r0 + j->chunk : N;
    for (int w = i; w < (j->swiglu ? j->n_w : i + 1); w++)
        matmul_rows(j, j->w[w], j->y[w], r0, r1);
    if (i == 0) epilogue(j, r0, r1);
}

/* Thread ith takes the chunks of its own contiguous range in order, so its weight reads are one
 * sequential stream (the hardware prefetchers keep running across chunk boundaries), then helps
 * with what is left of the others' ranges: a thread the OS descheduled holds no one up. */
static void matmul_worker(void *arg, int ith, int nth) {
    const matmul_job *j = arg;
    mlxr_mm_ctr *ctr = j->c->mm_ctr;
    for (int d = 0; d < nth; d++) {
        const int r = (ith + d) % nth;
        const int64_t end = j->total * (r + 1) / nth;
        for (;;) {
            const int64_t k = atomic_fetch_add_explicit(&ctr[r].next, 1, memory_order_relaxed);
            if (k >= end) break;
            run_chunk(j, k);
        }
    }
}

/* Run a job: chunks of CHUNK_ROWS, rounded up to whole blocks of the epilogue's encoding. */
static void matmul_run(mlxr_context *c, matmul_job *j) {
    j->chunk = CHUNK_ROWS;
    if (j->enc) j->chunk = (CHUNK_ROWS + j->enc_blk - 1) / j->enc_blk * j->enc_blk;
    j->total = 0;
    for (int i = 0; i < (j->swiglu ? 1 : j->n_w); i++) j->total += n_chunks(j, i);
    const int nth = mlxr_tp_n_threads(c->tp);
    for (int r = 0; r < nth; r++)
        atomic_store_explicit(&c->mm_ctr[r].next, j->total * r / nth, memory_order_relaxed);
    mlxr_tp_run(c->tp, matmul_worker, j);
}

typedef struct encode_job {
    const mlxr_context *c;
    mlxr_from_float_fn enc;
    const float *x;      /* [T][n] */
    const float *norm_g; /* if set: y = rmsnorm(x) * norm_g is encoded (and kept in norm_y) */
    float *norm_y;       /* [T][n] */
    float eps;
    int64_t n;
    int32_t T;
} encode_job;

static void encode_worker(void *arg, int ith, int nth) {
    const encode_job *j = arg;
    for (int32_t t = ith; t < j->T; t += nth) {
        const float *x = j->x + (size_t)t * (size_t)j->n;
        if (j->norm_g) {
            float *y = j->norm_y + (size_t)t * (size_t)j->n;
            mlxr_rmsnorm_f32_ref(x, j->norm_g, y, j->n, j->eps);
            x = y;
        }
        j->enc(x, (uint8_t *)j->c->xq + (size_t)t * j->c->xq_row, j->n);
    }
}

static mlxr_dtype vdt(const mlxr_context *c, const mlxr_weight *w) {
    return c->kern.type[w->type].vec_dot_type;
}

static void encode_run(mlxr_context *c, encode_job *ej) {
    if (ej->T == 1)
        encode_worker(ej, 0, 1);
    else
        mlxr_tp_run(c->tp, encode_worker, ej);
}

/* Encode x [T][w->ne0] into c->xq in w's vec_dot_type. */
static void encode_for(mlxr_context *c, const mlxr_weight *w, const float *x, int32_t T) {
    encode_job ej = {c, c->kern.type[vdt(c, w)].from_float, x, NULL, NULL, 0.0f, w->ne0, T};
    encode_run(c, &ej);
}

/* y = rmsnorm(x) * g into y [T][w->ne0], encoded into c->xq for w in the same pass (one row per
 * task: the floats, and so the bytes, are those of norm then encode). */
static void norm_encode_for(mlxr_context *c, const mlxr_weight *w, const float *x,
                            const mlxr_weight *g, float *y, int32_t T) {
    encode_job ej = {c,  c->kern.type[vdt(c, w)].from_float, x, g->data, y, c->m->info.rms_eps,
                     w->ne0, T};
    encode_run(c, &ej);
}

/* y [T][w->ne1] = x [T][w->ne0] . w^T, with x already encoded for w by encode_for. */
static void matmul_encoded(mlxr_context *c, const mlxr_weight *w, float *y, int32_t T) {
    matmul_job j = {.c = c, .n_w = 1, .w = {w}, .y = {y}, .xq = c->xq, .T = T};
    matmul_run(c, &j);
}

static void matmul(mlxr_context *c, const mlxr_weight *w, const float *x, float *y, int32_t T) {
    encode_for(c, w, x, T);
    matmul_encoded(c, w, y, T);
}

/* res [T][w->ne1] += x [T][w->ne0] . w^T, the add done by each thread on its own rows. */
static void matmul_add(mlxr_context *c, const mlxr_weight *w, const void *xq, float *y,
                       float *res, int32_t T) {
    matmul_job j = {.c = c, .n_w = 1, .w = {w}, .y = {y}, .xq = xq, .T = T,
                    .add_to = res};
    matmul_run(c, &j);
}

/* ---- the pass ------------------------------------------------------------------------------ */

static void embed(mlxr_context *c, const mlxr_batch *b) {
    const mlxr_model *m = c->m;
    const mlxr_to_float_fn dec = c->kern.type[m->tok_embd.type].to_float;
    for (int32_t t = 0; t < b->n; t++)
        dec((const uint8_t *)m->tok_embd.data + (size_t)b->token[t] * m->tok_embd.row_bytes,
            c->x + (size_t)t * (size_t)m->info.n_embd, m->info.n_embd);
}

static void attention_block(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const mlxr_model_info *h = &c->m->info;
    const mlxr_layer *L = &c->m->layers[il];
    const int32_t T = b->n, E = h->n_embd;
    norm_encode_for(c, &L->wq, c->x, &L->attn_norm, c->xb, T);
    /* Q, K and V share their input: one encoding, one pass, when their vec_dot_types agree */
    if (vdt(c, &L->wk) == vdt(c, &L->wq) && vdt(c, &L->wv) == vdt(c, &L->wq)) {
        matmul_job j = {.c = c, .n_w = 3, .w = {&L->wq, &L->wk, &L->wv},
                        .y = {c->q, c->k, c->v}, .xq = c->xq, .T = T};
        matmul_run(c, &j);
    } else {
        matmul_encoded(c, &L->wq, c->q, T);
        matmul(c, &L->wk, c->xb, c->k, T);
        matmul(c, &L->wv, c->xb, c->v, T);
    }
    float *cs = c->rope_cs;
    for (int32_t t = 0; t < T; t++) {
        mlxr_rope_f32_ref(c->q + (size_t)t * E, h->n_head, h->head_dim, h->n_rot, b->pos[t],
                          h->rope_freq_base, cs);
        mlxr_rope_f32_ref(c->k + (size_t)t * c->kv_dim, h->n_head_kv, h->head_dim, h->n_rot,
                          b->pos[t], h->rope_freq_base, cs);
    }
    mlxr_attention(c, b, il); /* K/V into the cache, attention into xb2 */
    encode_for(c, &L->wo, c->xb2, T);
    matmul_add(c, &L->wo, c->xq, c->xb, c->x, T);
}

static void ffn_block(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const mlxr_model_info *h = &c->m->info;
    const mlxr_layer *L = &c->m->layers[il];
    const int32_t T = b->n, F = h->n_ff;
    norm_encode_for(c, &L->w_gate, c->x, &L->ffn_norm, c->xb, T);
    const mlxr_dtype dt = vdt(c, &L->w_down);
    const mlxr_dtype_traits *dtr = mlxr_dtype_traits_of(dt); /* MLX_A8 is an internal type */
    if (vdt(c, &L->w_up) == vdt(c, &L->w_gate) && dtr && F % dtr->blck_size == 0) {
        /* gate, up, SwiGLU and the down input's encoding (into xq2: xq is still being read) in
         * one pass */
        matmul_job j = {.c = c, .n_w = 2, .w = {&L->w_gate, &L->w_up}, .y = {c->hb, c->hb2},
                        .xq = c->xq, .T = T, .swiglu = true,
                        .enc = c->kern.type[dt].from_float, .enc_blk = dtr->blck_size,
                        .enc_bytes = (size_t)dtr->type_size, .xq_out = c->xq2};
        matmul_run(c, &j);
        matmul_add(c, &L->w_down, c->xq2, c->xb, c->x, T);
        return;
    }
    matmul_encoded(c, &L->w_gate, c->hb, T);
    matmul(c, &L->w_up, c->xb, c->hb2, T);
    for (int32_t t = 0; t < T; t++)
        mlxr_swiglu_f32_ref(c->hb + (size_t)t * F, c->hb2 + (size_t)t * F, F);
    encode_for(c, &L->w_down, c->hb, T);
    matmul_add(c, &L->w_down, c->xq, c->xb, c->x, T);
}

void mlxr_llama_forward(mlxr_context *c, const mlxr_batch *b) {
    const mlxr_model *m = c->m;
    const mlxr_model_info *h = &m->info;
    const int32_t E = h->n_embd;
    embed(c, b);
    for (int32_t il = 0; il < h->n_layer; il++) {
        attention_block(c, b, il);
        ffn_block(c, b, il);
    }
    /* gather the rows that want logits, then one product for all of them */
    int32_t R = 0;
    for (int32_t t = 0; t < b->n; t++) {
        if (c->logit_row[t] < 0) continue;
        mlxr_rmsnorm_f32_ref(c->x + (size_t)t * E, m->output_norm.data, c->xb + (size_t)R * E, E,
                             h->rms_eps);
        R++;
    }
    /* embeddings (embed.c): the normed rows are the hidden states; logits only if wanted */
    if (R > 0 && c->embd_out) memcpy(c->embd_out, c->xb, (size_t)R * (size_t)E * sizeof(float));
    if (R > 0 && !c->embd_only) matmul(c, &m->output, c->xb, c->logits, R);
}
