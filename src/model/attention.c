/*
 * attention.c - causal multi-head / grouped-query attention over the paged KV cache.
 *
 * Cache layout (kv/kv.h): per layer, K as rows [pool positions][kv_dim] and V transposed as rows
 * [kv_dim][pool positions], block b holding pool positions b*32 .. b*32+31. Both products run
 * over contiguous rows:
 *   scores[q][p] = K[p] . Q[q]          (then softmax over p <= pos[q], scaled by 1/sqrt(hd))
 *   out[q][d]    = Vt[d] . P[q]
 * With an F16 cache, Q and P are rounded to F16 for these products, as llama.cpp does. The
 * products read the blocks where they lie, through the sequence's block table, one product per
 * run of physically consecutive blocks (nothing is copied into a contiguous buffer). A sequence
 * whose blocks are consecutive (the usual case: the free list hands out ascending blocks) is one
 * run, and its numbers are bitwise those of a contiguous cache; otherwise the P.V sum is split
 * at run boundaries (float reordering only).
 *
 * The batch is cut into segments: runs of up to ATT_QCHUNK entries of one sequence at
 * consecutive positions (a prompt is a few long segments; interleaved sequences give segments of
 * one entry). A task is (segment, head); its queries share the keys 0..last position, so both
 * products are tiled matrix products (the type's gemm), with the causal mask applied before the
 * softmax. Positions past a query's own are given probability exactly 0.
 *
 * A Q8_0 cache (kv/kv.h: V in rows like K) goes through kernels/kv_q8.h instead: Q quantized to
 * Q8_0 and integer dot products with K, softmax, then V dequantized on the fly into the sums, as
 * llama.cpp does with -ctk q8_0 -ctv q8_0; tasks, segments and batch invariance as above.
 */
#include "kernels/kv_q8.h"
#include "kernels/ops.h"
#include "model/model.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* Byte offsets inside one thread's scratch (see mlxr_attention_scratch). */
static size_t off_q(int32_t n_ctx) {
    return (size_t)ATT_QCHUNK * (size_t)n_ctx * 4;
}
static size_t off_p(int32_t n_ctx, int32_t hd) {
    return off_q(n_ctx) + (size_t)ATT_QCHUNK * (size_t)hd * 4;
}

static size_t off_o(int32_t n_ctx, int32_t hd) {
    return off_p(n_ctx, hd) + (size_t)ATT_QCHUNK * (size_t)n_ctx * 4;
}

/* One thread's scratch for a task of up to ATT_QCHUNK rows (queries, or query heads of a group):
 * scores [rows][n_ctx] f32, q16 [rows][hd] and p16 [rows][n_ctx] in the KV type, and part
 * [rows][hd] f32, one run's P.V. */
typedef struct att_scratch {
    float *scores;
    uint8_t *q16, *p16;
    float *part;
} att_scratch;

static att_scratch scratch_of(const mlxr_context *c, uint8_t *scratch) {
    const int32_t hd = c->m->info.head_dim;
    return (att_scratch){(float *)scratch, scratch + off_q(c->n_ctx), scratch + off_p(c->n_ctx, hd),
                         (float *)(scratch + off_o(c->n_ctx, hd))};
}

/* The kernels of an F16 or F32 cache's element type. */
static const mlxr_type_kernels *kv_kernels(const mlxr_context *c) {
    return &c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32];
}

size_t mlxr_attention_scratch(int32_t n_ctx, int32_t head_dim) {
    /* scores f32, Q and P in the KV type (4 bytes each reserved, enough for F32), partial P.V */
    size_t n = off_o(n_ctx, head_dim) + (size_t)ATT_QCHUNK * (size_t)head_dim * 4;
    const size_t q8 = mlxr_attn_q8_scratch(ATT_QCHUNK, n_ctx, head_dim); /* a Q8_0 cache's */
    if (q8 > n) n = q8;
    return (n + 63) / 64 * 64;
}

/* Positions the pool holds: the length of one layer's K column and V row. */
static size_t pool_positions(const mlxr_context *c) {
    return (size_t)c->kv.n_block * MLXR_KV_BLOCK;
}

/* K row of pool position pp in layer il: [kv_dim] (row_bytes). */
static uint8_t *k_row(const mlxr_context *c, int32_t il, size_t pp) {
    return c->kv.k + ((size_t)il * pool_positions(c) + pp) * c->kv.row_bytes;
}

/* V row of pool position pp in layer il, for a cache with V in rows (Q8_0). */
static uint8_t *v_pos_row(const mlxr_context *c, int32_t il, size_t pp) {
    return c->kv.v + ((size_t)il * pool_positions(c) + pp) * c->kv.row_bytes;
}

/* V row of dimension d in layer il: [pool positions]; element pp is pool position pp. */
static uint8_t *v_row(const mlxr_context *c, int32_t il, int32_t d) {
    return c->kv.v + ((size_t)il * (size_t)c->kv_dim + (size_t)d) * pool_positions(c) * c->kv_elt;
}

/* Pool position of position pos of sequence s. */
static size_t pool_pos(const mlxr_context *c, int32_t s, int32_t pos) {
    const int32_t blk =
        c->kv.table[(size_t)s * (size_t)c->kv.max_blocks + (size_t)(pos / MLXR_KV_BLOCK)];
    return (size_t)blk * MLXR_KV_BLOCK + (size_t)(pos % MLXR_KV_BLOCK);
}

/* The run of sequence s's positions from p0 (a block start) that lie consecutively in the pool,
 * limited to n positions (and to one block if one_block): returns its length; *pp0 receives its
 * first pool position. */
static int32_t run_of(const mlxr_context *c, int32_t s, int32_t p0, int32_t n, bool one_block,
                      size_t *pp0) {
    *pp0 = pool_pos(c, s, p0);
    int32_t p = p0 + MLXR_KV_BLOCK;
    while (!one_block && p < n && pool_pos(c, s, p) == *pp0 + (size_t)(p - p0))
        p += MLXR_KV_BLOCK;
    return (p < n ? p : n) - p0;
}

/* Store the batch's K (after RoPE) and V of layer il (the blocks were allocated by mlxr_decode). */
static void kv_store(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    const int32_t KV = c->kv_dim;
    const size_t elt = c->kv_elt;
    if (c->kv_type == MLXR_KV_Q8_0) { /* rows of Q8_0 blocks, rounded to nearest as llama.cpp */
        const mlxr_from_float_fn q8 = c->kern.type[MLXR_DTYPE_Q8_0].from_float;
        for (int32_t t = 0; t < b->n; t++) {
            const size_t pp = pool_pos(c, b->seq[t], b->pos[t]);
            q8(c->k + (size_t)t * KV, k_row(c, il, pp), KV);
            q8(c->v + (size_t)t * KV, v_pos_row(c, il, pp), KV);
        }
        return;
    }
    const mlxr_from_float_fn enc =
        c->kern.type[c->kv_type == MLXR_KV_F16 ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32].from_float;
    for (int32_t t = 0; t < b->n; t++) {
        const float *k = c->k + (size_t)t * KV, *v = c->v + (size_t)t * KV;
        const size_t pp = pool_pos(c, b->seq[t], b->pos[t]);
        enc(k, k_row(c, il, pp), KV);
        for (int32_t d = 0; d < KV; d++)
            enc(&v[d], v_row(c, il, d) + pp * elt, 1);
    }
}

/* y[j][i] = dot(w_i, x_j) with the type's gemm, or its dot product where there is none. One
 * column (a decode step) takes the four-row product where the type has one (mlxr_dot_rows: four
 * K rows or V columns stream at once); runs start at block starts, multiples of 4, so qk's scores
 * stay bitwise the same however the positions are split into runs. With `cols`, the nc columns
 * are the query heads of one KV head at one position: each is computed bitwise as alone (nc = 1),
 * but the four-row product reads and converts each K row / V column once for all of them. */
static void products(const mlxr_type_kernels *tk, int64_t n, int64_t nr, int64_t nc, const void *w,
                     size_t ws, const void *x, size_t xs, float *y, size_t ldy, bool cols) {
    if (cols && nc > 1) { /* each column exactly as a product of its own (nc = 1) */
        if (tk->vec_dot4n) {
            mlxr_dot_rows_n(tk, n, nr, nc, w, ws, x, xs, y, ldy);
        } else {
            for (int64_t j = 0; j < nc; j++)
                products(tk, n, nr, 1, w, ws, (const uint8_t *)x + (size_t)j * xs, xs,
                         y + (size_t)j * ldy, ldy, false);
        }
        return;
    }
    if (nc == 1 && tk->vec_dot4) {
        mlxr_dot_rows(tk, n, nr, w, ws, x, y);
        return;
    }
    if (tk->gemm) {
        tk->gemm(n, nr, nc, w, ws, x, xs, y, ldy);
        return;
    }
    for (int64_t j = 0; j < nc; j++)
        for (int64_t i = 0; i < nr; i++)
            tk->vec_dot(n, &y[(size_t)j * ldy + (size_t)i], (const uint8_t *)w + (size_t)i * ws,
                        (const uint8_t *)x + (size_t)j * xs);
}

typedef struct attn_job {
    mlxr_context *c;
    const mlxr_batch *b;
    int32_t il;
    int32_t n_seg;
    atomic_int next; /* next task to hand out */
} attn_job;

/* scores[j][p] = K[p] . Q[j] for positions p < n of sequence s, head group kvh, nq queries.
 * Runs start at block starts, multiples of the GEMM tile height, so every score is bitwise the
 * same however the positions are split into runs. */
static void qk(const mlxr_context *c, const mlxr_type_kernels *tk, int32_t il, int32_t s,
               int32_t kvh, int32_t n, int32_t nq, const uint8_t *q16, float *scores, size_t lds,
               bool cols) {
    const int32_t hd = c->m->info.head_dim;
    const size_t elt = c->kv_elt;
    for (int32_t p0 = 0; p0 < n;) {
        size_t pp;
        const int32_t rows = run_of(c, s, p0, n, false, &pp);
        products(tk, hd, rows, nq, k_row(c, il, pp) + (size_t)kvh * hd * elt,
                 (size_t)c->kv_dim * elt, q16, (size_t)hd * elt, scores + p0, lds, cols);
        p0 += rows;
    }
}

/* out[j][d] = P[j] . Vt[d] over positions p < n: one product per run (per block if per_block),
 * later ones added through part [nq][hd]. P rows are ps bytes apart, out rows ldo floats.
 * per_block makes the sum's order independent of where the blocks lie (see attn_task). */
static void pv(const mlxr_context *c, const mlxr_type_kernels *tk, int32_t il, int32_t s,
               int32_t kvh, int32_t n, int32_t nq, const uint8_t *p16, size_t ps, bool per_block,
               float *out, size_t ldo, float *part, bool cols) {
    const int32_t hd = c->m->info.head_dim;
    const size_t elt = c->kv_elt, vs = pool_positions(c) * elt;
    for (int32_t p0 = 0; p0 < n;) {
        size_t pp;
        const int32_t rows = run_of(c, s, p0, n, per_block, &pp);
        const bool first = p0 == 0;
        products(tk, rows, hd, nq, v_row(c, il, kvh * hd) + pp * elt, vs, p16 + (size_t)p0 * elt,
                 ps, first ? out : part, first ? ldo : (size_t)hd, cols);
        if (!first)
            for (int32_t q = 0; q < nq; q++)
                for (int32_t d = 0; d < hd; d++)
                    out[(size_t)q * ldo + d] += part[(size_t)q * hd + d];
        p0 += rows;
    }
}

/*
 * Batch-invariant attention of one query (batch entry t, sequence s, position pos) and one head:
 * the products run over exactly the positions the query sees, through the same kernels a
 * one-entry segment of attn_task uses (a product with one column), so the result is bitwise that
 * of the query decoded alone, whatever segment it sits in (scratch as attn_task's, one row each).
 */
static void attn_query(mlxr_context *c, int32_t il, int32_t t, int32_t s, int32_t pos, int32_t head,
                       uint8_t *scratch) {
    const mlxr_model_info *h = &c->m->info;
    const int32_t hd = h->head_dim, E = h->n_embd, kvh = head / (h->n_head / h->n_head_kv);
    const int32_t valid = pos + 1;
    const mlxr_type_kernels *tk = kv_kernels(c);
    const att_scratch sc = scratch_of(c, scratch); /* one row */
    float *row = sc.scores, *part = sc.part;
    uint8_t *q16 = sc.q16, *p16 = sc.p16;

    tk->from_float(c->q + (size_t)t * E + (size_t)head * hd, q16, hd);
    qk(c, tk, il, s, kvh, valid, 1, q16, row, 0, false);
    mlxr_softmax_f32_ref(row, valid, 1.0f / sqrtf((float)hd));
    tk->from_float(row, p16, valid);
    pv(c, tk, il, s, kvh, valid, 1, p16, 0, true, c->xb2 + (size_t)t * E + (size_t)head * hd,
       (size_t)E, part, false);
}

/* A task over a Q8_0 cache (kernels/kv_q8.h): nq queries from batch entry t0 at positions
 * p0.. of sequence s, one head. With batch_invariant, one query per call (as attn_query). */
static void attn_task_q8(mlxr_context *c, int32_t il, int32_t t0, int32_t nq, int32_t s,
                         int32_t p0, int32_t head, uint8_t *scratch) {
    const mlxr_model_info *h = &c->m->info;
    const int32_t hd = h->head_dim, E = h->n_embd, kvh = head / (h->n_head / h->n_head_kv);
    const mlxr_attn_q8_kernels k = {c->kern.type[MLXR_DTYPE_Q8_0].from_float,
                                    c->kern.type[MLXR_DTYPE_Q8_0].gemm,
                                    mlxr_kv_q8_pv_select(c->kern.isa)};
    const size_t head_off = (size_t)kvh * (size_t)hd / MLXR_QK8_0 * sizeof(mlxr_block_q8_0);
    mlxr_attn_q8_args a = {
        .head_dim = hd,
        .nq = nq,
        .pos0 = p0,
        .q = c->q + (size_t)t0 * E + (size_t)head * hd,
        .ldq = (size_t)E,
        .k = k_row(c, il, 0) + head_off,
        .v = v_pos_row(c, il, 0) + head_off,
        .row_bytes = c->kv.row_bytes,
        .table = c->kv.table + (size_t)s * (size_t)c->kv.max_blocks,
        .block = MLXR_KV_BLOCK,
        .scale = 1.0f / sqrtf((float)hd),
        .out = c->xb2 + (size_t)t0 * E + (size_t)head * hd,
        .ldo = (size_t)E,
    };
    if (!c->batch_invariant) {
        mlxr_attn_q8(&k, &a, scratch);
        return;
    }
    a.nq = 1;
    for (int32_t q = 0; q < nq; q++) {
        a.pos0 = p0 + q;
        mlxr_attn_q8(&k, &a, scratch);
        a.q += E;
        a.out += E;
    }
}

/* A decode step (one query at position p0 of sequence s, batch entry t0) for the G query heads
 * head0.. of KV head kvh at once: every head's numbers are bitwise attn_query's (products with
 * `cols`), while each K row and V column is read once for the group. Scratch as attn_task's, G
 * rows (G <= ATT_QCHUNK). */
static void attn_group(const attn_job *j, int32_t t0, int32_t s, int32_t p0, int32_t kvh,
                       int32_t head0, int32_t G, uint8_t *scratch) {
    mlxr_context *c = j->c;
    const int32_t hd = c->m->info.head_dim, E = c->m->info.n_embd, n_kv = p0 + 1;
    const mlxr_type_kernels *tk = kv_kernels(c);
    const size_t elt = c->kv_elt, ctx = (size_t)c->n_ctx;
    const att_scratch sc = scratch_of(c, scratch); /* G rows */
    float *scores = sc.scores, *part = sc.part;
    uint8_t *q16 = sc.q16, *p16 = sc.p16;
    const float *q = c->q + (size_t)t0 * E + (size_t)head0 * hd;
    for (int32_t g = 0; g < G; g++)
        tk->from_float(q + (size_t)g * hd, q16 + (size_t)g * hd * elt, hd);
    qk(c, tk, j->il, s, kvh, n_kv, G, q16, scores, ctx, true);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t g = 0; g < G; g++) {
        float *row = scores + (size_t)g * ctx;
        mlxr_softmax_f32_ref(row, n_kv, scale);
        tk->from_float(row, p16 + (size_t)g * ctx * elt, n_kv);
    }
    pv(c, tk, j->il, s, kvh, n_kv, G, p16, ctx * elt, true,
       c->xb2 + (size_t)t0 * E + (size_t)head0 * hd, (size_t)hd, part, true);
}

static void attn_task(const attn_job *j, int32_t seg, int32_t head, uint8_t *scratch) {
    mlxr_context *c = j->c;
    const mlxr_model_info *h = &c->m->info;
    const int32_t hd = h->head_dim, E = h->n_embd, kvh = head / (h->n_head / h->n_head_kv);
    const int32_t t0 = c->att_seg[seg], nq = c->att_seg[seg + 1] - t0;
    const int32_t s = j->b->seq[t0], p0 = j->b->pos[t0], n_kv = p0 + nq;
    if (c->kv_type == MLXR_KV_Q8_0) {
        attn_task_q8(c, j->il, t0, nq, s, p0, head, scratch);
        return;
    }
    if (c->batch_invariant) {
        for (int32_t q = 0; q < nq; q++)
            attn_query(c, j->il, t0 + q, s, p0 + q, head, scratch);
        return;
    }
    const int32_t G = h->n_head / h->n_head_kv;
    if (nq == 1 && G > 1 && G <= ATT_QCHUNK) { /* a decode step: the group's first head does all */
        if (head % G == 0) attn_group(j, t0, s, p0, kvh, head, G, scratch);
        return;
    }
    const mlxr_type_kernels *tk = kv_kernels(c);
    const size_t elt = c->kv_elt, ctx = (size_t)c->n_ctx;
    const att_scratch sc = scratch_of(c, scratch); /* nq rows */
    float *scores = sc.scores, *part = sc.part;
    uint8_t *q16 = sc.q16, *p16 = sc.p16;

    for (int32_t q = 0; q < nq; q++)
        tk->from_float(c->q + (size_t)(t0 + q) * E + (size_t)head * hd, q16 + (size_t)q * hd * elt,
                       hd);
    qk(c, tk, j->il, s, kvh, n_kv, nq, q16, scores, ctx, false);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int32_t q = 0; q < nq; q++) {
        float *row = scores + (size_t)q * ctx;
        const int32_t valid = p0 + q + 1; /* causal: positions 0..pos */
        mlxr_softmax_f32_ref(row, valid, scale);
        for (int32_t p = valid; p < n_kv; p++)
            row[p] = 0.0f;
        tk->from_float(row, p16 + (size_t)q * ctx * elt, n_kv);
    }
    /* one query (a decode step) sums per block, as attn_query does: its result then does not
     * depend on the pool layout nor on batch_invariant (speculative verification relies on it);
     * a prompt segment sums per run, bitwise a contiguous cache when its blocks follow each
     * other */
    pv(c, tk, j->il, s, kvh, n_kv, nq, p16, ctx * elt, nq == 1,
       c->xb2 + (size_t)t0 * E + (size_t)head * hd, (size_t)E, part, false);
}

/* Tasks are handed out from a shared counter, so a thread the OS descheduled does not hold the
 * others up; a task's numbers do not depend on the thread that runs it. */
static void attn_worker(void *arg, int ith, int nth) {
    (void)nth;
    attn_job *j = arg;
    uint8_t *scratch = (uint8_t *)j->c->att + (size_t)ith * j->c->att_stride;
    const int32_t n_head = j->c->m->info.n_head, n_tasks = j->n_seg * n_head;
    for (;;) {
        const int32_t task = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (task >= n_tasks) return;
        attn_task(j, task / n_head, task % n_head, scratch);
    }
}

void mlxr_attention(mlxr_context *c, const mlxr_batch *b, int32_t il) {
    kv_store(c, b, il);
    /* segments: runs of one sequence at consecutive positions, at most ATT_QCHUNK long */
    int32_t n_seg = 0;
    c->att_seg[0] = 0;
    for (int32_t t = 1; t <= b->n; t++) {
        const int32_t start = c->att_seg[n_seg];
        if (t == b->n || b->seq[t] != b->seq[t - 1] || b->pos[t] != b->pos[t - 1] + 1 ||
            t - start == ATT_QCHUNK)
            c->att_seg[++n_seg] = t;
    }
    attn_job j = {.c = c, .b = b, .il = il, .n_seg = n_seg};
    atomic_init(&j.next, 0);
    mlxr_tp_run(c->tp, attn_worker, &j);
}
