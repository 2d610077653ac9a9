/*
 * vocab.c - a vocabulary read from GGUF `tokenizer.ggml.*` metadata: loading and validation,
 * the text -> id table, accessors and token_to_piece. The encoders are spm.c ("llama"), bpe.c
 * ("gpt2") and wordpiece.c ("bert"), behind special.c's mlxr_vocab_tokenize.
 *
 * Behaviour follows llama.cpp (llama-vocab.cpp, commit c392e50) so that ids and pieces match
 * its llama_tokenize / llama_token_to_piece exactly:
 *   - defaults for tokenizer.ggml.model "llama": BOS 1, EOS 2, UNK 0, add_bos true, add_eos
 *     false, add_space_prefix true; the GGUF keys override them;
 *   - an empty token text becomes "[EMPTY_<id>]"; the text -> id map keeps the last id of a
 *     repeated text;
 *   - tokens whose text marks end of turn / fill-in-the-middle ("<|eot_id|>", "<|end|>",
 *     "<|fim_prefix|>", ...) are forced to CONTROL, and the end-of-turn ones become
 *     end-of-generation tokens together with EOS, EOT and EOM;
 *   - models named like Phi-3 get llama.cpp's hard-coded RSTRIP attribute on their special
 *     tokens (the only per-token attributes that apply to SentencePiece vocabularies; GGUF
 *     files carry no attributes of their own).
 * Unlike llama.cpp, a special-token id key that is out of range is an error, not a warning.
 *
 * Invariants: see vocab_impl.h. The vocabulary is immutable after mlxr_vocab_new, so every
 * read-only function here is thread-safe.
 */
#include "tokenizer/vocab_impl.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOWER_BLOCK "\xe2\x96\x81" /* U+2581, SentencePiece's escaped space */
#define FW_BAR "\xef\xbd\x9c"      /* U+FF5C, DeepSeek's full-width bar */

/* ---- text -> id table ------------------------------------------------------------------------ */

/* FNV-1a: simple, and good enough for short token texts. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool text_equals(const mlxr_vocab *v, int32_t id, const char *s, size_t n) {
    return v->text_len[id] == n && memcmp(v->blob + v->text_off[id], s, n) == 0;
}

int32_t mlxr_vocab_find(const mlxr_vocab *v, const char *text, size_t len) {
    if (len == 0 || len > v->max_len) return -1;
    size_t i = (size_t)hash_bytes(text, len) & v->slot_mask;
    /* Linear probing; the table is at most half full, so an empty slot ends every search. */
    for (;;) {
        int32_t id = v->slots[i];
        if (id < 0) return -1;
        if (text_equals(v, id, text, len)) return id;
        i = (i + 1) & v->slot_mask;
    }
}

static mlxr_status build_table(mlxr_vocab *v, mlxr_err *err) {
    size_t size = 16;
    while (size < 2 * (size_t)v->n_tokens)
        size *= 2;
    v->slots = malloc(size * sizeof *v->slots);
    if (!v->slots) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %zu slots", size);
    memset(v->slots, 0xff, size * sizeof *v->slots); /* all -1 */
    v->slot_mask = size - 1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        size_t n;
        const char *s = mlxr_vocab_text(v, id, &n);
        size_t i = (size_t)hash_bytes(s, n) & v->slot_mask;
        while (v->slots[i] >= 0 && !text_equals(v, v->slots[i], s, n))
            i = (i + 1) & v->slot_mask;
        v->slots[i] = id; /* a repeated text: the later id replaces the earlier, as in llama.cpp */
    }
    return MLXR_OK;
}

/* ---- adjacent-character pairs ---------------------------------------------------------------- */

/*
 * spm.c cuts a text run into independent segments wherever two neighbouring characters never
 * appear next to each other inside any token: no merge can cross such a boundary, so merging
 * each segment on its own gives exactly the same result as merging the whole run, with small
 * heaps instead of one huge one. In SentencePiece vocabularies "▁" follows another character
 * only in whitespace runs, so ordinary text falls apart into words.
 * A pair is keyed by its characters' bytes packed into 32 bits each; distinct pairs may share a
 * key, which only makes the test answer "possible" more often (safe).
 */
#define PAIR_EMPTY UINT64_MAX

static uint64_t pair_key(const char *a, uint32_t la, const char *b, uint32_t lb) {
    uint32_t x = 0, y = 0;
    for (uint32_t i = 0; i < la && i < 4; i++)
        x |= (uint32_t)(uint8_t)a[i] << (8 * i);
    for (uint32_t i = 0; i < lb && i < 4; i++)
        y |= (uint32_t)(uint8_t)b[i] << (8 * i);
    return (uint64_t)x << 32 | y;
}

static size_t pair_slot(uint64_t key, size_t mask) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull; /* murmur3 finalizer */
    key ^= key >> 33;
    return (size_t)key & mask;
}

bool mlxr_vocab_pair_possible(const mlxr_vocab *v, const char *a, uint32_t la, const char *b,
                              uint32_t lb) {
    uint64_t key = pair_key(a, la, b, lb);
    if (key == PAIR_EMPTY) return true;
    for (size_t i = pair_slot(key, v->pair_mask);; i = (i + 1) & v->pair_mask) {
        if (v->pairs[i] == key) return true;
        if (v->pairs[i] == PAIR_EMPTY) return false;
    }
}

/* Insert into a table of size mask + 1; returns true if the key was new. */
static bool pair_put(uint64_t *t, size_t mask, uint64_t key) {
    size_t i = pair_slot(key, mask);
    while (t[i] != PAIR_EMPTY && t[i] != key)
        i = (i + 1) & mask;
    bool added = t[i] == PAIR_EMPTY;
    t[i] = key;
    return added;
}

/* Double the table (it is kept at most half full). */
static bool pair_grow(mlxr_vocab *v) {
    size_t size = 2 * (v->pair_mask + 1);
    uint64_t *t = malloc(size * sizeof *t);
    if (!t) return false;
    memset(t, 0xff, size * sizeof *t);
    for (size_t i = 0; i <= v->pair_mask; i++) {
        if (v->pairs[i] != PAIR_EMPTY) pair_put(t, size - 1, v->pairs[i]);
    }
    free(v->pairs);
    v->pairs = t;
    v->pair_mask = size - 1;
    return true;
}

static mlxr_status build_pairs(mlxr_vocab *v, mlxr_err *err) {
    size_t size = 1024, count = 0;
    v->pairs = malloc(size * sizeof *v->pairs);
    if (!v->pairs) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for pairs");
    memset(v->pairs, 0xff, size * sizeof *v->pairs);
    v->pair_mask = size - 1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        size_t n;
        const char *s = mlxr_vocab_text(v, id, &n);
        const char *prev = NULL;
        uint32_t prev_len = 0;
        for (size_t off = 0; off < n;) {
            uint32_t l = mlxr_utf8_len(s[off]);
            if (l > n - off) l = (uint32_t)(n - off);
            uint64_t key = prev ? pair_key(prev, prev_len, s + off, l) : PAIR_EMPTY;
            /* PAIR_EMPTY itself is never stored: the lookup answers "possible" for it */
            if (key != PAIR_EMPTY && pair_put(v->pairs, v->pair_mask, key) &&
                2 * ++count > v->pair_mask && !pair_grow(v))
                return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %zu pairs", count);
            prev = s + off;
            prev_len = l;
            off += l;
        }
    }
    return MLXR_OK;
}

/* ---- construction ---------------------------------------------------------------------------- */

mlxr_vocab_spec mlxr_vocab_spec_default(int32_t n_tokens) {
    mlxr_vocab_spec s = {0};
    s.n_tokens = n_tokens;
    s.bos = n_tokens > 1 ? 1 : -1;
    s.eos = n_tokens > 2 ? 2 : -1;
    s.unk = n_tokens > 0 ? 0 : -1;
    s.pad = s.eot = s.eom = -1;
    s.add_bos = true;
    s.add_eos = false;
    s.add_space_prefix = true;
    s.sep = -1;
    return s;
}

mlxr_vocab_spec mlxr_vocab_spec_kind(mlxr_vocab_kind kind, int32_t n_tokens) {
    mlxr_vocab_spec s = mlxr_vocab_spec_default(n_tokens);
    s.kind = kind;
    if (kind == MLXR_VOCAB_BPE) {
        s.bos = s.eos = n_tokens > 11 ? 11 : -1;
        s.unk = -1;
        s.add_bos = false;
        s.add_space_prefix = false;
    } else if (kind == MLXR_VOCAB_WPM) {
        s.bos = n_tokens > 101 ? 101 : -1; /* [CLS] */
        s.eos = -1;
        s.unk = n_tokens > 100 ? 100 : -1;
        s.sep = n_tokens > 102 ? 102 : -1;
        s.pad = 0;
        s.add_space_prefix = false;
        s.lowercase = s.strip_accents = true;
    }
    return s;
}

void mlxr_vocab_free(mlxr_vocab *v) {
    if (!v) return;
    mlxr_wpm_norm_free(v->wpm);
    mlxr_pretok_free(v->pretok);
    mlxr_bpe_ranks_free(v->ranks);
    free(v->special);
    free(v->pairs);
    free(v->slots);
    free(v->attr);
    free(v->type);
    free(v->score);
    free(v->text_len);
    free(v->text_off);
    free(v->blob);
    free(v);
}

static size_t spec_len(const mlxr_vocab_spec *s, int32_t i) {
    return s->lens ? s->lens[i] : strlen(s->texts[i]);
}

/* Length of the text stored for token i: its own, or "[EMPTY_<i>]" if it is empty. */
static size_t stored_len(const mlxr_vocab_spec *s, int32_t i) {
    size_t n = spec_len(s, i);
    return n ? n : (size_t)snprintf(NULL, 0, "[EMPTY_%d]", (int)i);
}

/* Copy the texts into one blob. Texts longer than UINT32_MAX cannot come from a real file. */
static mlxr_status copy_texts(mlxr_vocab *v, const mlxr_vocab_spec *s, mlxr_err *err) {
    size_t total = 0;
    for (int32_t i = 0; i < s->n_tokens; i++) {
        size_t n = stored_len(s, i);
        if (n > UINT32_MAX)
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "vocab: token %d is %zu bytes long", i, n);
        if (!mlxr_add_ok(total, n + 1, &total))
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "vocab: token texts overflow size_t");
    }
    v->blob = malloc(total ? total : 1);
    if (!v->blob) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %zu bytes", total);
    size_t off = 0;
    for (int32_t i = 0; i < s->n_tokens; i++) {
        size_t n = spec_len(s, i);
        if (n) {
            memcpy(v->blob + off, s->texts[i], n);
        } else {
            n = (size_t)snprintf(v->blob + off, total - off, "[EMPTY_%d]", (int)i);
        }
        v->blob[off + n] = '\0';
        v->text_off[i] = off;
        v->text_len[i] = (uint32_t)n;
        if (n > v->max_len) v->max_len = (uint32_t)n;
        off += n + 1;
    }
    return MLXR_OK;
}

static mlxr_status alloc_arrays(mlxr_vocab *v, size_t n, mlxr_err *err) {
    v->text_off = malloc(n * sizeof *v->text_off);
    v->text_len = malloc(n * sizeof *v->text_len);
    v->score = malloc(n * sizeof *v->score);
    v->type = malloc(n);
    v->attr = calloc(n, 1);
    if (!v->text_off || !v->text_len || !v->score || !v->type || !v->attr)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %zu tokens", n);
    return MLXR_OK;
}

static uint8_t clean_type(int32_t t) {
    /* llama.cpp maps unknown type numbers to UNDEFINED */
    return (t >= MLXR_TOKEN_UNDEFINED && t <= MLXR_TOKEN_BYTE) ? (uint8_t)t : MLXR_TOKEN_UNDEFINED;
}

static mlxr_status check_ids(const mlxr_vocab_spec *s, mlxr_err *err) {
    const int32_t ids[] = {s->bos, s->eos, s->unk, s->pad, s->eot, s->eom, s->sep};
    const char *names[] = {"bos", "eos", "unk", "pad", "eot", "eom", "sep"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (ids[i] < -1 || ids[i] >= s->n_tokens)
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "vocab: %s id %d outside [0, %d)", names[i],
                             ids[i], s->n_tokens);
    }
    if (s->add_bos && s->bos < 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "vocab: add_bos_token is true but no BOS token");
    if (s->add_eos && s->eos < 0)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "vocab: add_eos_token is true but no EOS token");
    return MLXR_OK;
}

/* ---- llama.cpp's fix-ups by token text ------------------------------------------------------- */

/* Texts llama.cpp treats as end of turn: forced to CONTROL and marked end-of-generation. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
};

/* Groups llama.cpp looks up by text when no key names them; the token found becomes CONTROL.
 * Group 0 is EOT (skipped when the file gives an EOT id). FIM pad/repo/sep end generation. */
static const struct {
    const char *texts[7];
    bool eog;
} detect_groups[] = {
    {{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
      "<" FW_BAR "end" LOWER_BLOCK "of" LOWER_BLOCK "sentence" FW_BAR ">"},
     true},
    {{"<|eom_id|>"}, true},
    {{"<|fim_prefix|>", "<fim-prefix>", "<" FW_BAR "fim" LOWER_BLOCK "begin" FW_BAR ">", "<PRE>"},
     false},
    {{"<|fim_suffix|>", "<fim-suffix>", "<" FW_BAR "fim" LOWER_BLOCK "hole" FW_BAR ">", "<SUF>"},
     false},
    {{"<|fim_middle|>", "<fim-middle>", "<" FW_BAR "fim" LOWER_BLOCK "end" FW_BAR ">", "<MID>"},
     false},
    {{"<|fim_pad|>", "<fim-pad>", "<PAD>"}, true},
    {{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}, true},
    {{"<|file_sep|>"}, true},
};

static int32_t find_cstr(const mlxr_vocab *v, const char *s) {
    return mlxr_vocab_find(v, s, strlen(s));
}

/*
 * llama.cpp walks its hash map and takes the first match of a group, so with several matches
 * its choice depends on hash order; we take the lowest id. Only vocabularies holding two
 * spellings of one group could differ.
 */
static void detect_by_text(mlxr_vocab *v) {
    for (size_t g = 0; g < sizeof detect_groups / sizeof detect_groups[0]; g++) {
        if ((g == 0 && v->eot >= 0) || (g == 1 && v->eom >= 0)) continue;
        int32_t best = -1;
        for (size_t k = 0; k < 7 && detect_groups[g].texts[k]; k++) {
            int32_t id = find_cstr(v, detect_groups[g].texts[k]);
            if (id >= 0 && (best < 0 || id < best)) best = id;
        }
        if (best < 0) continue;
        v->type[best] = MLXR_TOKEN_CONTROL;
        if (detect_groups[g].eog) v->attr[best] |= MLXR_TOKEN_ATTR_EOG;
        if (g == 0) v->eot = best;
        if (g == 1) v->eom = best;
    }
    for (size_t k = 0; k < sizeof eog_texts / sizeof eog_texts[0]; k++) {
        int32_t id = find_cstr(v, eog_texts[k]);
        if (id < 0) continue;
        v->type[id] = MLXR_TOKEN_CONTROL;
        v->attr[id] |= MLXR_TOKEN_ATTR_EOG;
    }
    const int32_t always[] = {v->eos, v->eot, v->eom};
    for (size_t k = 0; k < 3; k++) {
        if (always[k] >= 0) v->attr[always[k]] |= MLXR_TOKEN_ATTR_EOG;
    }
}

static bool is_special_type(uint8_t t) {
    return t == MLXR_TOKEN_CONTROL || t == MLXR_TOKEN_USER_DEFINED || t == MLXR_TOKEN_UNKNOWN;
}

/* Lower-case ASCII substring test, for llama.cpp's match on the model name. */
static bool name_contains(const char *name, const char *needle) {
    size_t n = strlen(name), m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m) {
            char c = name[i + k];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != needle[k]) break;
            k++;
        }
        if (k == m) return true;
    }
    return false;
}

/* llama.cpp hard-codes RSTRIP for Phi-3's special tokens (except <unk>, <s>, <|endoftext|>),
 * so "<|end|>\n" swallows the newline. It also sets LSTRIP on "<mask>" for jina-v2 BPE
 * vocabularies, which never reach this SentencePiece code. */
static void set_model_attrs(mlxr_vocab *v, const char *name) {
    if (!name || !(name_contains(name, "phi-3") || name_contains(name, "phi3"))) return;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (is_special_type(v->type[i])) v->attr[i] |= MLXR_TOKEN_ATTR_RSTRIP;
    }
    int32_t id = find_cstr(v, "</s>");
    if (id >= 0) v->attr[id] |= MLXR_TOKEN_ATTR_RSTRIP;
    const char *const plain[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t k = 0; k < 3; k++) {
        id = find_cstr(v, plain[k]);
        if (id >= 0) v->attr[id] &= (uint8_t)~MLXR_TOKEN_ATTR_RSTRIP;
    }
}

/* ---- byte tokens and the special-token list -------------------------------------------------- */

/* llama.cpp's byte_to_token: "<0xHH>" (upper-case hex), else the one-byte text itself; for BPE
 * the token of the byte's GPT-2 character. */
static void build_byte_table(mlxr_vocab *v) {
    static const char hex[] = "0123456789ABCDEF";
    if (v->kind == MLXR_VOCAB_BPE) {
        for (int b = 0; b < 256; b++) {
            char u[4];
            size_t n = mlxr_utf8_encode(mlxr_bpe_byte_cp((uint8_t)b), u);
            v->byte_id[b] = mlxr_vocab_find(v, u, n);
        }
        return;
    }
    for (int b = 0; b < 256; b++) {
        const char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = mlxr_vocab_find(v, buf, sizeof buf);
        if (id < 0) {
            /* the one-byte string; for b = 0 llama.cpp looks up "" which never exists */
            const char c = (char)b;
            id = b ? mlxr_vocab_find(v, &c, 1) : -1;
        }
        v->byte_id[b] = id;
    }
}

/* qsort has no context argument, so compare (length, id) pairs gathered beforehand. */
typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

static int cmp_len_desc(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/*
 * The partition candidates: CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first.
 * llama.cpp uses std::sort, which leaves equal lengths in an unspecified order; we order them
 * by id. Only two same-length candidates that overlap in the text could be affected.
 */
static mlxr_status build_special_list(mlxr_vocab *v, mlxr_err *err) {
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        n += is_special_type(v->type[i]);
    v->n_special = n;
    if (n == 0) return MLXR_OK;
    len_id *tmp = malloc((size_t)n * sizeof *tmp);
    v->special = malloc((size_t)n * sizeof *v->special);
    if (!tmp || !v->special) {
        free(tmp);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %d special tokens", n);
    }
    int32_t k = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (is_special_type(v->type[i])) tmp[k++] = (len_id){v->text_len[i], i};
    }
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_len_desc);
    for (k = 0; k < n; k++)
        v->special[k] = tmp[k].id;
    free(tmp);
    return MLXR_OK;
}

mlxr_status mlxr_vocab_new(const mlxr_vocab_spec *s, mlxr_vocab **out, mlxr_err *err) {
    if (!s || !out || (s->n_tokens > 0 && !s->texts))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "vocab_new: NULL argument");
    *out = NULL;
    if (s->n_tokens <= 0)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "vocab: %d tokens (expected at least 1)",
                         s->n_tokens);
    mlxr_status st = check_ids(s, err);
    if (st) return st;

    mlxr_vocab *v = calloc(1, sizeof *v);
    if (!v) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory");
    v->n_tokens = s->n_tokens;
    if ((st = alloc_arrays(v, (size_t)s->n_tokens, err))) goto fail;
    if ((st = copy_texts(v, s, err))) goto fail;
    for (int32_t i = 0; i < s->n_tokens; i++) {
        v->score[i] = s->scores ? s->scores[i] : 0.0f;
        v->type[i] = s->types ? clean_type(s->types[i]) : MLXR_TOKEN_NORMAL;
    }
    v->bos = s->bos, v->eos = s->eos, v->unk = s->unk;
    v->pad = s->pad, v->eot = s->eot, v->eom = s->eom, v->sep = s->sep;
    v->add_bos = s->add_bos, v->add_eos = s->add_eos, v->add_space_prefix = s->add_space_prefix;
    v->kind = s->kind;
    v->lowercase = s->lowercase, v->strip_accents = s->strip_accents;

    if ((st = build_table(v, err))) goto fail;
    if ((st = build_pairs(v, err))) goto fail;
    detect_by_text(v);
    if ((st = build_special_list(v, err))) goto fail;
    set_model_attrs(v, s->name);
    build_byte_table(v);
    if (v->kind == MLXR_VOCAB_BPE) {
        if ((st = mlxr_bpe_ranks_new(s, v, &v->ranks, err))) goto fail;
        if ((st = mlxr_pretok_new(s->pre, s->pre_len, &v->pretok, &v->ignore_merges, err)))
            goto fail;
    } else if (v->kind == MLXR_VOCAB_WPM) {
        if ((st = mlxr_wpm_norm_new(&v->wpm, err))) goto fail;
    }
    *out = v;
    return MLXR_OK;
fail:
    mlxr_vocab_free(v);
    return st;
}

/* ---- loading from GGUF ----------------------------------------------------------------------- */

/* An optional array: absent is fine (*out NULL); present must have the type and n elements. */
static mlxr_status optional_array(const mlxr_gguf *g, const char *key, mlxr_gguf_type elem,
                                  uint64_t n, const mlxr_gguf_value **out, mlxr_err *err) {
    *out = NULL;
    if (!mlxr_gguf_find(g, key)) return MLXR_OK;
    mlxr_status st = mlxr_gguf_get_arr(g, key, elem, out, err);
    if (st) return st;
    if ((*out)->v.arr.n != n)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s has %llu elements, tokenizer.ggml.tokens %llu",
                         key, (unsigned long long)(*out)->v.arr.n, (unsigned long long)n);
    return MLXR_OK;
}

/* An optional token id: absent keeps *id; present must be below n_tokens. */
static mlxr_status optional_id(const mlxr_gguf *g, const char *key, int32_t n_tokens, int32_t *id,
                               mlxr_err *err) {
    if (!mlxr_gguf_find(g, key)) return MLXR_OK;
    uint32_t u;
    mlxr_status st = mlxr_gguf_get_u32(g, key, &u, err);
    if (st) return st == MLXR_ERR_RANGE ? MLXR_ERR_FORMAT : st;
    if (u >= (uint32_t)n_tokens)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "%s = %u, but the vocabulary has %d tokens", key, u,
                         n_tokens);
    *id = (int32_t)u;
    return MLXR_OK;
}

static mlxr_status optional_bool(const mlxr_gguf *g, const char *key, bool *b, mlxr_err *err) {
    if (!mlxr_gguf_find(g, key)) return MLXR_OK;
    return mlxr_gguf_get_bool(g, key, b, err);
}

static bool str_is(mlxr_gguf_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.data, c, s.len) == 0;
}

static mlxr_status check_model(const mlxr_gguf *g, mlxr_vocab_kind *kind, mlxr_err *err) {
    mlxr_gguf_str model;
    mlxr_status st = mlxr_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (st == MLXR_ERR_NOT_FOUND)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.ggml.model is missing");
    if (st) return st;
    if (str_is(model, "llama")) {
        *kind = MLXR_VOCAB_SPM;
    } else if (str_is(model, "gpt2")) {
        *kind = MLXR_VOCAB_BPE;
    } else if (str_is(model, "bert")) {
        *kind = MLXR_VOCAB_WPM;
    } else {
        int n = model.len > 64 ? 64 : (int)model.len;
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         "tokenizer.ggml.model '%.*s' is not supported (only 'llama', 'gpt2', "
                         "'bert')",
                         n, model.data);
    }
    return MLXR_OK;
}

/* BPE: tokenizer.ggml.pre (absent: llama.cpp's "default") and its defaults. */
static mlxr_status read_pre(const mlxr_gguf *g, mlxr_vocab_spec *s, mlxr_err *err) {
    mlxr_gguf_str pre;
    mlxr_status st = mlxr_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
    if (st == MLXR_ERR_NOT_FOUND) return MLXR_OK;
    if (st) return st;
    s->pre = pre.data;
    s->pre_len = (size_t)pre.len;
    return mlxr_pretok_defaults(s->pre, s->pre_len, s, err);
}

/* BPE: tokenizer.ggml.merges, required (llama.cpp: "cannot find tokenizer merges"). The
 * pointers borrow the GGUF's strings. */
static mlxr_status read_merges(const mlxr_gguf *g, mlxr_vocab_spec *s, const char ***texts,
                               size_t **lens, mlxr_err *err) {
    const mlxr_gguf_value *m;
    mlxr_status st = mlxr_gguf_get_arr(g, "tokenizer.ggml.merges", MLXR_GGUF_STRING, &m, err);
    if (st == MLXR_ERR_NOT_FOUND)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.ggml.merges is missing (gpt2 model)");
    if (st) return st;
    uint64_t n = m->v.arr.n;
    if (n > INT32_MAX)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries",
                         (unsigned long long)n);
    *texts = malloc((n ? n : 1) * sizeof **texts);
    *lens = malloc((n ? n : 1) * sizeof **lens);
    if (!*texts || !*lens) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for merges");
    for (uint64_t i = 0; i < n; i++) {
        mlxr_gguf_str t = mlxr_gguf_arr_str(m, i);
        (*texts)[i] = t.data;
        (*lens)[i] = (size_t)t.len;
    }
    s->n_merges = (int32_t)n;
    s->merges = *texts;
    s->merge_lens = *lens;
    return MLXR_OK;
}

/* Read the flags and special ids into `s` (which holds the kind's defaults). */
static mlxr_status read_specials(const mlxr_gguf *g, mlxr_vocab_spec *s, mlxr_err *err) {
    static const char *const keys[] = {
        "tokenizer.ggml.bos_token_id",       "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",   "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.eot_token_id",       "tokenizer.ggml.eom_token_id",
        "tokenizer.ggml.seperator_token_id", /* sic: llama.cpp's key */
    };
    int32_t *ids[] = {&s->bos, &s->eos, &s->unk, &s->pad, &s->eot, &s->eom, &s->sep};
    mlxr_status st;
    /* older BERT files name [CLS] (the BOS of WordPiece) only by cls_token_id */
    if (s->kind == MLXR_VOCAB_WPM &&
        (st = optional_id(g, "tokenizer.ggml.cls_token_id", s->n_tokens, &s->bos, err)))
        return st;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if ((st = optional_id(g, keys[i], s->n_tokens, ids[i], err))) return st;
    }
    if ((st = optional_bool(g, "tokenizer.ggml.add_bos_token", &s->add_bos, err))) return st;
    if ((st = optional_bool(g, "tokenizer.ggml.add_eos_token", &s->add_eos, err))) return st;
    return optional_bool(g, "tokenizer.ggml.add_space_prefix", &s->add_space_prefix, err);
}

/* Gather the per-token arrays into plain arrays for mlxr_vocab_new. */
static mlxr_status gather_tokens(const mlxr_gguf_value *toks, const mlxr_gguf_value *scores,
                                 const mlxr_gguf_value *types, mlxr_vocab_spec *s,
                                 const char **texts, size_t *lens, float *sc, int32_t *ty,
                                 mlxr_err *err) {
    for (int32_t i = 0; i < s->n_tokens; i++) {
        mlxr_gguf_str t = mlxr_gguf_arr_str(toks, (uint64_t)i);
        if (t.len > UINT32_MAX)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.ggml.tokens[%d] is %llu bytes", i,
                             (unsigned long long)t.len);
        texts[i] = t.data;
        lens[i] = (size_t)t.len;
        if (scores) sc[i] = mlxr_gguf_arr_f32(scores, (uint64_t)i);
        if (types) ty[i] = mlxr_gguf_arr_i32(types, (uint64_t)i);
    }
    s->texts = texts;
    s->lens = lens;
    s->scores = scores ? sc : NULL;
    s->types = types ? ty : NULL;
    return MLXR_OK;
}

/* general.name as a NUL-terminated copy (malloc'ed), or NULL. */
static char *copy_name(const mlxr_gguf *g) {
    mlxr_gguf_str name;
    if (mlxr_gguf_get_str(g, "general.name", &name, NULL) != MLXR_OK || name.len >= SIZE_MAX)
        return NULL;
    char *c = malloc((size_t)name.len + 1);
    if (!c) return NULL;
    if (name.len) memcpy(c, name.data, (size_t)name.len);
    c[name.len] = '\0';
    return c;
}

mlxr_status mlxr_vocab_load_gguf(const mlxr_gguf *g, mlxr_vocab **out, mlxr_err *err) {
    if (!g || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "vocab_load_gguf: NULL argument");
    *out = NULL;
    mlxr_vocab_kind kind = MLXR_VOCAB_SPM;
    mlxr_status st = check_model(g, &kind, err);
    if (st) return st;

    const mlxr_gguf_value *toks, *scores, *types;
    st = mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", MLXR_GGUF_STRING, &toks, err);
    if (st == MLXR_ERR_NOT_FOUND)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.ggml.tokens is missing");
    if (st) return st;
    uint64_t n = toks->v.arr.n;
    if (n == 0 || n > INT32_MAX)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries",
                         (unsigned long long)n);
    if ((st = optional_array(g, "tokenizer.ggml.scores", MLXR_GGUF_FLOAT32, n, &scores, err)))
        return st;
    if ((st = optional_array(g, "tokenizer.ggml.token_type", MLXR_GGUF_INT32, n, &types, err)))
        return st;

    mlxr_vocab_spec s = mlxr_vocab_spec_kind(kind, (int32_t)n);
    if (kind == MLXR_VOCAB_BPE && (st = read_pre(g, &s, err))) return st;
    if ((st = read_specials(g, &s, err))) return st;
    const char **merge_texts = NULL;
    size_t *merge_lens = NULL;
    char *name = copy_name(g); /* NULL if absent (or out of memory: then no name rules) */
    s.name = name;
    if (kind == MLXR_VOCAB_BPE && (st = read_merges(g, &s, &merge_texts, &merge_lens, err))) {
        free(merge_texts);
        free(merge_lens);
        free(name);
        return st;
    }

    const char **texts = malloc((size_t)n * sizeof *texts);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    float *sc = malloc((size_t)n * sizeof *sc);
    int32_t *ty = malloc((size_t)n * sizeof *ty);
    if (!texts || !lens || !sc || !ty) {
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %llu tokens",
                       (unsigned long long)n);
        goto done;
    }
    if ((st = gather_tokens(toks, scores, types, &s, texts, lens, sc, ty, err))) goto done;
    st = mlxr_vocab_new(&s, out, err);
done:
    free(ty);
    free(sc);
    free(lens);
    free(texts);
    free(merge_lens);
    free(merge_texts);
    free(name);
    return st;
}

/* ---- accessors ------------------------------------------------------------------------------- */

static bool in_range(const mlxr_vocab *v, int32_t id) {
    return v && id >= 0 && id < v->n_tokens;
}

int32_t mlxr_vocab_n_tokens(const mlxr_vocab *v) {
    return v ? v->n_tokens : 0;
}

int32_t mlxr_vocab_bos(const mlxr_vocab *v) {
    return v ? v->bos : -1;
}

int32_t mlxr_vocab_eos(const mlxr_vocab *v) {
    return v ? v->eos : -1;
}

bool mlxr_vocab_add_bos(const mlxr_vocab *v) {
    return v && v->add_bos;
}

bool mlxr_vocab_add_eos(const mlxr_vocab *v) {
    return v && v->add_eos;
}

mlxr_token_type mlxr_vocab_token_type(const mlxr_vocab *v, int32_t id) {
    return in_range(v, id) ? (mlxr_token_type)v->type[id] : MLXR_TOKEN_UNDEFINED;
}

const char *mlxr_vocab_token_text(const mlxr_vocab *v, int32_t id) {
    return in_range(v, id) ? v->blob + v->text_off[id] : NULL;
}

bool mlxr_vocab_is_eog(const mlxr_vocab *v, int32_t id) {
    return in_range(v, id) && (v->attr[id] & MLXR_TOKEN_ATTR_EOG);
}

/* ---- pieces ---------------------------------------------------------------------------------- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte of a BYTE token "<0xHH>": llama.cpp parses the two characters after "<0x" as hex.
 * A malformed text gives the value of its leading hex digits (0 if none), never a crash. */
static uint8_t byte_of_token(const char *s, size_t n) {
    unsigned value = 0;
    for (size_t i = 3; i < 5 && i < n; i++) {
        int d = hex_value(s[i]);
        if (d < 0) break;
        value = value * 16 + (unsigned)d;
    }
    return (uint8_t)value;
}

/* Write `n` bytes, or report the need. */
static mlxr_status put_piece(const char *p, size_t n, char *buf, size_t cap, size_t *n_out,
                             mlxr_err *err) {
    *n_out = n;
    if (n > cap)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "token piece needs %zu bytes, buffer has %zu", n,
                         cap);
    if (n) memcpy(buf, p, n);
    return MLXR_OK;
}

/* The text with every U+2581 turned back into a space. */
static mlxr_status put_unescaped(const char *s, size_t n, char *buf, size_t cap, size_t *n_out,
                                 mlxr_err *err) {
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        bool lb = i + 3 <= n && memcmp(s + i, LOWER_BLOCK, 3) == 0;
        if (need < cap) buf[need] = lb ? ' ' : s[i];
        need++;
        if (lb) i += 2;
    }
    *n_out = need;
    if (need > cap)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "token piece needs %zu bytes, buffer has %zu", need,
                         cap);
    return MLXR_OK;
}

mlxr_status mlxr_vocab_token_to_piece(const mlxr_vocab *v, int32_t id, bool special, char *buf,
                                      size_t cap, size_t *n_out, mlxr_err *err) {
    if (!v || !n_out || (cap && !buf))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "token_to_piece: NULL argument");
    *n_out = 0;
    if (!in_range(v, id))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "token id %d outside [0, %d)", id, v->n_tokens);
    size_t n;
    const char *s = mlxr_vocab_text(v, id, &n);
    switch ((mlxr_token_type)v->type[id]) {
    case MLXR_TOKEN_CONTROL:
    case MLXR_TOKEN_UNKNOWN:
        /* llama.cpp (since PR 7587) prints control and unknown tokens only when asked */
        return special ? put_piece(s, n, buf, cap, n_out, err) : MLXR_OK;
    case MLXR_TOKEN_USER_DEFINED:
        return put_piece(s, n, buf, cap, n_out, err);
    case MLXR_TOKEN_NORMAL:
        if (v->kind == MLXR_VOCAB_BPE) {
            /* GPT-2 characters back to bytes */
            size_t need = mlxr_bpe_decode_text(s, n, buf, cap);
            *n_out = need;
            if (need > cap)
                return MLXR_FAIL(err, MLXR_ERR_RANGE, "token piece needs %zu bytes, buffer has %zu",
                                 need, cap);
            return MLXR_OK;
        }
        return put_unescaped(s, n, buf, cap, n_out, err);
    case MLXR_TOKEN_BYTE: {
        char b = (char)byte_of_token(s, n);
        return put_piece(&b, 1, buf, cap, n_out, err);
    }
    case MLXR_TOKEN_UNDEFINED:
    case MLXR_TOKEN_UNUSED:
        break;
    }
    return MLXR_OK; /* UNUSED and UNDEFINED tokens print nothing */
}
