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
    bool for_gpu;     /* the weights will run on a CUDA device (n_gpu_layers != 0): skip the CPU's
                         load-time repacking into interleaved layouts (time and a second copy of
                         the weights in RAM); CPU contexts still work, on the plain layouts */
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
    MLXR_KV_Q8_0 = 2, /* llama.cpp's -ctk q8_0 -ctv q8_0: K/V rows as Q8_0 blocks (32 int8 + an
                         F16 scale, 1.88x the positions of F16 per byte); needs head_dim a
                         multiple of 32 and the CPU path (MLXR_ERR_UNSUPPORTED otherwise) */
} mlxr_kv_type;

/* "f16", "f32", "q8_0" (llama.cpp's -ctk names); "?" for anything else. */
MLXR_API const char *mlxr_kv_type_name(mlxr_kv_type t);
/* The type named `name` (as mlxr_kv_type_name, case-insensitive): true, or false if none. */
MLXR_API bool mlxr_kv_type_from_name(const char *name, mlxr_kv_type *out);

typedef struct mlxr_context_opts {
    int32_t n_ctx;     /* tokens per sequence; 0 = the model's training context */
    int32_t n_seq_max; /* sequences held at once; 0 = 1 */
    int32_t n_batch;   /* most tokens per mlxr_decode call; 0 = 512 */
    int32_t n_threads; /* 0 = number of online CPUs */
    mlxr_kv_type kv_type;
    int32_t isa_max;   /* -1/0 = best available; else cap the CPU ISA (1 scalar, 2 AVX2, 3 AVX-512,
                          4 AVX-512 VNNI, 5 AVX-512 VNNI + BF16) */
    int64_t kv_mem_bytes; /* paged KV pool size in bytes (blocks of 32 positions, all layers);
                             0 = enough for every sequence to reach n_ctx (n_seq_max x n_ctx) */
    bool batch_invariant; /* compute every batch entry as if it were alone (one dot product per
                             output, no tiles): logits then do not depend on what else is in the
                             batch or how a prompt is chunked, at some cost in prompt speed */
    int32_t n_gpu_layers; /* 0: CPU; < 0 or >= n_layer: the whole model on CUDA device 0 (needs a
                             CUDA build; partial offload is not supported yet) */
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

/* A bias added to one token's logit before sampling (OpenAI logit_bias): -100..100; -100
 * effectively bans the token, +100 effectively forces it. */
typedef struct mlxr_logit_bias {
    int32_t token;
    float bias;
} mlxr_logit_bias;

/* Order of application: logit bias, repetition penalty, presence/frequency penalties, then
 * top-k, top-p, min-p, temperature. Zero in any field added after seed means off. */
typedef struct mlxr_sampler_opts {
    float temp;           /* <= 0: greedy */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;/* tokens the penalty looks back over */
    uint64_t seed;
    float presence_penalty;  /* OpenAI's: logit -= presence * (count > 0) + frequency * count, */
    float frequency_penalty; /*   count = times the token was generated (prompt tokens do not
                                  count; the whole generation, no window); 0: off */
    const mlxr_logit_bias *logit_bias; /* n_logit_bias entries, copied by mlxr_sampler_new;
                                          a token listed twice gets both biases */
    int32_t n_logit_bias;
} mlxr_sampler_opts;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, penalty 1.0 over 64; no
 * presence/frequency penalty, no logit bias. */
MLXR_API mlxr_sampler_opts mlxr_sampler_default_opts(void);
/* Errors: MLXR_ERR_INVALID (NaN values, repeat penalty <= 0, non-finite presence/frequency,
 * logit_bias NULL with n_logit_bias > 0), MLXR_ERR_RANGE (repeat_last_n, a bias token outside
 * 0..n_vocab-1 or a bias outside -100..100), MLXR_ERR_NOMEM. */
MLXR_API mlxr_status mlxr_sampler_new(const mlxr_sampler_opts *o, int32_t n_vocab,
                                      mlxr_sampler **out, mlxr_err *err);
MLXR_API void mlxr_sampler_free(mlxr_sampler *s);
/* Pick the next token from `logits` (n_vocab floats, borrowed; not modified). NaN logits count
 * as -inf; at least one logit must be greater than -inf after the bias. */
MLXR_API int32_t mlxr_sampler_sample(mlxr_sampler *s, const float *logits);
/* Tell the sampler a token was appended, for the penalties. Tokens accepted before the first
 * mlxr_sampler_sample are the prompt: they enter the repetition penalty's window but not the
 * presence/frequency counts; every token accepted after it counts as generated. */
MLXR_API void mlxr_sampler_accept(mlxr_sampler *s, int32_t token);

/*
 * Log-probabilities of the model's distribution, as OpenAI reports them: log_softmax(logits) of
 * the raw logits (temperature 1; before logit bias, penalties, filters and any constraint).
 * logits: n_vocab floats (borrowed; NaN counts as -inf). *token_lp (if token_lp is not NULL):
 * the log-probability of `token`. top_ids/top_lp: the n_top (0..n_vocab) most likely tokens,
 * most likely first, lower id first on ties (each array n_top long; may be NULL when n_top is
 * 0). Costs O(n_vocab x n_top). Errors: MLXR_ERR_INVALID (bad arguments). Thread-safe.
 */
MLXR_API mlxr_status mlxr_sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token,
                                           int32_t n_top, int32_t *top_ids, float *top_lp,
                                           float *token_lp, mlxr_err *err);

/* ---- detokenize and streaming decode (tokenizer owner adds declarations here) ------------ */

/*
 * Token ids back to text: the pieces of mlxr_token_to_piece concatenated (SentencePiece `▁` is a
 * space and <0xNN> a byte, byte-level BPE characters map back to their bytes, WordPiece
 * continuations join the word before them). special: also print control tokens (<s>, [CLS],
 * <|eot_id|>); false prints them as nothing. A SentencePiece vocabulary that adds a dummy-prefix
 * space when tokenizing (add_space_prefix) loses one leading space from the first text token,
 * so mlxr_detokenize(mlxr_tokenize(x)) == x for valid UTF-8 x with SentencePiece and byte-level
 * BPE vocabularies (WordPiece lower-cases and drops whitespace, so it cannot round-trip).
 * Unlike llama.cpp's llama_detokenize, no "clean-up" of spaces before punctuation is applied.
 * ids: n ids, borrowed. Writes up to cap bytes (no NUL) to buf; *n_out receives the length
 * needed; MLXR_ERR_RANGE if cap is too small (retry with *n_out), MLXR_ERR_INVALID for an id
 * outside [0, n_vocab). Thread-safe.
 */
MLXR_API mlxr_status mlxr_detokenize(const mlxr_model *m, const int32_t *ids, size_t n,
                                     bool special, char *buf, size_t cap, size_t *n_out,
                                     mlxr_err *err);

/*
 * Streaming decode for generation: push ids one at a time and get back only complete UTF-8
 * characters; an incomplete tail (a character split over tokens, e.g. byte tokens) is kept for
 * the next push, and mlxr_detok_stream_flush returns whatever is left (a truncated character's
 * bytes as they are). The concatenation of all outputs equals mlxr_detokenize of all the ids.
 * Invalid UTF-8 produced by the tokens is passed through, never held back forever.
 * new: m is borrowed until mlxr_detok_stream_free; special as in mlxr_detokenize.
 * push/flush: write up to cap bytes to buf, *n_out = length; MLXR_ERR_RANGE if cap is too small
 * (nothing is consumed: retry the same call with *n_out bytes), MLXR_ERR_INVALID for a bad id.
 * A stream is used by one thread at a time.
 */
typedef struct mlxr_detok_stream mlxr_detok_stream;
MLXR_API mlxr_status mlxr_detok_stream_new(const mlxr_model *m, bool special,
                                           mlxr_detok_stream **out, mlxr_err *err);
MLXR_API mlxr_status mlxr_detok_stream_push(mlxr_detok_stream *s, int32_t id, char *buf,
                                            size_t cap, size_t *n_out, mlxr_err *err);
MLXR_API mlxr_status mlxr_detok_stream_flush(mlxr_detok_stream *s, char *buf, size_t cap,
                                             size_t *n_out, mlxr_err *err);
MLXR_API void mlxr_detok_stream_free(mlxr_detok_stream *s);

/* ---- chat templates (template owner adds declarations here) ------------------------------ */

/*
 * Render a Jinja2 chat template as Hugging Face transformers' apply_chat_template does (Python
 * jinja2 ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loopcontrols; globals
 * raise_exception(msg) and strftime_now(fmt); tojson as json.dumps(ensure_ascii=False)).
 * tmpl: tmpl_len bytes (borrowed). vars_json: vars_len bytes of a JSON object whose keys become
 * the template's variables (messages, tools, add_generation_prompt, bos_token, ...); NULL/0 for
 * none. *out: the rendered text, NUL-terminated, *out_len bytes (may contain NULs); free with
 * mlxr_free. strftime_now uses local time, or MLXR_TEMPLATE_NOW (Unix seconds, formatted in UTC)
 * when set in the environment, for reproducible output.
 * Errors: MLXR_ERR_FORMAT (syntax error: message names line and column; bad JSON),
 * MLXR_ERR_INVALID (the template raised: err->msg is exactly its message; or a runtime error
 * such as an undefined variable misused, with jinja2's message), MLXR_ERR_RANGE (a bound was
 * hit: 16 MiB output, 5M evaluation steps, nesting depth, 256 MiB of values, 1 MiB template),
 * MLXR_ERR_UNSUPPORTED (a Jinja feature outside the supported subset), MLXR_ERR_NOMEM.
 * Thread-safe (no shared state).
 */
MLXR_API mlxr_status mlxr_template_render(const char *tmpl, size_t tmpl_len, const char *vars_json,
                                          size_t vars_len, char **out, size_t *out_len,
                                          mlxr_err *err);

/* The template used for models that ship none: ChatML (as llama.cpp and Ollama fall back to):
 * "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n" when
 * add_generation_prompt. Static string. */
MLXR_API const char *mlxr_template_default(void);

/* A copy of the model's chat template (GGUF `tokenizer.chat_template`) in *out (free with
 * mlxr_free), NUL-terminated. MLXR_ERR_NOT_FOUND if the model has none. */
MLXR_API mlxr_status mlxr_model_chat_template(const mlxr_model *m, char **out, mlxr_err *err);

/*
 * Render the model's chat template (or mlxr_template_default) for messages_json (len bytes: a
 * JSON array of {"role", "content", ...} messages, or an object of template variables with a
 * "messages" key). bos_token/eos_token are the texts of the model's BOS/EOS tokens unless the
 * object sets them. *out as mlxr_template_render (free with mlxr_free). Errors as
 * mlxr_template_render, plus MLXR_ERR_INVALID for bad arguments.
 */
MLXR_API mlxr_status mlxr_chat_apply_template(const mlxr_model *m, const char *messages_json,
                                              size_t len, bool add_generation_prompt, char **out,
                                              size_t *out_len, mlxr_err *err);

/* ---- quantization and perplexity (quantize owner adds declarations here) ----------------- */

/* Called once per tensor that is converted, before its data is written: tensor i_tensor of
 * n_tensors (file order), its name (borrowed for the call) and the types from and to. */
typedef void (*mlxr_quantize_progress_fn)(int64_t i_tensor, int64_t n_tensors, const char *name,
                                          mlxr_dtype from, mlxr_dtype to, void *user);

typedef struct mlxr_quantize_opts {
    const char *preset;      /* llama-quantize's name: "Q4_K_M", "Q8_0", "F16", ... (any case);
                                NULL: use ftype */
    int32_t ftype;           /* llama.cpp's LLAMA_FTYPE value (e.g. 15 = Q4_K_M), if no preset */
    int32_t n_threads;       /* 0 = number of online CPUs */
    mlxr_quantize_progress_fn progress; /* may be NULL */
    void *progress_user;
} mlxr_quantize_opts;

/* preset NULL, ftype 7 (Q8_0), all CPUs, no progress callback. */
MLXR_API mlxr_quantize_opts mlxr_quantize_default_opts(void);

/* The LLAMA_FTYPE value of a preset name (any case; "Q4_K" means Q4_K_M as in llama-quantize), or
 * -1 if unknown. mlxr_quantize_preset_at(i) names the i-th supported preset (NULL past the end). */
MLXR_API int32_t mlxr_quantize_preset_ftype(const char *name);
MLXR_API const char *mlxr_quantize_preset_at(int32_t i);

/*
 * Write a copy of the GGUF model at in_path with its weights converted to a preset, as
 * llama-quantize does without an importance matrix: the same per-tensor types (output.weight and
 * the _M/_S mixes per llama.cpp's rules, 1-D tensors and norms kept, fallbacks for rows that are
 * not a multiple of the block size) and, for the same source, the same bytes. All metadata is
 * copied; general.file_type and general.quantization_version are set. The file is written to
 * out_path + ".tmp", synced and renamed, so out_path is either the complete new file or untouched.
 * Source tensors to convert must be F32, F16 or BF16 (a quantized one that would change type is
 * an MLXR_ERR_UNSUPPORTED error: requantizing loses quality). Paths are borrowed for the call.
 * Errors: MLXR_ERR_IO, _FORMAT, _UNSUPPORTED, _INVALID (unknown preset), _NOMEM, with a message.
 */
MLXR_API mlxr_status mlxr_model_quantize(const char *in_path, const char *out_path,
                                         const mlxr_quantize_opts *opts, mlxr_err *err);

/* ---- engine: paged KV, scheduler, speculative decoding (engine owner adds declarations here) */

/*
 * Paged KV cache. A context keeps K/V in one pool of blocks of 32 positions (all layers), sized by
 * mlxr_context_opts.kv_mem_bytes; each sequence maps its positions to blocks through a table.
 * Full blocks are also remembered by content (a hash of the block's tokens chained with the
 * previous block's) so a later sequence with the same prefix can share them (the engine does;
 * plain mlxr_decode callers only fill the cache). When a batch needs more blocks than the pool has
 * free or evictable, mlxr_decode fails with MLXR_ERR_NOMEM ("KV pool exhausted ...") before
 * writing anything.
 */
typedef struct mlxr_kv_stats {
    int32_t block_tokens; /* positions per block (32) */
    int32_t n_block;      /* blocks in the pool */
    int32_t n_free;       /* blocks holding nothing */
    int32_t n_cached;     /* blocks no sequence holds, kept for the prefix cache (evictable) */
    int32_t n_used;       /* blocks held by at least one sequence */
    int32_t n_shared;     /* blocks held by two or more sequences */
    size_t block_bytes;   /* bytes per block */
    uint64_t n_evicted;   /* cached blocks reused for new data since the context was made */
} mlxr_kv_stats;

/* Pool counts (n_free + n_cached + n_used == n_block). Not thread-safe with mlxr_decode. */
MLXR_API void mlxr_kv_get_stats(const mlxr_context *c, mlxr_kv_stats *out);

/* Positions cached for sequence `seq` (0 if out of range). */
MLXR_API int32_t mlxr_kv_seq_len(const mlxr_context *c, int32_t seq);

/*
 * Keep only the first n positions of sequence `seq` (for speculative decoding: drop rejected
 * draft tokens). Errors: MLXR_ERR_RANGE (bad seq, n > length), MLXR_ERR_NOMEM when cutting into
 * a block shared with another sequence needs a copy and the pool has no block (nothing changed).
 */
MLXR_API mlxr_status mlxr_kv_truncate(mlxr_context *c, int32_t seq, int32_t n, mlxr_err *err);

/*
 * Engine: continuous batching over one model, for concurrent use (the HTTP daemon's core).
 *
 * The engine owns a context and one thread that drives it. Each step it builds one batch from
 * the next token of every running request plus chunks of waiting prompts (chunked prefill), up
 * to opts.ctx.n_batch tokens, runs it, samples each request's token with its own sampler, and
 * delivers tokens through the request's callbacks. Requests are admitted first come, first
 * served while there are free sequence slots (opts.ctx.n_seq_max) and KV blocks for their whole
 * prompt. When the KV pool runs out mid-generation, the newest running request is preempted: its
 * blocks are freed and it is later recomputed from its prompt and the tokens generated so far
 * (callers see no difference except time). A prompt whose leading 32-token blocks are in the
 * prefix cache shares those blocks and skips their prefill; a request whose prompt shares blocks
 * with one still computing them waits for them instead of computing them twice.
 *
 * Threading: mlxr_engine_submit, _cancel, _get_stats and _wait_idle may be called from any
 * thread at any time. Callbacks run on the engine thread, one at a time, and must not block for
 * long (a slow callback stalls every request) nor call mlxr_engine_free or _wait_idle; they may
 * call mlxr_engine_submit and mlxr_engine_cancel.
 *
 * Batched results equal a request run alone up to float reordering (tiled products group rows
 * differently); set opts.ctx.batch_invariant for bitwise-equal logits whatever the batch holds.
 */
typedef struct mlxr_engine mlxr_engine;

typedef struct mlxr_engine_opts {
    mlxr_context_opts ctx; /* n_ctx: most positions per request; n_seq_max: most requests running
                              at once (0 = 16); n_batch: tokens per step (0 = 512);
                              kv_mem_bytes: the KV pool (0 = n_seq_max x n_ctx) */
    bool no_prefix_cache;  /* never share cached prompt blocks (for measurements) */
    int32_t n_lookup;      /* speculative decoding by prompt lookup: each decode step proposes up
                              to this many tokens from the request's own text (the continuation
                              of the latest earlier occurrence of its last 1-3 tokens), verified in
                              the same batch; 0 = off, at most 16 */
    mlxr_log_fn log;       /* may be NULL */
    void *log_user;
} mlxr_engine_opts;

/* Defaults: ctx = mlxr_context_default_opts() with n_ctx 2048 and n_seq_max 16. */
MLXR_API mlxr_engine_opts mlxr_engine_default_opts(void);

typedef enum mlxr_finish {
    MLXR_FINISH_LENGTH = 0, /* max_tokens generated, or the context (n_ctx) is full */
    MLXR_FINISH_EOG,        /* the model produced an end-of-generation token */
    MLXR_FINISH_STOP,       /* one of the request's stop ids */
    MLXR_FINISH_CANCELLED,  /* mlxr_engine_cancel, a callback returned false, or engine freed */
    MLXR_FINISH_ERROR,      /* the request cannot run (e.g. the KV pool cannot hold it alone) */
} mlxr_finish;

/* Per-request statistics; times in seconds. */
typedef struct mlxr_request_stats {
    double queue_s;        /* submit -> first scheduled */
    double ttft_s;         /* submit -> first token delivered */
    double total_s;        /* submit -> finished */
    double gen_tok_per_s;  /* tokens after the first / time after the first (0 if < 2 tokens) */
    int32_t n_prompt;      /* prompt tokens */
    int32_t n_gen;         /* tokens generated (delivered, plus a final EOG/stop token) */
    int32_t n_cached;      /* prompt tokens served from the prefix cache (prefill skipped) */
    int32_t n_prefilled;   /* tokens run through the model as prompt (recomputation included) */
    int32_t n_preempted;   /* times the request was preempted and recomputed */
    int32_t n_drafted;     /* prompt-lookup tokens proposed (opts.n_lookup) */
    int32_t n_accepted;    /* of which the model confirmed */
    mlxr_finish finish;
    mlxr_status status;    /* MLXR_OK unless finish == MLXR_FINISH_ERROR */
    char msg[160];         /* the error, if any */
} mlxr_request_stats;

/* A generated token: return false to cancel the request (e.g. the client went away). EOG and
 * stop-id tokens are not delivered. Runs on the engine thread. */
typedef bool (*mlxr_engine_token_fn)(void *user, uint64_t id, int32_t token);
/* A generated token with its log-probabilities (mlxr_sampler_logprobs of the raw logits at its
 * position), for mlxr_request.on_token_info. Arrays borrowed for the call. */
typedef struct mlxr_token_info {
    int32_t token;
    float logprob;               /* the token's; 0 unless the request asked for logprobs */
    int32_t n_top;               /* request's n_top_logprobs (0 without logprobs) */
    const int32_t *top_ids;      /* [n_top] most likely first */
    const float *top_logprobs;   /* [n_top] */
} mlxr_token_info;
typedef bool (*mlxr_engine_token_info_fn)(void *user, uint64_t id, const mlxr_token_info *info);
/* Called exactly once per accepted request, last; after it the engine never touches `user`.
 * `stats` is borrowed for the call. Runs on the engine thread (or in mlxr_engine_free). */
typedef void (*mlxr_engine_done_fn)(void *user, uint64_t id, const mlxr_request_stats *stats);

typedef struct mlxr_request {
    const int32_t *prompt;    /* prompt token ids, copied by submit; at least one */
    int32_t n_prompt;
    mlxr_sampler_opts sampler;
    int32_t max_tokens;       /* 0: until EOG, a stop id or the context is full */
    const int32_t *stop_ids;  /* copied by submit; may be NULL */
    int32_t n_stop;
    bool ignore_eog;          /* keep going past EOG tokens (benchmarks) */
    mlxr_engine_token_fn on_token; /* may be NULL */
    mlxr_engine_done_fn on_done;   /* may be NULL */
    void *user;
    bool logprobs;            /* compute each token's log-probability for on_token_info */
    int32_t n_top_logprobs;   /* 0..20 most likely alternatives too (with logprobs) */
    mlxr_engine_token_info_fn on_token_info; /* may be NULL; when set, called instead of
                                                on_token */
    bool json_mode;           /* constrain the output to one JSON object (leading whitespace
                                 allowed; strict JSON with the limits of the engine's recognizer:
                                 integer parts <= 16 digits, exponents <= 2, nesting <= 128,
                                 <= 40 whitespace bytes in a row). Each step samples as usual; a
                                 token whose piece bytes cannot continue the JSON is replaced by a
                                 draw from the logits with every such token masked (EOG and other
                                 control tokens included). When the object closes, the request
                                 ends as MLXR_FINISH_EOG without another step. Works with
                                 n_lookup (each position is masked by the state before it). */
} mlxr_request;

/*
 * Start an engine on `m` (borrowed until mlxr_engine_free). opts may be NULL. Errors as
 * mlxr_context_new, plus MLXR_ERR_INTERNAL if the thread cannot start.
 */
MLXR_API mlxr_status mlxr_engine_new(mlxr_model *m, const mlxr_engine_opts *opts,
                                     mlxr_engine **out, mlxr_err *err);
/* Stop the engine: every unfinished request is cancelled (its on_done runs, on this thread),
 * the thread is joined, everything freed. NULL does nothing. */
MLXR_API void mlxr_engine_free(mlxr_engine *e);

/*
 * Queue a request; *id receives its id (never 0). The request struct and its arrays are
 * borrowed for the call. Errors: MLXR_ERR_INVALID (empty prompt, bad token id, bad sampler
 * options), MLXR_ERR_RANGE (prompt longer than n_ctx - 1, n_top_logprobs outside 0..20, a logit
 * bias token outside the vocabulary or a bias outside -100..100), MLXR_ERR_NOMEM. On error no
 * callback will run. A JSON-mode request that reaches a state no token can continue (a
 * vocabulary without the needed characters) finishes with MLXR_FINISH_ERROR.
 */
MLXR_API mlxr_status mlxr_engine_submit(mlxr_engine *e, const mlxr_request *r, uint64_t *id,
                                        mlxr_err *err);

/* Cancel a request at any point: its KV blocks are freed at the engine's next step and on_done
 * runs with MLXR_FINISH_CANCELLED. MLXR_ERR_NOT_FOUND if it already finished (or never was). */
MLXR_API mlxr_status mlxr_engine_cancel(mlxr_engine *e, uint64_t id);

typedef struct mlxr_engine_stats {
    int32_t n_running;   /* requests holding a sequence slot */
    int32_t n_waiting;   /* requests queued or preempted */
    uint64_t n_steps;    /* batches run */
    uint64_t n_done;     /* requests finished */
    uint64_t n_preempt;  /* preemptions */
    uint64_t n_tokens_prefilled; /* prompt tokens run through the model, finished requests */
    uint64_t n_tokens_cached;    /* prompt tokens served from the prefix cache instead */
    uint64_t n_tokens_generated; /* tokens generated */
    mlxr_kv_stats kv;    /* the pool, as of the end of the last step */
} mlxr_engine_stats;

MLXR_API void mlxr_engine_get_stats(mlxr_engine *e, mlxr_engine_stats *out);

/* Block until no request is queued or running (every on_done has returned). */
MLXR_API void mlxr_engine_wait_idle(mlxr_engine *e);

/*
 * Speculative decoding of one sequence: a draft proposes up to n_draft tokens, the target checks
 * them all in one batched pass and keeps the longest agreeing run plus its own next token. The
 * draft is a smaller model with the same vocabulary (draft context), or, with no draft context,
 * prompt lookup: the continuation of the latest earlier occurrence of the last n-gram. Each
 * emitted token is the target sampler's own pick at that position (the draft is accepted only
 * where the pick equals it), so the output is that of plain decoding with the same sampler and
 * seed, in fewer target passes.
 */
typedef struct mlxr_spec_opts {
    int32_t n_draft;   /* tokens proposed per step (default 5); the target's n_batch must exceed it */
    int32_t ngram_max; /* prompt lookup: longest suffix tried (default 3) */
    int32_t ngram_min; /* shortest (default 1) */
} mlxr_spec_opts;

MLXR_API mlxr_spec_opts mlxr_spec_default_opts(void);

typedef struct mlxr_spec_stats {
    int32_t n_gen;      /* tokens emitted */
    int32_t n_drafted;  /* draft tokens proposed */
    int32_t n_accepted; /* draft tokens accepted */
    int32_t n_passes;   /* target forward passes after the prompt */
} mlxr_spec_stats;

/*
 * Generate up to max_tokens after `prompt` on sequence 0 of `target` (and of `draft`, if not
 * NULL; both should start empty, both are cleared first). `s` samples from the target's logits
 * and is told every prompt and emitted token. on_token (may be NULL) gets each token; returning
 * false stops. Generation also stops at EOG (not delivered) or a full context. stats may be NULL.
 * Errors: those of mlxr_decode, MLXR_ERR_INVALID (vocabulary sizes differ, bad options).
 */
MLXR_API mlxr_status mlxr_spec_generate(mlxr_context *target, mlxr_context *draft,
                                        const mlxr_spec_opts *opts, mlxr_sampler *s,
                                        const int32_t *prompt, int32_t n_prompt,
                                        int32_t max_tokens, mlxr_engine_token_fn on_token,
                                        void *user, mlxr_spec_stats *stats, mlxr_err *err);

/* ---- GPU backend (CUDA owner adds declarations here) -------------------------------------- */

/* CUDA devices this build can use: 0 without CUDA in the build or without a device. The GPU
 * path is chosen per context with mlxr_context_opts.n_gpu_layers. */
MLXR_API int32_t mlxr_gpu_count(void);

/* ---- embeddings (embeddings owner adds declarations here) --------------------------------- */

/*
 * How per-token hidden states become one vector. Values equal llama.cpp's llama_pooling_type.
 * The hidden state of a token is the model's final one: after the output RMSNorm, the input of
 * the output projection (llama.cpp's "result_norm", what llama_get_embeddings_ith returns).
 */
typedef enum mlxr_pooling {
    MLXR_POOLING_NONE = 0, /* no pooling: every token's vector, n x n_embd floats */
    MLXR_POOLING_MEAN = 1, /* the mean over all tokens */
    MLXR_POOLING_CLS = 2,  /* the first token's (for a Llama model: the BOS token's) */
    MLXR_POOLING_LAST = 3, /* the last token's: what llama.cpp (and node-llama-cpp's
                              getEmbeddingFor) returns for a Llama GGUF without pooling metadata */
} mlxr_pooling;

/* n_embd of a loaded model: the length of its embedding vectors. */
MLXR_API int32_t mlxr_model_n_embd(const mlxr_model *m);

/*
 * The embedding of `tokens` (n ids, borrowed; the caller adds BOS as it wants: mlxr_tokenize
 * with add_bos does) on context c. Runs the prompt on a free (empty) sequence of c in chunks of
 * n_batch, without the output projection, then clears that sequence again. With normalize, the
 * vector is scaled to unit L2 norm (a zero vector stays zero).
 * out: n_embd floats (n x n_embd for MLXR_POOLING_NONE, one row per token), caller-owned.
 * Errors: MLXR_ERR_INVALID (empty input, NULL pointers, unknown pooling), MLXR_ERR_RANGE (a
 * token id out of range, or more tokens than the context's n_ctx: the message says both
 * numbers), MLXR_ERR_NOMEM (no empty sequence, KV pool exhausted, allocation), MLXR_ERR_UNSUPPORTED
 * (a CUDA context), with a message; on error c's sequences are as they were and out may be
 * partly written. Not thread-safe with other calls on the same context (as mlxr_decode).
 */
MLXR_API mlxr_status mlxr_embed(mlxr_context *c, const int32_t *tokens, int32_t n,
                                mlxr_pooling pooling, bool normalize, float *out, mlxr_err *err);

#ifdef __cplusplus
}
#endif
#endif /* MLXR_H */
