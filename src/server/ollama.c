/*
 * ollama.c - the Ollama-compatible endpoints: /api/version, /api/tags, /api/show, /api/ps,
 * /api/generate and /api/chat (NDJSON streaming by default, or one JSON object). Durations are
 * nanoseconds, as Ollama reports them; errors are {"error": "..."}.
 */
#include "server/http.h"
#include "server/modelfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

/* RFC 3339 UTC time with nanoseconds, as Ollama writes "created_at". */
static void rfc3339(int64_t unix_s, long ns, char *buf, size_t cap) {
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%09ldZ", base, ns);
}

static void now_rfc3339(char *buf, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rfc3339(ts.tv_sec, ts.tv_nsec, buf, cap);
}

enum MHD_Result mlxr_ollama_version(mlxr_http_req *r) {
    return mlxr_http_json(r, 200, json_pack("{s:s}", "version", MLXR_SERVER_VERSION));
}

/* Catalog fields of a model known by key: the registry's row, else read from the file. */
static bool describe(mlxr_server *s, const char *key, mlxr_model_entry *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->reg_mu);
    mlxr_status st = s->reg ? mlxr_registry_find(s->reg, key, out, NULL) : MLXR_ERR_NOT_FOUND;
    pthread_mutex_unlock(&s->reg_mu);
    if (st == MLXR_OK) return true;
    char *path = NULL;
    pthread_mutex_lock(&s->models_mu);
    for (size_t i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i]->key, key)) path = strdup(s->models[i]->path);
    pthread_mutex_unlock(&s->models_mu);
    if (!path) return false;
    bool ok = mlxr_registry_describe(path, out, NULL) == MLXR_OK;
    struct stat sb;
    if (stat(path, &sb) == 0) out->created = (int64_t)sb.st_mtime; /* not installed: file time */
    const char *colon = strrchr(key, ':');
    snprintf(out->name, sizeof out->name, "%.*s", (int)(colon - key), key);
    snprintf(out->tag, sizeof out->tag, "%s", colon + 1);
    out->path = path;
    return ok;
}

static json_t *details_json(const mlxr_model_entry *e) {
    char psize[32];
    double p = (double)e->n_params;
    if (p >= 1e9) snprintf(psize, sizeof psize, "%.1fB", p / 1e9);
    else if (p >= 1e6) snprintf(psize, sizeof psize, "%.1fM", p / 1e6);
    else snprintf(psize, sizeof psize, "%.0fK", p / 1e3);
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", e->format,
                     "family", e->arch, "families", e->arch, "parameter_size", psize,
                     "quantization_level", e->quant);
}

static json_t *model_json(const mlxr_model_entry *e, const char *key) {
    char when[48];
    rfc3339(e->created, 0, when, sizeof when);
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", key, "model", key, "modified_at", when,
                     "size", (json_int_t)e->size, "digest", e->sha256, "details", details_json(e));
}

enum MHD_Result mlxr_ollama_tags(mlxr_http_req *r) {
    char **names = NULL;
    size_t n = mlxr_server_model_names(r->srv, &names);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        mlxr_model_entry e;
        if (names[i] && describe(r->srv, names[i], &e)) json_array_append_new(arr, model_json(&e, names[i]));
        if (names[i]) mlxr_model_entry_clear(&e);
        free(names[i]);
    }
    free(names);
    return mlxr_http_json(r, 200, json_pack("{s:o}", "models", arr));
}

enum MHD_Result mlxr_ollama_show(mlxr_http_req *r) {
    char *name = NULL;
    mlxr_api_error err;
    if (!mlxr_api_parse_model_only(r->body, r->body_len, &name, &err)) return mlxr_http_error(r, &err);
    char key[256];
    const char *want = name ? name : r->srv->default_key;
    snprintf(key, sizeof key, strchr(want, ':') ? "%s" : "%s:latest", want);
    free(name);
    char **names = NULL;
    size_t n = mlxr_server_model_names(r->srv, &names);
    bool known = false;
    for (size_t i = 0; i < n; i++) {
        known |= names[i] && !strcmp(names[i], key);
        free(names[i]);
    }
    free(names);
    mlxr_model_entry e;
    if (!known || !describe(r->srv, key, &e)) {
        if (known) mlxr_model_entry_clear(&e);
        return mlxr_http_errorf(r, 404, "invalid_request_error", "model_not_found",
                                "model '%s' not found", key);
    }
    char ctx_key[96];
    snprintf(ctx_key, sizeof ctx_key, "%s.context_length", e.arch);
    json_t *info = json_pack("{s:s,s:I,s:i}", "general.architecture", e.arch,
                             "general.parameter_count", (json_int_t)e.n_params, ctx_key, e.n_ctx);
    /* the Modelfile settings of /api/create, if any; a stored TEMPLATE is shown in place of
     * the model's own chat template (but not used: it is a Go template) */
    mlxr_modelfile mf = {0};
    json_t *stored = e.modelfile ? json_loads(e.modelfile, 0, NULL) : NULL;
    if (stored && mlxr_modelfile_from_json(stored, &mf, NULL) != MLXR_OK) mlxr_modelfile_free(&mf);
    json_decref(stored);
    char *mf_text = mlxr_modelfile_render(&mf, e.path ? e.path : key);
    char *params = mlxr_modelfile_params_text(&mf);
    const char *tmpl = mf.tmpl ? mf.tmpl : e.chat_template ? e.chat_template : "";
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:o,s:[s],s:s}", "modelfile", mf_text ? mf_text : "",
                          "parameters", params ? params : "", "template", tmpl, "details",
                          details_json(&e), "model_info", info, "capabilities", "completion",
                          "modified_at", "");
    if (mf.system) json_object_set_new(j, "system", json_string(mf.system));
    if (mf.license) json_object_set_new(j, "license", json_string(mf.license));
    if (mf.n_msgs) {
        json_t *ms = json_array();
        for (size_t i = 0; i < mf.n_msgs; i++)
            json_array_append_new(ms, json_pack("{s:s,s:s}", "role", mf.msgs[i].role, "content",
                                                mf.msgs[i].content));
        json_object_set_new(j, "messages", ms);
    }
    free(mf_text);
    free(params);
    mlxr_modelfile_free(&mf);
    char when[48];
    rfc3339(e.created, 0, when, sizeof when);
    json_object_set_new(j, "modified_at", json_string(when));
    mlxr_model_entry_clear(&e);
    return mlxr_http_json(r, 200, j);
}

enum MHD_Result mlxr_ollama_ps(mlxr_http_req *r) {
    mlxr_server *s = r->srv;
    json_t *arr = json_array();
    char **keys = NULL;
    size_t n = 0;
    int64_t *expires = calloc(s->n_models ? s->n_models : 1, sizeof *expires);
    int32_t *n_ctx = calloc(s->n_models ? s->n_models : 1, sizeof *n_ctx);
    int64_t now_ns = mlxr_gen_now_ns(), now_s = (int64_t)time(NULL);
    pthread_mutex_lock(&s->models_mu);
    keys = expires && n_ctx ? calloc(s->n_models ? s->n_models : 1, sizeof *keys) : NULL;
    for (size_t i = 0; keys && i < s->n_models; i++) {
        mlxr_served_model *m = s->models[i];
        if (!m->engine) continue;
        /* unix seconds when an idle model unloads; 0: never (keep_alive < 0) */
        expires[n] = m->keep_alive_s < 0 ? 0
                     : now_s + (m->last_used_ns + m->keep_alive_s * 1000000000 - now_ns) / 1000000000;
        n_ctx[n] = mlxr_gen_engine_n_ctx(m->engine);
        keys[n++] = strdup(m->key);
    }
    pthread_mutex_unlock(&s->models_mu);
    for (size_t i = 0; i < n; i++) {
        mlxr_model_entry e;
        if (keys[i] && describe(s, keys[i], &e)) {
            json_t *m = model_json(&e, keys[i]);
            char when[48] = "2999-01-01T00:00:00Z";
            if (expires[i]) rfc3339(expires[i], 0, when, sizeof when);
            json_object_set_new(m, "expires_at", json_string(when));
            /* Ollama's split: all of the weights on the GPU with -ngl, none without */
            json_t *size = json_object_get(m, "size");
            json_object_set_new(m, "size_vram",
                                json_integer(s->o.n_gpu_layers != 0 && size ? json_integer_value(size) : 0));
            json_object_set_new(m, "context_length", json_integer(n_ctx[i])); /* as Ollama */
            json_array_append_new(arr, m);
        }
        if (keys[i]) mlxr_model_entry_clear(&e);
        free(keys[i]);
    }
    free(keys);
    free(expires);
    free(n_ctx);
    return mlxr_http_json(r, 200, json_pack("{s:o}", "models", arr));
}

/* The closing fields of a generate/chat answer: reason and timings (ns). */
static void add_final(json_t *j, mlxr_gen *g, int64_t t_handler) {
    mlxr_gen_stats st;
    mlxr_gen_get_stats(g, &st);
    int64_t first = st.t_first ? st.t_first : st.t_end;
    json_object_set_new(j, "done_reason", json_string(mlxr_finish_name(mlxr_gen_finish_reason(g))));
    json_object_set_new(j, "total_duration", json_integer(mlxr_gen_now_ns() - t_handler));
    json_object_set_new(j, "load_duration", json_integer(st.t_submit - t_handler));
    json_object_set_new(j, "prompt_eval_count", json_integer(st.n_prompt));
    json_object_set_new(j, "prompt_eval_duration", json_integer(st.t_start ? first - st.t_start : 0));
    json_object_set_new(j, "eval_count", json_integer(st.n_gen));
    json_object_set_new(j, "eval_duration", json_integer(st.t_end - first));
}

/* One record: {"model","created_at", "response": text | "message": {...}, "done"}. */
static json_t *record(const char *model, mlxr_api_kind kind, const char *text, size_t len, bool done) {
    char when[48];
    now_rfc3339(when, sizeof when);
    json_t *t = mlxr_json_text(text ? text : "", len);
    if (kind == MLXR_API_OLLAMA_CHAT)
        return json_pack("{s:s,s:s,s:{s:s,s:o},s:b}", "model", model, "created_at", when,
                         "message", "role", "assistant", "content", t, "done", done);
    return json_pack("{s:s,s:s,s:o,s:b}", "model", model, "created_at", when, "response", t,
                     "done", done);
}

/* Add the log-probabilities released so far (if asked for and any) to a record. */
static void add_logprobs(json_t *j, mlxr_gen *g, bool wanted) {
    json_t *lp = wanted ? mlxr_logprobs_released(g) : NULL;
    if (lp) json_object_set_new(j, "logprobs", lp);
}

static void fmt_ollama(mlxr_stream *s, const char *text, size_t len, bool final) {
    /* a record's logprobs are those of the tokens whose text it completes */
    json_t *lp = s->logprobs ? mlxr_logprobs_released(s->g) : NULL;
    if (len > 0 || lp) {
        json_t *j = record(s->model, s->kind, text, len, false);
        if (lp) json_object_set_new(j, "logprobs", lp);
        mlxr_stream_ndjson(s, j);
    }
    if (!final) return;
    json_t *j = record(s->model, s->kind, "", 0, true);
    if (mlxr_gen_finish_reason(s->g) == MLXR_GEN_ERROR) {
        char msg[256];
        mlxr_gen_error(s->g, msg, sizeof msg);
        json_object_set_new(j, "error", json_string(msg));
    }
    add_final(j, s->g, s->created); /* `created` holds the handler's start time here */
    mlxr_stream_ndjson(s, j);
}

static enum MHD_Result generate(mlxr_http_req *r, mlxr_api_kind kind) {
    int64_t t0 = mlxr_gen_now_ns();
    mlxr_api_req req;
    mlxr_api_error e;
    if (!mlxr_api_parse(kind, r->body, r->body_len, &req, &e)) return mlxr_http_error(r, &e);
    bool empty = kind == MLXR_API_OLLAMA_CHAT ? req.n_msgs == 0 : !req.prompt || !*req.prompt;
    if (empty) { /* Ollama's way to load a model ("load"), or with keep_alive 0 unload it */
        mlxr_served_model *m;
        bool ok = mlxr_server_model(r->srv, req.model, &m, &e);
        int64_t keep = req.keep_alive_s;
        mlxr_api_req_free(&req);
        if (!ok) return mlxr_http_error(r, &e);
        mlxr_server_model_done(r->srv, m, keep);
        if (keep == 0) mlxr_server_unload_idle(r->srv, false);
        json_t *j = record(m->key, kind, "", 0, true);
        json_object_set_new(j, "done_reason", json_string(keep == 0 ? "unload" : "load"));
        return mlxr_http_json(r, 200, j);
    }
    mlxr_served_model *m;
    mlxr_gen *g;
    bool ok = mlxr_server_submit(r->srv, &req, r->route, &m, &g, &e);
    bool stream = req.stream, logprobs = req.params.logprobs;
    mlxr_api_req_free(&req);
    if (!ok) return mlxr_http_error(r, &e);
    mlxr_stream init = {0};
    snprintf(init.model, sizeof init.model, "%s", m->key);
    init.created = t0;
    init.kind = kind;
    init.logprobs = logprobs;
    if (stream) return mlxr_http_stream(r, g, "application/x-ndjson", fmt_ollama, &init);
    size_t len = 0;
    char *text = mlxr_http_collect(r, g, &len);
    enum MHD_Result ret;
    if (!text || mlxr_gen_finish_reason(g) == MLXR_GEN_ERROR) {
        char msg[256] = "out of memory";
        if (text) mlxr_gen_error(g, msg, sizeof msg);
        ret = mlxr_http_errorf(r, 500, "server_error", NULL, "generation failed: %s", msg);
    } else {
        json_t *j = record(m->key, kind, text, len, true);
        add_logprobs(j, g, logprobs);
        add_final(j, g, t0);
        ret = mlxr_http_json(r, 200, j);
    }
    free(text);
    mlxr_server_retire(r->srv, g);
    mlxr_gen_release(g);
    return ret;
}

enum MHD_Result mlxr_ollama_generate(mlxr_http_req *r) {
    return generate(r, MLXR_API_OLLAMA_GENERATE);
}

enum MHD_Result mlxr_ollama_chat(mlxr_http_req *r) { return generate(r, MLXR_API_OLLAMA_CHAT); }
