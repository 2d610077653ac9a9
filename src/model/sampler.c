/*
 * sampler.c - choosing the next token from logits: repetition penalty, then top-k, top-p,
 * min-p, temperature and a seeded draw, in llama.cpp's default order (the filters see the
 * temperature-1 distribution; temperature scales what is left). temp <= 0 is greedy: the
 * highest logit after the penalty, lowest id on ties.
 *
 * The generator is xoshiro256** seeded through splitmix64, so a seed reproduces a run exactly.
 */
#include "mlxr.h"
#include "util/err.h"
#include "util/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    int32_t id;
    float logit;
    float p;
} cand;

struct mlxr_sampler {
    mlxr_sampler_opts o;
    int32_t n_vocab;
    mlxr_rng rng;
    cand *cands;     /* [n_vocab] */
    int32_t *recent; /* ring of the last repeat_last_n tokens */
    int32_t n_recent, recent_head;
    uint8_t *seen;   /* [n_vocab] scratch for the penalty */
};

mlxr_sampler_opts mlxr_sampler_default_opts(void) {
    mlxr_sampler_opts o;
    o.temp = 0.8f;
    o.top_k = 40;
    o.top_p = 0.95f;
    o.min_p = 0.05f;
    o.repeat_penalty = 1.0f;
    o.repeat_last_n = 64;
    o.seed = 0;
    return o;
}

mlxr_status mlxr_sampler_new(const mlxr_sampler_opts *o, int32_t n_vocab, mlxr_sampler **out,
                             mlxr_err *err) {
    if (!o || !out || n_vocab <= 0) return MLXR_FAIL(err, MLXR_ERR_INVALID, "bad sampler arguments");
    *out = NULL;
    if (isnan(o->temp) || isnan(o->top_p) || isnan(o->min_p) || !(o->repeat_penalty > 0.0f))
        return MLXR_FAIL(err, MLXR_ERR_INVALID,
                         "sampler values must be numbers and repeat penalty > 0");
    if (o->repeat_last_n < 0 || o->repeat_last_n > (1 << 20))
        return MLXR_FAIL(err, MLXR_ERR_RANGE, "repeat_last_n %d out of range", o->repeat_last_n);
    mlxr_sampler *s = calloc(1, sizeof *s);
    if (!s) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for sampler");
    s->o = *o;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->seen = calloc((size_t)n_vocab, 1);
    s->recent = malloc(((size_t)o->repeat_last_n + 1) * sizeof *s->recent);
    if (!s->cands || !s->seen || !s->recent) {
        mlxr_sampler_free(s);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for sampler");
    }
    mlxr_rng_seed(&s->rng, o->seed);
    *out = s;
    return MLXR_OK;
}

void mlxr_sampler_free(mlxr_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->seen);
    free(s->recent);
    free(s);
}

void mlxr_sampler_accept(mlxr_sampler *s, int32_t token) {
    if (!s || s->o.repeat_last_n == 0) return;
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % s->o.repeat_last_n;
    if (s->n_recent < s->o.repeat_last_n) s->n_recent++;
}

/* Descending by logit, ascending id on ties (so greedy picks the lowest id). */
static int cmp_cand(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Probabilities of the first n candidates (sorted) at temperature t. */
static void softmax_cands(cand *c, int32_t n, float t) {
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - c[0].logit) / t);
        sum += c[i].p;
    }
    for (int32_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

static void apply_penalty(mlxr_sampler *s) {
    const float pen = s->o.repeat_penalty;
    if (pen == 1.0f || s->n_recent == 0) return;
    for (int32_t i = 0; i < s->n_recent; i++) {
        int32_t id = s->recent[i];
        if (id < 0 || id >= s->n_vocab || s->seen[id]) continue;
        s->seen[id] = 1;
        float *l = &s->cands[id].logit;
        *l = *l > 0.0f ? *l / pen : *l * pen;
    }
    for (int32_t i = 0; i < s->n_recent; i++) {
        int32_t id = s->recent[i];
        if (id >= 0 && id < s->n_vocab) s->seen[id] = 0;
    }
}

int32_t mlxr_sampler_sample(mlxr_sampler *s, const float *logits) {
    const int32_t V = s->n_vocab;
    for (int32_t i = 0; i < V; i++) {
        s->cands[i].id = i;
        s->cands[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
    }
    apply_penalty(s);
    if (s->o.temp <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < V; i++)
            if (s->cands[i].logit > s->cands[best].logit) best = i;
        return best;
    }
    int32_t n = V;
    if (s->o.top_k > 0 && s->o.top_k < n) n = s->o.top_k;
    /* sort only what top-k keeps: partial selection would be faster, but V is small here */
    qsort(s->cands, (size_t)V, sizeof *s->cands, cmp_cand);
    if (s->o.top_p < 1.0f) {
        softmax_cands(s->cands, n, 1.0f);
        double cum = 0.0;
        for (int32_t i = 0; i < n; i++) {
            cum += s->cands[i].p;
            if (cum >= s->o.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (s->o.min_p > 0.0f) {
        /* keep tokens whose probability is at least min_p times the top one's */
        const float floor_logit = s->cands[0].logit + logf(s->o.min_p);
        int32_t k = 1;
        while (k < n && s->cands[k].logit >= floor_logit) k++;
        n = k;
    }
    softmax_cands(s->cands, n, s->o.temp);
    double u = (double)(mlxr_rng_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0), cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += s->cands[i].p;
        if (u < cum) return s->cands[i].id;
    }
    return s->cands[n - 1].id;
}
