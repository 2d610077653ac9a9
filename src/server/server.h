/*
 * server.h - the mlxr daemon: options, the server object, and what the endpoint handlers share.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by max_conns); handlers parse,
 * validate, tokenize and queue work, then pull text from the generation (gen.h) — they never
 * run the model. Each loaded model has its own generation engine and thread.
 * Locks: models_mu guards the model table; load_mu serializes model loading; reg_mu guards the
 * registry handle; active_mu the table of running requests. Never hold two at once, except
 * load_mu -> models_mu and load_mu -> reg_mu (in that order).
 */
#ifndef MLXR_SERVER_SERVER_H
#define MLXR_SERVER_SERVER_H

#include "server/auth.h"
#include "server/gen.h"
#include "server/metrics.h"
#include "server/registry.h"
#include "server/request.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MLXR_SERVER_VERSION "0.1.0"

typedef struct mlxr_server_opts {
    const char *host;        /* TCP address to bind; default "127.0.0.1"; NULL with port < 0: none */
    int port;                /* default 11434 (Ollama's); 0 = any free port (printed); -1 = no TCP */
    const char *socket_path; /* Unix socket (mode 0600), or NULL */
    const char *home;        /* registry directory */
    const char *default_model; /* registry name or GGUF path served when a request names none */
    const char *preload;     /* registry name or path to load at start (also the default), or NULL */
    int32_t n_threads, n_ctx, max_queue;
    size_t max_body;         /* request body limit in bytes; default 8 MiB */
    unsigned conn_timeout_s; /* idle connection timeout; default 300 */
    unsigned max_conns;      /* default 64 */
    const char *const *cors; /* allowed origins ("*" = any) */
    size_t n_cors;
    bool quiet;              /* no access log */
} mlxr_server_opts;

/* A model the server can serve: from the registry, or a file named on the command line. */
typedef struct mlxr_served_model {
    char *key;               /* "name:tag" */
    char *path;
    mlxr_gen_engine *engine; /* NULL until first use; lives until the server is freed */
    int64_t loaded_at;       /* unix seconds */
    int64_t size;
    int64_t touched;         /* (reg_mu) last registry last_used update, unix seconds */
} mlxr_served_model;

typedef struct mlxr_active {
    mlxr_gen *g;             /* retained */
    char model[128];
    const char *endpoint;
    int64_t created;         /* unix seconds */
} mlxr_active;

typedef struct mlxr_server {
    mlxr_server_opts o;
    mlxr_auth auth;
    mlxr_metrics *metrics;
    pthread_mutex_t reg_mu;
    mlxr_registry *reg;      /* (reg_mu) */
    pthread_mutex_t models_mu, load_mu;
    mlxr_served_model **models; /* (models_mu); entries never move or go away */
    size_t n_models;
    char *default_key;       /* key of the default model */
    pthread_mutex_t active_mu;
    mlxr_active *active;     /* (active_mu) */
    size_t n_active, cap_active;
    void *tcp, *unix_d;      /* struct MHD_Daemon * */
    int unix_fd;
    int port;                /* the TCP port actually bound */
    atomic_bool stopping;
    int64_t started;
} mlxr_server;

/* Create the server: open the registry, register the default model, preload if asked, and
 * start listening. *out: mlxr_server_free. */
mlxr_status mlxr_server_start(const mlxr_server_opts *o, const mlxr_auth *auth,
                              mlxr_server **out, mlxr_err *err);
/* Stop accepting, cancel every generation, close connections, free everything. */
void mlxr_server_free(mlxr_server *s);

/* ---- shared by the handlers (models.c) ---------------------------------------------------- */

/* Make a model servable: a registry name, else a GGUF path (keyed "<file stem>:latest").
 * *key_out (may be NULL) receives the key, malloc'ed. */
mlxr_status mlxr_server_add_model(mlxr_server *s, const char *name_or_path, char **key_out,
                                  mlxr_err *err);

/* Find a servable model by name ("name", "name:tag", NULL/"" = default) and load it if needed.
 * Errors: 404 model_not_found, 500 when loading fails. *out borrowed for the server's life. */
bool mlxr_server_model(mlxr_server *s, const char *name, mlxr_served_model **out,
                       mlxr_api_error *e);
/* Model names known to the server (registry + command line), for listings. *out malloc'ed array
 * of malloc'ed "name:tag" strings. */
size_t mlxr_server_model_names(mlxr_server *s, char ***out);

/* Tokenize, check, and queue a parsed generation request. On success *g is a new generation
 * (one reference) registered in the active table; *m the model. */
bool mlxr_server_submit(mlxr_server *s, const mlxr_api_req *r, const char *endpoint,
                        mlxr_served_model **m, mlxr_gen **g, mlxr_api_error *e);
/* Remove a finished generation from the active table and drop its reference there. */
void mlxr_server_retire(mlxr_server *s, mlxr_gen *g);

/* Tokenize text with a model (malloc'ed ids; NULL with *e on failure). */
int32_t *mlxr_server_tokenize(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                              bool special, size_t *n, mlxr_api_error *e);

/* The OpenAI "finish_reason" / Ollama "done_reason" of a generation. */
const char *mlxr_finish_name(mlxr_gen_finish f);

#endif
