/*
 * models.c - the daemon's model table (names to loaded engines, loading on first use) and the
 * path from a parsed request to a queued generation: tokenize, check the context, submit.
 */
#include "server/server.h"

#include "server/modelfile.h"
#include "util/err.h"

#include <jansson.h>
#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *mlxr_finish_name(mlxr_gen_finish f) {
    switch (f) {
    case MLXR_GEN_LENGTH: return "length";
    case MLXR_GEN_CANCELLED: return "cancelled";
    case MLXR_GEN_ERROR: return "error";
    default: return "stop";
    }
}

/* "name" -> "name:latest"; copies into buf. */
static void canonical(const char *name, char *buf, size_t cap) {
    if (strchr(name, ':')) snprintf(buf, cap, "%s", name);
    else snprintf(buf, cap, "%s:latest", name);
}

/* The entry for key (models_mu held), or NULL. */
static mlxr_served_model *find_locked(mlxr_server *s, const char *key) {
    for (size_t i = 0; i < s->n_models; i++)
        if (!s->models[i]->removed && !strcmp(s->models[i]->key, key)) return s->models[i];
    return NULL;
}

static mlxr_served_model *add_locked(mlxr_server *s, const char *key, const char *path, int64_t size) {
    mlxr_served_model **arr = realloc(s->models, (s->n_models + 1) * sizeof *arr);
    if (!arr) return NULL;
    s->models = arr;
    mlxr_served_model *m = calloc(1, sizeof *m);
    if (!m || !(m->key = strdup(key)) || !(m->path = strdup(path))) {
        if (m) free(m->key);
        free(m);
        return NULL;
    }
    m->size = size;
    s->models[s->n_models++] = m;
    return m;
}

static int64_t file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n > 0 ? n : 0;
}

mlxr_status mlxr_server_add_model(mlxr_server *s, const char *name_or_path, char **key_out,
                                  mlxr_err *err) {
    char key[256];
    char *path = NULL;
    int64_t size = 0;
    mlxr_model_entry ent;
    pthread_mutex_lock(&s->reg_mu);
    mlxr_status st = s->reg ? mlxr_registry_find(s->reg, name_or_path, &ent, NULL) : MLXR_ERR_NOT_FOUND;
    pthread_mutex_unlock(&s->reg_mu);
    if (st == MLXR_OK) {
        snprintf(key, sizeof key, "%s:%s", ent.name, ent.tag);
        path = ent.path;
        ent.path = NULL;
        size = ent.size;
        mlxr_model_entry_clear(&ent);
    } else if (access(name_or_path, R_OK) == 0) {
        const char *base = strrchr(name_or_path, '/');
        base = base ? base + 1 : name_or_path;
        size_t n = strlen(base);
        if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
        snprintf(key, sizeof key, "%.*s:latest", (int)(n < 200 ? n : 200), base);
        path = strdup(name_or_path);
        size = file_size(name_or_path);
    } else {
        return MLXR_FAIL(err, MLXR_ERR_NOT_FOUND, "'%s' is neither an installed model nor a "
                         "readable file", name_or_path);
    }
    pthread_mutex_lock(&s->models_mu);
    mlxr_served_model *m = find_locked(s, key);
    if (!m && path) m = add_locked(s, key, path, size);
    pthread_mutex_unlock(&s->models_mu);
    free(path);
    if (!m) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    if (key_out && !(*key_out = strdup(key))) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    return MLXR_OK;
}

static int count_loaded_locked(mlxr_server *s) {
    int n = 0;
    for (size_t i = 0; i < s->n_models; i++) n += s->models[i]->engine != NULL;
    return n;
}

/* A loaded model no handler holds and no generation runs on (models_mu held). */
static bool idle_locked(mlxr_served_model *m) {
    if (!m->engine || m->users > 0) return false;
    int32_t q = 0, run = 0;
    mlxr_gen_engine_load(m->engine, &q, &run);
    return q == 0 && run == 0;
}

int mlxr_server_unload_idle(mlxr_server *s, bool all) {
    mlxr_gen_engine *drop[64];
    int n = 0;
    int64_t now = mlxr_gen_now_ns();
    pthread_mutex_lock(&s->models_mu);
    for (size_t i = 0; i < s->n_models && n < 64; i++) {
        mlxr_served_model *m = s->models[i];
        if (!m->engine) continue;
        if (!idle_locked(m)) {
            if (m->engine) m->last_used_ns = now; /* busy: its keep_alive counts from the end */
            continue;
        }
        if (all || (m->keep_alive_s >= 0 && now - m->last_used_ns >= m->keep_alive_s * 1000000000)) {
            drop[n++] = m->engine;
            m->engine = NULL;
        }
    }
    int loaded = count_loaded_locked(s);
    pthread_mutex_unlock(&s->models_mu);
    for (int i = 0; i < n; i++) mlxr_gen_engine_free(drop[i]);
    if (n) mlxr_metrics_models_set(s->metrics, loaded);
    return n;
}

/* Load m's engine if needed and count the caller as a user (load_mu serializes loads). */
static bool load_engine(mlxr_server *s, mlxr_served_model *m, mlxr_api_error *e) {
    /* fast path: loaded already (never wait behind another model's load) */
    pthread_mutex_lock(&s->models_mu);
    bool ready = m->engine != NULL;
    if (ready) m->users++;
    pthread_mutex_unlock(&s->models_mu);
    if (ready) return true;
    pthread_mutex_lock(&s->load_mu);
    pthread_mutex_lock(&s->models_mu);
    bool loaded = m->engine != NULL;
    if (loaded) m->users++;
    /* --max-loaded: make room by unloading the least recently used idle model */
    mlxr_gen_engine *evict = NULL;
    bool full = false;
    if (!loaded && s->o.max_loaded > 0 && count_loaded_locked(s) >= s->o.max_loaded) {
        mlxr_served_model *lru = NULL;
        for (size_t i = 0; i < s->n_models; i++)
            if (idle_locked(s->models[i]) && (!lru || s->models[i]->last_used_ns < lru->last_used_ns))
                lru = s->models[i];
        if (lru) {
            evict = lru->engine;
            lru->engine = NULL;
        } else {
            full = true;
        }
    }
    pthread_mutex_unlock(&s->models_mu);
    if (loaded || full) {
        pthread_mutex_unlock(&s->load_mu);
        if (full)
            return mlxr_api_error_set(e, 503, "server_error", "models_busy", "model",
                                      "%d models are loaded (--max-loaded) and all are busy; "
                                      "retry later", s->o.max_loaded);
        return true;
    }
    mlxr_gen_engine_free(evict);
    mlxr_err err = {0};
    mlxr_model *model = NULL;
    mlxr_gen_engine *eng = NULL;
    mlxr_gen_engine_opts go = {s->o.n_ctx,     s->o.n_threads,    s->o.max_queue,
                               s->metrics,     s->o.n_seq_max,    s->o.kv_mem_bytes,
                               s->o.no_batch_invariant, s->o.kv_type, s->o.n_gpu_layers};
    const mlxr_load_opts lo = {NULL, NULL, false, s->o.n_gpu_layers != 0};
    mlxr_status st = mlxr_model_load(m->path, &lo, &model, &err);
    bool has_template = false;
    if (st == MLXR_OK) {
        char *tmpl = NULL;
        mlxr_err terr = {0};
        has_template = mlxr_model_chat_template(model, &tmpl, &terr) == MLXR_OK;
        mlxr_free(tmpl);
        st = mlxr_gen_engine_new(model, &go, &eng, &err);
    }
    int n = 0;
    pthread_mutex_lock(&s->models_mu);
    if (st == MLXR_OK) {
        m->has_template = has_template;
        m->engine = eng;
        m->users++;
        m->loaded_at = (int64_t)time(NULL);
        m->last_used_ns = mlxr_gen_now_ns();
    }
    n = count_loaded_locked(s);
    pthread_mutex_unlock(&s->models_mu);
    mlxr_metrics_models_set(s->metrics, n);
    pthread_mutex_unlock(&s->load_mu);
    if (st != MLXR_OK)
        return mlxr_api_error_set(e, 500, "server_error", "model_load_failed", "model",
                                  "cannot load model '%s': %s", m->key,
                                  err.msg[0] ? err.msg : mlxr_status_str(st));
    return true;
}

void mlxr_server_model_done(mlxr_server *s, mlxr_served_model *m, int64_t keep_alive_s) {
    pthread_mutex_lock(&s->models_mu);
    m->users--;
    m->keep_alive_s = keep_alive_s >= -1 ? keep_alive_s
                      : s->o.keep_alive_set ? s->o.keep_alive_s : 300;
    m->last_used_ns = mlxr_gen_now_ns();
    bool now = m->keep_alive_s == 0;
    pthread_mutex_unlock(&s->models_mu);
    if (now) { /* keep_alive 0: wake the reaper rather than wait for its next round */
        pthread_mutex_lock(&s->reap_mu);
        pthread_cond_broadcast(&s->reap_cv);
        pthread_mutex_unlock(&s->reap_mu);
    }
}

bool mlxr_server_model(mlxr_server *s, const char *name, mlxr_served_model **out,
                       mlxr_api_error *e) {
    char key[256];
    canonical(name && *name ? name : s->default_key, key, sizeof key);
    pthread_mutex_lock(&s->models_mu);
    mlxr_served_model *m = find_locked(s, key);
    pthread_mutex_unlock(&s->models_mu);
    if (!m) {
        /* installed after we started? look in the registry (never a path: clients name models) */
        mlxr_model_entry ent;
        pthread_mutex_lock(&s->reg_mu);
        mlxr_status st = s->reg ? mlxr_registry_find(s->reg, key, &ent, NULL) : MLXR_ERR_NOT_FOUND;
        pthread_mutex_unlock(&s->reg_mu);
        if (st == MLXR_OK) {
            pthread_mutex_lock(&s->models_mu);
            m = find_locked(s, key);
            if (!m) m = add_locked(s, key, ent.path, ent.size);
            pthread_mutex_unlock(&s->models_mu);
            mlxr_model_entry_clear(&ent);
        }
    }
    if (!m)
        return mlxr_api_error_set(e, 404, "invalid_request_error", "model_not_found", "model",
                                  "The model '%s' does not exist", name && *name ? name : key);
    if (!load_engine(s, m, e)) return false;
    /* record the use, at most once a minute: each update is a synced SQLite commit */
    int64_t now = (int64_t)time(NULL);
    pthread_mutex_lock(&s->reg_mu);
    if (s->reg && now - m->touched >= 60) {
        mlxr_registry_touch(s->reg, key);
        m->touched = now;
    }
    pthread_mutex_unlock(&s->reg_mu);
    *out = m;
    return true;
}

size_t mlxr_server_model_names(mlxr_server *s, char ***out) {
    size_t n = 0, cap = 0;
    char **names = NULL;
    mlxr_model_entry *ents = NULL;
    size_t n_ents = 0;
    pthread_mutex_lock(&s->reg_mu);
    if (s->reg && mlxr_registry_list(s->reg, &ents, &n_ents, NULL) != MLXR_OK) n_ents = 0;
    pthread_mutex_unlock(&s->reg_mu);
    pthread_mutex_lock(&s->models_mu);
    size_t total = s->n_models + n_ents;
    names = calloc(total ? total : 1, sizeof *names);
    cap = names ? total : 0;
    for (size_t i = 0; i < s->n_models && n < cap; i++)
        if (!s->models[i]->removed) names[n++] = strdup(s->models[i]->key);
    pthread_mutex_unlock(&s->models_mu);
    for (size_t i = 0; i < n_ents; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s:%s", ents[i].name, ents[i].tag);
        bool dup = false;
        for (size_t k = 0; k < n; k++) dup |= names[k] && !strcmp(names[k], key);
        if (!dup && n < cap) names[n++] = strdup(key);
        mlxr_model_entry_clear(&ents[i]);
    }
    free(ents);
    *out = names;
    return n;
}

int32_t *mlxr_server_tokenize(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                              bool special, size_t *n, mlxr_api_error *e) {
    size_t cap = len + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    mlxr_err err = {0};
    mlxr_status st = ids ? mlxr_tokenize(m, text, len, add_bos, special, ids, cap, n, &err)
                         : MLXR_ERR_NOMEM;
    if (st == MLXR_ERR_RANGE) {
        int32_t *p = realloc(ids, (*n ? *n : 1) * sizeof *ids);
        st = p ? mlxr_tokenize(m, text, len, add_bos, special, p, *n, n, &err) : MLXR_ERR_NOMEM;
        ids = p ? p : ids;
    }
    if (st != MLXR_OK) {
        free(ids);
        mlxr_api_error_set(e, st == MLXR_ERR_NOMEM ? 500 : 400,
                           st == MLXR_ERR_NOMEM ? "server_error" : "invalid_request_error", NULL,
                           NULL, "cannot tokenize: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
        return NULL;
    }
    return ids;
}

/*
 * Chat prompts go through the model's own chat template (GGUF tokenizer.chat_template; the
 * library's ChatML default when it has none), rendered by mlxr_chat_apply_template.
 *
 * Special tokens: the rendered text holds the template's control tokens ("<|im_start|>",
 * "<|eot_id|>", "<s>" ...) as text, so it must be tokenized with parse_special; llama.cpp's
 * server tokenizes the whole rendered prompt that way, which lets a user write "<|im_end|>" in
 * a message and inject a real control token. We do the same (one tokenization of the whole text,
 * exactly llama.cpp's ids) only when no message content contains control-token text (checked by
 * tokenizing each content with and without parse_special). Otherwise the template is rendered a
 * second time with each content replaced by a unique marker; if putting the contents back in
 * place of the markers gives exactly the first rendering, the template text around them is
 * tokenized with parse_special and each content without it (user text stays text). A template
 * that transforms such a content (trims it, splits it) cannot be segmented that way, and the
 * request is refused (400) rather than tokenized unsafely. Tools are checked the same way and
 * refused when they hold control-token text.
 */

/* True if text tokenizes differently with parse_special, i.e. it contains control-token text. */
static bool has_special_text(const mlxr_model *m, const char *text, size_t len, bool *has,
                             mlxr_api_error *e) {
    size_t na = 0, nb = 0;
    int32_t *a = mlxr_server_tokenize(m, text, len, false, true, &na, e);
    int32_t *b = a ? mlxr_server_tokenize(m, text, len, false, false, &nb, e) : NULL;
    if (b) *has = na != nb || memcmp(a, b, na * sizeof *a) != 0;
    free(a);
    free(b);
    return b != NULL;
}

/* The template variables: {"messages": [{"role", "content"}...], "tools"?: [...]}; with
 * markers != NULL each content is replaced by markers[i]. */
static char *chat_vars(const mlxr_api_req *r, char *const *markers, size_t *len) {
    json_t *msgs = json_array(), *o = json_object();
    for (size_t i = 0; msgs && i < r->n_msgs; i++) {
        const char *role = !strcmp(r->msgs[i].role, "developer") ? "system" : r->msgs[i].role;
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", role, "content",
                                              markers ? markers[i] : r->msgs[i].content));
    }
    json_object_set_new(o, "messages", msgs);
    if (r->tools_json) json_object_set_new(o, "tools", json_loads(r->tools_json, 0, NULL));
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *len = out ? strlen(out) : 0;
    return out;
}

static bool render(const mlxr_model *m, const mlxr_api_req *r, char *const *markers, char **out,
                   size_t *out_len, mlxr_api_error *e) {
    size_t vl = 0;
    char *vars = chat_vars(r, markers, &vl);
    if (!vars) return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    mlxr_err err = {0};
    mlxr_status st = mlxr_chat_apply_template(m, vars, vl, true, out, out_len, &err);
    free(vars);
    if (st == MLXR_OK) return true;
    if (st == MLXR_ERR_NOMEM)
        return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return mlxr_api_error_set(e, 400, "invalid_request_error", "template_error", "messages",
                              "chat template: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
}

bool mlxr_server_render_chat(const mlxr_model *m, const mlxr_api_req *r, char **out,
                             size_t *out_len, mlxr_api_error *e) {
    return render(m, r, NULL, out, out_len, e);
}

/* Growable token list. */
typedef struct toks {
    int32_t *ids;
    size_t n, cap;
} toks;

static bool toks_add(toks *t, const mlxr_model *m, const char *s, size_t len, bool special,
                     mlxr_api_error *e) {
    size_t n = 0;
    if (len == 0) return true;
    int32_t *ids = mlxr_server_tokenize(m, s, len, false, special, &n, e);
    if (!ids) return false;
    if (t->n + n > t->cap) {
        size_t nc = (t->n + n) * 2 + 16;
        int32_t *p = realloc(t->ids, nc * sizeof *p);
        if (!p) {
            free(ids);
            return mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        }
        t->ids = p;
        t->cap = nc;
    }
    memcpy(t->ids + t->n, ids, n * sizeof *ids);
    t->n += n;
    free(ids);
    return true;
}

/* Tokenize `text` (the real rendering) in segments: the marker rendering `mk` tells where each
 * content is. False with a 400 when the two renderings do not line up. */
static bool tokenize_segmented(const mlxr_model *m, const mlxr_api_req *r, const char *text,
                               size_t text_len, const char *mk, char *const *markers, toks *t,
                               mlxr_api_error *e) {
    size_t at = 0, ti = 0; /* positions in mk and text */
    for (;;) {
        /* the next marker in mk */
        const char *best = NULL;
        size_t bi = 0;
        for (size_t i = 0; i < r->n_msgs; i++) {
            const char *p = strstr(mk + at, markers[i]);
            if (p && (!best || p < best)) best = p, bi = i;
        }
        size_t seg = best ? (size_t)(best - (mk + at)) : strlen(mk + at);
        if (ti + seg > text_len || memcmp(text + ti, mk + at, seg) != 0) goto mismatch;
        if (!toks_add(t, m, mk + at, seg, true, e)) return false;
        at += seg;
        ti += seg;
        if (!best) break;
        const char *c = r->msgs[bi].content;
        size_t cl = strlen(c);
        if (ti + cl > text_len || memcmp(text + ti, c, cl) != 0) goto mismatch;
        if (!toks_add(t, m, c, cl, false, e)) return false;
        at += strlen(markers[bi]);
        ti += cl;
    }
    if (ti == text_len) return true;
mismatch:
    return mlxr_api_error_set(e, 400, "invalid_request_error", NULL, "messages",
                              "a message contains control-token text (such as a chat template "
                              "marker) and this model's chat template does not pass message "
                              "contents through unchanged, so it cannot be kept as plain text");
}

static int32_t *chat_tokens(const mlxr_api_req *r, const mlxr_model *model, size_t *n,
                            mlxr_api_error *e) {
    bool inject = false;
    for (size_t i = 0; i < r->n_msgs && !inject; i++)
        if (!has_special_text(model, r->msgs[i].content, strlen(r->msgs[i].content), &inject, e))
            return NULL;
    if (r->tools_json) {
        bool bad = false;
        if (!has_special_text(model, r->tools_json, strlen(r->tools_json), &bad, e)) return NULL;
        if (bad) {
            mlxr_api_error_set(e, 400, "invalid_request_error", NULL, "tools",
                               "'tools' contains control-token text");
            return NULL;
        }
    }
    char *text = NULL;
    size_t text_len = 0;
    if (!render(model, r, NULL, &text, &text_len, e)) return NULL;
    toks t = {0};
    bool ok;
    if (!inject) {
        ok = toks_add(&t, model, text, text_len, true, e);
    } else {
        /* markers: private-use characters around a per-request nonce; neither whitespace (a
         * template's trim would eat it) nor anything a normal text holds */
        static atomic_uint_fast64_t nonce_ctr;
        uint64_t nonce = (uint64_t)mlxr_gen_now_ns() * 0x9e3779b97f4a7c15ull ^
                         atomic_fetch_add(&nonce_ctr, 1);
        char **markers = calloc(r->n_msgs, sizeof *markers);
        ok = markers != NULL;
        for (size_t i = 0; ok && i < r->n_msgs; i++) {
            markers[i] = malloc(48);
            if (!(ok = markers[i] != NULL)) break;
            snprintf(markers[i], 48, "\xee\x80\x80mlxr%016llx.%zu\xee\x80\x81",
                     (unsigned long long)nonce, i);
        }
        char *mk = NULL;
        size_t mk_len = 0;
        if (!ok) mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        else ok = render(model, r, markers, &mk, &mk_len, e) &&
                  tokenize_segmented(model, r, text, text_len, mk, markers, &t, e);
        mlxr_free(mk);
        for (size_t i = 0; markers && i < r->n_msgs; i++) free(markers[i]);
        free(markers);
    }
    mlxr_free(text);
    if (!ok) {
        free(t.ids);
        return NULL;
    }
    /* BOS when the model wants one and the template did not write it (bos_token) */
    size_t nb = 0;
    int32_t *bos = mlxr_server_tokenize(model, "", 0, true, false, &nb, e);
    if (!bos) {
        free(t.ids);
        return NULL;
    }
    if (nb == 1 && (t.n == 0 || t.ids[0] != bos[0])) {
        int32_t *p = realloc(t.ids, (t.n + 1) * sizeof *p);
        if (!p) {
            free(bos);
            free(t.ids);
            mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            return NULL;
        }
        memmove(p + 1, p, t.n * sizeof *p);
        p[0] = bos[0];
        t.ids = p;
        t.n++;
    }
    free(bos);
    *n = t.n;
    return t.ids;
}

/* The prompt's token ids for a request. */
static int32_t *prompt_tokens(const mlxr_api_req *r, const mlxr_model *model, bool has_template,
                              size_t *n, mlxr_api_error *e) {
    if (r->kind == MLXR_API_CHAT || r->kind == MLXR_API_OLLAMA_CHAT)
        return chat_tokens(r, model, n, e);
    const char *prompt = r->prompt ? r->prompt : "";
    if (r->kind == MLXR_API_OLLAMA_GENERATE && !r->raw && has_template) {
        /* Ollama renders generate prompts with the model's template too (system + user turn);
         * a model without one gets the plain prompt, as Ollama's default "{{ .Prompt }}" */
        mlxr_chat_msg msgs[2] = {{"system", r->system}, {"user", (char *)prompt}};
        mlxr_api_req cr = *r;
        cr.kind = MLXR_API_OLLAMA_CHAT;
        cr.msgs = r->system && *r->system ? msgs : msgs + 1;
        cr.n_msgs = r->system && *r->system ? 2 : 1;
        return chat_tokens(&cr, model, n, e);
    }
    if (r->system && *r->system && !r->raw) { /* Ollama generate: system text, blank line, prompt */
        size_t l = strlen(r->system) + strlen(prompt) + 3;
        char *full = malloc(l);
        if (!full) {
            mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            return NULL;
        }
        snprintf(full, l, "%s\n\n%s", r->system, prompt);
        int32_t *ids = mlxr_server_tokenize(model, full, strlen(full), true, false, n, e);
        free(full);
        return ids;
    }
    return mlxr_server_tokenize(model, prompt, strlen(prompt), true, false, n, e);
}

static void active_add(mlxr_server *s, mlxr_gen *g, const char *model, const char *endpoint) {
    pthread_mutex_lock(&s->active_mu);
    if (s->n_active == s->cap_active) {
        size_t nc = s->cap_active ? s->cap_active * 2 : 16;
        mlxr_active *p = realloc(s->active, nc * sizeof *p);
        if (p) {
            s->active = p;
            s->cap_active = nc;
        }
    }
    if (s->n_active < s->cap_active) {
        mlxr_active *a = &s->active[s->n_active++];
        mlxr_gen_retain(g);
        a->g = g;
        snprintf(a->model, sizeof a->model, "%s", model);
        a->endpoint = endpoint;
        a->created = (int64_t)time(NULL);
    }
    pthread_mutex_unlock(&s->active_mu);
}

void mlxr_server_retire(mlxr_server *s, mlxr_gen *g) {
    mlxr_gen *drop = NULL;
    pthread_mutex_lock(&s->active_mu);
    for (size_t i = 0; i < s->n_active; i++)
        if (s->active[i].g == g) {
            drop = g;
            s->active[i] = s->active[--s->n_active];
            break;
        }
    pthread_mutex_unlock(&s->active_mu);
    mlxr_gen_release(drop);
}

static bool submit(mlxr_server *s, mlxr_served_model *m, const mlxr_api_req *r,
                   const char *endpoint, mlxr_gen **g, mlxr_api_error *e);

/* The Modelfile settings stored for an installed model (/api/create), if any. */
static bool model_settings(mlxr_server *s, const char *key, mlxr_modelfile *mf) {
    mlxr_model_entry ent;
    char *json = NULL;
    pthread_mutex_lock(&s->reg_mu);
    if (s->reg && mlxr_registry_find(s->reg, key, &ent, NULL) == MLXR_OK) {
        json = ent.modelfile;
        ent.modelfile = NULL;
        mlxr_model_entry_clear(&ent);
    }
    pthread_mutex_unlock(&s->reg_mu);
    json_t *o = json ? json_loads(json, 0, NULL) : NULL;
    free(json);
    memset(mf, 0, sizeof *mf);
    bool ok = o && mlxr_modelfile_from_json(o, mf, NULL) == MLXR_OK;
    json_decref(o);
    if (!ok) mlxr_modelfile_free(mf);
    return ok;
}

bool mlxr_server_submit(mlxr_server *s, const mlxr_api_req *r, const char *endpoint,
                        mlxr_served_model **mo, mlxr_gen **g, mlxr_api_error *e) {
    mlxr_served_model *m;
    if (!mlxr_server_model(s, r->model, &m, e)) return false;
    /* a created model's PARAMETERs, SYSTEM and MESSAGEs are the request's defaults */
    mlxr_modelfile mf;
    mlxr_modelfile_applied keep = {0};
    mlxr_api_req applied;
    const mlxr_api_req *use = r;
    bool ok = true;
    if (model_settings(s, m->key, &mf)) {
        ok = mlxr_modelfile_apply(&mf, r, m->has_template, &applied, &keep);
        if (ok) use = &applied;
        else mlxr_api_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    ok = ok && submit(s, m, use, endpoint, g, e);
    mlxr_modelfile_applied_free(&keep);
    mlxr_modelfile_free(&mf);
    mlxr_server_model_done(s, m, r->keep_alive_s);
    if (ok) *mo = m;
    return ok;
}

static bool submit(mlxr_server *s, mlxr_served_model *m, const mlxr_api_req *r,
                   const char *endpoint, mlxr_gen **g, mlxr_api_error *e) {
    const mlxr_model *model = mlxr_gen_engine_model(m->engine);
    size_t n = 0;
    int32_t *ids = prompt_tokens(r, model, m->has_template, &n, e);
    if (!ids) return false;
    int32_t n_ctx = mlxr_gen_engine_n_ctx(m->engine);
    if (r->num_ctx > 0 && r->num_ctx < n_ctx) n_ctx = r->num_ctx;
    if (n == 0 || n >= (size_t)n_ctx) {
        free(ids);
        if (n == 0)
            return mlxr_api_error_set(e, 400, "invalid_request_error", NULL, "prompt",
                                      "the prompt is empty and the model adds no BOS token");
        return mlxr_api_error_set(e, 400, "invalid_request_error", "context_length_exceeded",
                                  r->prompt ? "prompt" : "messages",
                                  "This model's maximum context length is %d tokens; the prompt "
                                  "has %zu tokens", n_ctx, n);
    }
    mlxr_gen_params p = r->params;
    int32_t room = n_ctx - (int32_t)n;
    if (!r->max_tokens_set) p.max_tokens = r->kind == MLXR_API_COMPLETION ? 16 : room;
    if (p.max_tokens > room) p.max_tokens = room; /* ends with finish_reason "length" */
    if (!r->seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        p.seed = (uint64_t)ts.tv_nsec * 6364136223846793005ull ^ (uint64_t)ts.tv_sec ^
                 (uint64_t)getpid() << 32;
    }
    /* chat with the default ChatML template: its end markers also end the reply when the
     * vocabulary has no such control tokens and the model writes them as text */
    const char *stops[24];
    size_t n_stops = 0;
    for (size_t i = 0; i < r->n_stops && n_stops < 20; i++) stops[n_stops++] = r->stops[i];
    if ((r->kind == MLXR_API_CHAT || r->kind == MLXR_API_OLLAMA_CHAT) && !m->has_template) {
        stops[n_stops++] = "<|im_end|>";
        stops[n_stops++] = "<|im_start|>";
    }
    p.stop = stops;
    p.n_stop = n_stops;
    mlxr_err err = {0};
    bool full = false;
    mlxr_status st = mlxr_gen_submit(m->engine, ids, n, &p, g, &full, &err);
    free(ids);
    if (st != MLXR_OK) {
        if (full)
            return mlxr_api_error_set(e, 429, "rate_limit_exceeded", "queue_full", NULL,
                                      "the server is busy: %s; retry later", err.msg);
        return mlxr_api_error_set(e, st == MLXR_ERR_NOMEM ? 500 : 400,
                                  st == MLXR_ERR_NOMEM ? "server_error" : "invalid_request_error",
                                  NULL, strstr(err.msg, "logit bias") ? "logit_bias" : NULL, "%s",
                                  err.msg);
    }
    active_add(s, *g, m->key, endpoint);
    return true;
}
