/*
 * server.c - the daemon's life cycle: open the registry, register the default model, preload,
 * listen; and on the way out cancel every generation, close connections and free the engines.
 */
#include "server/http.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

mlxr_status mlxr_server_start(const mlxr_server_opts *o, const mlxr_auth *auth,
                              mlxr_server **out, mlxr_err *err) {
    *out = NULL;
    mlxr_server *s = calloc(1, sizeof *s);
    if (!s) return MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    s->o = *o;
    if (!s->o.max_body) s->o.max_body = 8u << 20;
    if (!s->o.conn_timeout_s) s->o.conn_timeout_s = 300;
    if (!s->o.max_conns) s->o.max_conns = 64;
    s->unix_fd = -1;
    s->started = (int64_t)time(NULL);
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->reg_mu, NULL);
    pthread_mutex_init(&s->models_mu, NULL);
    pthread_mutex_init(&s->load_mu, NULL);
    pthread_mutex_init(&s->active_mu, NULL);
    pthread_mutex_init(&s->reap_mu, NULL);
    pthread_cond_init(&s->reap_cv, NULL);
    mlxr_status st = MLXR_OK;
    for (size_t i = 0; auth && i < auth->n_keys && st == MLXR_OK; i++)
        if (!mlxr_auth_add(&s->auth, auth->keys[i])) st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    if (st == MLXR_OK && !(s->metrics = mlxr_metrics_new()))
        st = MLXR_FAIL(err, MLXR_ERR_NOMEM, "out of memory");
    if (st == MLXR_OK && o->home) st = mlxr_registry_open(o->home, &s->reg, err);
    /* the default model: --model if given, else the configured default */
    const char *def = o->preload ? o->preload : o->default_model;
    if (st == MLXR_OK && def) st = mlxr_server_add_model(s, def, &s->default_key, err);
    if (st == MLXR_OK && !s->default_key)
        st = MLXR_FAIL(err, MLXR_ERR_INVALID, "no default model");
    if (st == MLXR_OK && o->preload) {
        mlxr_served_model *m;
        mlxr_api_error e;
        if (!mlxr_server_model(s, s->default_key, &m, &e))
            st = MLXR_FAIL(err, MLXR_ERR_IO, "%s", e.message);
        else
            mlxr_server_model_done(s, m, -2);
    }
    if (st == MLXR_OK) st = mlxr_server_reaper_start(s, err);
    if (st == MLXR_OK) st = mlxr_http_listen(s, err);
    if (st != MLXR_OK) {
        mlxr_server_free(s);
        return st;
    }
    *out = s;
    return MLXR_OK;
}

void mlxr_server_free(mlxr_server *s) {
    if (!s) return;
    atomic_store(&s->stopping, true);
    /* finish every generation so that streams end and waiting handlers return */
    pthread_mutex_lock(&s->active_mu);
    for (size_t i = 0; i < s->n_active; i++) mlxr_gen_cancel(s->active[i].g);
    pthread_mutex_unlock(&s->active_mu);
    mlxr_http_stop(s);
    mlxr_server_reaper_stop(s);
    for (size_t i = 0; i < s->n_models; i++) {
        mlxr_gen_engine_free(s->models[i]->engine);
        free(s->models[i]->key);
        free(s->models[i]->path);
        free(s->models[i]);
    }
    free(s->models);
    for (size_t i = 0; i < s->n_active; i++) mlxr_gen_release(s->active[i].g);
    free(s->active);
    free(s->default_key);
    mlxr_registry_close(s->reg);
    mlxr_metrics_free(s->metrics);
    mlxr_auth_free(&s->auth);
    pthread_mutex_destroy(&s->reg_mu);
    pthread_mutex_destroy(&s->models_mu);
    pthread_mutex_destroy(&s->load_mu);
    pthread_mutex_destroy(&s->active_mu);
    pthread_cond_destroy(&s->reap_cv);
    pthread_mutex_destroy(&s->reap_mu);
    free(s);
}

/* Every half second (or when woken), unload the models idle past their keep_alive. */
static void *reaper_main(void *arg) {
    mlxr_server *s = arg;
    pthread_mutex_lock(&s->reap_mu);
    while (!atomic_load(&s->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->reap_cv, &s->reap_mu, &ts);
        if (atomic_load(&s->stopping)) break;
        pthread_mutex_unlock(&s->reap_mu);
        mlxr_server_unload_idle(s, false);
        pthread_mutex_lock(&s->reap_mu);
    }
    pthread_mutex_unlock(&s->reap_mu);
    return NULL;
}

mlxr_status mlxr_server_reaper_start(mlxr_server *s, mlxr_err *err) {
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0)
        return MLXR_FAIL(err, MLXR_ERR_INTERNAL, "cannot start the model unloading thread");
    s->reaper_started = true;
    return MLXR_OK;
}

void mlxr_server_reaper_stop(mlxr_server *s) {
    if (!s->reaper_started) return;
    atomic_store(&s->stopping, true);
    pthread_mutex_lock(&s->reap_mu);
    pthread_cond_broadcast(&s->reap_cv);
    pthread_mutex_unlock(&s->reap_mu);
    pthread_join(s->reaper, NULL);
    s->reaper_started = false;
}
