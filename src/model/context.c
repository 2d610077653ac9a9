/*
 * context.c - a decoding context: the paged KV cache (kv/kv_pool.c), forward-pass scratch, the
 * thread pool and the kernel table; and mlxr_decode, which validates a batch completely (tokens,
 * positions, and the KV blocks it needs) before the forward pass touches anything, so a rejected
 * batch leaves the cache as it was.
 */
#include "format/dtype.h"
#include "model/backend_cuda.h"
#include "model/model.h"
#include "util/err.h"
#include "util/fp16.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

mlxr_context_opts mlxr_context_default_opts(void) {
    mlxr_context_opts o = {0};
    o.kv_type = MLXR_KV_F16;
    return o;
}

const char *mlxr_kv_type_name(mlxr_kv_type t) {
    switch (t) {
    case MLXR_KV_F16:
        return "f16";
    case MLXR_KV_F32:
        return "f32";
    case MLXR_KV_Q8_0:
        return "q8_0";
    }
    return "?";
}

bool mlxr_kv_type_from_name(const char *name, mlxr_kv_type *out) {
    const mlxr_kv_type all[] = {MLXR_KV_F16, MLXR_KV_F32, MLXR_KV_Q8_0};
    for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
        if (!strcasecmp(name, mlxr_kv_type_name(all[i]))) {
            *out = all[i];
            return true;
        }
    return false;
}

/* calloc of a * b * c bytes with overflow checks; NULL on overflow or OOM. */
static void *alloc3(size_t a, size_t b, size_t c) {
    size_t n;
    if (!mlxr_mul_ok(a, b, &n) || !mlxr_mul_ok(n, c, &n)) return NULL;
    return calloc(n ? n : 1, 1);
}

/* Bytes of one activation row of n floats in the widest encoding any vec_dot_type uses. */
static size_t xq_row_bytes(int64_t n) {
    size_t f32 = (size_t)n * 4;
    size_t q8 = mlxr_dtype_row_size(MLXR_DTYPE_Q8_0, (n + 31) / 32 * 32);
    return f32 > q8 ? f32 : q8;
}

static mlxr_status alloc_scratch(mlxr_context *c, mlxr_err *err) {
    const mlxr_model_info *h = &c->m->info;
    size_t B = (size_t)c->n_batch, E = (size_t)h->n_embd, F = (size_t)h->n_ff;
    size_t KV = (size_t)c->kv_dim, V = (size_t)h->n_vocab;
    size_t nth = (size_t)mlxr_tp_n_threads(c->tp);
    c->seq_next = calloc((size_t)c->n_seq, sizeof *c->seq_next);
    c->x = alloc3(B, E, 4);
    c->xb = alloc3(B, E, 4);
    c->xb2 = alloc3(B, E, 4);
    c->q = alloc3(B, E, 4);
    c->k = alloc3(B, KV, 4);
    c->v = alloc3(B, KV, 4);
    c->hb = alloc3(B, F, 4);
    c->hb2 = alloc3(B, F, 4);
    c->xq_row = xq_row_bytes(E > F ? (int64_t)E : (int64_t)F);
    c->xq = alloc3(B, c->xq_row, 1);
    c->xq2 = alloc3(B, c->xq_row, 1);
    c->att_stride = mlxr_attention_scratch(c->n_ctx, h->head_dim);
    c->att = alloc3(nth, c->att_stride, 1);
    c->rope_cs = alloc3((size_t)h->n_rot, 4, 1);
    c->mm_ctr = alloc3(nth, sizeof *c->mm_ctr, 1);
    c->att_seg = alloc3(B + 1, sizeof *c->att_seg, 1);
    c->logits = alloc3(B, V, 4);
    c->logit_row = calloc(B, sizeof *c->logit_row);
    if (!c->seq_next || !c->x || !c->xb || !c->xb2 || !c->q || !c->k ||
        !c->v || !c->hb || !c->hb2 || !c->xq || !c->xq2 || !c->att || !c->rope_cs || !c->mm_ctr ||
        !c->att_seg || !c->logits || !c->logit_row)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM,
                         "out of memory for a context of %d tokens x %d sequences (batch %d)",
                         c->n_ctx, c->n_seq, c->n_batch);
    return MLXR_OK;
}

mlxr_status mlxr_context_new(mlxr_model *m, const mlxr_context_opts *opts, mlxr_context **out,
                             mlxr_err *err) {
    if (!m || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "model and out must be set");
    *out = NULL;
    if (m->vocab_only)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "the model was loaded vocab_only: no weights");
    mlxr_context_opts o = opts ? *opts : mlxr_context_default_opts();
    const mlxr_model_info *h = &m->info;
    if (o.n_ctx < 0 || o.n_seq_max < 0 || o.n_batch < 0 || o.n_threads < 0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "negative context option");
    if (o.n_ctx == 0) o.n_ctx = h->n_ctx_train;
    if (o.n_ctx > (1 << 20)) return MLXR_FAIL(err, MLXR_ERR_RANGE, "n_ctx %d too large", o.n_ctx);
    if (o.n_seq_max == 0) o.n_seq_max = 1;
    if (o.n_seq_max > 4096) return MLXR_FAIL(err, MLXR_ERR_RANGE, "n_seq_max %d too large", o.n_seq_max);
    if (o.n_batch == 0) o.n_batch = 512;
    if (o.n_batch > 65536) return MLXR_FAIL(err, MLXR_ERR_RANGE, "n_batch %d too large", o.n_batch);
    if (o.n_threads == 0) o.n_threads = mlxr_cpu_count();
    if (o.kv_type != MLXR_KV_F16 && o.kv_type != MLXR_KV_F32 && o.kv_type != MLXR_KV_Q8_0)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "unknown KV cache type %d", (int)o.kv_type);
    if (o.kv_type == MLXR_KV_Q8_0 && h->head_dim % 32 != 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "a q8_0 KV cache needs head_dim a multiple of 32 (blocks of 32 per head); "
                         "this model's is %d: use f16 or f32",
                         h->head_dim);
    if (o.kv_type == MLXR_KV_Q8_0 && o.n_gpu_layers != 0) /* CUDA keeps its own F16 cache */
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "the CUDA backend supports only an f16 KV cache, not q8_0 (-ngl)");
    /* the CUDA backend keeps K/V as F16 on the device whatever an F32 request says */
    if (o.n_gpu_layers != 0) o.kv_type = MLXR_KV_F16;
    /* the pool: kv_mem_bytes worth of blocks, by default every sequence's full context; a
     * smaller type gives smaller blocks, hence more of them in the same bytes */
    const size_t bb = mlxr_kv_block_bytes(h->n_layer, h->n_head_kv * h->head_dim, o.kv_type);
    int64_t n_block = (int64_t)o.n_seq_max * mlxr_kv_blocks_for(o.n_ctx);
    if (o.kv_mem_bytes < 0) return MLXR_FAIL(err, MLXR_ERR_INVALID, "negative kv_mem_bytes");
    if (o.kv_mem_bytes > 0 && bb > 0) n_block = o.kv_mem_bytes / (int64_t)bb;
    if (bb == 0 || n_block < 1 || n_block > INT32_MAX / 2)
        return MLXR_FAIL(err, MLXR_ERR_RANGE,
                         "kv_mem_bytes %lld holds %lld KV blocks of %zu bytes; need 1 to %d",
                         (long long)o.kv_mem_bytes, (long long)n_block, bb, INT32_MAX / 2);

    mlxr_context *c = calloc(1, sizeof *c);
    if (!c) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for context");
    c->m = m;
    c->n_ctx = o.n_ctx;
    c->n_seq = o.n_seq_max;
    c->n_batch = o.n_batch;
    c->kv_type = o.kv_type;
    c->batch_invariant = o.batch_invariant;
    /* bytes per F16/F32 element; a Q8_0 cache is addressed by rows (kv.row_bytes) only */
    c->kv_elt = o.kv_type == MLXR_KV_F32 ? 4 : o.kv_type == MLXR_KV_F16 ? 2 : 1;
    c->kv_dim = h->n_head_kv * h->head_dim;
    mlxr_isa isa = o.isa_max > 0 ? (mlxr_isa)o.isa_max : MLXR_ISA_MAX;
    mlxr_kernels_init(&c->kern, isa);
    mlxr_status st = mlxr_tp_new(o.n_threads, &c->tp, err);
    if (st == MLXR_OK) st = alloc_scratch(c, err);
    if (st == MLXR_OK)
        st = mlxr_kv_pool_init(&c->kv, (int32_t)n_block, h->n_layer, c->kv_dim, c->kv_type,
                               c->n_seq, c->n_ctx, o.n_gpu_layers != 0 /* rows on the device */, err);
    if (st == MLXR_OK && o.n_gpu_layers != 0) st = mlxr_cuda_context_new(c, o.n_gpu_layers, err); /* CUDA */
    if (st != MLXR_OK) {
        mlxr_context_free(c);
        return st;
    }
    *out = c;
    return MLXR_OK;
}

void mlxr_context_free(mlxr_context *c) {
    if (!c) return;
    mlxr_cuda_context_free(c); /* CUDA backend, if any */
    mlxr_tp_free(c->tp);
    mlxr_kv_pool_release(&c->kv);
    free(c->seq_next);
    free(c->x);
    free(c->xb);
    free(c->xb2);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->hb);
    free(c->hb2);
    free(c->xq);
    free(c->xq2);
    free(c->att);
    free(c->rope_cs);
    free(c->mm_ctr);
    free(c->att_seg);
    free(c->logits);
    free(c->logit_row);
    free(c);
}

void mlxr_kv_clear(mlxr_context *c, int32_t seq) {
    if (c && seq >= 0 && seq < c->n_seq) mlxr_kv_seq_clear(&c->kv, seq);
}

void mlxr_kv_get_stats(const mlxr_context *c, mlxr_kv_stats *out) {
    mlxr_kv_pool_stats(&c->kv, out);
}

int32_t mlxr_kv_seq_len(const mlxr_context *c, int32_t seq) {
    return c && seq >= 0 && seq < c->n_seq ? c->kv.seq_len[seq] : 0;
}

mlxr_status mlxr_kv_truncate(mlxr_context *c, int32_t seq, int32_t n, mlxr_err *err) {
    if (!c || seq < 0 || seq >= c->n_seq)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "truncate: sequence %d out of range", seq);
    return mlxr_kv_seq_truncate(&c->kv, seq, n, err);
}

const char *mlxr_context_isa(const mlxr_context *c) {
    return mlxr_isa_name(c->kern.isa);
}

/* Every check happens here, before the forward pass writes anything. */
static mlxr_status validate(mlxr_context *c, const mlxr_batch *b, mlxr_err *err) {
    if (!b || b->n <= 0 || !b->token || !b->pos || !b->seq)
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "empty or incomplete batch");
    if (b->n > c->n_batch)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "batch of %d tokens exceeds n_batch %d", b->n,
                         c->n_batch);
    int32_t *next = c->seq_next; /* positions each sequence would reach */
    memcpy(next, c->kv.seq_len, (size_t)c->n_seq * sizeof *next);
    mlxr_status st = MLXR_OK;
    for (int32_t i = 0; i < b->n && st == MLXR_OK; i++) {
        int32_t t = b->token[i], p = b->pos[i], s = b->seq[i];
        if (t < 0 || t >= c->m->info.n_vocab)
            st = MLXR_FAIL(err, MLXR_ERR_RANGE, "batch entry %d: token %d out of range 0..%d", i, t,
                           c->m->info.n_vocab - 1);
        else if (s < 0 || s >= c->n_seq)
            st = MLXR_FAIL(err, MLXR_ERR_RANGE, "batch entry %d: sequence %d out of range 0..%d", i,
                           s, c->n_seq - 1);
        else if (p != next[s])
            st = MLXR_FAIL(err, MLXR_ERR_INVALID,
                           "batch entry %d: position %d, expected %d (next position of sequence %d)",
                           i, p, next[s], s);
        else if (p >= c->n_ctx)
            st = MLXR_FAIL(err, MLXR_ERR_RANGE, "context full: position %d >= n_ctx %d", p, c->n_ctx);
        else
            next[s] = p + 1;
    }
    if (st != MLXR_OK) return st;
    /* the KV blocks the batch needs: every sequence in it grows to next[s] */
    int64_t need = 0;
    for (int32_t s = 0; s < c->n_seq; s++)
        if (next[s] != c->kv.seq_len[s]) need += mlxr_kv_blocks_needed(&c->kv, s, next[s]);
    if (need > mlxr_kv_available(&c->kv))
        return MLXR_FAIL(err, MLXR_ERR_NOMEM,
                         "KV pool exhausted: the batch needs %lld new blocks of %d positions, %d "
                         "of %d are free (raise kv_mem_bytes or free sequences)",
                         (long long)need, MLXR_KV_BLOCK, mlxr_kv_available(&c->kv), c->kv.n_block);
    return MLXR_OK;
}

mlxr_status mlxr_decode(mlxr_context *c, const mlxr_batch *b, mlxr_err *err) {
    if (!c) return MLXR_FAIL(err, MLXR_ERR_INVALID, "null context");
    mlxr_status st = validate(c, b, err);
    if (st != MLXR_OK) return st;
    int32_t rows = 0;
    for (int32_t i = 0; i < b->n; i++) {
        bool want = b->logits ? b->logits[i] != 0 : i == b->n - 1;
        c->logit_row[i] = want ? rows++ : -1;
    }
    c->n_batch_last = b->n;
    for (int32_t s = 0; s < c->n_seq; s++)
        if (c->seq_next[s] != c->kv.seq_len[s]) mlxr_kv_seq_grow(&c->kv, s, c->seq_next[s]);
    if (c->gpu) { /* CUDA backend hook (backend_cuda.c) */
        st = mlxr_cuda_forward(c, b, err);
        if (st != MLXR_OK) return st;
    } else {
        mlxr_llama_forward(c, b);
    }
    for (int32_t i = 0; i < b->n; i++) mlxr_kv_seq_push(&c->kv, b->seq[i], b->pos[i], b->token[i]);
    return MLXR_OK;
}

const float *mlxr_get_logits(const mlxr_context *c, int32_t i) {
    if (!c || i < 0 || i >= c->n_batch_last || c->logit_row[i] < 0) return NULL;
    return c->logits + (size_t)c->logit_row[i] * (size_t)c->m->info.n_vocab;
}
