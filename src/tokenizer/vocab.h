/*
 * vocab.h - a model's vocabulary and its tokenizer, loaded from GGUF `tokenizer.ggml.*` metadata.
 *
 * Three tokenizer families, each as llama.cpp implements it (llama-vocab.cpp):
 *   - "llama": SentencePiece BPE by scores with byte fallback (spm.c);
 *   - "gpt2": byte-level BPE by merge ranks after a regex pre-tokenizer chosen by
 *     tokenizer.ggml.pre (bpe.c, pretok.c);
 *   - "bert": WordPiece with BERT's normaliser (wordpiece.c).
 * Other models (t5, rwkv, ...) return MLXR_ERR_UNSUPPORTED from mlxr_vocab_load_gguf, as does a
 * tokenizer.ggml.pre that llama.cpp does not know. The vocabulary owns copies of its strings,
 * so it outlives the GGUF it was read from. Ids back to text: detok.h.
 */
#ifndef MLXR_TOKENIZER_VOCAB_H
#define MLXR_TOKENIZER_VOCAB_H

#include "format/gguf.h"
#include "mlxr.h"

/* tokenizer.ggml.token_type values */
typedef enum mlxr_token_type {
    MLXR_TOKEN_UNDEFINED = 0,
    MLXR_TOKEN_NORMAL = 1,
    MLXR_TOKEN_UNKNOWN = 2,
    MLXR_TOKEN_CONTROL = 3,
    MLXR_TOKEN_USER_DEFINED = 4,
    MLXR_TOKEN_UNUSED = 5,
    MLXR_TOKEN_BYTE = 6,
} mlxr_token_type;

typedef struct mlxr_vocab mlxr_vocab;

/* Read the vocabulary of `g` (borrowed for the call). *out: free with mlxr_vocab_free.
 * Errors: MLXR_ERR_FORMAT (missing/ill-typed keys, ids out of range, counts that disagree),
 * MLXR_ERR_UNSUPPORTED (another tokenizer model), MLXR_ERR_NOMEM. */
mlxr_status mlxr_vocab_load_gguf(const mlxr_gguf *g, mlxr_vocab **out, mlxr_err *err);
void mlxr_vocab_free(mlxr_vocab *v);

int32_t mlxr_vocab_n_tokens(const mlxr_vocab *v);
int32_t mlxr_vocab_bos(const mlxr_vocab *v); /* -1 if none */
int32_t mlxr_vocab_eos(const mlxr_vocab *v); /* -1 if none */
bool mlxr_vocab_add_bos(const mlxr_vocab *v);
bool mlxr_vocab_add_eos(const mlxr_vocab *v);
mlxr_token_type mlxr_vocab_token_type(const mlxr_vocab *v, int32_t id);
/* The token's stored text (e.g. "▁Hello", "<0x0A>", "<s>"); NUL-terminated, borrowed. */
const char *mlxr_vocab_token_text(const mlxr_vocab *v, int32_t id);
/* True for end-of-generation tokens (EOS, EOT). */
bool mlxr_vocab_is_eog(const mlxr_vocab *v, int32_t id);

/*
 * Tokenize `len` bytes of `text` as llama.cpp's llama_tokenize does: with add_special, BOS/EOS are
 * added where the metadata says so (WordPiece: always [CLS] ... [SEP]); with parse_special,
 * control tokens written in the text are matched (longest first); user-defined tokens are always
 * matched. SentencePiece vocabularies escape spaces to U+2581 and add the dummy-prefix space
 * (add_space_prefix, default true). Invalid UTF-8 is read as llama.cpp reads it (U+FFFD).
 * Writes up to `cap` ids; *n_out is the number needed; MLXR_ERR_RANGE if cap is too small.
 * Thread-safe (the vocabulary is read-only).
 */
mlxr_status mlxr_vocab_tokenize(const mlxr_vocab *v, const char *text, size_t len, bool add_special,
                                bool parse_special, int32_t *ids, size_t cap, size_t *n_out,
                                mlxr_err *err);

/*
 * The piece of one token as llama.cpp's llama_token_to_piece(lstrip 0, special): U+2581 becomes
 * a space (SentencePiece, WordPiece), byte-level BPE characters become their bytes, <0xNN>
 * becomes byte NN, control tokens are empty unless `special`, user-defined tokens are their text.
 * Writes up to cap bytes (no NUL), *n_out = length; MLXR_ERR_RANGE if cap is too small;
 * MLXR_ERR_INVALID for an id out of range.
 */
mlxr_status mlxr_vocab_token_to_piece(const mlxr_vocab *v, int32_t id, bool special, char *buf,
                                      size_t cap, size_t *n_out, mlxr_err *err);

#endif
