/*
 * kv.h - the paged KV cache: one pool of fixed-size blocks shared by every sequence of a context,
 * a block table per sequence, and a prefix cache of full blocks addressed by their content.
 *
 * Layout: the pool holds n_block * 32 positions; block b is pool positions b*32 .. b*32+31.
 *   K: [n_layer][pool positions][kv_dim]   rows per position, as Q.K wants them
 *   V: [n_layer][kv_dim][pool positions]   transposed, so P.V runs over contiguous rows (F16, F32)
 *   V: [n_layer][pool positions][kv_dim]   rows like K for Q8_0 (v_trans false): a Q8_0 block
 *                                          runs along a row, so one position's values must share
 *                                          a row to be written alone (kernels/kv_q8.h)
 * A position's row of kv_dim values takes row_bytes: kv_dim * 2 (F16), * 4 (F32), or
 * kv_dim / 32 * 34 (Q8_0: blocks of 32 int8 and one F16 scale), so a Q8_0 pool of the same byte
 * size holds 1.88x the positions of an F16 one. Block copies are byte copies in every type.
 * Position p of sequence s is pool position table[s][p / 32] * 32 + p % 32. Blocks that follow
 * each other in the pool also follow each other in every K column and V row, so attention runs
 * one product per run of consecutive blocks (attention.c); the free list hands out ascending
 * blocks, so a sequence decoded alone is one run, exactly like a contiguous cache.
 *
 * Why 32 positions per block: the F16 dot products and tiles run 8/32 elements per step, so a
 * run of full blocks is a whole number of SIMD steps with no scalar tail, and block starts are
 * multiples of the 4-row GEMM tiles (Q.K of a block equals that of a contiguous cache bitwise);
 * 32 is also the attention query chunk. Smaller blocks (16) waste less of a last, partial block
 * (8 positions per sequence on average instead of 16, negligible next to contexts of hundreds of
 * tokens) but give the prefix cache and the product runs a finer grain than they need and double
 * the hashing and table work; larger ones (64+) make prefix sharing coarser.
 *
 * Invariants:
 *  - ref[b] counts the sequences whose table holds block b; a block with ref 0 is either on the
 *    free list or, when it holds a hashed full block, on the LRU list of evictable cached blocks.
 *  - Only full blocks are ever shared or hashed. Writes go only to a sequence's last, partial
 *    block, which has ref 1 and is not in the hash table; truncating into a shared full block
 *    copies it first (copy on write), into an owned hashed one unhashes it.
 *  - Every full block carries hash = H(hash of the previous block of its sequence, its tokens);
 *    the hash table maps such hashes to one block holding that content (tokens compared too).
 *
 * Not thread-safe: a context (and its pool) is driven by one thread at a time.
 */
#ifndef MLXR_KV_KV_H
#define MLXR_KV_KV_H

#include "mlxr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MLXR_KV_BLOCK 32

typedef struct mlxr_kv_pool {
    int32_t n_block; /* blocks in the pool */
    int32_t n_layer;
    int32_t kv_dim;     /* n_head_kv * head_dim */
    mlxr_kv_type type;
    size_t row_bytes;   /* bytes of one position's kv_dim values (mlxr_kv_row_bytes) */
    bool v_trans;       /* V transposed ([kv_dim][positions], F16/F32) rather than rows like K */
    size_t v_elt;       /* bytes per V element when transposed: 2 (F16) or 4 (F32) */
    size_t layer_bytes; /* bytes of one block's K (or V) in one layer: BLOCK * row_bytes */
    uint8_t *k;         /* [n_layer][n_block * BLOCK][row_bytes] */
    uint8_t *v;         /* v_trans: [n_layer][kv_dim][n_block * BLOCK] elements, else as k */
    /* A device backend (CUDA) keeps the rows in its own memory with the same block numbering: the
     * pool then holds only the bookkeeping (k, v NULL) and block copies go through copy_rows. */
    bool device_rows;
    void (*copy_rows)(void *user, int32_t to, int32_t from);
    void *copy_user;

    int32_t *ref;       /* [n_block] sequences holding the block */
    int32_t *free_list; /* [n_block] stack of free blocks */
    int32_t n_free;
    int32_t *tokens;   /* [n_block][BLOCK] tokens stored in each block (for hashing, collisions) */
    uint64_t *hash;    /* [n_block] chained content hash, valid once the block is full */
    uint8_t *hashed;   /* [n_block] 1 when the block is in the hash table */
    int32_t *hnext;    /* [n_block] next block in the same hash bucket, -1 ends */
    int32_t *bucket;   /* [n_bucket] first block of each bucket, -1 empty */
    uint32_t n_bucket; /* power of two */
    int32_t *lru_prev, *lru_next; /* [n_block] list of evictable cached blocks (ref 0, hashed) */
    int32_t lru_head, lru_tail;   /* head = least recently used, evicted first */
    int32_t n_lru;

    int32_t n_seq;
    int32_t max_blocks; /* table entries per sequence: ceil(n_ctx / BLOCK) */
    int32_t *table;     /* [n_seq][max_blocks] block of each position range */
    int32_t *seq_len;   /* [n_seq] positions cached */

    uint64_t n_evicted; /* cached blocks reused for new data, since creation */
} mlxr_kv_pool;

/* Blocks needed to hold n positions. */
static inline int32_t mlxr_kv_blocks_for(int32_t n) {
    return (n + MLXR_KV_BLOCK - 1) / MLXR_KV_BLOCK;
}

/* Allocate a pool of n_block blocks of type `type` for n_seq sequences of at most n_ctx
 * positions; device_rows: no host rows (a device backend holds them and sets copy_rows before
 * the first truncation). Errors: MLXR_ERR_NOMEM, MLXR_ERR_RANGE (sizes overflow),
 * MLXR_ERR_UNSUPPORTED (Q8_0 with kv_dim not a multiple of 32). On failure the pool is freed. */
mlxr_status mlxr_kv_pool_init(mlxr_kv_pool *p, int32_t n_block, int32_t n_layer, int32_t kv_dim,
                              mlxr_kv_type type, int32_t n_seq, int32_t n_ctx, bool device_rows,
                              mlxr_err *err);
void mlxr_kv_pool_release(mlxr_kv_pool *p);

/* Bytes of one position's kv_dim values in `type`; 0 for an unknown type, or for Q8_0 when
 * kv_dim is not a multiple of 32. */
size_t mlxr_kv_row_bytes(mlxr_kv_type type, int32_t kv_dim);

/* Bytes one block takes (K and V of all layers). 0 on overflow or an unusable type/kv_dim. */
size_t mlxr_kv_block_bytes(int32_t n_layer, int32_t kv_dim, mlxr_kv_type type);

/* Blocks that can be handed out now: free plus evictable cached ones. */
int32_t mlxr_kv_available(const mlxr_kv_pool *p);

/* New blocks sequence s needs to grow to n positions (0 if it holds enough already). */
int32_t mlxr_kv_blocks_needed(const mlxr_kv_pool *p, int32_t s, int32_t n);

/* Give sequence s blocks up to n positions. The caller checked mlxr_kv_blocks_needed against
 * mlxr_kv_available, so this cannot fail. */
void mlxr_kv_seq_grow(mlxr_kv_pool *p, int32_t s, int32_t n);

/* Record that token `tok` now sits at position pos of sequence s (pos == seq_len, the block
 * exists); a block that becomes full is hashed and offered to the prefix cache. */
void mlxr_kv_seq_push(mlxr_kv_pool *p, int32_t s, int32_t pos, int32_t tok);

/* Drop every position of sequence s: blocks lose a reference; unreferenced cached blocks stay
 * evictable in the prefix cache, others go back to the free list. */
void mlxr_kv_seq_clear(mlxr_kv_pool *p, int32_t s);

/* Keep the first n positions of s (n <= seq_len). Cutting into a shared block copies it, which
 * needs one block: MLXR_ERR_NOMEM if none is available (the sequence is then unchanged). */
mlxr_status mlxr_kv_seq_truncate(mlxr_kv_pool *p, int32_t s, int32_t n, mlxr_err *err);

/* Prefix cache: make the empty sequence s start with the longest run of cached full blocks
 * matching tokens[0..n), leaving at least one token uncached (its logits must be computed).
 * Returns the positions now cached (a multiple of MLXR_KV_BLOCK, possibly 0). */
int32_t mlxr_kv_prefix_attach(mlxr_kv_pool *p, int32_t s, const int32_t *tokens, int32_t n);

/* Counts of the pool, for statistics and leak checks. */
void mlxr_kv_pool_stats(const mlxr_kv_pool *p, mlxr_kv_stats *out);

#endif
