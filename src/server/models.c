/*
 * models.c - the daemon's model table (names to loaded engines, loading on first use) and the
 * path from a parsed request to a queued generation: tokenize, check the context, submit.
 */
#include "server/server.h"

#include "util/err.h"

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
        if (!strcmp(s->models[i]->key, key)) return s->models[i];
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

static bool load_engine(mlxr_server *s, mlxr_served_model *m, mlxr_api_error *e) {
    /* fast path: loaded already (never wait behind another model's load) */
    pthread_mutex_lock(&s->models_mu);
    bool ready = m->engine != NULL;
    pthread_mutex_unlock(&s->models_mu);
    if (ready) return true;
    pthread_mutex_lock(&s->load_mu);
    pthread_mutex_lock(&s->models_mu);
    bool loaded = m->engine != NULL;
    pthread_mutex_unlock(&s->models_mu);
    if (loaded) {
        pthread_mutex_unlock(&s->load_mu);
        return true;
    }
    mlxr_err err = {0};
    mlxr_model *model = NULL;
    mlxr_gen_engine *eng = NULL;
    mlxr_gen_engine_opts go = {s->o.n_ctx, s->o.n_threads, s->o.max_queue, s->metrics};
    mlxr_status st = mlxr_model_load(m->path, NULL, &model, &err);
    if (st == MLXR_OK) st = mlxr_gen_engine_new(model, &go, &eng, &err);
    if (st == MLXR_OK) {
        pthread_mutex_lock(&s->models_mu);
        m->engine = eng;
        m->loaded_at = (int64_t)time(NULL);
        int n = 0;
        for (size_t i = 0; i < s->n_models; i++) n += s->models[i]->engine != NULL;
        pthread_mutex_unlock(&s->models_mu);
        mlxr_metrics_models_set(s->metrics, n);
    }
    pthread_mutex_unlock(&s->load_mu);
    if (st != MLXR_OK)
        return mlxr_api_error_set(e, 500, "server_error", "model_load_failed", "model",
                                  "cannot load model '%s': %s", m->key,
                                  err.msg[0] ? err.msg : mlxr_status_str(st));
    return true;
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
    for (size_t i = 0; i < s->n_models && n < cap; i++) names[n++] = strdup(s->models[i]->key);
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

/* Growable token list for chat rendering. */
typedef struct toks {
    const mlxr_model *m;
    int32_t *ids;
    size_t n, cap;
    mlxr_api_error *e;
} toks;

static bool toks_seg(void *user, const char *str, size_t len, bool special) {
    toks *t = user;
    size_t n = 0;
    int32_t *ids = mlxr_server_tokenize(t->m, str, len, false, special, &n, t->e);
    if (!ids) return false;
    if (t->n + n > t->cap) {
        size_t nc = (t->n + n) * 2 + 16;
        int32_t *p = realloc(t->ids, nc * sizeof *p);
        if (!p) {
            free(ids);
            return mlxr_api_error_set(t->e, 500, "server_error", NULL, NULL, "out of memory");
        }
        t->ids = p;
        t->cap = nc;
    }
    memcpy(t->ids + t->n, ids, n * sizeof *ids);
    t->n += n;
    free(ids);
    return true;
}

/* The prompt's token ids for a request. */
static int32_t *prompt_tokens(const mlxr_api_req *r, const mlxr_model *model, size_t *n,
                              mlxr_api_error *e) {
    if (r->kind == MLXR_API_CHAT || r->kind == MLXR_API_OLLAMA_CHAT) {
        /* BOS first when the model wants one: what "" tokenizes to with add_bos */
        toks t = {model, NULL, 0, 0, e};
        if (!(t.ids = mlxr_server_tokenize(model, "", 0, true, false, &t.n, e))) return NULL;
        t.cap = t.n;
        if (!mlxr_chat_render_builtin(r->msgs, r->n_msgs, toks_seg, &t)) {
            free(t.ids);
            return NULL;
        }
        *n = t.n;
        return t.ids;
    }
    const char *prompt = r->prompt ? r->prompt : "";
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

bool mlxr_server_submit(mlxr_server *s, const mlxr_api_req *r, const char *endpoint,
                        mlxr_served_model **mo, mlxr_gen **g, mlxr_api_error *e) {
    mlxr_served_model *m;
    if (!mlxr_server_model(s, r->model, &m, e)) return false;
    const mlxr_model *model = mlxr_gen_engine_model(m->engine);
    size_t n = 0;
    int32_t *ids = prompt_tokens(r, model, &n, e);
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
    /* chat: the built-in layout's end markers also end the reply when they are plain text */
    const char *stops[24];
    size_t n_stops = 0;
    for (size_t i = 0; i < r->n_stops && n_stops < 20; i++) stops[n_stops++] = r->stops[i];
    if (r->kind == MLXR_API_CHAT || r->kind == MLXR_API_OLLAMA_CHAT) {
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
                                  NULL, NULL, "%s", err.msg);
    }
    active_add(s, *g, m->key, endpoint);
    *mo = m;
    return true;
}
