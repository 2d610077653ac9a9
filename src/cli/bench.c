/*
 * bench.c - `mlxr bench`: prompt processing (pp: P tokens in batches) and text generation
 * (tg: N tokens one at a time) speed over several repetitions, like llama-bench: a warm-up run,
 * then R timed runs on a cleared KV cache; mean and standard deviation of tokens/s.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Decode n tokens (pp: batches of up to n_batch; tg: one by one); returns seconds or -1. */
static double timed_decode(mlxr_context *c, const int32_t *ids, int32_t n, int32_t chunk) {
    mlxr_kv_clear(c, 0);
    mlxr_err err = {0};
    int32_t last;
    double t0 = cli_now_s();
    if (cli_decode(c, ids, n, 0, chunk, &last, &err) != MLXR_OK) {
        cli_error("decode failed: %s", err.msg);
        return -1;
    }
    return cli_now_s() - t0;
}

static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0;
}

int cli_bench(int argc, char **argv) {
    const char *model = NULL;
    long P = 512, N = 128, T = 0, R = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr bench [-m MODEL] [-p 512] [-n 128] [-t THREADS] [-r 5] [--json]\n");
            return 0;
        }
        if (!(v = cli_value(argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p")) { if (!cli_int(a, v, 0, 1 << 16, &P)) return 1; }
        else if (!strcmp(a, "-n")) { if (!cli_int(a, v, 0, 1 << 16, &N)) return 1; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!cli_int(a, v, 1, 1024, &T)) return 1; }
        else if (!strcmp(a, "-r")) { if (!cli_int(a, v, 1, 1000, &R)) return 1; }
        else return cli_error("unknown option '%s' for bench", a);
    }
    if (!model) model = cli_default_model();
    if (T == 0) T = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    mlxr_model *m = cli_load_model(model, false);
    if (!m) return 1;
    const mlxr_model_info *info = mlxr_model_get_info(m);
    int32_t n_ctx = (int32_t)(P > N ? P : N);
    if (n_ctx < 1) n_ctx = 1;
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = n_ctx;
    co.n_threads = (int32_t)T;
    co.n_batch = 512;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    int rc = 1;
    int32_t *ids = malloc((size_t)n_ctx * sizeof *ids);
    double *pp = calloc((size_t)R, sizeof *pp), *tg = calloc((size_t)R, sizeof *tg);
    if (!ids || !pp || !tg) {
        cli_error("out of memory");
        goto done;
    }
    if (mlxr_context_new(m, &co, &c, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        goto done;
    }
    /* random ids, fixed seed: the work does not depend on which tokens they are */
    uint64_t x = 42;
    for (int32_t i = 0; i < n_ctx; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % (uint64_t)info->n_vocab);
    }
    if (P > 0 && timed_decode(c, ids, (int32_t)(P < 32 ? P : 32), 512) < 0) goto done; /* warm-up */
    for (long r = 0; r < R; r++) {
        double a = P > 0 ? timed_decode(c, ids, (int32_t)P, 512) : 0;
        double b = N > 0 ? timed_decode(c, ids, (int32_t)N, 1) : 0;
        if (a < 0 || b < 0) goto done;
        pp[r] = P > 0 ? P / a : 0;
        tg[r] = N > 0 ? N / b : 0;
    }
    double ppm, pps, tgm, tgs;
    mean_sd(pp, (int)R, &ppm, &pps);
    mean_sd(tg, (int)R, &tgm, &tgs);
    if (json) {
        printf("{\"model\": \"%s\", \"params\": %lld, \"threads\": %ld, \"isa\": \"%s\", \"n_prompt\": %ld, "
               "\"n_gen\": %ld, \"reps\": %ld, \"pp_tok_s\": %.3f, \"pp_sd\": %.3f, "
               "\"tg_tok_s\": %.3f, \"tg_sd\": %.3f}\n",
               model, (long long)info->n_params, T, mlxr_context_isa(c), P, N, R, ppm, pps, tgm, tgs);
    } else {
        printf("| model | params | threads | isa | test | t/s |\n|---|---|---|---|---|---|\n");
        printf("| %s | %lld | %ld | %s | pp%ld | %.2f ± %.2f |\n", model, (long long)info->n_params, T,
               mlxr_context_isa(c), P, ppm, pps);
        printf("| %s | %lld | %ld | %s | tg%ld | %.2f ± %.2f |\n", model, (long long)info->n_params, T,
               mlxr_context_isa(c), N, tgm, tgs);
    }
    rc = 0;
done:
    free(ids);
    free(pp);
    free(tg);
    mlxr_context_free(c);
    mlxr_model_free(m);
    return rc;
}
