/*
 * strbuf.h - a growing, always NUL-terminated string for building text (Prometheus metrics,
 * Modelfile text, tokenizer signatures). Allocation failure sets `oom` and makes every later
 * call a no-op, so callers check once at the end (mlxr_strbuf_done). Header-only: the daemon
 * (not part of libmlxr) uses it too.
 */
#ifndef MLXR_UTIL_STRBUF_H
#define MLXR_UTIL_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mlxr_strbuf {
    char *p; /* NULL until the first byte (or mlxr_strbuf_done) */
    size_t len, cap;
    bool oom;
} mlxr_strbuf;

/* Room for `extra` more bytes plus the terminating NUL. */
static inline bool mlxr_strbuf_reserve(mlxr_strbuf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = (b->len + extra + 1) * 2;
    char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

static inline void mlxr_strbuf_add(mlxr_strbuf *b, const char *s, size_t n) {
    if (!mlxr_strbuf_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void mlxr_strbuf_str(mlxr_strbuf *b, const char *s) {
    mlxr_strbuf_add(b, s, strlen(s));
}

static inline void mlxr_strbuf_printf(mlxr_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void mlxr_strbuf_printf(mlxr_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) b->oom = true;
    if (n < 0 || !mlxr_strbuf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The text (malloc'ed, "" when nothing was added; the caller frees it), or NULL after an
 * allocation failure (the buffer is freed). */
static inline char *mlxr_strbuf_done(mlxr_strbuf *b) {
    if (!b->oom && !b->p) mlxr_strbuf_add(b, "", 0);
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    return b->p;
}

#endif
