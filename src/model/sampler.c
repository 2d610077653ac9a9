/*
 * sampler.c - choosing the next token from logits: logit bias, repetition penalty, presence and
 * frequency penalties, then top-k, top-p, min-p, temperature and a seeded draw, in llama.cpp's
 * default order (the filters see the temperature-1 distribution; temperature scales what is
 * left). temp <= 0 is greedy: the highest logit after bias and penalties, lowest id on ties.
 *
 * Presence/frequency penalties follow OpenAI: logit -= presence * (count > 0) + frequency *
 * count, with count the times the token was generated so far. Only generated tokens count: the
 * tokens accepted before the first mlxr_sampler_sample are the prompt (they feed the repetition
 * penalty's window only).
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
    mlxr_logit_bias *bias; /* [o.n_logit_bias] own copy (o.logit_bias points at it) */
    int32_t *count;  /* [n_vocab] times each token was generated; NULL without those penalties */
    bool generating; /* mlxr_sampler_sample ran once: accepted tokens are generated ones */
};

mlxr_sampler_opts mlxr_sampler_default_opts(void) {
    mlxr_sampler_opts o;
    memset(&o, 0, sizeof o); /* new fields: zero is off */
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
    if (!isfinite(o->presence_penalty) || !isfinite(o->frequency_penalty))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "presence and frequency penalties must be finite");
    if (o->n_logit_bias < 0 || (o->n_logit_bias > 0 && !o->logit_bias))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "bad logit bias list (%d entries)",
                         o->n_logit_bias);
    for (int32_t i = 0; i < o->n_logit_bias; i++) {
        const mlxr_logit_bias *b = &o->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "logit bias token %d outside 0..%d", b->token,
                             n_vocab - 1);
        if (!(b->bias >= -100.0f && b->bias <= 100.0f))
            return MLXR_FAIL(err, MLXR_ERR_RANGE, "logit bias %g for token %d outside -100..100",
                             (double)b->bias, b->token);
    }
    mlxr_sampler *s = calloc(1, sizeof *s);
    if (!s) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for sampler");
    s->o = *o;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->seen = calloc((size_t)n_vocab, 1);
    s->recent = malloc(((size_t)o->repeat_last_n + 1) * sizeof *s->recent);
    s->bias = malloc(((size_t)o->n_logit_bias + 1) * sizeof *s->bias);
    if (o->presence_penalty != 0.0f || o->frequency_penalty != 0.0f)
        s->count = calloc((size_t)n_vocab, sizeof *s->count);
    if (!s->cands || !s->seen || !s->recent || !s->bias ||
        (!s->count && (o->presence_penalty != 0.0f || o->frequency_penalty != 0.0f))) {
        mlxr_sampler_free(s);
        return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory for sampler");
    }
    if (o->n_logit_bias > 0)
        memcpy(s->bias, o->logit_bias, (size_t)o->n_logit_bias * sizeof *s->bias);
    s->o.logit_bias = s->bias;
    mlxr_rng_seed(&s->rng, o->seed);
    *out = s;
    return MLXR_OK;
}

void mlxr_sampler_free(mlxr_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->seen);
    free(s->recent);
    free(s->bias);
    free(s->count);
    free(s);
}

void mlxr_sampler_accept(mlxr_sampler *s, int32_t token) {
    if (!s) return;
    if (s->count && s->generating && token >= 0 && token < s->n_vocab &&
        s->count[token] < INT32_MAX)
        s->count[token]++;
    if (s->o.repeat_last_n == 0) return;
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

/* Logit bias, then presence/frequency (after apply_penalty, as llama.cpp's penalties sampler). */
static void apply_bias(mlxr_sampler *s) {
    for (int32_t i = 0; i < s->o.n_logit_bias; i++)
        s->cands[s->bias[i].token].logit += s->bias[i].bias;
}

static void apply_presence(mlxr_sampler *s) {
    if (!s->count) return;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (s->count[i] > 0)
            s->cands[i].logit -=
                s->o.presence_penalty + s->o.frequency_penalty * (float)s->count[i];
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
    s->generating = true;
    apply_bias(s);
    apply_penalty(s);
    apply_presence(s);
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

/* True when (lp_a, a) ranks before (lp_b, b): higher log-probability, then lower id. */
static bool ranks_before(float lp_a, int32_t a, float lp_b, int32_t b) {
    return lp_a > lp_b || (lp_a == lp_b && a < b);
}

mlxr_status mlxr_sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token,
                                  int32_t n_top, int32_t *top_ids, float *top_lp, float *token_lp,
                                  mlxr_err *err) {
    if (!logits || n_vocab <= 0 || n_top < 0 || n_top > n_vocab || (n_top > 0 && (!top_ids ||
        !top_lp)) || (token_lp && (token < 0 || token >= n_vocab)))
        return MLXR_FAIL(err, MLXR_ERR_INVALID, "bad logprobs arguments (token %d, n_top %d of %d)",
                         token, n_top, n_vocab);
    /* log-softmax with the maximum subtracted; the sum in double (up to 256k terms) */
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (!isnan(logits[i]) && logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    if (mx > -INFINITY)
        for (int32_t i = 0; i < n_vocab; i++)
            if (!isnan(logits[i])) sum += exp((double)logits[i] - (double)mx);
    /* every logit -inf or NaN: no distribution; every token gets -inf */
    const double lse = mx > -INFINITY ? (double)mx + log(sum) : INFINITY;
#define LP(i) (isnan(logits[i]) ? -INFINITY : (float)((double)logits[i] - lse))
    if (token_lp) *token_lp = LP(token);
    /* the n_top best by insertion into a sorted prefix: O(n_vocab * n_top), n_top is small */
    int32_t k = 0;
    for (int32_t i = 0; i < n_vocab && n_top > 0; i++) {
        const float lp = LP(i);
        if (k == n_top && !ranks_before(lp, i, top_lp[k - 1], top_ids[k - 1])) continue;
        int32_t j = k < n_top ? k++ : k - 1;
        while (j > 0 && ranks_before(lp, i, top_lp[j - 1], top_ids[j - 1])) {
            top_lp[j] = top_lp[j - 1];
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_lp[j] = lp;
        top_ids[j] = i;
    }
#undef LP
    return MLXR_OK;
}
