/*
 * ollama_admin.c - Ollama's model management endpoints on the local registry: POST /api/copy,
 * DELETE /api/delete, POST /api/pull (a GGUF file by http(s) URL or local path: mlxr has no
 * library of model names) and
 * POST /api/create (from a GGUF path or an installed model, as `from` or a Modelfile's FROM).
 *
 * pull and create read a path on the server's file system: anyone who may call the API can make
 * the server import any GGUF file its user can read (as Ollama's create does). Local imports run
 * on the handler's thread (hashing a large file takes a while) and their NDJSON status lines are
 * written when the import is done. A pull by http(s) URL downloads on a worker thread and streams
 * live progress (pull_stream.c).
 */
#include "server/fetch.h"
#include "server/http.h"
#include "server/pull_stream.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A string member, or NULL. Borrowed from o. */
static const char *str_member(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *load_body(mlxr_http_req *r, mlxr_api_error *e) {
    json_error_t je;
    json_t *o = json_loadb(r->body ? r->body : "", r->body_len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        mlxr_api_error_set(e, 400, "invalid_request_error", NULL, NULL,
                           "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* The registry's error as an API error: 404 for a missing model, 400 for a bad name, else 500. */
static enum MHD_Result reg_error(mlxr_http_req *r, mlxr_status st, const mlxr_err *err) {
    int status = st == MLXR_ERR_NOT_FOUND ? 404
                 : st == MLXR_ERR_INVALID || st == MLXR_ERR_FORMAT || st == MLXR_ERR_IO ? 400
                                                                                        : 500;
    return mlxr_http_errorf(r, status, status == 500 ? "server_error" : "invalid_request_error",
                            NULL, "%s", err->msg[0] ? err->msg : mlxr_status_str(st));
}

/* Import src as name (reg_mu taken here). */
static mlxr_status import(mlxr_server *s, const char *src, const char *name, mlxr_err *err) {
    pthread_mutex_lock(&s->reg_mu);
    mlxr_status st = s->reg ? mlxr_registry_import(s->reg, src, name, NULL, err)
                            : MLXR_FAIL(err, MLXR_ERR_INVALID, "the server has no registry");
    pthread_mutex_unlock(&s->reg_mu);
    return st;
}

/* The path of an installed model, or NULL (malloc'ed). */
static char *installed_path(mlxr_server *s, const char *name) {
    mlxr_model_entry ent;
    char *path = NULL;
    pthread_mutex_lock(&s->reg_mu);
    if (s->reg && mlxr_registry_find(s->reg, name, &ent, NULL) == MLXR_OK) {
        path = ent.path;
        ent.path = NULL;
        mlxr_model_entry_clear(&ent);
    }
    pthread_mutex_unlock(&s->reg_mu);
    return path;
}

/* The status lines of a finished import: NDJSON when streaming, else the last one. */
static enum MHD_Result statuses(mlxr_http_req *r, bool stream, const char *const *lines, size_t n) {
    if (!stream) return mlxr_http_json(r, 200, json_pack("{s:s}", "status", lines[n - 1]));
    size_t len = 0, cap = 64;
    char *text = malloc(cap);
    for (size_t i = 0; text && i < n; i++) {
        json_t *j = json_pack("{s:s}", "status", lines[i]);
        char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        size_t l = line ? strlen(line) : 0;
        if (len + l + 2 > cap) {
            char *p = realloc(text, cap = (len + l + 2) * 2);
            if (!p) {
                free(text);
                text = NULL;
            } else {
                text = p;
            }
        }
        if (text && line) {
            memcpy(text + len, line, l);
            len += l;
            text[len++] = '\n';
        }
        free(line);
    }
    if (!text) return mlxr_http_errorf(r, 500, "server_error", NULL, "out of memory");
    enum MHD_Result ret = mlxr_http_text(r, 200, "application/x-ndjson", text, len);
    free(text);
    return ret;
}

enum MHD_Result mlxr_ollama_copy(mlxr_http_req *r) {
    mlxr_api_error e;
    json_t *o = load_body(r, &e);
    if (!o) return mlxr_http_error(r, &e);
    const char *src = str_member(o, "source"), *dst = str_member(o, "destination");
    enum MHD_Result ret;
    char *path = src && dst ? installed_path(r->srv, src) : NULL;
    if (!src || !dst) {
        ret = mlxr_http_errorf(r, 400, "invalid_request_error", NULL,
                               "'source' and 'destination' are required");
    } else if (!path) {
        ret = mlxr_http_errorf(r, 404, "invalid_request_error", "model_not_found",
                               "model '%s' not found", src);
    } else {
        mlxr_err err = {0};
        mlxr_status st = import(r->srv, path, dst, &err); /* the same blob: a new row */
        ret = st == MLXR_OK ? mlxr_http_text(r, 200, "application/json", "", 0)
                            : reg_error(r, st, &err);
    }
    free(path);
    json_decref(o);
    return ret;
}

/* Hide a deleted model from the server's table (its engine, if loaded, unloads when idle). */
static void forget(mlxr_server *s, const char *name) {
    char key[256];
    if (strchr(name, ':')) snprintf(key, sizeof key, "%s", name);
    else snprintf(key, sizeof key, "%s:latest", name);
    pthread_mutex_lock(&s->models_mu);
    for (size_t i = 0; i < s->n_models; i++)
        if (!s->models[i]->removed && !strcmp(s->models[i]->key, key) &&
            strcmp(key, s->default_key) != 0) {
            s->models[i]->removed = true;
            s->models[i]->keep_alive_s = 0;
        }
    pthread_mutex_unlock(&s->models_mu);
}

enum MHD_Result mlxr_ollama_delete(mlxr_http_req *r) {
    mlxr_api_error e;
    char *name = NULL;
    if (!mlxr_api_parse_model_only(r->body ? r->body : "", r->body_len, &name, &e))
        return mlxr_http_error(r, &e);
    if (!name)
        return mlxr_http_errorf(r, 400, "invalid_request_error", NULL, "'model' is required");
    mlxr_err err = {0};
    pthread_mutex_lock(&r->srv->reg_mu);
    mlxr_status st = r->srv->reg ? mlxr_registry_remove(r->srv->reg, name, &err)
                                 : MLXR_FAIL(&err, MLXR_ERR_NOT_FOUND, "no registry");
    pthread_mutex_unlock(&r->srv->reg_mu);
    if (st == MLXR_OK) forget(r->srv, name);
    enum MHD_Result ret = st == MLXR_OK ? mlxr_http_text(r, 200, "application/json", "", 0)
                                        : reg_error(r, st, &err);
    free(name);
    return ret;
}

/* "file:///x" -> "/x"; other strings as they are. */
static const char *local_path(const char *s) {
    return !strncmp(s, "file://", 7) ? s + 7 : s;
}

/* "dir/name.gguf" -> "name:latest" */
static void stem_name(const char *path, char *buf, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcasecmp(base + n - 5, ".gguf")) n -= 5;
    snprintf(buf, cap, "%.*s:latest", (int)(n < 100 ? n : 100), base);
}

enum MHD_Result mlxr_ollama_pull(mlxr_http_req *r) {
    mlxr_api_error e;
    json_t *o = load_body(r, &e);
    if (!o) return mlxr_http_error(r, &e);
    const char *model = str_member(o, "model") ? str_member(o, "model") : str_member(o, "name");
    json_t *sv = json_object_get(o, "stream");
    bool stream = !json_is_false(sv);
    enum MHD_Result ret;
    char *have = model ? installed_path(r->srv, model) : NULL;
    if (!model) {
        ret = mlxr_http_errorf(r, 400, "invalid_request_error", NULL, "'model' is required");
    } else if (have) { /* installed already: nothing to fetch */
        static const char *const lines[] = {"pulling manifest", "success"};
        ret = statuses(r, stream, lines, 2);
    } else if (!strncmp(model, "file://", 7) || model[0] == '/') {
        const char *path = local_path(model);
        char name[160];
        const char *as = str_member(o, "as");
        if (as) snprintf(name, sizeof name, "%s", as);
        else stem_name(path, name, sizeof name);
        mlxr_err err = {0};
        mlxr_status st = import(r->srv, path, name, &err);
        static const char *const lines[] = {"pulling manifest", "copying model",
                                            "verifying sha256 digest", "writing manifest",
                                            "success"};
        ret = st == MLXR_OK ? statuses(r, stream, lines, 5) : reg_error(r, st, &err);
    } else if (mlxr_fetch_is_url(model)) {
        /* a GGUF file at an http(s) URL: downloaded on a worker thread with live progress
         * (pull_stream.c); the name must be valid before anything is fetched */
        char name[160], file[128], n1[104], t1[64];
        const char *as = str_member(o, "as");
        mlxr_fetch_file_name(model, file, sizeof file);
        if (as) snprintf(name, sizeof name, "%s", as);
        else stem_name(file[0] ? file : "model", name, sizeof name);
        mlxr_err err = {0};
        if (mlxr_registry_parse_name(name, n1, t1, &err) != MLXR_OK)
            ret = mlxr_http_errorf(r, 400, "invalid_request_error", NULL, "%s%s", err.msg,
                                   as ? "" : " (name it with \"as\")");
        else
            ret = mlxr_pull_url(r, model, name, stream,
                                json_is_true(json_object_get(o, "insecure")));
    } else {
        ret = mlxr_http_errorf(r, 404, "invalid_request_error", "model_not_found",
                               "model '%s' is not installed; mlxr has no model library to pull "
                               "names from: pull a GGUF file by URL (\"https://.../model.gguf\") "
                               "or path (\"file:///path/model.gguf\"), optional \"as\": name",
                               model);
    }
    free(have);
    json_decref(o);
    return ret;
}

/* The FROM line of a Modelfile (copied into buf), or false. */
static bool modelfile_from(const char *mf, char *buf, size_t cap) {
    for (const char *l = mf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        while (*l == ' ' || *l == '\t') l++;
        if (strncasecmp(l, "FROM", 4) != 0 || (l[4] != ' ' && l[4] != '\t')) continue;
        l += 5;
        while (*l == ' ' || *l == '\t') l++;
        size_t n = strcspn(l, "\r\n");
        while (n && (l[n - 1] == ' ' || l[n - 1] == '\t')) n--;
        if (!n || n >= cap) return false;
        memcpy(buf, l, n);
        buf[n] = '\0';
        return true;
    }
    return false;
}

enum MHD_Result mlxr_ollama_create(mlxr_http_req *r) {
    mlxr_api_error e;
    json_t *o = load_body(r, &e);
    if (!o) return mlxr_http_error(r, &e);
    const char *model = str_member(o, "model") ? str_member(o, "model") : str_member(o, "name");
    const char *from = str_member(o, "from"), *mf = str_member(o, "modelfile");
    bool stream = !json_is_false(json_object_get(o, "stream"));
    char from_buf[1024];
    if (!from && mf && modelfile_from(mf, from_buf, sizeof from_buf)) from = from_buf;
    enum MHD_Result ret;
    if (!model || !from) {
        ret = mlxr_http_errorf(r, 400, "invalid_request_error", NULL,
                               "'model' and 'from' (or a modelfile with a FROM line) are required; "
                               "only FROM is supported");
    } else {
        char *path = installed_path(r->srv, from);
        const char *src = path ? path : local_path(from);
        mlxr_err err = {0};
        mlxr_status st = path || access(src, R_OK) == 0
                             ? import(r->srv, src, model, &err)
                             : MLXR_FAIL(&err, MLXR_ERR_NOT_FOUND,
                                         "'%s' is neither an installed model nor a readable "
                                         "file", from);
        static const char *const lines[] = {"parsing modelfile", "using existing layer",
                                            "writing manifest", "success"};
        ret = st == MLXR_OK ? statuses(r, stream, lines, 4) : reg_error(r, st, &err);
        free(path);
    }
    json_decref(o);
    return ret;
}
