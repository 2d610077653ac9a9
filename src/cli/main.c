/*
 * main.c - the mlxr program: dispatch to a subcommand, and the helpers they share.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef MLXR_DEFAULT_MODEL_REL
#define MLXR_DEFAULT_MODEL_REL "models/pydoc-7M-q8_0.gguf"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: mlxr <command> [options]\n"
            "\n"
            "commands:\n"
            "  run       generate text: mlxr run [-m MODEL] -p PROMPT [-n N] [--temp T] [--draft M|--lookup] ...\n"
            "            or chat (no -p on a terminal, or -i): mlxr run [MODEL|NAME] [-i]\n"
            "            [--system TEXT]\n"
            "  tokenize  print the token ids of stdin: mlxr tokenize [-m MODEL] [--no-bos] [--parse-special]\n"
            "  detokenize  print the text of token ids: mlxr detokenize [-m MODEL] [--special] [ID ...]\n"
            "  info      print a model's metadata and tensors: mlxr info [-m MODEL]\n"
            "  template  print a chat prompt: mlxr template [-m MODEL] [--template F.jinja] --messages F.json\n"
            "            [--add-generation-prompt]\n"
            "  bench     measure speed: mlxr bench [-m MODEL] [-p 512] [-n 128] [-t N] [-r R] [--json]\n"
            "            [--parallel N] [--prefix-share]\n"
            "  quantize  convert a model's weights: mlxr quantize IN.gguf OUT.gguf TYPE [-t N]\n"
            "  convert   MLX-format copy of a Hugging Face model: mlxr convert --mlx-bits 4|8\n"
            "            [--group-size G] [--shard-mib N] IN_DIR OUT_DIR\n"
            "  perplexity  score a text: mlxr perplexity -m MODEL -f TEXT [-c N_CTX] [--base MODEL] [--json]\n"
            "  serve     run the HTTP daemon (OpenAI + Ollama API): mlxr serve [--port N] [--socket P]\n"
            "  list      installed models; show NAME, rm NAME, import PATH [--name NAME[:TAG]],\n"
            "            pull URL|PATH manage them (all take --home DIR)\n"
            "  ps        models the running daemon has loaded; stop NAME unloads one\n"
            "            ([--host URL] [--socket PATH], default $MLXR_HOST or 127.0.0.1:11434)\n"
            "\n"
            "Run 'mlxr <command> --help' for the options of a command.\n"
            "Without -m, the bundled demonstration model is used (%s).\n",
            MLXR_DEFAULT_MODEL_REL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return cli_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cli_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "detokenize")) return cli_detokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cli_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "template")) return cli_template(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cli_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return cli_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return cli_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "list") || !strcmp(cmd, "ls")) return cli_list(argc - 1, argv + 1);
    if (!strcmp(cmd, "show")) return cli_show(argc - 1, argv + 1);
    if (!strcmp(cmd, "rm")) return cli_rm(argc - 1, argv + 1);
    if (!strcmp(cmd, "import")) return cli_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "pull")) return cli_pull(argc - 1, argv + 1);
    if (!strcmp(cmd, "ps")) return cli_ps(argc - 1, argv + 1);
    if (!strcmp(cmd, "stop")) return cli_stop(argc - 1, argv + 1);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    cli_error("unknown command '%s' (try 'mlxr --help')", cmd);
    return 2;
}

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mlxr: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

bool cli_int(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_error("%s expects an integer in %ld..%ld, got '%s'", flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || isnan(v) || v < lo || v > hi) {
        cli_error("%s expects a number in %g..%g, got '%s'", flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

int cli_kv_flag(const char *flag, const char *value, cli_kv *kv) {
    const bool both = !strcmp(flag, "--kv-type"), k = both || !strcmp(flag, "-ctk") ||
                      !strcmp(flag, "--cache-type-k");
    const bool v = both || !strcmp(flag, "-ctv") || !strcmp(flag, "--cache-type-v");
    if (!k && !v) return 0;
    mlxr_kv_type t;
    if (!mlxr_kv_type_from_name(value, &t)) {
        cli_error("%s expects f16, f32 or q8_0, got '%s'", flag, value);
        return -1;
    }
    if (k) kv->k = t, kv->k_set = true;
    if (v) kv->v = t, kv->v_set = true;
    return 1;
}

bool cli_kv_type(const cli_kv *kv, mlxr_kv_type *out) {
    const mlxr_kv_type k = kv->k_set ? kv->k : MLXR_KV_F16, v = kv->v_set ? kv->v : MLXR_KV_F16;
    if (k != v) {
        cli_error("the K and V caches must have the same type (got -ctk %s, -ctv %s): mlxr "
                  "stores both alike",
                  mlxr_kv_type_name(k), mlxr_kv_type_name(v));
        return false;
    }
    *out = k;
    return true;
}

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_error("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

const char *cli_default_model(void) {
    static char path[8192];
    const char *env = getenv("MLXR_MODEL");
    if (env && *env) return env;
    /* <dir of executable>/../models/... : works for build/mlxr in the source tree */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/../%s", exe, MLXR_DEFAULT_MODEL_REL);
            if (access(path, R_OK) == 0) return path;
        }
    }
#ifdef MLXR_SOURCE_DIR
    snprintf(path, sizeof path, "%s/%s", MLXR_SOURCE_DIR, MLXR_DEFAULT_MODEL_REL);
    if (access(path, R_OK) == 0) return path;
#endif
    return MLXR_DEFAULT_MODEL_REL;
}

static void log_to_stderr(mlxr_log_level level, const char *msg, void *user) {
    if (level >= MLXR_LOG_WARN) fprintf(stderr, "mlxr: %s\n", msg);
}

mlxr_model *cli_load_model(const char *path, bool vocab_only) {
    return cli_load_model_gpu(path, vocab_only, false);
}

mlxr_model *cli_load_model_gpu(const char *path, bool vocab_only, bool for_gpu) {
    mlxr_load_opts o = {log_to_stderr, NULL, vocab_only, for_gpu};
    mlxr_model *m = NULL;
    mlxr_err err = {0};
    mlxr_status st = mlxr_model_load(path, &o, &m, &err);
    if (st != MLXR_OK) {
        cli_error("cannot load model '%s': %s", path, err.msg[0] ? err.msg : mlxr_status_str(st));
        return NULL;
    }
    return m;
}

char *cli_read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        cli_error("out of memory");
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            char *nb = cap > ((size_t)1 << 30) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                cli_error("input too large");
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        cli_error("cannot read stdin");
        return NULL;
    }
    *len = n;
    return buf;
}

int32_t *cli_tokenize_text(const mlxr_model *m, const char *text, size_t len, bool add_bos,
                           size_t *n_out) {
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    mlxr_err err = {0};
    mlxr_status st = ids ? mlxr_tokenize(m, text, len, add_bos, false, ids, cap, n_out, &err)
                         : MLXR_ERR_NOMEM;
    if (st == MLXR_ERR_RANGE) {
        /* too small: the call told us how many ids there are */
        cap = *n_out;
        int32_t *n2 = realloc(ids, (cap ? cap : 1) * sizeof *ids);
        st = n2 ? mlxr_tokenize(m, text, len, add_bos, false, n2, cap, n_out, &err) : MLXR_ERR_NOMEM;
        ids = n2 ? n2 : ids;
    }
    if (st != MLXR_OK) {
        cli_error("cannot tokenize: %s", err.msg[0] ? err.msg : mlxr_status_str(st));
        free(ids);
        return NULL;
    }
    return ids;
}

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

mlxr_status cli_decode(mlxr_context *c, const int32_t *ids, int32_t n, int32_t pos0,
                       int32_t n_batch, int32_t *last, mlxr_err *err) {
    int32_t *pos = malloc((size_t)n_batch * sizeof *pos), *seq = calloc((size_t)n_batch, sizeof *seq);
    mlxr_status st = MLXR_OK;
    if (!pos || !seq) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        st = MLXR_ERR_NOMEM;
    }
    for (int32_t i = 0; i < n && st == MLXR_OK; i += n_batch) {
        int32_t k = n - i < n_batch ? n - i : n_batch;
        for (int32_t j = 0; j < k; j++) pos[j] = pos0 + i + j;
        mlxr_batch b = {k, ids + i, pos, seq, NULL};
        st = mlxr_decode(c, &b, err);
        *last = k - 1;
    }
    free(pos);
    free(seq);
    return st;
}
