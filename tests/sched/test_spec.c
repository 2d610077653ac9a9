/*
 * test_spec.c - speculative decoding gives the tokens of plain decoding:
 *  - draft model (pydoc-7M Q8_0) for a target (pydoc-7M F16) with the same vocabulary, greedy;
 *  - prompt lookup (no draft model), greedy;
 *  - sampling (temperature 0.8, fixed seed): the same tokens as plain sampled decoding;
 * and the statistics add up (every emitted token is an accepted draft or a target pass).
 * Contexts use the default (tiled) numerics: mlxr_spec_generate runs its verify batches
 * batch-invariant, so their logits equal those of one-token steps bitwise.
 */
#include "test.h"

#include "mlxr.h"

#define N_GEN 40

typedef struct out {
    int32_t t[N_GEN + 8];
    int n;
} out;

static bool collect(void *user, uint64_t id, int32_t tok) {
    out *o = user;
    (void)id;
    o->t[o->n++] = tok;
    return true;
}

static mlxr_context *ctx(mlxr_model *m) {
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = 256;
    o.n_batch = 64;
    o.n_threads = 2;
    o.n_gpu_layers = test_gpu_layers();
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_OK, "context: %s", err.msg);
    return c;
}

/* Plain decoding: prompt, then one token per step, stopping at EOG or N_GEN. */
static void plain(mlxr_model *m, const int32_t *p, int np, const mlxr_sampler_opts *so, out *o) {
    mlxr_context *c = ctx(m);
    mlxr_sampler *s = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_sampler_new(so, mlxr_model_get_info(m)->n_vocab, &s, &err) == MLXR_OK, "sampler");
    int32_t pos[256], seq[256] = {0};
    for (int i = 0; i < 256; i++)
        pos[i] = i;
    mlxr_batch b = {np, p, pos, seq, NULL};
    CHECK(mlxr_decode(c, &b, &err) == MLXR_OK, "prompt: %s", err.msg);
    for (int i = 0; i < np; i++)
        mlxr_sampler_accept(s, p[i]);
    int last = np - 1, at = np;
    o->n = 0;
    while (o->n < N_GEN) {
        int32_t tok = mlxr_sampler_sample(s, mlxr_get_logits(c, last));
        mlxr_sampler_accept(s, tok);
        if (mlxr_token_is_eog(m, tok)) break;
        o->t[o->n++] = tok;
        mlxr_batch one = {1, &tok, &pos[at++], seq, NULL};
        CHECK(mlxr_decode(c, &one, &err) == MLXR_OK, "step: %s", err.msg);
        last = 0;
    }
    mlxr_sampler_free(s);
    mlxr_context_free(c);
}

static void spec(mlxr_model *t, mlxr_model *d, const int32_t *p, int np,
                 const mlxr_sampler_opts *so, out *o, const char *what) {
    mlxr_context *ct = ctx(t), *cd = d ? ctx(d) : NULL;
    mlxr_sampler *s = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_sampler_new(so, mlxr_model_get_info(t)->n_vocab, &s, &err) == MLXR_OK, "sampler");
    mlxr_spec_stats st;
    o->n = 0;
    CHECK(mlxr_spec_generate(ct, cd, NULL, s, p, np, N_GEN, collect, o, &st, &err) == MLXR_OK,
          "%s: %s", what, err.msg);
    CHECK(st.n_gen == o->n && st.n_accepted <= st.n_drafted &&
              st.n_gen <= st.n_accepted + st.n_passes + 1,
          "%s: stats gen %d accepted %d drafted %d passes %d", what, st.n_gen, st.n_accepted,
          st.n_drafted, st.n_passes);
    fprintf(stderr, "  %-22s %d tokens, %d target passes, accepted %d of %d drafted\n", what,
            st.n_gen, st.n_passes, st.n_accepted, st.n_drafted);
    mlxr_sampler_free(s);
    mlxr_context_free(ct);
    mlxr_context_free(cd);
}

static void same(const out *a, const out *b, const char *what) {
    CHECK(a->n == b->n && !memcmp(a->t, b->t, (size_t)a->n * sizeof *a->t),
          "%s: %d tokens vs plain %d, differ", what, b->n, a->n);
}

int main(void) {
    char *pt = test_data_path("models/pydoc-7M/pydoc-7M-f16.gguf");
    char *pd = test_data_path("models/pydoc-7M/pydoc-7M-q8_0.gguf");
    mlxr_model *t = NULL, *d = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(pt, NULL, &t, &err) == MLXR_OK, "load target: %s", err.msg);
    CHECK(mlxr_model_load(pd, NULL, &d, &err) == MLXR_OK, "load draft: %s", err.msg);
    free(pt);
    free(pd);
    if (!t || !d) return test_finish("sched_spec");
    const char *text = "The list type is a mutable sequence. The list type supports";
    int32_t p[128];
    size_t np = 0;
    CHECK(mlxr_tokenize(t, text, strlen(text), true, false, p, 128, &np, &err) == MLXR_OK, "tok");

    mlxr_sampler_opts g = mlxr_sampler_default_opts();
    g.temp = 0;
    out ref, got;
    plain(t, p, (int)np, &g, &ref);
    CHECK(ref.n > 10, "plain decoding gave %d tokens", ref.n);
    spec(t, d, p, (int)np, &g, &got, "greedy, draft model");
    same(&ref, &got, "greedy, draft model");
    spec(t, NULL, p, (int)np, &g, &got, "greedy, prompt lookup");
    same(&ref, &got, "greedy, prompt lookup");

    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.seed = 1234;
    plain(t, p, (int)np, &so, &ref);
    spec(t, d, p, (int)np, &so, &got, "sampled, draft model");
    same(&ref, &got, "sampled, draft model");
    spec(t, NULL, p, (int)np, &so, &got, "sampled, prompt lookup");
    same(&ref, &got, "sampled, prompt lookup");

    /* bad options */
    mlxr_context *c = ctx(t);
    mlxr_sampler *s = NULL;
    mlxr_sampler_new(&g, mlxr_model_get_info(t)->n_vocab, &s, &err);
    mlxr_spec_opts bad = mlxr_spec_default_opts();
    bad.n_draft = 64;
    CHECK(mlxr_spec_generate(c, NULL, &bad, s, p, (int)np, 4, NULL, NULL, NULL, &err) ==
              MLXR_ERR_INVALID,
          "n_draft 64 accepted");
    mlxr_sampler_free(s);
    mlxr_context_free(c);

    mlxr_model_free(t);
    mlxr_model_free(d);
    return test_finish("sched_spec");
}
