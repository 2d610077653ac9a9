/*
 * hf_tokjson.c - the vocabulary of a Hugging Face model whose tokenizer is only tokenizer.json
 * (the `tokenizers` library's serialization: Llama 3, Mistral-Nemo, Qwen, SmolLM, ...), fed to the
 * same tokenizer code as GGUF vocabularies (tokenizer/vocab.h).
 *
 * Read: "model" {"type": "BPE", "vocab": {text: id}, "merges": ["a b", ...] or [["a", "b"], ...],
 * "byte_fallback", "unk_token"}, "added_tokens" [{"id", "content", "special", ...}], "normalizer",
 * "pre_tokenizer" and "post_processor". Two families are recognised:
 *
 *  (a) SentencePiece-style BPE (what transformers' LlamaConverter writes for a tokenizer.model):
 *      spaces become U+2581 through a Replace(' ', '▁') normalizer (with a Prepend('▁') for the
 *      dummy prefix) or a Metaspace pre-tokenizer (prepend_scheme always/first = dummy prefix).
 *      It goes to the SentencePiece path (kind SPM). That path merges the adjacent pair whose
 *      result has the highest score, while the tokenizers library merges the pair of lowest merge
 *      rank; we give each merged token the score -(rank of the first merge that makes it), which
 *      orders merges exactly as the ranks do (the converter writes merges sorted by the piece
 *      scores, so this reproduces the original scores' order). llama.cpp's converter
 *      (gguf-py LlamaHfVocab, used when tokenizer.model is missing) writes -1000 for every score
 *      instead, which leaves the merge order to position and does not reproduce the original
 *      tokenizer; we deliberately differ. Token types: "<0xNN>" with byte_fallback = BYTE, the
 *      unk_token = UNKNOWN, added tokens CONTROL when "special", else USER_DEFINED.
 *
 *  (b) Byte-level BPE (GPT-2's byte-to-unicode alphabet, a ByteLevel pre-tokenizer): kind BPE
 *      with tokenizer.json's merges, and a pre-tokenizer family of pretok.c chosen from the
 *      pre-tokenizer's steps. llama.cpp picks the family by hashing the tokenization of a test
 *      string with the original tokenizer (convert_hf_to_gguf.py get_vocab_base_pre), which needs
 *      Python and transformers; we instead compare the pre-tokenizer's structure with a table of
 *      the steps HF publishes for each family (PRE_TABLE below): Split regexes compared as exact
 *      strings after JSON unescaping, plus Digits, Punctuation and ByteLevel steps. The published
 *      regexes differ in spelling from llama.cpp's (e.g. "(?i:'s|'t|...)" where llama.cpp writes
 *      "(?:'[sS]|'[tT]|...)"), so the table lists HF's spelling and names the pretok.c family that
 *      is equivalent. An unknown structure is MLXR_ERR_UNSUPPORTED naming the first regex or step.
 *      Added tokens are CONTROL when "special" or when they look special the way llama.cpp's
 *      does_token_look_special sees it (<|...|>, <｜...｜>, <unused...>, <pad>, <mask>, <2mass>,
 *      [@BOS@]), else USER_DEFINED with U+2581 written back as spaces (as that converter does).
 *      Their lstrip/rstrip/normalized flags are not used: llama.cpp sets no attribute from them
 *      either (only its per-model name rules, which mlxr_vocab_new applies).
 *
 * Holes in the id space up to config.json's vocab_size become unused [PADn] tokens, as in
 * hf_spm.c. Unigram, WordPiece and WordLevel models are MLXR_ERR_UNSUPPORTED. Everything in the
 * file is untrusted: types, id ranges, duplicate ids and merges naming unknown tokens are checked.
 */
#include "model/hf_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/vocab_impl.h"
#include "util/err.h"
#include "util/strbuf.h"

#define TJ "tokenizer.json"
#define MAX_TOKENS (1 << 24)
#define MAX_TEXT 4096

/* ---- the pre-tokenizer families of byte-level BPE, as HF publishes them ---------------------- */

/* One step of a canonical signature: "re:" + Split regex, "digits1" (Digits, individual),
 * "digits" (Digits, runs), "punct" (Punctuation), "bytelevel+re" (ByteLevel with GPT-2's regex),
 * "bytelevel" (ByteLevel without it). Steps are joined by '\n'. */
#define HF_LLAMA3                                                                                  \
    "re:(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                  \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_QWEN2                                                                                   \
    "re:(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                       \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_UPPER_LOWER                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
#define HF_LOWER_UPPER                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
#define HF_CONTRACTIONS "(?i:'s|'t|'re|'ve|'m|'ll|'d)"

static const struct {
    const char *sig, *pre;
} PRE_TABLE[] = {
    {"bytelevel+re", "gpt-2"},                     /* GPT-2: ByteLevel(use_regex) alone */
    {HF_LLAMA3 "\nbytelevel", "llama-bpe"},        /* Llama 3 */
    {HF_QWEN2 "\nbytelevel", "qwen2"},             /* Qwen 2 / 2.5 */
    {"digits1\nbytelevel+re", "starcoder"},        /* StarCoder, SmolLM */
    {"re:[\r\n]\nre:\\s?\\p{L}+\nre:\\s?\\p{P}+\nre:[一-龥ࠀ-一가-퟿]+\ndigits1\nbytelevel",
     "deepseek-coder"},
    {"punct\nbytelevel+re\ndigits\nre:[0-9][0-9][0-9]", "falcon"},
    {"re:" HF_UPPER_LOWER "|" HF_LOWER_UPPER
     "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+\nbytelevel",
     "tekken"}, /* Mistral-Nemo */
    {"re:" HF_UPPER_LOWER HF_CONTRACTIONS "?|" HF_LOWER_UPPER HF_CONTRACTIONS
     "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+\nbytelevel",
     "gpt-4o"},
};

/* Add one step to the signature: steps are separated by newlines. */
static void sig_add(mlxr_strbuf *b, const char *s, size_t n) {
    if (b->len) mlxr_strbuf_add(b, "\n", 1);
    mlxr_strbuf_add(b, s, n);
}

static const char *type_of(const json_t *o) {
    const char *t = json_string_value(json_object_get(o, "type"));
    return t ? t : "(no type)";
}

static bool is_type(const json_t *o, const char *t) {
    return json_is_object(o) && !strcmp(type_of(o), t);
}

/* Append the steps of pre-tokenizer `p` (Sequence flattened) to b. */
static mlxr_status pre_steps(const json_t *p, mlxr_strbuf *b, int depth, mlxr_err *err) {
    if (!json_is_object(p))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": a pre_tokenizer is not an object");
    const char *t = type_of(p);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list) || depth > 4)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             TJ ": pre_tokenizer Sequence without a 'pretokenizers' array");
        size_t i;
        const json_t *e;
        json_array_foreach(list, i, e) {
            mlxr_status st = pre_steps(e, b, depth + 1, err);
            if (st != MLXR_OK) return st;
        }
        return MLXR_OK;
    }
    if (!strcmp(t, "Split")) {
        const json_t *pat = json_object_get(p, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!re)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": a Split pre-tokenizer without a Regex pattern is not supported");
        if ((beh && strcmp(beh, "Isolated") != 0) || json_is_true(json_object_get(p, "invert")))
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": Split behavior '%s' (invert %d) is not supported (only "
                             "Isolated): regex '%.200s'",
                             beh ? beh : "?", json_is_true(json_object_get(p, "invert")), re);
        size_t n = json_string_length(json_object_get(pat, "Regex"));
        char *s = malloc(n + 4);
        if (!s) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        memcpy(s, "re:", 3);
        memcpy(s + 3, re, n);
        sig_add(b, s, n + 3);
        free(s);
    } else if (!strcmp(t, "Digits")) {
        const char *d = json_is_true(json_object_get(p, "individual_digits")) ? "digits1" : "digits";
        sig_add(b, d, strlen(d));
    } else if (!strcmp(t, "Punctuation")) {
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (beh && strcmp(beh, "Contiguous") != 0)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": Punctuation behavior '%s' is not supported", beh);
        sig_add(b, "punct", 5);
    } else if (!strcmp(t, "ByteLevel")) {
        if (json_is_true(json_object_get(p, "add_prefix_space")))
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": ByteLevel with add_prefix_space is not supported");
        const json_t *ur = json_object_get(p, "use_regex");
        const char *s = ur && !json_is_true(ur) ? "bytelevel" : "bytelevel+re";
        sig_add(b, s, strlen(s));
    } else {
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         TJ ": pre-tokenizer '%.40s' is not supported for byte-level BPE", t);
    }
    return b->oom ? MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory") : MLXR_OK;
}

/* Does the pre-tokenizer (or a step of its Sequence) have type t? Returns that step. */
static const json_t *find_step(const json_t *p, const char *t, int depth) {
    if (!json_is_object(p) || depth > 4) return NULL;
    if (is_type(p, t)) return p;
    if (!is_type(p, "Sequence")) return NULL;
    size_t i;
    const json_t *e, *r;
    json_array_foreach(json_object_get(p, "pretokenizers"), i, e) {
        if ((r = find_step(e, t, depth + 1))) return r;
    }
    return NULL;
}

/* The pretok.c family for pre-tokenizer p (a ByteLevel BPE's). */
static mlxr_status match_family(const json_t *p, const char **pre, mlxr_err *err) {
    mlxr_strbuf b = {0};
    mlxr_status st = pre_steps(p, &b, 0, err);
    if (st != MLXR_OK) {
        free(b.p);
        return st;
    }
    *pre = NULL;
    for (size_t i = 0; i < sizeof PRE_TABLE / sizeof *PRE_TABLE && b.p; i++)
        if (!strcmp(PRE_TABLE[i].sig, b.p)) *pre = PRE_TABLE[i].pre;
    if (!*pre) {
        /* name the first regex (or else the first step) in the message */
        const char *re = b.p ? strstr(b.p, "re:") : NULL;
        const char *show = re && (re == b.p || re[-1] == '\n') ? re + 3 : b.p ? b.p : "";
        size_t n = strcspn(show, "\n");
        st = MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                       TJ ": unknown byte-level pre-tokenizer (%s '%.*s'); known: gpt-2, "
                       "llama-bpe, qwen2, starcoder, deepseek-coder, falcon, tekken, gpt-4o",
                       re ? "Split regex" : "step", (int)(n > 300 ? 300 : n), show);
    }
    free(b.p);
    return st;
}

/* ---- the SentencePiece-style family ----------------------------------------------------------- */

/* Normalizer of a SentencePiece-style BPE: Prepend('▁') and Replace(' ', '▁'), alone or in a
 * Sequence. *prefix / *replace report what was found; another normalizer is unsupported. */
static mlxr_status spm_normalizer(const json_t *n, bool *prefix, bool *replace, int depth,
                                  mlxr_err *err) {
    if (!n || json_is_null(n)) return MLXR_OK;
    if (!json_is_object(n) || depth > 4)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": the normalizer is not an object");
    const char *t = type_of(n);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             TJ ": normalizer Sequence without a 'normalizers' array");
        size_t i;
        const json_t *e;
        json_array_foreach(list, i, e) {
            mlxr_status st = spm_normalizer(e, prefix, replace, depth + 1, err);
            if (st != MLXR_OK) return st;
        }
        return MLXR_OK;
    }
    const char *content = json_string_value(json_object_get(n, "content"));
    const char *prep = json_string_value(json_object_get(n, "prepend"));
    if (!strcmp(t, "Prepend") && prep && !strcmp(prep, "\xe2\x96\x81")) {
        *prefix = true;
        return MLXR_OK;
    }
    if (!strcmp(t, "Replace") && content && !strcmp(content, "\xe2\x96\x81")) {
        const char *s = json_string_value(json_object_get(json_object_get(n, "pattern"), "String"));
        if (s && !strcmp(s, " ")) {
            *replace = true;
            return MLXR_OK;
        }
    }
    if (!strcmp(t, "NFC")) return MLXR_OK; /* llama.cpp does not normalize either */
    return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, TJ ": normalizer '%.40s' is not supported", t);
}

/* ---- building the vocabulary ----------------------------------------------------------------- */

typedef struct tok_build {
    int32_t n;
    const char **texts;
    size_t *lens;
    float *scores;
    int32_t *types;
    char **pad;        /* [n] owned [PADn] texts, or NULL entries */
    const char **merges;
    size_t *merge_lens;
    char **merge_own;  /* [n_merges] "a b" built from the pair form, or NULL entries */
    int32_t n_merges;
} tok_build;

static void build_free(tok_build *b) {
    for (int32_t i = 0; b->pad && i < b->n; i++) free(b->pad[i]);
    for (int32_t i = 0; b->merge_own && i < b->n_merges; i++) free(b->merge_own[i]);
    free(b->pad);
    free(b->texts);
    free(b->lens);
    free(b->scores);
    free(b->types);
    free(b->merges);
    free(b->merge_lens);
    free(b->merge_own);
}

static bool looks_special(const char *s, size_t n) {
    if (n >= 4 && !memcmp(s, "<|", 2) && !memcmp(s + n - 2, "|>", 2)) return true;
    /* <｜ ... ｜> (fullwidth bars, U+FF5C) */
    if (n >= 8 && !memcmp(s, "<\xef\xbd\x9c", 4) && !memcmp(s + n - 4, "\xef\xbd\x9c>", 4))
        return true;
    if (n >= 8 && !memcmp(s, "<unused", 7) && s[n - 1] == '>') return true;
    static const char *const names[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n && !memcmp(s, names[i], n)) return true;
    return false;
}

static bool is_byte_token(const char *s, size_t n) {
    return n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && strchr("0123456789ABCDEFabcdef", s[3]) &&
           strchr("0123456789ABCDEFabcdef", s[4]) && s[3] && s[4];
}

/* A JSON id: an integer in [0, MAX_TOKENS). */
static bool get_id(const json_t *v, int32_t *id) {
    if (!json_is_integer(v)) return false;
    json_int_t i = json_integer_value(v);
    if (i < 0 || i >= MAX_TOKENS) return false;
    *id = (int32_t)i;
    return true;
}

/* The id space: model.vocab's and added_tokens' ids, checked; *n = the size to build. */
static mlxr_status count_ids(const json_t *vocab, const json_t *added, int32_t n_vocab, int32_t *n,
                             mlxr_err *err) {
    int32_t max = -1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        int32_t id;
        if (!get_id(v, &id))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             TJ ": model.vocab['%.60s'] is not an id in 0..%d", key,
                             MAX_TOKENS - 1);
        if (id > max) max = id;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        int32_t id;
        if (!json_is_object(v) || !get_id(json_object_get(v, "id"), &id) ||
            !json_is_string(json_object_get(v, "content")))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             TJ ": added_tokens[%zu] is not {\"id\": id in 0..%d, \"content\": "
                             "text}",
                             i, MAX_TOKENS - 1);
        if (id > max) max = id;
    }
    if (max < 0) return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": the vocabulary is empty");
    *n = n_vocab > 0 ? n_vocab : max + 1;
    if (max >= *n)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         TJ " has token id %d, beyond config.json's vocab_size %d", max, *n);
    const int64_t have = (int64_t)json_object_size(vocab);
    if ((int64_t)*n - have > (have > 1024 ? have : 1024))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         "config.json's vocab_size %d is far beyond " TJ "'s %zu tokens", *n,
                         json_object_size(vocab));
    return MLXR_OK;
}

static mlxr_status alloc_build(tok_build *b, int32_t n, size_t n_merges, mlxr_err *err) {
    b->n = n;
    b->texts = calloc((size_t)n, sizeof *b->texts);
    b->lens = calloc((size_t)n, sizeof *b->lens);
    b->scores = calloc((size_t)n, sizeof *b->scores);
    b->types = calloc((size_t)n, sizeof *b->types);
    b->pad = calloc((size_t)n, sizeof *b->pad);
    b->merges = calloc(n_merges + 1, sizeof *b->merges);
    b->merge_lens = calloc(n_merges + 1, sizeof *b->merge_lens);
    b->merge_own = calloc(n_merges + 1, sizeof *b->merge_own);
    if (!b->texts || !b->lens || !b->scores || !b->types || !b->pad || !b->merges ||
        !b->merge_lens || !b->merge_own)
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for %d tokens", n);
    return MLXR_OK;
}

/* model.vocab into b (texts point into the JSON), then [PADn] in the holes. */
static mlxr_status fill_vocab(const json_t *vocab, bool byte_fallback, tok_build *b,
                              mlxr_err *err) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v); /* checked by count_ids */
        size_t len = strlen(key);
        if (len == 0 || len > MAX_TEXT)
            return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": token %d has %zu bytes of text", id, len);
        if (b->texts[id])
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             TJ ": id %d is given to both '%.60s' and '%.60s'", id, b->texts[id],
                             key);
        b->texts[id] = key;
        b->lens[id] = len;
        b->types[id] = byte_fallback && is_byte_token(key, len) ? MLXR_TOKEN_BYTE
                                                                : MLXR_TOKEN_NORMAL;
    }
    return MLXR_OK;
}

static mlxr_status fill_pads(tok_build *b, mlxr_err *err) {
    for (int32_t i = 0; i < b->n; i++) {
        if (b->texts[i]) continue;
        char buf[32];
        int k = snprintf(buf, sizeof buf, "[PAD%d]", i);
        if (!(b->pad[i] = strdup(buf))) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
        b->texts[i] = b->pad[i], b->lens[i] = (size_t)k, b->scores[i] = -1000.0f;
        b->types[i] = MLXR_TOKEN_UNUSED;
    }
    return MLXR_OK;
}

/* added_tokens over b: text = content, CONTROL / USER_DEFINED (see the header comment). */
static mlxr_status fill_added(const json_t *added, bool spm, tok_build *b, mlxr_err *err) {
    size_t i;
    const json_t *v;
    bool *seen = calloc((size_t)b->n, 1);
    if (!seen) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    mlxr_status st = MLXR_OK;
    json_array_foreach(added, i, v) {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id")); /* checked */
        const json_t *c = json_object_get(v, "content");
        const char *text = json_string_value(c);
        size_t len = json_string_length(c);
        if (len == 0 || len > MAX_TEXT || strlen(text) != len) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": added token %d has an empty, NUL-holding "
                                                 "or over-long content", id);
            break;
        }
        if (seen[id]) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": added token id %d is listed twice", id);
            break;
        }
        seen[id] = true;
        const bool same = b->lens[id] == len && !memcmp(b->texts[id], text, len);
        if (same && (b->types[id] == MLXR_TOKEN_UNKNOWN || b->types[id] == MLXR_TOKEN_BYTE))
            continue;
        free(b->pad[id]);
        b->pad[id] = NULL;
        b->texts[id] = text, b->lens[id] = len, b->scores[id] = -1000.0f;
        const bool special = json_is_true(json_object_get(v, "special")) ||
                             (!spm && looks_special(text, len));
        b->types[id] = special ? MLXR_TOKEN_CONTROL : MLXR_TOKEN_USER_DEFINED;
        /* llama.cpp's converter writes a byte-level vocabulary's user-defined tokens with U+2581
         * turned back into spaces (they are matched in the raw text) */
        if (!spm && !special && memmem(text, len, "\xe2\x96\x81", 3)) {
            char *t = malloc(len + 1);
            if (!t) {
                st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
                break;
            }
            size_t k = 0;
            for (size_t j = 0; j < len; j++) {
                if (j + 3 <= len && !memcmp(text + j, "\xe2\x96\x81", 3)) {
                    t[k++] = ' ';
                    j += 2;
                } else {
                    t[k++] = text[j];
                }
            }
            t[k] = '\0';
            b->pad[id] = t, b->texts[id] = t, b->lens[id] = k;
        }
    }
    free(seen);
    return st;
}

/* One merge: its two sides (pointing into the JSON) or an error naming it. */
static mlxr_status merge_sides(const json_t *m, size_t i, const char **a, size_t *la,
                               const char **bb, size_t *lb, mlxr_err *err) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp + 1 == s + n || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
            return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                             TJ ": merges[%zu] '%.60s' is not two tokens separated by a space", i,
                             s);
        *a = s, *la = (size_t)(sp - s), *bb = sp + 1, *lb = (size_t)(s + n - sp - 1);
        return MLXR_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *la = json_string_length(json_array_get(m, 0));
        *bb = json_string_value(json_array_get(m, 1));
        *lb = json_string_length(json_array_get(m, 1));
        if (*la && *lb) return MLXR_OK;
    }
    return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                     TJ ": merges[%zu] is neither \"a b\" nor [\"a\", \"b\"] with non-empty sides",
                     i);
}

/* Check every merge against model.vocab and record it: SPM scores (-rank of the first merge
 * making a token), BPE merge strings ("a b"). */
static mlxr_status fill_merges(const json_t *vocab, const json_t *merges, bool spm, tok_build *b,
                               mlxr_err *err) {
    for (int32_t i = 0; i < b->n; i++)
        if (b->types[i] == MLXR_TOKEN_NORMAL) b->scores[i] = -1e9f; /* made by no merge */
    char *cat = NULL;
    size_t cap = 0;
    size_t i;
    const json_t *m;
    mlxr_status st = MLXR_OK;
    json_array_foreach(merges, i, m) {
        const char *a = NULL, *c = NULL;
        size_t la = 0, lc = 0;
        if ((st = merge_sides(m, i, &a, &la, &c, &lc, err)) != MLXR_OK) break;
        if (la + lc + 1 > cap) {
            cap = (la + lc + 1) * 2;
            char *q = realloc(cat, cap);
            if (!q) {
                st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
                break;
            }
            cat = q;
        }
        const json_t *ia = json_object_getn(vocab, a, la), *ic = json_object_getn(vocab, c, lc);
        memcpy(cat, a, la);
        memcpy(cat + la, c, lc);
        const json_t *ir = json_object_getn(vocab, cat, la + lc);
        if (!ia || !ic || !ir) {
            st = MLXR_FAIL(err, MLXR_ERR_FORMAT,
                           TJ ": merges[%zu] ('%.*s' + '%.*s') names a token not in model.vocab",
                           i, (int)(la > 60 ? 60 : la), a, (int)(lc > 60 ? 60 : lc), c);
            break;
        }
        int32_t r = (int32_t)json_integer_value(ir);
        if (spm) {
            if (b->types[r] == MLXR_TOKEN_NORMAL && b->scores[r] == -1e9f) b->scores[r] = -(float)i;
            continue;
        }
        /* bpe.c reads "a b" split at the first space after the first byte */
        if (memchr(a + 1, ' ', la - 1)) {
            st = MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                           TJ ": merges[%zu] has a space inside a token, which byte-level BPE "
                           "does not allow",
                           i);
            break;
        }
        if (json_is_string(m)) {
            b->merges[i] = json_string_value(m);
            b->merge_lens[i] = json_string_length(m);
        } else {
            char *s = malloc(la + lc + 2);
            if (!s) {
                st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(s, a, la);
            s[la] = ' ';
            memcpy(s + la + 1, c, lc);
            s[la + lc + 1] = '\0';
            b->merge_own[i] = s;
            b->merges[i] = s;
            b->merge_lens[i] = la + lc + 1;
        }
    }
    free(cat);
    b->n_merges = (int32_t)json_array_size(merges);
    return st;
}

/* ---- special ids ------------------------------------------------------------------------------- */

/* Id of the token with this exact text (added tokens win, being later in llama.cpp's map). */
static int32_t find_text(const tok_build *b, const char *s) {
    if (!s) return -1;
    size_t n = strlen(s);
    for (int32_t i = b->n - 1; i >= 0; i--)
        if (b->lens[i] == n && !memcmp(b->texts[i], s, n)) return i;
    return -1;
}

/* tokenizer_config.json's "bos_token" etc.: a string or {"content": string}. */
static const char *tc_token(const json_t *tc, const char *key) {
    const json_t *v = json_object_get(tc, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_string_value(v);
}

/* The post_processor's TemplateProcessing (alone or in a Sequence): the first special token of
 * its "single" template when it opens the template (the BOS the tokenizer adds), else -1; *has is
 * set when there is a template at all. */
static int32_t template_bos(const json_t *pp, const tok_build *b, bool *has, int depth) {
    if (!json_is_object(pp) || depth > 4) return -1;
    if (is_type(pp, "Sequence")) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(pp, "processors"), i, e) {
            int32_t r = template_bos(e, b, has, depth + 1);
            if (*has) return r;
        }
        return -1;
    }
    if (!is_type(pp, "TemplateProcessing")) return -1;
    *has = true;
    const json_t *first = json_array_get(json_object_get(pp, "single"), 0);
    const json_t *sp = json_object_get(first, "SpecialToken");
    if (!sp) return -1;
    return find_text(b, json_string_value(json_object_get(sp, "id")));
}

/* ---- the entry points -------------------------------------------------------------------------- */

mlxr_status mlxr_hf_tokjson_vocab(const json_t *tj, const json_t *tc, const mlxr_hf_spm_opts *o,
                                  mlxr_vocab **out, mlxr_err *err) {
    *out = NULL;
    if (!json_is_object(tj)) return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ " is not a JSON object");
    const json_t *model = json_object_get(tj, "model");
    if (!json_is_object(model))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": 'model' is missing or not an object");
    const json_t *mt = json_object_get(model, "type");
    if (mt && !json_is_string(mt))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": model.type is not a string");
    const char *type = mt ? json_string_value(mt) : json_object_get(model, "merges") ? "BPE" : "?";
    if (strcmp(type, "BPE") != 0)
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         TJ ": model type '%.40s' is not supported (only BPE; Unigram, WordPiece "
                         "and WordLevel tokenizers are not implemented)",
                         type);
    const json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    const json_t *added = json_object_get(tj, "added_tokens");
    if (!json_is_object(vocab) || !json_is_array(merges))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT,
                         TJ ": model.vocab must be an object and model.merges an array");
    if (added && !json_is_null(added) && !json_is_array(added))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": added_tokens is not an array");
    if (json_array_size(merges) > (size_t)INT32_MAX / 2)
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": too many merges");
    const json_t *bf = json_object_get(model, "byte_fallback");
    if (bf && !json_is_boolean(bf) && !json_is_null(bf))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": model.byte_fallback is not a boolean");
    if (json_string_value(json_object_get(model, "continuing_subword_prefix")) ||
        json_string_value(json_object_get(model, "end_of_word_suffix")))
        return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                         TJ ": BPE with continuing_subword_prefix / end_of_word_suffix is not "
                         "supported");

    /* the family */
    const json_t *pre = json_object_get(tj, "pre_tokenizer");
    bool prefix = false, replace = false, spm;
    mlxr_status st;
    if (pre && !json_is_null(pre) && !json_is_object(pre))
        return MLXR_FAIL(err, MLXR_ERR_FORMAT, TJ ": pre_tokenizer is not an object");
    const json_t *ms = find_step(pre, "Metaspace", 0);
    if (find_step(pre, "ByteLevel", 0)) {
        spm = false;
        const json_t *norm = json_object_get(tj, "normalizer");
        if (norm && !json_is_null(norm) && !is_type(norm, "NFC"))
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": normalizer '%.40s' is not supported with byte-level BPE",
                             json_is_object(norm) ? type_of(norm) : "(not an object)");
    } else {
        if ((st = spm_normalizer(json_object_get(tj, "normalizer"), &prefix, &replace, 0, err)))
            return st;
        if (ms) {
            const char *rep = json_string_value(json_object_get(ms, "replacement"));
            const char *scheme = json_string_value(json_object_get(ms, "prepend_scheme"));
            if (rep && strcmp(rep, "\xe2\x96\x81") != 0)
                return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                                 TJ ": Metaspace replacement '%.20s' is not supported", rep);
            replace = true;
            prefix = scheme ? strcmp(scheme, "never") != 0
                            : !json_is_false(json_object_get(ms, "add_prefix_space"));
        }
        if (!replace)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": BPE without a ByteLevel pre-tokenizer or SentencePiece's "
                             "space escaping (Metaspace, or Replace ' ' -> U+2581) is not "
                             "supported (pre_tokenizer '%.40s')",
                             json_is_object(pre) ? type_of(pre) : "null");
        if (json_is_object(pre) && !ms)
            return MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED,
                             TJ ": pre_tokenizer '%.40s' is not supported with SentencePiece-"
                             "style BPE",
                             type_of(pre));
        spm = true;
    }
    const char *pre_name = NULL;
    if (!spm && (st = match_family(pre, &pre_name, err)) != MLXR_OK) return st;

    tok_build b = {0};
    int32_t n = 0;
    if ((st = count_ids(vocab, added, o->n_vocab, &n, err))) return st;
    if ((st = alloc_build(&b, n, json_array_size(merges), err)) ||
        (st = fill_vocab(vocab, json_is_true(bf), &b, err)) ||
        (st = fill_merges(vocab, merges, spm, &b, err)) || (st = fill_pads(&b, err)))
        goto done;
    int32_t unk = -1;
    const json_t *uv = json_object_get(model, "unk_token");
    if (json_is_string(uv)) {
        const json_t *ui = json_object_get(vocab, json_string_value(uv));
        if (ui) unk = (int32_t)json_integer_value(ui);
        if (unk >= 0 && spm) b.types[unk] = MLXR_TOKEN_UNKNOWN;
    }
    if ((st = fill_added(added, spm, &b, err))) goto done;

    mlxr_vocab_spec spec = spm ? mlxr_vocab_spec_default(n) : mlxr_vocab_spec_kind(MLXR_VOCAB_BPE, n);
    spec.texts = b.texts;
    spec.lens = b.lens;
    spec.scores = b.scores;
    spec.types = b.types;
    spec.name = o->name;
    spec.unk = unk;
    if (!spm) {
        spec.n_merges = b.n_merges;
        spec.merges = b.merges;
        spec.merge_lens = b.merge_lens;
        spec.pre = pre_name;
        spec.pre_len = strlen(pre_name);
        if ((st = mlxr_pretok_defaults(pre_name, strlen(pre_name), &spec, err))) goto done;
    } else {
        spec.add_space_prefix = prefix;
    }
    /* BOS/EOS: config.json's, else tokenizer_config.json's texts, else the template's, else the
     * kind's defaults */
    bool has_tpl = false;
    int32_t tbos = template_bos(json_object_get(tj, "post_processor"), &b, &has_tpl, 0);
    int32_t cbos = find_text(&b, tc_token(tc, "bos_token")),
            ceos = find_text(&b, tc_token(tc, "eos_token"));
    spec.bos = o->bos >= 0 && o->bos < n ? o->bos : cbos >= 0 ? cbos : tbos >= 0 ? tbos : spec.bos;
    spec.eos = o->eos >= 0 && o->eos < n ? o->eos : ceos >= 0 ? ceos : spec.eos;
    spec.eot = o->eot >= 0 && o->eot < n ? o->eot : -1;
    if (o->add_bos >= 0) spec.add_bos = o->add_bos == 1;
    else if (has_tpl) spec.add_bos = tbos >= 0;
    spec.add_eos = o->add_eos == 1;
    if (spec.add_bos && spec.bos < 0) spec.add_bos = false;
    if (spec.add_eos && spec.eos < 0) spec.add_eos = false;
    st = mlxr_vocab_new(&spec, out, err);
done:
    build_free(&b);
    return st;
}

mlxr_status mlxr_hf_load_tokenizer(mlxr_model *m, mlxr_hf *h, int32_t n_vocab, mlxr_err *err) {
    char path[4200];
    struct stat sb;
    if (!mlxr_hf_join(h, "tokenizer.model", path, sizeof path))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "model path too long");
    if (stat(path, &sb) == 0 || errno != ENOENT) return mlxr_hf_load_vocab(m, h, n_vocab, err);
    json_t *tj = NULL, *tc = NULL;
    mlxr_status st = mlxr_hf_read_json(h, TJ, false, &tj, err);
    if (st == MLXR_OK && !tj)
        st = MLXR_FAIL(err, MLXR_ERR_IO, "%s has neither tokenizer.model nor " TJ, h->dir);
    if (st == MLXR_OK) st = mlxr_hf_read_json(h, "tokenizer_config.json", false, &tc, err);
    if (st == MLXR_OK) {
        mlxr_hf_spm_opts o = {n_vocab, h->cfg_bos, h->cfg_eos, h->cfg_eot, -1, -1, NULL, m->name};
        const json_t *ab = json_object_get(tc, "add_bos_token"),
                     *ae = json_object_get(tc, "add_eos_token");
        if (json_is_boolean(ab)) o.add_bos = json_is_true(ab);
        if (json_is_boolean(ae)) o.add_eos = json_is_true(ae);
        st = mlxr_hf_tokjson_vocab(tj, tc, &o, &m->vocab, err);
    }
    json_decref(tj);
    json_decref(tc);
    return st;
}
