/*
 * bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2") as llama.cpp does it
 * (llm_tokenizer_bpe_session in llama-vocab.cpp; unicode.cpp for the byte mapping).
 *
 * One raw fragment (special tokens are already split out by special.c):
 *   1. UTF-8 clean-up: llama.cpp decodes the text leniently (unicode_cpts_from_utf8: a bad
 *      sequence becomes U+FFFD and costs one byte; overlong forms and surrogates pass) and
 *      re-encodes it; we do the same, so invalid input tokenizes exactly like llama.cpp's. The
 *      regexes see a copy in which surrogates are U+FFFD too (PCRE2 needs valid UTF-8).
 *   2. Pre-tokenize with the vocabulary's regexes (pretok.c).
 *   3. Each pre-token's bytes go through GPT-2's byte-to-unicode map (printable Latin-1 bytes map
 *      to themselves, the other 68 to U+0100..U+0143), giving the alphabet of the token texts.
 *   4. Merge: the encoded pre-token is cut into characters; every adjacent pair listed in
 *      tokenizer.ggml.merges goes into a min-heap by rank (ties: leftmost); popping merges the
 *      pair unless either side changed since (then it is stale), and queues the pairs with the
 *      new neighbours. With ignore_merges (llama3), a pre-token that is a token is taken whole.
 *   5. Each final symbol is emitted as its token; a symbol that is no token (a broken
 *      vocabulary) falls back to the tokens of its single bytes, skipping bytes without one, as
 *      llama.cpp does.
 * Cost: O(n log n) per pre-token for the merges, one hash lookup per queued pair; memory per
 * call only. Merges are kept as (left text, right text) -> rank, the lowest rank winning for a
 * repeated pair (llama.cpp's map emplace); a merge string without a space after its first byte
 * can never match and is ignored, as in llama.cpp. Thread-safe: the vocabulary is read-only.
 */
#include "tokenizer/vocab_impl.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 the way llama.cpp reads it -----------------------------------------------------------
 */

static bool cont(const char *s, size_t n, size_t i) {
    return i < n && ((uint8_t)s[i] & 0xC0) == 0x80;
}

uint32_t mlxr_utf8_decode(const char *s, size_t n, size_t *used) {
    const uint8_t *u = (const uint8_t *)s;
    *used = 1;
    if (!(u[0] & 0x80)) return u[0];
    if (!(u[0] & 0x40)) return 0xFFFD; /* a stray continuation byte */
    if (!(u[0] & 0x20)) {
        if (!cont(s, n, 1)) return 0xFFFD;
        *used = 2;
        return (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
    }
    if (!(u[0] & 0x10)) {
        if (!cont(s, n, 1) || !cont(s, n, 2)) return 0xFFFD;
        *used = 3;
        return (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    }
    if (!(u[0] & 0x08)) {
        if (!cont(s, n, 1) || !cont(s, n, 2) || !cont(s, n, 3)) return 0xFFFD;
        *used = 4;
        return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
               (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
    }
    return 0xFFFD;
}

size_t mlxr_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp <= 0x7f) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp <= 0x7ff) {
        o[0] = (uint8_t)(0xc0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp <= 0xffff) {
        o[0] = (uint8_t)(0xe0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | (cp >> 18 & 0x07));
    o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF): then step 1 changes
 * nothing and the text can be used as it is. */
static bool utf8_valid(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint8_t c = u[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c < 0xC2 || c > 0xF4 || n - i < k) return false;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return false;
        if (c == 0xE0 && u[i + 1] < 0xA0) return false;  /* overlong */
        if (c == 0xED && u[i + 1] >= 0xA0) return false; /* surrogate */
        if (c == 0xF0 && u[i + 1] < 0x90) return false;  /* overlong */
        if (c == 0xF4 && u[i + 1] >= 0x90) return false; /* past U+10FFFF */
        i += k;
    }
    return true;
}

/* Step 1 for invalid input: *text is what llama.cpp tokenizes, *shadow what the regexes see
 * (surrogates replaced); both malloc'ed, same length. A code point past U+10FFFF, which makes
 * llama.cpp throw, becomes U+FFFD. */
static bool clean_utf8(const char *s, size_t n, char **text, char **shadow, size_t *len) {
    size_t cap;
    if (!mlxr_mul_ok(n, 3, &cap)) return false; /* U+FFFD (3 bytes) per bad byte at most */
    char *t = malloc(cap + 1), *h = malloc(cap + 1);
    if (!t || !h) {
        free(t);
        free(h);
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t used;
        uint32_t cp = mlxr_utf8_decode(s + i, n - i, &used);
        if (cp > 0x10FFFF) cp = 0xFFFD;
        i += used;
        size_t m = mlxr_utf8_encode(cp, t + k);
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            mlxr_utf8_encode(0xFFFD, h + k);
        } else {
            memcpy(h + k, t + k, m);
        }
        k += m;
    }
    *text = t, *shadow = h, *len = k;
    return true;
}

/* ---- GPT-2's byte <-> unicode map
 * ---------------------------------------------------------------- */

/* Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the others, in byte order, take
 * U+0100 onwards (unicode.cpp's unicode_byte_to_utf8_map). */
uint32_t mlxr_bpe_byte_cp(uint8_t b) {
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return (uint32_t)b + 162u; /* 0x7F -> U+0121 */
    if (b == 0xAD) return 323u;
    return b;
}

/* The inverse, or -1 for a code point outside the map. */
static int cp_to_byte(uint32_t cp) {
    if (cp < 256) return (cp > 0x20 && cp < 0x7F) || (cp > 0xA0 && cp != 0xAD) ? (int)cp : -1;
    if (cp <= 256 + 0x20) return (int)(cp - 256);
    if (cp >= 0x121 && cp <= 0x142) return (int)(cp - 162);
    if (cp == 323) return 0xAD;
    return -1;
}

size_t mlxr_bpe_decode_text(const char *s, size_t n, char *buf, size_t cap) {
    size_t need = 0;
    for (size_t i = 0; i < n;) {
        size_t used;
        uint32_t cp = mlxr_utf8_decode(s + i, n - i, &used);
        int b = cp_to_byte(cp);
        if (b >= 0) {
            if (need < cap) buf[need] = (char)b;
            need++;
        } else {
            /* llama.cpp's llama_decode_text: "[UNK_BYTE_0x" + the character's bytes in hex + the
             * whole token text + "]" */
            char tmp[32];
            int m = snprintf(tmp, sizeof tmp, "[UNK_BYTE_0x");
            for (size_t j = 0; j < used; j++)
                m += snprintf(tmp + m, sizeof tmp - (size_t)m, "%02x", (uint8_t)s[i + j]);
            for (int j = 0; j < m; j++, need++)
                if (need < cap) buf[need] = tmp[j];
            for (size_t j = 0; j < n; j++, need++)
                if (need < cap) buf[need] = s[j];
            if (need < cap) buf[need] = ']';
            need++;
        }
        i += used;
    }
    return need;
}

/* ---- merge ranks
 * ---------------------------------------------------------------------------------- */

typedef struct merge {
    size_t off;         /* left text then right text, back to back, in blob */
    uint32_t len, llen; /* total length, left length */
    int32_t res;        /* id of the merged text, or -1 */
} merge;

struct mlxr_bpe_ranks {
    merge *m; /* [n] by rank */
    int32_t n;
    char *blob;
    int32_t *slots; /* open addressing: rank, or -1 */
    uint32_t *tags; /* [slot] high bits of the pair's hash: most misses skip the memcmp */
    size_t mask;
    /* The fast path: when both halves and the result of every merge are tokens (always so in
     * real vocabularies: Hugging Face refuses others), symbols can be token ids and a pair is
     * looked up by (left id, right id) without touching text. */
    bool by_id;
    uint64_t *id_keys; /* open addressing: left id << 32 | right id; ID_EMPTY = free */
    int32_t *id_rank;
    size_t id_mask;
};

#define ID_EMPTY UINT64_MAX

static size_t id_slot(uint64_t key, size_t mask) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & mask;
}

/* Rank of merging tokens a and b (fast path), or -1. */
static int32_t rank_by_id(const mlxr_bpe_ranks *r, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = id_slot(key, r->id_mask);; i = (i + 1) & r->id_mask) {
        if (r->id_keys[i] == key) return r->id_rank[i];
        if (r->id_keys[i] == ID_EMPTY) return -1;
    }
}

static uint64_t merge_hash(const char *s, size_t n, size_t llen) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)llen * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int32_t mlxr_bpe_rank(const mlxr_bpe_ranks *r, const char *a, size_t la, const char *b, size_t lb) {
    /* symbols of one word are adjacent in its buffer, so a + la == b; a general caller may pass
     * separate texts, which we then cannot hash in one go */
    if (a + la != b) return -1;
    size_t n = la + lb;
    uint64_t h = merge_hash(a, n, la);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & r->mask;; i = (i + 1) & r->mask) {
        int32_t k = r->slots[i];
        if (k < 0) return -1;
        if (r->tags[i] != tag) continue;
        const merge *m = &r->m[k];
        if (m->len == n && m->llen == la && memcmp(r->blob + m->off, a, n) == 0) return k;
    }
}

void mlxr_bpe_ranks_free(mlxr_bpe_ranks *r) {
    if (!r) return;
    free(r->id_rank);
    free(r->id_keys);
    free(r->tags);
    free(r->slots);
    free(r->blob);
    free(r->m);
    free(r);
}

static size_t merge_len(const mlxr_vocab_spec *s, int32_t i) {
    return s->merge_lens ? s->merge_lens[i] : strlen(s->merges[i]);
}

/* Insert merge k unless an equal pair is already there (the lower rank stays). */
static void ranks_insert(mlxr_bpe_ranks *r, int32_t k) {
    const merge *m = &r->m[k];
    const char *t = r->blob + m->off;
    uint64_t h = merge_hash(t, m->len, m->llen);
    size_t i = (size_t)h & r->mask;
    for (; r->slots[i] >= 0; i = (i + 1) & r->mask) {
        const merge *o = &r->m[r->slots[i]];
        if (o->len == m->len && o->llen == m->llen && memcmp(r->blob + o->off, t, m->len) == 0)
            return;
    }
    r->slots[i] = k;
    r->tags[i] = (uint32_t)(h >> 32);
}

/* The (left id, right id) table of the fast path, if every merge allows it. */
static bool build_id_table(mlxr_bpe_ranks *r, const mlxr_vocab *v) {
    size_t size = 16;
    while (size < 2 * (size_t)r->n + 2)
        size *= 2;
    r->id_keys = malloc(size * sizeof *r->id_keys);
    r->id_rank = malloc(size * sizeof *r->id_rank);
    if (!r->id_keys || !r->id_rank) return false;
    memset(r->id_keys, 0xff, size * sizeof *r->id_keys);
    r->id_mask = size - 1;
    r->by_id = true;
    for (int32_t k = 0; k < r->n; k++) {
        merge *m = &r->m[k];
        m->res = -1;
        if (m->len == 0) continue; /* malformed: never matches */
        const char *t = r->blob + m->off;
        int32_t a = mlxr_vocab_find(v, t, m->llen),
                b = mlxr_vocab_find(v, t + m->llen, m->len - m->llen);
        m->res = mlxr_vocab_find(v, t, m->len);
        if (a < 0 || b < 0 || m->res < 0) {
            r->by_id = false; /* a merge over non-tokens: only the text path is exact */
            continue;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t i = id_slot(key, r->id_mask);
        while (r->id_keys[i] != ID_EMPTY && r->id_keys[i] != key)
            i = (i + 1) & r->id_mask;
        if (r->id_keys[i] == ID_EMPTY) { /* a repeated pair keeps its first rank */
            r->id_keys[i] = key;
            r->id_rank[i] = k;
        }
    }
    return true;
}

mlxr_status mlxr_bpe_ranks_new(const mlxr_vocab_spec *s, const mlxr_vocab *v, mlxr_bpe_ranks **out,
                               mlxr_err *err) {
    *out = NULL;
    int32_t n = s->n_merges > 0 ? s->n_merges : 0;
    mlxr_bpe_ranks *r = calloc(1, sizeof *r);
    size_t total = 0, size = 16;
    if (!r) goto nomem;
    for (int32_t i = 0; i < n; i++) {
        if (!mlxr_add_ok(total, merge_len(s, i), &total)) {
            mlxr_bpe_ranks_free(r);
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "vocab: merges overflow size_t");
        }
    }
    while (size < 2 * (size_t)n + 2)
        size *= 2;
    r->m = malloc(((size_t)n + 1) * sizeof *r->m);
    r->blob = malloc(total + 1);
    r->slots = malloc(size * sizeof *r->slots);
    r->tags = malloc(size * sizeof *r->tags);
    if (!r->m || !r->blob || !r->slots || !r->tags) goto nomem;
    memset(r->slots, 0xff, size * sizeof *r->slots);
    r->mask = size - 1;
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *t = s->merges[i];
        size_t len = merge_len(s, i);
        /* llama.cpp splits at the first space after the first byte */
        const char *sp = len > 1 ? memchr(t + 1, ' ', len - 1) : NULL;
        size_t llen = sp ? (size_t)(sp - t) : 0, rlen = sp ? len - llen - 1 : 0;
        if (!sp || rlen == 0 || len > UINT32_MAX) {
            r->m[i] = (merge){off, 0, 0, -1}; /* never matches a symbol pair */
            continue;
        }
        memcpy(r->blob + off, t, llen);
        memcpy(r->blob + off + llen, sp + 1, rlen);
        r->m[i] = (merge){off, (uint32_t)(llen + rlen), (uint32_t)llen, -1};
        off += llen + rlen;
        ranks_insert(r, i);
    }
    r->n = n;
    if (!build_id_table(r, v)) goto nomem;
    *out = r;
    return MLXR_OK;
nomem:
    mlxr_bpe_ranks_free(r);
    return MLXR_FAIL(err, MLXR_ERR_NOMEM, "vocab: no memory for %d merges", n);
}

/* ---- merging one pre-token
 * ----------------------------------------------------------------------- */

typedef struct sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the encoded word; n = 0 once merged into its left neighbour */
    int32_t id;      /* its token (fast path only) */
} sym;

typedef struct bigram {
    int32_t rank, left, right;
    uint32_t size;
} bigram;

typedef struct bpe_work {
    char *word; /* the byte-encoded pre-token */
    size_t word_cap;
    sym *syms;
    size_t syms_cap;
    bigram *heap;
    size_t heap_n, heap_cap;
} bpe_work;

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t want = *cap * 2 > need ? *cap * 2 : need, bytes;
    if (!mlxr_mul_ok(want, elem, &bytes)) return false;
    void *q = realloc(*p, bytes);
    if (!q) return false;
    *p = q;
    *cap = want;
    return true;
}

/* llama.cpp's comparator: lower rank first, then the leftmost pair. */
static bool better(const bigram *a, const bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static bool heap_push(bpe_work *w, bigram b) {
    if (!grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap)) return false;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!better(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return true;
}

static bigram heap_pop(bpe_work *w) {
    bigram top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&w->heap[c + 1], &w->heap[c])) c++;
        if (!better(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static bool try_pair(const mlxr_vocab *v, bpe_work *w, bool by_id, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const sym *l = &w->syms[left], *r = &w->syms[right];
    int32_t rank = by_id ? rank_by_id(v->ranks, l->id, r->id)
                         : mlxr_bpe_rank(v->ranks, w->word + l->off, l->n, w->word + r->off, r->n);
    if (rank < 0) return true;
    return heap_push(w, (bigram){rank, left, right, l->n + r->n});
}

static void emit_symbol(const mlxr_vocab *v, const char *p, size_t n, mlxr_tok_sink *o) {
    int32_t id = mlxr_vocab_find(v, p, n);
    if (id >= 0) {
        mlxr_tok_emit(o, id);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        int32_t b = mlxr_vocab_find(v, p + j, 1);
        if (b >= 0) mlxr_tok_emit(o, b);
    }
}

/* Steps 3-5 for the pre-token p[0, len). */
static bool encode_word(const mlxr_vocab *v, bpe_work *w, const char *p, size_t len,
                        mlxr_tok_sink *o) {
    if (!grow((void **)&w->word, &w->word_cap, 2 * len, 1)) return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += mlxr_utf8_encode(mlxr_bpe_byte_cp((uint8_t)p[i]), w->word + n);
    if (v->ignore_merges) {
        int32_t id = mlxr_vocab_find(v, w->word, n);
        if (id >= 0) {
            mlxr_tok_emit(o, id);
            return true;
        }
    }
    if (!grow((void **)&w->syms, &w->syms_cap, n, sizeof *w->syms)) return false;
    /* one symbol per input byte, each the token of its GPT-2 character if there is one */
    bool by_id = v->ranks->by_id;
    int32_t k = 0;
    for (size_t off = 0; off < n; k++) {
        uint32_t l = mlxr_utf8_len(w->word[off]); /* 1 or 2: the map's output is valid UTF-8 */
        int32_t id = v->byte_id[(uint8_t)p[k]];
        by_id &= id >= 0;
        w->syms[k] = (sym){k - 1, off + l >= n ? -1 : k + 1, (uint32_t)off, l, id};
        off += l;
    }
    w->heap_n = 0;
    for (int32_t i = 1; i < k; i++)
        if (!try_pair(v, w, by_id, i - 1, i)) return false;
    while (w->heap_n) {
        bigram b = heap_pop(w);
        sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        /* lengths only grow, so an unchanged sum means neither side was touched */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        l->id = v->ranks->m[b.rank].res;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (!try_pair(v, w, by_id, l->prev, b.left) || !try_pair(v, w, by_id, b.left, l->next))
            return false;
    }
    for (int32_t i = 0; i != -1 && k > 0; i = w->syms[i].next) {
        if (by_id)
            mlxr_tok_emit(o, w->syms[i].id);
        else
            emit_symbol(v, w->word + w->syms[i].off, w->syms[i].n, o);
    }
    return true;
}

mlxr_status mlxr_bpe_encode_fragment(const mlxr_vocab *v, const char *p, size_t len,
                                     mlxr_tok_sink *o, mlxr_err *err) {
    if (len > (size_t)INT32_MAX / 2)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "tokenize: a text run of %zu bytes is too long", len);
    char *text = NULL, *shadow = NULL;
    const char *t = p, *h = p;
    mlxr_span *spans = NULL;
    size_t n_spans = 0;
    bpe_work w = {0};
    mlxr_status st = MLXR_OK;
    if (!utf8_valid(p, len)) {
        if (!clean_utf8(p, len, &text, &shadow, &len)) goto nomem;
        t = text, h = shadow;
    }
    if ((st = mlxr_pretok_split(v->pretok, h, len, &spans, &n_spans, err))) goto done;
    for (size_t i = 0; i < n_spans; i++)
        if (!encode_word(v, &w, t + spans[i].off, spans[i].len, o)) goto nomem;
    goto done;
nomem:
    st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "tokenize: no memory for a %zu-byte text run", len);
done:
    free(w.heap);
    free(w.syms);
    free(w.word);
    free(spans);
    free(shadow);
    free(text);
    return st;
}
