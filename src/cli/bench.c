/*
 * bench.c - `mlxr bench`: prompt processing (pp: P tokens in batches) and text generation
 * (tg: N tokens one at a time) speed over several repetitions, like llama-bench: a warm-up run,
 * then R timed runs on a cleared KV cache; mean and standard deviation of tokens/s.
 *
 * With --parallel N, N requests of P prompt and N generated tokens go through the engine at once
 * (continuous batching): total and per-request tokens/s. With --prefix-share, the requests share
 * a P-token prefix (then 16 tokens of their own): time to first token without and with the
 * prefix cache (one request runs first to fill it, then the N run together).
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

typedef struct par_req {
    double t_first;
    mlxr_request_stats st;
} par_req;

static void par_done(void *user, uint64_t id, const mlxr_request_stats *st) {
    (void)id;
    ((par_req *)user)->st = *st;
}

/* Fill ids[0..n) with random token ids from *x (fixed seed: the work does not depend on them). */
static void random_ids(int32_t *ids, int32_t n, int32_t n_vocab, uint64_t *x) {
    for (int32_t i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((*x >> 33) % (uint64_t)n_vocab);
    }
}

/* One engine run: n_req requests of prompts[i] (plen tokens each), gen tokens each; the first
 * alone first when warm. Fills reqs[]; returns wall seconds of the concurrent part, or -1. */
static double engine_run(mlxr_model *m, const mlxr_engine_opts *eo, int32_t *const *prompts,
                         int32_t plen, int32_t gen, int n_req, bool warm, par_req *reqs) {
    mlxr_engine *e = NULL;
    mlxr_err err = {0};
    if (mlxr_engine_new(m, eo, &e, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        return -1;
    }
    mlxr_request r = {0};
    r.sampler = mlxr_sampler_default_opts();
    r.sampler.temp = 0;
    r.n_prompt = plen;
    r.max_tokens = gen;
    r.ignore_eog = true;
    r.on_done = par_done;
    uint64_t id;
    int first = 0;
    if (warm) {
        r.prompt = prompts[0];
        r.user = &reqs[0];
        if (mlxr_engine_submit(e, &r, &id, &err) != MLXR_OK) goto fail;
        mlxr_engine_wait_idle(e);
        first = 1;
    }
    double t0 = cli_now_s();
    for (int i = first; i < n_req; i++) {
        r.prompt = prompts[i];
        r.user = &reqs[i];
        if (mlxr_engine_submit(e, &r, &id, &err) != MLXR_OK) goto fail;
    }
    mlxr_engine_wait_idle(e);
    double t = cli_now_s() - t0;
    mlxr_engine_free(e);
    return t;
fail:
    cli_error("submit: %s", err.msg);
    mlxr_engine_free(e);
    return -1;
}

/* --parallel N [--prefix-share]: see the file comment. */
static int bench_engine(mlxr_model *m, const char *model, long P, long N, long T, long n_par,
                        bool prefix_share, bool json, mlxr_kv_type kv_type, long ngl) {
    const mlxr_model_info *info = mlxr_model_get_info(m);
    const int32_t plen = (int32_t)(prefix_share ? P + 16 : P);
    if (plen < 1 || N < 1) return cli_error("--parallel needs -p >= 1 and -n >= 1");
    mlxr_engine_opts eo = mlxr_engine_default_opts();
    eo.ctx.n_ctx = (int32_t)(plen + N + 1);
    eo.ctx.n_seq_max = (int32_t)n_par;
    eo.ctx.n_threads = (int32_t)T;
    eo.ctx.n_batch = 512;
    eo.ctx.kv_type = kv_type;
    eo.ctx.n_gpu_layers = (int32_t)ngl;
    const char *kvn = mlxr_kv_type_name(kv_type);
    int32_t **prompts = calloc((size_t)n_par, sizeof *prompts);
    par_req *reqs = calloc((size_t)n_par, sizeof *reqs);
    int rc = 1;
    if (!prompts || !reqs) {
        cli_error("out of memory for %ld requests", n_par);
        goto done;
    }
    uint64_t x = 42;
    for (long i = 0; i < n_par; i++) {
        if (!(prompts[i] = malloc((size_t)plen * sizeof **prompts))) {
            cli_error("out of memory for %ld requests", n_par);
            goto done;
        }
        if (prefix_share && i > 0) memcpy(prompts[i], prompts[0], (size_t)P * sizeof **prompts);
        const int32_t own = prefix_share && i > 0 ? (int32_t)P : 0;
        random_ids(prompts[i] + own, plen - own, info->n_vocab, &x);
    }
    if (!prefix_share) {
        double t = engine_run(m, &eo, prompts, plen, (int32_t)N, (int)n_par, false, reqs);
        if (t < 0) goto done;
        double per = 0, ttft = 0;
        for (long i = 0; i < n_par; i++) per += reqs[i].st.gen_tok_per_s, ttft += reqs[i].st.ttft_s;
        per /= (double)n_par;
        ttft /= (double)n_par;
        const double total = (double)(N * n_par) / t, all = (double)((P + N) * n_par) / t;
        if (json)
            printf("{\"model\": \"%s\", \"threads\": %ld, \"kv_type\": \"%s\", \"parallel\": %ld, "
                   "\"n_prompt\": %ld, \"n_gen\": %ld, \"wall_s\": %.3f, "
                   "\"gen_tok_s_total\": %.3f, \"gen_tok_s_per_seq\": %.3f, \"all_tok_s\": %.3f, "
                   "\"ttft_s_mean\": %.4f}\n",
                   model, T, kvn, n_par, P, N, t, total, per, all, ttft);
        else
            printf("parallel %ld: %ld prompt + %ld generated tokens each in %.3f s | generation "
                   "%.1f tok/s total, %.1f tok/s per sequence | prompt + generation %.1f tok/s | "
                   "mean TTFT %.4f s\n",
                   n_par, P, N, t, total, per, all, ttft);
        rc = 0;
        goto done;
    }
    double tt[2] = {0, 0}, cached[2] = {0, 0};
    for (int with = 0; with < 2; with++) {
        eo.no_prefix_cache = !with;
        if (engine_run(m, &eo, prompts, plen, (int32_t)N, (int)n_par, true, reqs) < 0) goto done;
        for (long i = 1; i < n_par; i++) tt[with] += reqs[i].st.ttft_s, cached[with] += reqs[i].st.n_cached;
        if (n_par > 1) tt[with] /= (double)(n_par - 1), cached[with] /= (double)(n_par - 1);
    }
    if (json)
        printf("{\"model\": \"%s\", \"threads\": %ld, \"kv_type\": \"%s\", \"parallel\": %ld, "
               "\"prefix\": %ld, \"ttft_s_no_cache\": %.4f, \"ttft_s_cache\": %.4f, "
               "\"cached_tokens_mean\": %.1f}\n",
               model, T, kvn, n_par, P, tt[0], tt[1], cached[1]);
    else
        printf("prefix-share: %ld requests, %ld shared + 16 own prompt tokens | mean TTFT %.4f s "
               "without the prefix cache, %.4f s with it (%.0f tokens from the cache per request)\n",
               n_par, P, tt[0], tt[1], cached[1]);
    rc = 0;
done: /* every failure above printed its own error */
    for (long i = 0; prompts && i < n_par; i++) free(prompts[i]);
    free(prompts);
    free(reqs);
    return rc;
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
    long P = 512, N = 128, T = 0, R = 5, n_par = 0, ngl = 0, ctx = 0;
    bool json = false, prefix_share = false;
    cli_kv kv = {0};
    mlxr_kv_type kv_type;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "--prefix-share")) {
            prefix_share = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr bench [-m MODEL] [-p 512] [-n 128] [-t THREADS] [-r 5] [-c N] [--json]\n"
                   "                  [--parallel N] [--prefix-share] [-ngl N] [--kv-type T]\n"
                   "  -ngl N           run on CUDA device 0 (N != 0: the whole model)\n"
                   "  -c N             context size (default: just what -p and -n need); a\n"
                   "                   server's context, e.g. 4096, makes the attention kernels\n"
                   "                   work as they do there\n"
                   "  --kv-type T      KV cache type: f16 (default), f32 or q8_0 (or llama.cpp's\n"
                   "                   -ctk T -ctv T, the same type)\n"
                   "  --parallel N     N requests at once through the engine (P prompt, N generated\n"
                   "                   tokens each): total and per-sequence generation tokens/s\n"
                   "  --prefix-share   the requests share a P-token prefix: time to first token\n"
                   "                   without and with the prefix cache (--parallel default 8)\n");
            return 0;
        }
        if (!(v = cli_value(argc, argv, &i))) return 1;
        const int kvf = cli_kv_flag(a, v, &kv);
        if (kvf < 0) return 1;
        if (kvf > 0) continue;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p")) { if (!cli_int(a, v, 0, 1 << 16, &P)) return 1; }
        else if (!strcmp(a, "-n")) { if (!cli_int(a, v, 0, 1 << 16, &N)) return 1; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { if (!cli_int(a, v, 1, 1024, &T)) return 1; }
        else if (!strcmp(a, "-r")) { if (!cli_int(a, v, 1, 1000, &R)) return 1; }
        else if (!strcmp(a, "--parallel")) { if (!cli_int(a, v, 1, 4096, &n_par)) return 1; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { if (!cli_int(a, v, 1, 1 << 20, &ctx)) return 1; }
        else if (!strcmp(a, "-ngl") || !strcmp(a, "--gpu-layers")) { if (!cli_int(a, v, -1, 1 << 20, &ngl)) return 1; }
        else return cli_error("unknown option '%s' for bench", a);
    }
    if (!cli_kv_type(&kv, &kv_type)) return 1;
    if (!model) model = cli_default_model();
    if (T == 0) T = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    mlxr_model *m = cli_load_model_gpu(model, false, ngl != 0);
    if (!m) return 1;
    if (n_par > 0 || prefix_share) {
        int brc = bench_engine(m, model, P, N, T, n_par > 0 ? n_par : 8, prefix_share, json,
                               kv_type, ngl);
        mlxr_model_free(m);
        return brc;
    }
    const mlxr_model_info *info = mlxr_model_get_info(m);
    int32_t n_ctx = (int32_t)(P > N ? P : N);
    if (n_ctx < ctx) n_ctx = (int32_t)ctx;
    if (n_ctx < 1) n_ctx = 1;
    mlxr_context_opts co = mlxr_context_default_opts();
    co.n_ctx = n_ctx;
    co.n_threads = (int32_t)T;
    co.n_batch = 512;
    co.n_gpu_layers = (int32_t)ngl;
    co.kv_type = kv_type;
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
        printf("{\"model\": \"%s\", \"params\": %lld, \"threads\": %ld, \"isa\": \"%s\", "
               "\"kv_type\": \"%s\", \"n_prompt\": %ld, "
               "\"n_gen\": %ld, \"reps\": %ld, \"pp_tok_s\": %.3f, \"pp_sd\": %.3f, "
               "\"tg_tok_s\": %.3f, \"tg_sd\": %.3f}\n",
               model, (long long)info->n_params, T, mlxr_context_isa(c), mlxr_kv_type_name(kv_type),
               P, N, R, ppm, pps, tgm, tgs);
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
