/*
 * serve.c - `mlxr serve`: run the HTTP daemon (OpenAI- and Ollama-compatible API) until SIGINT or
 * SIGTERM. Settings come from the config file (see src/server/config.h), then the flags.
 */
#include "cli.h"

#include "server/config.h"
#include "server/server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serve_usage(void) {
    printf("usage: mlxr serve [options]\n"
           "  --host ADDR            IPv4 address to listen on (default 127.0.0.1)\n"
           "  --port N               TCP port (default 11434; 0 = any free port, printed)\n"
           "  --no-tcp               no TCP listener (use with --socket)\n"
           "  --socket PATH          also listen on a Unix socket (mode 0600)\n"
           "  --home DIR             model registry (default $MLXR_HOME, $XDG_DATA_HOME/mlxr,\n"
           "                         ~/.local/share/mlxr)\n"
           "  -m, --model NAME|PATH  load this model at start and make it the default\n"
           "                         (default: the bundled pydoc-7M, loaded on first use)\n"
           "  -t, --threads N        threads per model (default: number of CPUs)\n"
           "  -c, --ctx-size N       context per request (default: the model's trained context)\n"
           "  --max-queue N          waiting requests per model before 429 (default 16)\n"
           "  -np, --parallel N      sequences generated at once per model, batched (default 16)\n"
           "  --kv-mem MIB           KV cache pool per model (default: parallel x ctx-size,\n"
           "                         at most parallel x 4096 positions)\n"
           "  --kv-type T            KV cache type: f16 (default), f32 or q8_0 (also -ctk T\n"
           "                         -ctv T, as llama.cpp; both must be the same)\n"
           "  --no-batch-invariant   faster prompts, but outputs may then depend on the load\n"
           "  -ngl, --gpu-layers N   run the models on CUDA device 0 (N != 0: whole model); a batch\n"
           "                         then runs as one pass (outputs may depend on the load, as\n"
           "                         with --no-batch-invariant)\n"
           "  --keep-alive DURATION  unload a model idle this long (default 5m; 0 = at once,\n"
           "                         -1 = never); requests may set their own (keep_alive)\n"
           "  --max-loaded N         models loaded at once; the least recently used idle one\n"
           "                         is unloaded to make room (default: no limit)\n"
           "  --max-body BYTES       request body limit (default 8388608)\n"
           "  --timeout S            idle connection timeout in seconds (default 300)\n"
           "  --max-connections N    (default 64)\n"
           "  --api-key KEY          require 'Authorization: Bearer KEY' (repeatable; also\n"
           "                         $MLXR_API_KEY, comma-separated); /health stays open\n"
           "  --cors ORIGIN          allow browser requests from ORIGIN (repeatable; * = any)\n"
           "  --config FILE          settings file (default HOME/mlxr.conf when present)\n"
           "  --quiet                no access log\n");
}

typedef struct serve_cfg {
    mlxr_server_opts o;
    mlxr_auth auth;
    const char **cors;
    size_t n_cors;
    cli_kv kv; /* --kv-type, -ctk, -ctv (and the config keys kv-type, cache-type-k/v) */
} serve_cfg;

/* Apply one setting (from the file or a flag). Returns 0, or 1 after printing an error. */
static int apply(serve_cfg *c, const char *key, const char *v) {
    long l;
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", key);
    const int kv = cli_kv_flag(flag, v, &c->kv);
    if (kv != 0) return kv < 0;
    if (!strcmp(key, "host")) c->o.host = v;
    else if (!strcmp(key, "port")) {
        if (!cli_int("--port", v, 0, 65535, &l)) return 1;
        c->o.port = (int)l;
    } else if (!strcmp(key, "socket")) c->o.socket_path = v;
    else if (!strcmp(key, "home")) c->o.home = v;
    else if (!strcmp(key, "model")) c->o.preload = v;
    else if (!strcmp(key, "threads")) {
        if (!cli_int("--threads", v, 1, 1024, &l)) return 1;
        c->o.n_threads = (int32_t)l;
    } else if (!strcmp(key, "ctx-size")) {
        if (!cli_int("--ctx-size", v, 16, 1 << 20, &l)) return 1;
        c->o.n_ctx = (int32_t)l;
    } else if (!strcmp(key, "max-queue")) {
        if (!cli_int("--max-queue", v, 1, 1 << 16, &l)) return 1;
        c->o.max_queue = (int32_t)l;
    } else if (!strcmp(key, "parallel")) {
        if (!cli_int("--parallel", v, 1, 1024, &l)) return 1;
        c->o.n_seq_max = (int32_t)l;
    } else if (!strcmp(key, "gpu-layers")) {
        if (!cli_int("--gpu-layers", v, -1, 1 << 20, &l)) return 1;
        c->o.n_gpu_layers = (int32_t)l;
    } else if (!strcmp(key, "kv-mem")) {
        if (!cli_int("--kv-mem", v, 1, 1L << 24, &l)) return 1;
        c->o.kv_mem_bytes = (int64_t)l << 20;
    } else if (!strcmp(key, "no-batch-invariant")) {
        c->o.no_batch_invariant = !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
    } else if (!strcmp(key, "keep-alive")) {
        if (!mlxr_api_parse_duration(v, &c->o.keep_alive_s))
            return cli_error("--keep-alive: '%s' is not a duration (5m, 30s, 1h, -1)", v);
        c->o.keep_alive_set = true;
    } else if (!strcmp(key, "max-loaded")) {
        if (!cli_int("--max-loaded", v, 1, 1024, &l)) return 1;
        c->o.max_loaded = (int32_t)l;
    } else if (!strcmp(key, "max-body")) {
        if (!cli_int("--max-body", v, 1024, 1L << 30, &l)) return 1;
        c->o.max_body = (size_t)l;
    } else if (!strcmp(key, "timeout")) {
        if (!cli_int("--timeout", v, 1, 86400, &l)) return 1;
        c->o.conn_timeout_s = (unsigned)l;
    } else if (!strcmp(key, "max-connections")) {
        if (!cli_int("--max-connections", v, 1, 4096, &l)) return 1;
        c->o.max_conns = (unsigned)l;
    } else if (!strcmp(key, "api-key")) {
        if (!mlxr_auth_add(&c->auth, v)) return cli_error("out of memory");
    } else if (!strcmp(key, "cors")) {
        const char **p = realloc(c->cors, (c->n_cors + 1) * sizeof *p);
        if (!p) return cli_error("out of memory");
        c->cors = p;
        c->cors[c->n_cors++] = v;
    } else if (!strcmp(key, "quiet")) {
        c->o.quiet = !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
    } else {
        return cli_error("unknown setting '%s'", key);
    }
    return 0;
}

/* Long flags that take no value. */
static bool is_switch(const char *a) {
    return !strcmp(a, "--quiet") || !strcmp(a, "--no-tcp") || !strcmp(a, "--no-batch-invariant");
}

static const char *flag_key(const char *a) {
    if (!strcmp(a, "-m")) return "model";
    if (!strcmp(a, "-t")) return "threads";
    if (!strcmp(a, "-c")) return "ctx-size";
    if (!strcmp(a, "-np")) return "parallel";
    if (!strcmp(a, "-ngl")) return "gpu-layers";
    if (!strcmp(a, "-ctk")) return "cache-type-k";
    if (!strcmp(a, "-ctv")) return "cache-type-v";
    if (!strncmp(a, "--", 2)) return a + 2;
    return NULL;
}

int cli_serve(int argc, char **argv) {
    serve_cfg c = {0};
    c.o.port = 11434;
    c.o.default_model = cli_default_model();
    const char *config = NULL;
    bool no_tcp = false;
    /* first pass: where the home and the config file are */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            serve_usage();
            return 0;
        }
        if (is_switch(argv[i])) continue;
        if (i + 1 < argc && !strcmp(argv[i], "--config")) config = argv[i + 1];
        if (i + 1 < argc && !strcmp(argv[i], "--home")) c.o.home = argv[i + 1];
        i++;
    }
    if (!c.o.home) c.o.home = mlxr_registry_default_home();
    if (!c.o.home) return cli_error("no home directory: pass --home DIR or set MLXR_HOME");
    char default_conf[4096];
    snprintf(default_conf, sizeof default_conf, "%s/mlxr.conf", c.o.home);
    if (!config && access(default_conf, R_OK) == 0) config = default_conf;
    mlxr_config_kv *kv = NULL;
    size_t n_kv = 0;
    mlxr_err err = {0};
    int rc = 1;
    mlxr_server *srv = NULL;
    if (config && mlxr_config_read(config, &kv, &n_kv, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        goto done;
    }
    for (size_t i = 0; i < n_kv; i++)
        if (apply(&c, kv[i].key, kv[i].value)) {
            fprintf(stderr, "mlxr: (in %s line %d)\n", config, kv[i].line);
            goto done;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *key = flag_key(a), *v;
        if (!strcmp(a, "--quiet")) {
            c.o.quiet = true;
            continue;
        }
        if (!strcmp(a, "--no-tcp")) {
            no_tcp = true;
            continue;
        }
        if (!strcmp(a, "--no-batch-invariant")) {
            c.o.no_batch_invariant = true;
            continue;
        }
        if (!key) {
            cli_error("unknown option '%s' for serve (try 'mlxr serve --help')", a);
            goto done;
        }
        if (!(v = cli_value(argc, argv, &i))) goto done;
        if (!strcmp(key, "config")) continue;
        if (apply(&c, key, v)) goto done;
    }
    if (!cli_kv_type(&c.kv, &c.o.kv_type)) goto done;
    if (no_tcp) {
        if (!c.o.socket_path) {
            cli_error("--no-tcp needs --socket PATH");
            goto done;
        }
        c.o.port = -1;
    }
    if (!mlxr_auth_add_list(&c.auth, getenv("MLXR_API_KEY"))) {
        cli_error("out of memory");
        goto done;
    }
    c.o.cors = c.cors;
    c.o.n_cors = c.n_cors;
    /* signals are taken by sigwait below; block them before any thread starts so every thread
     * inherits the mask and none is interrupted */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (mlxr_server_start(&c.o, &c.auth, &srv, &err) != MLXR_OK) {
        cli_error("%s", err.msg);
        goto done;
    }
    fprintf(stderr, "mlxr: serving %s (default model) from %s\n", srv->default_key, c.o.home);
    if (c.o.port >= 0)
        fprintf(stderr, "mlxr: listening on http://%s:%d\n", c.o.host ? c.o.host : "127.0.0.1",
                srv->port);
    if (c.o.socket_path) fprintf(stderr, "mlxr: listening on unix:%s\n", c.o.socket_path);
    if (c.auth.n_keys) fprintf(stderr, "mlxr: API key required (%zu configured)\n", c.auth.n_keys);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "mlxr: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    mlxr_server_free(srv);
    srv = NULL;
    fprintf(stderr, "mlxr: stopped\n");
    rc = 0;
done:
    mlxr_server_free(srv);
    mlxr_config_free(kv, n_kv);
    mlxr_auth_free(&c.auth);
    free(c.cors);
    return rc;
}
