/*
 * mlxr.h - the public C API of libmlxr, a local LLM runner.
 *
 * Conventions (see STYLE.md):
 *  - Anything that can fail returns mlxr_status; MLXR_OK is 0. Results come back through
 *    out-parameters. A caller-owned mlxr_err, when non-NULL, receives a message saying what
 *    went wrong, where, and what was expected.
 *  - Every _load/_new has exactly one _free; _free(NULL) does nothing.
 *  - The library never prints. It logs through the callback installed with mlxr_log_set.
 *  - No global mutable state: everything hangs off a handle.
 */
#ifndef MLXR_H
#define MLXR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MLXR_BUILD)
#define MLXR_API __attribute__((visibility("default")))
#else
#define MLXR_API
#endif

/* ---- status and errors ------------------------------------------------------------------- */

typedef enum mlxr_status {
    MLXR_OK = 0,
    MLXR_ERR_IO,          /* file missing, unreadable, short read, mmap failed */
    MLXR_ERR_FORMAT,      /* malformed or hostile file contents */
    MLXR_ERR_NOMEM,       /* allocation failed */
    MLXR_ERR_RANGE,       /* a value or buffer size out of range; output buffer too small */
    MLXR_ERR_INVALID,     /* bad argument from the caller */
    MLXR_ERR_UNSUPPORTED, /* valid input that this build cannot handle (type, architecture) */
    MLXR_ERR_NOT_FOUND,   /* a key, tensor or token that is not there */
    MLXR_ERR_CUDA,        /* CUDA runtime error */
    MLXR_ERR_CANCELLED,   /* stopped by a cancel flag */
    MLXR_ERR_INTERNAL,    /* a broken internal invariant (a bug) */
} mlxr_status;

#define MLXR_ERR_MSG_MAX 512

/* Caller-owned error record. `file`/`line` name the check that fired (for debugging). */
typedef struct mlxr_err {
    mlxr_status code;
    char msg[MLXR_ERR_MSG_MAX];
    const char *file;
    int line;
} mlxr_err;

/* Static name of a status code, e.g. "MLXR_ERR_FORMAT" -> "format error". Never NULL. */
MLXR_API const char *mlxr_status_str(mlxr_status s);

/* ---- logging ------------------------------------------------------------------------------ */

typedef enum mlxr_log_level {
    MLXR_LOG_DEBUG = 0,
    MLXR_LOG_INFO,
    MLXR_LOG_WARN,
    MLXR_LOG_ERROR,
} mlxr_log_level;

/* Log callback: `msg` is borrowed for the call. */
typedef void (*mlxr_log_fn)(mlxr_log_level level, const char *msg, void *user);

/* Release memory that the library handed out (strings, arrays). NULL does nothing. */
MLXR_API void mlxr_free(void *p);

/* ---- tensor element types (numbering equals GGML's, which GGUF files store) --------------- */

typedef enum mlxr_dtype {
    MLXR_DTYPE_F32 = 0,
    MLXR_DTYPE_F16 = 1,
    MLXR_DTYPE_Q4_0 = 2,
    MLXR_DTYPE_Q4_1 = 3,
    MLXR_DTYPE_Q5_0 = 6,
    MLXR_DTYPE_Q5_1 = 7,
    MLXR_DTYPE_Q8_0 = 8,
    MLXR_DTYPE_Q8_1 = 9,
    MLXR_DTYPE_Q2_K = 10,
    MLXR_DTYPE_Q3_K = 11,
    MLXR_DTYPE_Q4_K = 12,
    MLXR_DTYPE_Q5_K = 13,
    MLXR_DTYPE_Q6_K = 14,
    MLXR_DTYPE_Q8_K = 15,
    MLXR_DTYPE_IQ2_XXS = 16,
    MLXR_DTYPE_IQ2_XS = 17,
    MLXR_DTYPE_IQ3_XXS = 18,
    MLXR_DTYPE_IQ1_S = 19,
    MLXR_DTYPE_IQ4_NL = 20,
    MLXR_DTYPE_IQ3_S = 21,
    MLXR_DTYPE_IQ2_S = 22,
    MLXR_DTYPE_IQ4_XS = 23,
    MLXR_DTYPE_I8 = 24,
    MLXR_DTYPE_I16 = 25,
    MLXR_DTYPE_I32 = 26,
    MLXR_DTYPE_I64 = 27,
    MLXR_DTYPE_F64 = 28,
    MLXR_DTYPE_IQ1_M = 29,
    MLXR_DTYPE_BF16 = 30,
    MLXR_DTYPE_TQ1_0 = 34,
    MLXR_DTYPE_TQ2_0 = 35,
    MLXR_DTYPE_COUNT = 39,
} mlxr_dtype;

/* Static name of a type ("F16", "Q4_0"), or NULL for a number that is no known type. */
MLXR_API const char *mlxr_dtype_name(mlxr_dtype t);

/* ---- model -------------------------------------------------------------------------------- */

typedef struct mlxr_model mlxr_model;

typedef struct mlxr_load_opts {
    mlxr_log_fn log;  /* may be NULL */
    void *log_user;
    bool vocab_only;  /* read only the tokenizer (e.g. vocabulary-only GGUF files); such a model
                         cannot make a context */
} mlxr_load_opts;

/* Hyperparameters of a loaded model (read-only view). */
typedef struct mlxr_model_info {
    const char *arch; /* "llama" */
    const char *name; /* general.name, or "" */
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot;
    float rope_freq_base, rms_eps;
    int64_t n_params;
    uint64_t n_bytes; /* bytes of tensor data */
    int32_t bos_id, eos_id;
} mlxr_model_info;

/*
 * Load a model from a GGUF file (mmap; weights are zero-copy views).
 * path: borrowed for the call. opts: may be NULL. *out: owned by the caller, free with
 * mlxr_model_free. Errors: MLXR_ERR_IO, _FORMAT, _UNSUPPORTED, _NOMEM with a message in err.
 */
MLXR_API mlxr_status mlxr_model_load(const char *path, const mlxr_load_opts *opts,
                                     mlxr_model **out, mlxr_err *err);
MLXR_API void mlxr_model_free(mlxr_model *m);
/* Borrowed until mlxr_model_free. */
MLXR_API const mlxr_model_info *mlxr_model_get_info(const mlxr_model *m);

/* ---- tokenizer (owned by the model) ------------------------------------------------------ */

/*
 * Tokenize `text` (`len` bytes, any bytes). add_bos: prepend BOS when the model asks for it
 * (tokenizer.ggml.add_bos_token). parse_special: match control tokens written in the text
 * (user input must leave this false). Writes up to `cap` ids to `ids`; *n_out receives the
 * number needed. Returns MLXR_ERR_RANGE if cap is too small (retry with *n_out). Thread-safe.
 */
MLXR_API mlxr_status mlxr_tokenize(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                                   bool parse_special, int32_t *ids, size_t cap, size_t *n_out,
                                   mlxr_err *err);

/*
 * The bytes of one token's piece as llama.cpp's token_to_piece(special=false) gives them:
 * SentencePiece `▁` becomes a space, <0xNN> becomes byte NN, control tokens are empty.
 * Writes up to cap bytes (no NUL); *n_out receives the length. MLXR_ERR_RANGE if too small.
 */
MLXR_API mlxr_status mlxr_token_to_piece(const mlxr_model *m, int32_t id, char *buf, size_t cap,
                                         size_t *n_out, mlxr_err *err);

/* True when `id` ends generation (EOS/EOT). */
MLXR_API bool mlxr_token_is_eog(const mlxr_model *m, int32_t id);

/* ---- context: KV cache, scratch, threads ------------------------------------------------- */

typedef struct mlxr_context mlxr_context;

typedef enum mlxr_kv_type {
    MLXR_KV_F16 = 0, /* llama.cpp's default: K/V stored as F16 */
    MLXR_KV_F32 = 1,
} mlxr_kv_type;

typedef struct mlxr_context_opts {
    int32_t n_ctx;     /* tokens per sequence; 0 = the model's training context */
    int32_t n_seq_max; /* sequences held at once; 0 = 1 */
    int32_t n_batch;   /* most tokens per mlxr_decode call; 0 = 512 */
    int32_t n_threads; /* 0 = number of online CPUs */
    mlxr_kv_type kv_type;
    int32_t isa_max;   /* -1/0 = best available; else cap the CPU ISA (1 scalar, 2 AVX2, 3 AVX-512) */
} mlxr_context_opts;

MLXR_API mlxr_context_opts mlxr_context_default_opts(void);

/* Create a context for `m` (borrowed until mlxr_context_free; free the context first). */
MLXR_API mlxr_status mlxr_context_new(mlxr_model *m, const mlxr_context_opts *opts,
                                      mlxr_context **out, mlxr_err *err);
MLXR_API void mlxr_context_free(mlxr_context *c);

/* Forget the KV cache of sequence `seq` (all positions). */
MLXR_API void mlxr_kv_clear(mlxr_context *c, int32_t seq);

/* Name of the CPU instruction set in use ("avx512", "avx2", "scalar"). */
MLXR_API const char *mlxr_context_isa(const mlxr_context *c);

/*
 * One batch for the forward pass: n entries of (token, pos, seq), and for each whether its
 * logits are wanted. Positions of one sequence must be consecutive from its current length,
 * in order. All arrays are borrowed for the call.
 */
typedef struct mlxr_batch {
    int32_t n;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;
    const int8_t *logits; /* NULL: logits for the last entry only */
} mlxr_batch;

/*
 * Run the model on a batch, appending K/V to each sequence's cache. On failure the KV cache is
 * left as it was. Logits of entries that asked for them are read with mlxr_get_logits.
 */
MLXR_API mlxr_status mlxr_decode(mlxr_context *c, const mlxr_batch *b, mlxr_err *err);

/* Logits (n_vocab floats) of batch entry `i` of the last decode, or NULL if none were kept.
 * Borrowed until the next mlxr_decode. */
MLXR_API const float *mlxr_get_logits(const mlxr_context *c, int32_t i);

/* ---- sampling ----------------------------------------------------------------------------- */

typedef struct mlxr_sampler mlxr_sampler;

typedef struct mlxr_sampler_opts {
    float temp;           /* <= 0: greedy */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;/* tokens the penalty looks back over */
    uint64_t seed;
} mlxr_sampler_opts;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, penalty 1.0 over 64. */
MLXR_API mlxr_sampler_opts mlxr_sampler_default_opts(void);
MLXR_API mlxr_status mlxr_sampler_new(const mlxr_sampler_opts *o, int32_t n_vocab,
                                      mlxr_sampler **out, mlxr_err *err);
MLXR_API void mlxr_sampler_free(mlxr_sampler *s);
/* Pick the next token from `logits` (n_vocab floats, borrowed; not modified). */
MLXR_API int32_t mlxr_sampler_sample(mlxr_sampler *s, const float *logits);
/* Tell the sampler a token was appended (prompt or generated) for the repetition penalty. */
MLXR_API void mlxr_sampler_accept(mlxr_sampler *s, int32_t token);

/* ---- detokenize and streaming decode (tokenizer owner adds declarations here) ------------ */

/* ---- chat templates (template owner adds declarations here) ------------------------------ */

/* ---- quantization and perplexity (quantize owner adds declarations here) ----------------- */

/* ---- engine: paged KV, scheduler, speculative decoding (engine owner adds declarations here) */

/* ---- GPU backend (CUDA owner adds declarations here) -------------------------------------- */

#ifdef __cplusplus
}
#endif
#endif /* MLXR_H */
