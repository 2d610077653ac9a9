/*
 * fuzz_vocab_use.h - what the tokenizer-file harnesses (fuzz_spm_model.c, fuzz_hf_tokjson.c)
 * check on a vocabulary that loaded: it tokenizes a fixed text (or refuses with a message: a
 * vocabulary may lack what the text needs, e.g. byte pieces or UNK) with ids in range, and
 * detokenizes them. A broken invariant traps, so the fuzzer reports it as a crash.
 */
#ifndef MLXR_FUZZ_VOCAB_USE_H
#define MLXR_FUZZ_VOCAB_USE_H

#include "tokenizer/detok.h"
#include "tokenizer/vocab.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Use v on text[0..n) as described above, then free it. */
static void fuzz_use_vocab(mlxr_vocab *v, const char *text, size_t n) {
    int32_t ids[256];
    size_t n_ids = 0;
    mlxr_err terr;
    terr.msg[0] = '\0';
    mlxr_status st = mlxr_vocab_tokenize(v, text, n, true, true, ids, 256, &n_ids, &terr);
    REQUIRE(st == MLXR_OK || st == MLXR_ERR_RANGE || terr.msg[0] != '\0');
    if (st == MLXR_OK) {
        for (size_t i = 0; i < n_ids; i++) REQUIRE(ids[i] >= 0 && ids[i] < mlxr_vocab_n_tokens(v));
        char out[4096];
        size_t len = 0;
        (void)mlxr_vocab_detokenize(v, ids, n_ids, true, out, sizeof out, &len, NULL);
    }
    mlxr_vocab_free(v);
}

#endif
