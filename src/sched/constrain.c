/*
 * constrain.c - a request's token choice under its constraints (engine thread): JSON mode
 * (json_constraint.h over each token's piece bytes) and the log-probabilities reported with
 * each token.
 *
 * JSON mode samples first and checks only the token drawn; most steps the model's own choice
 * is valid and costs one check. Otherwise every token is tried on a copy of the recognizer
 * state, the invalid ones get -inf, and the sampler draws again from the masked row (as
 * llama.cpp does with grammars). Tokens with no bytes (control tokens, EOG) never continue a
 * JSON text: the request ends when the text closes, not by EOG.
 */
#include "sched/sched.h"

#include "model/model.h"
#include "util/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every token's piece bytes, once per engine (the first JSON request builds them). */
static mlxr_status build_pieces(mlxr_engine *e, mlxr_err *err) {
    const size_t V = (size_t)e->n_vocab;
    uint32_t *off = malloc((V + 1) * sizeof *off);
    size_t cap = V * 4 + 64, len = 0;
    char *bytes = malloc(cap);
    e->piece_ok = malloc(V * sizeof *e->piece_ok);
    e->masked = malloc(V * sizeof *e->masked);
    mlxr_status st = MLXR_OK;
    if (!off || !bytes || !e->piece_ok || !e->masked) goto nomem;
    for (size_t i = 0; i < V; i++) {
        off[i] = (uint32_t)len;
        size_t n = 0;
        for (;;) {
            st = mlxr_token_to_piece(e->m, (int32_t)i, bytes + len, cap - len, &n, err);
            if (st == MLXR_OK) break;
            if (st != MLXR_ERR_RANGE) goto fail_st;
            if (n > UINT32_MAX - len - 64) goto nomem;
            char *p = realloc(bytes, cap * 2 + n);
            if (!p) goto nomem;
            bytes = p;
            cap = cap * 2 + n;
        }
        len += n;
        if (len > UINT32_MAX - 1024) goto nomem;
    }
    off[V] = (uint32_t)len;
    e->piece_off = off;
    e->piece_bytes = bytes;
    return MLXR_OK;
nomem:
    free(off);
    free(bytes);
    return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for the vocabulary's %zu pieces", V);
fail_st:
    free(off);
    free(bytes);
    return st;
}

/* Whether token t can follow the JSON text so far (the state is not changed). */
static bool token_fits(const mlxr_engine *e, const mlxr_req *r, int32_t t) {
    const uint32_t a = e->piece_off[t], b = e->piece_off[t + 1];
    if (a == b) return false; /* no bytes: control tokens, EOG */
    mlxr_jsonc s = r->json;
    return mlxr_jsonc_feed(&s, e->piece_bytes + a, b - a);
}

int32_t mlxr_sched_pick(mlxr_engine *e, mlxr_req *r, const float *logits, mlxr_err *err) {
    int32_t tok = mlxr_sampler_sample(r->smp, logits);
    if (!r->json_mode) return tok;
    if (!e->piece_off && build_pieces(e, err) != MLXR_OK) return -1;
    if (!token_fits(e, r, tok)) {
        int32_t n_ok = 0;
        for (int32_t t = 0; t < e->n_vocab; t++) {
            const bool ok = token_fits(e, r, t);
            e->masked[t] = ok ? logits[t] : -INFINITY;
            n_ok += ok;
        }
        if (n_ok == 0) {
            MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "JSON mode: no token of the vocabulary can "
                      "continue the JSON text");
            return -1;
        }
        tok = mlxr_sampler_sample(r->smp, e->masked);
        if (!token_fits(e, r, tok)) { /* only if a valid token's logit was NaN or -inf */
            for (int32_t t = 0; t < e->n_vocab; t++)
                if (e->masked[t] > -INFINITY) tok = t;
            if (!token_fits(e, r, tok)) {
                MLXR_FAIL(err, MLXR_ERR_UNSUPPORTED, "JSON mode: every token that can continue "
                          "the JSON text has logit -inf");
                return -1;
            }
        }
    }
    const uint32_t a = e->piece_off[tok];
    mlxr_jsonc_feed(&r->json, e->piece_bytes + a, e->piece_off[tok + 1] - a);
    return tok;
}

bool mlxr_sched_token_info(mlxr_req *r, const float *logits, int32_t n_vocab, int32_t tok,
                           mlxr_token_info *info, int32_t *top_ids, float *top_lp) {
    memset(info, 0, sizeof *info);
    info->token = tok;
    if (!r->logprobs) return true;
    float lp = 0;
    if (mlxr_sampler_logprobs(logits, n_vocab, tok, r->n_top, top_ids, top_lp, &lp, NULL) !=
        MLXR_OK)
        return false;
    info->logprob = lp;
    info->n_top = r->n_top;
    info->top_ids = top_ids;
    info->top_logprobs = top_lp;
    return true;
}
