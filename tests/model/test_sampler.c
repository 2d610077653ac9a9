/*
 * test_sampler.c - sampling: greedy is the argmax (lowest id on ties); a seed reproduces a run;
 * top-k 1, tiny top-p and min-p 1 reduce to greedy; draws follow the softmax of logits/temp
 * (chi-square-style bound on frequencies); top-k/top-p/min-p never return a filtered token;
 * the repetition penalty divides positive and multiplies negative logits of recent tokens.
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
    return test_finish("model_sampler");
}
