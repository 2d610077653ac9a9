/*
 * vocab_impl.h - the inside of mlxr_vocab, shared by vocab.c (loading, lookups, pieces) and
 * spm.c (the SentencePiece encoder). Private to src/tokenizer/ and its tests.
 *
 * A vocabulary can be built from GGUF metadata (mlxr_vocab_load_gguf) or, for unit tests, from
 * plain arrays (mlxr_vocab_new), so the tokenizer core can be tested without a file.
 *
 * Invariants once built: n_tokens in [1, INT32_MAX]; every text is non-empty and
 * NUL-terminated (llama.cpp renames an empty text to "[EMPTY_<id>]", and so do we); special
 * ids are -1 or in [0, n_tokens); `special` lists the partition candidates longest first.
 */
#ifndef MLXR_TOKENIZER_VOCAB_IMPL_H
#define MLXR_TOKENIZER_VOCAB_IMPL_H

#include "tokenizer/vocab.h"

#include <stddef.h>
#include <stdint.h>

/* Per-token attribute bits beyond the type (llama.cpp's LLAMA_TOKEN_ATTR_LSTRIP/RSTRIP): a
 * special token that swallows the whitespace to its left / right when it is split out. */
enum {
    MLXR_TOKEN_ATTR_LSTRIP = 1u << 0,
    MLXR_TOKEN_ATTR_RSTRIP = 1u << 1,
    MLXR_TOKEN_ATTR_EOG = 1u << 2, /* ends generation (mlxr_vocab_is_eog) */
};

struct mlxr_vocab {
    int32_t n_tokens;
    char *blob;         /* all texts, each NUL-terminated, back to back */
    size_t *text_off;   /* [n_tokens] offset of token i's text in blob */
    uint32_t *text_len; /* [n_tokens] its length in bytes (without the NUL) */
    float *score;       /* [n_tokens] merge priority: higher merges first */
    uint8_t *type;      /* [n_tokens] mlxr_token_type, after llama.cpp's overrides */
    uint8_t *attr;      /* [n_tokens] MLXR_TOKEN_ATTR_* bits */
    uint32_t max_len;   /* longest text; no pair longer than this can be a token */

    int32_t *slots;   /* open-addressing table text -> id; -1 = empty */
    size_t slot_mask; /* table size - 1 (a power of two, at least 2 x n_tokens) */

    uint64_t *pairs;  /* set of adjacent-character pairs found inside some token text */
    size_t pair_mask; /* its size - 1 (a power of two); empty slots hold PAIR_EMPTY */

    int32_t byte_id[256]; /* id of "<0xHH>" (else of the one-byte text), or -1 */
    int32_t *special;     /* [n_special] CONTROL/USER_DEFINED/UNKNOWN ids, longest first */
    int32_t n_special;

    int32_t bos, eos, unk, pad, eot, eom; /* -1 = none */
    bool add_bos, add_eos, add_space_prefix;
};

/* Everything mlxr_vocab_new needs; pointers are borrowed for the call. */
typedef struct mlxr_vocab_spec {
    int32_t n_tokens;
    const char *const *texts; /* [n_tokens] token texts (need not be NUL-terminated) */
    const size_t *lens;       /* [n_tokens] their lengths; NULL: texts are NUL-terminated */
    const float *scores;      /* [n_tokens] or NULL (all 0) */
    const int32_t *types;     /* [n_tokens] mlxr_token_type values, or NULL (all NORMAL) */
    int32_t bos, eos, unk, pad, eot, eom; /* -1 = none; others must be < n_tokens */
    bool add_bos, add_eos, add_space_prefix;
    const char *name; /* general.name, for llama.cpp's per-model token attributes; may be NULL */
} mlxr_vocab_spec;

/* A spec with llama.cpp's SentencePiece defaults: BOS 1, EOS 2, UNK 0 (each only if below
 * n_tokens), no pad/eot/eom, add_bos true, add_eos false, add_space_prefix true. */
mlxr_vocab_spec mlxr_vocab_spec_default(int32_t n_tokens);

/*
 * Build a vocabulary from arrays (copies everything). Applies what llama.cpp's loader does
 * after reading the arrays: renames empty texts, finds EOT/FIM tokens by text and forces them
 * to CONTROL, marks end-of-generation tokens, sets per-model strip attributes, builds the
 * lookup table, the byte table and the sorted special-token list.
 * Errors: MLXR_ERR_RANGE (n_tokens < 1, special id out of range, text too
 * long), MLXR_ERR_FORMAT (add_bos/add_eos without a BOS/EOS id), MLXR_ERR_NOMEM.
 */
mlxr_status mlxr_vocab_new(const mlxr_vocab_spec *spec, mlxr_vocab **out, mlxr_err *err);

/* Id of the token whose text is exactly `len` bytes at `text`, or -1. When texts repeat, the
 * highest id wins (llama.cpp fills its map in id order, so the last write stays). */
int32_t mlxr_vocab_find(const mlxr_vocab *v, const char *text, size_t len);

/* False only if no token text contains character a (la bytes) directly followed by character
 * b (lb bytes), both cut as spm.c cuts text; then no merge can ever join a and b. */
bool mlxr_vocab_pair_possible(const mlxr_vocab *v, const char *a, uint32_t la, const char *b,
                              uint32_t lb);

/* Bytes in the UTF-8 character that starts with `c`, from its high four bits, as llama.cpp's
 * unicode_len_utf8: continuation and invalid lead bytes count as one-byte characters. The
 * caller clamps it to the bytes that are left. */
static inline uint32_t mlxr_utf8_len(char c) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[(uint8_t)c >> 4];
}

/* Token i's text and length (i must be in range). */
static inline const char *mlxr_vocab_text(const mlxr_vocab *v, int32_t i, size_t *len) {
    *len = v->text_len[i];
    return v->blob + v->text_off[i];
}

#endif
