/*
 * embed.c - the embedding endpoints (embed.h): OpenAI /v1/embeddings, Ollama /api/embed and
 * the legacy /api/embeddings. The body parser is in embed_request.c.
 *
 * A request: parse and validate the body (mlxr_embed_parse: no model needed), take the model
 * (mlxr_server_model: loads it on first use and keeps it loaded until mlxr_server_model_done),
 * tokenize every text with BOS as the model asks, apply the context limit (OpenAI: 400; Ollama:
 * cut to the context unless truncate is false), then compute the vectors with mlxr_embed on a
 * context made for this request and freed before answering.
 *
 * Why a context per request rather than the model's generation engine: the engine has no
 * embedding path and its thread owns its context; a per-model embedding context would have to
 * be freed from every unload path of the model table. A fresh context costs a thread-pool start
 * and lazily mapped scratch (the logits buffer is never touched: mlxr_embed skips the output
 * projection), small next to the prompt's forward pass. It runs on the connection's thread
 * (libmicrohttpd gives each connection its own), with the server's thread count, so concurrent
 * embedding requests compete for the CPUs with each other and with generation; they never share
 * mutable state. Vectors are batch-invariant unless the server runs --no-batch-invariant, so a
 * text gets the same vector whatever else is in the request.
 *
 * Numbers go out with 9 significant digits (exact for float32) or, with OpenAI's
 * encoding_format "base64" (the openai npm client's default), as base64 of little-endian
 * float32 bytes.
 */
#include "server/embed.h"

#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(param, ...)                                                                            \
    mlxr_api_error_set(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

/* Token ids of every input, after the context limit, and their vectors; freed with job_free. */
typedef struct embed_job {
    int32_t **ids;
    size_t *n;
    size_t n_in;
    int64_t n_tokens; /* all inputs together */
    size_t longest;
    float *vec; /* [n_in][n_embd] */
} embed_job;

static void job_free(embed_job *j) {
    for (size_t i = 0; j->ids && i < j->n_in; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->n);
    free(j->vec);
}

/* Tokenize / check every input against the model and a context of `limit` tokens. */
static bool job_tokens(embed_job *j, const mlxr_embed_req *q, const mlxr_model *m, int32_t limit,
                       mlxr_api_error *e) {
    const int32_t n_vocab = mlxr_model_get_info(m)->n_vocab;
    j->n_in = q->n_in;
    j->ids = calloc(q->n_in ? q->n_in : 1, sizeof *j->ids);
    j->n = calloc(q->n_in ? q->n_in : 1, sizeof *j->n);
    if (!j->ids || !j->n)
        return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; i < q->n_in; i++) {
        const mlxr_embed_input *in = &q->in[i];
        if (in->text) {
            if (!(j->ids[i] = mlxr_server_tokenize(m, in->text, in->len, true, false, &j->n[i], e)))
                return false;
        } else {
            for (size_t k = 0; k < in->n_ids; k++)
                if (in->ids[k] >= n_vocab)
                    return BAD("input", "token id %d of input %zu is out of range 0..%d",
                               in->ids[k], i, n_vocab - 1);
            if (!(j->ids[i] = malloc(in->n_ids * sizeof *j->ids[i])))
                return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            memcpy(j->ids[i], in->ids, in->n_ids * sizeof *in->ids);
            j->n[i] = in->n_ids;
        }
        if (j->n[i] == 0)
            return BAD(q->kind == MLXR_EMBED_OLLAMA_LEGACY ? "prompt" : "input",
                       "input %zu has no tokens", i);
        if (j->n[i] > (size_t)limit) {
            if (q->kind == MLXR_EMBED_OPENAI)
                return mlxr_api_error_set(e, 400, "invalid_request_error",
                                          "context_length_exceeded", "input",
                                          "input %zu has %zu tokens; this model's context is %d "
                                          "tokens",
                                          i, j->n[i], limit);
            if (!q->truncate)
                return BAD("input",
                           "input length exceeds maximum context length: input %zu "
                           "has %zu tokens, the context is %d",
                           i, j->n[i], limit);
            j->n[i] = (size_t)limit; /* Ollama's truncate: keep the beginning */
        }
        j->n_tokens += (int64_t)j->n[i];
        if (j->n[i] > j->longest) j->longest = j->n[i];
    }
    return true;
}

/* Compute every vector on a context made for this request; stop early (an error nobody will
 * read) when the client hangs up or the server is stopping. */
static bool job_run(embed_job *j, mlxr_http_req *r, const mlxr_model *m, bool normalize,
                    mlxr_api_error *e) {
    mlxr_server *s = r->srv;
    const size_t E = (size_t)mlxr_model_n_embd(m);
    if (!(j->vec = calloc(j->n_in > 0 && E > 0 ? j->n_in * E : 1, sizeof *j->vec)))
        return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    if (j->n_in == 0) return true;
    mlxr_context_opts o = mlxr_context_default_opts();
    o.n_ctx = (int32_t)j->longest;
    o.n_batch = o.n_ctx < 512 ? o.n_ctx : 512;
    o.n_seq_max = 1;
    o.n_threads = s->o.n_threads;
    o.batch_invariant = !s->o.no_batch_invariant;
    mlxr_context *c = NULL;
    mlxr_err err = {0};
    /* the context only reads the model: the cast drops the const of the engine's accessor */
    mlxr_status st = mlxr_context_new((mlxr_model *)m, &o, &c, &err);
    for (size_t i = 0; st == MLXR_OK && i < j->n_in; i++) {
        if (i > 0 && (atomic_load(&s->stopping) || mlxr_http_client_gone(r->conn))) {
            mlxr_context_free(c);
            return mlxr_api_error_set(e, 503, "server_error", NULL, NULL,
                                      "cancelled: the client left or the server is stopping");
        }
        st = mlxr_embed(c, j->ids[i], (int32_t)j->n[i], MLXR_POOLING_LAST, normalize,
                        j->vec + i * E, &err);
    }
    mlxr_context_free(c);
    if (st == MLXR_OK) return true;
    const bool client = st == MLXR_ERR_RANGE || st == MLXR_ERR_INVALID;
    return mlxr_api_error_set(e, client ? 400 : 500,
                              client ? "invalid_request_error" : "server_error", NULL, NULL,
                              "embedding failed: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
}

/* A JSON array of n floats with 9 significant digits (exact for float32). */
static json_t *float_array(const float *v, size_t n) {
    json_t *a = json_array();
    for (size_t k = 0; a && k < n; k++) {
        /* round-trip through the shortest exact decimal so the printed number stays short */
        char buf[32];
        snprintf(buf, sizeof buf, "%.9g", isfinite(v[k]) ? (double)v[k] : 0.0);
        json_array_append_new(a, json_real(strtod(buf, NULL)));
    }
    return a;
}

/* Answer with j dumped at float32 precision (mlxr_http_json would print 17 digits). */
static enum MHD_Result answer(mlxr_http_req *r, json_t *j) {
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    if (!txt) return mlxr_http_errorf(r, 500, "server_error", NULL, "out of memory");
    enum MHD_Result ret = mlxr_http_text(r, 200, "application/json", txt, strlen(txt));
    free(txt);
    return ret;
}

static json_t *openai_body(const embed_job *j, const mlxr_embed_req *q, const char *model,
                           size_t E) {
    json_t *data = json_array();
    for (size_t i = 0; data && i < j->n_in; i++) {
        json_t *emb;
        if (q->base64) {
            char *b = malloc(4 * ((E * 4 + 2) / 3) + 1);
            if (!b) {
                json_decref(data);
                return NULL;
            }
            uint8_t *bytes = (uint8_t *)(j->vec + i * E); /* x86-64 and arm64: little-endian */
            mlxr_embed_base64(bytes, E * 4, b);
            emb = json_string(b);
            free(b);
        } else {
            emb = float_array(j->vec + i * E, E);
        }
        json_array_append_new(data, json_pack("{s:s,s:I,s:o*}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    return json_pack("{s:s,s:o*,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", model,
                     "usage", "prompt_tokens", (json_int_t)j->n_tokens, "total_tokens",
                     (json_int_t)j->n_tokens);
}

static json_t *ollama_body(const embed_job *j, const mlxr_embed_req *q, const char *model, size_t E,
                           int64_t t0, int64_t t_loaded) {
    if (q->kind == MLXR_EMBED_OLLAMA_LEGACY)
        return json_pack("{s:o*}", "embedding", j->n_in ? float_array(j->vec, E) : json_array());
    json_t *embs = json_array();
    for (size_t i = 0; embs && i < j->n_in; i++)
        json_array_append_new(embs, float_array(j->vec + i * E, E));
    const int64_t now = mlxr_gen_now_ns();
    return json_pack("{s:s,s:o*,s:I,s:I,s:I}", "model", model, "embeddings", embs, "total_duration",
                     (json_int_t)(now - t0), "load_duration", (json_int_t)(t_loaded - t0),
                     "prompt_eval_count", (json_int_t)j->n_tokens);
}

static enum MHD_Result handle(mlxr_http_req *r, mlxr_embed_kind kind) {
    const int64_t t0 = mlxr_gen_now_ns();
    mlxr_api_error e;
    mlxr_embed_req q;
    if (!mlxr_embed_parse(kind, r->body, r->body_len, &q, &e)) return mlxr_http_error(r, &e);
    mlxr_served_model *sm = NULL;
    if (!mlxr_server_model(r->srv, q.model, &sm, &e)) {
        mlxr_embed_req_free(&q);
        return mlxr_http_error(r, &e);
    }
    const int64_t t_loaded = mlxr_gen_now_ns();
    const mlxr_model *m = mlxr_gen_engine_model(sm->engine);
    int32_t limit = mlxr_gen_engine_n_ctx(sm->engine);
    if (q.num_ctx > 0 && q.num_ctx < limit) limit = q.num_ctx;
    const size_t E = (size_t)mlxr_model_n_embd(m);
    embed_job j = {0};
    bool ok =
        job_tokens(&j, &q, m, limit, &e) && job_run(&j, r, m, kind != MLXR_EMBED_OLLAMA_LEGACY, &e);
    /* the model may be unloaded from here on: m must not be used again */
    mlxr_server_model_done(r->srv, sm, q.keep_alive_s);
    enum MHD_Result ret;
    if (!ok) {
        ret = mlxr_http_error(r, &e);
    } else {
        ret = answer(r, kind == MLXR_EMBED_OPENAI ? openai_body(&j, &q, sm->key, E)
                                                  : ollama_body(&j, &q, sm->key, E, t0, t_loaded));
    }
    job_free(&j);
    mlxr_embed_req_free(&q);
    return ret;
}

enum MHD_Result mlxr_embed_openai(mlxr_http_req *r) {
    return handle(r, MLXR_EMBED_OPENAI);
}

enum MHD_Result mlxr_embed_ollama(mlxr_http_req *r) {
    return handle(r, MLXR_EMBED_OLLAMA);
}

enum MHD_Result mlxr_embed_ollama_legacy(mlxr_http_req *r) {
    return handle(r, MLXR_EMBED_OLLAMA_LEGACY);
}
