/*
 * openai.c - the OpenAI-compatible endpoints: GET /v1/models, POST /v1/completions and
 * POST /v1/chat/completions (JSON, or SSE "data: {...}" chunks closed by "data: [DONE]").
 */
#include "server/http.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static json_t *usage_json(mlxr_gen *g) {
    mlxr_gen_stats st;
    mlxr_gen_get_stats(g, &st);
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", st.n_prompt, "completion_tokens", st.n_gen,
                     "total_tokens", st.n_prompt + st.n_gen);
}

enum MHD_Result mlxr_openai_models(mlxr_http_req *r) {
    char **names = NULL;
    size_t n = mlxr_server_model_names(r->srv, &names);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        if (names[i])
            json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", names[i], "object",
                                                  "model", "created", (json_int_t)r->srv->started,
                                                  "owned_by", "mlxr"));
        free(names[i]);
    }
    free(names);
    return mlxr_http_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

enum MHD_Result mlxr_openai_model(mlxr_http_req *r) {
    char **names = NULL;
    size_t n = mlxr_server_model_names(r->srv, &names);
    json_t *found = NULL;
    char want[256];
    const char *id = r->path_arg;
    snprintf(want, sizeof want, strchr(id, ':') ? "%s" : "%s:latest", id);
    for (size_t i = 0; i < n; i++) {
        if (!found && names[i] && !strcmp(names[i], want))
            found = json_pack("{s:s,s:s,s:I,s:s}", "id", names[i], "object", "model", "created",
                              (json_int_t)r->srv->started, "owned_by", "mlxr");
        free(names[i]);
    }
    free(names);
    if (!found)
        return mlxr_http_errorf(r, 404, "invalid_request_error", "model_not_found",
                                "The model '%s' does not exist", id);
    return mlxr_http_json(r, 200, found);
}

/* ---- logprobs -------------------------------------------------------------------------------- */

/* Every released logprob entry not taken yet (malloc'ed into *out; 0 and NULL when none). */
static size_t take_logprobs(mlxr_gen *g, mlxr_gen_logprob **out) {
    size_t n = 0, cap = 0;
    *out = NULL;
    for (;;) {
        if (cap - n < 64) {
            mlxr_gen_logprob *p = realloc(*out, (cap + 256) * sizeof *p);
            if (!p) break;
            *out = p;
            cap += 256;
        }
        size_t k = mlxr_gen_read_logprobs(g, *out + n, cap - n);
        n += k;
        if (k == 0) break;
    }
    return n;
}

/* JSON numbers must be finite: OpenAI writes -9999.0 for a probability of zero. */
static double lp_num(float lp) { return isfinite(lp) && lp > -9999.0f ? lp : -9999.0; }

/* A token's text (its piece; invalid UTF-8 becomes U+FFFD) and, if bytes, its raw bytes. */
static json_t *token_text(const mlxr_model *m, int32_t id, json_t **bytes) {
    char buf[256];
    size_t n = 0;
    if (mlxr_token_to_piece(m, id, buf, sizeof buf, &n, NULL) != MLXR_OK) n = 0;
    if (bytes) {
        *bytes = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(*bytes, json_integer((unsigned char)buf[i]));
    }
    return mlxr_json_text(buf, n);
}

/* [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}] (chat and Ollama). */
static json_t *logprob_entries(const mlxr_model *m, const mlxr_gen_logprob *lp, size_t n) {
    json_t *content = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *bytes, *top = json_array();
        for (int32_t k = 0; k < lp[i].n_top; k++) {
            json_t *tb, *tt = token_text(m, lp[i].top_id[k], &tb);
            json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", tt, "logprob",
                                                 lp_num(lp[i].top_lp[k]), "bytes", tb));
        }
        json_t *t = token_text(m, lp[i].token, &bytes);
        json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", t, "logprob",
                                                 lp_num(lp[i].logprob), "bytes", bytes,
                                                 "top_logprobs", top));
    }
    return content;
}

json_t *mlxr_logprobs_released(mlxr_gen *g) {
    mlxr_gen_logprob *lp;
    size_t n = take_logprobs(g, &lp);
    json_t *j = n ? logprob_entries(mlxr_gen_model(g), lp, n) : NULL;
    free(lp);
    return j;
}

/* Legacy completions: {tokens, token_logprobs, top_logprobs: [{text: logprob}], text_offset};
 * text_offset counts UTF-8 characters of the completion before each token. */
static json_t *completion_logprobs(const mlxr_model *m, const mlxr_gen_logprob *lp, size_t n) {
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(toks, token_text(m, lp[i].token, NULL));
        json_array_append_new(lps, json_real(lp_num(lp[i].logprob)));
        json_t *top = json_object();
        for (int32_t k = 0; k < lp[i].n_top; k++) {
            json_t *t = token_text(m, lp[i].top_id[k], NULL);
            /* tokens with the same text share a key, as OpenAI's dicts do: keep the likelier */
            if (t && !json_object_get(top, json_string_value(t)))
                json_object_set_new(top, json_string_value(t), json_real(lp_num(lp[i].top_lp[k])));
            json_decref(t);
        }
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)lp[i].char_start));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs",
                     tops, "text_offset", offs);
}

/* The logprobs of what has been released so far (JSON null when none are wanted). */
static json_t *released_logprobs(mlxr_gen *g, bool chat, bool wanted, size_t *n_out) {
    *n_out = 0;
    if (!wanted) return json_null();
    mlxr_gen_logprob *lp;
    size_t n = take_logprobs(g, &lp);
    json_t *j = n == 0 ? json_null()
                : chat ? json_pack("{s:o}", "content", logprob_entries(mlxr_gen_model(g), lp, n))
                       : completion_logprobs(mlxr_gen_model(g), lp, n);
    free(lp);
    *n_out = n;
    return j;
}

/* One SSE chunk of a completion or chat stream. */
static json_t *chunk(mlxr_stream *s, json_t *choice) {
    bool chat = s->kind == MLXR_API_CHAT;
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", s->id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)s->created, "model", s->model, "choices", choice);
}

static void fmt_openai(mlxr_stream *s, const char *text, size_t len, bool final) {
    bool chat = s->kind == MLXR_API_CHAT;
    if (chat && !s->sent_first) {
        s->sent_first = true;
        mlxr_stream_sse(s, chunk(s, json_pack("{s:i,s:{s:s,s:s},s:n,s:n}", "index", 0, "delta",
                                              "role", "assistant", "content", "", "logprobs",
                                              "finish_reason")));
    }
    /* a chunk's logprobs are those of the tokens whose text it completes */
    size_t n_lp = 0;
    json_t *lp = released_logprobs(s->g, chat, s->logprobs, &n_lp);
    if (len > 0 || n_lp > 0) {
        json_t *t = mlxr_json_text(text ? text : "", len);
        mlxr_stream_sse(s, chunk(s, chat ? json_pack("{s:i,s:{s:o},s:o,s:n}", "index", 0, "delta",
                                                     "content", t, "logprobs", lp, "finish_reason")
                                         : json_pack("{s:o,s:i,s:o,s:n}", "text", t, "index", 0,
                                                     "logprobs", lp, "finish_reason")));
    } else {
        json_decref(lp);
    }
    if (!final) return;
    mlxr_gen_finish f = mlxr_gen_finish_reason(s->g);
    if (f == MLXR_GEN_ERROR) {
        char msg[256];
        mlxr_gen_error(s->g, msg, sizeof msg);
        mlxr_stream_sse(s, json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg, "type",
                                     "server_error", "param", "code"));
    }
    const char *why = mlxr_finish_name(f);
    mlxr_stream_sse(s, chunk(s, chat ? json_pack("{s:i,s:{},s:n,s:s}", "index", 0, "delta",
                                                 "logprobs", "finish_reason", why)
                                     : json_pack("{s:s,s:i,s:n,s:s}", "text", "", "index", 0,
                                                 "logprobs", "finish_reason", why)));
    if (s->include_usage) {
        json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", s->id, "object",
                              chat ? "chat.completion.chunk" : "text_completion", "created",
                              (json_int_t)s->created, "model", s->model, "choices", "usage",
                              usage_json(s->g));
        mlxr_stream_sse(s, j);
    }
    mlxr_stream_append(s, "data: [DONE]\n\n", 14);
}

static enum MHD_Result generate(mlxr_http_req *r, mlxr_api_kind kind) {
    mlxr_api_req req;
    mlxr_api_error e;
    if (!mlxr_api_parse(kind, r->body, r->body_len, &req, &e)) return mlxr_http_error(r, &e);
    mlxr_served_model *m;
    mlxr_gen *g;
    bool ok = mlxr_server_submit(r->srv, &req, r->route, &m, &g, &e);
    bool stream = req.stream, include_usage = req.include_usage, logprobs = req.params.logprobs;
    mlxr_api_req_free(&req);
    if (!ok) return mlxr_http_error(r, &e);
    bool chat = kind == MLXR_API_CHAT;
    mlxr_stream init = {0};
    snprintf(init.id, sizeof init.id, "%s-%llu", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)mlxr_gen_id(g));
    snprintf(init.model, sizeof init.model, "%s", m->key);
    init.created = (int64_t)time(NULL);
    init.include_usage = include_usage;
    init.logprobs = logprobs;
    init.kind = kind;
    if (stream) return mlxr_http_stream(r, g, "text/event-stream", fmt_openai, &init);

    size_t len = 0;
    char *text = mlxr_http_collect(r, g, &len);
    mlxr_gen_finish f = mlxr_gen_finish_reason(g);
    enum MHD_Result ret;
    if (f == MLXR_GEN_ERROR || !text) {
        char msg[256] = "out of memory";
        if (f == MLXR_GEN_ERROR) mlxr_gen_error(g, msg, sizeof msg);
        ret = mlxr_http_errorf(r, 500, "server_error", NULL, "generation failed: %s", msg);
    } else {
        json_t *t = mlxr_json_text(text, len);
        size_t n_lp;
        json_t *lp = released_logprobs(g, chat, logprobs, &n_lp);
        json_t *choice = chat ? json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", 0, "message",
                                          "role", "assistant", "content", t, "logprobs", lp,
                                          "finish_reason", mlxr_finish_name(f))
                              : json_pack("{s:o,s:i,s:o,s:s}", "text", t, "index", 0, "logprobs",
                                          lp, "finish_reason", mlxr_finish_name(f));
        ret = mlxr_http_json(r, 200, json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", init.id,
                                               "object", chat ? "chat.completion" : "text_completion",
                                               "created", (json_int_t)init.created, "model",
                                               init.model, "choices", choice, "usage",
                                               usage_json(g)));
    }
    free(text);
    mlxr_server_retire(r->srv, g);
    mlxr_gen_release(g);
    return ret;
}

enum MHD_Result mlxr_openai_completions(mlxr_http_req *r) {
    return generate(r, MLXR_API_COMPLETION);
}

enum MHD_Result mlxr_openai_chat(mlxr_http_req *r) { return generate(r, MLXR_API_CHAT); }
