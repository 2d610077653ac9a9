/*
 * test_sampler.c - sampling: greedy is the argmax (lowest id on ties); a seed reproduces a run;
 * top-k 1, tiny top-p and min-p 1 reduce to greedy; draws follow the softmax of logits/temp
 * (chi-square-style bound on frequencies); top-k/top-p/min-p never return a filtered token;
 * the repetition penalty divides positive and multiplies negative logits of recent tokens;
 * logit bias and presence/frequency penalties against a brute-force reference (greedy picks over
 * random steps; prompt tokens not counted); log-probabilities against a double-precision
 * logsumexp reference, top lists sorted and complete.
 */
#include "test.h"

#include <math.h>

#include "mlxr.h"

#define V 64

static mlxr_sampler *make(mlxr_sampler_opts o) {
    mlxr_sampler *s = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_sampler_new(&o, V, &s, &err) == MLXR_OK, "sampler_new: %s", err.msg);
    return s;
}

static mlxr_sampler_opts greedy_opts(void) {
    mlxr_sampler_opts o = mlxr_sampler_default_opts();
    o.temp = 0;
    return o;
}

/* Greedy with bias and presence/frequency penalties vs a reference that applies them to a copy
 * of the logits in double, over random steps where the logits change every step. */
static void test_bias_presence(uint64_t *rng) {
    for (int trial = 0; trial < 20; trial++) {
        mlxr_logit_bias bias[8];
        const int nb = (int)(test_rng_u64(rng) % 8);
        for (int i = 0; i < nb; i++) {
            bias[i].token = (int32_t)(test_rng_u64(rng) % V);
            bias[i].bias = test_rng_f32(rng, -3, 3);
        }
        mlxr_sampler_opts o = greedy_opts();
        o.presence_penalty = test_rng_f32(rng, -2, 2);
        o.frequency_penalty = test_rng_f32(rng, -2, 2);
        o.logit_bias = bias;
        o.n_logit_bias = nb;
        mlxr_sampler *s = make(o);
        if (!s) return;
        float keep[8];
        for (int i = 0; i < nb; i++) {
            keep[i] = bias[i].bias;
            bias[i].bias = 1e6f; /* the sampler must use its own copy */
        }
        int count[V] = {0};
        /* prompt tokens: accepted before the first sample, never counted */
        for (int i = 0; i < 5; i++) mlxr_sampler_accept(s, (int32_t)(test_rng_u64(rng) % V));
        for (int step = 0; step < 40; step++) {
            float logits[V];
            double ref[V];
            for (int i = 0; i < V; i++) {
                logits[i] = test_rng_f32(rng, -4, 4);
                ref[i] = logits[i];
            }
            for (int i = 0; i < nb; i++) ref[bias[i].token] += keep[i];
            for (int i = 0; i < V; i++)
                ref[i] -=
                    (count[i] > 0 ? o.presence_penalty : 0.0) + o.frequency_penalty * count[i];
            int best = 0;
            for (int i = 1; i < V; i++)
                if (ref[i] > ref[best]) best = i;
            int second = best == 0 ? 1 : 0;
            for (int i = 0; i < V; i++)
                if (i != best && ref[i] > ref[second]) second = i;
            const int got = mlxr_sampler_sample(s, logits);
            /* float vs double: only a near-tie could flip the pick */
            if (ref[best] - ref[second] > 1e-4)
                CHECK(got == best, "trial %d step %d: picked %d, reference %d (%.6f vs %.6f)",
                      trial, step, got, best, ref[got], ref[best]);
            mlxr_sampler_accept(s, got);
            count[got]++;
        }
        mlxr_sampler_free(s);
    }
    /* -100 bans the greedy token, +100 forces another, whatever the temperature */
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = test_rng_f32(rng, -5, 5);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    mlxr_logit_bias ban = {best, -100.0f}, force = {(best + 17) % V, 100.0f};
    mlxr_sampler_opts o = greedy_opts();
    o.logit_bias = &ban;
    o.n_logit_bias = 1;
    mlxr_sampler *s = make(o);
    CHECK(s && mlxr_sampler_sample(s, logits) != best, "-100 bans the argmax");
    mlxr_sampler_free(s);
    o = mlxr_sampler_default_opts();
    o.temp = 1.5f;
    o.seed = test_rng_u64(rng);
    o.logit_bias = &force;
    o.n_logit_bias = 1;
    s = make(o);
    int forced = 0;
    for (int i = 0; s && i < 100; i++) forced += mlxr_sampler_sample(s, logits) == force.token;
    CHECK(forced == 100, "+100 forces token %d (%d/100)", force.token, forced);
    mlxr_sampler_free(s);
    /* bad bias lists and penalties */
    mlxr_sampler *x = NULL;
    mlxr_logit_bias bad_tok = {V, 1.0f}, bad_val = {3, 100.5f};
    o = greedy_opts();
    o.logit_bias = &bad_tok;
    o.n_logit_bias = 1;
    CHECK(mlxr_sampler_new(&o, V, &x, NULL) == MLXR_ERR_RANGE && !x, "bias token out of range");
    o.logit_bias = &bad_val;
    CHECK(mlxr_sampler_new(&o, V, &x, NULL) == MLXR_ERR_RANGE && !x, "bias > 100");
    o.logit_bias = NULL;
    CHECK(mlxr_sampler_new(&o, V, &x, NULL) == MLXR_ERR_INVALID && !x, "NULL bias list");
    o = greedy_opts();
    o.presence_penalty = INFINITY;
    CHECK(mlxr_sampler_new(&o, V, &x, NULL) == MLXR_ERR_INVALID && !x, "infinite presence");
}

/* Log-probabilities vs log-softmax in double; top lists sorted, ties by id. */
static void test_logprobs(uint64_t *rng) {
    for (int trial = 0; trial < 50; trial++) {
        float logits[V];
        for (int i = 0; i < V; i++) logits[i] = test_rng_f32(rng, -30, 30);
        if (trial % 5 == 1) logits[trial % V] = -INFINITY;
        if (trial % 5 == 2) logits[(trial + 3) % V] = logits[(trial + 4) % V]; /* a tie */
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < V; i++)
            if (logits[i] > mx) mx = logits[i];
        for (int i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
        const double lse = mx + log(sum);
        const int tok = (int)(test_rng_u64(rng) % V), n_top = (int)(test_rng_u64(rng) % 21);
        int32_t ids[V];
        float lps[V], lp = 0;
        mlxr_err err = {0};
        CHECK(mlxr_sampler_logprobs(logits, V, tok, n_top, ids, lps, &lp, &err) == MLXR_OK, "%s",
              err.msg);
        const double want = logits[tok] - lse;
        CHECK(isinf(want) ? isinf(lp) && lp < 0 : fabs(lp - want) < 1e-5 * (1 + fabs(want)),
              "token %d: logprob %.7f, reference %.7f", tok, lp, want);
        /* reference top list: selection by (value desc, id asc) */
        bool used[V] = {false};
        for (int k = 0; k < n_top; k++) {
            int b = -1;
            for (int i = 0; i < V; i++)
                if (!used[i] && (b < 0 || logits[i] > logits[b])) b = i;
            used[b] = true;
            CHECK(ids[k] == b, "trial %d top %d: id %d, reference %d", trial, k, ids[k], b);
            const double w = logits[b] - lse;
            CHECK(isinf(w) ? isinf(lps[k]) : fabs(lps[k] - w) < 1e-5 * (1 + fabs(w)),
                  "top %d logprob %.7f vs %.7f", k, lps[k], w);
        }
    }
    float all_bad[V];
    for (int i = 0; i < V; i++) all_bad[i] = NAN;
    float lp = 0;
    int32_t id;
    float tl;
    CHECK(mlxr_sampler_logprobs(all_bad, V, 3, 1, &id, &tl, &lp, NULL) == MLXR_OK && isinf(lp) &&
              isinf(tl), "all-NaN logits: -inf everywhere");
    CHECK(mlxr_sampler_logprobs(all_bad, V, V, 0, NULL, NULL, &lp, NULL) == MLXR_ERR_INVALID,
          "token out of range");
    CHECK(mlxr_sampler_logprobs(all_bad, V, 0, V + 1, &id, &tl, NULL, NULL) == MLXR_ERR_INVALID,
          "n_top > n_vocab");
}

int main(void) {
    uint64_t rng = test_seed();
    float logits[V];
    for (int i = 0; i < V; i++) logits[i] = test_rng_f32(&rng, -5, 5);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;

    mlxr_sampler *s = make(greedy_opts());
    CHECK(s && mlxr_sampler_sample(s, logits) == best, "greedy picks the argmax");
    float ties[V];
    for (int i = 0; i < V; i++) ties[i] = i == 7 || i == 9 ? 3.0f : 0.0f;
    CHECK(s && mlxr_sampler_sample(s, ties) == 7, "greedy tie -> lowest id");
    mlxr_sampler_free(s);

    /* filters that leave one candidate are greedy at any temperature */
    mlxr_sampler_opts o = mlxr_sampler_default_opts();
    o.temp = 5.0f;
    o.top_k = 1;
    o.seed = 3;
    s = make(o);
    int ok = 0;
    for (int i = 0; s && i < 50; i++) ok += mlxr_sampler_sample(s, logits) == best;
    CHECK(ok == 50, "top-k 1");
    mlxr_sampler_free(s);
    o.top_k = 0;
    o.top_p = 1e-6f;
    s = make(o);
    ok = 0;
    for (int i = 0; s && i < 50; i++) ok += mlxr_sampler_sample(s, logits) == best;
    CHECK(ok == 50, "top-p tiny");
    mlxr_sampler_free(s);
    o.top_p = 1.0f;
    o.min_p = 1.0f;
    s = make(o);
    ok = 0;
    for (int i = 0; s && i < 50; i++) ok += mlxr_sampler_sample(s, logits) == best;
    CHECK(ok == 50, "min-p 1");
    mlxr_sampler_free(s);

    /* the same seed gives the same sequence; another seed (almost surely) does not */
    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.top_k = 0;
    so.top_p = 1;
    so.min_p = 0;
    so.temp = 1.5f;
    so.seed = 1234;
    mlxr_sampler *a = make(so), *b = make(so);
    so.seed = 1235;
    mlxr_sampler *c = make(so);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 200; i++) {
        int x = mlxr_sampler_sample(a, logits), y = mlxr_sampler_sample(b, logits);
        same_ab += x == y;
        same_ac += x == mlxr_sampler_sample(c, logits);
    }
    CHECK(same_ab == 200, "same seed reproduces (%d/200)", same_ab);
    CHECK(same_ac < 200, "another seed differs");
    mlxr_sampler_free(a);
    mlxr_sampler_free(b);
    mlxr_sampler_free(c);

    /* frequencies follow softmax(logits / temp) */
    float small[V];
    for (int i = 0; i < V; i++) small[i] = i < 4 ? (float)i * 0.5f : -1e9f;
    so.seed = test_rng_u64(&rng);
    so.temp = 0.7f;
    s = make(so);
    int hist[4] = {0};
    const int N = 40000;
    int outside = 0;
    for (int i = 0; i < N; i++) {
        int t = mlxr_sampler_sample(s, small);
        if (t >= 0 && t < 4) hist[t]++;
        else outside++;
    }
    CHECK(outside == 0, "sampled %d tokens with logit -1e9", outside);
    double z = 0;
    for (int i = 0; i < 4; i++) z += exp(i * 0.5 / 0.7);
    for (int i = 0; i < 4; i++) {
        double p = exp(i * 0.5 / 0.7) / z, sd = sqrt(N * p * (1 - p));
        CHECK(fabs(hist[i] - N * p) < 5 * sd, "token %d drawn %d times, expected %.0f +- %.0f", i,
              hist[i], N * p, sd);
    }
    mlxr_sampler_free(s);

    /* top-k 3 / top-p 0.5 / min-p 0.5 only ever return tokens that pass the filter */
    float lin[V];
    for (int i = 0; i < V; i++) lin[i] = (float)(V - i) * 0.3f; /* token 0 best */
    mlxr_sampler_opts f = mlxr_sampler_default_opts();
    f.top_k = 3;
    f.top_p = 1;
    f.min_p = 0;
    f.temp = 3;
    s = make(f);
    int worst = 0;
    for (int i = 0; i < 2000; i++) {
        int t = mlxr_sampler_sample(s, lin);
        if (t > worst) worst = t;
    }
    CHECK(worst <= 2 && worst >= 1, "top-k 3 returned up to %d", worst);
    mlxr_sampler_free(s);
    f.top_k = 0;
    f.min_p = 0.5f; /* keeps p >= 0.5 p_max: logit >= max - ln 2, i.e. tokens 0..2 */
    s = make(f);
    worst = 0;
    for (int i = 0; i < 2000; i++) {
        int t = mlxr_sampler_sample(s, lin);
        if (t > worst) worst = t;
    }
    CHECK(worst == 2, "min-p 0.5 returned up to %d", worst);
    mlxr_sampler_free(s);

    /* repetition penalty: token `best` penalised below the runner-up */
    mlxr_sampler_opts r = greedy_opts();
    r.repeat_penalty = 1e3f;
    r.repeat_last_n = 4;
    s = make(r);
    float pen[V];
    for (int i = 0; i < V; i++) pen[i] = i == 5 ? 2.0f : i == 6 ? 1.0f : i == 8 ? -0.5f : -1.0f;
    mlxr_sampler_accept(s, 5);
    CHECK(mlxr_sampler_sample(s, pen) == 6, "penalised token loses");
    mlxr_sampler_accept(s, 6);
    /* 5 and 6 are both penalised (2/1000, 1/1000); all negatives stay below them */
    CHECK(mlxr_sampler_sample(s, pen) == 5, "penalty divides positive logits");
    for (int i = 0; i < 4; i++) mlxr_sampler_accept(s, 40);
    CHECK(mlxr_sampler_sample(s, pen) == 5, "penalty window forgets old tokens");
    mlxr_sampler_free(s);

    /* bad options are rejected */
    mlxr_sampler_opts bad = greedy_opts();
    bad.repeat_penalty = 0;
    mlxr_sampler *x = NULL;
    CHECK(mlxr_sampler_new(&bad, V, &x, NULL) == MLXR_ERR_INVALID && !x, "penalty 0 rejected");
    bad = greedy_opts();
    bad.top_p = NAN;
    CHECK(mlxr_sampler_new(&bad, V, &x, NULL) == MLXR_ERR_INVALID, "NaN rejected");
    CHECK(mlxr_sampler_new(&bad, 0, &x, NULL) == MLXR_ERR_INVALID, "empty vocab rejected");
    mlxr_sampler_free(NULL);
    test_bias_presence(&rng);
    test_logprobs(&rng);
    return test_finish("model_sampler");
}
