/*
 * spm.c - SentencePiece encoding (tokenizer.ggml.model "llama") as llama.cpp does it
 * (llama_vocab::impl::tokenize, case SPM, and llm_tokenizer_spm_session; commit c392e50).
 *
 * Steps for one call:
 *   1. Partition at special tokens written in the text (special.c, shared by every kind).
 *   2. Each raw fragment gets the dummy-prefix space if add_space_prefix is set and it is the
 *      first fragment or follows a special token; then every ' ' becomes U+2581.
 *   3. BPE by scores: the fragment is cut into UTF-8 characters (length from the lead byte's
 *      high bits, clamped at the end, so invalid UTF-8 is just more one-byte characters); every
 *      adjacent pair whose concatenation is a token goes into a max-heap ordered by that
 *      token's score, ties to the leftmost pair; popping merges the pair unless either side has
 *      changed since it was pushed (stale), then pushes the pairs with the new neighbours.
 *   4. Every final symbol is emitted as its token if it is one, else as byte tokens <0xHH>
 *      (byte fallback; UNK if the vocabulary lacks that byte). llama.cpp also keeps a reverse
 *      merge map to split a non-token symbol into its halves, but a merged symbol is always a
 *      token (a pair is only queued when its text is one), so that branch never runs; we omit it.
 *
 * Speed: step 3 first cuts the run wherever two neighbouring characters never stand side by
 * side inside any token (mlxr_vocab_pair_possible): no merge can cross such a cut, so each piece
 * (in practice a word, since U+2581 follows another character only in whitespace pieces) is
 * merged on its own, with a small heap, and the result is the same. Step 3 is O(n log n) in the
 * run length even when nothing can be cut (1 MB of 'a'). Memory: 16 bytes per character plus 16 per
 * heap entry, freed on return. Input is any bytes; nothing is read beyond `len`. Thread-safe: all
 * state is per call.
 */
#include "tokenizer/vocab_impl.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

/* Symbol offsets are uint32 and indices int32: one fragment, escaped, must fit. */
#define MAX_FRAGMENT_BYTES ((size_t)INT32_MAX)

/* ---- 2-4. SentencePiece BPE on one raw fragment ---------------------------------------------- */

/* A run of input characters: text [off, off + n) of the escaped fragment; n = 0 once merged
 * into its left neighbour. prev/next chain the live symbols (-1 at the ends). */
typedef struct sym {
    int32_t prev, next;
    uint32_t off, n;
} sym;

/* A candidate merge of symbols left and right, valid while their lengths still sum to size. */
typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;
} bigram;

/* Scratch reused across the fragments of one call. */
typedef struct spm_work {
    char *text; /* the escaped fragment */
    size_t text_cap;
    sym *syms;
    size_t syms_cap;
    bigram *heap;
    size_t heap_n, heap_cap;
} spm_work;

static void work_free(spm_work *w) {
    free(w->heap);
    free(w->syms);
    free(w->text);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t bytes;
    if (!mlxr_mul_ok(need, elem, &bytes)) return false;
    void *q = realloc(*p, bytes);
    if (!q) return false;
    *p = q;
    *cap = need;
    return true;
}

/* Heap order: higher score first; equal scores, leftmost first (llama.cpp's comparator). */
static bool better(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* A 4-ary heap: half the depth of a binary one, and the four children of a node share a
 * cache line, which matters once the heap outgrows the cache. */
static bool heap_push(spm_work *w, bigram b) {
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? 2 * w->heap_cap : 64;
        if (!grow((void **)&w->heap, &w->heap_cap, cap, sizeof *w->heap)) return false;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!better(&b, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = b;
    return true;
}

static bigram heap_pop(spm_work *w) {
    bigram top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 4 * i + 1, best = c;
        if (c >= n) break;
        size_t end = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < end; k++) {
            if (better(&w->heap[k], &w->heap[best])) best = k;
        }
        if (!better(&w->heap[best], &last)) break;
        w->heap[i] = w->heap[best];
        i = best;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* Queue the merge of symbols left and right if their concatenation is a token.
 * Returns false only when out of memory. */
static bool try_pair(const mlxr_vocab *v, spm_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const sym *l = &w->syms[left], *r = &w->syms[right];
    uint32_t size = l->n + r->n; /* adjacent, so the text is contiguous from l->off */
    if (size > v->max_len) return true;
    int32_t id = mlxr_vocab_find(v, w->text + l->off, size);
    if (id < 0) return true;
    return heap_push(w, (bigram){v->score[id], left, right, size});
}

/* Step 2: the escaped fragment into w->text; its length into *n. */
static mlxr_status escape(spm_work *w, const char *p, size_t len, bool prefix, size_t *n,
                          mlxr_err *err) {
    size_t spaces = (size_t)prefix;
    for (size_t i = 0; i < len; i++)
        spaces += p[i] == ' ';
    size_t extra = 2 * spaces, total = 0; /* spaces <= len + 1, so 2 * spaces cannot wrap */
    if (!mlxr_add_ok(len + (size_t)prefix, extra, &total) || total > MAX_FRAGMENT_BYTES)
        return MLXR_FAIL(err, MLXR_ERR_RANGE,
                         "tokenize: a text run of %zu bytes is too long (limit %zu escaped)", len,
                         MAX_FRAGMENT_BYTES);
    if (!grow((void **)&w->text, &w->text_cap, total, 1))
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "tokenize: no memory for %zu bytes", total);
    char *q = w->text;
    if (prefix) memcpy(q, "\xe2\x96\x81", 3), q += 3;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == ' ') {
            memcpy(q, "\xe2\x96\x81", 3);
            q += 3;
        } else {
            *q++ = p[i];
        }
    }
    *n = total;
    return MLXR_OK;
}

/* Step 3a: cut w->text[0, n) into characters, chained in order; *n_sym receives the count. */
static bool split_chars(spm_work *w, size_t n, int32_t *n_sym) {
    size_t count = 0;
    for (size_t off = 0; off < n; count++) {
        uint32_t l = mlxr_utf8_len(w->text[off]);
        off += l < n - off ? l : n - off;
    }
    if (!grow((void **)&w->syms, &w->syms_cap, count, sizeof *w->syms)) return false;
    int32_t i = 0;
    for (size_t off = 0; off < n; i++) {
        uint32_t l = mlxr_utf8_len(w->text[off]);
        if (l > n - off) l = (uint32_t)(n - off);
        w->syms[i] = (sym){i - 1, off + l == n ? -1 : i + 1, (uint32_t)off, l};
        off += l;
    }
    *n_sym = i;
    return true;
}

/* True if no token contains characters i-1 and i side by side: no merge will ever join them,
 * so the run can be cut there and each side merged on its own with the same result (the
 * comparator orders the pairs of one segment just as it does in the whole run). */
static bool cut_before(const mlxr_vocab *v, const spm_work *w, int32_t i) {
    const sym *a = &w->syms[i - 1], *b = &w->syms[i];
    return !mlxr_vocab_pair_possible(v, w->text + a->off, a->n, w->text + b->off, b->n);
}

/* Step 3b: merge the symbols [first, end), best pair first, until no queued pair is valid. */
static bool merge_segment(const mlxr_vocab *v, spm_work *w, int32_t first, int32_t end) {
    w->syms[first].prev = -1;
    w->syms[end - 1].next = -1;
    w->heap_n = 0;
    for (int32_t i = first + 1; i < end; i++) {
        if (!try_pair(v, w, i - 1, i)) return false;
    }
    while (w->heap_n) {
        bigram b = heap_pop(w);
        sym *l = &w->syms[b.left], *r = &w->syms[b.right];
        /* lengths only grow, so an unchanged sum means neither side was touched */
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = b.left;
        if (!try_pair(v, w, l->prev, b.left) || !try_pair(v, w, b.left, l->next)) return false;
    }
    return true;
}

/* Step 4: emit the live symbols of a merged segment (its first symbol is never absorbed). */
static mlxr_status emit_segment(const mlxr_vocab *v, const spm_work *w, int32_t first,
                                mlxr_tok_sink *o, mlxr_err *err) {
    for (int32_t i = first; i != -1; i = w->syms[i].next) {
        const sym *s = &w->syms[i];
        const char *p = w->text + s->off;
        int32_t id = mlxr_vocab_find(v, p, s->n);
        if (id >= 0) {
            mlxr_tok_emit(o, id);
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++) {
            uint8_t b = (uint8_t)p[j];
            int32_t bid = v->byte_id[b] >= 0 ? v->byte_id[b] : v->unk;
            if (bid < 0)
                return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND,
                                 "tokenize: byte 0x%02X has no token and there is no UNK token", b);
            mlxr_tok_emit(o, bid);
        }
    }
    return MLXR_OK;
}

static mlxr_status spm_encode(const mlxr_vocab *v, spm_work *w, const char *p, size_t len,
                              bool prefix, mlxr_tok_sink *o, mlxr_err *err) {
    size_t n = 0;
    int32_t n_sym = 0;
    mlxr_status st = escape(w, p, len, prefix, &n, err);
    if (st) return st;
    if (!split_chars(w, n, &n_sym)) goto nomem;
    for (int32_t first = 0, end; first < n_sym; first = end) {
        /* find the segment's end before merging changes the symbols' lengths */
        for (end = first + 1; end < n_sym && !cut_before(v, w, end); end++) {
        }
        if (!merge_segment(v, w, first, end)) goto nomem;
        if ((st = emit_segment(v, w, first, o, err))) return st;
    }
    return MLXR_OK;
nomem:
    return MLXR_FAIL(err, MLXR_ERR_NOMEM, "tokenize: no memory for a %zu-byte text run", n);
}

/* ---- entry point ------------------------------------------------------------------------------
 */

mlxr_status mlxr_spm_encode_fragment(const mlxr_vocab *v, void **work, const char *p, size_t len,
                                     bool prefix, mlxr_tok_sink *o, mlxr_err *err) {
    if (!*work && !(*work = calloc(1, sizeof(spm_work))))
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "tokenize: no memory");
    return spm_encode(v, *work, p, len, prefix, o, err);
}

void mlxr_spm_work_free(void *work) {
    if (!work) return;
    work_free(work);
    free(work);
}
