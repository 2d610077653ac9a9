/*
 * detok.c - ids back to text: the concatenated pieces of mlxr_vocab_token_to_piece (vocab.c),
 * one-shot or streamed.
 *
 * Leading space: a SentencePiece vocabulary with add_space_prefix put a dummy space before the
 * text when tokenizing, so the first text token loses one leading space (as SentencePiece's
 * decoder and llama.cpp's llama_detokenize do). Control tokens before it (BOS) do not count as
 * the first text token; llama.cpp instead keeps the space when it strips a leading BOS, which
 * would give " Hello" for [<s>, ▁Hello]; we give "Hello" so that decode(encode(x)) == x holds
 * with and without BOS. llama.cpp's clean_spaces pass (" ," -> ",", cosmetic and lossy) is not
 * applied: generation output is the plain concatenation of pieces, as llama.cpp prints it.
 *
 * Streaming: pieces are appended to a pending buffer and everything up to the last complete
 * UTF-8 character goes out; at most 3 bytes (a character's incomplete start) wait for the next
 * token. Bytes that can no longer become a valid character go out as they are, so the output
 * of all pushes plus the flush is always byte-identical to the one-shot result.
 */
#include "tokenizer/detok.h"

#include "tokenizer/vocab_impl.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

size_t mlxr_utf8_complete_prefix(const char *s, size_t n) {
    /* find the last lead byte among the final three */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = (uint8_t)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation: look further back */
        size_t want = c >= 0xC2 && c <= 0xDF   ? 2
                      : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xF0 && c <= 0xF4 ? 4
                                               : 1;
        return back < want ? n - back : n; /* incomplete: hold it back */
    }
    return n;
}

/* The piece of id into *p (grown as needed), with the leading-space rule applied. */
static mlxr_status piece(const mlxr_vocab *v, int32_t id, bool special, bool *remove_space,
                         char **p, size_t *cap, size_t *len, mlxr_err *err) {
    size_t n = 0;
    mlxr_status st = mlxr_vocab_token_to_piece(v, id, special, *p, *cap, &n, err);
    if (st == MLXR_ERR_RANGE) {
        char *q = realloc(*p, n);
        if (!q) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "detokenize: no memory for %zu bytes", n);
        *p = q;
        *cap = n;
        st = mlxr_vocab_token_to_piece(v, id, special, *p, *cap, &n, err);
    }
    if (st) return st;
    size_t skip = 0;
    if (*remove_space && mlxr_vocab_token_type(v, id) != MLXR_TOKEN_CONTROL) {
        if (n && (*p)[0] == ' ') skip = 1;
        *remove_space = false;
    }
    if (skip) memmove(*p, *p + 1, n - 1);
    *len = n - skip;
    return MLXR_OK;
}

mlxr_status mlxr_vocab_detokenize(const mlxr_vocab *v, const int32_t *ids, size_t n, bool special,
                                  char *buf, size_t cap, size_t *n_out, mlxr_err *err) {
    if (!v || !n_out || (n && !ids) || (cap && !buf))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "detokenize: NULL argument");
    *n_out = 0;
    bool remove_space = v->kind == MLXR_VOCAB_SPM && v->add_space_prefix;
    char *p = NULL;
    size_t pcap = 0, need = 0;
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        if ((st = piece(v, ids[i], special, &remove_space, &p, &pcap, &len, err))) break;
        if (len && need < cap) memcpy(buf + need, p, len < cap - need ? len : cap - need);
        need += len;
    }
    free(p);
    if (st) return st;
    *n_out = need;
    if (need > cap)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "detokenize: %zu bytes needed, buffer has %zu", need,
                         cap);
    return MLXR_OK;
}

struct mlxr_detok_stream {
    const mlxr_vocab *v;
    bool special, remove_space;
    char *buf; /* pending bytes, then the new piece */
    size_t cap, pending;
};

mlxr_status mlxr_vocab_detok_stream_new(const mlxr_vocab *v, bool special, mlxr_detok_stream **out,
                                        mlxr_err *err) {
    if (!v || !out) return MLXR_FAIL(err, MLXR_ERR_INVALID, "detok_stream_new: NULL argument");
    *out = calloc(1, sizeof **out);
    if (!*out) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "detok_stream_new: no memory");
    (*out)->v = v;
    (*out)->special = special;
    (*out)->remove_space = v->kind == MLXR_VOCAB_SPM && v->add_space_prefix;
    return MLXR_OK;
}

void mlxr_vocab_detok_stream_free(mlxr_detok_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s);
}

static mlxr_status put_out(const char *p, size_t n, char *buf, size_t cap, size_t *n_out,
                           mlxr_err *err) {
    *n_out = n;
    if (n > cap)
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "detok_stream: %zu bytes ready, buffer has %zu", n,
                         cap);
    if (n) memcpy(buf, p, n);
    return MLXR_OK;
}

mlxr_status mlxr_vocab_detok_stream_push(mlxr_detok_stream *s, int32_t id, char *buf, size_t cap,
                                         size_t *n_out, mlxr_err *err) {
    if (!s || !n_out || (cap && !buf))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "detok_stream_push: NULL argument");
    *n_out = 0;
    /* the piece goes into a scratch buffer first, so a failed call changes nothing */
    char *p = NULL;
    size_t pcap = 0, len = 0;
    bool remove_space = s->remove_space;
    mlxr_status st = piece(s->v, id, s->special, &remove_space, &p, &pcap, &len, err);
    if (st) {
        free(p);
        return st;
    }
    size_t total = s->pending + len;
    if (total > s->cap) {
        char *q = realloc(s->buf, total);
        if (!q) {
            free(p);
            return MLXR_FAIL(err, MLXR_ERR_NOMEM, "detok_stream: no memory");
        }
        s->buf = q;
        s->cap = total;
    }
    if (len) memcpy(s->buf + s->pending, p, len);
    free(p);
    size_t ready = mlxr_utf8_complete_prefix(s->buf, total);
    if ((st = put_out(s->buf, ready, buf, cap, n_out, err))) return st; /* pending unchanged */
    if (total > ready) memmove(s->buf, s->buf + ready, total - ready);
    s->pending = total - ready;
    s->remove_space = remove_space;
    return MLXR_OK;
}

mlxr_status mlxr_vocab_detok_stream_flush(mlxr_detok_stream *s, char *buf, size_t cap,
                                          size_t *n_out, mlxr_err *err) {
    if (!s || !n_out || (cap && !buf))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "detok_stream_flush: NULL argument");
    mlxr_status st = put_out(s->buf, s->pending, buf, cap, n_out, err);
    if (!st) s->pending = 0;
    return st;
}
