/*
 * model_tokenizer.c - the public detokenize and streaming-decode API (include/mlxr.h) over the
 * model's vocabulary (src/tokenizer/detok.c does the work). mlxr_tokenize and
 * mlxr_token_to_piece stay in model.c.
 */
#include "model/model.h"
#include "tokenizer/detok.h"
#include "util/err.h"

mlxr_status mlxr_detokenize(const mlxr_model *m, const int32_t *ids, size_t n, bool special,
                            char *buf, size_t cap, size_t *n_out, mlxr_err *err) {
    if (!m) return MLXR_FAIL(err, MLXR_ERR_INVALID, "detokenize: NULL model");
    return mlxr_vocab_detokenize(m->vocab, ids, n, special, buf, cap, n_out, err);
}

mlxr_status mlxr_detok_stream_new(const mlxr_model *m, bool special, mlxr_detok_stream **out,
                                  mlxr_err *err) {
    if (!m) return MLXR_FAIL(err, MLXR_ERR_INVALID, "detok_stream_new: NULL model");
    return mlxr_vocab_detok_stream_new(m->vocab, special, out, err);
}

mlxr_status mlxr_detok_stream_push(mlxr_detok_stream *s, int32_t id, char *buf, size_t cap,
                                   size_t *n_out, mlxr_err *err) {
    return mlxr_vocab_detok_stream_push(s, id, buf, cap, n_out, err);
}

mlxr_status mlxr_detok_stream_flush(mlxr_detok_stream *s, char *buf, size_t cap, size_t *n_out,
                                    mlxr_err *err) {
    return mlxr_vocab_detok_stream_flush(s, buf, cap, n_out, err);
}

void mlxr_detok_stream_free(mlxr_detok_stream *s) {
    mlxr_vocab_detok_stream_free(s);
}
