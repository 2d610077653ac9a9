/*
 * server.h - the mlxr daemon: options, the server object, and what the endpoint handlers share.
 *
 * Threads: libmicrohttpd runs one thread per connection (bounded by max_conns); handlers parse,
 * validate, tokenize and queue work, then pull text from the generation (gen.h) — generation
 * never runs on them. Each loaded model has its own generation engine and thread. The embedding
 * handlers (embed.c) are the exception: they run a small context of their own on the
 * connection's thread (embeddings are one prompt pass, no decode loop to share).
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
    int32_t n_seq_max;       /* sequences batched per model; 0 = 16 */
    int64_t kv_mem_bytes;    /* KV pool per model; 0 = n_seq_max x n_ctx */
    bool no_batch_invariant; /* see mlxr_gen_engine_opts */
    mlxr_kv_type kv_type;    /* KV cache type per model (default F16) */
    int32_t n_gpu_layers;    /* 0: CPU; else the models run on CUDA device 0 (mlxr_gen_engine_opts) */
    int64_t keep_alive_s;    /* unload a model idle this long (Ollama's keep_alive default);
                                0 = right after each request; -1 = never; default 300 */
    bool keep_alive_set;     /* keep_alive_s given (else 300) */
    int32_t max_loaded;      /* models loaded at once (LRU unloading); 0 = no limit */
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
    mlxr_gen_engine *engine; /* (models_mu) NULL until first use or after unloading; a handler
                                may use it between mlxr_server_model and _model_done */
    int users;               /* (models_mu) handlers holding `engine` */
    int64_t keep_alive_s;    /* (models_mu) as the last request asked; -1 = forever */
    int64_t last_used_ns;    /* (models_mu) last request done or generation seen running */
    int64_t loaded_at;       /* unix seconds */
    int64_t size;
    int64_t touched;         /* (reg_mu) last registry last_used update, unix seconds */
    bool has_template;       /* the model ships a chat template (set with engine) */
    bool removed;            /* (models_mu) deleted (/api/delete): no longer found by name */
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
    pthread_t reaper;        /* unloads models idle past their keep_alive */
    bool reaper_started;
    pthread_mutex_t reap_mu;
    pthread_cond_t reap_cv;  /* signalled at shutdown */
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
 * Errors: 404 model_not_found, 500 when loading fails, 503 when --max-loaded models are loaded
 * and all busy. *out borrowed for the server's life; its engine stays loaded until
 * mlxr_server_model_done. */
bool mlxr_server_model(mlxr_server *s, const char *name, mlxr_served_model **out,
                       mlxr_api_error *e);
/* The handler is done with m->engine; keep_alive_s: the request's keep_alive (-2: the server's
 * default; 0 unloads the model as soon as it is idle; -1 keeps it). */
void mlxr_server_model_done(mlxr_server *s, mlxr_served_model *m, int64_t keep_alive_s);
/* Start / stop the thread that unloads idle models (server.c). */
mlxr_status mlxr_server_reaper_start(mlxr_server *s, mlxr_err *err);
void mlxr_server_reaper_stop(mlxr_server *s);
/* Unload models whose keep_alive ran out (all idle ones when `all`); returns how many. */
int mlxr_server_unload_idle(mlxr_server *s, bool all);
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
/* The chat prompt of request r (its messages and tools) rendered with m's chat template, as
 * /v1/chat/completions would see it; *out is malloc'd. Template errors give a 400. */
bool mlxr_server_render_chat(const mlxr_model *m, const mlxr_api_req *r, char **out,
                             size_t *out_len, mlxr_api_error *e);
int32_t *mlxr_server_tokenize(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                              bool special, size_t *n, mlxr_api_error *e);

/* The OpenAI "finish_reason" / Ollama "done_reason" of a generation. */
const char *mlxr_finish_name(mlxr_gen_finish f);

#endif
