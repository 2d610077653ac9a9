/*
 * test_engine.c - the continuous-batching engine against plain decoding:
 *  1. 64 concurrent greedy requests of different prompt and output lengths each give the tokens
 *     the same prompt gives alone (one sequence, plain mlxr_decode), with chunked prefill;
 *  2. a prompt whose prefix is cached gives the same output, and the statistics show the cached
 *     tokens were not prefilled;
 *  3. with a pool too small for all requests at once, preemption still completes every request
 *     with the same output, and the pool is entirely free afterwards;
 *  4. cancelling requests at random points (engine API and callback) leaks no block (and, under
 *     ASan, no memory); every on_done runs exactly once;
 *  5. speculative decoding by prompt lookup inside the engine gives the same tokens, with drafts
 *     accepted, also when the pool is small enough to preempt.
 * Prompts are random token ids from the printed seed (MLXR_SEED reproduces a run).
 */
#include "test.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "mlxr.h"

#define N_CTX 192
#define MAX_GEN 32

typedef struct job {
    int32_t prompt[N_CTX];
    int32_t n_prompt, max_tokens;
    int32_t ref[MAX_GEN];
    int32_t n_ref;
    int32_t got[N_CTX];
    int32_t n_got;
    int n_done;
    int cancel_after; /* callback returns false after this many tokens; -1 never */
    bool ignore_eog;
    uint64_t id;
    mlxr_request_stats st;
} job;

static mlxr_sampler_opts greedy(void) {
    mlxr_sampler_opts so = mlxr_sampler_default_opts();
    so.temp = 0;
    return so;
}

/* The reference: the prompt alone in a one-sequence context, then token by token. */
static void run_alone(mlxr_model *m, job *j) {
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = N_CTX;
    o.n_batch = N_CTX;
    o.n_threads = 1;
    o.n_gpu_layers = test_gpu_layers();
    o.batch_invariant = true; /* as the engine's, so that "alone" and "batched" agree bitwise */
    mlxr_context *c = NULL;
    mlxr_sampler *s = NULL;
    mlxr_err err = {0};
    mlxr_sampler_opts so = greedy();
    CHECK(mlxr_context_new(m, &o, &c, &err) == MLXR_OK, "context: %s", err.msg);
    CHECK(mlxr_sampler_new(&so, mlxr_model_get_info(m)->n_vocab, &s, &err) == MLXR_OK, "sampler");
    int32_t pos[N_CTX], seq[N_CTX] = {0};
    for (int i = 0; i < N_CTX; i++)
        pos[i] = i;
    mlxr_batch b = {j->n_prompt, j->prompt, pos, seq, NULL};
    CHECK(mlxr_decode(c, &b, &err) == MLXR_OK, "prompt: %s", err.msg);
    int32_t last = j->n_prompt - 1, p = j->n_prompt;
    j->n_ref = 0;
    for (;;) {
        int32_t tok = mlxr_sampler_sample(s, mlxr_get_logits(c, last));
        if (!j->ignore_eog && mlxr_token_is_eog(m, tok)) break;
        j->ref[j->n_ref++] = tok;
        if (j->n_ref == j->max_tokens || p >= N_CTX) break;
        mlxr_batch one = {1, &tok, &pos[p], seq, NULL};
        CHECK(mlxr_decode(c, &one, &err) == MLXR_OK, "decode: %s", err.msg);
        p++;
        last = 0;
    }
    mlxr_sampler_free(s);
    mlxr_context_free(c);
}

static bool on_token(void *user, uint64_t id, int32_t tok) {
    job *j = user;
    (void)id;
    if (j->n_got < N_CTX) j->got[j->n_got++] = tok;
    return j->cancel_after < 0 || j->n_got < j->cancel_after;
}

static void on_done(void *user, uint64_t id, const mlxr_request_stats *st) {
    job *j = user;
    (void)id;
    j->n_done++;
    j->st = *st;
}

static int32_t g_lookup; /* opts.n_lookup for the next engine() */

static mlxr_engine *engine(mlxr_model *m, int n_seq, int n_batch, int64_t kv_bytes, bool prefix) {
    mlxr_engine_opts o = mlxr_engine_default_opts();
    o.ctx.n_ctx = N_CTX;
    o.ctx.n_seq_max = n_seq;
    o.ctx.n_batch = n_batch;
    o.ctx.n_threads = 1;
    o.ctx.n_gpu_layers = test_gpu_layers();
    o.ctx.kv_mem_bytes = kv_bytes;
    o.no_prefix_cache = !prefix;
    o.ctx.batch_invariant = true;
    o.n_lookup = g_lookup;
    mlxr_engine *e = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_engine_new(m, &o, &e, &err) == MLXR_OK, "engine: %s", err.msg);
    return e;
}

static void submit(mlxr_engine *e, job *j) {
    mlxr_request r = {0};
    r.prompt = j->prompt;
    r.n_prompt = j->n_prompt;
    r.sampler = greedy();
    r.max_tokens = j->max_tokens;
    r.ignore_eog = j->ignore_eog;
    r.on_token = on_token;
    r.on_done = on_done;
    r.user = j;
    j->n_got = 0;
    j->n_done = 0;
    mlxr_err err = {0};
    CHECK(mlxr_engine_submit(e, &r, &j->id, &err) == MLXR_OK, "submit: %s", err.msg);
}

static bool same_as_ref(const job *j) {
    return j->n_done == 1 && j->n_got == j->n_ref &&
           !memcmp(j->got, j->ref, (size_t)j->n_ref * sizeof *j->ref);
}

/* Every block free or cached, none held. */
static void check_pool_empty(mlxr_engine *e, const char *what) {
    mlxr_engine_stats st;
    mlxr_engine_get_stats(e, &st);
    CHECK(st.kv.n_used == 0 && st.kv.n_free + st.kv.n_cached == st.kv.n_block &&
              st.n_running == 0 && st.n_waiting == 0,
          "%s: pool not back to free: used %d free %d cached %d of %d, running %d waiting %d", what,
          st.kv.n_used, st.kv.n_free, st.kv.n_cached, st.kv.n_block, st.n_running, st.n_waiting);
}

static void random_prompt(uint64_t *rng, job *j, int32_t n_vocab, int lo, int hi) {
    j->n_prompt = lo + (int)(test_rng_u64(rng) % (uint64_t)(hi - lo + 1));
    j->prompt[0] = 1;
    for (int i = 1; i < j->n_prompt; i++)
        j->prompt[i] = 3 + (int32_t)(test_rng_u64(rng) % (uint64_t)(n_vocab - 3));
    j->max_tokens = 1 + (int)(test_rng_u64(rng) % MAX_GEN);
    j->cancel_after = -1;
}

int main(void) {
    uint64_t rng = test_seed();
    char *path = test_data_path("models/stories260K.gguf");
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_model_load(path, NULL, &m, &err) == MLXR_OK, "load: %s", err.msg);
    free(path);
    if (!m) return test_finish("sched_engine");
    const int32_t V = mlxr_model_get_info(m)->n_vocab;

    /* 1. 64 concurrent requests, chunked prefill (batch of 96 tokens) */
    enum { N = 64 };
    job *jobs = calloc(N, sizeof *jobs);
    for (int i = 0; i < N; i++) {
        random_prompt(&rng, &jobs[i], V, 1, 90);
        run_alone(m, &jobs[i]);
    }
    mlxr_engine *e = engine(m, N, 96, 0, false);
    for (int i = 0; i < N; i++)
        submit(e, &jobs[i]);
    mlxr_engine_wait_idle(e);
    int n_same = 0;
    for (int i = 0; i < N; i++) {
        n_same += same_as_ref(&jobs[i]);
        CHECK(same_as_ref(&jobs[i]),
              "request %d (prompt %d, max %d): %d tokens, %d done, differs "
              "from alone (%d tokens)",
              i, jobs[i].n_prompt, jobs[i].max_tokens, jobs[i].n_got, jobs[i].n_done,
              jobs[i].n_ref);
    }
    fprintf(stderr, "  64 concurrent: %d identical to alone\n", n_same);
    check_pool_empty(e, "concurrent");
    mlxr_engine_free(e);

    /* 2. prefix cache: 100 shared tokens (3 full blocks), then different tails */
    job *pa = &jobs[0], *pb = &jobs[1];
    random_prompt(&rng, pa, V, 130, 130);
    *pb = *pa;
    for (int i = 100; i < 130; i++)
        pb->prompt[i] = 3 + (int32_t)(test_rng_u64(&rng) % (uint64_t)(V - 3));
    pa->max_tokens = pb->max_tokens = 20;
    run_alone(m, pa);
    run_alone(m, pb);
    e = engine(m, 4, 64, 0, true);
    submit(e, pa);
    mlxr_engine_wait_idle(e);
    submit(e, pb);
    mlxr_engine_wait_idle(e);
    CHECK(same_as_ref(pa) && same_as_ref(pb), "prefix-cached outputs differ from alone");
    CHECK(pa->st.n_cached == 0 && pb->st.n_cached == 96, "cached tokens %d, %d (want 0, 96)",
          pa->st.n_cached, pb->st.n_cached);
    CHECK(pb->st.n_prefilled == 130 - 96, "prefilled %d tokens, want %d", pb->st.n_prefilled,
          130 - 96);
    /* the same prompt again: all but the last partial block is served from the cache */
    submit(e, pa);
    mlxr_engine_wait_idle(e);
    CHECK(same_as_ref(pa) && pa->st.n_cached == 128, "repeat: cached %d (want 128)",
          pa->st.n_cached);
    check_pool_empty(e, "prefix");
    mlxr_engine_free(e);
    /* arriving together: the second waits for the first to cache the shared blocks */
    e = engine(m, 4, 64, 0, true);
    submit(e, pa);
    submit(e, pb);
    mlxr_engine_wait_idle(e);
    CHECK(same_as_ref(pa) && same_as_ref(pb), "concurrent prefix: outputs differ from alone");
    CHECK(pa->st.n_cached == 0 && pb->st.n_cached == 96,
          "concurrent prefix: cached %d, %d (want 0, 96)", pa->st.n_cached, pb->st.n_cached);
    check_pool_empty(e, "concurrent prefix");
    mlxr_engine_stats ps;
    mlxr_engine_get_stats(e, &ps);
    CHECK(ps.n_done == 2 && ps.n_tokens_cached == 96 && ps.n_tokens_prefilled == 130 + 34 &&
              ps.n_tokens_generated == (uint64_t)(pa->st.n_gen + pb->st.n_gen),
          "engine totals: done %llu cached %llu prefilled %llu generated %llu",
          (unsigned long long)ps.n_done, (unsigned long long)ps.n_tokens_cached,
          (unsigned long long)ps.n_tokens_prefilled, (unsigned long long)ps.n_tokens_generated);
    mlxr_engine_free(e);

    /* 3. a pool of 10 blocks (320 positions) for 16 requests of 62 + 32 positions: five are
     * admitted (2 blocks each), and all need a third block at position 64, so preemption must
     * happen (EOG ignored so that every request runs to its length) */
    mlxr_model_info const *h = mlxr_model_get_info(m);
    const int64_t block_bytes = 2LL * 32 * h->n_head_kv * h->head_dim * 2 * h->n_layer;
    for (int i = 0; i < 16; i++) {
        random_prompt(&rng, &jobs[i], V, 62, 62);
        jobs[i].max_tokens = MAX_GEN;
        jobs[i].ignore_eog = true;
        run_alone(m, &jobs[i]);
    }
    e = engine(m, 16, 128, 10 * block_bytes, true);
    for (int i = 0; i < 16; i++)
        submit(e, &jobs[i]);
    mlxr_engine_wait_idle(e);
    mlxr_engine_stats es;
    mlxr_engine_get_stats(e, &es);
    CHECK(es.kv.n_block == 10, "pool of %d blocks, want 10", es.kv.n_block);
    CHECK(es.n_preempt > 0, "no preemption with a small pool");
    for (int i = 0; i < 16; i++)
        CHECK(same_as_ref(&jobs[i]), "small pool: request %d differs from alone (%d vs %d tokens)",
              i, jobs[i].n_got, jobs[i].n_ref);
    fprintf(stderr, "  small pool: %llu preemptions, %llu steps\n",
            (unsigned long long)es.n_preempt, (unsigned long long)es.n_steps);
    check_pool_empty(e, "small pool");
    mlxr_engine_free(e);
    for (int i = 0; i < 16; i++)
        jobs[i].ignore_eog = false;
    /* a request that outgrows the whole pool alone ends with an error, not a hang */
    e = engine(m, 2, 64, 2 * block_bytes, true);
    random_prompt(&rng, &jobs[0], V, 40, 40);
    jobs[0].max_tokens = 60;
    jobs[0].ignore_eog = true;
    submit(e, &jobs[0]);
    mlxr_engine_wait_idle(e);
    jobs[0].ignore_eog = false;
    CHECK(jobs[0].n_done == 1 && jobs[0].st.finish == MLXR_FINISH_ERROR &&
              jobs[0].st.status == MLXR_ERR_NOMEM && jobs[0].st.msg[0] && jobs[0].n_got == 25,
          "outgrown pool: finish %d status %d, %d tokens (want an error after 25: 40 + 24 fed "
          "fill 64 positions): %s",
          (int)jobs[0].st.finish, (int)jobs[0].st.status, jobs[0].n_got, jobs[0].st.msg);
    check_pool_empty(e, "outgrown pool");
    mlxr_engine_free(e);

    /* 4. random cancellation, through the API and through the callback */
    e = engine(m, 8, 64, 12 * block_bytes, true);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 24; i++) {
            random_prompt(&rng, &jobs[i], V, 1, 100);
            jobs[i].cancel_after =
                test_rng_u64(&rng) % 4 == 0 ? 1 + (int)(test_rng_u64(&rng) % 10) : -1;
            submit(e, &jobs[i]);
        }
        for (int i = 0; i < 24; i++) {
            if (test_rng_u64(&rng) % 2) continue;
            usleep((useconds_t)(test_rng_u64(&rng) % 3000));
            mlxr_status st = mlxr_engine_cancel(e, jobs[i].id);
            CHECK(st == MLXR_OK || st == MLXR_ERR_NOT_FOUND, "cancel: %d", (int)st);
        }
        mlxr_engine_wait_idle(e);
        for (int i = 0; i < 24; i++)
            CHECK(jobs[i].n_done == 1, "on_done ran %d times", jobs[i].n_done);
        check_pool_empty(e, "cancel");
    }
    CHECK(mlxr_engine_cancel(e, 999999) == MLXR_ERR_NOT_FOUND, "cancel of an unknown id");
    /* requests still running when the engine is freed are cancelled */
    for (int i = 0; i < 8; i++) {
        random_prompt(&rng, &jobs[i], V, 50, 100);
        submit(e, &jobs[i]);
    }
    mlxr_engine_free(e);
    for (int i = 0; i < 8; i++)
        CHECK(jobs[i].n_done == 1, "on_done after free: %d", jobs[i].n_done);

    /* 5. prompt lookup: prompts that repeat a random phrase, so that n-grams recur */
    for (int pool = 0; pool < 2; pool++) {
        for (int i = 0; i < 16; i++) {
            random_prompt(&rng, &jobs[i], V, 30, 90);
            for (int k = 11; k < jobs[i].n_prompt; k++)
                jobs[i].prompt[k] = jobs[i].prompt[1 + (k - 1) % 10];
            jobs[i].max_tokens = MAX_GEN;
            run_alone(m, &jobs[i]);
        }
        g_lookup = 4;
        e = engine(m, 16, 128, pool ? 10 * block_bytes : 0, true);
        g_lookup = 0;
        for (int i = 0; i < 16; i++)
            submit(e, &jobs[i]);
        mlxr_engine_wait_idle(e);
        int drafted = 0, accepted = 0;
        for (int i = 0; i < 16; i++) {
            CHECK(same_as_ref(&jobs[i]),
                  "lookup (pool %d): request %d differs from alone (%d vs %d "
                  "tokens)",
                  pool, i, jobs[i].n_got, jobs[i].n_ref);
            drafted += jobs[i].st.n_drafted;
            accepted += jobs[i].st.n_accepted;
        }
        mlxr_engine_get_stats(e, &es);
        fprintf(stderr,
                "  lookup%s: %d of %d drafted tokens accepted, %llu steps, %llu preemptions\n",
                pool ? " (small pool)" : "", accepted, drafted, (unsigned long long)es.n_steps,
                (unsigned long long)es.n_preempt);
        CHECK(accepted > 0 && accepted <= drafted, "lookup accepted %d of %d", accepted, drafted);
        check_pool_empty(e, "lookup");
        mlxr_engine_free(e);
    }

    /* bad requests */
    e = engine(m, 2, 64, 0, true);
    mlxr_request bad = {0};
    uint64_t id;
    CHECK(mlxr_engine_submit(e, &bad, &id, &err) == MLXR_ERR_INVALID, "empty prompt accepted");
    int32_t badtok[2] = {1, V};
    bad.prompt = badtok;
    bad.n_prompt = 2;
    bad.sampler = greedy();
    CHECK(mlxr_engine_submit(e, &bad, &id, &err) == MLXR_ERR_RANGE, "bad token accepted");
    bad.n_prompt = N_CTX + 1;
    CHECK(mlxr_engine_submit(e, &bad, &id, &err) == MLXR_ERR_RANGE, "long prompt accepted");
    mlxr_engine_free(e);
    mlxr_engine_free(NULL);

    free(jobs);
    mlxr_model_free(m);
    return test_finish("sched_engine");
}
