/*
 * metrics.h - daemon counters and histograms, rendered as Prometheus text (GET /metrics).
 *
 * Every function is thread-safe (one mutex; updates are a few additions). Endpoint labels are
 * route names chosen by the router (a fixed set), never raw URLs, so the series stay bounded.
 */
#ifndef MLXR_SERVER_METRICS_H
#define MLXR_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mlxr_metrics mlxr_metrics;

mlxr_metrics *mlxr_metrics_new(void);
void mlxr_metrics_free(mlxr_metrics *m);

/* One finished HTTP request on route `endpoint` (static string) with `status`. */
void mlxr_metrics_request(mlxr_metrics *m, const char *endpoint, int status);
/* Prompt tokens evaluated / tokens generated. */
void mlxr_metrics_tokens(mlxr_metrics *m, int64_t n_in, int64_t n_out);
/* Time to first token and the time of each later token, seconds. */
void mlxr_metrics_ttft(mlxr_metrics *m, double s);
void mlxr_metrics_token_latency(mlxr_metrics *m, double s);
/* Gauges: add deltas (queue depth, running sequences) or set (loaded models). */
void mlxr_metrics_queue_add(mlxr_metrics *m, int delta);
void mlxr_metrics_running_add(mlxr_metrics *m, int delta);
void mlxr_metrics_models_set(mlxr_metrics *m, int n);
void mlxr_metrics_queue_set(mlxr_metrics *m, int n);
void mlxr_metrics_running_set(mlxr_metrics *m, int n);

/* The exposition text (malloc'ed, NUL-terminated; free()); NULL when out of memory. */
char *mlxr_metrics_render(mlxr_metrics *m, size_t *len);

#endif
