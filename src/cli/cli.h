/*
 * cli.h - shared helpers of the mlxr subcommands: argument parsing, the default model, errors.
 * Every subcommand is `int cli_<name>(int argc, char **argv)` returning the exit status; errors
 * print one line "mlxr: error: ..." to stderr.
 */
#ifndef MLXR_CLI_H
#define MLXR_CLI_H

#include "mlxr.h"

#include <stdbool.h>
#include <stddef.h>

int cli_run(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_detokenize(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_info_hf(const char *path); /* info_hf.c: a Hugging Face / MLX directory */
int cli_template(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_show(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_ps(int argc, char **argv);   /* ps.c: the models a running daemon has loaded */
int cli_stop(int argc, char **argv); /* ps.c: unload one */

/* Interactive chat (chat.c), started by `mlxr run` without -p on a terminal or with -i. */
typedef struct cli_chat_opts {
    long n_predict, threads, n_ctx, n_gpu_layers; /* as run's flags; n_ctx 0 = model's, <= 4096 */
    mlxr_kv_type kv_type;
    mlxr_sampler_opts so; /* seed already chosen */
    const char *system;   /* --system TEXT or NULL; borrowed for the call */
    bool batch_invariant; /* mlxr_context_opts.batch_invariant */
} cli_chat_opts;
/* Chat with m (borrowed) on stdin/stdout until /bye or EOF; the exit status. */
int cli_chat(mlxr_model *m, const cli_chat_opts *o);
/* The file a model argument names (model_path.c): NULL = the bundled default; an existing file
 * or directory as it is; else NAME[:TAG] in the registry at `home` (NULL: MLXR_HOME or the
 * default). malloc'ed; NULL with the error printed. */
char *cli_model_path(const char *arg, const char *home);

/* Print "mlxr: error: <msg>" to stderr; returns 1 (the exit status to use). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse an integer flag value in [lo, hi]; prints an error and returns false if bad. */
bool cli_int(const char *flag, const char *s, long lo, long hi, long *out);
/* Parse a float flag value in [lo, hi]. */
bool cli_float(const char *flag, const char *s, double lo, double hi, double *out);
/* KV cache type flags: --kv-type T (both), llama.cpp's -ctk/--cache-type-k T and
 * -ctv/--cache-type-v T; T is f16, f32 or q8_0. Zero-initialize, then feed every flag. */
typedef struct cli_kv {
    mlxr_kv_type k, v;
    bool k_set, v_set;
} cli_kv;
/* 1: `flag` was a KV type flag and `value` is stored; -1: bad value (printed); 0: other flag. */
int cli_kv_flag(const char *flag, const char *value, cli_kv *kv);
/* The chosen type (F16 when unset); false with an error printed when K and V differ. */
bool cli_kv_type(const cli_kv *kv, mlxr_kv_type *out);

/* The value after argv[*i] (advancing *i), or NULL with an error printed. */
const char *cli_value(int argc, char **argv, int *i);

/* The bundled default model's path (next to the executable's ../models, else the source tree). */
const char *cli_default_model(void);

/* Load a model (only its tokenizer if vocab_only), printing the error on failure. */
mlxr_model *cli_load_model(const char *path, bool vocab_only);
/* The same for a model that will run on the GPU (-ngl): no CPU repacking at load. */
mlxr_model *cli_load_model_gpu(const char *path, bool vocab_only, bool for_gpu);

/* Tokenize text (no special-token parsing); malloc'ed ids, *n_out = count; NULL on error
 * (printed). */
int32_t *cli_tokenize_text(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                           size_t *n_out);

/* Seconds on a monotonic clock. */
double cli_now_s(void);

/* Decode n tokens of sequence 0 from position pos0 in batches of up to n_batch; *last receives
 * the batch index whose logits were kept (the last entry of the last batch). */
mlxr_status cli_decode(mlxr_context *c, const int32_t *ids, int32_t n, int32_t pos0,
                       int32_t n_batch, int32_t *last, mlxr_err *err);

/* Read all of stdin; malloc'ed, *len set; NULL on error (printed). */
char *cli_read_stdin(size_t *len);

#endif
