/*
 * native.c - mlxr's own endpoints: /health, /, /metrics, /tokenize, /detokenize, /apply-template,
 * the table of running requests (GET /v1/requests, POST /v1/requests/{id}/cancel), and
 * embeddings (501 for now: the public API does not expose hidden states).
 */
#include "server/http.h"

#include "server/stopmatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result mlxr_native_health(mlxr_http_req *r) {
    return mlxr_http_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

enum MHD_Result mlxr_native_root(mlxr_http_req *r) {
    static const char msg[] = "mlxr is running";
    return mlxr_http_text(r, 200, "text/plain; charset=utf-8", msg, sizeof msg - 1);
}

/* Append printf output to a malloc'ed text (*p, *len); false when out of memory. */
static bool text_appendf(char **p, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool text_appendf(char **p, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *q = n < 0 ? NULL : realloc(*p, *len + (size_t)n + 1);
    if (!q) return false;
    va_start(ap, fmt);
    vsnprintf(q + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *p = q;
    *len += (size_t)n;
    return true;
}

/* Per-model engine series: sequences, queue, KV pool blocks, prefix cache. The engine's counts
 * are as of the end of its last step. Also sets the global queue / running gauges. */
static bool engine_metrics(mlxr_server *s, char **text, size_t *len) {
    static const char head[] =
        "# HELP mlxr_engine_running Sequences in the model's batch.\n"
        "# TYPE mlxr_engine_running gauge\n"
        "# HELP mlxr_engine_waiting Requests waiting for a sequence slot or KV blocks.\n"
        "# TYPE mlxr_engine_waiting gauge\n"
        "# HELP mlxr_kv_blocks KV pool blocks by state (used: held by a sequence; cached: "
        "kept for the prefix cache, evictable; free).\n"
        "# TYPE mlxr_kv_blocks gauge\n"
        "# HELP mlxr_kv_block_tokens Positions per KV block.\n"
        "# TYPE mlxr_kv_block_tokens gauge\n"
        "# HELP mlxr_prefix_cache_tokens_total Prompt tokens served from the prefix cache.\n"
        "# TYPE mlxr_prefix_cache_tokens_total counter\n"
        "# HELP mlxr_prefill_tokens_total Prompt tokens run through the model.\n"
        "# TYPE mlxr_prefill_tokens_total counter\n"
        "# HELP mlxr_prefix_cache_hit_ratio Cached / (cached + prefilled) prompt tokens.\n"
        "# TYPE mlxr_prefix_cache_hit_ratio gauge\n"
        "# HELP mlxr_engine_preemptions_total Sequences preempted for KV space.\n"
        "# TYPE mlxr_engine_preemptions_total counter\n"
        "# HELP mlxr_engine_steps_total Batches run.\n"
        "# TYPE mlxr_engine_steps_total counter\n";
    if (!text_appendf(text, len, "%s", head)) return false;
    int running = 0, waiting = 0;
    pthread_mutex_lock(&s->models_mu);
    for (size_t i = 0; i < s->n_models; i++) {
        mlxr_served_model *m = s->models[i];
        if (!m->engine) continue;
        mlxr_engine_stats es;
        mlxr_gen_engine_stats(m->engine, &es);
        int32_t q = 0, run = 0;
        mlxr_gen_engine_load(m->engine, &q, &run);
        running += run;
        waiting += q;
        uint64_t hit = es.n_tokens_cached, all = es.n_tokens_cached + es.n_tokens_prefilled;
        const char *k = m->key; /* "name:tag": registry names hold no quotes or backslashes */
        if (!text_appendf(text, len,
                          "mlxr_engine_running{model=\"%s\"} %d\n"
                          "mlxr_engine_waiting{model=\"%s\"} %d\n"
                          "mlxr_kv_blocks{model=\"%s\",state=\"used\"} %d\n"
                          "mlxr_kv_blocks{model=\"%s\",state=\"cached\"} %d\n"
                          "mlxr_kv_blocks{model=\"%s\",state=\"free\"} %d\n"
                          "mlxr_kv_block_tokens{model=\"%s\"} %d\n"
                          "mlxr_prefix_cache_tokens_total{model=\"%s\"} %llu\n"
                          "mlxr_prefill_tokens_total{model=\"%s\"} %llu\n"
                          "mlxr_prefix_cache_hit_ratio{model=\"%s\"} %.6f\n"
                          "mlxr_engine_preemptions_total{model=\"%s\"} %llu\n"
                          "mlxr_engine_steps_total{model=\"%s\"} %llu\n",
                          k, es.n_running, k, es.n_waiting, k, es.kv.n_used, k, es.kv.n_cached, k,
                          es.kv.n_free, k, es.kv.block_tokens, k, (unsigned long long)hit, k,
                          (unsigned long long)es.n_tokens_prefilled, k,
                          all ? (double)hit / (double)all : 0.0, k,
                          (unsigned long long)es.n_preempt, k, (unsigned long long)es.n_steps)) {
            pthread_mutex_unlock(&s->models_mu);
            return false;
        }
    }
    pthread_mutex_unlock(&s->models_mu);
    mlxr_metrics_queue_set(s->metrics, waiting);
    mlxr_metrics_running_set(s->metrics, running);
    return true;
}

enum MHD_Result mlxr_native_metrics(mlxr_http_req *r) {
    size_t len = 0, elen = 0;
    char *etext = NULL, *text = NULL;
    bool ok = engine_metrics(r->srv, &etext, &elen) &&
              (text = mlxr_metrics_render(r->srv->metrics, &len)) &&
              text_appendf(&text, &len, "%s", etext);
    free(etext);
    if (!ok) {
        free(text);
        return mlxr_http_errorf(r, 500, "server_error", NULL, "out of memory");
    }
    enum MHD_Result ret = mlxr_http_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return ret;
}

enum MHD_Result mlxr_native_tokenize(mlxr_http_req *r) {
    mlxr_api_tokenize t;
    mlxr_api_error e;
    if (!mlxr_api_parse_tokenize(r->body, r->body_len, &t, &e)) return mlxr_http_error(r, &e);
    mlxr_served_model *m;
    size_t n = 0;
    int32_t *ids = NULL;
    bool ok = mlxr_server_model(r->srv, t.model, &m, &e);
    if (ok) {
        ok = (ids = mlxr_server_tokenize(mlxr_gen_engine_model(m->engine), t.content,
                                         t.content_len, t.add_special, t.parse_special, &n, &e));
        mlxr_server_model_done(r->srv, m, -2);
    }
    mlxr_api_tokenize_free(&t);
    if (!ok) return mlxr_http_error(r, &e);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer(ids[i]));
    free(ids);
    return mlxr_http_json(r, 200, json_pack("{s:o}", "tokens", arr));
}

/* POST /apply-template: the body of a chat request ({"model"?, "messages", "tools"?}); answers
 * {"prompt": the text the model's template renders, generation prompt included}, exactly what
 * a chat request would tokenize (llama.cpp's server has the same endpoint). */
enum MHD_Result mlxr_native_apply_template(mlxr_http_req *r) {
    mlxr_api_req q;
    mlxr_api_error e;
    if (!mlxr_api_parse(MLXR_API_CHAT, r->body, r->body_len, &q, &e)) return mlxr_http_error(r, &e);
    mlxr_served_model *m;
    char *text = NULL;
    size_t len = 0;
    bool ok = mlxr_server_model(r->srv, q.model, &m, &e);
    if (ok) {
        ok = mlxr_server_render_chat(mlxr_gen_engine_model(m->engine), &q, &text, &len, &e);
        mlxr_server_model_done(r->srv, m, -2);
    }
    mlxr_api_req_free(&q);
    if (!ok) return mlxr_http_error(r, &e);
    json_t *j = json_pack("{s:s%}", "prompt", text, len);
    mlxr_free(text);
    return mlxr_http_json(r, 200, j);
}

enum MHD_Result mlxr_native_detokenize(mlxr_http_req *r) {
    mlxr_api_detokenize t;
    mlxr_api_error e;
    if (!mlxr_api_parse_detokenize(r->body, r->body_len, &t, &e)) return mlxr_http_error(r, &e);
    mlxr_served_model *m;
    if (!mlxr_server_model(r->srv, t.model, &m, &e)) {
        mlxr_api_detokenize_free(&t);
        return mlxr_http_error(r, &e);
    }
    e.status = 0;
    const mlxr_model *model = mlxr_gen_engine_model(m->engine);
    int32_t n_vocab = mlxr_model_get_info(model)->n_vocab;
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    bool ok = out != NULL;
    for (size_t i = 0; ok && i < t.n_tokens; i++) {
        if (t.tokens[i] >= n_vocab) {
            mlxr_api_error_set(&e, 400, "invalid_request_error", NULL, "tokens",
                               "tokens[%zu] = %d is outside the vocabulary (0..%d)", i,
                               t.tokens[i], n_vocab - 1);
            ok = false;
            break;
        }
        char piece[256];
        size_t pl = 0;
        if (mlxr_token_to_piece(model, t.tokens[i], piece, sizeof piece, &pl, NULL) != MLXR_OK) pl = 0;
        if (len + pl > cap) {
            char *p = realloc(out, (cap = (len + pl) * 2));
            if (!p) {
                ok = false;
                break;
            }
            out = p;
        }
        memcpy(out + len, piece, pl);
        len += pl;
    }
    mlxr_server_model_done(r->srv, m, -2);
    mlxr_api_detokenize_free(&t);
    if (!ok) {
        free(out);
        if (e.status == 400) return mlxr_http_error(r, &e);
        return mlxr_http_errorf(r, 500, "server_error", NULL, "out of memory");
    }
    json_t *j = json_pack("{s:o}", "content", mlxr_json_text(out, len));
    free(out);
    return mlxr_http_json(r, 200, j);
}

enum MHD_Result mlxr_native_requests(mlxr_http_req *r) {
    mlxr_server *s = r->srv;
    json_t *arr = json_array();
    pthread_mutex_lock(&s->active_mu);
    for (size_t i = 0; i < s->n_active; i++) {
        mlxr_active *a = &s->active[i];
        mlxr_gen_stats st;
        mlxr_gen_get_stats(a->g, &st);
        mlxr_gen_finish f = mlxr_gen_finish_reason(a->g);
        const char *state = f != MLXR_GEN_RUNNING ? "finishing" : st.t_start ? "running" : "queued";
        char id[32];
        snprintf(id, sizeof id, "%llu", (unsigned long long)mlxr_gen_id(a->g));
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:i}", "id", id, "model",
                                             a->model, "endpoint", a->endpoint, "state", state,
                                             "created", (json_int_t)a->created, "prompt_tokens",
                                             st.n_prompt, "completion_tokens", st.n_gen));
    }
    pthread_mutex_unlock(&s->active_mu);
    return mlxr_http_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", arr));
}

enum MHD_Result mlxr_native_cancel(mlxr_http_req *r) {
    mlxr_server *s = r->srv;
    char *end;
    unsigned long long id = strtoull(r->path_arg, &end, 10);
    bool found = false;
    if (*end == '/' && end != r->path_arg) {
        pthread_mutex_lock(&s->active_mu);
        for (size_t i = 0; i < s->n_active; i++)
            if (mlxr_gen_id(s->active[i].g) == id) {
                mlxr_gen_cancel(s->active[i].g);
                found = true;
            }
        pthread_mutex_unlock(&s->active_mu);
    }
    if (!found)
        return mlxr_http_errorf(r, 404, "invalid_request_error", "request_not_found",
                                "no running request with id '%.*s'",
                                (int)strcspn(r->path_arg, "/"), r->path_arg);
    return mlxr_http_json(r, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id, "cancelled", 1));
}
