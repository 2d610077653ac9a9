/*
 * special.c - splitting text at the special tokens written in it, before any tokenizer
 * algorithm runs (llama.cpp's tokenizer_st_partition, llama-vocab.cpp), shared by every
 * vocabulary kind, and mlxr_vocab_tokenize, which dispatches the raw pieces to spm.c, bpe.c or
 * wordpiece.c.
 *
 * Partition: candidates are CONTROL, USER_DEFINED and UNKNOWN tokens, longest text first
 * (vocab.c builds the list); without parse_special only the USER_DEFINED ones are matched, so
 * user input can never produce a control token unless the caller allows it. Each candidate in
 * turn takes the leftmost non-overlapping occurrences inside the raw fragments left by the ones
 * before it. A candidate with the LSTRIP/RSTRIP attribute drops ASCII whitespace beside it.
 * Cost: one linear search of the text per candidate. Thread-safe: all state is per call.
 */
#include "tokenizer/vocab_impl.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static bool frag_push(mlxr_frag_list *l, size_t off, size_t len, int32_t token) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        mlxr_frag *a = realloc(l->a, cap * sizeof *a);
        if (!a) return false;
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n++] = (mlxr_frag){off, len, token};
    return true;
}

/* llama.cpp calls isspace() in the C locale: only these ASCII bytes. */
static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * The leftmost occurrence of s[0, m) in p[0, n), or NULL. glibc's memmem is linear, but the
 * AddressSanitizer interceptor checks the whole haystack on every call, which makes thousands
 * of matches in a long text quadratic under the sanitizer; searching in windows (overlapping
 * by m - 1 bytes, so no occurrence is missed) keeps every call short.
 */
static const char *find_bytes(const char *p, size_t n, const char *s, size_t m) {
    const size_t window = 4096;
    for (size_t off = 0; n - off >= m; off += window) {
        size_t len = n - off;
        if (len > window + m - 1) len = window + m - 1;
        const char *hit = memmem(p + off, len, s, m);
        if (hit || len < window + m - 1) return hit;
    }
    return NULL;
}

/* Split one raw fragment at every leftmost occurrence of special token `id`, appending the
 * pieces to `out`. Mirrors llama.cpp's tokenizer_st_partition for one (token, fragment). */
static bool split_fragment(const mlxr_vocab *v, int32_t id, const char *text, mlxr_frag f,
                           mlxr_frag_list *out) {
    size_t m;
    const char *s = mlxr_vocab_text(v, id, &m);
    uint8_t attr = v->attr[id];
    size_t base = f.off, blen = f.len;
    for (;;) {
        const char *hit = find_bytes(text + base, blen, s, m);
        if (!hit) return frag_push(out, base, blen, -1);
        size_t match = (size_t)(hit - text);
        size_t left = match - base;
        if (attr & MLXR_TOKEN_ATTR_LSTRIP) {
            while (left > 0 && is_space(text[base + left - 1]))
                left--;
        }
        if (left && !frag_push(out, base, left, -1)) return false;
        if (!frag_push(out, 0, 0, id)) return false;
        size_t r_off = match + m, r_len = base + blen - r_off;
        if (attr & MLXR_TOKEN_ATTR_RSTRIP) {
            while (r_len > 0 && is_space(text[r_off]))
                r_off++, r_len--;
        }
        if (r_len == 0) return true;
        base = r_off;
        blen = r_len;
    }
}

/* Which byte pairs occur in the text: a candidate with a pair that never occurs cannot match,
 * so it is skipped without a search. This makes the cost of vocabularies with hundreds of added
 * tokens (deepseek-coder: 256) one pass over the text instead of one search per token. */
typedef struct pair_set {
    uint64_t bits[65536 / 64];
} pair_set;

static void pair_set_fill(pair_set *ps, const char *text, size_t len) {
    memset(ps, 0, sizeof *ps);
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned k = (unsigned)(uint8_t)text[i] << 8 | (uint8_t)text[i + 1];
        ps->bits[k >> 6] |= 1ull << (k & 63);
    }
}

static bool may_occur(const pair_set *ps, const char *s, size_t m) {
    for (size_t i = 0; i + 1 < m; i++) {
        unsigned k = (unsigned)(uint8_t)s[i] << 8 | (uint8_t)s[i + 1];
        if (!(ps->bits[k >> 6] >> (k & 63) & 1)) return false;
    }
    return true;
}

static bool is_candidate(const mlxr_vocab *v, int32_t id, bool parse_special) {
    uint8_t t = v->type[id];
    /* User-defined tokens are split out even from plain text, as Hugging Face tokenizers do. */
    return parse_special || (t != MLXR_TOKEN_CONTROL && t != MLXR_TOKEN_UNKNOWN);
}

mlxr_status mlxr_tok_partition(const mlxr_vocab *v, const char *text, size_t len,
                               bool parse_special, mlxr_frag_list *out, mlxr_err *err) {
    mlxr_frag_list cur = {0}, next = {0};
    pair_set *ps = v->n_special > 4 ? malloc(sizeof *ps) : NULL; /* NULL: search every one */
    if (ps) pair_set_fill(ps, text, len);
    if (!frag_push(&cur, 0, len, -1)) goto nomem;
    for (int32_t k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        if (!is_candidate(v, id, parse_special)) continue;
        size_t m;
        const char *s = mlxr_vocab_text(v, id, &m);
        if (ps && !may_occur(ps, s, m)) continue;
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            bool ok = cur.a[i].token >= 0 ? frag_push(&next, 0, 0, cur.a[i].token)
                                          : split_fragment(v, id, text, cur.a[i], &next);
            if (!ok) goto nomem;
        }
        mlxr_frag_list t = cur;
        cur = next;
        next = t;
    }
    free(ps);
    free(next.a);
    *out = cur;
    return MLXR_OK;
nomem:
    free(ps);
    free(next.a);
    free(cur.a);
    return MLXR_FAIL(err, MLXR_ERR_NOMEM, "tokenize: no memory to split %zu bytes", len);
}

/* ---- the whole call -------------------------------------------------------------------------- */

/* SentencePiece: the dummy prefix goes on the first raw fragment and on any that follows a
 * special token (llama.cpp's is_prev_special). */
static mlxr_status encode_spm(const mlxr_vocab *v, const char *text, const mlxr_frag_list *frags,
                              mlxr_tok_sink *o, mlxr_err *err) {
    void *work = NULL;
    mlxr_status st = MLXR_OK;
    bool prev_special = true;
    for (size_t i = 0; i < frags->n && !st; i++) {
        const mlxr_frag *f = &frags->a[i];
        if (f->token >= 0) {
            mlxr_tok_emit(o, f->token);
            prev_special = true;
            continue;
        }
        bool prefix = v->add_space_prefix && prev_special;
        st = mlxr_spm_encode_fragment(v, &work, text + f->off, f->len, prefix, o, err);
        prev_special = false;
    }
    mlxr_spm_work_free(work);
    return st;
}

static mlxr_status encode_other(const mlxr_vocab *v, const char *text, const mlxr_frag_list *frags,
                                mlxr_tok_sink *o, mlxr_err *err) {
    for (size_t i = 0; i < frags->n; i++) {
        const mlxr_frag *f = &frags->a[i];
        if (f->token >= 0) {
            mlxr_tok_emit(o, f->token);
            continue;
        }
        mlxr_status st = v->kind == MLXR_VOCAB_BPE
                             ? mlxr_bpe_encode_fragment(v, text + f->off, f->len, o, err)
                             : mlxr_wpm_encode_fragment(v, text + f->off, f->len, o, err);
        if (st) return st;
    }
    return MLXR_OK;
}

mlxr_status mlxr_vocab_tokenize(const mlxr_vocab *v, const char *text, size_t len, bool add_special,
                                bool parse_special, int32_t *ids, size_t cap, size_t *n_out,
                                mlxr_err *err) {
    if (!v || !n_out || (len && !text) || (cap && !ids))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "tokenize: NULL argument");
    *n_out = 0;
    mlxr_tok_sink o = {ids, cap, 0};
    mlxr_frag_list frags = {0};
    mlxr_status st = MLXR_OK;
    /* WordPiece always wraps the text in [CLS] ... [SEP] with add_special (llama.cpp); the other
     * kinds add BOS/EOS where the metadata says so. mlxr_vocab_new guarantees the ids exist. */
    bool wpm = v->kind == MLXR_VOCAB_WPM;
    bool bos = add_special && (wpm ? v->bos >= 0 : v->add_bos);
    bool eos = add_special && (wpm ? v->sep >= 0 : v->add_eos);

    if (bos) mlxr_tok_emit(&o, v->bos);
    if (len && (st = mlxr_tok_partition(v, text, len, parse_special, &frags, err))) goto done;
    st = v->kind == MLXR_VOCAB_SPM ? encode_spm(v, text, &frags, &o, err)
                                   : encode_other(v, text, &frags, &o, err);
    if (st) goto done;
    if (eos) mlxr_tok_emit(&o, wpm ? v->sep : v->eos);

    *n_out = o.n;
    if (o.n > cap)
        st = MLXR_FAIL(err, MLXR_ERR_RANGE, "tokenize: %zu ids needed, room for %zu", o.n, cap);
done:
    free(frags.a);
    return st;
}
