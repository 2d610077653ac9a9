/*
 * wordpiece.c - WordPiece (tokenizer.ggml.model "bert") as llama.cpp's llm_tokenizer_wpm does
 * it, for BERT-style embedding models.
 *
 * Normalise and split one raw fragment into words (BertNormalizer + BertPreTokenizer), per code
 * point of the leniently decoded text (bad bytes are U+FFFD, see bpe.c):
 *   - with strip_accents, a character becomes the first code point of its NFD (nfd_table.h; a
 *     precomposed letter becomes its base letter, a Hangul syllable its first jamo, exactly as
 *     llama.cpp, which keeps only that code point) and combining marks (\p{M}) are dropped;
 *   - whitespace (Unicode White_Space) ends the current word;
 *   - NUL, U+FFFD and control/format characters (\p{Cc}, \p{Cf}, \p{Co}) are dropped;
 *   - punctuation (\p{P}), ASCII symbols and CJK ideographs become words of their own;
 *   - the rest is lower-cased (when lowercase is set) and appended to the current word.
 * Then each word, prefixed with U+2581 (llama.cpp stores a word-initial piece "▁hello" and a
 * continuation "##llo" as "llo"), is cut greedily: at each position the longest token that
 * matches; if some position matches nothing, the whole word becomes [UNK].
 *
 * Unicode data: categories come from PCRE2 (one anchored match per non-ASCII character, ASCII is
 * classified inline); lower-casing uses glibc's towlower_l in the C.UTF-8 locale (simple case
 * mappings, as llama.cpp's unicode_tolower; without that locale only ASCII is lower-cased).
 * Limits: Unicode versions (PCRE2 10.42 and Python's unicodedata: 14; glibc's C.UTF-8: its own;
 * llama.cpp: 15) can disagree on recently assigned characters.
 * Thread-safe: the normaliser is read-only; match data is per call.
 */
#include "tokenizer/nfd_table.h"
#include "tokenizer/vocab_impl.h"

#include "util/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <locale.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

struct mlxr_wpm_norm {
    pcre2_code *cls; /* (\p{P})|(\p{S})|(\p{M})|(control), anchored */
    locale_t utf8;   /* C.UTF-8 for towlower_l, or (locale_t)0 */
};

enum { C_NORMAL, C_SPACE, C_CONTROL, C_PUNCT, C_SYMBOL, C_MARK };

void mlxr_wpm_norm_free(mlxr_wpm_norm *w) {
    if (!w) return;
    if (w->utf8) freelocale(w->utf8);
    pcre2_code_free(w->cls);
    free(w);
}

mlxr_status mlxr_wpm_norm_new(mlxr_wpm_norm **out, mlxr_err *err) {
    *out = NULL;
    mlxr_wpm_norm *w = calloc(1, sizeof *w);
    if (!w) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "wordpiece: no memory");
    int code;
    PCRE2_SIZE at;
    const char *re = "(\\p{P})|(\\p{S})|(\\p{M})|([\\p{Cc}\\p{Cf}\\p{Co}])";
    w->cls = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &at, NULL);
    if (!w->cls) {
        mlxr_wpm_norm_free(w);
        return MLXR_FAIL(err, MLXR_ERR_INTERNAL, "wordpiece: class regex error %d", code);
    }
    (void)pcre2_jit_compile(w->cls, PCRE2_JIT_COMPLETE);
    w->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    *out = w;
    return MLXR_OK;
}

/* Unicode White_Space, llama.cpp's is_whitespace. */
static bool is_white(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int classify(const mlxr_wpm_norm *w, pcre2_match_data *md, uint32_t c) {
    if (is_white(c)) return C_SPACE;
    if (c < 0x80) {
        if (c < 0x20 || c == 0x7F) return C_CONTROL;
        if (strchr("$+<=>^`|~", (int)c)) return C_SYMBOL;
        if (strchr("!\"#%&'()*,-./:;?@[\\]_{}", (int)c)) return C_PUNCT;
        return C_NORMAL;
    }
    if (c >= 0xD800 && c <= 0xDFFF) return C_CONTROL; /* surrogates are \p{Cs} */
    char u[4];
    size_t n = mlxr_utf8_encode(c, u);
    int rc = pcre2_match(w->cls, (PCRE2_SPTR)u, n, 0, 0, md, NULL);
    if (rc <= 0) return C_NORMAL;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    for (int g = 1; g < rc; g++) {
        if (ov[2 * g] != PCRE2_UNSET)
            return g == 1 ? C_PUNCT : g == 2 ? C_SYMBOL : g == 3 ? C_MARK : C_CONTROL;
    }
    return C_NORMAL;
}

/* llama.cpp's is_chinese_char (BERT's CJK ranges, including its 0x2B920 quirk). */
static bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static uint32_t nfd_base(uint32_t c) {
    size_t lo = 0, hi = sizeof mlxr_nfd_base / sizeof mlxr_nfd_base[0];
    /* a Hangul syllable decomposes into jamo; its first (leading consonant) is arithmetic
     * (Unicode 3.12, "Hangul Syllable Decomposition") */
    if (c >= 0xAC00 && c <= 0xD7A3) return 0x1100 + (c - 0xAC00) / 588;
    if (c < mlxr_nfd_base[0][0]) return c;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mlxr_nfd_base[mid][0] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sizeof mlxr_nfd_base / sizeof mlxr_nfd_base[0] && mlxr_nfd_base[lo][0] == c
               ? mlxr_nfd_base[lo][1]
               : c;
}

static uint32_t to_lower(const mlxr_wpm_norm *w, uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (!w->utf8) return c;
    wint_t l = towlower_l((wint_t)c, w->utf8);
    return l > 0 && (uint32_t)l <= 0x10FFFF && !((uint32_t)l >= 0xD800 && (uint32_t)l <= 0xDFFF)
               ? (uint32_t)l
               : c;
}

/* The word buffer: "▁" then the word's bytes. */
typedef struct word_buf {
    char *a;
    size_t n, cap;
} word_buf;

static bool word_put(word_buf *b, const char *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n)
            cap *= 2;
        char *a = realloc(b->a, cap);
        if (!a) return false;
        b->a = a;
        b->cap = cap;
    }
    memcpy(b->a + b->n, p, n);
    b->n += n;
    return true;
}

/* Greedy longest match over the word in b (which starts with "▁"), then reset b. */
static mlxr_status flush_word(const mlxr_vocab *v, word_buf *b, mlxr_tok_sink *o, mlxr_err *err) {
    if (b->n <= 3) return MLXR_OK; /* no word: only the prefix */
    size_t n = b->n, start = o->n;
    bool ok = true;
    for (size_t i = 0; i < n && ok;) {
        size_t j = n - i > v->max_len ? i + v->max_len : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = mlxr_vocab_find(v, b->a + i, j - i)) >= 0) break;
        if (id < 0) {
            ok = false;
            break;
        }
        mlxr_tok_emit(o, id);
        i = j;
    }
    b->n = 3;
    if (ok) return MLXR_OK;
    o->n = start; /* the word's pieces are discarded for one [UNK] */
    if (v->unk < 0)
        return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND,
                         "tokenize: a word has no WordPiece cover and there is no UNK token");
    mlxr_tok_emit(o, v->unk);
    return MLXR_OK;
}

mlxr_status mlxr_wpm_encode_fragment(const mlxr_vocab *v, const char *p, size_t len,
                                     mlxr_tok_sink *o, mlxr_err *err) {
    const mlxr_wpm_norm *w = v->wpm;
    word_buf b = {0};
    mlxr_status st = MLXR_OK;
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    if (!md || !word_put(&b, "\xe2\x96\x81", 3)) goto nomem;
    for (size_t i = 0; i < len && !st;) {
        size_t used;
        uint32_t c = mlxr_utf8_decode(p + i, len - i, &used);
        i += used;
        if (v->strip_accents) c = nfd_base(c);
        int k = classify(w, md, c);
        if (k == C_SPACE) {
            st = flush_word(v, &b, o, err);
            continue;
        }
        if (c == 0 || c == 0xFFFD || k == C_CONTROL) continue;
        if (v->strip_accents && k == C_MARK) continue;
        char u[4];
        uint32_t l = v->lowercase ? to_lower(w, c) : c;
        size_t m = mlxr_utf8_encode(l > 0x10FFFF ? 0xFFFD : l, u);
        if (k == C_PUNCT || (c < 0x7F && k == C_SYMBOL) || is_cjk(c)) {
            if ((st = flush_word(v, &b, o, err))) break;
            if (!word_put(&b, u, m)) goto nomem;
            st = flush_word(v, &b, o, err);
        } else if (!word_put(&b, u, m)) {
            goto nomem;
        }
    }
    if (!st) st = flush_word(v, &b, o, err);
    goto done;
nomem:
    st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "tokenize: no memory for a %zu-byte text run", len);
done:
    pcre2_match_data_free(md);
    free(b.a);
    return st;
}
