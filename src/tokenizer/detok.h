/*
 * detok.h - token ids back to text for any vocabulary kind: one-shot and streaming (the model
 * level API in include/mlxr.h, mlxr_detokenize and mlxr_detok_stream_*, wraps these).
 */
#ifndef MLXR_TOKENIZER_DETOK_H
#define MLXR_TOKENIZER_DETOK_H

#include "tokenizer/vocab.h"

/* See mlxr_detokenize: the same contract for a vocabulary. */
mlxr_status mlxr_vocab_detokenize(const mlxr_vocab *v, const int32_t *ids, size_t n, bool special,
                                  char *buf, size_t cap, size_t *n_out, mlxr_err *err);

/* See mlxr_detok_stream_*: v is borrowed until _free. */
mlxr_status mlxr_vocab_detok_stream_new(const mlxr_vocab *v, bool special, mlxr_detok_stream **out,
                                        mlxr_err *err);
mlxr_status mlxr_vocab_detok_stream_push(mlxr_detok_stream *s, int32_t id, char *buf, size_t cap,
                                         size_t *n_out, mlxr_err *err);
mlxr_status mlxr_vocab_detok_stream_flush(mlxr_detok_stream *s, char *buf, size_t cap,
                                          size_t *n_out, mlxr_err *err);
void mlxr_vocab_detok_stream_free(mlxr_detok_stream *s);

/* Length of the longest prefix of s[0, n) that does not end inside a UTF-8 character that the
 * following bytes could still complete (at most 3 bytes are held back). */
size_t mlxr_utf8_complete_prefix(const char *s, size_t n);

#endif
