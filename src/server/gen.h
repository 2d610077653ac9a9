/*
 * gen.h - the daemon's generation interface: what the HTTP handlers call to turn prompt tokens
 * into text. One engine per loaded model; one mlxr_gen per request.
 *
 * Contract (every implementation keeps it):
 *  - mlxr_gen_submit never runs model compute on the caller's thread; it validates, queues and
 *    returns at once. A full queue is MLXR_ERR_RANGE (the daemon answers 429 + Retry-After).
 *  - Text comes out already cut at stop strings and on UTF-8 character boundaries (raw bytes:
 *    a model can emit invalid UTF-8, which the JSON layer sanitizes). The connection pulls it
 *    with mlxr_gen_read, so a slow client never stalls the model thread.
 *  - mlxr_gen_cancel may be called from any thread at any time; the generation ends with
 *    MLXR_GEN_CANCELLED at the next token (or the next prompt batch).
 *  - A mlxr_gen is reference-counted: the engine holds one reference until the generation is
 *    finished, the submitter one until mlxr_gen_release; others may retain it (request table).
 *
 * The implementation (gen_engine.c) runs every request of a model on one continuous-batching
 * mlxr_engine: up to n_seq_max sequences decode together, max_queue more may wait.
 */
#ifndef MLXR_SERVER_GEN_H
#define MLXR_SERVER_GEN_H

#include "mlxr.h"
#include "server/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mlxr_gen_engine mlxr_gen_engine;
typedef struct mlxr_gen mlxr_gen;

typedef struct mlxr_gen_engine_opts {
    int32_t n_ctx;      /* tokens per sequence; 0 = the model's training context */
    int32_t n_threads;  /* 0 = all online CPUs */
    int32_t max_queue;  /* requests waiting (not counting the running ones); 0 = 16 */
    mlxr_metrics *metrics; /* may be NULL; borrowed until mlxr_gen_engine_free */
    int32_t n_seq_max;  /* sequences generated at once (batched); 0 = 16 */
    int64_t kv_mem_bytes; /* KV pool; 0 = n_seq_max x min(n_ctx, 4096) positions */
    bool no_batch_invariant; /* allow batch-dependent float rounding (faster prompts; outputs
                                may then differ with the load) */
    mlxr_kv_type kv_type;    /* KV cache type (mlxr_context_opts.kv_type; 0 = F16) */
    int32_t n_gpu_layers;    /* mlxr_context_opts.n_gpu_layers: != 0 runs on CUDA device 0, and a
                                batch then runs as one pass (batch_invariant would run it row by
                                row on the GPU, giving up batching) */
} mlxr_gen_engine_opts;

/* Sampling and stopping settings of one request. Strings are copied by mlxr_gen_submit. */
typedef struct mlxr_gen_params {
    int32_t max_tokens;       /* tokens to generate at most, >= 1 (also ends at the context) */
    float temperature;        /* <= 0: greedy */
    float top_p;              /* >= 1: off */
    int32_t top_k;            /* <= 0: off */
    float min_p;              /* <= 0: off */
    float repeat_penalty;     /* 1: off (llama.cpp's multiplicative penalty) */
    int32_t repeat_last_n;
    float presence_penalty;   /* OpenAI's: logit -= presence * (count > 0) + frequency * count, */
    float frequency_penalty;  /*   counted over the generated tokens; 0: off */
    uint64_t seed;
    const char *const *stop;  /* n_stop non-empty stop strings */
    size_t n_stop;
    const mlxr_logit_bias *logit_bias; /* n_logit_bias entries (token ids checked against the
                                          vocabulary by submit), copied */
    size_t n_logit_bias;
    bool logprobs;            /* record each token's log-probability (mlxr_gen_read_logprobs) */
    int32_t top_logprobs;     /* 0..20 alternatives per token, with logprobs */
    bool json_mode;           /* constrain the output to one JSON object (mlxr_request.json_mode) */
} mlxr_gen_params;

/* Defaults (llama.cpp's): max_tokens 128, temperature 0.8, top_p 0.95, top_k 40, min_p 0.05,
 * no penalties, seed 0 (the caller picks a random one), no stops. Inline so that the request
 * parser (and its fuzzer) need no engine. */
static inline mlxr_gen_params mlxr_gen_default_params(void) {
    mlxr_gen_params p = {0};
    p.max_tokens = 128;
    p.temperature = 0.8f;
    p.top_p = 0.95f;
    p.top_k = 40;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    return p;
}

typedef enum mlxr_gen_finish {
    MLXR_GEN_RUNNING = 0, /* queued or generating */
    MLXR_GEN_STOP,        /* end-of-generation token or a stop string */
    MLXR_GEN_LENGTH,      /* max_tokens or the context reached */
    MLXR_GEN_CANCELLED,   /* mlxr_gen_cancel, client gone, or shutdown */
    MLXR_GEN_ERROR,       /* the model failed; mlxr_gen_error says why */
} mlxr_gen_finish;

/* Usage and timing (nanoseconds on CLOCK_MONOTONIC; 0 where not reached yet). */
typedef struct mlxr_gen_stats {
    int32_t n_prompt, n_gen;  /* prompt tokens evaluated, tokens generated */
    int64_t t_submit, t_start, t_first, t_end; /* queued, taken by the worker, first token, end */
} mlxr_gen_stats;

/* Create an engine for `model` (ownership transferred: freed with the engine, also on failure)
 * and start its worker. */
mlxr_status mlxr_gen_engine_new(mlxr_model *model, const mlxr_gen_engine_opts *opts,
                                mlxr_gen_engine **out, mlxr_err *err);
/* Cancel everything queued or running, join the worker, free the model. NULL does nothing.
 * Generation handles still held may afterwards only be released (mlxr_gen_release). */
void mlxr_gen_engine_free(mlxr_gen_engine *e);
/* The model, for tokenizing on the caller's thread (mlxr_tokenize is thread-safe). Borrowed. */
const mlxr_model *mlxr_gen_engine_model(const mlxr_gen_engine *e);
/* Context size of each sequence (prompt + generated tokens must fit). */
int32_t mlxr_gen_engine_n_ctx(const mlxr_gen_engine *e);
/* Requests waiting and running right now. */
void mlxr_gen_engine_load(mlxr_gen_engine *e, int32_t *n_queued, int32_t *n_running);
/* The engine's counters and KV pool (as of its last step), for /metrics. */
void mlxr_gen_engine_stats(mlxr_gen_engine *e, mlxr_engine_stats *out);
int32_t mlxr_gen_engine_n_seq_max(const mlxr_gen_engine *e);

/*
 * Queue a generation. prompt: n_prompt >= 1 token ids, copied. Errors: MLXR_ERR_INVALID (empty
 * prompt, bad id), MLXR_ERR_RANGE (prompt does not fit the context: message says so; or queue
 * full: *queue_full set), MLXR_ERR_NOMEM. *out: one reference, owned by the caller.
 */
mlxr_status mlxr_gen_submit(mlxr_gen_engine *e, const int32_t *prompt, size_t n_prompt,
                            const mlxr_gen_params *p, mlxr_gen **out, bool *queue_full,
                            mlxr_err *err);

/*
 * Copy up to `cap` bytes of text not read before into buf, waiting up to timeout_ms for some
 * (0: do not wait). Returns the bytes copied; *done becomes true once the generation finished
 * and every byte was read. Only one reader per generation. Thread-safe against the worker.
 */
size_t mlxr_gen_read(mlxr_gen *g, int timeout_ms, char *buf, size_t cap, bool *done);
/*
 * Log-probabilities of generated tokens (params.logprobs), released together with their text:
 * an entry comes out once every byte of its token's text has been read with mlxr_gen_read (text
 * held back by the stop-string matcher holds back its tokens too). When the generation is done
 * and all text was read, the remaining entries whose text begins before the end of the output
 * come out; tokens whose text lies wholly in a cut stop string (or after it) never do. A token
 * that ends inside a UTF-8 character has an empty span where it ends (its bytes show with the
 * token completing the character).
 */
typedef struct mlxr_gen_logprob {
    int32_t token;
    float logprob;            /* log-softmax of the raw logits (may be -inf) */
    int32_t n_top;
    int32_t top_id[20];
    float top_lp[20];
    size_t text_start, text_end; /* byte span in the generated text (may extend past a cut) */
    size_t char_start;        /* text_start in UTF-8 characters */
} mlxr_gen_logprob;

/* Copy up to cap released entries not taken before into out; returns how many. Only the reader
 * calls it (after mlxr_gen_read). Thread-safe against the worker. */
size_t mlxr_gen_read_logprobs(mlxr_gen *g, mlxr_gen_logprob *out, size_t cap);

/* The model the generation runs on (for token texts). Borrowed while g is held. */
const mlxr_model *mlxr_gen_model(const mlxr_gen *g);

/* Ask the generation to stop (any thread; idempotent). */
void mlxr_gen_cancel(mlxr_gen *g);
/* Block until finished (or timeout_ms, -1 = forever); true if finished. */
bool mlxr_gen_wait(mlxr_gen *g, int timeout_ms);

mlxr_gen_finish mlxr_gen_finish_reason(mlxr_gen *g);
void mlxr_gen_get_stats(mlxr_gen *g, mlxr_gen_stats *out);
/* Error message when the finish reason is MLXR_GEN_ERROR (copied into buf). */
void mlxr_gen_error(mlxr_gen *g, char *buf, size_t cap);
/* Process-unique id (1, 2, ...). */
uint64_t mlxr_gen_id(const mlxr_gen *g);

void mlxr_gen_retain(mlxr_gen *g);
/* Drop one reference; the last one frees. NULL does nothing. */
void mlxr_gen_release(mlxr_gen *g);

/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t mlxr_gen_now_ns(void);

#endif
