/*
 * stopmatch.c - UTF-8 boundaries and stop-string hold-back for generated text (see stopmatch.h).
 */
#include "server/stopmatch.h"

#include "util/err.h"

#include <stdlib.h>
#include <string.h>

mlxr_status mlxr_stopmatch_init(mlxr_stopmatch *m, const char *const *stops, size_t n,
                                mlxr_err *err) {
    memset(m, 0, sizeof *m);
    if (n == 0) return MLXR_OK;
    m->stops = calloc(n, sizeof *m->stops);
    m->stop_len = calloc(n, sizeof *m->stop_len);
    if (!m->stops || !m->stop_len) goto nomem;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(stops[i]);
        if (l == 0) {
            mlxr_stopmatch_free(m);
            return MLXR_FAIL(err, MLXR_ERR_INVALID, "stop string %zu is empty", i);
        }
        if (!(m->stops[i] = malloc(l + 1))) goto nomem;
        memcpy(m->stops[i], stops[i], l + 1);
        m->stop_len[i] = l;
        m->n_stop = i + 1;
    }
    return MLXR_OK;
nomem:
    mlxr_stopmatch_free(m);
    return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for stop strings");
}

void mlxr_stopmatch_free(mlxr_stopmatch *m) {
    if (!m) return;
    for (size_t i = 0; m->stops && i < m->n_stop; i++) free(m->stops[i]);
    free(m->stops);
    free(m->stop_len);
    free(m->pend);
    memset(m, 0, sizeof *m);
}

size_t mlxr_stopmatch_need(const mlxr_stopmatch *m, size_t len) {
    return m->pend_len + len + 1;
}

/* Length of the sequence a lead byte starts (1..4), or 0 for a byte that starts none. */
static int utf8_seq_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether s[0..n) (n = utf8_seq_len(s[0]), all present) is one valid character. */
static bool utf8_seq_ok(const unsigned char *s, int n) {
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return false;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) return false; /* overlong */
    if (n == 3 && s[0] == 0xED && s[1] > 0x9F) return false; /* surrogate */
    if (n == 4 && s[0] == 0xF0 && s[1] < 0x90) return false; /* overlong */
    if (n == 4 && s[0] == 0xF4 && s[1] > 0x8F) return false; /* > U+10FFFF */
    return true;
}

size_t mlxr_utf8_complete_len(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    /* look back at most 3 bytes for the lead byte of a sequence that is still missing bytes */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = u[len - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation: keep looking for its lead */
        int n = utf8_seq_len(c);
        if (n > (int)back) {
            /* incomplete: hold it back only if what we have so far can still become valid */
            for (size_t k = 1; k < back; k++)
                if ((u[len - back + k] & 0xC0) != 0x80) return len;
            return len - back;
        }
        return len;
    }
    return len;
}

bool mlxr_utf8_valid(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        int n = utf8_seq_len(u[i]);
        if (n == 0 || (size_t)n > len - i || !utf8_seq_ok(u + i, n)) return false;
        i += (size_t)n;
    }
    return true;
}

char *mlxr_utf8_sanitize(const char *s, size_t len, size_t *out_len) {
    size_t cap;
    if (!mlxr_mul_ok(len, 3, &cap) || !mlxr_add_ok(cap, 1, &cap)) return NULL;
    char *out = malloc(cap);
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int n = utf8_seq_len(u[i]);
        if (n > 0 && (size_t)n <= len - i && utf8_seq_ok(u + i, n)) {
            memcpy(out + o, s + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else { /* one replacement character per offending byte */
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Longest k < stop_len with the last k bytes of s[0..len) equal to the first k of a stop. */
static size_t held_tail(const mlxr_stopmatch *m, const char *s, size_t len) {
    size_t best = 0;
    for (size_t i = 0; i < m->n_stop; i++) {
        size_t k = m->stop_len[i] - 1;
        if (k > len) k = len;
        for (; k > best; k--)
            if (!memcmp(s + len - k, m->stops[i], k)) break;
        if (k > best) best = k;
    }
    return best;
}

bool mlxr_stopmatch_feed(mlxr_stopmatch *m, const char *text, size_t len, char *out, size_t cap,
                         size_t *n_out) {
    *n_out = 0;
    if (m->stopped) return true;
    if (m->pend_len + len > m->pend_cap) {
        size_t nc = (m->pend_len + len) * 2 + 16;
        char *p = realloc(m->pend, nc);
        if (!p) return false; /* keep what we have; the text is delayed, never corrupted */
        m->pend = p;
        m->pend_cap = nc;
    }
    if (len) memcpy(m->pend + m->pend_len, text, len);
    m->pend_len += len;
    if (m->pend_len == 0) return false;
    size_t complete = mlxr_utf8_complete_len(m->pend, m->pend_len);
    /* the earliest occurrence of any stop string ends the text there */
    size_t cut = SIZE_MAX;
    for (size_t i = 0; i < m->n_stop; i++) {
        const char *hit = memmem(m->pend, complete, m->stops[i], m->stop_len[i]);
        if (hit && (size_t)(hit - m->pend) < cut) cut = (size_t)(hit - m->pend);
    }
    if (cut != SIZE_MAX) {
        if (cut > cap) cut = cap; /* cannot happen when cap >= mlxr_stopmatch_need() */
        if (cut) memcpy(out, m->pend, cut);
        *n_out = cut;
        m->pend_len = 0;
        m->stopped = true;
        return true;
    }
    size_t emit = complete - held_tail(m, m->pend, complete);
    if (emit > cap) emit = cap;
    if (emit) memcpy(out, m->pend, emit);
    memmove(m->pend, m->pend + emit, m->pend_len - emit);
    m->pend_len -= emit;
    *n_out = emit;
    return false;
}

void mlxr_stopmatch_flush(mlxr_stopmatch *m, char *out, size_t cap, size_t *n_out) {
    size_t n = m->stopped ? 0 : m->pend_len;
    if (n > cap) n = cap;
    if (n) memcpy(out, m->pend, n);
    m->pend_len = 0;
    *n_out = n;
}
