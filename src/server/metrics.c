/*
 * metrics.c - counters, gauges and histograms behind GET /metrics (Prometheus text format 0.0.4).
 *
 * One mutex guards every field. Histograms use fixed bucket bounds (seconds) chosen for a CPU
 * runner: a first token takes milliseconds to tens of seconds, later tokens 1 ms to 1 s.
 */
#include "server/metrics.h"
#include "util/strbuf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_REQ_SERIES 256
#define N_BUCKETS 12

typedef struct hist {
    const double *le;           /* N_BUCKETS upper bounds */
    uint64_t count[N_BUCKETS];  /* non-cumulative; rendered cumulatively */
    uint64_t n;
    double sum;
} hist;

static const double ttft_le[N_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const double tok_le[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.05,
                                         0.1,   0.2,    0.5,   1,    2.5,  5};

struct mlxr_metrics {
    pthread_mutex_t mu;
    struct {
        const char *endpoint;
        int status;
        uint64_t n;
    } req[N_REQ_SERIES];
    int n_req;
    uint64_t tokens_in, tokens_out;
    hist ttft, tok;
    int64_t queue, running, models;
};

mlxr_metrics *mlxr_metrics_new(void) {
    mlxr_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->ttft.le = ttft_le;
    m->tok.le = tok_le;
    return m;
}

void mlxr_metrics_free(mlxr_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void mlxr_metrics_request(mlxr_metrics *m, const char *endpoint, int status) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    int i = 0;
    for (; i < m->n_req; i++)
        if (m->req[i].status == status && !strcmp(m->req[i].endpoint, endpoint)) break;
    if (i == m->n_req && m->n_req < N_REQ_SERIES) {
        m->req[i].endpoint = endpoint;
        m->req[i].status = status;
        m->n_req++;
    }
    if (i < m->n_req) m->req[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void mlxr_metrics_tokens(mlxr_metrics *m, int64_t n_in, int64_t n_out) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->tokens_in += (uint64_t)n_in;
    m->tokens_out += (uint64_t)n_out;
    pthread_mutex_unlock(&m->mu);
}

static void hist_add(hist *h, double v) {
    for (int i = 0; i < N_BUCKETS; i++)
        if (v <= h->le[i]) {
            h->count[i]++;
            break;
        }
    h->n++;
    h->sum += v;
}

void mlxr_metrics_ttft(mlxr_metrics *m, double s) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    hist_add(&m->ttft, s);
    pthread_mutex_unlock(&m->mu);
}

void mlxr_metrics_token_latency(mlxr_metrics *m, double s) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    hist_add(&m->tok, s);
    pthread_mutex_unlock(&m->mu);
}

#define GAUGE_FN(fn, field, op)                                                                   \
    void fn(mlxr_metrics *m, int v) {                                                             \
        if (!m) return;                                                                           \
        pthread_mutex_lock(&m->mu);                                                               \
        m->field op v;                                                                            \
        pthread_mutex_unlock(&m->mu);                                                             \
    }
GAUGE_FN(mlxr_metrics_queue_add, queue, +=)
GAUGE_FN(mlxr_metrics_running_add, running, +=)
GAUGE_FN(mlxr_metrics_models_set, models, =)
GAUGE_FN(mlxr_metrics_queue_set, queue, =)
GAUGE_FN(mlxr_metrics_running_set, running, =)

static void render_hist(mlxr_strbuf *b, const char *name, const char *help, const hist *h) {
    mlxr_strbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < N_BUCKETS; i++) {
        cum += h->count[i];
        mlxr_strbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i], (unsigned long long)cum);
    }
    mlxr_strbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
              (unsigned long long)h->n, name, h->sum, name, (unsigned long long)h->n);
}

char *mlxr_metrics_render(mlxr_metrics *m, size_t *len) {
    mlxr_strbuf b = {0};
    pthread_mutex_lock(&m->mu);
    mlxr_strbuf_printf(&b, "# HELP mlxr_http_requests_total HTTP requests by endpoint and status.\n"
                  "# TYPE mlxr_http_requests_total counter\n");
    for (int i = 0; i < m->n_req; i++)
        mlxr_strbuf_printf(&b, "mlxr_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                  m->req[i].endpoint, m->req[i].status, (unsigned long long)m->req[i].n);
    mlxr_strbuf_printf(&b, "# HELP mlxr_prompt_tokens_total Prompt tokens evaluated.\n"
                  "# TYPE mlxr_prompt_tokens_total counter\nmlxr_prompt_tokens_total %llu\n"
                  "# HELP mlxr_generated_tokens_total Tokens generated.\n"
                  "# TYPE mlxr_generated_tokens_total counter\nmlxr_generated_tokens_total %llu\n",
              (unsigned long long)m->tokens_in, (unsigned long long)m->tokens_out);
    render_hist(&b, "mlxr_time_to_first_token_seconds",
                "Time from request queued to its first token.", &m->ttft);
    render_hist(&b, "mlxr_token_latency_seconds", "Time between consecutive generated tokens.",
                &m->tok);
    mlxr_strbuf_printf(&b, "# HELP mlxr_queue_depth Requests waiting for a model.\n"
                  "# TYPE mlxr_queue_depth gauge\nmlxr_queue_depth %lld\n"
                  "# HELP mlxr_running_sequences Sequences being generated.\n"
                  "# TYPE mlxr_running_sequences gauge\nmlxr_running_sequences %lld\n"
                  "# HELP mlxr_loaded_models Models resident in memory.\n"
                  "# TYPE mlxr_loaded_models gauge\nmlxr_loaded_models %lld\n",
              (long long)m->queue, (long long)m->running, (long long)m->models);
    pthread_mutex_unlock(&m->mu);
    char *text = mlxr_strbuf_done(&b);
    if (text) *len = b.len;
    return text;
}
