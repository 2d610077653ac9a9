/*
 * ollama_admin.c - Ollama's model management endpoints on the local registry: POST /api/copy,
 * DELETE /api/delete, POST /api/pull (a GGUF file by http(s) URL or local path: mlxr has no
 * library of model names) and
 * POST /api/create (from a GGUF path or an installed model, as `from` or a Modelfile's FROM, with
 * the Modelfile's settings stored in the new row: modelfile.h).
 *
 * pull and create read a path on the server's file system: anyone who may call the API can make
 * the server import any GGUF file its user can read (as Ollama's create does). Local imports run
 * on the handler's thread (hashing a large file takes a while) and their NDJSON status lines are
 * written when the import is done. A pull by http(s) URL downloads on a worker thread and streams
 * live progress (pull_stream.c).
 */
#include "server/fetch.h"
#include "server/http.h"
#include "server/modelfile.h"
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

/* Import src as name with Modelfile settings (JSON or NULL; reg_mu taken here). */
static mlxr_status import_with(mlxr_server *s, const char *src, const char *name,
                               const char *modelfile, mlxr_err *err) {
    pthread_mutex_lock(&s->reg_mu);
    mlxr_status st = s->reg ? mlxr_registry_import_with(s->reg, src, name, modelfile, NULL, err)
                            : MLXR_FAIL(err, MLXR_ERR_INVALID, "the server has no registry");
    pthread_mutex_unlock(&s->reg_mu);
    return st;
}

static mlxr_status import(mlxr_server *s, const char *src, const char *name, mlxr_err *err) {
    return import_with(s, src, name, NULL, err);
}

/* The path of an installed model, or NULL (malloc'ed); *modelfile (if asked) its stored
 * Modelfile settings or NULL (malloc'ed). */
static char *installed(mlxr_server *s, const char *name, char **modelfile) {
    mlxr_model_entry ent;
    char *path = NULL;
    if (modelfile) *modelfile = NULL;
    pthread_mutex_lock(&s->reg_mu);
    if (s->reg && mlxr_registry_find(s->reg, name, &ent, NULL) == MLXR_OK) {
        path = ent.path;
        ent.path = NULL;
        if (modelfile) {
            *modelfile = ent.modelfile;
            ent.modelfile = NULL;
        }
        mlxr_model_entry_clear(&ent);
    }
    pthread_mutex_unlock(&s->reg_mu);
    return path;
}

static char *installed_path(mlxr_server *s, const char *name) { return installed(s, name, NULL); }

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
    char *settings = NULL; /* the copy keeps the source's Modelfile settings */
    char *path = src && dst ? installed(r->srv, src, &settings) : NULL;
    if (!src || !dst) {
        ret = mlxr_http_errorf(r, 400, "invalid_request_error", NULL,
                               "'source' and 'destination' are required");
    } else if (!path) {
        ret = mlxr_http_errorf(r, 404, "invalid_request_error", "model_not_found",
                               "model '%s' not found", src);
    } else {
        mlxr_err err = {0};
        mlxr_status st = import_with(r->srv, path, dst, settings, &err); /* the same blob */
        ret = st == MLXR_OK ? mlxr_http_text(r, 200, "application/json", "", 0)
                            : reg_error(r, st, &err);
    }
    free(settings);
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

/* The settings of a create request: the base model's stored ones (FROM an installed model), then
 * the Modelfile text, then the structured fields. False with a 400 error message in err. */
static bool create_settings(mlxr_server *s, json_t *o, mlxr_modelfile *mf, char **base_path,
                            mlxr_err *err) {
    memset(mf, 0, sizeof *mf);
    *base_path = NULL;
    json_t *text = json_object_get(o, "modelfile");
    mlxr_modelfile given = {0};
    if (text && !json_is_null(text) && !json_is_string(text)) {
        MLXR_FAIL(err, MLXR_ERR_INVALID, "'modelfile' must be a string");
        return false;
    }
    if (json_is_string(text) &&
        mlxr_modelfile_parse(json_string_value(text), json_string_length(text), &given, err) != MLXR_OK)
        return false;
    bool oom = false;
    char *given_json = mlxr_modelfile_to_json(&given, &oom);
    json_t *layer = given_json ? json_loads(given_json, 0, NULL) : NULL;
    free(given_json);
    bool ok = !oom && (!given_json || layer);
    /* the structured fields override the text's */
    mlxr_status st = ok ? mlxr_modelfile_from_json(o, &given, err)
                        : MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    ok = st == MLXR_OK;
    if (ok && !given.from)
        ok = MLXR_FAIL(err, MLXR_ERR_INVALID, "'from' or a modelfile with a FROM line is "
                       "required") == MLXR_OK;
    char *base_json = NULL;
    if (ok) *base_path = installed(s, given.from, &base_json);
    json_t *base = base_json ? json_loads(base_json, 0, NULL) : NULL;
    free(base_json);
    /* base settings, then the text's layer, then the structured fields */
    if (ok && base) ok = mlxr_modelfile_from_json(base, mf, err) == MLXR_OK;
    if (ok && layer) ok = mlxr_modelfile_from_json(layer, mf, err) == MLXR_OK;
    if (ok) ok = mlxr_modelfile_from_json(o, mf, err) == MLXR_OK;
    if (ok && !mf->from && !(mf->from = strdup(given.from)))
        ok = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory") == MLXR_OK;
    json_decref(base);
    json_decref(layer);
    mlxr_modelfile_free(&given);
    if (!ok) {
        mlxr_modelfile_free(mf);
        free(*base_path);
        *base_path = NULL;
    }
    return ok;
}

enum MHD_Result mlxr_ollama_create(mlxr_http_req *r) {
    mlxr_api_error e;
    json_t *o = load_body(r, &e);
    if (!o) return mlxr_http_error(r, &e);
    const char *model = str_member(o, "model") ? str_member(o, "model") : str_member(o, "name");
    bool stream = !json_is_false(json_object_get(o, "stream"));
    enum MHD_Result ret;
    mlxr_modelfile mf = {0};
    char *path = NULL, n1[104], t1[64];
    mlxr_err err = {0};
    if (!model) {
        ret = mlxr_http_errorf(r, 400, "invalid_request_error", NULL, "'model' is required");
    } else if (mlxr_registry_parse_name(model, n1, t1, &err) != MLXR_OK ||
               !create_settings(r->srv, o, &mf, &path, &err)) {
        /* nothing imported: a bad Modelfile leaves no row */
        ret = mlxr_http_errorf(r, err.code == MLXR_ERR_NOMEM ? 500 : 400,
                               err.code == MLXR_ERR_NOMEM ? "server_error" : "invalid_request_error",
                               NULL, "%s", err.msg[0] ? err.msg : "invalid modelfile");
    } else {
        const char *src = path ? path : local_path(mf.from);
        bool oom = false;
        char *settings = mlxr_modelfile_to_json(&mf, &oom);
        mlxr_status st = oom ? MLXR_FAIL(&err, MLXR_ERR_NOMEM, "out of memory")
                         : path || access(src, R_OK) == 0
                             ? import_with(r->srv, src, model, settings, &err)
                             : MLXR_FAIL(&err, MLXR_ERR_NOT_FOUND,
                                         "'%s' is neither an installed model nor a readable "
                                         "file", mf.from);
        free(settings);
        static const char *const lines[] = {"parsing modelfile", "using existing layer",
                                            "writing manifest", "success"};
        ret = st == MLXR_OK ? statuses(r, stream, lines, 4) : reg_error(r, st, &err);
    }
    free(path);
    mlxr_modelfile_free(&mf);
    json_decref(o);
    return ret;
}
