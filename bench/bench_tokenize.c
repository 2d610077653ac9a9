/*
 * bench_tokenize.c - tokenizer throughput (MB/s of UTF-8 input) for the vocabularies in the shared
 * test data, on a deterministic mixed-language text (English prose, German, French, Russian,
 * Chinese, Japanese, code, numbers and whitespace runs, assembled by a fixed-seed generator).
 *
 *   build/mlxr-bench-tokenize [-d TESTDATA] [-s MB] [-r REPEATS] [--dump FILE] [VOCAB ...]
 *
 * VOCAB names a tokenizer/ggml-vocab-VOCAB.gguf (default: llama-spm gpt-2). Each vocabulary
 * tokenizes the whole text in one call (no special-token parsing, no BOS) REPEATS times after a
 * warm-up; the best and mean times are printed. --dump writes the text, so that
 * bench/peer/tokenize_bench.mjs can run llama.cpp on exactly the same bytes.
 */
#include "mlxr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const pieces[] = {
    "The quick brown fox jumps over the lazy dog. ",
    "It's a truth universally acknowledged, that a single man in possession of a good "
    "fortune must be in want of a wife. ",
    "Don't worry, we'll see what they've done -- it isn't over yet! ",
    "Die Würde des Menschen ist unantastbar. Sie zu achten und zu schützen ist "
    "Verpflichtung aller staatlichen Gewalt. ",
    "Élève, garçon, naïveté: l'été où tout a commencé. ",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. ",
    "我想在苹果公司工作，因为那里的工程师很优秀。",
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "안녕하세요, 만나서 반갑습니다. ",
    "\n\nfor (int i = 0; i < n; i++) {\n    sum += a[i] * b[i];\n}\n",
    "def f(x):\n\treturn x ** 2 + 3.14159 * x - 42\n",
    "Prices rose 3.7% in 2024, from $1,234.56 to $1,280.00. ",
    "    indented line with trailing spaces   \n",
    "🦙 llamas 🚀 and emoji 😀! ",
};

static char *make_text(size_t size, size_t *len) {
    char *s = malloc(size + 512);
    if (!s) return NULL;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    size_t n = 0;
    const size_t k = sizeof pieces / sizeof pieces[0];
    while (n < size) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const char *p = pieces[x % k];
        size_t m = strlen(p);
        memcpy(s + n, p, m);
        n += m;
    }
    *len = n;
    return s;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_one(const char *dir, const char *name, const char *text, size_t len, int repeats) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/ggml-vocab-%s.gguf", dir, name);
    mlxr_load_opts o = {NULL, NULL, true, false};
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    if (mlxr_model_load(path, &o, &m, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
        return 1;
    }
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids || mlxr_tokenize(m, text, len, false, false, ids, cap, &n, &err)) { /* warm-up */
        fprintf(stderr, "%s: tokenize failed: %s\n", name, err.msg);
        free(ids);
        mlxr_model_free(m);
        return 1;
    }
    double best = 1e30, sum = 0;
    for (int r = 0; r < repeats; r++) {
        double t0 = now_s();
        mlxr_tokenize(m, text, len, false, false, ids, cap, &n, &err);
        double dt = now_s() - t0;
        sum += dt;
        if (dt < best) best = dt;
    }
    printf(
        "%-16s %9zu bytes -> %8zu tokens  best %7.1f ms  %6.2f MB/s  (mean %6.2f MB/s, %d runs)\n",
        name, len, n, best * 1e3, (double)len / best / 1e6, (double)len / (sum / repeats) / 1e6,
        repeats);
    free(ids);
    mlxr_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = getenv("MLXR_TESTDATA");
    if (!dir || !*dir) dir = "../shared/testdata";
    const char *dump = NULL;
    double mb = 4;
    int repeats = 5, n_names = 0;
    const char *names[32];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-d") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "usage: %s [-d TESTDATA] [-s MB] [-r REPEATS] [--dump FILE] "
                    "[VOCAB ...]\n",
                    argv[0]);
            return 2;
        } else if (n_names < 32)
            names[n_names++] = argv[i];
    }
    if (mb <= 0 || mb > 1024 || repeats < 1) {
        fprintf(stderr, "bad -s or -r\n");
        return 2;
    }
    if (n_names == 0) names[n_names++] = "llama-spm", names[n_names++] = "gpt-2";
    size_t len = 0;
    char *text = make_text((size_t)(mb * 1e6), &len);
    if (!text) return 1;
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(text, 1, len, f) != len || fclose(f)) {
            fprintf(stderr, "cannot write %s\n", dump);
            return 1;
        }
    }
    int rc = 0;
    for (int i = 0; i < n_names; i++)
        rc |= bench_one(dir, names[i], text, len, repeats);
    free(text);
    return rc;
}
