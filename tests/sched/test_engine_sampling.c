/*
 * test_engine_sampling.c - the engine's per-request sampling features on the pydoc-7M model:
 *  - JSON mode: for several prompts and seeds (greedy and sampled) the output, when it ends as
 *    EOG, is one object for jansson (the independent reference), and most runs do end so (the
 *    rest reach max_tokens inside a string: this toy model can repeat itself for ever); without
 *    JSON mode the same requests (almost all) do not give JSON; JSON mode with prompt-lookup drafts gives the same
 *    tokens as without (greedy);
 *  - log-probabilities: each token's logprob and top list equal a log-softmax computed in double
 *    from the logits of a plain one-sequence context (teacher-forced on the engine's tokens);
 *    greedy's token is the top one; prompt-lookup drafts give the same tokens and
 *    log-probabilities;
 *  - presence/frequency penalties reach the sampler (greedy output repeats fewer tokens).
 */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "mlxr.h"

#define N_CTX 256
#define MAX_GEN 160

typedef struct job {
    int32_t toks[N_CTX];
    int32_t n;
    float lp[N_CTX];
    int32_t top_id[N_CTX][5];
    float top_lp[N_CTX][5];
    int32_t n_top;
    mlxr_request_stats st;
} job;

static bool on_info(void *user, uint64_t id, const mlxr_token_info *info) {
    job *j = user;
    (void)id;
    if (j->n >= N_CTX) return false;
    j->toks[j->n] = info->token;
    j->lp[j->n] = info->logprob;
    j->n_top = info->n_top;
    for (int k = 0; k < info->n_top && k < 5; k++) {
        j->top_id[j->n][k] = info->top_ids[k];
        j->top_lp[j->n][k] = info->top_logprobs[k];
    }
    j->n++;
    return true;
}

static void on_done(void *user, uint64_t id, const mlxr_request_stats *st) {
    (void)id;
    ((job *)user)->st = *st;
}

static mlxr_engine *engine(mlxr_model *m, int32_t n_lookup) {
    mlxr_engine_opts o = mlxr_engine_default_opts();
    o.ctx.n_ctx = N_CTX;
    o.ctx.n_seq_max = 4;
    o.ctx.n_batch = 64;
    o.ctx.n_threads = 1;
    o.ctx.n_gpu_layers = test_gpu_layers();
    o.ctx.batch_invariant = true;
    o.n_lookup = n_lookup;
    mlxr_engine *e = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_engine_new(m, &o, &e, &err) == MLXR_OK, "engine: %s", err.msg);
    return e;
}

static int32_t tokenize(mlxr_model *m, const char *text, int32_t *ids) {
    size_t n = 0;
    mlxr_err err = {0};
    CHECK(mlxr_tokenize(m, text, strlen(text), true, false, ids, N_CTX, &n, &err) == MLXR_OK,
          "tokenize: %s", err.msg);
    return (int32_t)n;
}

/* Run one request to the end (alone in the engine). */
static void run(mlxr_engine *e, const int32_t *prompt, int32_t n_prompt, mlxr_sampler_opts so,
                bool json, bool logprobs, job *j) {
    memset(j, 0, sizeof *j);
    mlxr_request r = {0};
    r.prompt = prompt;
    r.n_prompt = n_prompt;
    r.sampler = so;
    r.max_tokens = MAX_GEN;
    r.on_token_info = on_info;
    r.on_done = on_done;
    r.user = j;
    r.json_mode = json;
    r.logprobs = logprobs;
    r.n_top_logprobs = logprobs ? 5 : 0;
    uint64_t id;
    mlxr_err err = {0};
    CHECK(mlxr_engine_submit(e, &r, &id, &err) == MLXR_OK, "submit: %s", err.msg);
    mlxr_engine_wait_idle(e);
}

/* The text of j's tokens, and whether jansson reads it as one object. */
static bool parses_as_object(mlxr_model *m, const job *j, char *text, size_t cap) {
    size_t n = 0;
    mlxr_err err = {0};
    text[0] = '\0';
    if (mlxr_detokenize(m, j->toks, (size_t)j->n, false, text, cap - 1, &n, &err) != MLXR_OK)
        return false;
    text[n] = '\0';
    json_error_t je;
    json_t *v = json_loadb(text, n, 0, &je);
    const bool ok = v && json_is_object(v);
    json_decref(v);
    return ok;
}

static void test_json(mlxr_model *m, uint64_t *rng) {
    static const char *const prompts[] = {
        "The list type", "Return a dictionary of", "{\"name\":", "JSON: ", "def f(x):",
    };
    mlxr_engine *e = engine(m, 0), *el = engine(m, 4);
    if (!e || !el) return;
    int n_json = 0, n_plain_json = 0, n_runs = 0;
    static char text[16384];
    for (size_t p = 0; p < sizeof prompts / sizeof *prompts; p++) {
        int32_t ids[N_CTX];
        const int32_t n = tokenize(m, prompts[p], ids);
        for (int s = 0; s < 3; s++) {
            mlxr_sampler_opts so = mlxr_sampler_default_opts();
            so.seed = test_rng_u64(rng);
            if (s == 0) so.temp = 0;
            job j;
            run(e, ids, n, so, true, false, &j);
            const bool ok = parses_as_object(m, &j, text, sizeof text);
            n_runs++;
            n_json += ok;
            /* a closed object ends the request; otherwise only max_tokens may end it (this
             * toy model can write one string for ever) */
            CHECK(ok ? j.st.finish == MLXR_FINISH_EOG : j.st.finish == MLXR_FINISH_LENGTH,
                  "prompt %zu seed %d: finish %d, %d tokens, object %d: [%s]", p, s, j.st.finish,
                  j.n, ok, text);
            if (p == 0 && s < 2) fprintf(stderr, "json mode: %s\n", text);
            job plain;
            run(e, ids, n, so, false, false, &plain);
            n_plain_json += parses_as_object(m, &plain, text, sizeof text);
            if (s == 0) { /* greedy: prompt-lookup drafts change nothing */
                job lk;
                run(el, ids, n, so, true, false, &lk);
                CHECK(lk.n == j.n && !memcmp(lk.toks, j.toks, (size_t)j.n * sizeof *j.toks) &&
                          lk.st.finish == j.st.finish,
                      "prompt %zu: JSON mode with lookup differs (%d vs %d tokens)", p, lk.n, j.n);
            }
        }
    }
    fprintf(stderr, "JSON mode: %d/%d objects; plain: %d/%d\n", n_json, n_runs, n_plain_json,
            n_runs);
    CHECK(n_json >= n_runs * 2 / 3, "JSON mode gave an object %d times of %d", n_json, n_runs);
    CHECK(n_plain_json <= n_runs / 3, "plain generation gave JSON %d times of %d", n_plain_json,
          n_runs);
    mlxr_engine_free(e);
    mlxr_engine_free(el);
}

/* Logprobs vs a double log-softmax of a plain context's logits on the same tokens. */
static void test_logprobs(mlxr_model *m) {
    mlxr_engine *e = engine(m, 0);
    if (!e) return;
    int32_t ids[N_CTX];
    const int32_t n = tokenize(m, "The list type", ids);
    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.temp = 0;
    job j;
    run(e, ids, n, so, false, true, &j);
    mlxr_engine_free(e);
    /* with prompt-lookup drafts: the same tokens and log-probabilities (one row per position) */
    mlxr_engine *el = engine(m, 4);
    if (el) {
        static job lk;
        run(el, ids, n, so, false, true, &lk);
        bool same = lk.n == j.n && !memcmp(lk.toks, j.toks, (size_t)j.n * sizeof *j.toks);
        for (int32_t t = 0; same && t < j.n; t++)
            same = fabsf(lk.lp[t] - j.lp[t]) < 1e-5f && lk.top_id[t][1] == j.top_id[t][1];
        CHECK(same && lk.st.n_drafted > 0, "logprobs with lookup differ (%d vs %d tokens, %d "
              "drafted)", lk.n, j.n, lk.st.n_drafted);
        mlxr_engine_free(el);
    }
    CHECK(j.n > 4 && j.n_top == 5, "%d tokens, n_top %d", j.n, j.n_top);
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = N_CTX;
    o.n_threads = 1;
    o.n_gpu_layers = test_gpu_layers();
    o.batch_invariant = true;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_OK, "context: %s", err.msg);
    if (!c) return;
    const int32_t V = mlxr_model_get_info(m)->n_vocab;
    int32_t all[N_CTX], pos[N_CTX], seq[N_CTX] = {0};
    int8_t want[N_CTX];
    int32_t total = 0;
    for (int32_t i = 0; i < n; i++) all[total++] = ids[i];
    for (int32_t i = 0; i + 1 < j.n && total < N_CTX; i++) all[total++] = j.toks[i];
    for (int32_t i = 0; i < total; i++) {
        pos[i] = i;
        want[i] = i >= n - 1;
    }
    mlxr_batch b = {total, all, pos, seq, want};
    CHECK(mlxr_decode(c, &b, &err) == MLXR_OK, "decode: %s", err.msg);
    double worst = 0;
    for (int32_t t = 0; t < j.n && n - 1 + t < total; t++) {
        const float *lg = mlxr_get_logits(c, n - 1 + t);
        double mx = -INFINITY, sum = 0;
        for (int32_t v = 0; v < V; v++)
            if (lg[v] > mx) mx = lg[v];
        for (int32_t v = 0; v < V; v++) sum += exp((double)lg[v] - mx);
        const double lse = mx + log(sum);
        const double d = fabs(j.lp[t] - (lg[j.toks[t]] - lse));
        if (d > worst) worst = d;
        CHECK(j.lp[t] <= 0 && j.top_id[t][0] == j.toks[t] && j.top_lp[t][0] == j.lp[t],
              "token %d: greedy token %d is not the top one (%d)", t, j.toks[t], j.top_id[t][0]);
        for (int k = 1; k < 5; k++) {
            CHECK(j.top_lp[t][k] <= j.top_lp[t][k - 1], "token %d: top list not sorted", t);
            const double dk = fabs(j.top_lp[t][k] - (lg[j.top_id[t][k]] - lse));
            if (dk > worst) worst = dk;
        }
    }
    CHECK(worst < 1e-4, "logprobs differ from the reference by up to %g", worst);
    fprintf(stderr, "logprobs: %d tokens, largest difference from the reference %.2g\n", j.n,
            worst);
    mlxr_context_free(c);
}

static int distinct(const job *j) {
    int d = 0;
    for (int32_t i = 0; i < j->n; i++) {
        bool seen = false;
        for (int32_t k = 0; k < i; k++) seen |= j->toks[k] == j->toks[i];
        d += !seen;
    }
    return d;
}

static void test_penalties(mlxr_model *m) {
    mlxr_engine *e = engine(m, 0);
    if (!e) return;
    int32_t ids[N_CTX];
    const int32_t n = tokenize(m, "The list type", ids);
    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.temp = 0;
    job a, b;
    run(e, ids, n, so, false, false, &a);
    so.frequency_penalty = 1.5f;
    so.presence_penalty = 1.0f;
    run(e, ids, n, so, false, false, &b);
    const int da = distinct(&a), db = distinct(&b);
    fprintf(stderr, "distinct tokens: %d of %d plain, %d of %d penalised\n", da, a.n, db, b.n);
    CHECK(a.n > 0 && b.n > 0 && (double)db / b.n > (double)da / a.n,
          "penalties did not reduce repetition (%d/%d vs %d/%d)", db, b.n, da, a.n);
    mlxr_request r = {0};
    r.prompt = ids;
    r.n_prompt = n;
    r.sampler = so;
    r.logprobs = true;
    r.n_top_logprobs = 21;
    uint64_t id;
    CHECK(mlxr_engine_submit(e, &r, &id, NULL) == MLXR_ERR_RANGE, "n_top_logprobs 21 refused");
    mlxr_engine_free(e);
}

int main(void) {
    uint64_t rng = test_seed();
    char *path = test_data_path("models/pydoc-7M/pydoc-7M-q8_0.gguf");
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(path, NULL, &m, &err) == MLXR_OK, "load: %s", err.msg);
    free(path);
    if (m) {
        test_logprobs(m);
        test_penalties(m);
        test_json(m, &rng);
    }
    mlxr_model_free(m);
    return test_finish("sched_engine_sampling");
}
