/*
 * kv_pool.c - the block pool behind the paged KV cache: allocation with reference counts, block
 * tables per sequence, truncation with copy on write, and the prefix cache (content-hashed full
 * blocks, evicted least recently used first). Layout and invariants are in kv.h.
 */
#include "kv/kv.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define BS MLXR_KV_BLOCK
/* Parent hash of a sequence's first block. */
#define HASH_ROOT 0x9E3779B97F4A7C15ull

/* splitmix64's finalizer: a cheap, well-mixed 64-bit hash step. */
static uint64_t mix(uint64_t h) {
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

/* Chained content hash of one full block. */
static uint64_t block_hash(uint64_t parent, const int32_t *tok) {
    uint64_t h = mix(parent);
    for (int i = 0; i < BS; i++)
        h = mix(h ^ (uint64_t)(uint32_t)tok[i]);
    return h ? h : 1;
}

size_t mlxr_kv_row_bytes(mlxr_kv_type type, int32_t kv_dim) {
    if (kv_dim <= 0) return 0;
    switch (type) {
    case MLXR_KV_F16:
        return (size_t)kv_dim * 2;
    case MLXR_KV_F32:
        return (size_t)kv_dim * 4;
    case MLXR_KV_Q8_0: /* blocks of 32 quants and one F16 scale, as GGUF's Q8_0 */
        if (kv_dim % 32) return 0;
        return (size_t)kv_dim / 32 * 34;
    }
    return 0;
}

size_t mlxr_kv_block_bytes(int32_t n_layer, int32_t kv_dim, mlxr_kv_type type) {
    size_t n, row = mlxr_kv_row_bytes(type, kv_dim);
    if (row == 0 || n_layer <= 0 || !mlxr_mul_ok((size_t)BS, row, &n) ||
        !mlxr_mul_ok(n, (size_t)n_layer, &n) || !mlxr_mul_ok(n, 2, &n))
        return 0;
    return n;
}

mlxr_status mlxr_kv_pool_init(mlxr_kv_pool *p, int32_t n_block, int32_t n_layer, int32_t kv_dim,
                              mlxr_kv_type type, int32_t n_seq, int32_t n_ctx, bool device_rows,
                              mlxr_err *err) {
    memset(p, 0, sizeof *p);
    if (mlxr_kv_row_bytes(type, kv_dim) == 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "KV cache type %d cannot hold rows of %d values (Q8_0 needs a multiple "
                         "of 32)",
                         (int)type, kv_dim);
    size_t bb = mlxr_kv_block_bytes(n_layer, kv_dim, type), all;
    if (n_block <= 0 || bb == 0 || !mlxr_mul_ok(bb / 2, (size_t)n_block, &all))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "KV pool of %d blocks of %zu bytes is too large",
                         n_block, bb);
    p->n_block = n_block;
    p->n_layer = n_layer;
    p->kv_dim = kv_dim;
    p->type = type;
    p->row_bytes = mlxr_kv_row_bytes(type, kv_dim);
    p->v_trans = type != MLXR_KV_Q8_0;
    p->v_elt = type == MLXR_KV_F32 ? 4 : 2;
    p->layer_bytes = (size_t)BS * p->row_bytes;
    p->n_seq = n_seq;
    p->max_blocks = mlxr_kv_blocks_for(n_ctx);
    p->n_bucket = 16;
    while (p->n_bucket < (uint32_t)n_block * 2u && p->n_bucket < (1u << 30))
        p->n_bucket <<= 1;
    size_t nb = (size_t)n_block;
    /* calloc: never-written rows are read only behind a probability of exactly 0, never as NaN */
    p->device_rows = device_rows;
    if (!device_rows) {
        p->k = calloc(all, 1);
        p->v = calloc(all, 1);
    }
    p->ref = calloc(nb, sizeof *p->ref);
    p->free_list = malloc(nb * sizeof *p->free_list);
    p->tokens = calloc(nb * BS, sizeof *p->tokens);
    p->hash = calloc(nb * 2, sizeof *p->hash); /* hash, then parent hash: [2][n_block] */
    p->hashed = calloc(nb, 1);
    p->hnext = malloc(nb * sizeof *p->hnext);
    p->bucket = malloc(p->n_bucket * sizeof *p->bucket);
    p->lru_prev = malloc(nb * sizeof *p->lru_prev);
    p->lru_next = malloc(nb * sizeof *p->lru_next);
    p->table = malloc((size_t)n_seq * (size_t)p->max_blocks * sizeof *p->table);
    p->seq_len = calloc((size_t)n_seq, sizeof *p->seq_len);
    if ((!device_rows && (!p->k || !p->v)) || !p->ref || !p->free_list || !p->tokens || !p->hash || !p->hashed ||
        !p->hnext || !p->bucket || !p->lru_prev || !p->lru_next || !p->table || !p->seq_len) {
        mlxr_kv_pool_release(p);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for a KV pool of %d blocks (%zu MiB)",
                         n_block, (size_t)((double)bb * n_block / (1 << 20)));
    }
    /* the stack pops block 0 first, so a fresh pool fills from the start of memory */
    for (int32_t i = 0; i < n_block; i++)
        p->free_list[i] = n_block - 1 - i;
    p->n_free = n_block;
    for (uint32_t i = 0; i < p->n_bucket; i++)
        p->bucket[i] = -1;
    p->lru_head = p->lru_tail = -1;
    return MLXR_OK;
}

void mlxr_kv_pool_release(mlxr_kv_pool *p) {
    free(p->k);
    free(p->v);
    free(p->ref);
    free(p->free_list);
    free(p->tokens);
    free(p->hash);
    free(p->hashed);
    free(p->hnext);
    free(p->bucket);
    free(p->lru_prev);
    free(p->lru_next);
    free(p->table);
    free(p->seq_len);
    memset(p, 0, sizeof *p);
}

int32_t mlxr_kv_available(const mlxr_kv_pool *p) {
    return p->n_free + p->n_lru;
}

int32_t mlxr_kv_blocks_needed(const mlxr_kv_pool *p, int32_t s, int32_t n) {
    int32_t have = mlxr_kv_blocks_for(p->seq_len[s]), want = mlxr_kv_blocks_for(n);
    return want > have ? want - have : 0;
}

/* ---- hash table and LRU list ------------------------------------------------------------------
 */

static uint64_t *phash(const mlxr_kv_pool *p) {
    return p->hash + p->n_block;
}

static uint32_t bucket_of(const mlxr_kv_pool *p, uint64_t h) {
    return (uint32_t)(h ^ (h >> 32)) & (p->n_bucket - 1);
}

static void ht_insert(mlxr_kv_pool *p, int32_t b) {
    uint32_t i = bucket_of(p, p->hash[b]);
    p->hnext[b] = p->bucket[i];
    p->bucket[i] = b;
    p->hashed[b] = 1;
}

static void ht_remove(mlxr_kv_pool *p, int32_t b) {
    int32_t *link = &p->bucket[bucket_of(p, p->hash[b])];
    while (*link != b)
        link = &p->hnext[*link];
    *link = p->hnext[b];
    p->hashed[b] = 0;
}

/* The cached block with this content and parent, or -1. */
static int32_t ht_find(const mlxr_kv_pool *p, uint64_t h, uint64_t parent, const int32_t *tok) {
    for (int32_t b = p->bucket[bucket_of(p, h)]; b >= 0; b = p->hnext[b])
        if (p->hash[b] == h && phash(p)[b] == parent &&
            !memcmp(&p->tokens[(size_t)b * BS], tok, BS * sizeof *tok))
            return b;
    return -1;
}

static void lru_push(mlxr_kv_pool *p, int32_t b) {
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0)
        p->lru_next[p->lru_tail] = b;
    else
        p->lru_head = b;
    p->lru_tail = b;
    p->n_lru++;
}

static void lru_unlink(mlxr_kv_pool *p, int32_t b) {
    if (p->lru_prev[b] >= 0)
        p->lru_next[p->lru_prev[b]] = p->lru_next[b];
    else
        p->lru_head = p->lru_next[b];
    if (p->lru_next[b] >= 0)
        p->lru_prev[p->lru_next[b]] = p->lru_prev[b];
    else
        p->lru_tail = p->lru_prev[b];
    p->n_lru--;
}

/* ---- blocks ------------------------------------------------------------------------------------
 */

/* A block for new data: a free one, else the least recently used cached one. Caller checked
 * mlxr_kv_available() > 0. */
static int32_t block_alloc(mlxr_kv_pool *p) {
    int32_t b;
    if (p->n_free > 0) {
        b = p->free_list[--p->n_free];
    } else {
        b = p->lru_head;
        lru_unlink(p, b);
        ht_remove(p, b);
        p->n_evicted++;
    }
    p->ref[b] = 1;
    return b;
}

static void block_unref(mlxr_kv_pool *p, int32_t b) {
    if (--p->ref[b] > 0) return;
    if (p->hashed[b])
        lru_push(p, b); /* kept for the prefix cache until evicted */
    else
        p->free_list[p->n_free++] = b;
}

static int32_t *table_of(const mlxr_kv_pool *p, int32_t s) {
    return p->table + (size_t)s * (size_t)p->max_blocks;
}

void mlxr_kv_seq_grow(mlxr_kv_pool *p, int32_t s, int32_t n) {
    int32_t *t = table_of(p, s);
    for (int32_t i = mlxr_kv_blocks_for(p->seq_len[s]); i < mlxr_kv_blocks_for(n); i++)
        t[i] = block_alloc(p);
}

void mlxr_kv_seq_push(mlxr_kv_pool *p, int32_t s, int32_t pos, int32_t tok) {
    const int32_t *t = table_of(p, s);
    const int32_t b = t[pos / BS];
    p->tokens[(size_t)b * BS + (size_t)(pos % BS)] = tok;
    p->seq_len[s] = pos + 1;
    if (pos % BS != BS - 1) return;
    const uint64_t parent = pos >= BS ? p->hash[t[pos / BS - 1]] : HASH_ROOT;
    const int32_t *tok_b = &p->tokens[(size_t)b * BS];
    p->hash[b] = block_hash(parent, tok_b);
    phash(p)[b] = parent;
    /* the first block with some content is the cached one; later copies stay private */
    if (ht_find(p, p->hash[b], parent, tok_b) < 0) ht_insert(p, b);
}

void mlxr_kv_seq_clear(mlxr_kv_pool *p, int32_t s) {
    const int32_t *t = table_of(p, s);
    for (int32_t i = 0; i < mlxr_kv_blocks_for(p->seq_len[s]); i++)
        block_unref(p, t[i]);
    p->seq_len[s] = 0;
}

/* Copy block `from` (all layers, K and V, and its tokens) into `to`: byte copies, whatever the
 * type (a Q8_0 row carries its own scales). */
static void block_copy(mlxr_kv_pool *p, int32_t to, int32_t from) {
    memcpy(&p->tokens[(size_t)to * BS], &p->tokens[(size_t)from * BS], BS * sizeof *p->tokens);
    if (p->device_rows) {
        if (p->copy_rows) p->copy_rows(p->copy_user, to, from);
        return;
    }
    const size_t pos = (size_t)p->n_block * BS, row = (size_t)BS * p->v_elt;
    for (int32_t il = 0; il < p->n_layer; il++) {
        const size_t k0 = (size_t)il * pos * p->row_bytes;
        memcpy(p->k + k0 + (size_t)to * p->layer_bytes, p->k + k0 + (size_t)from * p->layer_bytes,
               p->layer_bytes);
        if (!p->v_trans) {
            memcpy(p->v + k0 + (size_t)to * p->layer_bytes,
                   p->v + k0 + (size_t)from * p->layer_bytes, p->layer_bytes);
            continue;
        }
        for (int32_t d = 0; d < p->kv_dim; d++) {
            uint8_t *v = p->v + ((size_t)il * (size_t)p->kv_dim + (size_t)d) * pos * p->v_elt;
            memcpy(v + (size_t)to * row, v + (size_t)from * row, row);
        }
    }
}

mlxr_status mlxr_kv_seq_truncate(mlxr_kv_pool *p, int32_t s, int32_t n, mlxr_err *err) {
    int32_t *t = table_of(p, s);
    const int32_t len = p->seq_len[s];
    if (n < 0 || n > len)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "truncate sequence %d to %d positions: it has %d", s,
                         n, len);
    if (n == len) return MLXR_OK;
    const int32_t keep = mlxr_kv_blocks_for(n), have = mlxr_kv_blocks_for(len);
    const bool cut_inside = n % BS != 0;
    const int32_t last = cut_inside ? t[keep - 1] : -1;
    if (cut_inside && p->ref[last] > 1) {
        int32_t freed = 0; /* blocks the cut returns, usable for the copy */
        for (int32_t i = keep; i < have; i++)
            freed += p->ref[t[i]] == 1;
        if (mlxr_kv_available(p) + freed == 0)
            return MLXR_FAIL(err, MLXR_ERR_NOMEM,
                             "KV pool exhausted: no block to copy a shared block of sequence %d "
                             "(%d blocks in the pool)",
                             s, p->n_block);
    }
    for (int32_t i = keep; i < have; i++)
        block_unref(p, t[i]);
    if (cut_inside) {
        if (p->ref[last] > 1) {
            const int32_t b = block_alloc(p);
            block_copy(p, b, last);
            block_unref(p, last);
            t[keep - 1] = b;
        } else if (p->hashed[last]) {
            ht_remove(p, last); /* its content is about to change */
        }
    }
    p->seq_len[s] = n;
    return MLXR_OK;
}

int32_t mlxr_kv_prefix_attach(mlxr_kv_pool *p, int32_t s, const int32_t *tokens, int32_t n) {
    if (p->seq_len[s] != 0 || n <= 1) return 0;
    int32_t *t = table_of(p, s);
    int32_t full = (n - 1) / BS;
    if (full > p->max_blocks) full = p->max_blocks;
    uint64_t parent = HASH_ROOT;
    int32_t i = 0;
    for (; i < full; i++) {
        const int32_t *tok = tokens + (size_t)i * BS;
        const uint64_t h = block_hash(parent, tok);
        const int32_t b = ht_find(p, h, parent, tok);
        if (b < 0) break;
        if (p->ref[b]++ == 0) lru_unlink(p, b);
        t[i] = b;
        parent = h;
    }
    p->seq_len[s] = i * BS;
    return i * BS;
}

void mlxr_kv_pool_stats(const mlxr_kv_pool *p, mlxr_kv_stats *out) {
    memset(out, 0, sizeof *out);
    out->block_tokens = BS;
    out->n_block = p->n_block;
    out->n_free = p->n_free;
    out->n_cached = p->n_lru;
    for (int32_t b = 0; b < p->n_block; b++) {
        out->n_used += p->ref[b] > 0;
        out->n_shared += p->ref[b] > 1;
    }
    out->block_bytes = mlxr_kv_block_bytes(p->n_layer, p->kv_dim, p->type);
    out->n_evicted = p->n_evicted;
}
