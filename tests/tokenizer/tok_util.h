/*
 * tok_util.h - helpers shared by the tokenizer tests: load a vocabulary from the test data and
 * tokenize into a malloc'ed id list (static inline so a test that uses only some of them does
 * not warn).
 */
#ifndef MLXR_TESTS_TOK_UTIL_H
#define MLXR_TESTS_TOK_UTIL_H

#include "format/gguf.h"
#include "test.h"
#include "tokenizer/vocab.h"

#include <stdio.h>
#include <stdlib.h>

/* The vocabulary of the GGUF file at `rel` under the test data (NULL, with a message, on
 * failure). The GGUF is closed at once: the vocabulary keeps its own copies. */
static inline mlxr_vocab *tok_load_rel(const char *rel) {
    char *path = test_data_path(rel);
    mlxr_gguf *g = NULL;
    mlxr_vocab *v = NULL;
    mlxr_err err = {0};
    if (mlxr_gguf_open(path, &g, &err) || mlxr_vocab_load_gguf(g, &v, &err))
        fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
    mlxr_gguf_close(g);
    free(path);
    return v;
}

/* tokenizer/ggml-vocab-NAME.gguf */
static inline mlxr_vocab *tok_load_vocab(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "tokenizer/ggml-vocab-%s.gguf", name);
    return tok_load_rel(rel);
}

/* A list of ids (malloc'ed). */
typedef struct ids {
    int32_t *a;
    size_t n;
} ids;

/* Tokenize with the size query first, as callers of the API do; a failing call gives an empty
 * list (and a message); the second call must agree with the first. */
static inline ids tok_ids(const mlxr_vocab *v, const char *s, size_t len, bool add_special,
                          bool parse_special) {
    ids r = {0};
    mlxr_err err = {0};
    mlxr_status st =
        mlxr_vocab_tokenize(v, s, len, add_special, parse_special, NULL, 0, &r.n, &err);
    if (st != MLXR_OK && st != MLXR_ERR_RANGE) {
        fprintf(stderr, "tokenize failed: %s\n", err.msg);
        r.n = 0;
        return r;
    }
    r.a = malloc((r.n ? r.n : 1) * sizeof *r.a);
    size_t n2 = 0;
    st = mlxr_vocab_tokenize(v, s, len, add_special, parse_special, r.a, r.n, &n2, &err);
    CHECK(st == MLXR_OK && n2 == r.n, "second call: %s", err.msg);
    return r;
}

#endif
