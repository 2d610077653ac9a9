/*
 * test_reference.c - the engine against llama.cpp's reference outputs (testdata/reference/, see
 * its README): for every case whose model's weight types this build supports,
 *  1. the prompt tokenizes to `prompt_ids`;
 *  2. greedy decoding, token by token, gives the `.ref` text byte for byte (and its ids);
 *  3. teacher forcing (prompt + all generated ids in one batch) gives logits within the README's
 *     tolerance of every step's top-5, and the same top-1 wherever the reference margin is clear;
 *  4. the last prompt position's top-20 logits agree by id.
 * Models with types not supported yet must fail to load with MLXR_ERR_UNSUPPORTED.
 */
#include "test.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>

#include "mlxr.h"

typedef struct tol {
    const char *model;
    bool supported;
    double abs;    /* |dlogit| bound */
    double rel;    /* or this fraction of the step's largest |logit|, whichever is larger */
    double margin; /* top-1 must match where the reference margin exceeds this */
} tol;

/* From reference/README.md "Recommended checks" (our KV cache is F16, as the reference's). */
static const tol TOLS[] = {
    {"stories260K", true, 0.03, 0, 0.06},
    {"llama-2-tiny-random", true, 2e-3, 5e-4, 4e-3},
    {"toy-f16", true, 2e-3, 5e-4, 4e-3},
    {"pydoc-7M-f16", true, 0.02, 0, 0.04},
    {"toy-q8_0", true, 0.03, 0, 0.05},
    {"pydoc-7M-q8_0", true, 0.3, 0, 0.3},
    {"toy-q4_0", true, 0.03, 0, 0.05},
    {"toy-q4_k_m", true, 0.03, 0, 0.05},
    {"toy-q6_k", true, 0.03, 0, 0.05},
    {"pydoc-7M-q4_0", true, 0.3, 0, 0.3},
    {"pydoc-7M-q4_k_m", true, 0.3, 0, 0.3},
};

static const tol *find_tol(const char *model_file) {
    for (size_t i = 0; i < sizeof TOLS / sizeof *TOLS; i++) {
        size_t n = strlen(TOLS[i].model);
        if (!strncmp(model_file, TOLS[i].model, n) && !strcmp(model_file + n, ".gguf")) return &TOLS[i];
    }
    return NULL;
}

static int32_t *json_ids(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

/* Compare logits with a list of [id, logit] pairs; returns the largest |d|. */
static double cmp_top(const float *logits, json_t *top, double bound, const char *what, int step,
                      const char *cs) {
    double worst = 0;
    for (size_t k = 0; k < json_array_size(top); k++) {
        json_t *pair = json_array_get(top, k);
        int id = (int)json_integer_value(json_array_get(pair, 0));
        double ref = json_number_value(json_array_get(pair, 1));
        double d = fabs((double)logits[id] - ref);
        if (d > worst) worst = d;
        CHECK(d <= bound, "%s %s step %d id %d: logit %.6f vs reference %.6f (|d| %.2e > %.2e)", cs,
              what, step, id, (double)logits[id], ref, d, bound);
    }
    return worst;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* 3 + 4: one batch with prompt and generated ids, logits everywhere. */
static void teacher_forced(mlxr_model *m, const tol *t, json_t *root, const char *cs, int isa,
                           int threads) {
    size_t np, ng;
    int32_t *prompt = json_ids(json_object_get(root, "prompt_ids"), &np);
    int32_t *gen = json_ids(json_object_get(root, "generated_ids"), &ng);
    size_t n = np + ng - 1; /* the last generated id's logits are not in the reference */
    int32_t *ids = malloc(n * sizeof *ids), *pos = malloc(n * sizeof *pos), *seq = calloc(n, sizeof *seq);
    int8_t *want = malloc(n);
    for (size_t i = 0; i < n; i++) {
        ids[i] = i < np ? prompt[i] : gen[i - np];
        pos[i] = (int32_t)i;
        want[i] = i + 1 >= np;
    }
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = 512;
    co.n_batch = (int32_t)n;
    co.n_threads = threads;
    co.isa_max = isa;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    CHECK(mlxr_context_new(m, &co, &c, &err) == MLXR_OK, "%s: context: %s", cs, err.msg);
    mlxr_batch b = {(int32_t)n, ids, pos, seq, want};
    CHECK(c && mlxr_decode(c, &b, &err) == MLXR_OK, "%s: decode: %s", cs, err.msg);
    const int n_vocab = mlxr_model_get_info(m)->n_vocab;
    json_t *steps = json_object_get(root, "steps");
    double worst = 0;
    for (size_t i = 0; c && i < json_array_size(steps); i++) {
        json_t *st = json_array_get(steps, i);
        const float *lg = mlxr_get_logits(c, (int32_t)(np - 1 + i));
        CHECK(lg != NULL, "%s: no logits at step %zu", cs, i);
        if (!lg) break;
        json_t *top = json_object_get(st, "top");
        double top1 = fabs(json_number_value(json_array_get(json_array_get(top, 0), 1)));
        double bound = fmax(t->abs, t->rel * top1);
        double w = cmp_top(lg, top, bound, "teacher-forced", (int)i, cs);
        if (w > worst) worst = w;
        double margin = json_number_value(json_object_get(st, "margin"));
        int ref_id = (int)json_integer_value(json_object_get(st, "id"));
        if (margin > t->margin)
            CHECK(argmax(lg, n_vocab) == ref_id, "%s step %zu: top-1 %d, reference %d (margin %.3f)",
                  cs, i, argmax(lg, n_vocab), ref_id, margin);
    }
    if (c) {
        json_t *last = json_object_get(json_object_get(root, "last_prompt_logits"), "top");
        const float *lg = mlxr_get_logits(c, (int32_t)np - 1);
        double top1 = fabs(json_number_value(json_array_get(json_array_get(last, 0), 1)));
        cmp_top(lg, last, fmax(t->abs, t->rel * top1), "last-prompt top-20", -1, cs);
    }
    fprintf(stderr, "  %-36s isa %d threads %d: teacher-forced max |dlogit| %.2e over %zu steps\n",
            cs, isa, threads, worst, json_array_size(steps));
    mlxr_context_free(c);
    free(prompt);
    free(gen);
    free(ids);
    free(pos);
    free(seq);
    free(want);
}

/* 1 + 2: tokenize the prompt, decode greedily token by token, compare ids and text. */
static void greedy(mlxr_model *m, json_t *root, const char *ref_text, size_t ref_len, long n_ref,
                   const char *cs) {
    const char *prompt = json_string_value(json_object_get(root, "prompt"));
    size_t np_ref, ng;
    int32_t *prompt_ref = json_ids(json_object_get(root, "prompt_ids"), &np_ref);
    int32_t *gen_ref = json_ids(json_object_get(root, "generated_ids"), &ng);
    int32_t ids[1024];
    size_t np = 0;
    mlxr_err err = {0};
    CHECK(mlxr_tokenize(m, prompt, strlen(prompt), true, false, ids, 1024, &np, &err) == MLXR_OK,
          "%s: tokenize: %s", cs, err.msg);
    bool same = np == np_ref && !memcmp(ids, prompt_ref, np * sizeof *ids);
    CHECK(same, "%s: prompt ids differ (%zu vs %zu tokens)", cs, np, np_ref);
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = 512;
    co.n_threads = 2;
    mlxr_context *c = NULL;
    CHECK(mlxr_context_new(m, &co, &c, &err) == MLXR_OK, "%s: context: %s", cs, err.msg);
    int32_t *pos = malloc(np * sizeof *pos), *seq = calloc(np, sizeof *seq);
    for (size_t i = 0; i < np; i++) pos[i] = (int32_t)i;
    mlxr_batch b = {(int32_t)np, ids, pos, seq, NULL};
    CHECK(c && mlxr_decode(c, &b, &err) == MLXR_OK, "%s: prompt decode: %s", cs, err.msg);
    char *text = malloc(n_ref * 64 + 1);
    size_t tl = 0;
    const int n_vocab = mlxr_model_get_info(m)->n_vocab;
    for (long i = 0; c && i < n_ref; i++) {
        /* after the prompt the kept logits are its last entry's; after that, entry 0's */
        int32_t tok = argmax(mlxr_get_logits(c, i == 0 ? (int32_t)np - 1 : 0), n_vocab);
        CHECK(tok == gen_ref[i], "%s: greedy step %ld: id %d, reference %d", cs, i, tok, gen_ref[i]);
        size_t len = 0;
        CHECK(mlxr_token_to_piece(m, tok, text + tl, 64, &len, &err) == MLXR_OK, "%s: piece", cs);
        tl += len;
        int32_t p = (int32_t)(np + i), s0 = 0;
        mlxr_batch one = {1, &tok, &p, &s0, NULL};
        CHECK(mlxr_decode(c, &one, &err) == MLXR_OK, "%s: decode: %s", cs, err.msg);
    }
    CHECK(tl == ref_len && !memcmp(text, ref_text, tl), "%s: text differs from .ref (%zu vs %zu bytes)",
          cs, tl, ref_len);
    free(text);
    free(pos);
    free(seq);
    free(prompt_ref);
    free(gen_ref);
    mlxr_context_free(c);
}

static void run_case(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    CHECK(root != NULL, "cannot parse %s: %s", path, jerr.text);
    if (!root) return;
    const char *model_file = json_string_value(json_object_get(root, "model"));
    const char *model_rel = json_string_value(json_object_get(root, "model_path"));
    const tol *t = find_tol(model_file);
    CHECK(t != NULL, "no tolerance for model %s", model_file);
    char *mpath = test_data_path(model_rel);
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    mlxr_status st = mlxr_model_load(mpath, NULL, &m, &err);
    char cs[256];
    snprintf(cs, sizeof cs, "%.*s", (int)(strlen(name) - 5), name);
    if (t && !t->supported) {
        CHECK(st == MLXR_ERR_UNSUPPORTED && strstr(err.msg, "tensor '"),
              "%s: expected an 'unsupported type' error, got %d: %s", cs, st, err.msg);
        fprintf(stderr, "  %-36s not supported yet: %s\n", cs, err.msg);
    } else if (t) {
        CHECK(st == MLXR_OK, "%s: load: %s", cs, err.msg);
    }
    if (st == MLXR_OK && t && t->supported) {
        snprintf(path + strlen(path) - 4, 5, "ref");
        size_t len;
        char *ref = test_read_file(path, &len);
        CHECK(ref != NULL, "cannot read %s", path);
        /* header: model path, prompt, N; the text is every byte after the third newline */
        char *p = ref;
        for (int k = 0; ref && k < 3; k++) p = strchr(p, '\n') + 1;
        long n_ref = ref ? strtol(strchr(strchr(ref, '\n') + 1, '\n') + 1, NULL, 10) : 0;
        if (ref) greedy(m, root, p, len - (size_t)(p - ref), n_ref, cs);
        teacher_forced(m, t, root, cs, 0, 2);
        free(ref);
    }
    mlxr_model_free(m);
    free(mpath);
    json_decref(root);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
    char *dir = test_data_path("reference");
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) names[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    CHECK(n == 44, "expected 44 reference cases, found %d", n);
    for (int i = 0; i < n; i++) {
        run_case(dir, names[i]);
        free(names[i]);
    }
    /* the scalar kernels must pass the same checks: one F16, one Q8_0 and one Q4_K/Q6_K model */
    const char *scalar_cases[] = {"pydoc-7M-f16__dict_maps.json", "toy-q8_0__lily.json",
                                  "toy-q4_k_m__lily.json"};
    for (size_t i = 0; i < sizeof scalar_cases / sizeof *scalar_cases; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, scalar_cases[i]);
        json_t *root = json_load_file(path, 0, NULL);
        char *mpath = test_data_path(json_string_value(json_object_get(root, "model_path")));
        mlxr_model *m = NULL;
        if (mlxr_model_load(mpath, NULL, &m, NULL) == MLXR_OK)
            teacher_forced(m, find_tol(json_string_value(json_object_get(root, "model"))), root,
                           scalar_cases[i], 1, 1);
        mlxr_model_free(m);
        free(mpath);
        json_decref(root);
    }
    free(dir);
    return test_finish("model_reference");
}
