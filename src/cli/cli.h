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
int cli_template(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_perplexity(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_show(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_pull(int argc, char **argv);

/* Print "mlxr: error: <msg>" to stderr; returns 1 (the exit status to use). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse an integer flag value in [lo, hi]; prints an error and returns false if bad. */
bool cli_int(const char *flag, const char *s, long lo, long hi, long *out);
/* Parse a float flag value in [lo, hi]. */
bool cli_float(const char *flag, const char *s, double lo, double hi, double *out);
/* The value after argv[*i] (advancing *i), or NULL with an error printed. */
const char *cli_value(int argc, char **argv, int *i);

/* The bundled default model's path (next to the executable's ../models, else the source tree). */
const char *cli_default_model(void);

/* Load a model (only its tokenizer if vocab_only), printing the error on failure. */
mlxr_model *cli_load_model(const char *path, bool vocab_only);

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
