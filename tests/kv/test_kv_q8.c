/*
 * test_kv_q8.c - the Q8_0 KV cache (mlxr_context_opts.kv_type = MLXR_KV_Q8_0) at model level:
 *  1. teacher forcing the llama.cpp reference cases (testdata/reference: prompt + generated ids
 *     in one batch) with a Q8_0 cache: every logit of every step within a per-model bound of the
 *     F16-cache logits (the quantization error of K and V; MODELS below), and the reference's
 *     top-5 logits within its tolerance plus that bound (llama.cpp's F16-cache outputs, an
 *     independent reference);
 *  2. the same kv_mem_bytes hold 64/34 times the blocks of an F16 pool;
 *  3. truncation, prefix sharing and copy on write of a Q8_0 block give bitwise the logits of a
 *     plain pass (batch_invariant), and the pool adds up;
 *  4. the engine with a Q8_0 cache: concurrent greedy requests give the tokens each prompt gives
 *     alone; a cached prefix is shared and changes nothing; a pool too small for all requests
 *     (it preempts in most runs; the count is printed) still gives the same tokens; no block
 *     leaks;
 *  5. head_dim not a multiple of 32 (stories260K) and the CUDA path are refused with
 *     MLXR_ERR_UNSUPPORTED.
 * Models: pydoc-7M (head_dim 64, GQA 4/2) and toy (head_dim 32). Random prompts come from the
 * printed seed.
 */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "mlxr.h"
#include "model/model.h"

typedef struct model_case {
    const char *file;   /* under models/ */
    const char *prefix; /* reference case files start with this */
    double ref_tol;     /* test_reference.c's tolerance against llama.cpp for this model */
    double q8_bound;    /* largest |logit(Q8_0 cache) - logit(F16 cache)| allowed */
} model_case;

/* Q8_0-cache bounds: about twice the largest difference measured over every step and every
 * vocabulary entry of the reference cases (AVX2; pydoc-7M, logits up to ~25: 0.12 with F16
 * weights, 0.31 with Q8_0 weights; toy, flat logits: 0.008 and 0.023). */
static const model_case MODELS[] = {
    {"pydoc-7M/pydoc-7M-f16.gguf", "pydoc-7M-f16__", 0.02, 0.25},
    {"pydoc-7M/pydoc-7M-q8_0.gguf", "pydoc-7M-q8_0__", 0.3, 0.6},
    {"toy-f16.gguf", "toy-f16__", 2e-3, 0.02},
    {"toy-q8_0.gguf", "toy-q8_0__", 0.03, 0.05},
};

static uint64_t rng;

static mlxr_model *load(const char *rel) {
    char *path = test_data_path(rel);
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(path, NULL, &m, &err) == MLXR_OK, "load %s: %s", rel, err.msg);
    free(path);
    return m;
}

static mlxr_context *ctx(mlxr_model *m, mlxr_kv_type t, int n_seq, int n_batch, int64_t kv_bytes) {
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = 256;
    o.n_seq_max = n_seq;
    o.n_batch = n_batch;
    o.n_threads = 2;
    o.kv_type = t;
    o.kv_mem_bytes = kv_bytes;
    o.batch_invariant = true;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_OK, "context (%s): %s", mlxr_kv_type_name(t),
          err.msg);
    return c;
}

static int32_t *json_ids(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

/* Logits of every position of ids[0..n) in one batch: malloc'ed [n][V]. */
static float *forced(mlxr_model *m, mlxr_kv_type t, const int32_t *ids, int n) {
    const int V = mlxr_model_get_info(m)->n_vocab;
    mlxr_context *c = ctx(m, t, 1, n, 0);
    int32_t *pos = malloc((size_t)n * sizeof *pos), *seq = calloc((size_t)n, sizeof *seq);
    int8_t *want = malloc((size_t)n);
    for (int i = 0; i < n; i++)
        pos[i] = i, want[i] = 1;
    mlxr_batch b = {n, ids, pos, seq, want};
    mlxr_err err = {0};
    float *out = calloc((size_t)n * V, sizeof *out);
    CHECK(c && mlxr_decode(c, &b, &err) == MLXR_OK, "decode: %s", err.msg);
    for (int i = 0; c && i < n; i++) {
        const float *l = mlxr_get_logits(c, i);
        if (l) memcpy(out + (size_t)i * V, l, (size_t)V * sizeof *out);
    }
    mlxr_context_free(c);
    free(pos), free(seq), free(want);
    return out;
}

/* 1: one reference case. Returns the largest |dlogit| against the F16 cache. */
static double teacher_forced(mlxr_model *m, const model_case *mc, const char *json_path) {
    json_error_t je;
    json_t *root = json_load_file(json_path, 0, &je);
    CHECK(root != NULL, "%s: %s", json_path, je.text);
    if (!root) return 0;
    size_t np, ng;
    int32_t *prompt = json_ids(json_object_get(root, "prompt_ids"), &np);
    int32_t *gen = json_ids(json_object_get(root, "generated_ids"), &ng);
    const int n = (int)(np + ng - 1), V = mlxr_model_get_info(m)->n_vocab;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = i < (int)np ? prompt[i] : gen[i - (int)np];
    float *lf = forced(m, MLXR_KV_F16, ids, n), *lq = forced(m, MLXR_KV_Q8_0, ids, n);
    double worst = 0, worst_ref = 0;
    for (size_t i = 0; i < (size_t)n * V; i++)
        worst = fmax(worst, fabs((double)lf[i] - lq[i]));
    CHECK(worst <= mc->q8_bound, "%s: Q8_0 vs F16 cache: max |dlogit| %.4f > %.2f", json_path,
          worst, mc->q8_bound);
    json_t *steps = json_object_get(root, "steps");
    for (size_t s = 0; s < json_array_size(steps); s++) {
        json_t *top = json_object_get(json_array_get(steps, s), "top");
        const float *l = lq + (np - 1 + s) * (size_t)V;
        for (size_t k = 0; k < json_array_size(top); k++) {
            json_t *pair = json_array_get(top, k);
            const int id = (int)json_integer_value(json_array_get(pair, 0));
            worst_ref = fmax(worst_ref, fabs(l[id] - json_number_value(json_array_get(pair, 1))));
        }
    }
    CHECK(worst_ref <= mc->ref_tol + mc->q8_bound, "%s: Q8_0 cache vs llama.cpp: %.4f > %.3f",
          json_path, worst_ref, mc->ref_tol + mc->q8_bound);
    fprintf(stderr, "  %-40s max |dlogit| vs F16 cache %.4f, vs llama.cpp top-5 %.4f\n",
            strrchr(json_path, '/') + 1, worst, worst_ref);
    free(lf), free(lq), free(ids), free(prompt), free(gen);
    json_decref(root);
    return worst;
}

static void test_reference_cases(void) {
    char *dir = test_data_path("reference");
    for (size_t i = 0; i < sizeof MODELS / sizeof *MODELS; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s", MODELS[i].file);
        mlxr_model *m = load(rel);
        if (!m) continue;
        const char *names[] = {"list_type", "dict_maps", "open_file", "py311",
                               "digits",    "once_upon", "lily",      "long"};
        int n_cases = 0;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s%s.json", dir, MODELS[i].prefix, names[k]);
            FILE *f = fopen(path, "rb");
            if (!f) continue;
            fclose(f);
            teacher_forced(m, &MODELS[i], path);
            n_cases++;
        }
        CHECK(n_cases >= 2, "%s: only %d reference cases found", MODELS[i].file, n_cases);
        mlxr_model_free(m);
    }
    free(dir);
}

/* ---- 2 + 3: the pool --------------------------------------------------------------------------
 */

static float *run(mlxr_context *c, int32_t s, const int32_t *toks, int from, int to, int V) {
    int32_t pos[256], seq[256];
    for (int i = from; i < to; i++)
        pos[i - from] = i, seq[i - from] = s;
    mlxr_batch b = {to - from, toks + from, pos, seq, NULL};
    mlxr_err err = {0};
    CHECK(mlxr_decode(c, &b, &err) == MLXR_OK, "decode %d..%d of seq %d: %s", from, to, s, err.msg);
    float *l = calloc((size_t)V, sizeof *l);
    const float *g = mlxr_get_logits(c, to - from - 1);
    if (g) memcpy(l, g, (size_t)V * sizeof *l);
    return l;
}

static void test_pool(mlxr_model *m) {
    const int V = mlxr_model_get_info(m)->n_vocab;
    enum { NT = 100 };
    int32_t toks[NT];
    toks[0] = 1;
    for (int i = 1; i < NT; i++)
        toks[i] = 3 + (int32_t)(test_rng_u64(&rng) % (uint64_t)(V - 3));
    /* the same bytes hold more Q8_0 blocks */
    mlxr_context *cf = ctx(m, MLXR_KV_F16, 1, 128, 1 << 20),
                 *cq = ctx(m, MLXR_KV_Q8_0, 1, 128, 1 << 20);
    mlxr_kv_stats sf, sq;
    mlxr_kv_get_stats(cf, &sf);
    mlxr_kv_get_stats(cq, &sq);
    CHECK(sq.block_bytes * 64 == sf.block_bytes * 34 &&
              (size_t)sq.n_block == ((size_t)1 << 20) / sq.block_bytes,
          "Q8_0 block %zu bytes x %d vs F16 %zu x %d", sq.block_bytes, sq.n_block, sf.block_bytes,
          sf.n_block);
    mlxr_context_free(cf);
    mlxr_context_free(cq);

    mlxr_err err = {0};
    mlxr_context *c = ctx(m, MLXR_KV_Q8_0, 2, 128, 0);
    if (!c) return;
    float *l100 = run(c, 0, toks, 0, NT, V);
    /* truncate and redo */
    CHECK(mlxr_kv_truncate(c, 0, 50, &err) == MLXR_OK, "truncate: %s", err.msg);
    float *again = run(c, 0, toks, 50, NT, V);
    CHECK(!memcmp(again, l100, (size_t)V * sizeof *again), "Q8_0: logits after truncate differ");
    /* a second sequence shares the 3 full blocks, cuts into one (copy on write) and goes on */
    CHECK(mlxr_kv_prefix_attach(&c->kv, 1, toks, NT) == 96, "prefix attach");
    CHECK(mlxr_kv_truncate(c, 1, 40, &err) == MLXR_OK, "truncate into a shared block: %s", err.msg);
    mlxr_kv_stats st;
    mlxr_kv_get_stats(c, &st);
    CHECK(st.n_shared == 1, "after copy on write: shared %d, want 1", st.n_shared);
    float *l1 = run(c, 1, toks, 40, NT, V);
    CHECK(!memcmp(l1, l100, (size_t)V * sizeof *l1), "Q8_0: shared prefix + copy: other logits");
    /* sequence 0's blocks are untouched by sequence 1's writes */
    mlxr_kv_truncate(c, 0, NT - 1, &err);
    float *l0 = run(c, 0, toks, NT - 1, NT, V);
    CHECK(!memcmp(l0, l100, (size_t)V * sizeof *l0), "Q8_0: sequence 0 changed by sequence 1");
    mlxr_kv_clear(c, 0);
    mlxr_kv_clear(c, 1);
    mlxr_kv_get_stats(c, &st);
    CHECK(st.n_used == 0 && st.n_free + st.n_cached == st.n_block && st.n_cached >= 3,
          "after clearing: used %d free %d cached %d of %d", st.n_used, st.n_free, st.n_cached,
          st.n_block);
    mlxr_context_free(c);
    free(again), free(l0), free(l1), free(l100);
}

/* ---- 4: the engine ----------------------------------------------------------------------------
 */

#define N_CTX 160
#define N_JOB 12

typedef struct job {
    int32_t prompt[N_CTX], ref[32], got[N_CTX];
    int32_t n_prompt, max_tokens, n_ref, n_got, n_done;
    mlxr_request_stats st;
} job;

static mlxr_sampler_opts greedy(void) {
    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.temp = 0;
    return so;
}

static void run_alone(mlxr_model *m, job *j) {
    mlxr_context *c = ctx(m, MLXR_KV_Q8_0, 1, N_CTX, 0);
    mlxr_sampler *s = NULL;
    mlxr_err err = {0};
    mlxr_sampler_opts so = greedy();
    CHECK(mlxr_sampler_new(&so, mlxr_model_get_info(m)->n_vocab, &s, &err) == MLXR_OK, "sampler");
    int32_t pos[N_CTX], seq[N_CTX] = {0};
    for (int i = 0; i < N_CTX; i++)
        pos[i] = i;
    mlxr_batch b = {j->n_prompt, j->prompt, pos, seq, NULL};
    CHECK(mlxr_decode(c, &b, &err) == MLXR_OK, "prompt: %s", err.msg);
    int32_t last = j->n_prompt - 1, p = j->n_prompt;
    for (j->n_ref = 0;;) {
        int32_t tok = mlxr_sampler_sample(s, mlxr_get_logits(c, last));
        j->ref[j->n_ref++] = tok;
        if (j->n_ref == j->max_tokens) break;
        mlxr_batch one = {1, &tok, &pos[p++], seq, NULL};
        CHECK(mlxr_decode(c, &one, &err) == MLXR_OK, "decode: %s", err.msg);
        last = 0;
    }
    mlxr_sampler_free(s);
    mlxr_context_free(c);
}

static bool on_token(void *user, uint64_t id, int32_t tok) {
    job *j = user;
    (void)id;
    if (j->n_got < N_CTX) j->got[j->n_got++] = tok;
    return true;
}

static void on_done(void *user, uint64_t id, const mlxr_request_stats *st) {
    job *j = user;
    (void)id;
    j->n_done++;
    j->st = *st;
}

/* Run every job through one engine; check outputs, and that the pool ends empty. */
static void engine_round(mlxr_model *m, job *jobs, int n, int64_t kv_bytes, bool prefix,
                         const char *what) {
    mlxr_engine_opts o = mlxr_engine_default_opts();
    o.ctx.n_ctx = N_CTX;
    o.ctx.n_seq_max = 6;
    o.ctx.n_batch = 48; /* chunked prefill */
    o.ctx.n_threads = 2;
    o.ctx.kv_type = MLXR_KV_Q8_0;
    o.ctx.kv_mem_bytes = kv_bytes;
    o.ctx.batch_invariant = true;
    o.no_prefix_cache = !prefix;
    mlxr_engine *e = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_engine_new(m, &o, &e, &err) == MLXR_OK, "%s: engine: %s", what, err.msg);
    if (!e) return;
    for (int i = 0; i < n; i++) {
        mlxr_request r = {0};
        r.prompt = jobs[i].prompt;
        r.n_prompt = jobs[i].n_prompt;
        r.sampler = greedy();
        r.max_tokens = jobs[i].max_tokens;
        r.ignore_eog = true;
        r.on_token = on_token;
        r.on_done = on_done;
        r.user = &jobs[i];
        jobs[i].n_got = jobs[i].n_done = 0;
        uint64_t id;
        CHECK(mlxr_engine_submit(e, &r, &id, &err) == MLXR_OK, "%s: submit: %s", what, err.msg);
    }
    mlxr_engine_wait_idle(e);
    int same = 0;
    for (int i = 0; i < n; i++)
        same += jobs[i].n_done == 1 && jobs[i].n_got == jobs[i].n_ref &&
                !memcmp(jobs[i].got, jobs[i].ref, (size_t)jobs[i].n_ref * sizeof(int32_t));
    mlxr_engine_stats st;
    mlxr_engine_get_stats(e, &st);
    CHECK(same == n, "%s: %d of %d requests gave their tokens alone", what, same, n);
    CHECK(st.kv.n_used == 0 && st.kv.n_free + st.kv.n_cached == st.kv.n_block,
          "%s: blocks leaked: used %d free %d cached %d of %d", what, st.kv.n_used, st.kv.n_free,
          st.kv.n_cached, st.kv.n_block);
    fprintf(stderr, "  engine %-12s %d/%d same as alone, %llu preemptions, %llu tokens cached\n",
            what, same, n, (unsigned long long)st.n_preempt,
            (unsigned long long)st.n_tokens_cached);
    if (prefix) CHECK(st.n_tokens_cached > 0, "%s: the prefix cache served nothing", what);
    mlxr_engine_free(e);
}

static void test_engine(mlxr_model *m) {
    const int V = mlxr_model_get_info(m)->n_vocab;
    job *jobs = calloc(N_JOB, sizeof *jobs);
    for (int i = 0; i < N_JOB; i++) {
        job *j = &jobs[i];
        /* job 0 has 96 prompt tokens; the second half share its first 64 (prefix cache) and
         * have 70..94; the others 5..94 of their own */
        j->n_prompt = i == 0           ? 96
                      : i >= N_JOB / 2 ? 70 + (int32_t)(test_rng_u64(&rng) % 25)
                                       : 5 + (int32_t)(test_rng_u64(&rng) % 90);
        j->max_tokens = 8 + (int32_t)(test_rng_u64(&rng) % 24);
        j->prompt[0] = 1;
        for (int k = 1; k < j->n_prompt; k++)
            j->prompt[k] = i >= N_JOB / 2 && k < 64
                               ? jobs[0].prompt[k]
                               : 3 + (int32_t)(test_rng_u64(&rng) % (uint64_t)(V - 3));
        run_alone(m, j);
    }
    engine_round(m, jobs, N_JOB, 0, false, "batched");
    engine_round(m, jobs, N_JOB, 0, true, "prefix");
    /* 12 blocks: room for two or three requests at a time */
    const mlxr_model_info *h = mlxr_model_get_info(m);
    const int64_t blk = 2LL * h->n_layer * 32 * (h->n_head_kv * h->head_dim / 32 * 34);
    engine_round(m, jobs, N_JOB, 12 * blk, false, "small pool");
    free(jobs);
}

int main(void) {
    rng = test_seed();
    test_reference_cases();
    mlxr_model *m = load("models/pydoc-7M/pydoc-7M-q8_0.gguf");
    if (m) {
        test_pool(m);
        test_engine(m);
        /* 5: Q8_0 with the CUDA path */
        mlxr_context_opts o = mlxr_context_default_opts();
        o.n_ctx = 64;
        o.kv_type = MLXR_KV_Q8_0;
        o.n_gpu_layers = -1;
        mlxr_context *c = NULL;
        mlxr_err err = {0};
        CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_ERR_UNSUPPORTED && strstr(err.msg, "f16"),
              "Q8_0 + n_gpu_layers: %s", err.msg);
        mlxr_context_free(c);
        mlxr_model_free(m);
    }
    m = load("models/stories260K.gguf");
    if (m) {
        mlxr_context_opts o = mlxr_context_default_opts();
        o.n_ctx = 64;
        o.kv_type = MLXR_KV_Q8_0;
        mlxr_context *c = NULL;
        mlxr_err err = {0};
        CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_ERR_UNSUPPORTED &&
                  strstr(err.msg, "head_dim"),
              "Q8_0 with head_dim 8: %s", err.msg);
        mlxr_context_free(c);
        mlxr_model_free(m);
    }
    return test_finish("kv_kv_q8");
}
