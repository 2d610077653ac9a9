/*
 * model.h - internal layout of a loaded model and of a context (KV cache, scratch, threads).
 *
 * A model is read-only after load: weights are views into the GGUF map, so any number of
 * contexts may share it. A context owns everything that changes while decoding.
 */
#ifndef MLXR_MODEL_MODEL_H
#define MLXR_MODEL_MODEL_H

#include "format/gguf.h"
#include "kernels/kernels.h"
#include "kv/kv.h"
#include "mlxr.h"
#include "tokenizer/vocab.h"
#include "util/threadpool.h"

#include <stdatomic.h>

/* One thread's next chunk of a matrix product (llama.c), alone on its 64-byte cache line. */
typedef struct mlxr_mm_ctr {
    atomic_llong next;
    char pad[64 - sizeof(atomic_llong)];
} mlxr_mm_ctr;

/* A weight matrix or vector: a view into the map. Rows are ne1 rows of ne0 elements. */
typedef struct mlxr_weight {
    char name[48];    /* tensor name, for messages */
    const void *data;
    mlxr_dtype type;
    int64_t ne0, ne1;
    size_t row_bytes;
    void *packed;     /* owned interleaved copy (kernels.h x8 layouts) the CPU products use, or
                         NULL; `data` stays the plain GGUF layout (model.c pack_weights) */
    void *copy;       /* owned copy of the plain layout on huge pages that `data` points to, for
                         types without an interleaved layout (model.c copy_weight), or NULL */
} mlxr_weight;

typedef struct mlxr_layer {
    mlxr_weight attn_norm; /* [n_embd] F32 */
    mlxr_weight wq;        /* [n_embd] -> [n_head * head_dim] */
    mlxr_weight wk;        /* [n_embd] -> [n_head_kv * head_dim] */
    mlxr_weight wv;        /* [n_embd] -> [n_head_kv * head_dim] */
    mlxr_weight wo;        /* [n_head * head_dim] -> [n_embd] */
    mlxr_weight ffn_norm;  /* [n_embd] F32 */
    mlxr_weight w_gate;    /* [n_embd] -> [n_ff] */
    mlxr_weight w_up;      /* [n_embd] -> [n_ff] */
    mlxr_weight w_down;    /* [n_ff] -> [n_embd] */
} mlxr_layer;

struct mlxr_model {
    mlxr_gguf *gguf;         /* NULL for a Hugging Face / MLX directory (then hf is set) */
    struct mlxr_hf *hf;      /* shards and converted weights of such a model (model/hf.h) */
    mlxr_vocab *vocab;
    mlxr_model_info info;
    char arch[32];
    char name[128];
    mlxr_weight tok_embd;    /* [n_vocab][n_embd] */
    mlxr_weight output_norm; /* [n_embd] F32 */
    mlxr_weight output;      /* [n_vocab][n_embd]; tok_embd when tied */
    mlxr_layer *layers;      /* [n_layer] */
    mlxr_log_fn log;
    void *log_user;
    bool vocab_only;
};

struct mlxr_context {
    mlxr_model *m; /* borrowed */
    mlxr_kernels kern;
    mlxr_tp *tp;
    int32_t n_ctx, n_seq, n_batch;
    mlxr_kv_type kv_type;
    bool batch_invariant; /* per-entry products only (see mlxr_context_opts) */
    size_t kv_elt;     /* bytes per cached element: 2 (F16) or 4 (F32) */
    int32_t kv_dim;    /* n_head_kv * head_dim */
    mlxr_kv_pool kv;   /* paged K/V of every sequence (kv/kv.h); kv.seq_len: positions cached */
    int32_t *seq_next; /* [n_seq] scratch of mlxr_decode's batch check */

    /* forward-pass scratch, sized for n_batch tokens */
    float *x;          /* [n_batch][n_embd] residual stream */
    float *xb;         /* [n_batch][n_embd] */
    float *xb2;        /* [n_batch][n_embd] */
    float *q;          /* [n_batch][n_embd] */
    float *k;          /* [n_batch][kv_dim] */
    float *v;          /* [n_batch][kv_dim] */
    float *hb;         /* [n_batch][n_ff] */
    float *hb2;        /* [n_batch][n_ff] */
    void *xq;          /* [n_batch][row bytes of max(n_embd, n_ff) in any vec_dot_type] */
    size_t xq_row;     /* bytes per row of xq and xq2 */
    void *xq2;         /* like xq: the FFN's down-projection input, encoded while xq, the
                          gate/up input, is still being read (llama.c) */
    void *att;         /* per thread: scores [ATT_QCHUNK][n_ctx] f32, q16 [ATT_QCHUNK][head_dim]
                          and p16 [ATT_QCHUNK][n_ctx] in the KV type, partial outputs
                          [ATT_QCHUNK][head_dim] f32 (attention.c) */
    size_t att_stride; /* bytes per thread in att */
    float *rope_cs;    /* [n_rot] RoPE cos/sin scratch */
    mlxr_mm_ctr *mm_ctr; /* [n_threads] matrix-product hand-out counters (llama.c) */
    int32_t *att_seg;  /* [n_batch + 1] attention segment starts (attention.c) */
    float *logits;     /* [n_batch][n_vocab] rows for entries that asked for logits */
    int32_t *logit_row;/* [n_batch] row in logits of batch entry i, or -1 */
    int32_t n_batch_last;
    float *embd_out;   /* set by mlxr_embed (embed.c) for its decodes, else NULL: receives the
                          final hidden state (after the output RMSNorm) of each entry that asked
                          for logits, [rows][n_embd] in logit-row order */
    bool embd_only;    /* set by mlxr_embed: skip the output projection (no logits) */
    struct mlxr_cuda_ctx *gpu; /* CUDA backend state when n_gpu_layers != 0 (backend_cuda.c), or NULL */
};

/* Load hyperparameters and weight views from an opened GGUF (model.c). */
mlxr_status mlxr_model_load_weights(mlxr_model *m, mlxr_err *err);

/* Queries per attention task: bounds the per-thread scratch at ATT_QCHUNK x n_ctx. */
#define ATT_QCHUNK 32

/* Bytes of attention scratch per thread (context.c allocates n_threads of them). */
size_t mlxr_attention_scratch(int32_t n_ctx, int32_t head_dim);

/* Store the batch's K/V of layer il into the cache and write attention outputs for every entry
 * into c->xb2 [n][n_embd] (attention.c). */
void mlxr_attention(mlxr_context *c, const mlxr_batch *b, int32_t il);

/* Run the forward pass on a validated batch (llama.c). */
void mlxr_llama_forward(mlxr_context *c, const mlxr_batch *b);

/* Prompt lookup (speculative.c): up to k tokens that followed the latest earlier occurrence in
 * hist[0..n) of its last g tokens, for the largest g in ngram_max..ngram_min that occurs; written
 * to out, count returned (0: none). */
int32_t mlxr_spec_lookup(const int32_t *hist, int32_t n, int32_t ngram_min, int32_t ngram_max,
                         int32_t k, int32_t *out);

#endif
