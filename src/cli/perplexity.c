/*
 * perplexity.c - `mlxr perplexity -m MODEL -f TEXT [-c N_CTX] [--base BASE_MODEL] [-t N] [--json]`:
 * llama.cpp's perplexity, and with --base its KL-divergence statistics, through the public API.
 *
 * As llama-perplexity: the whole file is tokenized with BOS, cut into floor(n_tokens / n_ctx)
 * chunks of n_ctx tokens (at least 2 are required), each chunk is evaluated from an empty KV cache
 * with its first token replaced by BOS, and only the second half is scored: the logits at
 * positions j = n_ctx/2 .. n_ctx-2 predict token j + 1. PPL = exp(mean NLL), and the printed
 * uncertainty is PPL * sqrt(var(NLL) / (N - 1)), llama.cpp's "Final estimate" line.
 *
 * With --base, the base model runs on the same tokens (chunk by chunk, both models loaded) and for
 * every scored position we add KL(base || model) = sum_v p_base(v) (log p_base(v) - log p_model(v))
 * and whether both models' top tokens agree, as llama-perplexity --kl-divergence does with a saved
 * base logits file. Reported: mean KLD and top-1 agreement with their standard errors, the base's
 * PPL and mean ln(PPL/PPL_base). All softmaxes are computed in double.
 *
 * The last line of the text output is one parseable summary, e.g.
 *   summary: ppl=12.3456 ppl_err=0.3210 tokens=1530 scored=635 chunks=5 n_ctx=256
 *            [base_ppl=12.3000 ln_ppl_ratio=0.0037 kld=0.001234 kld_err=0.000100 top1=0.9921
 *            top1_err=0.0035]   (one line)
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Running sums over the scored positions. */
typedef struct stats {
    int64_t n;
    double nll, nll2;           /* the model's negative log-likelihood */
    double base_nll, base_nll2; /* the base model's */
    double kld, kld2;           /* KL(base || model) */
    int64_t same_top;
} stats;

/* log-softmax of logits[0..n_vocab) into lp (double), returns the argmax. */
static int32_t log_softmax(const float *logits, int32_t n_vocab, double *lp) {
    int32_t top = 0;
    for (int32_t v = 1; v < n_vocab; v++)
        if (logits[v] > logits[top]) top = v;
    const double max = logits[top];
    double sum = 0;
    for (int32_t v = 0; v < n_vocab; v++)
        sum += exp((double)logits[v] - max);
    const double lse = max + log(sum);
    for (int32_t v = 0; v < n_vocab; v++)
        lp[v] = (double)logits[v] - lse;
    return top;
}

typedef struct runner {
    mlxr_model *m;
    mlxr_context *c;
} runner;

static int runner_open(runner *r, const char *path, int32_t n_ctx, long threads) {
    r->m = cli_load_model(path, false);
    if (!r->m) return 1;
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = n_ctx;
    o.n_batch = n_ctx < 512 ? n_ctx : 512;
    o.n_threads = (int32_t)threads;
    mlxr_err err = {0};
    if (mlxr_context_new(r->m, &o, &r->c, &err) != MLXR_OK)
        return cli_error("cannot create a context for '%s': %s", path, err.msg);
    return 0;
}

static void runner_close(runner *r) {
    mlxr_context_free(r->c);
    mlxr_model_free(r->m);
}

/*
 * Evaluate one chunk (n tokens from position 0) and copy the logits of positions first..n-2 into
 * out ([n - 1 - first][n_vocab]).
 */
static int eval_chunk(runner *r, const int32_t *tok, int32_t n, int32_t first, int32_t n_vocab,
                      float *out) {
    const int32_t n_batch = n < 512 ? n : 512;
    int32_t pos[512], seq[512];
    int8_t want[512];
    mlxr_kv_clear(r->c, 0);
    for (int32_t b0 = 0; b0 < n; b0 += n_batch) {
        const int32_t k = n - b0 < n_batch ? n - b0 : n_batch;
        for (int32_t j = 0; j < k; j++) {
            pos[j] = b0 + j;
            seq[j] = 0;
            want[j] = (int8_t)(b0 + j >= first && b0 + j < n - 1);
        }
        mlxr_batch b = {k, tok + b0, pos, seq, want};
        mlxr_err err = {0};
        if (mlxr_decode(r->c, &b, &err) != MLXR_OK) return cli_error("decode failed: %s", err.msg);
        for (int32_t j = 0; j < k; j++) {
            if (!want[j]) continue;
            const float *lg = mlxr_get_logits(r->c, j);
            if (!lg) return cli_error("no logits for position %d", b0 + j);
            memcpy(out + (size_t)(b0 + j - first) * (size_t)n_vocab, lg,
                   (size_t)n_vocab * sizeof(float));
        }
    }
    return 0;
}

/* Add the scored positions of one chunk to s. base may be NULL. */
static void score_chunk(const int32_t *tok, int32_t n, int32_t first, int32_t n_vocab,
                        const float *lg, const float *base, double *lp, double *lpb, stats *s) {
    for (int32_t j = first; j < n - 1; j++) {
        const size_t off = (size_t)(j - first) * (size_t)n_vocab;
        const int32_t next = tok[j + 1];
        const int32_t top = log_softmax(lg + off, n_vocab, lp);
        s->nll += -lp[next];
        s->nll2 += lp[next] * lp[next];
        s->n++;
        if (!base) continue;
        const int32_t top_b = log_softmax(base + off, n_vocab, lpb);
        double kld = 0;
        for (int32_t v = 0; v < n_vocab; v++)
            kld += exp(lpb[v]) * (lpb[v] - lp[v]);
        s->kld += kld;
        s->kld2 += kld * kld;
        s->base_nll += -lpb[next];
        s->base_nll2 += lpb[next] * lpb[next];
        s->same_top += top == top_b;
    }
}

/* Mean and standard error of a sum and sum of squares over n samples. */
static void mean_err(double sum, double sum2, int64_t n, double *mean, double *se) {
    *mean = sum / (double)n;
    const double var = sum2 / (double)n - *mean * *mean;
    *se = n > 1 && var > 0 ? sqrt(var / (double)(n - 1)) : 0.0;
}

static void report(const stats *s, bool has_base, size_t n_tokens, int32_t n_chunk, int32_t n_ctx,
                   bool json) {
    double nll, nll_se;
    mean_err(s->nll, s->nll2, s->n, &nll, &nll_se);
    const double ppl = exp(nll), ppl_err = nll_se * ppl;
    double bnll = 0, bse, kld = 0, kld_se = 0;
    double top1 = (double)s->same_top / (double)s->n;
    double top1_se = s->n > 1 ? sqrt(top1 * (1 - top1) / (double)(s->n - 1)) : 0.0;
    if (has_base) {
        mean_err(s->base_nll, s->base_nll2, s->n, &bnll, &bse);
        mean_err(s->kld, s->kld2, s->n, &kld, &kld_se);
    }
    if (json) {
        printf("{\"ppl\": %.6f, \"ppl_err\": %.6f, \"tokens\": %zu, \"scored\": %lld, "
               "\"chunks\": %d, \"n_ctx\": %d",
               ppl, ppl_err, n_tokens, (long long)s->n, n_chunk, n_ctx);
        if (has_base)
            printf(
                ", \"base_ppl\": %.6f, \"ln_ppl_ratio\": %.6f, \"kld\": %.8f, \"kld_err\": %.8f, "
                "\"top1\": %.6f, \"top1_err\": %.6f",
                exp(bnll), nll - bnll, kld, kld_se, top1, top1_se);
        printf("}\n");
        return;
    }
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, ppl_err);
    if (has_base) {
        printf("Base PPL = %.4f, mean ln(PPL/PPL_base) = %.6f\n", exp(bnll), nll - bnll);
        printf("Mean KLD = %.6f +/- %.6f, same top token = %.3f +/- %.3f %%\n", kld, kld_se,
               100 * top1, 100 * top1_se);
    }
    printf("summary: ppl=%.4f ppl_err=%.4f tokens=%zu scored=%lld chunks=%d n_ctx=%d", ppl, ppl_err,
           n_tokens, (long long)s->n, n_chunk, n_ctx);
    if (has_base)
        printf(" base_ppl=%.4f ln_ppl_ratio=%.6f kld=%.6f kld_err=%.6f top1=%.4f top1_err=%.4f",
               exp(bnll), nll - bnll, kld, kld_se, top1, top1_se);
    printf("\n");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("cannot open '%s'", path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 30) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    const bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        cli_error("cannot read '%s' (unreadable or over 1 GiB)", path);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Run every chunk through the model (and the base), accumulating into s. */
static int run_chunks(runner *mr, runner *br, int32_t *tok, int32_t n_chunk, int32_t n_ctx,
                      int32_t n_vocab, bool add_bos, int32_t bos, stats *s) {
    const int32_t first = n_ctx / 2, n_scored = n_ctx - 1 - first;
    float *lg = malloc((size_t)n_scored * (size_t)n_vocab * sizeof(float));
    float *blg = br ? malloc((size_t)n_scored * (size_t)n_vocab * sizeof(float)) : NULL;
    double *lp = malloc((size_t)n_vocab * sizeof(double));
    double *lpb = malloc((size_t)n_vocab * sizeof(double));
    int rc = (!lg || !lp || !lpb || (br && !blg)) ? cli_error("out of memory for logits") : 0;
    for (int32_t i = 0; i < n_chunk && rc == 0; i++) {
        int32_t *ct = tok + (size_t)i * (size_t)n_ctx;
        const int32_t saved = ct[0];
        if (add_bos) ct[0] = bos; /* each chunk starts like a document, as in llama.cpp */
        rc = eval_chunk(mr, ct, n_ctx, first, n_vocab, lg);
        if (rc == 0 && br) rc = eval_chunk(br, ct, n_ctx, first, n_vocab, blg);
        if (rc == 0) {
            score_chunk(ct, n_ctx, first, n_vocab, lg, blg, lp, lpb, s);
            fprintf(stderr, "[%d]%.4f%s", i + 1, exp(s->nll / (double)s->n),
                    i + 1 == n_chunk ? "\n" : ",");
        }
        ct[0] = saved;
    }
    free(lg);
    free(blg);
    free(lp);
    free(lpb);
    return rc;
}

int cli_perplexity(int argc, char **argv) {
    const char *model = NULL, *text_path = NULL, *base = NULL;
    long n_ctx = 512, T = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mlxr perplexity -m MODEL -f TEXT [-c N_CTX] [--base BASE_MODEL] "
                   "[-t THREADS] [--json]\n");
            return 0;
        }
        if (!(v = cli_value(argc, argv, &i))) return 1;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file"))
            text_path = v;
        else if (!strcmp(a, "--base"))
            base = v;
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!cli_int(a, v, 4, 1 << 20, &n_ctx)) return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_int(a, v, 1, 1024, &T)) return 1;
        } else
            return cli_error("unknown option '%s' for perplexity", a);
    }
    if (!model) model = cli_default_model();
    if (!text_path) return cli_error("perplexity needs a text file: -f TEXT");
    size_t len = 0;
    char *text = read_file(text_path, &len);
    if (!text) return 1;
    runner mr = {0}, br = {0};
    int32_t *tok = NULL;
    int rc = runner_open(&mr, model, (int32_t)n_ctx, T);
    if (rc == 0 && base) rc = runner_open(&br, base, (int32_t)n_ctx, T);
    size_t n_tok = 0;
    if (rc == 0 && !(tok = cli_tokenize_text(mr.m, text, len, true, &n_tok))) rc = 1;
    const mlxr_model_info *mi = rc == 0 ? mlxr_model_get_info(mr.m) : NULL;
    if (rc == 0 && base && mlxr_model_get_info(br.m)->n_vocab != mi->n_vocab)
        rc = cli_error("the base model's vocabulary (%d) differs from the model's (%d)",
                       mlxr_model_get_info(br.m)->n_vocab, mi->n_vocab);
    if (rc == 0 && n_tok < 2 * (size_t)n_ctx)
        rc = cli_error("%zu tokens: perplexity with a context of %ld needs at least %ld tokens",
                       n_tok, n_ctx, 2 * n_ctx);
    stats s = {0};
    int32_t n_chunk = 0;
    if (rc == 0) {
        n_chunk = (int32_t)(n_tok / (size_t)n_ctx);
        const bool add_bos = n_tok > 0 && tok[0] == mi->bos_id;
        fprintf(stderr,
                "perplexity: %zu tokens, %d chunks of %ld, scoring the second half of each\n",
                n_tok, n_chunk, n_ctx);
        rc = run_chunks(&mr, base ? &br : NULL, tok, n_chunk, (int32_t)n_ctx, mi->n_vocab, add_bos,
                        mi->bos_id, &s);
    }
    if (rc == 0) report(&s, base != NULL, n_tok, n_chunk, (int32_t)n_ctx, json);
    free(tok);
    free(text);
    runner_close(&br);
    runner_close(&mr);
    return rc;
}
