/*
 * test_gen.c - the generation layer on the batching engine (gen_engine.c) with the bundled
 * pydoc-7M model:
 * greedy text equals llama.cpp's reference, max_tokens and stop strings end it with the right
 * reason, cancel stops a queued and a running generation, a full queue is refused, and text
 * pulled in small reads equals the whole.
 */
#include "test.h"

#include "server/gen.h"

#include <unistd.h>

static char *read_all(mlxr_gen *g, size_t *len, size_t chunk) {
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    bool done = false;
    while (!done && n + chunk < cap) n += mlxr_gen_read(g, 50, out + n, chunk, &done);
    out[n] = '\0';
    *len = n;
    return out;
}

/* The reference text of a pydoc-7M-q8_0 case (prompt on line 2, count on 3, text after). */
static char *reference(const char *name, char *prompt, size_t cap, int *n_tokens) {
    char rel[128];
    snprintf(rel, sizeof rel, "reference/%s.ref", name);
    char *path = test_data_path(rel);
    size_t len = 0;
    char *data = test_read_file(path, &len);
    free(path);
    if (!data) return NULL;
    char *l2 = strchr(data, '\n') + 1, *l3 = strchr(l2, '\n') + 1, *text = strchr(l3, '\n') + 1;
    snprintf(prompt, cap, "%.*s", (int)(l3 - l2 - 1), l2);
    *n_tokens = atoi(l3);
    char *out = strdup(text);
    free(data);
    return out;
}

/* 8 greedy generations batched on one engine each equal the same one run alone (the engine is
 * batch-invariant); cancelling a running one and finishing the rest leaves no KV block held. */
static void test_batched(const char *prompt) {
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    if (mlxr_model_load(MLXR_SOURCE_DIR "/models/pydoc-7M-q8_0.gguf", NULL, &m, &err) != MLXR_OK)
        return;
    mlxr_gen_engine_opts o = {.n_threads = 2, .max_queue = 8, .n_seq_max = 8};
    mlxr_gen_engine *e = NULL;
    CHECK(mlxr_gen_engine_new(m, &o, &e, &err) == MLXR_OK, "batched engine: %s", err.msg);
    if (!e) return;
    int32_t ids[8][256];
    size_t n_ids[8];
    char *alone[8];
    mlxr_gen_params p = mlxr_gen_default_params();
    p.temperature = 0;
    bool full = false, done = false;
    for (int i = 0; i < 8; i++) {
        char text[300];
        snprintf(text, sizeof text, "%.*s", (int)strlen(prompt) - i, prompt); /* 8 prompts */
        mlxr_tokenize(mlxr_gen_engine_model(e), text, strlen(text), true, false, ids[i], 256,
                      &n_ids[i], &err);
        p.max_tokens = 20 + i;
        mlxr_gen *g = NULL;
        size_t len = 0;
        CHECK(mlxr_gen_submit(e, ids[i], n_ids[i], &p, &g, &full, &err) == MLXR_OK, "alone %d", i);
        alone[i] = g ? read_all(g, &len, 64) : strdup("");
        mlxr_gen_release(g);
    }
    mlxr_gen *g[9] = {0};
    for (int i = 0; i < 8; i++) {
        p.max_tokens = 20 + i;
        CHECK(mlxr_gen_submit(e, ids[i], n_ids[i], &p, &g[i], &full, &err) == MLXR_OK, "batch %d", i);
    }
    p.max_tokens = 400;
    CHECK(mlxr_gen_submit(e, ids[0], n_ids[0], &p, &g[8], &full, &err) == MLXR_OK, "long one");
    char buf[64];
    while (g[8] && mlxr_gen_read(g[8], 50, buf, sizeof buf, &done) == 0 && !done) {}
    if (g[8]) mlxr_gen_cancel(g[8]);
    for (int i = 0; i < 9; i++) {
        size_t len = 0;
        char *text = g[i] ? read_all(g[i], &len, 7) : strdup("");
        if (i < 8) CHECK(!strcmp(text, alone[i]), "batched %d: '%s' vs alone '%s'", i, text, alone[i]);
        else CHECK(mlxr_gen_finish_reason(g[i]) == MLXR_GEN_CANCELLED, "long one cancelled");
        free(text);
        mlxr_gen_release(g[i]);
        if (i < 8) free(alone[i]);
    }
    mlxr_engine_stats es = {0};
    for (int t = 0; t < 200; t++) { /* the engine publishes its counts after each step */
        mlxr_gen_engine_stats(e, &es);
        if (es.kv.n_used == 0 && es.n_running == 0) break;
        usleep(10000);
    }
    CHECK(es.kv.n_used == 0 && es.n_running == 0, "KV blocks still held: %d", es.kv.n_used);
    mlxr_gen_engine_free(e);
}

int main(void) {
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    if (mlxr_model_load(MLXR_SOURCE_DIR "/models/pydoc-7M-q8_0.gguf", NULL, &m, &err) != MLXR_OK) {
        fprintf(stderr, "cannot load the bundled model: %s\n", err.msg);
        return 1;
    }
    /* one sequence, one waiting */
    mlxr_gen_engine_opts o = {.n_threads = 2, .max_queue = 1, .n_seq_max = 1};
    mlxr_gen_engine *e = NULL;
    CHECK(mlxr_gen_engine_new(m, &o, &e, &err) == MLXR_OK, "engine: %s", err.msg);
    if (!e) return test_finish("server_gen");
    const mlxr_model *model = mlxr_gen_engine_model(e);

    char prompt[256];
    int n_ref = 0;
    char *want = reference("pydoc-7M-q8_0__dict_maps", prompt, sizeof prompt, &n_ref);
    CHECK(want != NULL, "reference file");
    int32_t ids[256];
    size_t n_ids = 0;
    CHECK(mlxr_tokenize(model, prompt, strlen(prompt), true, false, ids, 256, &n_ids, &err) == MLXR_OK, "tokenize");

    /* greedy == reference, pulled 3 bytes at a time */
    mlxr_gen_params p = mlxr_gen_default_params();
    p.temperature = 0;
    p.max_tokens = n_ref;
    mlxr_gen *g = NULL;
    bool full = false;
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &g, &full, &err) == MLXR_OK, "submit: %s", err.msg);
    size_t len = 0;
    char *text = read_all(g, &len, 3);
    CHECK(want && !strcmp(text, want), "greedy text differs:\n%s\n---\n%s", text, want ? want : "");
    CHECK(mlxr_gen_finish_reason(g) == MLXR_GEN_LENGTH, "finish %d", mlxr_gen_finish_reason(g));
    mlxr_gen_stats st;
    mlxr_gen_get_stats(g, &st);
    CHECK(st.n_gen == n_ref && st.n_prompt == (int32_t)n_ids && st.t_first >= st.t_start &&
              st.t_end >= st.t_first, "stats %d %d", st.n_gen, st.n_prompt);
    mlxr_gen_release(g);
    free(text);

    /* a stop string inside the reference text: output is the text before it */
    const char *stop = want ? strstr(want, "name") : NULL;
    if (stop) {
        const char *stops[] = {"name"};
        p.stop = stops;
        p.n_stop = 1;
        CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &g, &full, &err) == MLXR_OK, "submit stop");
        text = read_all(g, &len, 64);
        CHECK(len == (size_t)(stop - want) && !memcmp(text, want, len), "stop cut: '%s'", text);
        CHECK(mlxr_gen_finish_reason(g) == MLXR_GEN_STOP, "finish stop");
        mlxr_gen_release(g);
        free(text);
        p.stop = NULL;
        p.n_stop = 0;
    }

    /* one running + one queued fill a queue of 1; a third is refused; cancel ends both */
    p.max_tokens = 400;
    p.temperature = 0.8f;
    mlxr_gen *a = NULL, *b = NULL, *c = NULL;
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &a, &full, &err) == MLXR_OK, "submit a");
    char buf[64];
    bool done = false;
    while (mlxr_gen_read(a, 50, buf, sizeof buf, &done) == 0 && !done) {} /* a is running */
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &b, &full, &err) == MLXR_OK, "submit b");
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &c, &full, &err) == MLXR_ERR_RANGE && full && !c,
          "third refused: %s", err.msg);
    mlxr_gen_cancel(b);
    mlxr_gen_cancel(a);
    CHECK(mlxr_gen_wait(a, -1) && mlxr_gen_finish_reason(a) == MLXR_GEN_CANCELLED, "a cancelled");
    CHECK(mlxr_gen_wait(b, -1) && mlxr_gen_finish_reason(b) == MLXR_GEN_CANCELLED, "b cancelled");
    mlxr_gen_get_stats(a, &st);
    CHECK(st.n_gen < 400, "a stopped early: %d", st.n_gen);
    mlxr_gen_release(a);
    mlxr_gen_release(b);

    /* bad input */
    CHECK(mlxr_gen_submit(e, ids, 0, &p, &g, &full, &err) == MLXR_ERR_INVALID, "empty prompt");
    int32_t bad_id = 1 << 30;
    CHECK(mlxr_gen_submit(e, &bad_id, 1, &p, &g, &full, &err) == MLXR_ERR_INVALID, "bad id");
    int32_t *huge = calloc(5000, sizeof *huge);
    CHECK(mlxr_gen_submit(e, huge, 5000, &p, &g, &full, &err) == MLXR_ERR_RANGE && !full,
          "prompt longer than the context: %s", err.msg);
    free(huge);

    mlxr_logit_bias bias = {1 << 30, 1.0f}; /* a token id outside the vocabulary */
    p.logit_bias = &bias;
    p.n_logit_bias = 1;
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &g, &full, &err) == MLXR_ERR_RANGE && !g && !full,
          "logit bias for a token outside the vocabulary: %s", err.msg);
    p.logit_bias = NULL;
    p.n_logit_bias = 0;

    /* freeing the engine with work running and queued cancels it and returns */
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &a, &full, &err) == MLXR_OK, "submit before free");
    done = false;
    while (mlxr_gen_read(a, 50, buf, sizeof buf, &done) == 0 && !done) {} /* a is running */
    CHECK(mlxr_gen_submit(e, ids, n_ids, &p, &b, &full, &err) == MLXR_OK, "queued before free");
    mlxr_gen_engine_free(e);
    mlxr_gen_release(a); /* after the engine is gone only release is allowed */
    mlxr_gen_release(b);
    free(want);
    test_batched(prompt);
    return test_finish("server_gen");
}
