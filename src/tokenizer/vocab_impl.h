/*
 * vocab_impl.h - the inside of mlxr_vocab, shared by the files of src/tokenizer/: vocab.c
 * (loading, lookups, pieces), special.c (splitting at special tokens, the id sink), spm.c
 * (SentencePiece), bpe.c + pretok.c (byte-level BPE and its pre-tokenizer regexes), wordpiece.c
 * (BERT) and detok.c (ids back to text). Private to src/tokenizer/ and its tests.
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

/* Which tokenizer algorithm a vocabulary uses (tokenizer.ggml.model). */
typedef enum mlxr_vocab_kind {
    MLXR_VOCAB_SPM = 0, /* "llama": SentencePiece BPE by scores, byte fallback */
    MLXR_VOCAB_BPE = 1, /* "gpt2": byte-level BPE by merge ranks, regex pre-tokenizer */
    MLXR_VOCAB_WPM = 2, /* "bert": WordPiece, greedy longest match */
} mlxr_vocab_kind;

typedef struct mlxr_bpe_ranks mlxr_bpe_ranks; /* bpe.c: (left, right) -> merge rank */
typedef struct mlxr_pretok mlxr_pretok;       /* pretok.c: compiled pre-tokenizer regexes */
typedef struct mlxr_wpm_norm mlxr_wpm_norm;   /* wordpiece.c: character classes, lower-casing */

struct mlxr_vocab {
    mlxr_vocab_kind kind;
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
    int32_t sep;                          /* WordPiece's [SEP], added after the text; -1 = none */
    bool add_bos, add_eos, add_space_prefix;

    /* BPE only */
    mlxr_bpe_ranks *ranks; /* merges; NULL for other kinds */
    mlxr_pretok *pretok;   /* the regexes of tokenizer.ggml.pre */
    bool ignore_merges;    /* a pre-token that is itself a token is emitted whole (llama3) */
    /* WordPiece only */
    mlxr_wpm_norm *wpm;
    bool lowercase, strip_accents;
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

    mlxr_vocab_kind kind; /* SPM unless set */
    int32_t sep;          /* -1 = none */
    /* BPE: merges "left right" in rank order (need not be NUL-terminated) and the pre-tokenizer
     * name (tokenizer.ggml.pre; NULL = llama.cpp's "default" regexes) */
    int32_t n_merges;
    const char *const *merges;
    const size_t *merge_lens; /* NULL: merges are NUL-terminated */
    const char *pre;
    size_t pre_len;
    /* WordPiece normalizer (BertNormalizer): lower-case, strip accents */
    bool lowercase, strip_accents;
} mlxr_vocab_spec;

/* A spec with llama.cpp's SentencePiece defaults: BOS 1, EOS 2, UNK 0 (each only if below
 * n_tokens), no pad/eot/eom, add_bos true, add_eos false, add_space_prefix true. */
mlxr_vocab_spec mlxr_vocab_spec_default(int32_t n_tokens);

/* llama.cpp's defaults for another kind: BPE (BOS = EOS = 11, no UNK, add_bos false, no space
 * prefix) or WordPiece (CLS 101 as BOS, UNK 100, SEP 102, PAD 0, add_bos true, lower-case and
 * strip accents). Ids only where below n_tokens. */
mlxr_vocab_spec mlxr_vocab_spec_kind(mlxr_vocab_kind kind, int32_t n_tokens);

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

/* ---- shared by the encoders (special.c) ------------------------------------------------------ */

/* Ids go to the caller's buffer while they fit; `n` keeps counting past `cap`. */
typedef struct mlxr_tok_sink {
    int32_t *ids;
    size_t cap, n;
} mlxr_tok_sink;

static inline void mlxr_tok_emit(mlxr_tok_sink *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* A piece of the input: raw text [off, off + len), or a special token (token >= 0). */
typedef struct mlxr_frag {
    size_t off, len;
    int32_t token;
} mlxr_frag;

typedef struct mlxr_frag_list {
    mlxr_frag *a;
    size_t n, cap;
} mlxr_frag_list;

/* Split text[0, len) (len > 0) at the special tokens written in it, as llama.cpp's
 * tokenizer_st_partition: USER_DEFINED always, CONTROL/UNKNOWN only with parse_special; longest
 * first; LSTRIP/RSTRIP attributes drop the ASCII whitespace beside a match. *out starts empty
 * and is freed by the caller (free(out->a)). */
mlxr_status mlxr_tok_partition(const mlxr_vocab *v, const char *text, size_t len,
                               bool parse_special, mlxr_frag_list *out, mlxr_err *err);

/* Encode one raw fragment (no special tokens in it) with each algorithm, appending ids. */
mlxr_status mlxr_spm_encode_fragment(const mlxr_vocab *v, void **work, const char *p, size_t len,
                                     bool prefix, mlxr_tok_sink *o, mlxr_err *err);
void mlxr_spm_work_free(void *work);
mlxr_status mlxr_bpe_encode_fragment(const mlxr_vocab *v, const char *p, size_t len,
                                     mlxr_tok_sink *o, mlxr_err *err);
mlxr_status mlxr_wpm_encode_fragment(const mlxr_vocab *v, const char *p, size_t len,
                                     mlxr_tok_sink *o, mlxr_err *err);

/* ---- BPE pieces (bpe.c) ------------------------------------------------------------------------
 */

/* Merge ranks from s->merges; v (with its text table built) gives the token ids of the fast path.
 */
mlxr_status mlxr_bpe_ranks_new(const mlxr_vocab_spec *s, const mlxr_vocab *v, mlxr_bpe_ranks **out,
                               mlxr_err *err);
void mlxr_bpe_ranks_free(mlxr_bpe_ranks *r);
/* Rank of merging symbol texts a (la bytes) and b (lb bytes), or -1. */
int32_t mlxr_bpe_rank(const mlxr_bpe_ranks *r, const char *a, size_t la, const char *b, size_t lb);
/* The code point GPT-2's byte-to-unicode map gives byte b. */
uint32_t mlxr_bpe_byte_cp(uint8_t b);
/* Undo the GPT-2 byte-to-unicode mapping of a token text: writes up to cap bytes, returns the
 * length needed. A character outside the mapping becomes llama.cpp's "[UNK_BYTE_0x..]" text. */
size_t mlxr_bpe_decode_text(const char *s, size_t n, char *buf, size_t cap);

/* ---- pre-tokenizers (pretok.c) -----------------------------------------------------------------
 */

/* Apply the llama.cpp defaults that go with pre-tokenizer `name` (NULL: "default") to *s:
 * add_bos, no BOS (chatglm). MLXR_ERR_UNSUPPORTED, naming it, for a name llama.cpp rejects too. */
mlxr_status mlxr_pretok_defaults(const char *name, size_t name_len, mlxr_vocab_spec *s,
                                 mlxr_err *err);
/* Compile the regexes of pre-tokenizer `name` (NULL: "default") once; *ignore_merges receives
 * llama.cpp's flag for it. The result is read-only and may be shared by threads. */
mlxr_status mlxr_pretok_new(const char *name, size_t name_len, mlxr_pretok **out,
                            bool *ignore_merges, mlxr_err *err);
void mlxr_pretok_free(mlxr_pretok *p);

/* One pre-token: bytes [off, off + len) of the text given to mlxr_pretok_split. */
typedef struct mlxr_span {
    size_t off, len;
} mlxr_span;

/* Split valid UTF-8 text[0, len) into pre-tokens with every regex in turn (each regex splits
 * the pieces left by the ones before it; matches and the gaps between them both become pieces).
 * *spans (malloc'ed, caller frees) receives *n spans covering the text in order. */
mlxr_status mlxr_pretok_split(const mlxr_pretok *p, const char *text, size_t len, mlxr_span **spans,
                              size_t *n, mlxr_err *err);
/* Number of regexes and the i-th one's source as written in llama.cpp (for tests). */
size_t mlxr_pretok_count(const mlxr_pretok *p);

/* ---- UTF-8 as llama.cpp reads it (bpe.c) --------------------------------------------------------
 */

/* Decode one code point at s[0, n) (n > 0) the lenient way llama.cpp's unicode_cpt_from_utf8
 * does (no overlong or surrogate checks; a bad sequence is U+FFFD and one byte). */
uint32_t mlxr_utf8_decode(const char *s, size_t n, size_t *used);
/* Encode a code point (<= 0x10FFFF); returns the byte count (1-4). */
size_t mlxr_utf8_encode(uint32_t cp, char *out);

/* ---- WordPiece normalizer (wordpiece.c) ---------------------------------------------------------
 */

mlxr_status mlxr_wpm_norm_new(mlxr_wpm_norm **out, mlxr_err *err);
void mlxr_wpm_norm_free(mlxr_wpm_norm *w);

/* Token i's text and length (i must be in range). */
static inline const char *mlxr_vocab_text(const mlxr_vocab *v, int32_t i, size_t *len) {
    *len = v->text_len[i];
    return v->blob + v->text_off[i];
}

#endif
